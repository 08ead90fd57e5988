/**
 * The canary state machine (pure): from an initialised status, run the steps.
 *
 *   Initialized -> ShadowTesting | Progressing (step i: shadow, setWeight, pause, analysis)
 *     -> Promoting -> Succeeded
 *   analysis Failed (or abort)      -> RollingBack -> RolledBack
 *   analysis Inconclusive or Error  -> Paused (waits for a human: promote, abort)
 *   pause without duration          -> Paused (waits for promote)
 *
 * Fail closed: a step analysis completes only on a Successful run, and a run is Successful only
 * with at least one successful measurement per metric. A measurement error is not evidence
 * against the candidate, so an analysis that errors pauses instead of rolling back.
 *
 * Measurements are I/O: a pass asks for the queries that are due (plan.measure); the controller
 * runs them and calls reconcile again with the outcomes in world.measurements.
 */
import { ANNOTATIONS, type AIRollout, type Phase, type ResolvedStep, type Spec, type Status } from "../api/schema.ts";
import {
  concludeMetric,
  judgeMeasurement,
  newMetricStatus,
  nextMeasurementDue,
  recordMeasurement,
  renderMetricQuery,
  resolveAnalysis,
  summarizeRun,
  type AnalysisRunStatus,
  type ResolvedMetric,
  type SpecError,
} from "../analysis/assess.ts";
import { formatDuration, parseDuration } from "../api/duration.ts";
import { setCondition } from "./conditions.ts";
import { ConditionType, Reason } from "./reasons.ts";
import type { EnsureRequest, EventSpec, MeasureRequest, Observed, Plan, World } from "./types.ts";
import { referenceDigest, versionReferences } from "./references.ts";
import type { EnvironmentRole, EnvironmentStatus } from "./ports.ts";
import { createHash } from "node:crypto";

/** Metrics of a rollout, resolved once per pass: for step runs (count defaults) and background. */
export interface ResolvedAnalysis {
  step: Map<string, ResolvedMetric>;
  background: Map<string, ResolvedMetric>;
  shadow?: ResolvedMetric;
  errors: SpecError[];
}

/**
 * Resolves spec.analysis. Step analysis takes failureLimit+1 measurements unless a metric sets
 * count, so a breach can be confirmed before rollback; background metrics run until the end.
 */
export function resolveRolloutAnalysis(spec: Spec): ResolvedAnalysis {
  const out: ResolvedAnalysis = { step: new Map(), background: new Map(), errors: [] };
  const a = spec.analysis;
  if (!a) return out;
  const step = resolveAnalysis(a, { defaultCount: a.failureLimit + 1 });
  out.errors.push(...step.errors);
  for (const m of step.metrics) out.step.set(m.name, m);
  if (a.background) {
    const bg = resolveAnalysis(a, {});
    for (const m of bg.metrics) if (!a.background.metrics?.length || a.background.metrics.includes(m.name)) out.background.set(m.name, m);
    for (const name of a.background.metrics ?? []) {
      if (!out.step.has(name)) out.errors.push({ metric: name, field: "background.metrics", message: `spec.analysis.background.metrics: no metric named "${name}"` });
    }
  }
  for (const s of spec.strategy.steps) {
    for (const name of s.analysis?.metrics ?? []) {
      if (!out.step.has(name) && !out.errors.some((e) => e.metric === name)) {
        out.errors.push({ metric: name, field: "strategy.steps.analysis.metrics", message: `spec.strategy.steps: analysis names metric "${name}", which spec.analysis.metrics does not define` });
      }
    }
  }
  if (spec.strategy.steps.some((s) => s.shadow)) {
    const max = spec.shadow?.maxMismatchRate ?? 0.05;
    const r = resolveAnalysis({ ...a, metrics: [{ name: "shadow-mismatch-rate", templateRef: "shadow-mismatch-rate", max, onEmpty: "Inconclusive" }] }, { defaultCount: 1 });
    if (r.metrics[0]) out.shadow = r.metrics[0];
    out.errors.push(...r.errors);
  }
  return out;
}

