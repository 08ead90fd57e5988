import { describe, expect, it } from "vitest";
import { formatPromDuration, parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  it.each<[string, number]>([
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    ["250ms", 250],
    ["1.5m", 90_000],
    ["0s", 0],
    ["1m500ms", 60_500],
  ])("%s -> %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "30", "5x", "-5s", "1 m", "1d", "s"])("rejects %j", (text) => {
    expect(() => parseDuration(text)).toThrow(/is not a duration/);
  });
});

describe("formatPromDuration", () => {
  it.each<[number, string]>([
    [30_000, "30s"],
    [90_000, "1m30s"],
    [5_400_000, "1h30m"],
    [3_600_000, "1h"],
    [1_500, "1500ms"],
    [0, "0s"],
    [3_661_000, "1h1m1s"],
  ])("%d ms -> %s", (ms, text) => {
    expect(formatPromDuration(ms)).toBe(text);
  });

  it("round-trips decimal spec durations into PromQL form", () => {
    expect(formatPromDuration(parseDuration("1.5m"))).toBe("1m30s");
  });
});
