import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromCumulative, JUDGE_BUCKETS, judgeSamples, mannWhitney, normalUpperTail, scoreJudgements, type BucketCounts, type JudgeSettings } from "./judge.ts";

/** Raw samples (small whole numbers) as bucket counts over the buckets 0..k-1. */
function bucketize(xs: readonly number[], k: number): BucketCounts {
  const counts = new Array<number>(k).fill(0);
  for (const x of xs) counts[x]!++;
  return { counts };
}

/** U of a against b by counting every pair: the definition, independent of ranks. */
function bruteU(a: readonly number[], b: readonly number[]): number {
  let u = 0;
  for (const x of a) for (const y of b) u += x > y ? 1 : x === y ? 0.5 : 0;
  return u;
}

/** Exact one-sided P(U >= observed) under H0 by enumerating every split of the pooled samples. */
function exactPGreater(a: readonly number[], b: readonly number[]): number {
  const pooled = [...a, ...b];
  const observed = bruteU(a, b);
  let hits = 0;
  let total = 0;
  const pick = (start: number, chosen: number[]): void => {
    if (chosen.length === a.length) {
      const set = new Set(chosen);
      const left = chosen.map((i) => pooled[i]!);
      const right = pooled.filter((_, i) => !set.has(i));
      total++;
      if (bruteU(left, right) >= observed - 1e-9) hits++;
      return;
    }
    for (let i = start; i <= pooled.length - (a.length - chosen.length); i++) pick(i + 1, [...chosen, i]);
  };
  pick(0, []);
  return hits / total;
}

const settings: JudgeSettings = { direction: "either", effectSize: 0.2, alpha: 0.01, minSamples: 20 };

describe("normalUpperTail", () => {
  it("matches tabulated values of the standard normal", () => {
    expect(normalUpperTail(0)).toBeCloseTo(0.5, 7);
    expect(normalUpperTail(1.959964)).toBeCloseTo(0.025, 6);
    expect(normalUpperTail(3)).toBeCloseTo(0.0013499, 6);
    expect(normalUpperTail(-1.644854)).toBeCloseTo(0.95, 6);
  });
});

describe("mannWhitney", () => {
  it("computes U and Cliff's delta as pair counting does, ties included", () => {
    const a = [3, 4, 4, 5, 7, 7, 8, 2];
    const b = [1, 2, 2, 3, 4, 5, 5, 6];
    const mw = mannWhitney(bucketize(a, 10), bucketize(b, 10))!;
    const u = bruteU(a, b);
    expect(mw.u).toBe(u);
    expect(mw.cliffsDelta).toBeCloseTo((2 * u - 64) / 64, 12);
    expect(mw.commonLanguage).toBeCloseTo(u / 64, 12);
  });

  it("gives a one-sided p close to the exact permutation p for small samples with ties", () => {
    const a = [3, 4, 4, 5, 7, 7, 8, 6];
    const b = [1, 2, 2, 3, 4, 5, 5, 3];
    const mw = mannWhitney(bucketize(a, 10), bucketize(b, 10))!;
    const exact = exactPGreater(a, b);
    expect(exact).toBeLessThan(0.05);
    expect(Math.abs(mw.pGreater - exact)).toBeLessThan(0.01);
    expect(mw.pTwoSided).toBeCloseTo(Math.min(1, 2 * mw.pGreater), 6);
    expect(mw.pLess).toBeGreaterThan(0.95);
  });

  it("is undefined for an empty side, mismatched buckets, bad counts or no spread", () => {
    expect(mannWhitney({ counts: [0, 0] }, { counts: [1, 2] })).toBeUndefined();
    expect(mannWhitney({ counts: [1, 2] }, { counts: [1, 2, 3] })).toBeUndefined();
    expect(mannWhitney({ counts: [1, NaN] }, { counts: [1, 2] })).toBeUndefined();
    expect(mannWhitney({ counts: [1, -1] }, { counts: [1, 2] })).toBeUndefined();
    expect(mannWhitney({ counts: [0, 5] }, { counts: [0, 7] })).toBeUndefined();
  });
});

