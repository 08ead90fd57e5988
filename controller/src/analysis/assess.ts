/**
 * The analysis decision core. Pure: no clock, no network; callers pass `now` and query outcomes.
 *
 * Argo Rollouts' AnalysisRun semantics, tightened where its users got hurt:
 * - an empty or NaN result is never Successful unless the metric's onEmpty says so
 *   (argo-rollouts#1466, flagger#1035), and +Inf/-Inf (a ratio x/0) is Inconclusive unless the
 *   metric's nonFinite says Evaluate;
 * - a condition that reads one series (`result[0]`, `result < 1`) over a vector of several
 *   series is Inconclusive: which series sorts first is an accident of label names;
 * - a metric that reaches its count without a single Successful measurement does not succeed,
 *   and a run whose metrics have no successful measurement never reports Successful (fail
 *   closed: argo-rollouts#3850 promoted on an inconclusive run);
 * - every message quotes the value and the condition that judged it (argo-rollouts#404).
 */
import type { QueryOutcome, SeriesLabels } from "./provider.ts";
import type { z } from "zod";
import type {
  AnalysisRunStatusSchema,
  AnalysisSchema,
  MeasurementSchema,
  MetricSchema,
  MetricStatusSchema,
} from "../api/schema.ts";
import { parseDuration } from "../api/duration.ts";
import { compileCondition, evaluateCondition, readsOneSeries, type CompiledCondition } from "./expr.ts";
import {
  compileTemplate,
  formatPromDuration,
  renderTemplate,
  TemplateError,
  unknownVariables,
  type CompiledTemplate,
} from "./template.ts";
import { getTemplate, TEMPLATE_NAMES } from "./templates.ts";
import { applyJudgeVerdict, judgeOutcome, judgeQueryTemplate, resolveJudge, type ResolvedJudge } from "./judge-metric.ts";
import type { ScoreThresholds } from "./judge.ts";

/** A metric as written by the user (zod input: defaults may still be missing). */
export type MetricSpec = z.input<typeof MetricSchema>;
/** The analysis section as written by the user. */
export type AnalysisSpec = z.input<typeof AnalysisSchema>;
/** One measurement in status. */
export type Measurement = z.output<typeof MeasurementSchema>;
/** Per-metric state in status. */
export type MetricStatus = z.output<typeof MetricStatusSchema>;
/** An analysis run in status. */
export type AnalysisRunStatus = z.output<typeof AnalysisRunStatusSchema>;
export type MeasurementPhase = Measurement["phase"];
export type MetricPhase = MetricStatus["phase"];
export type RunPhase = AnalysisRunStatus["phase"];
export type OnEmpty = NonNullable<MetricSpec["onEmpty"]>;
export type NonFinite = NonNullable<MetricSpec["nonFinite"]>;



/** The most recent measurements kept per metric in status. */
export const MEASUREMENT_HISTORY = 10;

/** Argo Rollouts' defaults, used when neither the metric nor the analysis sets a value. */
export const DEFAULTS = {
  interval: "30s",
  failureLimit: 0,
  inconclusiveLimit: 0,
  consecutiveErrorLimit: 4,
} as const;

/** Shortest accepted interval: anything faster hammers Prometheus without better decisions. */
export const MIN_INTERVAL_MS = 1000;

// ---------------------------------------------------------------------------------------------
// (d) Effective settings

/** A metric with every setting decided, conditions and query compiled once. */
export interface ResolvedMetric {
  name: string;
  templateRef: string | undefined;
  /** The query template (not yet rendered). */
  query: CompiledTemplate;
  successCondition: CompiledCondition | undefined;
  failureCondition: CompiledCondition | undefined;
  min: number | undefined;
  max: number | undefined;
  intervalMs: number;
  initialDelayMs: number;
  /** Measurements to take (errors excluded); undefined: until the run is concluded. */
  count: number | undefined;
  failureLimit: number;
  inconclusiveLimit: number;
  consecutiveErrorLimit: number;
  onEmpty: OnEmpty;
  nonFinite: NonFinite;
  args: Readonly<Record<string, string>>;
  /** A statistical judge metric's settings (its query is generated from them); undefined otherwise. */
  judge: ResolvedJudge | undefined;
}

/** A problem in the spec, tied to a metric and a field so a Degraded condition can name both. */
export interface SpecError {
  metric: string;
  /** Field of the metric, such as `successCondition` or `query`. */
  field: string;
  /** Complete human message, naming the metric and the field. */
  message: string;
}

