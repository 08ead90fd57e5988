/**
 * Analysis steps pass early (assess.ts earlyPass, judge.ts nonInferiority): a threshold metric
 * only when its outcome is settled, a judge metric when its confidence bound is conclusive, and
 * never before one successful measurement or a judge's minSamples per side.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { earlyPass, newMetricStatus, recordMeasurement, type Measurement, type MeasurementPhase, type MetricLimits, type MetricStatus } from "./assess.ts";
import { judgeSamples, nonInferiority, normalUpperQuantile, normalUpperTail, type BucketCounts } from "./judge.ts";
import { seededRandom } from "../../../test/support/random.ts";

const T = "2025-01-01T00:00:00.000Z";
const m = (phase: MeasurementPhase, judge?: Measurement["judge"]): Measurement => ({ time: T, phase, ...(judge ? { judge } : {}) });
const fold = (phases: readonly Measurement[], limits: MetricLimits): MetricStatus => phases.reduce((s, x) => recordMeasurement(s, x, limits), newMetricStatus("m"));
const limits = (count: number | undefined, failureLimit: number, inconclusiveLimit: number): MetricLimits => ({ count, failureLimit, inconclusiveLimit, consecutiveErrorLimit: 4 });

describe("earlyPass: a threshold metric passes before its count only when settled", () => {
  it.each<[string, MeasurementPhase[], MetricLimits, string, RegExp]>([
    ["settled: the 2 left cannot exceed either limit", ["Successful"], limits(3, 2, 2), "Successful", /passed early: settled after 1 of 3 measurements \(1 successful\): the 2 left could not exceed failureLimit 2 or inconclusiveLimit 2/],
    ["not settled: one inconclusive left would exceed inconclusiveLimit 0", ["Successful"], limits(3, 2, 0), "Running", /^$/],
    ["not settled: failureLimit 0 leaves any later failure decisive", ["Successful", "Successful", "Successful", "Successful"], limits(5, 0, 0), "Running", /^$/],
    ["failureLimit 0 reaches its count as before", ["Successful", "Successful", "Successful", "Successful", "Successful"], limits(5, 0, 0), "Successful", /^count 5 reached: 5 successful/],
    ["no successful measurement yet: never early, however settled", ["Failed"], limits(3, 5, 5), "Running", /^$/],
    ["no count (background): runs until its step ends", ["Successful", "Successful"], limits(undefined, 9, 9), "Running", /^$/],
    ["errors are not measurements: settled on the judged ones", ["Error", "Successful", "Error"], limits(2, 1, 1), "Successful", /passed early: settled after 1 of 2/],
  ])("%s", (_name, phases, l, phase, message) => {
    const s = fold(phases.map((p) => m(p)), l);
    expect(s.phase).toBe(phase);
    expect(phase === "Running" ? "" : s.message).toMatch(message);
  });

  /** The full-count rule, written out independently: what the metric decides without early passes. */
  function fullCount(phases: readonly MeasurementPhase[], l: MetricLimits): string {
    let failed = 0;
    let inconclusive = 0;
    let successful = 0;
    for (const p of phases.slice(0, l.count)) {
      if (p === "Failed" && ++failed > l.failureLimit) return "Failed";
      if (p === "Inconclusive" && ++inconclusive > l.inconclusiveLimit) return "Inconclusive";
      if (p === "Successful") successful++;
    }
    return successful > 0 ? "Successful" : failed > 0 ? "Failed" : "Inconclusive";
  }

  it("never decides otherwise than the full count would (any limits, any judged measurements)", () => {
    const judgedPhase = fc.constantFrom<MeasurementPhase>("Successful", "Failed", "Inconclusive");
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 }), fc.array(judgedPhase, { minLength: 12, maxLength: 12 }), (count, fl, il, phases) => {
        const l = limits(count, fl, il);
        const s = fold(phases.map((p) => m(p)), l);
        expect(s.phase).toBe(fullCount(phases, l));
      }),
      { numRuns: 2000, seed: 20261129 },
    );
  });

  it("passes early at the first measurement after which no remaining measurements could change the outcome", () => {
    const judgedPhase = fc.constantFrom<MeasurementPhase>("Successful", "Failed", "Inconclusive");
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 10 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 10 }), fc.array(judgedPhase, { minLength: 1, maxLength: 9 }), (count, fl, il, phases) => {
        const l = limits(count, fl, il);
        let s = newMetricStatus("m");
        for (let k = 1; k <= Math.min(phases.length, count - 1) && s.phase !== "Successful" && s.phase !== "Failed" && s.phase !== "Inconclusive"; k++) {
          const prefix = phases.slice(0, k);
          s = recordMeasurement(s, m(prefix.at(-1)!), l);
          const rest = count - k;
          const count_ = (p: MeasurementPhase) => prefix.filter((x) => x === p).length;
          const settled = count_("Successful") > 0 && count_("Failed") + rest <= fl && count_("Inconclusive") + rest <= il;
          if (s.phase !== "Running" && s.phase !== "Successful") continue;
          expect(s.phase === "Successful").toBe(settled);
          // Every way the remaining measurements could go leads the full-count rule to Successful.
          if (settled) for (const p of ["Successful", "Failed", "Inconclusive"] as const) expect(fullCount([...prefix, ...Array<MeasurementPhase>(rest).fill(p)], l)).toBe("Successful");
        }
      }),
      { numRuns: 2000, seed: 7 },
    );
  });
});

