/**
 * The shadow step's judgement (pure): what the gateways' noise trackers have seen of this
 * revision, read through Prometheus, and the rule that passes, stops or waits on it.
 *
 * Evidence: every gateway replica publishes, for the rollout's current revision, its candidate
 * and noise comparison counts, the comparisons with a mismatch in a field the noise rule flags
 * (counted back to the first comparison), and whether its tracker is ready to judge
 * (airollout_shadow_judged; see gateway/metrics.ts). The sums over replicas are the evidence.
 *
 * The rule (README "Shadow steps"; docs/adr/0011-sequential-decisions.md), read at every read:
 * - not judged yet (fewer than minSamples comparisons, or noise comparisons with a baseline, or
 *   a replica not ready, or no answer from Prometheus): missing evidence, keep mirroring;
 * - stop early: once judged, if the mixture likelihood ratio of "the rate is above
 *   maxMismatchRate" against "it is exactly the limit" reaches 1/SEQUENTIAL_ALPHA, roll back now;
 * - pass early: once judged, if the mixture likelihood ratio of "the rate is below the limit"
 *   against "it is exactly the limit" reaches 1/SEQUENTIAL_ALPHA, pass now;
 * - at the end of the duration, judged but still inconclusive: pass when the mismatch rate is
 *   within maxMismatchRate, roll back when it is above.
 * Each likelihood ratio is a nonnegative martingale with mean 1 under the limit (and a
 * supermartingale on the other side of it), so by Ville's inequality the chance that it *ever*
 * reaches 1/alpha, however many reads the step makes, is at most alpha: the 1% holds for the
 * whole step, not per read.
 */
import type { QueryOutcome } from "../analysis/provider.ts";

/**
 * z of the one-sided 99% Wilson bound, the per-read rule of ADR 0007. No decision uses it any
 * more (its 1% was per read); the property tests keep it as the control the sequential test is
 * measured against.
 */
export const FAIL_FAST_Z = 2.326;

/**
 * The sequential test's error level over the whole step: the chance that a candidate exactly at
 * the limit is ever stopped early (or ever passed early) is at most 1%, whatever the number of
 * reads (Ville's inequality).
 */
export const SEQUENTIAL_ALPHA = 0.01;

/**
 * The alternatives the mixture averages over, as odds ratios against the limit: a regression of
 * 1.25x to 5x the limit's odds to stop on, and an improvement to 1/1.25 .. 1/5 of them to pass
 * on. Equal weights; a few points rather than a continuous prior keep the rule easy to state.
 */
export const STOP_ODDS_RATIOS: readonly number[] = [1.25, 1.5, 2, 3, 5];
export const PASS_ODDS_RATIOS: readonly number[] = STOP_ODDS_RATIOS.map((r) => 1 / r);

/** What the gateways report of the current revision, summed over replicas. */
export interface ShadowEvidence {
  compared: number;
  noiseCompared: number;
  mismatched: number;
  /** Every replica that reports this revision has enough comparisons to judge fields. */
  judged: boolean;
  /**
   * Requests the gateways chose for mirroring (the coverage's denominator); undefined when they
   * do not report it. Only `compared` is evidence: a copy dropped (queue full, circuit open,
   * timeout) was chosen but never compared, and counts for nothing in the rule.
   */
  sampled?: number;
}