export type ResolveResult = { ok: true; metric: ResolvedMetric } | { ok: false; errors: SpecError[] };

/** Options of {@link resolveMetric}. */
export interface ResolveOptions {
  /** Count for metrics that set none, e.g. 1 for step analysis; background runs leave it unset. */
  defaultCount?: number;
}

/** The analysis-level defaults that {@link resolveMetric} reads. */
export type AnalysisDefaults = Partial<
  Pick<AnalysisSpec, "interval" | "failureLimit" | "inconclusiveLimit" | "consecutiveErrorLimit" | "args">
>;

// Stand-ins shaped like real names (DNS labels with dashes) so a trial render at resolve time
// catches a built-in variable used outside quotes, which would break on real names.
const TRIAL_TARGET = { rollout: "my-rollout", namespace: "my-namespace", stable: "v-1", candidate: "v-2" };

/** A metric is measured by exactly one of a query, a template or a statistical judge. */
function checkQuerySource(metric: MetricSpec, fail: (field: string, message: string) => void): void {
  const sources = [metric.query, metric.templateRef, metric.judge].filter((x) => x !== undefined).length;
  if (sources > 1) fail("query", "set exactly one of query, templateRef and judge");
  if (sources === 0) fail("query", "set query, templateRef or judge");
}

/** A metric's judging criteria as they apply: its own, or else its template's. */
export interface MetricCriteria {
  successCondition?: string;
  failureCondition?: string;
  min?: number;
  max?: number;
}

/**
 * The criteria a metric is judged by, taken as a group: a metric that sets any of
 * successCondition, failureCondition, min and max replaces all of its template's, so `max: 0.02`
 * on error-rate means exactly that; otherwise its built-in template's conditions apply.
 */
export function metricCriteria(metric: Pick<MetricSpec, "templateRef" | "successCondition" | "failureCondition" | "min" | "max">): MetricCriteria {
  const { successCondition, failureCondition, min, max } = metric;
  if ([successCondition, failureCondition, min, max].some((v) => v !== undefined)) return { successCondition, failureCondition, min, max };
  const template = metric.templateRef === undefined ? undefined : getTemplate(metric.templateRef);
  return { successCondition: template?.successCondition, failureCondition: template?.failureCondition };
}

/**
 * Resolves a metric's effective settings: metric field > analysis default > template default;
 * criteria as a group (metricCriteria).
 * The arg `window` defaults to the interval as a PromQL duration. Conditions are compiled and
 * the query's variables checked here, so a bad spec is reported once, before any query is sent.
 */
