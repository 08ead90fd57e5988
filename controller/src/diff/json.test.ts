import { describe, expect, it } from "vitest";
import { boundedJSON, canonicalJSON, formatNumber, jsonNestingDepth, kindOf, measureValue, preview, roundSignificant } from "./json.ts";

describe("kindOf", () => {
  it.each([
    { v: null, k: "null" },
    { v: [], k: "array" },
    { v: {}, k: "object" },
    { v: "", k: "string" },
    { v: 0, k: "number" },
    { v: false, k: "boolean" },
    { v: undefined, k: "undefined" },
    { v: 1n, k: "other" },
  ])("$k", ({ v, k }) => {
    expect(kindOf(v)).toBe(k);
  });
});

describe("canonicalJSON", () => {
  it("sorts keys and keeps array order", () => {
    expect(canonicalJSON({ b: [2, 1], a: { d: null, c: "x" } }, 64, { nodes: 100 })).toBe('{"a":{"c":"x","d":null},"b":[2,1]}');
  });

  it("treats __proto__ as a plain key", () => {
    expect(canonicalJSON(JSON.parse('{"__proto__": {"x": 1}}'), 64, { nodes: 100 })).toBe('{"__proto__":{"x":1}}');
  });

  it.each([
    { name: "too deep", v: [[[1]]], depth: 2, nodes: 100 },
    { name: "over budget", v: [1, 2, 3], depth: 64, nodes: 3 },
  ])("gives up when $name", ({ v, depth, nodes }) => {
    expect(canonicalJSON(v, depth, { nodes })).toBeUndefined();
  });
});

describe("number formatting", () => {
  it.each([
    { n: 0.91, digits: 6, r: 0.91 },
    { n: 0.1 + 0.2, digits: 6, r: 0.3 },
    { n: 123.456789, digits: 6, r: 123.457 },
    { n: 0.000123456789, digits: 6, r: 0.000123457 },
    { n: -2.718281828, digits: 3, r: -2.72 },
    { n: 12.0869, digits: 3, r: 12.1 },
    { n: 123456789.5, digits: 6, r: 123456790 },
    { n: 1.23456789e-30, digits: 3, r: 1.23e-30 },
    { n: 0, digits: 3, r: 0 },
  ])("roundSignificant($n, $digits) = $r", ({ n, digits, r }) => {
    expect(roundSignificant(n, digits)).toBe(r);
  });

  it.each([
    { n: 0.1 + 0.2, s: "0.3" },
    { n: 5, s: "5" },
    { n: -0.000123456789, s: "-0.000123457" },
    { n: Infinity, s: "Infinity" },
  ])("formatNumber($n) = $s", ({ n, s }) => {
    expect(formatNumber(n)).toBe(s);
  });
});

describe("preview", () => {
  it.each([
    { v: "x".repeat(100), p: `"${"x".repeat(60)}…"` },
    { v: [1, 2], p: "array(2)" },
    { v: { a: 1 }, p: "object(1 keys)" },
    { v: null, p: "null" },
    { v: 0.1 + 0.2, p: "0.3" },
  ])("$p", ({ v, p }) => {
    expect(preview(v)).toBe(p);
  });
});

function deep(n: number, wrap: (v: unknown) => unknown): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = wrap(v);
  return v;
}

describe("jsonNestingDepth", () => {
  it.each([
    { text: "1", depth: 0 },
    { text: "[]", depth: 1 },
    { text: '{"a":[1,{"b":[]}]}', depth: 4 },
    { text: '["[[[[", "\\"{{"]', depth: 1 },
    { text: '{"a\\\\":[[]]}', depth: 3 },
  ])("$text nests $depth deep", ({ text, depth }) => {
    expect(jsonNestingDepth(text, 100)).toBe(depth);
  });

  it("stops at limit + 1 on a 100,000-deep text", () => {
    expect(jsonNestingDepth("[".repeat(100_000) + "]".repeat(100_000), 1000)).toBe(1001);
  });
});

describe("measureValue", () => {
  it("measures depth, values and the longest array without recursion", () => {
    expect(measureValue({ a: [1, 2, 3], b: { c: [] } }, 10, 100)).toEqual({ depth: 3, nodes: 7, longestArray: 3 });
    expect(measureValue("x", 0, 1)).toEqual({ depth: 0, nodes: 1, longestArray: 0 });
  });

  it("refuses values deeper or larger than asked, including 100,000-deep ones", () => {
    expect(measureValue(deep(100_000, (v) => [v]), 64, 1_000_000)).toBeUndefined();
    expect(measureValue(deep(100_000, (v) => ({ a: v })), 64, 1_000_000)).toBeUndefined();
    expect(measureValue(deep(64, (v) => [v]), 64, 1000)).toEqual({ depth: 64, nodes: 65, longestArray: 1 });
    expect(measureValue(new Array(200).fill(0), 64, 100)).toBeUndefined();
  });
});

describe("boundedJSON", () => {
  it("writes JSON.stringify's text for ordinary values", () => {
    const v = { b: [1, "x", null, true, { c: -0.5 }], a: "q\"uote", skip: undefined };
    expect(boundedJSON(v, { maxDepth: 10, maxChars: 1000 })).toEqual({ text: JSON.stringify(v), truncated: false });
  });

  it("summarises containers past maxDepth and keeps going", () => {
    expect(boundedJSON({ a: [[1]], b: 2 }, { maxDepth: 2, maxChars: 1000 })).toEqual({ text: '{"a":[[…]],"b":2}', truncated: true });
    expect(boundedJSON(deep(100_000, (v) => ({ k: v })), { maxDepth: 3, maxChars: 1000 }).text).toBe('{"k":{"k":{"k":{…}}}}');
  });

  it("stops at maxChars, also inside a huge string", () => {
    const r = boundedJSON({ s: "x".repeat(10_000_000), after: 1 }, { maxDepth: 10, maxChars: 100 });
    expect(r.text).toHaveLength(100);
    expect(r.truncated).toBe(true);
    expect(boundedJSON(new Array(1000).fill(12345), { maxDepth: 10, maxChars: 50 }).text).toHaveLength(50);
  });
});
