/**
 * The statistical judge as an analysis metric kind: the query that reads a judge metric's samples
 * from the gateway's histograms, the measurement made of its answer, and the run's combined
 * verdict (score) over its judge metrics. The statistics themselves are in judge.ts.
 */
import type { z } from "zod";
import type { JudgeMetricSchema, JudgeResultSchema } from "../api/schema.ts";
import type { QueryOutcome, SeriesLabels } from "./provider.ts";
import { DEFAULT_SCORE, fromCumulative, judgeSamples, scoreJudgements, type Classification, type JudgeSettings, type ScoreThresholds, type Verdict } from "./judge.ts";

/** A judge metric's settings as resolved (defaults applied). */
export interface ResolvedJudge extends JudgeSettings {
  signal: "latency" | "tokens" | "cost" | "field";
  field: string | undefined;
  /** stable: the stable's answers; noise: the noise baseline's, against the candidate's mirrored answers. */
  baseline: "stable" | "noise";
  weight: number;
}

/**
 * The `version` label of the gateway's samples of mirrored answers (gateway/judge-samples.ts):
 * the candidate's shadow copy and the noise baseline's second stable. `:` is outside the
 * characters a version name may use, so these never collide with a real version's series.
 */
export function mirroredVersion(version: string, copy: "shadow" | "noise"): string {
  return `${version}:${copy}`;
}

/** A judge result as status stores it. */
export type JudgeStatus = z.output<typeof JudgeResultSchema>;

/** The judge settings as a user wrote them (defaults may be missing). */
export type JudgeMetricSpec = z.input<typeof JudgeMetricSchema>;

/** Applies the judge's defaults (the schema's, so an object built in code behaves as a parsed one). */
export function resolveJudge(j: JudgeMetricSpec): ResolvedJudge {
  return {
    signal: j.signal,
    field: j.field,
    baseline: j.baseline ?? "stable",
    direction: j.direction ?? "increase",
    effectSize: j.effectSize ?? 0.2,
    alpha: j.alpha ?? 0.01,
    minSamples: j.minSamples ?? 50,
    weight: j.weight ?? 1,
  };
}

/** The gateway's `signal` label for a judge: latency, tokens, cost, or the field path itself. */
export function judgeSignalLabel(j: Pick<ResolvedJudge, "signal" | "field">): string {
  return j.signal === "field" ? (j.field ?? "") : j.signal;
}

/**
 * The PromQL template of a judge metric: each side's bucket counts over `{{args.window}}`, summed
 * over gateway replicas (that is why the samples are Prometheus histograms; ADR 0010), tagged
 * `side="candidate"` or `side="baseline"` so the judgement does not depend on version names.
 * `baseline: noise` reads the mirrored copies instead: the candidate's shadow answers against
 * the noise baseline's second stable, both answering the same requests at the same moment.
 */
export function judgeQueryTemplate(j: Pick<ResolvedJudge, "signal" | "field"> & { baseline?: ResolvedJudge["baseline"] | undefined }): string {
  const side = (version: string, name: string): string =>
    `label_replace(sum by (le) (increase(airollout_judge_sample_bucket{rollout="{{rollout}}",namespace="{{namespace}}",version="${version}",signal="${judgeSignalLabel(j)}"}[{{args.window}}])), "side", "${name}", "", "")`;
  if (j.baseline === "noise") return `${side(mirroredVersion("{{candidate}}", "shadow"), "candidate")} or ${side(mirroredVersion("{{stable}}", "noise"), "baseline")}`;
  return `${side("{{candidate}}", "candidate")} or ${side("{{stable}}", "baseline")}`;
}

// Bounds on what one answer may carry: a query answer is untrusted input.
const MAX_SERIES = 1000;

/** The two sides' cumulative buckets out of a vector labelled side and le; undefined when malformed. */
function splitSides(values: readonly number[], labels: readonly SeriesLabels[] | undefined): Record<"candidate" | "baseline", { le: string; value: number }[]> | undefined {
  if (labels === undefined || labels.length !== values.length || values.length > MAX_SERIES) return undefined;
  const sides = { candidate: [] as { le: string; value: number }[], baseline: [] as { le: string; value: number }[] };
  for (let i = 0; i < values.length; i++) {
    const { side, le } = labels[i]!;
    if ((side !== "candidate" && side !== "baseline") || le === undefined) return undefined;
    sides[side].push({ le, value: values[i]! });
  }
  return sides;
}