export function resolveMetric(metric: MetricSpec, analysis: AnalysisDefaults = {}, options: ResolveOptions = {}): ResolveResult {
  const errors: SpecError[] = [];
  const fail = (field: string, message: string): void => {
    errors.push({ metric: metric.name, field, message: `metric "${metric.name}": ${field}: ${message}` });
  };

  const template = metric.templateRef === undefined ? undefined : getTemplate(metric.templateRef);
  if (metric.templateRef !== undefined && template === undefined) {
    fail("templateRef", `unknown template "${metric.templateRef}"; built-in templates are ${TEMPLATE_NAMES.join(", ")}`);
  }
  checkQuerySource(metric, fail);
  const judge = metric.judge === undefined ? undefined : resolveJudge(metric.judge);

  const criteria = metricCriteria(metric);
  const compile = (field: "successCondition" | "failureCondition"): CompiledCondition | undefined => {
    const source = criteria[field];
    if (source === undefined) return undefined;
    try {
      return compileCondition(source);
    } catch (e) {
      fail(field, `${JSON.stringify(source)}: ${(e as Error).message}`);
      return undefined;
    }
  };
  const successCondition = compile("successCondition");
  const failureCondition = compile("failureCondition");
  const { min, max } = criteria;
  if (min !== undefined && max !== undefined && min > max) fail("min", `min ${min} is greater than max ${max}`);
  if (judge === undefined && [criteria.successCondition, criteria.failureCondition, min, max].every((v) => v === undefined)) {
    fail("successCondition", "no successCondition, failureCondition, min or max: nothing to judge a measurement by");
  }

  const duration = (field: "interval" | "initialDelay", text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    try {
      return parseDuration(text);
    } catch (e) {
      fail(field, (e as Error).message);
      return fallback;
    }
  };
  const intervalMs = duration("interval", metric.interval ?? analysis.interval ?? DEFAULTS.interval, parseDuration(DEFAULTS.interval));
  if (intervalMs < MIN_INTERVAL_MS) fail("interval", `must be at least ${MIN_INTERVAL_MS / 1000}s`);
  const initialDelayMs = duration("initialDelay", metric.initialDelay, 0);

  const limit = (field: "failureLimit" | "inconclusiveLimit" | "consecutiveErrorLimit"): number => {
    const value = metric[field] ?? analysis[field] ?? DEFAULTS[field];
    if (!Number.isInteger(value) || value < 0) fail(field, `must be a whole number >= 0, got ${value}`);
    return value;
  };
  const failureLimit = limit("failureLimit");
  const inconclusiveLimit = limit("inconclusiveLimit");
  const consecutiveErrorLimit = limit("consecutiveErrorLimit");
  const count = metric.count ?? options.defaultCount;
  if (count !== undefined && (!Number.isInteger(count) || count < 1)) fail("count", `must be a whole number >= 1, got ${count}`);

  const args: Record<string, string> = {
    window: formatPromDuration(intervalMs),
    ...template?.args,
    ...analysis.args,
    ...metric.args,
  };

  let query: CompiledTemplate | undefined;
  const source = metric.query ?? template?.query ?? (judge === undefined ? undefined : judgeQueryTemplate(judge));
  if (source !== undefined) {
    try {
      query = compileTemplate(source);
      const unknown = unknownVariables(query, Object.keys(args));
      if (unknown.length > 0) {
        fail("query", `unknown template variable ${unknown.map((v) => `{{${v}}}`).join(", ")}; known: {{rollout}}, {{namespace}}, {{stable}}, {{candidate}}, {{interval}}, ${Object.keys(args).map((a) => `{{args.${a}}}`).join(", ")}`);
      } else {
        renderTemplate(query, { ...TRIAL_TARGET, interval: formatPromDuration(intervalMs), args });
      }
    } catch (e) {
      // An unsafe value is the arg's fault, not the query's: name the field the user must fix.
      const variable = e instanceof TemplateError ? e.variable : undefined;
      fail(variable?.startsWith("args.") ? variable : "query", (e as Error).message);
    }
  }

  if (errors.length > 0 || query === undefined) return { ok: false, errors };
  return {
    ok: true,
    metric: {
      name: metric.name,
      templateRef: metric.templateRef,
      query,
      successCondition,
      failureCondition,
      min,
      max,
      intervalMs,
      initialDelayMs,
      count,
      failureLimit,
      inconclusiveLimit,
      consecutiveErrorLimit,
      onEmpty: metric.onEmpty ?? "Inconclusive",
      nonFinite: metric.nonFinite ?? "Inconclusive",
      args,
      judge: spendAlpha(judge, count),
    },
  };
}

/**
 * A judge metric measured `count` times in a step may stop the step at any one of them
 * (failureLimit 0), so its alpha is spent evenly over the planned looks (Bonferroni): the chance
 * that a candidate no worse than the stable is stopped by any of the count measurements stays
 * within the alpha the user wrote, instead of count x alpha. Without a count (background runs)
 * the looks are not planned and each measurement keeps the written alpha.
 */
function spendAlpha(judge: ResolvedJudge | undefined, count: number | undefined): ResolvedJudge | undefined {
  if (judge === undefined || count === undefined || count <= 1) return judge;
  return { ...judge, alpha: judge.alpha / count };
}

/**
 * Resolves every metric of an analysis section and checks that names are unique.
 * @returns the metrics that resolved, and every spec error found.
 */
export function resolveAnalysis(analysis: AnalysisSpec, options: ResolveOptions = {}): { metrics: ResolvedMetric[]; errors: SpecError[] } {
  const metrics: ResolvedMetric[] = [];
  const errors: SpecError[] = [];
  const seen = new Set<string>();
  for (const m of analysis.metrics) {
    if (seen.has(m.name)) {
      errors.push({ metric: m.name, field: "name", message: `metric "${m.name}": name: used by more than one metric` });
    }
    seen.add(m.name);
    const r = resolveMetric(m, analysis, options);
    if (r.ok) metrics.push(r.metric);
    else errors.push(...r.errors);
  }
  return { metrics, errors };
}

/** The names a query is rendered for. */
export interface QueryTarget {
  rollout: string;
  namespace: string;
  stable: string;
  candidate: string;
}

