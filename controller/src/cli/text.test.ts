import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.ts";
import { positiveDurationFlag, table } from "./text.ts";

describe("table", () => {
  it("pads each column to its widest cell plus two spaces, leaves the last unpadded, trims trailing blanks", () => {
    expect(table([["NAME", "PHASE", "URL"], ["pr-1", "Ready", "http://x"], ["longer-name", "Expired", ""]])).toBe("NAME         PHASE    URL\npr-1         Ready    http://x\nlonger-name  Expired\n");
  });

  it("no rows, no output", () => {
    expect(table([])).toBe("");
  });
});

describe("positiveDurationFlag", () => {
  it("reads a duration in milliseconds", () => {
    expect(positiveDurationFlag("--timeout", "90s")).toBe(90_000);
  });

  it("refuses zero and text that is no duration, naming the flag", () => {
    expect(() => positiveDurationFlag("--timeout", "0s")).toThrow(new UsageError("--timeout: 0s is not a positive duration"));
    expect(() => positiveDurationFlag("--timeout", "soon")).toThrow(UsageError);
    expect(() => positiveDurationFlag("--timeout", "soon")).toThrow(/^--timeout: /);
  });
});