describe("judgeSamples", () => {
  it("is NoData below minSamples on either side, never Pass", () => {
    const r = judgeSamples({ counts: [5, 5] }, { counts: [50, 50] }, settings);
    expect(r.classification).toBe("NoData");
    expect(r.message).toContain("10 candidate and 100 baseline samples");
    expect(judgeSamples({ counts: [50, 50] }, { counts: [5, 5] }, settings).classification).toBe("NoData");
  });

  it("is NoData on an infinite or NaN count", () => {
    expect(judgeSamples({ counts: [50, Infinity] }, { counts: [50, 50] }, settings).classification).toBe("NoData");
    expect(judgeSamples({ counts: [50, 50] }, { counts: [NaN, 50] }, settings).classification).toBe("NoData");
  });

  it("calls a clear shift High, Low or Pass by direction", () => {
    const low = { counts: [60, 30, 10, 0] };
    const high = { counts: [0, 10, 30, 60] };
    expect(judgeSamples(high, low, settings).classification).toBe("High");
    expect(judgeSamples(low, high, settings).classification).toBe("Low");
    expect(judgeSamples(high, low, { ...settings, direction: "decrease" }).classification).toBe("Pass");
    expect(judgeSamples(low, high, { ...settings, direction: "increase" }).classification).toBe("Pass");
    const r = judgeSamples(high, low, { ...settings, direction: "increase" });
    expect(r.classification).toBe("High");
    expect(r.pValue).toBeLessThan(1e-6);
    expect(r.effectSize).toBeGreaterThan(0.5);
  });

  it("passes a significant shift smaller than the effect-size bound", () => {
    const a = { counts: [4800, 5200] };
    const b = { counts: [5200, 4800] };
    const r = judgeSamples(a, b, settings);
    expect(r.pValue).toBeLessThan(0.01);
    expect(r.classification).toBe("Pass");
    expect(r.message).toContain("below the effect-size bound");
  });

  const counts = fc.array(fc.nat({ max: 200 }), { minLength: 2, maxLength: 30 });

  it("never calls identical samples High or Low (property)", () => {
    fc.assert(
      fc.property(counts, fc.constantFrom("increase", "decrease", "either" as const), (c, direction) => {
        const r = judgeSamples({ counts: c }, { counts: [...c] }, { ...settings, direction, alpha: 0.2, effectSize: 0 });
        expect(["Pass", "NoData"]).toContain(r.classification);
      }),
    );
  });

  it("detects a shift of whole buckets with enough samples (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 3, maxLength: 20 }), fc.integer({ min: 2, max: 10 }), (c, shift) => {
        const scaled = c.map((n) => n * 20);
        const baseline = { counts: [...scaled, ...new Array<number>(shift).fill(0)] };
        const candidate = { counts: [...new Array<number>(shift).fill(0), ...scaled] };
        // Every bucket holds >= 20 samples, so a shift of >= 2 buckets leaves little overlap.
        const mw = mannWhitney(candidate, baseline)!;
        fc.pre(mw.cliffsDelta >= 0.3);
        expect(judgeSamples(candidate, baseline, { ...settings, direction: "increase" }).classification).toBe("High");
        expect(judgeSamples(baseline, candidate, { ...settings, direction: "decrease" }).classification).toBe("Low");
      }),
    );
  });
});

describe("scoreJudgements", () => {
  it("passes at or above passScore, Marginal between, Fail below", () => {
    const twenty = (fails: number) => Array.from({ length: 20 }, (_, i) => ({ name: `m${i}`, classification: i < fails ? ("High" as const) : ("Pass" as const) }));
    expect(scoreJudgements(twenty(1)).verdict).toBe("Pass");
    expect(scoreJudgements(twenty(1)).score).toBe(95);
    expect(scoreJudgements(twenty(2)).verdict).toBe("Marginal");
    expect(scoreJudgements(twenty(5)).verdict).toBe("Marginal");
    expect(scoreJudgements(twenty(6)).verdict).toBe("Fail");
  });

  it("never passes with a NoData metric, and counts it as failing", () => {
    const results = [...Array.from({ length: 30 }, (_, i) => ({ name: `m${i}`, classification: "Pass" as const })), { name: "late", classification: "NoData" as const }];
    const v = scoreJudgements(results);
    expect(v.score).toBeCloseTo((100 * 30) / 31, 9);
    expect(v.verdict).toBe("Marginal");
    expect(v.message).toContain("NoData blocks a Pass");
  });

  it("weights metrics and fails with no metrics", () => {
    const v = scoreJudgements([
      { name: "a", classification: "Pass", weight: 3 },
      { name: "b", classification: "Low", weight: 1 },
    ]);
    expect(v.score).toBe(75);
    expect(v.verdict).toBe("Marginal");
    expect(scoreJudgements([]).verdict).toBe("Fail");
  });

  it("calls a Fail proven only when it stands with every NoData counted as a pass", () => {
    expect(scoreJudgements([{ name: "a", classification: "NoData" }])).toMatchObject({ verdict: "Fail", proven: false });
    expect(scoreJudgements([{ name: "a", classification: "High" }])).toMatchObject({ verdict: "Fail", proven: true });
    expect(scoreJudgements([{ name: "a", classification: "High" }, { name: "b", classification: "NoData" }])).toMatchObject({ verdict: "Fail", proven: true });
    expect(scoreJudgements([{ name: "a", classification: "Pass", weight: 4 }, { name: "b", classification: "NoData" }, { name: "c", classification: "Low" }])).toMatchObject({ verdict: "Fail", proven: false });
  });
});

describe("fromCumulative", () => {
  it("turns le buckets in any order into per-bucket counts, rounding extrapolated counts", () => {
    expect(fromCumulative([{ le: "+Inf", value: 10.2 }, { le: "0.1", value: 2.9 }, { le: "1", value: 7 }])).toEqual({ counts: [3, 4, 3] });
  });

  it("refuses a missing +Inf, a falling cumulative count, NaN or a bad le", () => {
    expect(fromCumulative([{ le: "1", value: 3 }])).toBeUndefined();
    expect(fromCumulative([{ le: "1", value: 5 }, { le: "+Inf", value: 3 }])).toBeUndefined();
    expect(fromCumulative([{ le: "1", value: NaN }, { le: "+Inf", value: 3 }])).toBeUndefined();
    expect(fromCumulative([{ le: "x", value: 1 }, { le: "+Inf", value: 3 }])).toBeUndefined();
    expect(fromCumulative([])).toBeUndefined();
  });

  it("has log-spaced, increasing buckets from 1e-6 to 1e7", () => {
    expect(JUDGE_BUCKETS[0]).toBe(1e-6);
    expect(JUDGE_BUCKETS.at(-1)).toBe(1e7);
    for (let i = 1; i < JUDGE_BUCKETS.length; i++) expect(JUDGE_BUCKETS[i]! / JUDGE_BUCKETS[i - 1]!).toBeCloseTo(10 ** 0.1, 4);
  });
});