/**
 * Renders a resolved metric's query for a rollout; this text is what status shows as `query`.
 * @throws TemplateError only for values that resolve-time checks could not foresee.
 */
export function renderMetricQuery(metric: ResolvedMetric, target: QueryTarget): string {
  return renderTemplate(metric.query, { ...target, interval: formatPromDuration(metric.intervalMs), args: metric.args });
}

// ---------------------------------------------------------------------------------------------
// (a) One measurement

/** The parts of a resolved metric that judge a measurement. */
export type Judge = Pick<ResolvedMetric, "successCondition" | "failureCondition" | "min" | "max" | "onEmpty" | "nonFinite"> & { judge?: ResolvedJudge | undefined };

// Status is stored in etcd and printed by kubectl: a query without aggregation can return
// thousands of series, so what a measurement quotes of them is bounded.
const MAX_VALUES_SHOWN = 10;
const MAX_SERIES_NAMED = 5;
const MAX_LABELSET_CHARS = 200;

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** Formats a result for status: `0.012`, `NaN`, `+Inf`, `[0.1, 0.2]` (long vectors shortened). */
export function formatResult(value: number | readonly number[]): string {
  if (typeof value === "number") return formatNumber(value);
  const shown = value.slice(0, MAX_VALUES_SHOWN).map(formatNumber);
  if (value.length > MAX_VALUES_SHOWN) shown.push(`... ${value.length - MAX_VALUES_SHOWN} more`);
  return `[${shown.join(", ")}]`;
}

/**
 * Formats a label set as Prometheus prints a series: `name{a="x", b="y"}`, `{}` without labels.
 * Long label sets are cut, since they come from whatever the query selected.
 */
export function formatLabels(labels: SeriesLabels): string {
  const name = labels.__name__ ?? "";
  const pairs = Object.keys(labels)
    .filter((k) => k !== "__name__")
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  const text = `${name}{${pairs.join(", ")}}`;
  return text.length > MAX_LABELSET_CHARS ? `${text.slice(0, MAX_LABELSET_CHARS)}...}` : text;
}

/** The measurement being judged, read once: every judging step below works on it. */
interface Reading {
  metric: Judge;
  time: string;
  value: number | readonly number[];
  /** The value as a list: a scalar is one value. */
  values: readonly number[];
  /** Label sets of a vector's series, when the provider sent them. */
  labels: readonly SeriesLabels[] | undefined;
  /** The value as status shows it. */
  text: string;
  /** `result [0.99] (series {version="v2"})`: what every message says it judged. */
  subject: string;
}

/** The label sets of some series, bounded: `{version="v1"}, {version="v2"}`. */
function nameSeries(r: Reading, indices: readonly number[]): string {
  if (r.labels === undefined) return "labels unknown";
  const named = indices.slice(0, MAX_SERIES_NAMED).map((i) => formatLabels(r.labels?.[i] ?? {}));
  if (indices.length > MAX_SERIES_NAMED) named.push(`and ${indices.length - MAX_SERIES_NAMED} more`);
  return named.join(", ");
}

const allIndices = (r: Reading): number[] => r.values.map((_, i) => i);

function read(metric: Judge, value: number | readonly number[], labels: readonly SeriesLabels[] | undefined, time: string): Reading {
  const values: readonly number[] = typeof value === "number" ? [value] : value;
  const vectorLabels = typeof value === "number" || labels?.length !== values.length ? undefined : labels;
  const text = formatResult(value);
  const r: Reading = { metric, time, value, values, labels: vectorLabels, text, subject: `result ${text}` };
  // A reduced query (sum(...)) has the empty label set: nothing worth naming.
  const labelled = vectorLabels?.some((l) => Object.keys(l).length > 0) ?? false;
  if (labelled) r.subject = `result ${text} (series ${nameSeries(r, allIndices(r))})`;
  return r;
}

function measured(r: Reading, phase: MeasurementPhase, message: string): Measurement {
  return { time: r.time, value: r.text, phase, message };
}

/** A value in status text, naming its series when there is more than one. */
function valueAt(r: Reading, i: number): string {
  const v = formatNumber(r.values[i] as number);
  return r.values.length > 1 && r.labels !== undefined ? `${v} (${nameSeries(r, [i])})` : v;
}

function outOfRangeText(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `below min ${min} or above max ${max}`;
  return min !== undefined ? `below min ${min}` : `above max ${max}`;
}

const quote = (c: CompiledCondition): string => JSON.stringify(c.source);