interface Ctx {
  obs: Observed;
  spec: Spec;
  steps: ResolvedStep[];
  analysis: ResolvedAnalysis;
  now: Date;
  status: Status;
  events: EventSpec[];
  actions: Plan["actions"];
  measure: MeasureRequest[];
  wakeAt: number[];
  /** Set when the current step overran progressDeadline. */
  stalled?: string;
  ensure: EnsureRequest[];
  /** An environment failure that may clear by itself: retry with backoff. */
  backoff?: boolean;
}

const TERMINAL: ReadonlySet<Phase> = new Set(["Succeeded", "RolledBack"]);
const iso = (d: Date) => d.toISOString();

function transition(ctx: Ctx, to: Phase, reason: string, message: string, type: "Normal" | "Warning" = "Normal"): void {
  const from = ctx.status.phase ?? "Pending";
  ctx.status.phase = to;
  ctx.status.message = message;
  if (to === "Paused") ctx.status.pauseReason = reason;
  else delete ctx.status.pauseReason;
  // Every phase change and every new step is an Event; the key makes replays idempotent.
  if (from !== to || reason === Reason.StepStarted) {
    ctx.events.push({
      type,
      reason,
      message,
      dedupeKey: `a${ctx.status.attempt ?? 0}/g${ctx.obs.object.metadata.generation}/${ctx.status.revision}/s${ctx.status.currentStep}/${from}->${to}`,
    });
  }
}

function target(ctx: Ctx) {
  const m = ctx.obs.object.metadata;
  return { rollout: m.name, namespace: m.namespace, stable: ctx.spec.stable.version, candidate: ctx.spec.candidate.version };
}

function newRun(ctx: Ctx, id: string, metrics: ResolvedMetric[], step?: number): AnalysisRunStatus {
  return {
    id,
    ...(step !== undefined ? { step } : {}),
    phase: "Running",
    startedAt: iso(ctx.now),
    metrics: metrics.map((m) => newMetricStatus(m.name, renderMetricQuery(m, target(ctx)))),
  };
}

/**
 * Advances a run by the measurements due now. Without an outcome for a due metric the pass asks
 * for it (ctx.measure) and the run stays as it is.
 */
function stepRun(ctx: Ctx, run: AnalysisRunStatus, metrics: Map<string, ResolvedMetric>): AnalysisRunStatus {
  if (run.phase !== "Running" && run.phase !== "Pending") return run;
  const next: AnalysisRunStatus = { ...run, metrics: [...run.metrics] };
  const timeoutMs = parseDuration(ctx.spec.analysis?.prometheus.timeout ?? "10s");
  next.metrics = run.metrics.map((ms) => {
    const m = metrics.get(ms.name);
    if (!m) return ms;
    const due = nextMeasurementDue(ms, m.intervalMs, m.initialDelayMs, ctx.now, new Date(run.startedAt));
    if (!due) return ms;
    if (due.waitMs > 0) {
      ctx.wakeAt.push(due.at.getTime());
      return ms;
    }
    const key = `${run.id}/${ms.name}`;
    const outcome = ctx.obs.world.measurements?.[key];
    if (!outcome) {
      ctx.measure.push({ key, query: ms.query ?? renderMetricQuery(m, target(ctx)), address: ctx.spec.analysis!.prometheus.address, timeoutMs });
      ctx.wakeAt.push(ctx.now.getTime() + m.intervalMs);
      return ms;
    }
    let recorded = recordMeasurement(ms, judgeMeasurement(m, outcome, ctx.now), m);
    if (outcome.kind === "error" && outcome.permanent) {
      // Prometheus rejected the query itself: retrying cannot help, so stop now and say why.
      recorded = { ...recorded, phase: "Error", message: `query rejected by Prometheus: ${outcome.message}` };
      ctx.status.conditions = setCondition(
        ctx.status.conditions,
        { type: ConditionType.Degraded, status: "True", reason: Reason.InvalidQuery, message: `metric "${ms.name}": ${outcome.message}; query: ${recorded.query ?? ""}` },
        ctx.now,
        ctx.obs.object.metadata.generation,
      );
    }
    if (recorded.phase === "Running") ctx.wakeAt.push(ctx.now.getTime() + m.intervalMs);
    return recorded;
  });
  // The worst metric decides: one Failed metric ends the run at once, as in Argo Rollouts.
  const summary = summarizeRun(next.metrics);
  if (summary.phase === "Running" || summary.phase === "Pending") {
    next.phase = "Running";
  } else {
    next.phase = summary.phase;
    next.finishedAt = iso(ctx.now);
  }
  return next;
}

