import { describe, expect, it } from "vitest";
import { BUCKETS, bucketOf, chooseRole, extractKey, hash32, parseKeySource } from "./hash.ts";

const keys = (n: number, prefix = "tenant-") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe("consistent hash split", () => {
  it("is deterministic per (seed, key)", () => {
    expect(hash32("abc")).toBe(hash32("abc"));
    expect(bucketOf("ns/bot/v2", "tenant-1")).toBe(bucketOf("ns/bot/v2", "tenant-1"));
    for (const k of keys(200)) {
      const first = chooseRole(30, "ns/bot/v2", k);
      for (let i = 0; i < 5; i++) expect(chooseRole(30, "ns/bot/v2", k)).toBe(first);
    }
  });

  it.each([1, 5, 20, 50, 90])("sends %i%% of 20,000 distinct keys to the candidate within 4 standard deviations", (weight) => {
    const n = 20_000;
    const hits = keys(n).filter((k) => chooseRole(weight, "ns/bot/v2", k) === "candidate").length;
    const p = weight / 100;
    const sd = Math.sqrt(n * p * (1 - p));
    expect(Math.abs(hits - n * p)).toBeLessThan(4 * sd);
  });

  it("spreads keys evenly over the buckets (chi-square over 20 bins)", () => {
    const bins = new Array<number>(20).fill(0);
    const n = 40_000;
    for (const k of keys(n, "t")) bins[Math.floor((bucketOf("seed", k) / BUCKETS) * 20)]!++;
    const expected = n / 20;
    const chi2 = bins.reduce((s, b) => s + (b - expected) ** 2 / expected, 0);
    // 19 degrees of freedom: the 99.9th percentile is 43.8.
    expect(chi2).toBeLessThan(43.8);
  });

  it("raising the weight only moves keys from stable to candidate (stickiness while the weight grows)", () => {
    const ks = keys(5000);
    let previous = new Set(ks.filter((k) => chooseRole(5, "s", k) === "candidate"));
    for (const w of [10, 25, 50, 75, 99]) {
      const now = new Set(ks.filter((k) => chooseRole(w, "s", k) === "candidate"));
      for (const k of previous) expect(now.has(k)).toBe(true);
      expect(now.size).toBeGreaterThan(previous.size);
      previous = now;
    }
  });

  it("a different seed (a new candidate) draws a different cohort", () => {
    const ks = keys(2000);
    const a = ks.filter((k) => chooseRole(20, "ns/bot/v2", k) === "candidate");
    const b = new Set(ks.filter((k) => chooseRole(20, "ns/bot/v3", k) === "candidate"));
    const overlap = a.filter((k) => b.has(k)).length / a.length;
    expect(overlap).toBeGreaterThan(0.1);
    expect(overlap).toBeLessThan(0.3);
  });

  it("handles the edges: 0, 100, out of range, NaN, and keyless requests by random draw", () => {
    expect(chooseRole(0, "s", "k")).toBe("stable");
    expect(chooseRole(100, "s", "k")).toBe("candidate");
    expect(chooseRole(-5, "s", "k")).toBe("stable");
    expect(chooseRole(500, "s", "k")).toBe("candidate");
    expect(chooseRole(Number.NaN, "s", "k")).toBe("stable");
    expect(chooseRole(undefined, "s", "k")).toBe("stable");
    expect(chooseRole(30, "s", undefined, () => 0.29)).toBe("candidate");
    expect(chooseRole(30, "s", undefined, () => 0.3)).toBe("stable");
  });
});

describe("request keys", () => {
  it("parses header and json sources", () => {
    expect(parseKeySource("header:X-Tenant-Id")).toEqual({ kind: "header", name: "x-tenant-id" });
    expect(parseKeySource("json:$.tenant.id")).toEqual({ kind: "json", path: ["tenant", "id"] });
    expect(() => parseKeySource("cookie:x")).toThrow(/header:<name> or json/);
    expect(() => parseKeySource("json:$.items[0]")).toThrow(/only object keys/);
    expect(() => parseKeySource("header:a b")).toThrow(/header name/);
  });

  it.each([
    ["header", "header:x-tenant-id", { "x-tenant-id": "acme" }, undefined, "acme"],
    ["repeated header takes the first", "header:x-tenant-id", { "x-tenant-id": ["a", "b"] }, undefined, "a"],
    ["missing header", "header:x-tenant-id", {}, undefined, undefined],
    ["empty header", "header:x-tenant-id", { "x-tenant-id": "" }, undefined, undefined],
    ["json string", "json:$.tenant.id", {}, { tenant: { id: "t-1" } }, "t-1"],
    ["json number", "json:$.tenant", {}, { tenant: 42 }, "42"],
    ["json object is not a key", "json:$.tenant", {}, { tenant: { id: 1 } }, undefined],
    ["json missing", "json:$.tenant.id", {}, { tenant: null }, undefined],
    ["array body", "json:$.tenant", {}, [1, 2], undefined],
    ["__proto__ is not followed", "json:$.__proto__.polluted", {}, JSON.parse('{"a":1}'), undefined],
    ["own __proto__ key", "json:$.__proto__", {}, JSON.parse('{"__proto__":"x"}'), "x"],
  ])("extracts %s", (_name, spec, headers, body, want) => {
    expect(extractKey(parseKeySource(spec), headers as Record<string, string>, body)).toBe(want);
  });

  it("caps very long keys", () => {
    expect(extractKey(parseKeySource("header:k"), { k: "x".repeat(10_000) }, undefined)).toHaveLength(256);
  });
});
