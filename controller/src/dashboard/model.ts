/**
 * What the dashboard shows of AIRollouts, as plain data (the JSON shapes of API.md): a list row,
 * a rollout's detail (step timeline, analysis series, events) and the bounded history the server
 * keeps from its watch. Pure functions and one in-memory class: no I/O, so the handlers' logic is
 * tested without an API server.
 *
 * Why a history here: the status keeps only the current step's start, the latest measurements of
 * each metric (bounded) and no weight over time. The dashboard server remembers what its watch saw
 * (weights, step starts, measurements) for as long as it runs, bounded per rollout and in the
 * number of rollouts; a restarted dashboard starts over from what the status holds.
 */
import { metricCriteria } from "../analysis/assess.ts";
import { shortHash } from "../api/hash.ts";
import type { AIRollout, Status, VersionSpec } from "../api/schema.ts";

/** Weight points kept per rollout. */
export const MAX_WEIGHT_POINTS = 500;
/** Measurements kept per metric of a run. */
export const MAX_MEASUREMENTS = 500;
/** Rollouts with a history; the least recently changed is forgotten first. */
export const MAX_ROLLOUTS = 2000;
/** Steps whose times are remembered per rollout (a spec has at most a few dozen). */
const MAX_STEP_TIMES = 256;
/** Metric series per rollout (runs x metrics). */
const MAX_SERIES = 256;

export interface VersionInfo {
  version: string | null;
  model: string | null;
  /** sha256 (16 hex) of the prompt: of the inline text, or the revision's digest of a promptRef's content. */
  promptDigest: string | null;
  /** `configMap/key` when the prompt comes from a ConfigMap. */
  promptRef: string | null;
}

export interface RolloutRow {
  namespace: string;
  name: string;
  phase: string;
  pauseReason: string | null;
  message: string | null;
  step: { index: number; total: number };
  weight: number;
  stable: VersionInfo;
  candidate: VersionInfo;
  shadow: { mismatchRate: string | null; compared: number | null; judged: boolean | null; coverage: string | null };
  ready: string | null;
  createdAt: string | null;
  ageSeconds: number | null;
  resourceVersion: string;
}