function archive(ctx: Ctx, run: AnalysisRunStatus | undefined): void {
  if (!run) return;
  const limit = ctx.spec.analysis?.historyLimit ?? 10;
  const done = run.phase === "Running" || run.phase === "Pending" ? { ...run, phase: summarizeRun(run.metrics.map(concludeMetric)).phase, finishedAt: iso(ctx.now) } : run;
  const history = [done, ...(ctx.status.analysis?.history ?? []).filter((r) => r.id !== run.id)].slice(0, limit);
  ctx.status.analysis = { ...ctx.status.analysis, history };
}

function setRun(ctx: Ctx, which: "current" | "background", run: AnalysisRunStatus | undefined): void {
  const a = { ...ctx.status.analysis };
  if (run) a[which] = run;
  else delete a[which];
  ctx.status.analysis = a;
}

/** Why the run stopped, naming the metric, its query and its value (for conditions and Events). */
function runMessage(run: AnalysisRunStatus): string {
  return summarizeRun(run.metrics).message;
}

function rollBack(ctx: Ctx, reason: string, message: string): void {
  ctx.status.canaryWeight = 0;
  ctx.status.shadowEnabled = false;
  archive(ctx, ctx.status.analysis?.current);
  setRun(ctx, "current", undefined);
  archive(ctx, ctx.status.analysis?.background);
  setRun(ctx, "background", undefined);
  transition(ctx, "RollingBack", reason, `Rolling back: ${message}`, "Warning");
  ctx.status.conditions = setCondition(ctx.status.conditions, { type: ConditionType.Degraded, status: "True", reason, message }, ctx.now, ctx.obs.object.metadata.generation);
  const roles = candidateRoles(ctx.spec);
  if (roles.length) ctx.actions.push({ type: "destroyEnvironments", reason: "rollback", roles });
}

function pause(ctx: Ctx, reason: string, message: string): void {
  if (ctx.status.phase !== "Paused") ctx.status.pauseStartedAt = iso(ctx.now);
  transition(ctx, "Paused", reason, message, reason === Reason.PauseStep ? "Normal" : "Warning");
}

/** Enters step i (or promotion after the last step). */
function enterStep(ctx: Ctx, i: number): void {
  ctx.status.currentStep = i;
  ctx.status.stepStartedAt = iso(ctx.now);
  delete ctx.status.pauseStartedAt;
  archive(ctx, ctx.status.analysis?.current);
  setRun(ctx, "current", undefined);
  if (i >= ctx.steps.length) {
    ctx.status.canaryWeight = 100;
    ctx.status.shadowEnabled = false;
    transition(ctx, "Promoting", Reason.Promoting, `All ${ctx.steps.length} steps done: promoting ${ctx.spec.candidate.version}`);
    return;
  }
  const step = ctx.steps[i]!;
  if (step.type === "setWeight") ctx.status.canaryWeight = step.weight ?? 0;
  ctx.status.shadowEnabled = step.type === "shadow";
  const desc = describeStep(step);
  transition(ctx, step.type === "shadow" ? "ShadowTesting" : "Progressing", Reason.StepStarted, `Step ${i + 1}/${ctx.steps.length}: ${desc}`);
}

function describeStep(s: ResolvedStep): string {
  switch (s.type) {
    case "setWeight":
      return `setWeight ${s.weight}`;
    case "pause":
      return s.durationSeconds !== undefined ? `pause ${formatDuration(s.durationSeconds * 1000)}` : "pause until promoted";
    case "shadow":
      return `shadow${s.durationSeconds !== undefined ? ` ${formatDuration(s.durationSeconds * 1000)}` : ""}: mirroring traffic to the candidate and diffing its answers`;
    case "analysis":
      return `analysis (${(s.metrics ?? []).join(", ")})`;
  }
}

