/**
 * The shadow step's judgement (pure): what the gateways' noise trackers have seen of this
 * revision, read through Prometheus, and the rule that passes, stops or waits on it.
 *
 * Evidence: every gateway replica publishes, for the rollout's current revision, its candidate
 * and noise comparison counts, the comparisons with a mismatch in a field the noise rule flags
 * (counted back to the first comparison), and whether its tracker is ready to judge
 * (airollout_shadow_judged; see gateway/metrics.ts). The sums over replicas are the evidence.
 *
 * The rule (README "Shadow steps"):
 * - not judged yet (fewer than minSamples comparisons, or noise comparisons with a baseline, or
 *   a replica not ready, or no answer from Prometheus): missing evidence, keep mirroring;
 * - fail fast: once judged, if the one-sided 99% Wilson lower bound of the mismatch rate is above
 *   maxMismatchRate, the candidate is worse than the limit with 99% confidence: roll back now,
 *   before the step's duration ends;
 * - at the end of the duration, judged: pass when the mismatch rate is within maxMismatchRate,
 *   roll back when it is above.
 */
import type { QueryOutcome } from "../analysis/provider.ts";

/**
 * z of the one-sided 99% bound. That is 1% per read: over a step's reads the chances add up, so
 * a candidate exactly at the limit is stopped early in about 7% of steps of 24 reads, one at 80%
 * of the limit in about 0.2% (bench/detection.ts measures both).
 */
export const FAIL_FAST_Z = 2.326;

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

/** Applies the rule (module doc) to the evidence; `durationOver` says whether the step's time is up. */
export function judgeShadow(e: ShadowEvidence, rule: ShadowRule, durationOver: boolean): ShadowVerdict {
  const missing = missingEvidence(e, rule);
  if (missing) return { kind: "wait", why: missing };
  const rate = e.mismatched / e.compared;
  const lower = wilsonLowerBound(e.mismatched, e.compared);
  const counts = `${e.mismatched}/${e.compared} comparisons mismatched (${pct(rate)})`;
  if (lower > rule.maxMismatchRate) {
    return { kind: "fail", rule: `fail fast: ${counts}; its 99% lower bound ${pct(lower)} is above maxMismatchRate ${pct(rule.maxMismatchRate)}` };
  }
  if (!durationOver) return { kind: "wait", why: `${counts}; judging at the end of the step unless the evidence becomes conclusive first` };
  if (rate <= rule.maxMismatchRate) return { kind: "pass", rule: `end of step: ${counts}, within maxMismatchRate ${pct(rule.maxMismatchRate)}` };
  return { kind: "fail", rule: `end of step: ${counts}, above maxMismatchRate ${pct(rule.maxMismatchRate)}` };
}
