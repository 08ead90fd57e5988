/**
 * The statistical judge (Kayenta-style): compares the candidate's distribution of a signal
 * (latency, tokens, cost, a numeric answer field) with its baseline's over the same window.
 * Pure: bucket counts in, a classification out.
 *
 * The samples arrive as histogram bucket counts (the gateway's airollout_judge_sample, summed over
 * replicas by Prometheus; docs/adr/0010-judge-samples.md), so the test is the Mann-Whitney U test
 * on grouped data: every sample in one bucket ties with the others in it and takes the bucket's
 * midrank, and the variance carries the usual tie correction. The p-value comes from the normal
 * approximation with a continuity correction, which is accurate at the sample sizes the judge
 * demands (minSamples per side).
 *
 * A significant p-value alone is not a regression: with thousands of samples a negligible shift is
 * significant. So a side is High or Low only when the effect size (Cliff's delta, the probability
 * that a candidate sample is above a baseline one minus the reverse) also passes its bound.
 *
 * Fail closed: too few samples on either side, or a count that is negative, NaN, infinite or not
 * monotone is NoData, and NoData is never a pass.
 */

/** Which change counts as a regression. */
export type Direction = "increase" | "decrease" | "either";

/** A metric's classification. High/Low: the candidate is significantly above/below the baseline. */
export type Classification = "Pass" | "High" | "Low" | "NoData";

/** One side's samples as histogram buckets: `counts[i]` samples fell in bucket i (ordered). */
export interface BucketCounts {
  readonly counts: readonly number[];
}

/** The settings of one judged metric. */
export interface JudgeSettings {
  direction: Direction;
  /** Smallest |Cliff's delta| that counts as a real change, in [0, 1]. */
  effectSize: number;
  /** Significance level of the test, in (0, 1). */
  alpha: number;
  /** Samples each side needs before anything is judged. */
  minSamples: number;
}

/** The outcome of the Mann-Whitney U test of candidate (A) against baseline (B). */
export interface MannWhitney {
  nA: number;
  nB: number;
  /** U of the candidate: pairs with A > B, plus half the ties. */
  u: number;
  /** Standard score of U (continuity corrected towards 0 for the two-sided test). */
  z: number;
  /** P(A > B) - P(A < B), in [-1, 1]. */
  cliffsDelta: number;
  /** P(A > B) + P(A = B) / 2: the common-language effect size, 0.5 for identical samples. */
  commonLanguage: number;
  /** P-values: two-sided, and one-sided for A above (greater) and A below (less). */
  pTwoSided: number;
  pGreater: number;
  pLess: number;
}

/** A judged metric. */
export interface JudgeResult {
  classification: Classification;
  /**
   * A Pass that is conclusive (nonInferiority): the confidence bound of Cliff's delta lies inside
   * the effect-size bound on the regression side, so the step may pass on it before its count.
   */
  conclusive: boolean;
  /** The confidence bound of Cliff's delta on the regression side (NaN unless judged). */
  deltaBound: number;
  /** The p-value the direction asks for (NaN for NoData). */
  pValue: number;
  /** Cliff's delta (NaN for NoData). */
  effectSize: number;
  nCandidate: number;
  nBaseline: number;
  /** Why, in a sentence for status. */
  message: string;
}

/** Standard normal upper tail P(Z > z), by the complementary error function (Numerical Recipes erfc, rel. error < 1.2e-7). */
export function normalUpperTail(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  const upper = erfc / 2;
  return z >= 0 ? upper : 1 - upper;
}