/** Whether the current step is complete; may start runs, ask for measurements or pause. */
function stepComplete(ctx: Ctx, promoted: boolean): boolean | "stop" {
  const i = ctx.status.currentStep ?? 0;
  const step = ctx.steps[i]!;
  if (promoted) return true;
  const started = Date.parse(ctx.status.stepStartedAt ?? iso(ctx.now));
  const elapsed = (ms: number) => {
    if (ctx.now.getTime() - started >= ms) return true;
    ctx.wakeAt.push(started + ms);
    return false;
  };
  switch (step.type) {
    case "setWeight":
      return true;
    case "pause":
      if (step.durationSeconds === undefined) {
        pause(ctx, Reason.PauseStep, `Step ${i + 1}/${ctx.steps.length}: paused until promoted (kubectl airollout promote ${ctx.obs.object.metadata.name})`);
        return "stop";
      }
      return elapsed(step.durationSeconds * 1000);
    case "shadow": {
      if (step.durationSeconds !== undefined && !elapsed(step.durationSeconds * 1000)) return false;
      if (!ctx.analysis.shadow) return true;
      return judgeStepRun(ctx, `shadow-${i}`, new Map([["shadow-mismatch-rate", ctx.analysis.shadow]]), i);
    }
    case "analysis": {
      const names = step.metrics ?? [];
      const metrics = new Map([...ctx.analysis.step].filter(([n]) => names.includes(n)));
      return judgeStepRun(ctx, `step-${i}`, metrics, i);
    }
  }
}

function judgeStepRun(ctx: Ctx, idBase: string, metrics: Map<string, ResolvedMetric>, i: number): boolean | "stop" {
  const id = `${idBase}-a${ctx.status.attempt ?? 0}`;
  let run = ctx.status.analysis?.current;
  if (!run || run.id !== id) run = newRun(ctx, id, [...metrics.values()], i);
  run = stepRun(ctx, run, metrics);
  setRun(ctx, "current", run);
  switch (run.phase) {
    case "Successful":
      return true;
    case "Failed":
      rollBack(ctx, Reason.AnalysisFailed, runMessage(run));
      return "stop";
    case "Inconclusive":
      pause(ctx, Reason.AnalysisInconclusive, `Analysis inconclusive, waiting for a human (promote or abort): ${runMessage(run)}`);
      return "stop";
    case "Error":
      pause(ctx, Reason.AnalysisError, `Analysis could not measure, waiting for a human (promote or abort): ${runMessage(run)}`);
      return "stop";
    default:
      return false;
  }
}

/** Background analysis: runs from startingStep through the last step; failure rolls back. */
function background(ctx: Ctx): boolean {
  const bg = ctx.spec.analysis?.background;
  if (!bg || ctx.analysis.background.size === 0) return true;
  if ((ctx.status.currentStep ?? 0) < bg.startingStep) return true;
  const id = `background-a${ctx.status.attempt ?? 0}`;
  let run = ctx.status.analysis?.background;
  if (!run || run.id !== id) run = newRun(ctx, id, [...ctx.analysis.background.values()]);
  run = stepRun(ctx, run, ctx.analysis.background);
  setRun(ctx, "background", run);
  if (run.phase === "Failed") {
    rollBack(ctx, Reason.AnalysisFailed, `background analysis: ${runMessage(run)}`);
    return false;
  }
  if (run.phase === "Inconclusive" || run.phase === "Error") {
    pause(ctx, run.phase === "Error" ? Reason.AnalysisError : Reason.AnalysisInconclusive, `Background analysis ${run.phase === "Error" ? "could not measure" : "inconclusive"}, waiting for a human: ${runMessage(run)}`);
    return false;
  }
  return true;
}

/** The candidate's environment roles: canary, plus shadow when a step mirrors to it. */
function candidateRoles(spec: Spec): EnvironmentRole[] {
  if (!spec.candidate.image) return [];
  return spec.strategy.steps.some((st) => st.shadow) ? ["canary", "shadow"] : ["canary"];
}

/**
 * A hash of what the stable environment deploys, so an edit to it updates the stack: the spec,
 * and the content of the ConfigMap/Secret keys it refers to (its prompt, env valueFrom).
 */
export function stableRevision(spec: Spec, world: Pick<World, "references"> = { references: {} }): string {
  const v = spec.stable;
  const refs = versionReferences(spec, "stable").map((r) => [r.field, referenceDigest(world, r) ?? null]);
  // refs only when there are any: stable revisions without references stay as they were.
  const material = { version: v.version, image: v.image, config: v.config ?? null, env: v.env ?? null, replicas: v.replicas, port: v.port, ...(refs.length > 0 ? { refs } : {}) };
  return createHash("sha256").update(JSON.stringify(material)).digest("hex").slice(0, 16);
}

