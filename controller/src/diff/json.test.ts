import { describe, expect, it } from "vitest";
import { canonicalJSON, formatNumber, kindOf, preview, roundSignificant } from "./json.ts";

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
