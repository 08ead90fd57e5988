/**
 * Property-based tests of the noise statistics (fast-check, fixed seed, bounded runs): for any
 * sequence of candidate and noise comparisons, `mismatched` is exactly the number of candidate
 * comparisons with a mismatch in a field flagged now (recounted here by brute force over the
 * whole history), an upper bound of it once the signature table overflows (never an undercount,
 * which could pass a bad candidate), nothing is flagged before the tracker is ready, and memory
 * stays within maxPaths.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { FieldResult } from "./compare.ts";
import { NoiseTracker, OVERFLOW_PATH, type ComparisonKind } from "./noise.ts";

const SEED = 20261129;
const opts = { seed: SEED, numRuns: 200 };

const PATHS = ["$.intent", "$.summary", "$.items[*].score", "$.id", "$status", "$.a", "$.b", "$.c"];
const field = fc.record({ path: fc.constantFrom(...PATHS), match: fc.boolean() });
const comparison = fc.record({ kind: fc.constantFrom<ComparisonKind>("candidate", "candidate", "noise"), fields: fc.array(field, { maxLength: 5 }) });
const history = fc.array(comparison, { maxLength: 60 });
const options = fc.record({
  minSamples: fc.integer({ min: 0, max: 20 }),
  baseline: fc.boolean(),
  relativeThreshold: fc.double({ min: 0, max: 2, noNaN: true }),
  absoluteThreshold: fc.double({ min: 0, max: 0.2, noNaN: true }),
});

const results = (fields: readonly { path: string; match: boolean }[]): FieldResult[] =>
  fields.map((f) => ({ path: f.path, concretePath: f.path, match: f.match, rule: "equal", reason: f.match ? "equal" : "differs" }));

describe("NoiseTracker: properties", () => {
  it("counts exactly the candidate comparisons with a mismatch in a field flagged now", () => {
    fc.assert(fc.property(options, history, (o, h) => {
      const t = new NoiseTracker(o);
      for (const c of h) t.record(c.kind, results(c.fields));
      const s = t.summary(PATHS.length);
      const candidates = h.filter((c) => c.kind === "candidate");
      expect(s.compared).toBe(candidates.length);
      expect(s.noiseCompared).toBe(h.length - candidates.length);
      const expected = candidates.filter((c) => c.fields.some((f) => !f.match && t.isFlagged(f.path))).length;
      expect(s.approximate).toBe(false);
      expect(s.mismatched).toBe(expected);
      expect(s.rawMismatched).toBe(candidates.filter((c) => c.fields.some((f) => !f.match)).length);
      expect(s.mismatchRate).toBe(s.compared === 0 ? 0 : s.mismatched / s.compared);
      if (!s.ready) expect(s.mismatched).toBe(0);
      for (const row of s.topFields) expect(row.flagged).toBe(t.isFlagged(row.path));
    }), opts);
  });

  it("with the signature table and the path table overflowing, mismatched never undercounts and paths stay bounded", () => {
    const manyPaths = fc.record({ path: fc.oneof(fc.constantFrom(...PATHS), fc.nat({ max: 40 }).map((i) => `$.k${i}`)), match: fc.boolean() });
    const big = fc.array(fc.record({ kind: fc.constantFrom<ComparisonKind>("candidate", "noise"), fields: fc.array(manyPaths, { maxLength: 6 }) }), { maxLength: 80 });
    fc.assert(fc.property(options, big, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), (o, h, maxPaths, maxSignatures) => {
      const t = new NoiseTracker({ ...o, maxPaths, maxSignatures });
      // Paths beyond the first maxPaths distinct ones are pooled, as the tracker does.
      const tracked: string[] = [];
      const pooled = (p: string): string => {
        if (tracked.includes(p)) return p;
        if (tracked.length < maxPaths) {
          tracked.push(p);
          return p;
        }
        return OVERFLOW_PATH;
      };
      const pooledHistory = h.map((c) => ({ kind: c.kind, paths: c.fields.map((f) => ({ path: pooled(f.path), match: f.match })) }));
      for (const c of h) t.record(c.kind, results(c.fields));
      const s = t.summary();
      expect(s.trackedPaths).toBeLessThanOrEqual(maxPaths);
      const exact = pooledHistory.filter((c) => c.kind === "candidate" && c.paths.some((f) => !f.match && t.isFlagged(f.path))).length;
      if (s.approximate) expect(s.mismatched).toBeGreaterThanOrEqual(exact);
      else expect(s.mismatched).toBe(exact);
      expect(s.mismatched).toBeLessThanOrEqual(s.compared);
    }), opts);
  });
});