type EnvNeed = { role: EnvironmentRole; version: "stable" | "candidate"; revision: string };

/**
 * Brings the environments in `needs` to their revisions: Ready ones pass; others are requested
 * (Plan.ensure) or, once the controller ran them, folded into status.environments. Failures set
 * Degraded; after spec.environments.pulumi.maxConsecutiveFailures in a row the rollout is
 * Stalled and stops retrying until the spec changes. Returns whether all are Ready.
 */
function environmentsReady(ctx: Ctx, needs: EnvNeed[]): boolean {
  const s = ctx.status;
  const gen = ctx.obs.object.metadata.generation;
  const maxFailures = ctx.spec.environments?.pulumi.maxConsecutiveFailures ?? 3;
  const isReady = (n: EnvNeed) => {
    const e = s.environments?.[n.role as "canary" | "shadow" | "stable"];
    return e?.phase === "Ready" && e.revision === n.revision;
  };
  for (const need of needs) {
    const key = need.role as "canary" | "shadow" | "stable";
    const cur: EnvironmentStatus | undefined = s.environments?.[key];
    if (isReady(need)) continue;
    const outcome = ctx.obs.world.environments?.[need.role];
    if (!outcome) {
      const stalledHere = cur?.phase === "Failed" && cur.revision === need.revision && (cur.consecutiveFailures ?? 0) >= maxFailures;
      if (!stalledHere) ctx.ensure.push(need);
      continue;
    }
    if (outcome.ok) {
      s.environments = { ...s.environments, [key]: { ...outcome.status, revision: need.revision, consecutiveFailures: 0 } };
      ctx.events.push({ type: "Normal", reason: "EnvironmentReady", message: `${need.role} environment ready: stack ${outcome.status.stack}${outcome.status.url ? ` at ${outcome.status.url}` : ""}`, dedupeKey: `env/${need.role}/${need.revision}/a${s.attempt ?? 0}` });
      continue;
    }
    const f = outcome.failure;
    const failures = (cur?.revision === need.revision ? (cur.consecutiveFailures ?? 0) : 0) + (f.transient ? 0 : 1);
    s.environments = { ...s.environments, [key]: { ...cur, stack: f.stackName, phase: "Failed", revision: need.revision, message: f.message, consecutiveFailures: failures } };
    if (f.transient) {
      ctx.backoff = true;
      continue;
    }
    const message = `${need.role} environment (stack ${f.stackName}): ${f.message}`;
    s.conditions = setCondition(s.conditions, { type: ConditionType.Degraded, status: "True", reason: f.reason, message }, ctx.now, gen);
    ctx.events.push({ type: "Warning", reason: f.reason, message, dedupeKey: `env/${need.role}/${need.revision}/fail${failures}` });
    if (failures >= maxFailures) {
      const stall = `${message}; ${failures} failures in a row (maxConsecutiveFailures ${maxFailures}): not retrying until the spec changes`;
      s.conditions = setCondition(s.conditions, { type: ConditionType.Stalled, status: "True", reason: f.reason, message: stall }, ctx.now, gen);
      ctx.events.push({ type: "Warning", reason: Reason.Stalled, message: stall, dedupeKey: `env/${need.role}/${need.revision}/stalled` });
    } else {
      ctx.backoff = true;
    }
  }
  const ready = needs.every(isReady);
  if (ready && s.conditions?.some((c) => c.type === ConditionType.Stalled && c.status === "True")) {
    s.conditions = setCondition(s.conditions, { type: ConditionType.Stalled, status: "False", reason: Reason.AsExpected, message: "" }, ctx.now, gen);
  }
  return ready;
}

/** What must run before the steps start: the stable and the candidate's environments. */
function startNeeds(ctx: Ctx): EnvNeed[] {
  const needs: EnvNeed[] = [];
  if (ctx.spec.stable.image) needs.push({ role: "stable", version: "stable", revision: stableRevision(ctx.spec, ctx.obs.world) });
  for (const role of candidateRoles(ctx.spec)) needs.push({ role, version: "candidate", revision: ctx.status.revision ?? "" });
  return needs;
}

