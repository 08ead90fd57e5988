import { describe, expect, it } from "vitest";
import { jaccardSimilarity, levenshteinDistance, levenshteinSimilarity, maxDistanceFor, tokenSet } from "./similarity.ts";

/** Textbook O(n*m) Levenshtein, the reference for the banded implementation. */
function naiveLevenshtein(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      rows[i]![j] = i === 0 ? j : Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return rows[a.length]![b.length]!;
}

/** Deterministic PRNG (mulberry32) so property checks are reproducible. */
function rng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

describe("tokenSet", () => {
  it.each([
    { text: "Hello, World! hello", tokens: ["hello", "world"] },
    { text: "order #123-456", tokens: ["order", "123", "456"] },
    { text: "Grüße aus Köln", tokens: ["grüße", "aus", "köln"] },
    { text: "  ...  ", tokens: [] },
  ])("$text", ({ text, tokens }) => {
    expect([...tokenSet(text)]).toEqual(tokens);
  });
});

describe("tokenSet fast path", () => {
  it("splits ASCII exactly like the Unicode expression", () => {
    const next = rng(3);
    const chars = "abcXYZ019 .,-_'!?\t\n";
    for (let n = 0; n < 500; n++) {
      const text = Array.from({ length: Math.floor(next() * 40) }, () => chars[Math.floor(next() * chars.length)]).join("");
      const reference = new Set([...text.toLowerCase().matchAll(/[\p{L}\p{N}]+/gu)].map((m) => m[0]));
      expect([...tokenSet(text)], JSON.stringify(text)).toEqual([...reference]);
    }
  });
});

describe("jaccardSimilarity", () => {
  it.each([
    { a: "", b: "", sim: 1 },
    { a: "!!", b: "", sim: 1 },
    { a: "a", b: "", sim: 0 },
    { a: "a b", b: "b a", sim: 1 },
    { a: "a b c", b: "a b d", sim: 0.5 },
    { a: "a a a b", b: "a b", sim: 1 },
    { a: "x", b: "y", sim: 0 },
    { a: "The Cat", b: "the cat.", sim: 1 },
  ])("$a | $b -> $sim", ({ a, b, sim }) => {
    expect(jaccardSimilarity(a, b)).toBeCloseTo(sim, 10);
    expect(jaccardSimilarity(b, a)).toBeCloseTo(sim, 10);
  });
});

describe("levenshtein", () => {
  it.each([
    { a: "", b: "", d: 0 },
    { a: "", b: "abc", d: 3 },
    { a: "kitten", b: "sitting", d: 3 },
    { a: "flaw", b: "lawn", d: 2 },
    { a: "abc", b: "abc", d: 0 },
    { a: "prefix-middle-suffix", b: "prefix-MIDDLE-suffix", d: 6 },
    { a: "a", b: "b", d: 1 },
  ])("distance($a, $b) = $d", ({ a, b, d }) => {
    expect(levenshteinDistance(a, b)).toBe(d);
    expect(levenshteinDistance(b, a)).toBe(d);
  });

  it("agrees with the textbook algorithm, and with min(d, k + 1) when banded", () => {
    const next = rng(42);
    const alphabet = "abcd";
    const word = () => Array.from({ length: Math.floor(next() * 14) }, () => alphabet[Math.floor(next() * alphabet.length)]).join("");
    for (let n = 0; n < 2000; n++) {
      const a = word();
      const b = word();
      const d = naiveLevenshtein(a, b);
      expect(levenshteinDistance(a, b), `${a} ${b}`).toBe(d);
      const k = Math.floor(next() * 8);
      expect(levenshteinDistance(a, b, k), `${a} ${b} k=${k}`).toBe(Math.min(d, k + 1));
    }
  });

  it("normalises similarity by the longer text", () => {
    expect(levenshteinSimilarity("", "")).toBe(1);
    expect(levenshteinSimilarity("kitten", "sitting")).toBeCloseTo(1 - 3 / 7, 10);
    expect(levenshteinSimilarity("abc", "xyz")).toBe(0);
  });

  it("gives up early on long, clearly different texts (a full 200,000 x 200,000 table would hit the test timeout)", () => {
    const a = "a".repeat(200_000);
    const b = "b".repeat(200_000);
    expect(levenshteinDistance(a, b, 10)).toBe(11);
  });

  it.each([
    { min: 0.8, longest: 10, k: 2 },
    { min: 0.7, longest: 10, k: 3 },
    { min: 1, longest: 10, k: 0 },
    { min: 0, longest: 10, k: 10 },
    { min: 0.5, longest: 7, k: 3 },
  ])("maxDistanceFor($min, $longest) = $k", ({ min, longest, k }) => {
    expect(maxDistanceFor(min, longest)).toBe(k);
  });
});