function rangeProblem(r: Reading, min: number | undefined, max: number | undefined): string | undefined {
  if (min !== undefined) {
    const low = r.values.findIndex((v) => v < min);
    if (low >= 0) return `${valueAt(r, low)} is below min ${min}`;
  }
  if (max !== undefined) {
    const high = r.values.findIndex((v) => v > max);
    if (high >= 0) return `${valueAt(r, high)} is above max ${max}`;
  }
  return undefined;
}

function rangeText(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `within min ${min} and max ${max}`;
  return min !== undefined ? `not below min ${min}` : `not above max ${max}`;
}

/** An empty vector is no data: onEmpty decides. */
function judgeNoSeries(r: Reading): Measurement | undefined {
  if (r.values.length > 0) return undefined;
  const onEmpty = r.metric.onEmpty;
  return measured(r, onEmpty, `result ${r.text} is an empty vector; counted as ${onEmpty} (onEmpty)`);
}

/**
 * Non-finite values are missing evidence unless the metric opts in (nonFinite: Evaluate):
 * +Inf/-Inf (x/0: a numerator without a denominator) is Inconclusive, and NaN (0/0: no
 * traffic in the window) takes onEmpty, like an empty result. Infinity is checked first so
 * onEmpty: Successful can never promote a vector that holds one.
 */
function judgeNonFinite(r: Reading): Measurement | undefined {
  if (r.metric.nonFinite === "Evaluate") return undefined;
  const infinite = allIndices(r).filter((i) => Math.abs(r.values[i] as number) === Infinity);
  if (infinite.length > 0) {
    const where = infinite.map((i) => valueAt(r, i)).slice(0, MAX_SERIES_NAMED).join(", ");
    return measured(
      r,
      "Inconclusive",
      `${r.subject} is not finite (${where}: a ratio x/0 has no denominator, so no evidence); counted as Inconclusive (nonFinite)`,
    );
  }
  if (r.values.some(Number.isNaN)) {
    const onEmpty = r.metric.onEmpty;
    return measured(r, onEmpty, `${r.subject} is NaN (no traffic in the window, e.g. 0/0); counted as ${onEmpty} (onEmpty)`);
  }
  return undefined;
}

/**
 * A condition that reads one series (`result[0]`, `result < 1`) over several series would judge
 * whichever sorts at that position; min(result), max(result), len(result) and min/max judge
 * them all. So several series with a one-series condition are Inconclusive, naming the series.
 */
function judgeSeriesCount(r: Reading): Measurement | undefined {
  if (r.values.length < 2) return undefined;
  const { successCondition: sc, failureCondition: fc } = r.metric;
  const one = [fc && readsOneSeries(fc) ? `failureCondition ${quote(fc)}` : "", sc && readsOneSeries(sc) ? `successCondition ${quote(sc)}` : ""].filter(Boolean);
  if (one.length === 0) return undefined;
  return measured(
    r,
    "Inconclusive",
    `result ${r.text}: ${r.values.length} series (${nameSeries(r, allIndices(r))}): reduce the query (sum/max by ...) to one series; ` +
      `${one.join(" and ")} reads a single series, or judge every series with min(result)/max(result)`,
  );
}

/** Evaluates one condition; a data-dependent evaluation problem becomes an Error measurement. */
function evaluate(r: Reading, field: "successCondition" | "failureCondition"): boolean | undefined | Measurement {
  const c = r.metric[field];
  if (c === undefined) return undefined;
  try {
    return evaluateCondition(c, r.value);
  } catch (e) {
    return measured(r, "Error", `evaluating ${field} ${quote(c)}: ${(e as Error).message}`);
  }
}

/**
 * The conditions and min/max. Failure criteria win over success; when only one side is
 * configured the other is its negation (Argo's rule), and when both are configured and neither
 * matches the result is Inconclusive. Anything NaN made undecidable is Inconclusive.
 */