describe("earlyPass: a judge metric passes early on a conclusive Pass", () => {
  const pass = (conclusive: boolean): Measurement => m("Successful", { classification: "Pass", weight: 1, ...(conclusive ? { conclusive: true, deltaBound: 0.1 } : {}) });

  it("a conclusive Pass ends the metric before its count, saying so; an ordinary Pass does not", () => {
    const l = limits(3, 0, 0);
    const early = fold([pass(true)], l);
    expect(early.phase).toBe("Successful");
    expect(early.message).toMatch(/^passed early: conclusive after 1 of 3 measurements/);
    expect(fold([pass(false)], l).phase).toBe("Running");
    expect(fold([pass(false), pass(true)], l).message).toMatch(/conclusive after 2 of 3/);
  });

  it("a conclusive flag on anything but a Successful measurement, or without a count, passes nothing", () => {
    expect(earlyPass({ ...newMetricStatus("m"), successful: 1 }, m("Failed", { classification: "High", conclusive: true }), limits(3, 5, 0))).toBeUndefined();
    expect(fold([pass(true)], limits(undefined, 0, 0)).phase).toBe("Running");
  });
});

describe("nonInferiority: the judge's confidence bound", () => {
  it("normalUpperQuantile inverts normalUpperTail", () => {
    for (const p of [0.001, 0.01, 0.025, 0.05, 0.5, 0.9]) expect(normalUpperTail(normalUpperQuantile(p))).toBeCloseTo(p, 7);
    expect(normalUpperQuantile(0.01)).toBeCloseTo(2.3263, 3);
    expect(normalUpperQuantile(0)).toBeNaN();
    expect(normalUpperQuantile(1)).toBeNaN();
  });

  it("states the bound: delta + 2 z sqrt(theta0 (1 - theta0) / min(n)) against the effect-size bound, per direction", () => {
    // z(0.01) = 2.326, theta0 = 0.6, min n = 400: spread = 2 * 2.326 * sqrt(0.24 / 400) = 0.1140.
    const up = nonInferiority({ nA: 400, nB: 500, cliffsDelta: 0.05 }, { direction: "increase", effectSize: 0.2, alpha: 0.01 });
    expect(up.deltaBound).toBeCloseTo(0.05 + 0.114, 3);
    expect(up.conclusive).toBe(true);
    expect(up.text).toBe("the 99% upper bound of Cliff's delta, 0.164, is below 0.2");
    expect(nonInferiority({ nA: 400, nB: 500, cliffsDelta: 0.09 }, { direction: "increase", effectSize: 0.2, alpha: 0.01 }).conclusive).toBe(false);
    const down = nonInferiority({ nA: 400, nB: 400, cliffsDelta: -0.05 }, { direction: "decrease", effectSize: 0.2, alpha: 0.01 });
    expect(down.deltaBound).toBeCloseTo(-0.164, 3);
    expect(down.conclusive).toBe(true);
    // either: two one-sided tests, both must hold.
    expect(nonInferiority({ nA: 400, nB: 400, cliffsDelta: 0.05 }, { direction: "either", effectSize: 0.2, alpha: 0.01 }).conclusive).toBe(true);
    expect(nonInferiority({ nA: 400, nB: 400, cliffsDelta: -0.1 }, { direction: "either", effectSize: 0.2, alpha: 0.01 }).conclusive).toBe(false);
    // An effect-size bound of 1 leaves no variance to test with: nothing is conclusive.
    expect(nonInferiority({ nA: 400, nB: 400, cliffsDelta: 0 }, { direction: "increase", effectSize: 1, alpha: 0.01 }).conclusive).toBe(false);
  });

  // Two normal samples, the candidate shifted by mu: Cliff's delta is 2 Phi(mu / sqrt 2) - 1.
  // Bucketed finely (0.05 wide over -6..7) so ties are negligible.
  const BUCKETS = 260;
  const gaussian = (rand: () => number): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const draw = (rand: () => number, n: number, mu: number): BucketCounts => {
    const counts = new Array<number>(BUCKETS).fill(0);
    for (let i = 0; i < n; i++) counts[Math.max(0, Math.min(BUCKETS - 1, Math.floor((gaussian(rand) + mu + 6) / 0.05)))]!++;
    return { counts };
  };
  // Phi(mu / sqrt 2) = 0.6, i.e. a true Cliff's delta of exactly 0.2.
  const AT_BOUND = Math.SQRT2 * 0.253347;

  it("a candidate exactly at the effect-size bound passes early in at most alpha of 2,000 trials (the false-pass rate)", () => {
    const rand = seededRandom(20261129);
    const settings = { direction: "increase" as const, effectSize: 0.2, alpha: 0.01, minSamples: 50 };
    let early = 0;
    for (let t = 0; t < 2000; t++) if (judgeSamples(draw(rand, 200, AT_BOUND), draw(rand, 200, 0), settings).conclusive) early++;
    // The bound is conservative (van Dantzig's variance is the largest possible), so well within 1%.
    expect(early / 2000).toBeLessThanOrEqual(0.01);
  });

  it("a null candidate passes early in at least 95% of trials with 400 samples a side, never with fewer than minSamples", () => {
    const rand = seededRandom(11);
    const settings = { direction: "increase" as const, effectSize: 0.2, alpha: 0.01, minSamples: 50 };
    let early = 0;
    for (let t = 0; t < 500; t++) if (judgeSamples(draw(rand, 400, 0), draw(rand, 400, 0), settings).conclusive) early++;
    expect(early / 500).toBeGreaterThanOrEqual(0.95);
    const few = judgeSamples(draw(rand, 49, 0), draw(rand, 400, 0), settings);
    expect(few.classification).toBe("NoData");
    expect(few.conclusive).toBe(false);
  });

  it("a High or Low classification is never conclusive, and the Pass message names the bound", () => {
    const rand = seededRandom(3);
    const settings = { direction: "increase" as const, effectSize: 0.2, alpha: 0.01, minSamples: 50 };
    const high = judgeSamples(draw(rand, 400, 1.5), draw(rand, 400, 0), settings);
    expect(high.classification).toBe("High");
    expect(high.conclusive).toBe(false);
    const ok = judgeSamples(draw(rand, 2000, 0), draw(rand, 2000, 0), settings);
    expect(ok.conclusive).toBe(true);
    expect(ok.message).toMatch(/; conclusive: the 99% upper bound of Cliff's delta, [0-9.e-]+, is below 0.2$/);
  });
});