/**
 * Keeps status.shadow (the SHADOW MISMATCH column) current while the candidate is shadowed:
 * the gateway replicas' counters, summed by Prometheus, read once per analysis interval.
 */
function shadowSummary(ctx: Ctx): void {
  const a = ctx.spec.analysis;
  const s = ctx.status;
  if (!a || !s.shadowEnabled) return;
  const intervalMs = parseDuration(a.interval);
  const last = s.shadow?.updatedAt ? Date.parse(s.shadow.updatedAt) : 0;
  if (ctx.now.getTime() - last < intervalMs) {
    ctx.wakeAt.push(last + intervalMs);
    return;
  }
  const sel = `rollout="${ctx.obs.object.metadata.name}",namespace="${ctx.obs.object.metadata.namespace}"`;
  // Counted since this shadow step started, so a new revision starts from zero.
  const since = Date.parse(s.stepStartedAt ?? iso(ctx.now));
  const windowS = Math.max(Math.round(intervalMs / 1000), Math.round((ctx.now.getTime() - since) / 1000));
  const queries = {
    "shadow/compared": `sum(increase(airollout_shadow_comparisons_total{${sel}}[${windowS}s]))`,
    "shadow/mismatched": `sum(increase(airollout_shadow_mismatches_total{${sel}}[${windowS}s]))`,
  };
  const got = Object.keys(queries).map((k) => ctx.obs.world.measurements?.[k]);
  if (got.some((g) => g === undefined)) {
    const timeoutMs = parseDuration(a.prometheus.timeout);
    for (const [key, query] of Object.entries(queries)) ctx.measure.push({ key, query, address: a.prometheus.address, timeoutMs });
    ctx.wakeAt.push(ctx.now.getTime() + intervalMs);
    return;
  }
  const num = (o: (typeof got)[number]): number | undefined => {
    if (!o || o.kind !== "value") return o?.kind === "empty" ? 0 : undefined;
    const v = Array.isArray(o.value) ? o.value[0] : o.value;
    return typeof v === "number" && Number.isFinite(v) ? v : undefined;
  };
  const compared = num(got[0]);
  const mismatched = num(got[1]);
  ctx.wakeAt.push(ctx.now.getTime() + intervalMs);
  if (compared === undefined || mismatched === undefined) {
    s.shadow = { ...s.shadow, updatedAt: iso(ctx.now) };
    return;
  }
  s.shadow = {
    ...s.shadow,
    compared: Math.round(compared),
    mismatched: Math.round(mismatched),
    mismatchRate: compared > 0 ? `${((mismatched / compared) * 100).toFixed(1)}%` : "-",
    updatedAt: iso(ctx.now),
  };
}

/**
 * A step running longer than spec.strategy.progressDeadline (pauses for a human excepted) sets
 * Progressing=False/ProgressDeadlineExceeded with a Warning, as Argo Rollouts does; the rollout
 * is not aborted for it.
 */
function progressDeadline(ctx: Ctx): void {
  const s = ctx.status;
  if (s.phase !== "Progressing" && s.phase !== "ShadowTesting") return;
  const step = ctx.steps[s.currentStep ?? 0];
  const limitMs = parseDuration(ctx.spec.strategy.progressDeadline);
  // A timed step's own duration does not count against the deadline.
  const budgetMs = limitMs + (step?.durationSeconds ?? 0) * 1000;
  const started = Date.parse(s.stepStartedAt ?? iso(ctx.now));
  if (ctx.now.getTime() - started < budgetMs) {
    ctx.wakeAt.push(started + budgetMs);
    return;
  }
  const message = `Step ${(s.currentStep ?? 0) + 1}/${ctx.steps.length} has run longer than progressDeadline ${ctx.spec.strategy.progressDeadline}`;
  ctx.stalled = message;
  const already = s.conditions?.some((c) => c.type === ConditionType.Progressing && c.reason === Reason.ProgressDeadlineExceeded);
  if (!already) ctx.events.push({ type: "Warning", reason: Reason.ProgressDeadlineExceeded, message, dedupeKey: `a${s.attempt ?? 0}/g${ctx.obs.object.metadata.generation}/${s.revision}/s${s.currentStep}/deadline` });
}