function judgeCriteria(r: Reading): Measurement {
  const { successCondition: sc, failureCondition: fc, min, max } = r.metric;
  const failure = evaluate(r, "failureCondition");
  if (typeof failure === "object") return failure;
  const success = evaluate(r, "successCondition");
  if (typeof success === "object") return success;

  const m = (phase: MeasurementPhase, message: string): Measurement => measured(r, phase, message);
  const subject = r.subject;
  if (fc && failure === true) return m("Failed", `${subject} matched failureCondition ${quote(fc)}`);
  const hasRange = min !== undefined || max !== undefined;
  const out = rangeProblem(r, min, max);
  if (out) return m("Failed", `${subject}: ${out}`);
  if (hasRange && r.values.some(Number.isNaN)) {
    const bounds = [min === undefined ? "" : `min ${min}`, max === undefined ? "" : `max ${max}`].filter(Boolean).join(" and ");
    return m("Inconclusive", `${subject}: ${bounds} could not be decided (a value is NaN)`);
  }
  if (fc && failure === undefined) {
    return m("Inconclusive", `failureCondition ${quote(fc)} could not be decided for ${subject} (a comparison involved NaN)`);
  }

  const failSide = [fc ? `failureCondition ${quote(fc)}` : "", hasRange ? outOfRangeText(min, max) : ""].filter(Boolean).join(", ");
  if (sc) {
    if (success === true) return m("Successful", `${subject} met successCondition ${quote(sc)}`);
    if (success === undefined) {
      return m("Inconclusive", `successCondition ${quote(sc)} could not be decided for ${subject} (a comparison involved NaN)`);
    }
    if (!fc && !hasRange) return m("Failed", `${subject} did not meet successCondition ${quote(sc)}`);
    return m("Inconclusive", `${subject} met neither successCondition ${quote(sc)} nor the failure criteria (${failSide})`);
  }
  if (fc && hasRange) return m("Successful", `${subject} did not match failureCondition ${quote(fc)} and is ${rangeText(min, max)}`);
  if (fc) return m("Successful", `${subject} did not match failureCondition ${quote(fc)}`);
  if (hasRange) return m("Successful", `${subject} is ${rangeText(min, max)}`);
  return m("Inconclusive", `${subject}: no successCondition, failureCondition, min or max to judge it by`);
}

/**
 * Judges one query outcome, in this order (the first step that decides wins):
 * 1. an error (the measurement could not be taken) is Error;
 * 2. an empty result or empty vector takes the metric's onEmpty phase;
 * 3. unless nonFinite is Evaluate: +Inf/-Inf anywhere is Inconclusive, NaN anywhere takes onEmpty;
 * 4. several series with a condition that reads one series is Inconclusive, naming the series;
 * 5. the criteria (see judgeCriteria): failure over success, NaN-undecidable is Inconclusive.
 * Messages quote the value, the condition and, for labelled vectors, the series judged.
 */
export function judgeMeasurement(metric: Judge, outcome: QueryOutcome, now: Date): Measurement {
  const time = now.toISOString();
  if (outcome.kind === "error") return { time, phase: "Error", message: `query failed: ${outcome.message}` };
  // A statistical judge reads bucket counts, not a value against conditions (judge-metric.ts).
  if (metric.judge !== undefined) return { time, ...judgeOutcome(metric.judge, outcome) };
  if (outcome.kind === "empty") {
    const onEmpty = metric.onEmpty;
    return {
      time,
      value: "empty",
      phase: onEmpty,
      message: `empty result (no series: no traffic or no data in the window); counted as ${onEmpty} (onEmpty)`,
    };
  }
  const r = read(metric, outcome.value, outcome.labels, time);
  return judgeNoSeries(r) ?? judgeNonFinite(r) ?? judgeSeriesCount(r) ?? judgeCriteria(r);
}

// ---------------------------------------------------------------------------------------------
// (b) Folding measurements into a metric

/** The settings that decide a metric's phase. */
export type MetricLimits = Pick<ResolvedMetric, "failureLimit" | "inconclusiveLimit" | "consecutiveErrorLimit" | "count">;

const TERMINAL: ReadonlySet<string> = new Set(["Successful", "Failed", "Inconclusive", "Error"]);

/** Whether a metric or run phase is final. */
export function isTerminal(phase: MetricPhase | RunPhase): boolean {
  return TERMINAL.has(phase);
}

/** A metric that has not been measured yet. */
export function newMetricStatus(name: string, query?: string): MetricStatus {
  return {
    name,
    ...(query === undefined ? {} : { query }),
    phase: "Pending",
    successful: 0,
    failed: 0,
    inconclusive: 0,
    error: 0,
    consecutiveError: 0,
  };
}

/** Measurements that count towards `count`: errors are not judgements, so they do not. */
function judged(s: MetricStatus): number {
  return s.successful + s.failed + s.inconclusive;
}

function lastMessage(s: MetricStatus): string {
  return s.measurements?.at(-1)?.message ?? s.message ?? "";
}

