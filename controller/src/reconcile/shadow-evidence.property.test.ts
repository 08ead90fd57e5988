/**
 * Property-based tests of the shadow step's sequential rule (fast-check, fixed seed, bounded
 * runs): a candidate exactly at the limit is rarely stopped early however often the evidence is
 * read (the 1% holds over the whole step, not per read), a clear regression is stopped early, a
 * clearly better candidate is passed early, and the verdicts are consistent (never both, and more
 * mismatches never turn a stop into a pass).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { judgeShadow, sequentialTest, SEQUENTIAL_ALPHA, wilsonLowerBound, type ShadowRule } from "./shadow-evidence.ts";
import { seededRandom } from "../../../test/support/random.ts";

const SEED = 20261129;


const LOOKS = 80;
const PER_LOOK = 25;

/**
 * Simulates `steps` shadow steps of LOOKS reads, PER_LOOK comparisons apart, at mismatch
 * probability p, and counts the steps that `decide` stopped (or passed) before the last read.
 */
function earlyDecisions(p: number, limit: number, seed: number, steps: number, decide: (m: number, n: number) => "stop" | "pass" | undefined): { stops: number; passes: number } {
  const next = seededRandom(seed);
  let stops = 0;
  let passes = 0;
  for (let s = 0; s < steps; s++) {
    let m = 0;
    for (let look = 1; look < LOOKS; look++) {
      for (let i = 0; i < PER_LOOK; i++) if (next() < p) m++;
      const d = decide(m, look * PER_LOOK);
      if (d === "stop") stops++;
      if (d === "pass") passes++;
      if (d !== undefined) break;
    }
  }
  return { stops, passes };
}

const rule = (limit: number): ShadowRule => ({ minSamples: 100, baseline: false, maxMismatchRate: limit });
const viaJudge = (limit: number) => (m: number, n: number) => {
  const v = judgeShadow({ compared: n, noiseCompared: 0, mismatched: m, judged: n >= 100 }, rule(limit), false);
  return v.kind === "fail" ? "stop" : v.kind === "pass" ? "pass" : undefined;
};
const limits = fc.constantFrom(0.01, 0.02, 0.05, 0.1, 0.2);

describe("the sequential rule over many reads", () => {
  it("a candidate exactly at the limit is rarely stopped or passed early, over 79 reads per step", () => {
    let total = 0;
    let early = 0;
    fc.assert(
      fc.property(limits, fc.integer({ min: 1, max: 2 ** 31 - 1 }), (limit, seed) => {
        const { stops, passes } = earlyDecisions(limit, limit, seed, 100, viaJudge(limit));
        total += 100;
        early += stops;
        // Binomial(100, 1%) reaches 6 with probability below 0.001: more is a broken bound.
        expect(stops).toBeLessThanOrEqual(5);
        expect(passes).toBeLessThanOrEqual(5);
      }),
      { seed: SEED, numRuns: 20 },
    );
    expect(early / total).toBeLessThanOrEqual(SEQUENTIAL_ALPHA);
  });

  it("control: the old per-read 99% Wilson bound, in the same simulation, stops far more than 1% at the limit", () => {
    const wilson = (limit: number) => (m: number, n: number) => (n >= 100 && wilsonLowerBound(m, n) > limit ? "stop" : undefined);
    const { stops } = earlyDecisions(0.1, 0.1, SEED, 1000, wilson(0.1));
    expect(stops / 1000).toBeGreaterThan(0.03);
  });

  it("a clear regression (3x the limit's odds) is stopped early in nearly every step", () => {
    fc.assert(
      fc.property(limits, fc.integer({ min: 1, max: 2 ** 31 - 1 }), (limit, seed) => {
        const p = (3 * limit) / (1 - limit + 3 * limit);
        const { stops } = earlyDecisions(p, limit, seed, 50, viaJudge(limit));
        expect(stops).toBeGreaterThanOrEqual(48);
      }),
      { seed: SEED, numRuns: 20 },
    );
  });

  it("a clearly better candidate (a third of the limit's odds) is passed early in nearly every step", () => {
    // Proving a rate below a 1-2% limit takes more than these 2,000 comparisons (few events):
    // those steps run to their end, which is allowed; they are never passed early on less.
    fc.assert(
      fc.property(fc.constantFrom(0.05, 0.1, 0.2), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (limit, seed) => {
        const p = limit / 3 / (1 - limit + limit / 3);
        const { passes, stops } = earlyDecisions(p, limit, seed, 50, viaJudge(limit));
        expect(passes).toBeGreaterThanOrEqual(48);
        expect(stops).toBe(0);
      }),
      { seed: SEED, numRuns: 20 },
    );
  });
});

describe("the sequential rule is consistent", () => {
  const counts = fc.integer({ min: 1, max: 20_000 }).chain((n) => fc.tuple(fc.integer({ min: 0, max: n }), fc.constant(n)));
  const limit = fc.double({ min: 0.001, max: 0.999, noNaN: true });

  it("never concludes both ways, and stops only above the limit / passes only below it", () => {
    fc.assert(
      fc.property(counts, limit, ([m, n], l) => {
        const r = sequentialTest(m, n, l);
        expect(r.stopRatio >= 1 / SEQUENTIAL_ALPHA && r.passRatio >= 1 / SEQUENTIAL_ALPHA).toBe(false);
        if (r.decision === "stop") expect(m / n).toBeGreaterThan(l);
        if (r.decision === "pass") expect(m / n).toBeLessThan(l);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it("one more mismatch never turns a stop into anything else", () => {
    fc.assert(
      fc.property(counts, limit, ([m, n], l) => {
        fc.pre(m < n);
        if (sequentialTest(m, n, l).decision === "stop") expect(sequentialTest(m + 1, n, l).decision).toBe("stop");
        if (sequentialTest(m + 1, n, l).decision === "pass") expect(sequentialTest(m, n, l).decision).toBe("pass");
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});