/** A new value of one of the human-control annotations, or undefined. */
function request(obj: AIRollout, status: Status, kind: keyof typeof ANNOTATIONS): string | undefined {
  const v = obj.metadata.annotations?.[ANNOTATIONS[kind]];
  if (!v || status.handled?.[kind] === v) return undefined;
  return v;
}

/** Runs the state machine from an initialised status. Mutates nothing it was given. */
export function advance(obs: Observed, spec: Spec, steps: ResolvedStep[], analysis: ResolvedAnalysis, prev: Status): Pick<Plan, "status" | "events" | "actions" | "measure" | "ensure" | "requeueAfterMs" | "backoff"> {
  const ctx: Ctx = { obs, spec, steps, analysis, now: obs.now, status: structuredClone(prev), events: [], actions: [], measure: [], wakeAt: [], ensure: [] };
  const obj = obs.object;
  const gen = obj.metadata.generation;
  const s = ctx.status;

  const abort = request(obj, s, "abort");
  const retry = request(obj, s, "retry");
  const promote = request(obj, s, "promote");
  if (abort) s.handled = { ...s.handled, abort };
  if (retry) s.handled = { ...s.handled, retry };
  if (promote) s.handled = { ...s.handled, promote };

  if (retry && s.phase === "RolledBack") {
    s.attempt = (s.attempt ?? 0) + 1;
    s.abort = false;
    delete s.analysis;
    transition(ctx, "Initialized", Reason.Retry, `Retry ${s.attempt}: restarting from step 1`);
    s.conditions = setCondition(s.conditions, { type: ConditionType.Degraded, status: "False", reason: Reason.Retry, message: "" }, ctx.now, gen);
  }
  if (abort && !TERMINAL.has(s.phase ?? "Pending") && s.phase !== "RollingBack") {
    s.abort = true;
    rollBack(ctx, Reason.Aborted, `aborted by a human (annotation ${ANNOTATIONS.abort}=${abort})`);
  }

  const phase = s.phase ?? "Initialized";
  if (phase === "RollingBack") {
    if (s.environments) {
      const envs = { ...s.environments };
      for (const role of candidateRoles(spec)) delete envs[role as "canary" | "shadow"];
      s.environments = envs;
    }
    transition(ctx, "RolledBack", s.abort ? Reason.Aborted : Reason.RolledBack, `Rolled back to ${spec.stable.version}; candidate ${spec.candidate.version} gets no traffic`, "Warning");
  } else if (phase === "Promoting") {
    // Flagger's way: the stable environment takes the candidate's spec, then the candidate's
    // own environments go.
    const promoteNeeds: EnvNeed[] = spec.stable.image && spec.candidate.image ? [{ role: "stable", version: "candidate", revision: s.revision ?? "" }] : [];
    if (environmentsReady(ctx, promoteNeeds)) {
      const roles = candidateRoles(spec);
      if (roles.length) {
        ctx.actions.push({ type: "destroyEnvironments", reason: "promoted", roles });
        const envs = { ...s.environments };
        for (const role of roles) delete envs[role as "canary" | "shadow"];
        s.environments = envs;
      }
      s.stableVersion = spec.candidate.version;
      transition(ctx, "Succeeded", Reason.Succeeded, `Promoted ${spec.candidate.version}: it serves all traffic`);
    } else {
      s.message = `Promoting ${spec.candidate.version}: updating the stable environment`;
    }
  } else if (phase === "Initialized" && !environmentsReady(ctx, startNeeds(ctx))) {
    const pending = startNeeds(ctx).filter((n) => s.environments?.[n.role as "canary"]?.phase !== "Ready").map((n) => n.role);
    s.message = `Standing up environments (${pending.join(", ")}) through Pulumi`;
    s.conditions = setCondition(s.conditions, { type: ConditionType.Progressing, status: "True", reason: Reason.EnvironmentsPending, message: s.message }, ctx.now, gen);
  } else if (!TERMINAL.has(phase)) {
    if (phase === "Initialized") enterStep(ctx, 0);
    if (promote !== undefined) {
      // A human's promote also clears a background run that stopped the rollout.
      const bg = s.analysis?.background;
      if (bg && (bg.phase === "Inconclusive" || bg.phase === "Error")) {
        archive(ctx, bg);
        setRun(ctx, "background", undefined);
      }
    }
    let promotedStep = promote !== undefined && /^step/.test(promote);
    if (promote !== undefined && /^full/.test(promote)) {
      enterStep(ctx, steps.length);
    } else if (spec.paused && !promotedStep) {
      if (s.phase !== "Paused") pause(ctx, Reason.SpecPaused, "Paused by spec.paused");
    } else {
      if (s.phase === "Paused" && !promotedStep && s.pauseReason === Reason.SpecPaused) {
        transition(ctx, steps[s.currentStep ?? 0]?.type === "shadow" ? "ShadowTesting" : "Progressing", Reason.Resumed, "Resumed: spec.paused is false");
      }
      // Background analysis keeps measuring through pauses, like Argo Rollouts'; a failure
      // there rolls back even a rollout that waits for a human.
      const pausedForAnalysis = s.phase === "Paused" && (s.pauseReason === Reason.AnalysisInconclusive || s.pauseReason === Reason.AnalysisError) && !promotedStep;
      const bgOk = pausedForAnalysis || background(ctx);
      // A paused rollout moves only when promoted; each loop turn completes at most one step.
      for (let guard = 0; bgOk && guard <= steps.length && s.phase !== "Promoting"; guard++) {
        if (s.phase === "Paused" && !promotedStep) break;
        if ((s.currentStep ?? 0) >= steps.length) {
          // The steps were edited to fewer than the rollout had already passed.
          enterStep(ctx, steps.length);
          break;
        }
        if (guard > 0 && !background(ctx)) break;
        const done = stepComplete(ctx, promotedStep);
        if (done !== true) break;
        if (promotedStep) {
          ctx.events.push({ type: "Normal", reason: Reason.Promoted, message: `Step ${(s.currentStep ?? 0) + 1} promoted by a human`, dedupeKey: `promote/${promote}` });
        }
        promotedStep = false;
        enterStep(ctx, (s.currentStep ?? 0) + 1);
      }
    }
  }

  shadowSummary(ctx);
  progressDeadline(ctx);

  // Conditions follow the phase.
  const p = s.phase!;
  const healthy = p !== "RollingBack" && p !== "RolledBack";
  const envFailed = Object.values(s.environments ?? {}).some((e) => !Array.isArray(e) && (e as EnvironmentStatus).phase === "Failed");
  if (healthy && p !== "Paused" && !envFailed) {
    s.conditions = setCondition(s.conditions, { type: ConditionType.Degraded, status: "False", reason: Reason.AsExpected, message: "" }, ctx.now, gen);
  }
  s.conditions = setCondition(
    s.conditions,
    p === "Succeeded" || p === "RolledBack"
      ? { type: ConditionType.Progressing, status: "False", reason: p === "Succeeded" ? Reason.Succeeded : Reason.RolledBack, message: s.message ?? "" }
      : p === "Paused"
        ? { type: ConditionType.Progressing, status: "Unknown", reason: Reason.Paused, message: s.message ?? "" }
        : ctx.stalled
          ? { type: ConditionType.Progressing, status: "False", reason: Reason.ProgressDeadlineExceeded, message: ctx.stalled }
          : { type: ConditionType.Progressing, status: "True", reason: Reason.StepStarted, message: s.message ?? "" },
    ctx.now,
    gen,
  );
  const servingVersion = p === "Succeeded" ? spec.candidate.version : spec.stable.version;
  s.conditions = setCondition(s.conditions, { type: ConditionType.Ready, status: "True", reason: Reason.AsExpected, message: `${servingVersion} serves ${p === "Succeeded" ? "all" : `${100 - (s.canaryWeight ?? 0)}% of`} traffic` }, ctx.now, gen);

  // A phase that moves on by itself next pass (RollingBack, Promoting) runs again at once.
  if (p === "RollingBack" || p === "Promoting") ctx.wakeAt.push(ctx.now.getTime());
  const future = ctx.wakeAt.filter((t) => Number.isFinite(t));
  const requeueAfterMs = future.length ? Math.max(0, Math.min(...future) - ctx.now.getTime()) : undefined;
  return {
    status: s,
    events: ctx.events,
    actions: ctx.actions,
    measure: ctx.measure,
    ensure: ctx.ensure,
    ...(ctx.backoff ? { backoff: true } : {}),
    ...(requeueAfterMs !== undefined && !ctx.backoff ? { requeueAfterMs } : {}),
  };
}