/** Whether a bucket count list is usable: every count a finite number >= 0. */
function validCounts(c: BucketCounts): boolean {
  return c.counts.every((n) => Number.isFinite(n) && n >= 0);
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/**
 * Mann-Whitney U of candidate A against baseline B, both bucketed over the same buckets.
 * Returns undefined when either side is empty, the bucket lists differ in length, a count is
 * not a finite number >= 0, or every sample ties (no variance: nothing to test).
 */
export function mannWhitney(a: BucketCounts, b: BucketCounts): MannWhitney | undefined {
  if (a.counts.length !== b.counts.length || !validCounts(a) || !validCounts(b)) return undefined;
  const nA = sum(a.counts);
  const nB = sum(b.counts);
  if (nA === 0 || nB === 0) return undefined;
  const n = nA + nB;
  let below = 0;
  let rankSumA = 0;
  let tieTerm = 0;
  for (let i = 0; i < a.counts.length; i++) {
    const t = a.counts[i]! + b.counts[i]!;
    if (t === 0) continue;
    rankSumA += a.counts[i]! * (below + (t + 1) / 2);
    tieTerm += t * t * t - t;
    below += t;
  }
  const u = rankSumA - (nA * (nA + 1)) / 2;
  const mean = (nA * nB) / 2;
  const variance = ((nA * nB) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (!(variance > 0)) return undefined;
  const sd = Math.sqrt(variance);
  const diff = u - mean;
  const z = diff === 0 ? 0 : (diff - 0.5 * Math.sign(diff)) / sd;
  const pGreater = normalUpperTail((diff - 0.5) / sd);
  const pLess = 1 - normalUpperTail((diff + 0.5) / sd);
  const pTwoSided = Math.min(1, 2 * normalUpperTail(Math.abs(z)));
  const cliffsDelta = (2 * u - nA * nB) / (nA * nB);
  return { nA, nB, u, z, cliffsDelta, commonLanguage: u / (nA * nB), pTwoSided, pGreater, pLess };
}

const fmt = (x: number): string => (Number.isFinite(x) ? Number(x.toPrecision(3)).toString() : String(x));

/**
 * Judges one metric: NoData below minSamples on either side or on unusable counts; otherwise
 * High/Low when the direction's p-value is below alpha and Cliff's delta passes the effect-size
 * bound on that side, else Pass. A change in the direction that is not a regression is Pass.
 */
export function judgeSamples(candidate: BucketCounts, baseline: BucketCounts, s: JudgeSettings): JudgeResult {
  const nC = validCounts(candidate) ? sum(candidate.counts) : NaN;
  const nB = validCounts(baseline) ? sum(baseline.counts) : NaN;
  const noData = (why: string): JudgeResult => ({ classification: "NoData", conclusive: false, deltaBound: NaN, pValue: NaN, effectSize: NaN, nCandidate: nC, nBaseline: nB, message: `NoData: ${why}` });
  if (Number.isNaN(nC) || Number.isNaN(nB)) return noData("a bucket count is negative, NaN or infinite");
  if (candidate.counts.length !== baseline.counts.length) return noData("candidate and baseline buckets differ");
  if (nC < s.minSamples || nB < s.minSamples) {
    return noData(`${nC} candidate and ${nB} baseline samples; minSamples is ${s.minSamples} per side`);
  }
  const mw = mannWhitney(candidate, baseline);
  if (mw === undefined) return noData("every sample falls in one bucket: no spread to test");
  const delta = mw.cliffsDelta;
  const up = s.direction === "increase" ? mw.pGreater : s.direction === "decrease" ? mw.pLess : mw.pTwoSided;
  const bound = nonInferiority(mw, s);
  const result = (classification: Classification, why: string): JudgeResult => ({
    classification,
    conclusive: classification === "Pass" && bound.conclusive,
    deltaBound: bound.deltaBound,
    pValue: up,
    effectSize: delta,
    nCandidate: nC,
    nBaseline: nB,
    message: `${classification}: p=${fmt(up)} (alpha ${s.alpha}, ${s.direction}), Cliff's delta ${fmt(delta)} (bound ${s.effectSize}), n=${nC} candidate / ${nB} baseline${why}`,
  });
  const significant = up < s.alpha;
  if (significant && delta >= s.effectSize && s.direction !== "decrease") return result("High", "");
  if (significant && delta <= -s.effectSize && s.direction !== "increase") return result("Low", "");
  const conclusive = bound.conclusive ? `; conclusive: ${bound.text}` : "";
  return result("Pass", `${significant ? ": significant but below the effect-size bound" : ""}${conclusive}`);
}

/** z with P(Z > z) = p, for 0 < p < 1, by bisection on normalUpperTail (monotone; 1e-9 is plenty). */
export function normalUpperQuantile(p: number): number {
  if (!(p > 0 && p < 1)) return NaN;
  let lo = -40;
  let hi = 40;
  for (let i = 0; i < 100 && hi - lo > 1e-9; i++) {
    const mid = (lo + hi) / 2;
    if (normalUpperTail(mid) > p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The non-inferiority test of a Pass: whether its bound is conclusive, the bound, and a sentence. */
export interface NonInferiority {
  conclusive: boolean;
  /** The one-sided (1 - alpha) confidence bound of Cliff's delta on the regression side (both sides' nearer one for `either`). */
  deltaBound: number;
  text: string;
}

/**
 * The early-pass rule of a judge metric (docs/adr/0011, addendum): a candidate is shown *not*
 * to regress when the one-sided (1 - alpha) confidence bound of Cliff's delta on the regression
 * side lies strictly inside the effect-size bound e (for `either`, both sides: two one-sided
 * tests). The bound is delta + 2 z_alpha sqrt(theta0 (1 - theta0) / min(nA, nB)) with
 * theta0 = (1 + e) / 2: the largest variance U / (nA nB) can have when the true delta is at the
 * bound (van Dantzig: Var <= theta (1 - theta) / min(nA, nB), for any distributions), so a
 * candidate whose true delta is e or more passes this way with probability at most about alpha.
 * An effect-size bound of 1 leaves no variance to test with and concludes nothing.
 */
export function nonInferiority(mw: Pick<MannWhitney, "nA" | "nB" | "cliffsDelta">, s: Pick<JudgeSettings, "direction" | "effectSize" | "alpha">): NonInferiority {
  const theta0 = (1 + s.effectSize) / 2;
  const z = normalUpperQuantile(s.alpha);
  const n = Math.min(mw.nA, mw.nB);
  const spread = 2 * z * Math.sqrt((theta0 * (1 - theta0)) / n);
  if (!(spread > 0) || !Number.isFinite(spread) || !Number.isFinite(mw.cliffsDelta)) {
    return { conclusive: false, deltaBound: NaN, text: "no variance to bound the effect with" };
  }
  const upper = mw.cliffsDelta + spread;
  const lower = mw.cliffsDelta - spread;
  const upOk = upper < s.effectSize;
  const downOk = lower > -s.effectSize;
  const level = `${fmt(100 * (1 - s.alpha))}%`;
  if (s.direction === "increase") return { conclusive: upOk, deltaBound: upper, text: `the ${level} upper bound of Cliff's delta, ${fmt(upper)}, is below ${s.effectSize}` };
  if (s.direction === "decrease") return { conclusive: downOk, deltaBound: lower, text: `the ${level} lower bound of Cliff's delta, ${fmt(lower)}, is above -${s.effectSize}` };
  const nearer = upper - s.effectSize > -s.effectSize - lower ? upper : lower;
  return { conclusive: upOk && downOk, deltaBound: nearer, text: `the ${level} bounds of Cliff's delta, ${fmt(lower)} .. ${fmt(upper)}, are within ±${s.effectSize}` };
}

/** Thresholds of the combined score, in percent. */
export interface ScoreThresholds {
  passScore: number;
  marginalScore: number;
}

/** The default thresholds (Kayenta's usual 95 / 75). */
export const DEFAULT_SCORE: ScoreThresholds = { passScore: 95, marginalScore: 75 };

/** The combined verdict of several judged metrics. */
export interface Verdict {
  /** Weighted share of Pass metrics, 0..100 (NoData and High/Low count as failing). */
  score: number;
  verdict: "Pass" | "Marginal" | "Fail";
  /**
   * Whether a Fail stands even if every NoData metric had passed: the failure is proven by
   * High/Low evidence, not only by missing evidence (which should pause, not roll back).
   */
  proven: boolean;
  message: string;
}

/**
 * Combines classifications into a score (weighted Pass share, in percent) and a verdict: Pass at
 * or above passScore with no NoData metric, Marginal at or above marginalScore, else Fail. No
 * metrics at all, or a total weight that is not positive, is Fail: there is no evidence.
 */
export function scoreJudgements(results: readonly { name: string; classification: Classification; weight?: number }[], t: ScoreThresholds = DEFAULT_SCORE): Verdict {
  const total = sum(results.map((r) => r.weight ?? 1));
  if (results.length === 0 || !(total > 0)) return { score: 0, verdict: "Fail", proven: false, message: "no judged metrics: no evidence" };
  const passed = sum(results.filter((r) => r.classification === "Pass").map((r) => r.weight ?? 1));
  const score = (100 * passed) / total;
  const noData = results.filter((r) => r.classification === "NoData").map((r) => r.name);
  const failing = results.filter((r) => r.classification !== "Pass").map((r) => `${r.name} ${r.classification}`);
  const detail = failing.length > 0 ? ` (${failing.join(", ")})` : "";
  let verdict: Verdict["verdict"];
  if (score >= t.passScore && noData.length === 0) verdict = "Pass";
  else if (score >= t.marginalScore) verdict = "Marginal";
  else verdict = "Fail";
  const blocked = score >= t.passScore && noData.length > 0 ? "; NoData blocks a Pass" : "";
  const optimistic = (100 * sum(results.filter((r) => r.classification === "Pass" || r.classification === "NoData").map((r) => r.weight ?? 1))) / total;
  const proven = verdict === "Fail" && optimistic < t.marginalScore;
  return { score, verdict, proven, message: `score ${fmt(score)} (pass ${t.passScore}, marginal ${t.marginalScore})${detail}${blocked}: ${verdict}` };
}

/**
 * The judge's fixed bucket upper bounds: 10 per decade from 1e-6 to 1e7, log-spaced, shared by
 * every signal (seconds, tokens, currency units, answer fields) so the gateway's histogram has a
 * bounded number of series. Values at or below 1e-6 (zero, negatives) share the first bucket.
 */
export const JUDGE_BUCKETS: readonly number[] = Array.from({ length: 131 }, (_, i) => Number((10 ** (i / 10 - 6)).toPrecision(6)));

/**
 * Turns Prometheus's cumulative `le` buckets (one series per bound, +Inf included) into
 * per-bucket counts. Counts from increase() are extrapolated, so they are rounded; a cumulative
 * count that falls by more than rounding explains, or a missing +Inf, makes the result undefined
 * (NoData upstream). Series are matched by their `le` value, whatever order they came in.
 */
export function fromCumulative(series: readonly { le: string; value: number }[]): BucketCounts | undefined {
  const parsed = series.map((s) => ({ le: s.le === "+Inf" ? Infinity : Number(s.le), value: s.value }));
  if (parsed.some((p) => Number.isNaN(p.le) || !Number.isFinite(p.value) || p.value < 0)) return undefined;
  parsed.sort((x, y) => x.le - y.le);
  if (parsed.length === 0 || parsed.at(-1)!.le !== Infinity) return undefined;
  const counts: number[] = [];
  let previous = 0;
  for (const p of parsed) {
    const cumulative = Math.round(p.value);
    if (cumulative < previous) return undefined;
    counts.push(cumulative - previous);
    previous = cumulative;
  }
  return { counts };
}