/** What a judge measurement carries: the measurement phase, its value text and message, and the judgement. */
export interface JudgeMeasurement {
  phase: "Successful" | "Failed" | "Inconclusive";
  value: string;
  message: string;
  judge: JudgeStatus;
}

const PHASE: Record<Classification, JudgeMeasurement["phase"]> = { Pass: "Successful", High: "Failed", Low: "Failed", NoData: "Inconclusive" };

/**
 * Judges a judge metric's query answer (not an error: the caller has handled those). An empty
 * answer, a missing side, malformed buckets or too few samples are NoData, which is Inconclusive:
 * never a pass.
 */
export function judgeOutcome(j: ResolvedJudge, outcome: Exclude<QueryOutcome, { kind: "error" }>): JudgeMeasurement {
  const values = outcome.kind === "empty" ? [] : typeof outcome.value === "number" ? [outcome.value] : outcome.value;
  const sides = outcome.kind === "empty" ? { candidate: [], baseline: [] } : splitSides(values, outcome.labels);
  const candidate = sides && sides.candidate.length > 0 ? fromCumulative(sides.candidate) : undefined;
  const baseline = sides && sides.baseline.length > 0 ? fromCumulative(sides.baseline) : undefined;
  const signal = judgeSignalLabel(j);
  if (candidate === undefined || baseline === undefined) {
    const why = sides === undefined ? "the answer is not a vector labelled side and le" : `no usable ${candidate === undefined ? "candidate" : "baseline"} histogram for ${signal} in the window`;
    return { phase: "Inconclusive", value: "NoData", message: `NoData: ${why}; never a pass`, judge: { classification: "NoData", weight: j.weight } };
  }
  const r = judgeSamples(candidate, baseline, j);
  const judge: JudgeStatus = {
    classification: r.classification,
    ...(Number.isFinite(r.pValue) ? { pValue: r.pValue } : {}),
    ...(Number.isFinite(r.effectSize) ? { effectSize: r.effectSize } : {}),
    candidateSamples: r.nCandidate,
    baselineSamples: r.nBaseline,
    weight: j.weight,
    ...(r.conclusive ? { conclusive: true } : {}),
    ...(Number.isFinite(r.deltaBound) ? { deltaBound: r.deltaBound } : {}),
  };
  return { phase: PHASE[r.classification], value: r.classification, message: `${signal}: ${r.message}`, judge };
}

/** A metric status as far as the verdict reads it. */
export interface JudgedMetric {
  name: string;
  phase: string;
  successful: number;
  message?: string | undefined;
  judge?: JudgeStatus | undefined;
}

const FINAL = new Set(["Successful", "Failed", "Inconclusive", "Error"]);

/**
 * Applies the judge's combined verdict to a run's metrics, for the run's phase. Judge metrics
 * (those with a judgement) are scored together, Kayenta-style, so one High among many Pass
 * metrics can still pass when the score allows:
 * - while any judge metric is still measuring, the finished ones count as Running (the score
 *   needs them all);
 * - then Pass makes every judge metric count as Successful, Marginal as Inconclusive (pause), a
 *   Fail proven by High/Low evidence as Failed (rollback), and a Fail that only missing evidence
 *   (NoData) explains as Inconclusive: never a pass, never a rollback on no data.
 * Other metrics are returned as they are. `verdict` is undefined when the run has no judge metric.
 */
export function applyJudgeVerdict<M extends JudgedMetric>(metrics: readonly M[], t: Partial<ScoreThresholds> = {}): { metrics: M[]; verdict: Verdict | undefined } {
  const mine = metrics.filter((m) => m.judge !== undefined);
  if (mine.length === 0) return { metrics: [...metrics], verdict: undefined };
  const verdict = scoreJudgements(
    mine.map((m) => ({ name: m.name, classification: m.judge!.classification, weight: m.judge!.weight ?? 1 })),
    { passScore: t.passScore ?? DEFAULT_SCORE.passScore, marginalScore: t.marginalScore ?? DEFAULT_SCORE.marginalScore },
  );
  const waiting = mine.some((m) => !FINAL.has(m.phase));
  const phase = waiting ? "Running" : verdict.verdict === "Pass" ? "Successful" : verdict.verdict === "Fail" && verdict.proven ? "Failed" : "Inconclusive";
  const message = waiting ? "waiting for every judge metric before scoring" : `judge ${verdict.message}`;
  const out = metrics.map((m) =>
    m.judge === undefined ? m : { ...m, phase, successful: phase === "Successful" ? Math.max(1, m.successful) : m.successful, message: `${message}; ${m.message ?? ""}` },
  );
  return { metrics: out, verdict };
}