export interface TimelineStep {
  index: number;
  type: string;
  weight: number | null;
  durationSeconds: number | null;
  metrics: string[] | null;
  state: "done" | "current" | "pending";
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Measurement {
  time: string;
  value: string | null;
  phase: string;
  message: string | null;
}

export interface MetricView {
  name: string;
  phase: string;
  query: string | null;
  threshold: { successCondition: string | null; failureCondition: string | null; min: number | null; max: number | null } | null;
  lastValue: string | null;
  successful: number;
  failed: number;
  inconclusive: number;
  error: number;
  message: string | null;
  measurements: Measurement[];
  judge: unknown;
}

export interface AnalysisRunView {
  id: string;
  kind: "current" | "background" | "history";
  step: number | null;
  phase: string;
  startedAt: string;
  finishedAt: string | null;
  metrics: MetricView[];
}

export interface EventView {
  type: string;
  reason: string;
  message: string;
  count: number;
  firstTime: string | null;
  lastTime: string | null;
}

export interface RolloutDetail {
  row: RolloutRow;
  object: AIRollout;
  conditions: NonNullable<Status["conditions"]>;
  timeline: TimelineStep[];
  weightHistory: { time: string; weight: number }[];
  analysis: AnalysisRunView[];
  shadow: Status["shadow"] | null;
  events: EventView[];
}

/** The parts of the spec the dashboard reads; the object's spec is untyped (it is read as is). */
interface SpecView {
  stable?: VersionSpec;
  candidate?: VersionSpec;
  analysis?: { metrics?: { name?: string; templateRef?: string; successCondition?: string; failureCondition?: string; min?: number; max?: number }[] };
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

function versionInfo(v: VersionSpec | undefined, versionName: string | undefined, refDigest: string | undefined): VersionInfo {
  const cfg = v?.config;
  const ref = cfg?.promptRef;
  return {
    version: versionName ?? v?.version ?? null,
    model: cfg?.model ?? null,
    promptDigest: typeof cfg?.prompt === "string" ? shortHash(cfg.prompt) : ref ? (refDigest ?? null) : null,
    promptRef: ref ? `${ref.configMap}/${ref.key}` : null,
  };
}

/** The shadow columns of a row. */
function shadowOf(s: Status): RolloutRow["shadow"] {
  const sh = s.shadow;
  return { mismatchRate: sh?.mismatchRate ?? null, compared: sh?.compared ?? null, judged: sh?.judged ?? null, coverage: sh?.coverage ?? null };
}

/** Seconds since a timestamp; null when there is none or it does not parse. */
function ageOf(created: string | null, now: number): number | null {
  const ms = created ? Date.parse(created) : NaN;
  return Number.isFinite(ms) ? Math.max(0, Math.floor((now - ms) / 1000)) : null;
}

/** One list row of a rollout (API.md RolloutRow). `now` for the age. */
export function toRow(obj: AIRollout, now = Date.now()): RolloutRow {
  const s: Status = obj.status ?? {};
  const spec = (obj.spec ?? {}) as SpecView;
  const created = obj.metadata.creationTimestamp ?? null;
  return {
    namespace: obj.metadata.namespace,
    name: obj.metadata.name,
    phase: s.phase ?? "Pending",
    pauseReason: s.pauseReason ?? null,
    message: s.message ?? null,
    step: { index: s.currentStep ?? 0, total: s.stepCount ?? s.steps?.length ?? 0 },
    weight: s.canaryWeight ?? 0,
    // The stable served is the promoted record when there is one (it outranks an unchanged spec.stable).
    stable: versionInfo(s.stable?.spec ?? spec.stable, s.stableVersion, undefined),
    candidate: versionInfo(spec.candidate, s.candidateVersion, s.revisionInputs?.["spec.candidate.config.promptRef"]),
    shadow: shadowOf(s),
    ready: s.conditions?.find((c) => c.type === "Ready")?.status ?? null,
    createdAt: created,
    ageSeconds: ageOf(created, now),
    resourceVersion: obj.metadata.resourceVersion,
  };
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/**
 * The thresholds a metric of spec.analysis.metrics is judged by (its own, or its built-in
 * template's, as the controller applies them); null when the spec has no such metric.
 */
function thresholdOf(spec: SpecView, metric: string): MetricView["threshold"] {
  const list = spec.analysis?.metrics;
  const m = Array.isArray(list) ? list.find((x) => x?.name === metric) : undefined;
  if (!m) return null;
  const c = metricCriteria({ templateRef: str(m.templateRef) ?? undefined, successCondition: str(m.successCondition) ?? undefined, failureCondition: str(m.failureCondition) ?? undefined, min: num(m.min) ?? undefined, max: num(m.max) ?? undefined });
  return { successCondition: c.successCondition ?? null, failureCondition: c.failureCondition ?? null, min: c.min ?? null, max: c.max ?? null };
}

/** A rollout's remembered series: weights, step starts and ends, measurements by run and metric. */
interface Remembered {
  weights: { time: string; weight: number }[];
  steps: Map<number, { startedAt: string | null; finishedAt: string | null }>;
  measurements: Map<string, Measurement[]>;
  lastStep: number | undefined;
}

/**
 * What the dashboard's watch saw of each rollout, bounded: MAX_ROLLOUTS rollouts (least recently
 * changed forgotten first), MAX_WEIGHT_POINTS weights, MAX_MEASUREMENTS measurements per metric.
 */
export class History {
  readonly #byKey = new Map<string, Remembered>();

  /** Records what one observed version of a rollout adds (idempotent for a repeated object). */
  observe(obj: AIRollout, now = new Date()): void {
    const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
    let h = this.#byKey.get(key);
    if (h) this.#byKey.delete(key);
    else h = { weights: [], steps: new Map(), measurements: new Map(), lastStep: undefined };
    this.#byKey.set(key, h); // re-inserted: Map order is least recently changed first
    while (this.#byKey.size > MAX_ROLLOUTS) this.#byKey.delete(this.#byKey.keys().next().value as string);
    const s = obj.status ?? {};
    this.#observeWeight(h, s, now);
    this.#observeStep(h, s, now);
    for (const run of runsOf(s)) for (const m of run.run.metrics) this.#merge(h, `${run.run.id}/${m.name}`, m.measurements ?? []);
  }

  /** Forgets a deleted rollout. */
  forget(namespace: string, name: string): void {
    this.#byKey.delete(`${namespace}/${name}`);
  }

  /** The remembered series of a rollout (empty when never seen). */
  get(namespace: string, name: string): Readonly<Remembered> {
    return this.#byKey.get(`${namespace}/${name}`) ?? { weights: [], steps: new Map(), measurements: new Map(), lastStep: undefined };
  }

  #observeWeight(h: Remembered, s: Status, now: Date): void {
    const weight = s.canaryWeight ?? 0;
    const last = h.weights.at(-1);
    if (last && last.weight === weight) return;
    h.weights.push({ time: now.toISOString(), weight });
    if (h.weights.length > MAX_WEIGHT_POINTS) h.weights.splice(0, h.weights.length - MAX_WEIGHT_POINTS);
  }

  #observeStep(h: Remembered, s: Status, now: Date): void {
    const step = s.currentStep;
    if (step === undefined || step === h.lastStep) return;
    const at = s.stepStartedAt ?? now.toISOString();
    // Seen moving forward: the steps passed finished when this one started.
    if (h.lastStep !== undefined && step > h.lastStep) {
      for (let i = h.lastStep; i < step && i < MAX_STEP_TIMES; i++) {
        const t = h.steps.get(i) ?? { startedAt: null, finishedAt: null };
        t.finishedAt ??= at;
        h.steps.set(i, t);
      }
    }
    if (step < MAX_STEP_TIMES) h.steps.set(step, { startedAt: at, finishedAt: null });
    h.lastStep = step;
  }

  #merge(h: Remembered, key: string, fresh: readonly { time: string; value?: string; phase: string; message?: string }[]): void {
    let series = h.measurements.get(key);
    if (!series) {
      if (h.measurements.size >= MAX_SERIES) return;
      series = [];
      h.measurements.set(key, series);
    }
    const seen = new Set(series.map((m) => m.time));
    for (const m of fresh) {
      if (seen.has(m.time)) continue;
      seen.add(m.time);
      series.push({ time: m.time, value: m.value ?? null, phase: m.phase, message: m.message ?? null });
    }
    series.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    if (series.length > MAX_MEASUREMENTS) series.splice(0, series.length - MAX_MEASUREMENTS);
  }
}

type Run = NonNullable<NonNullable<Status["analysis"]>["current"]>;

function runsOf(s: Status): { kind: AnalysisRunView["kind"]; run: Run }[] {
  const a = s.analysis;
  const runs: { kind: AnalysisRunView["kind"]; run: Run }[] = [];
  if (a?.current) runs.push({ kind: "current", run: a.current });
  if (a?.background) runs.push({ kind: "background", run: a.background });
  for (const r of a?.history ?? []) runs.push({ kind: "history", run: r });
  return runs;
}

/** The step timeline: each resolved step, its state and the times known of it. */
export function timeline(s: Status, remembered: Readonly<Remembered>): TimelineStep[] {
  const current = s.currentStep ?? 0;
  const done = s.phase === "Succeeded";
  // Finished analysis runs know when their step ran, even from before the dashboard started.
  const analysisTimes = new Map<number, { startedAt: string; finishedAt: string | null }>();
  for (const { run } of runsOf(s)) if (run.step !== undefined && !analysisTimes.has(run.step)) analysisTimes.set(run.step, { startedAt: run.startedAt, finishedAt: run.finishedAt ?? null });
  return (s.steps ?? []).map((st) => {
    const state: TimelineStep["state"] = done || st.index < current ? "done" : st.index === current ? "current" : "pending";
    const seen = remembered.steps.get(st.index);
    const fromRun = analysisTimes.get(st.index);
    let startedAt = seen?.startedAt ?? fromRun?.startedAt ?? null;
    if (state === "current" && s.stepStartedAt) startedAt = s.stepStartedAt;
    const finishedAt = state === "pending" ? null : (seen?.finishedAt ?? fromRun?.finishedAt ?? null);
    return {
      index: st.index,
      type: st.type,
      weight: st.weight ?? null,
      durationSeconds: st.durationSeconds ?? null,
      metrics: st.metrics ?? null,
      state,
      startedAt,
      finishedAt: state === "current" ? null : finishedAt,
    };
  });
}

/** The analysis runs with each metric's series (status measurements merged with the remembered ones). */
export function analysisViews(obj: AIRollout, remembered: Readonly<Remembered>): AnalysisRunView[] {
  const spec = (obj.spec ?? {}) as SpecView;
  return runsOf(obj.status ?? {}).map(({ kind, run }) => ({
    id: run.id,
    kind,
    step: run.step ?? null,
    phase: run.phase,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt ?? null,
    metrics: run.metrics.map((m) => {
      const own = (m.measurements ?? []).map((x) => ({ time: x.time, value: x.value ?? null, phase: x.phase, message: x.message ?? null }));
      const series = remembered.measurements.get(`${run.id}/${m.name}`) ?? own;
      return {
        name: m.name,
        phase: m.phase,
        query: m.query ?? null,
        threshold: thresholdOf(spec, m.name),
        lastValue: m.lastValue ?? null,
        successful: m.successful,
        failed: m.failed,
        inconclusive: m.inconclusive,
        error: m.error,
        message: m.message ?? null,
        measurements: series.length >= own.length ? [...series] : own,
        judge: (m as { judge?: unknown }).judge ?? null,
      };
    }),
  }));
}

/** A core/v1 Event as listed. */
export interface KubeEvent {
  type?: string;
  reason?: string;
  message?: string;
  note?: string;
  count?: number;
  firstTimestamp?: string | null;
  lastTimestamp?: string | null;
  eventTime?: string | null;
  metadata?: { creationTimestamp?: string };
}

/** Most events shown on a rollout's page. */
export const MAX_EVENTS = 100;

/** Events newest first, at most MAX_EVENTS. */
export function eventViews(events: readonly KubeEvent[]): EventView[] {
  const views = events.map((e) => {
    const last = e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? null;
    return { type: e.type ?? "Normal", reason: e.reason ?? "", message: e.message ?? e.note ?? "", count: e.count ?? 1, firstTime: e.firstTimestamp ?? last, lastTime: last };
  });
  views.sort((a, b) => ((b.lastTime ?? "") < (a.lastTime ?? "") ? -1 : (b.lastTime ?? "") > (a.lastTime ?? "") ? 1 : 0));
  return views.slice(0, MAX_EVENTS);
}

/** A rollout's page (API.md GET /api/rollouts/:ns/:name). */
export function toDetail(obj: AIRollout, history: History, events: readonly KubeEvent[], now = Date.now()): RolloutDetail {
  const s = obj.status ?? {};
  const remembered = history.get(obj.metadata.namespace, obj.metadata.name);
  const weights = remembered.weights.length ? [...remembered.weights] : [{ time: new Date(now).toISOString(), weight: s.canaryWeight ?? 0 }];
  return {
    row: toRow(obj, now),
    object: obj,
    conditions: s.conditions ?? [],
    timeline: timeline(s, remembered),
    weightHistory: weights,
    analysis: analysisViews(obj, remembered),
    shadow: s.shadow ?? null,
    events: eventViews(events),
  };
}