function conclude(s: MetricStatus, why: string): MetricStatus {
  const tally = `${s.successful} successful, ${s.failed} failed, ${s.inconclusive} inconclusive`;
  const last = lastMessage(s);
  const suffix = last ? `; last: ${last}` : "";
  if (s.successful > 0) return { ...s, phase: "Successful", message: `${why}: ${tally}${suffix}` };
  const phase = s.failed > 0 ? "Failed" : "Inconclusive";
  return { ...s, phase, message: `${why} without a successful measurement (${tally})${suffix}` };
}

/**
 * Adds a measurement to a metric's status and decides its phase (Argo semantics, fail closed):
 * failed > failureLimit: Failed; consecutiveError > consecutiveErrorLimit: Error;
 * inconclusive > inconclusiveLimit: Inconclusive; count judged measurements reached:
 * Successful only with at least one Successful measurement, else Failed (if any failed) or
 * Inconclusive; otherwise Running. A metric in a final phase is returned unchanged.
 */
export function recordMeasurement(status: MetricStatus, measurement: Measurement, limits: MetricLimits): MetricStatus {
  if (isTerminal(status.phase)) return status;
  const s: MetricStatus = {
    ...status,
    measurements: [...(status.measurements ?? []), measurement].slice(-MEASUREMENT_HISTORY),
  };
  switch (measurement.phase) {
    case "Successful":
      s.successful++;
      break;
    case "Failed":
      s.failed++;
      break;
    case "Inconclusive":
      s.inconclusive++;
      break;
    case "Error":
      s.error++;
      break;
  }
  s.consecutiveError = measurement.phase === "Error" ? s.consecutiveError + 1 : 0;
  if (measurement.value !== undefined) s.lastValue = measurement.value;
  if (measurement.judge !== undefined) s.judge = measurement.judge;
  const last = measurement.message ?? "";

  if (s.failed > limits.failureLimit) {
    return { ...s, phase: "Failed", message: `${s.failed} failed measurements, more than failureLimit ${limits.failureLimit}; last: ${last}` };
  }
  if (s.consecutiveError > limits.consecutiveErrorLimit) {
    return {
      ...s,
      phase: "Error",
      message: `${s.consecutiveError} errors in a row, more than consecutiveErrorLimit ${limits.consecutiveErrorLimit}; last: ${last}`,
    };
  }
  if (s.inconclusive > limits.inconclusiveLimit) {
    return {
      ...s,
      phase: "Inconclusive",
      message: `${s.inconclusive} inconclusive measurements, more than inconclusiveLimit ${limits.inconclusiveLimit}; last: ${last}`,
    };
  }
  if (limits.count !== undefined && judged(s) >= limits.count) return conclude(s, `count ${limits.count} reached`);
  const early = earlyPass(s, measurement, limits);
  if (early !== undefined) return { ...s, phase: "Successful", message: `passed early: ${early}; last: ${last}` };
  return { ...s, phase: "Running", message: last };
}

/**
 * The rule that passes a metric before its count (README "Analysis", ADR 0011 addendum), or
 * undefined. Only a metric with a count (step analysis) and at least one Successful measurement
 * may pass early, in one of two ways:
 * - settled: the remaining measurements cannot change the outcome. Even if every one of them
 *   failed, failed measurements would stay within failureLimit, and even if every one were
 *   inconclusive, inconclusive ones would stay within inconclusiveLimit. Threshold metrics have
 *   no sampling model, so this is their only early pass, and it never decides otherwise than
 *   the full count would (errors aside: they are missing evidence, not evidence);
 * - conclusive: the latest measurement is a statistical judge's Pass whose confidence bound of
 *   Cliff's delta lies inside the effect-size bound (judge.ts nonInferiority), at alpha spent
 *   over the count, so a regressed candidate passes early with probability at most alpha.
 * The minimum evidence comes first: a judge measurement is only a Pass with minSamples per side.
 */
export function earlyPass(s: MetricStatus, latest: Measurement, limits: MetricLimits): string | undefined {
  if (limits.count === undefined || s.successful === 0) return undefined;
  const remaining = limits.count - judged(s);
  if (remaining <= 0) return undefined;
  if (latest.phase === "Successful" && latest.judge?.conclusive === true) {
    return `conclusive after ${judged(s)} of ${limits.count} measurements`;
  }
  if (s.failed + remaining <= limits.failureLimit && s.inconclusive + remaining <= limits.inconclusiveLimit) {
    return `settled after ${judged(s)} of ${limits.count} measurements (${s.successful} successful): the ${remaining} left could not exceed failureLimit ${limits.failureLimit} or inconclusiveLimit ${limits.inconclusiveLimit}`;
  }
  return undefined;
}