/** A single finite number from an outcome; anything else (empty, NaN, several series) is undefined. */
function finiteValue(o: QueryOutcome | undefined): number | undefined {
  if (!o || o.kind !== "value") return undefined;
  const v = Array.isArray(o.value) ? (o.value.length === 1 ? o.value[0] : undefined) : o.value;
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/**
 * Evidence from the outcomes of evidenceQueries, or why there is none. An empty result means no
 * gateway reported this revision yet: nothing was compared, which is not a 0% mismatch rate.
 */
export function readEvidence(outcomes: Record<string, QueryOutcome | undefined>): { ok: true; evidence: ShadowEvidence } | { ok: false; why: string } {
  const failed = Object.entries(outcomes).find(([, o]) => o?.kind === "error");
  if (failed) return { ok: false, why: `Prometheus: ${(failed[1] as Extract<QueryOutcome, { kind: "error" }>).message}` };
  if (outcomes["shadow/compared"]?.kind === "empty") return { ok: false, why: "no gateway has reported comparisons of this revision yet" };
  const compared = finiteValue(outcomes["shadow/compared"]);
  const noiseCompared = finiteValue(outcomes["shadow/noise"]) ?? 0;
  const mismatched = finiteValue(outcomes["shadow/mismatched"]);
  const judged = finiteValue(outcomes["shadow/judged"]);
  if (compared === undefined || mismatched === undefined || judged === undefined) return { ok: false, why: "the gateways' shadow counts are incomplete" };
  // The coverage is shown, never judged on: gateways that do not report it leave it out.
  const sampled = finiteValue(outcomes["shadow/sampled"]);
  return { ok: true, evidence: { compared: Math.round(compared), noiseCompared: Math.round(noiseCompared), mismatched: Math.round(mismatched), judged: judged >= 1, ...(sampled === undefined ? {} : { sampled: Math.round(sampled) }) } };
}

/**
 * compared / sampled as text ("49.0%"): how much of what spec.shadow.sampleRate chose was
 * compared. Undefined when nothing was chosen or the gateways do not report it (no 0/0).
 */
export function coverageText(e: ShadowEvidence): string | undefined {
  if (e.sampled === undefined || e.sampled <= 0) return undefined;
  return `${(Math.min(1, e.compared / e.sampled) * 100).toFixed(1)}%`;
}

/** One-sided Wilson score lower bound of a proportion m/n at `z` (0 when n is 0). */
export function wilsonLowerBound(m: number, n: number, z = FAIL_FAST_Z): number {
  if (n <= 0) return 0;
  const p = m / n;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const spread = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return Math.max(0, (centre - spread) / (1 + z2 / n));
}

/** The probability whose odds are `ratio` times the odds of `p0`. */
function shiftOdds(p0: number, ratio: number): number {
  return (p0 * ratio) / (1 - p0 + p0 * ratio);
}

/**
 * ln of the mixture likelihood ratio of m mismatches in n comparisons: the equally weighted
 * average, over the alternatives `ratios` (odds ratios against p0), of
 * P(data | rate q) / P(data | rate p0). Needs 0 < p0 < 1 and 0 <= m <= n.
 */
export function logMixtureRatio(m: number, n: number, p0: number, ratios: readonly number[]): number {
  const terms = ratios.map((r) => {
    const q = shiftOdds(p0, r);
    return m * Math.log(q / p0) + (n - m) * Math.log((1 - q) / (1 - p0));
  });
  const top = Math.max(...terms);
  return top + Math.log(terms.reduce((acc, t) => acc + Math.exp(t - top), 0) / terms.length);
}

/** What the sequential test concludes from the counts so far. */
export interface SequentialResult {
  decision: "stop" | "pass" | undefined;
  /** The mixture likelihood ratios for "above the limit" and "below the limit" (may be Infinity). */
  stopRatio: number;
  passRatio: number;
}

/**
 * The always-valid sequential test of a mismatch rate against `limit` (module doc): "stop" when
 * the evidence that the rate is above the limit reaches 1/alpha, "pass" when the evidence that it
 * is below does, undefined while neither. A limit of 0 is exceeded by any mismatch and can never
 * be proven; a limit of 1 cannot be exceeded. No comparisons, or counts that are not whole
 * numbers with 0 <= m <= n, conclude nothing.
 */
export function sequentialTest(m: number, n: number, limit: number, alpha = SEQUENTIAL_ALPHA): SequentialResult {
  const none: SequentialResult = { decision: undefined, stopRatio: 1, passRatio: 1 };
  if (!Number.isInteger(m) || !Number.isInteger(n) || n <= 0 || m < 0 || m > n || !(limit >= 0 && limit <= 1)) return none;
  if (limit <= 0) return m > 0 ? { decision: "stop", stopRatio: Infinity, passRatio: 0 } : none;
  if (limit >= 1) return { decision: "pass", stopRatio: 0, passRatio: Infinity };
  const stopRatio = Math.exp(logMixtureRatio(m, n, limit, STOP_ODDS_RATIOS));
  const passRatio = Math.exp(logMixtureRatio(m, n, limit, PASS_ODDS_RATIOS));
  const decision = stopRatio >= 1 / alpha ? "stop" : passRatio >= 1 / alpha ? "pass" : undefined;
  return { decision, stopRatio, passRatio };
}

/** What the shadow step should do now. */
export type ShadowVerdict =
  | { kind: "wait"; why: string }
  | { kind: "pass"; rule: string }
  | { kind: "fail"; rule: string };

export interface ShadowRule {
  minSamples: number;
  /** Whether noise comparisons are required too (spec.shadow.noiseBaseline.enabled). */
  baseline: boolean;
  maxMismatchRate: number;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Whether the evidence is enough to judge, and if not, what is missing (with counts). */
export function missingEvidence(e: ShadowEvidence, rule: ShadowRule): string | undefined {
  // Even with minSamples 0 a rate needs one comparison: 0/0 is no evidence either way.
  const required = Math.max(1, rule.minSamples);
  const short: string[] = [];
  if (e.compared < required) short.push(`${e.compared} of ${required} required comparisons`);
  if (rule.baseline && e.noiseCompared < required) short.push(`${e.noiseCompared} of ${required} required noise comparisons`);
  if (short.length === 0 && !e.judged) short.push(`${e.compared} comparisons, but not every gateway replica has judged this revision yet`);
  return short.length ? short.join(", ") : undefined;
}

const ratioText = (x: number): string => (x >= 1e6 ? x.toExponential(1) : x >= 10 ? x.toFixed(0) : x.toFixed(2));

/** Applies the rule (module doc) to the evidence; `durationOver` says whether the step's time is up. */
export function judgeShadow(e: ShadowEvidence, rule: ShadowRule, durationOver: boolean): ShadowVerdict {
  const missing = missingEvidence(e, rule);
  if (missing) return { kind: "wait", why: missing };
  const rate = e.mismatched / e.compared;
  const counts = `${e.mismatched}/${e.compared} comparisons mismatched (${pct(rate)})`;
  const limit = `maxMismatchRate ${pct(rule.maxMismatchRate)}`;
  const seq = sequentialTest(e.mismatched, e.compared, rule.maxMismatchRate);
  const bar = `${ratioText(1 / SEQUENTIAL_ALPHA)} (${pct(SEQUENTIAL_ALPHA)} over the whole step)`;
  if (seq.decision === "stop") {
    return { kind: "fail", rule: `stopped early: ${counts}; the likelihood ratio for a rate above ${limit} is ${ratioText(seq.stopRatio)}, at least ${bar}` };
  }
  if (seq.decision === "pass") {
    return { kind: "pass", rule: `passed early: ${counts}; the likelihood ratio for a rate below ${limit} is ${ratioText(seq.passRatio)}, at least ${bar}` };
  }
  if (!durationOver) return { kind: "wait", why: `${counts}; not yet conclusive either way, judging at the end of the step unless it becomes conclusive first` };
  if (rate <= rule.maxMismatchRate) return { kind: "pass", rule: `end of step: ${counts}, within ${limit}` };
  return { kind: "fail", rule: `end of step: ${counts}, above ${limit}` };
}