/**
 * Ends a metric that has no count when its run stops (its step ended, the rollout finished):
 * Successful only with at least one Successful measurement. Final phases are kept.
 */
export function concludeMetric(status: MetricStatus): MetricStatus {
  if (isTerminal(status.phase)) return status;
  if (judged(status) === 0) {
    const last = lastMessage(status);
    return { ...status, phase: "Inconclusive", message: `stopped before any measurement was judged${last ? `; last: ${last}` : ""}` };
  }
  return conclude(status, "run stopped");
}

// ---------------------------------------------------------------------------------------------
// (c) The run

// Worst first. Failed outranks Error: a breach is evidence, an error is only missing evidence.
const SEVERITY: readonly RunPhase[] = ["Failed", "Error", "Inconclusive", "Running", "Pending", "Successful"];

/** A metric's phase as the run counts it: Successful without a successful measurement is not. */
function effectivePhase(m: MetricStatus): MetricPhase {
  return m.phase === "Successful" && m.successful === 0 ? "Inconclusive" : m.phase;
}

/**
 * The run's phase: the worst metric's (Failed, Error, Inconclusive, Running, Pending,
 * Successful). Metrics claiming Successful without a successful measurement count as
 * Inconclusive, and a run without metrics is Inconclusive, so it can never promote.
 */
export function runPhase(metrics: readonly MetricStatus[]): RunPhase {
  return summarizeRun(metrics).phase;
}

/** The run's phase with the metric that decided it and a message for conditions and Events. */
export interface RunSummary {
  phase: RunPhase;
  /** The worst metric (absent when all succeeded or there are no metrics). */
  metric?: MetricStatus;
  message: string;
}

/**
 * Summarizes a run: its phase (see {@link runPhase}) and a message naming the worst metric,
 * its value and its resolved query, which is what a Degraded condition must show. Statistical
 * judge metrics count by their combined verdict under `judge`'s thresholds (applyJudgeVerdict).
 */
export function summarizeRun(all: readonly MetricStatus[], judge: Partial<ScoreThresholds> = {}): RunSummary {
  if (all.length === 0) return { phase: "Inconclusive", message: "the run has no metrics" };
  // Statistical judge metrics are scored together (judge-metric.ts) before the worst one decides.
  const { metrics } = applyJudgeVerdict(all, judge);
  let worst: MetricStatus | undefined;
  let worstRank = SEVERITY.length;
  for (const m of metrics) {
    const rank = SEVERITY.indexOf(effectivePhase(m));
    if (rank < worstRank) {
      worst = m;
      worstRank = rank;
    }
  }
  const phase = SEVERITY[worstRank] ?? "Inconclusive";
  if (phase === "Successful" || worst === undefined) {
    return { phase: "Successful", message: `all ${metrics.length} metrics successful` };
  }
  const parts = [`metric "${worst.name}" is ${phase}`];
  if (worst.message) parts.push(worst.message);
  else if (effectivePhase(worst) !== worst.phase) parts.push("it reports Successful without a successful measurement");
  if (worst.query) parts.push(`query: ${worst.query}`);
  return { phase, metric: worst, message: parts.join("; ") };
}

// ---------------------------------------------------------------------------------------------
// (e) Scheduling

/**
 * When the metric's next measurement is due: the run start plus initialDelay for the first,
 * the previous measurement plus interval after that (errors included, so an unreachable
 * Prometheus is retried at the same pace). Undefined once the metric is final.
 * @returns the due time and how long to wait from `now` (0 when already due).
 */
export function nextMeasurementDue(
  status: MetricStatus,
  intervalMs: number,
  initialDelayMs: number,
  now: Date,
  runStartedAt: Date,
): { at: Date; waitMs: number } | undefined {
  if (isTerminal(status.phase)) return undefined;
  const last = status.measurements?.at(-1);
  const lastMs = last === undefined ? NaN : Date.parse(last.time);
  let at: number;
  if (Number.isFinite(lastMs)) at = lastMs + intervalMs;
  else if (last !== undefined || judged(status) + status.error > 0) at = now.getTime();
  else at = runStartedAt.getTime() + initialDelayMs;
  return { at: new Date(at), waitMs: Math.max(0, at - now.getTime()) };
}
