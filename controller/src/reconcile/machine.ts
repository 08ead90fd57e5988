/**
 * The canary state machine (pure): from an initialised status, run the steps.
 *
 *   Initialized -> ShadowTesting | Progressing (step i: shadow, setWeight, pause, analysis)
 *     -> Promoting -> Succeeded
 *   analysis Failed (or abort)      -> RollingBack -> RolledBack
 *   shadow mismatch judged too high -> RollingBack -> RolledBack (fail fast: shadow-evidence.ts)
 *   analysis Inconclusive or Error  -> Paused (waits for a human: promote, abort)
 *   shadow evidence still missing   -> Paused (InsufficientEvidence, past progressDeadline)
 *   pause without duration          -> Paused (waits for promote)
 *
 * A pass (advance) reads as its steps: the human requests, the handler of the phase, the
 * progress deadline, then the health conditions (conditions.ts) and the next wake-up.
 *
 * Fail closed: a step analysis completes only on a Successful run, and a run is Successful only
 * with at least one successful measurement per metric. A measurement error is not evidence
 * against the candidate, so an analysis that errors pauses instead of rolling back.
 *
 * Measurements are I/O: a pass asks for the queries that are due (plan.measure); runPass
 * (pass.ts) has them run and calls reconcile again with the outcomes in world.measurements.
 */
import { ANNOTATIONS, type AIRollout, type Phase, type ResolvedStep, type Spec, type Status, type VersionSpec } from "../api/schema.ts";
import { effectiveStable, stableRecord, type EffectiveStable } from "../api/stable.ts";
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
import { shadowEvidenceQueries } from "../analysis/templates.ts";
import { deriveConditions, setCondition, type HealthFacts } from "./conditions.ts";
import { ConditionType, Reason } from "./reasons.ts";
import type { EnsureRequest, EventSpec, GoldenRequest, MeasureRequest, Observed, Plan, World } from "./contract.ts";
import { goldenRunKey, goldenStatus, GOLDEN_RETRY_MS, goldenMessage, withStepResult } from "./golden.ts";
import { goldenReferenceOfStep, referenceDigest, versionReferencesOf } from "./references.ts";
import type { EnvironmentFailure, EnvironmentStatus, RolloutRole } from "./contract.ts";
import { coverageText, judgeShadow, missingEvidence, readEvidence, type ShadowEvidence, type ShadowRule, type ShadowVerdict } from "./shadow-evidence.ts";
import { shortHash } from "../api/hash.ts";

/** Metrics of a rollout, resolved once per pass: for step runs (count defaults) and background. */
export interface ResolvedAnalysis {
  step: Map<string, ResolvedMetric>;
  background: Map<string, ResolvedMetric>;
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
  out.errors.push(...crossFieldErrors(spec, out));
  return out;
}

/**
 * What one metric cannot check alone: a noise judge without a noise baseline or in a background
 * run (which outlives the steps that mirror, so it would pause on NoData), steps naming unknown
 * metrics.
 */
function crossFieldErrors(spec: Spec, resolved: ResolvedAnalysis): SpecError[] {
  const errors: SpecError[] = [];
  for (const m of spec.analysis?.metrics ?? []) {
    if (m.judge?.baseline !== "noise") continue;
    const fail = (why: string) => errors.push({ metric: m.name, field: "judge.baseline", message: `metric "${m.name}": judge.baseline: noise ${why}` });
    if (spec.shadow?.noiseBaseline?.enabled !== true) fail("needs spec.shadow.noiseBaseline.enabled (the second stable whose answers are the baseline)");
    if (resolved.background.has(m.name)) fail("is measured in analysis steps only (they keep mirroring); list the other metrics in spec.analysis.background.metrics");
  }
  for (const s of spec.strategy.steps) {
    for (const name of s.analysis?.metrics ?? []) {
      if (!resolved.step.has(name) && !resolved.errors.some((e) => e.metric === name) && !errors.some((e) => e.metric === name)) {
        errors.push({ metric: name, field: "strategy.steps.analysis.metrics", message: `spec.strategy.steps: analysis names metric "${name}", which spec.analysis.metrics does not define` });
      }
    }
  }
  return errors;
}

/** One pass of the state machine: what it read, and what it decided so far. */
interface Ctx {
  /** The object, the world around it and the pass's clock (read only). */
  obs: Observed;
  /** The validated spec and what was resolved from it (read only). */
  spec: Spec;
  /** The stable as the pass started (spec.stable or status.stable, ADR 0009); none while adopting. */
  stable: EffectiveStable | undefined;
  steps: ResolvedStep[];
  analysis: ResolvedAnalysis;
  now: Date;
  /** The status being built: a copy of the previous one, changed by the pass's steps. */
  status: Status;
  /** Events to record (deduplicated by key, so a replayed pass records nothing new). */
  events: EventSpec[];
  actions: Plan["actions"];
  /** Queries needed before the pass can decide (answered in a second pass at the same now). */
  measure: MeasureRequest[];
  /** Environments to stand up before the pass can decide. */
  ensure: EnsureRequest[];
  /** Golden suites to run against the candidate before the pass can decide. */
  golden: GoldenRequest[];
  /** Times the pass wants to run again at (the earliest wins). */
  wakeAt: number[];
  /** The human requests of this pass (annotations not acted on before). */
  requests: HumanRequests;
  /** Set when the current step overran progressDeadline: the message. */
  deadlineExceeded?: string;
  /** An environment failure that may clear by itself: retry with backoff. */
  backoff?: boolean;
}

/** New values of the human-control annotations (kubectl airollout promote|abort|retry). */
interface HumanRequests {
  abort?: string;
  retry?: string;
  /** `step...`: complete the current step; `full...`: skip to promotion. */
  promote?: string;
  /** Whether the current step is still to be completed by the promote request. */
  promoteStep: boolean;
}

const TERMINAL: ReadonlySet<Phase> = new Set(["Succeeded", "RolledBack"]);
const iso = (d: Date) => d.toISOString();

/**
 * The dedupe key of an Event about the current step: one per attempt, generation, revision and
 * step, so a replayed pass (after a crash between Events and status) records nothing twice.
 */
function stepEventKey(ctx: Ctx, what: string): string {
  const s = ctx.status;
  return `a${s.attempt ?? 0}/g${ctx.obs.object.metadata.generation}/${s.revision}/s${s.currentStep}/${what}`;
}

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
      dedupeKey: stepEventKey(ctx, `${from}->${to}`),
    });
  }
}

function target(ctx: Ctx) {
  const m = ctx.obs.object.metadata;
  return { rollout: m.name, namespace: m.namespace, stable: stableName(ctx), candidate: ctx.spec.candidate.version };
}

/** The stable's version name, for queries and messages; a placeholder while the first candidate is adopted. */
function stableName(ctx: Ctx): string {
  return ctx.stable?.version.version ?? "(no stable yet)";
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
  const summary = summarizeRun(next.metrics, ctx.spec.analysis?.judge);
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
  const done = run.phase === "Running" || run.phase === "Pending" ? { ...run, phase: summarizeRun(run.metrics.map(concludeMetric), ctx.spec.analysis?.judge).phase, finishedAt: iso(ctx.now) } : run;
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
function runMessage(ctx: Ctx, run: AnalysisRunStatus): string {
  return summarizeRun(run.metrics, ctx.spec.analysis?.judge).message;
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
  ctx.status.shadowEnabled = step.type === "shadow" || judgesAgainstNoise(ctx.analysis, step);
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
    case "golden":
      return `golden suite against the candidate only (maxFailures ${s.maxFailures ?? 0})`;
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
    case "shadow":
      return judgeShadowStep(ctx, step, started);
    case "analysis": {
      const names = step.metrics ?? [];
      const metrics = new Map([...ctx.analysis.step].filter(([n]) => names.includes(n)));
      return judgeStepRun(ctx, `step-${i}`, metrics, i);
    }
    case "golden":
      return judgeGoldenStep(ctx, step, started);
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
      rollBack(ctx, Reason.AnalysisFailed, runMessage(ctx, run));
      return "stop";
    case "Inconclusive":
      pause(ctx, Reason.AnalysisInconclusive, `Analysis inconclusive, waiting for a human (promote or abort): ${runMessage(ctx, run)}`);
      return "stop";
    case "Error":
      pause(ctx, Reason.AnalysisError, `Analysis could not measure, waiting for a human (promote or abort): ${runMessage(ctx, run)}`);
      return "stop";
    default:
      return false;
  }
}

/**
 * The golden step (the rule is in golden.ts): asks for a run of the suite against the candidate
 * (Plan.golden), then passes, rolls back (GoldenSuiteFailed), or, without evidence, retries every
 * GOLDEN_RETRY_MS until progressDeadline and then pauses for a human. Never passes on no evidence.
 */
function judgeGoldenStep(ctx: Ctx, step: ResolvedStep, started: number): boolean | "stop" {
  const s = ctx.status;
  const i = s.currentStep ?? 0;
  const run = goldenRunKey(s.revision ?? "", s.attempt ?? 0, i);
  if (s.golden?.run === run && s.golden.phase === "Passed") return true;
  const outcome = ctx.obs.world.golden?.[run];
  if (!outcome) return requestGolden(ctx, run);
  const suite = goldenReferenceOfStep(ctx.spec, i)!;
  s.golden = withStepResult(s.golden, goldenStatus(run, outcome, step.maxFailures ?? 0, suiteDigest(ctx), ctx.now), i, suite);
  const message = goldenMessage(s.golden);
  if (s.golden.phase === "Passed") {
    ctx.events.push({ type: "Normal", reason: Reason.GoldenSuitePassed, message, dedupeKey: stepEventKey(ctx, "golden-passed") });
    return true;
  }
  if (s.golden.phase === "Failed") {
    rollBack(ctx, Reason.GoldenSuiteFailed, message);
    return "stop";
  }
  return waitForGolden(ctx, message, started);
}

/** Asks for a run, unless one gave no evidence less than GOLDEN_RETRY_MS ago. */
function requestGolden(ctx: Ctx, run: string): false {
  const { spec, status: s } = ctx;
  const g = spec.golden!;
  const suite = goldenReferenceOfStep(spec, s.currentStep ?? 0)!;
  const last = s.golden?.run === run && s.golden.updatedAt ? Date.parse(s.golden.updatedAt) : -Infinity;
  if (ctx.now.getTime() - last < GOLDEN_RETRY_MS) {
    ctx.wakeAt.push(last + GOLDEN_RETRY_MS);
    return false;
  }
  const url = spec.candidate.endpoint ?? s.environments?.canary?.url;
  if (url === undefined) {
    s.golden = withStepResult(s.golden, { run, phase: "Error", message: `the candidate ${spec.candidate.version} has no URL yet (status.environments.canary)`, updatedAt: iso(ctx.now) }, s.currentStep ?? 0, suite);
    ctx.wakeAt.push(ctx.now.getTime() + GOLDEN_RETRY_MS);
    return false;
  }
  ctx.golden.push({ key: run, namespace: ctx.obs.object.metadata.namespace, configMapRef: { name: suite.name, key: suite.key }, field: suite.field, digest: suiteDigest(ctx), url, concurrency: g.concurrency, timeoutMs: parseDuration(g.timeout), maskPatterns: spec.shadow?.maskPatterns ?? [] });
  // Runs again at once: a pass whose first half already stood environments up decides without it.
  ctx.wakeAt.push(ctx.now.getTime());
  return false;
}

/** The digest of the current golden step's suite as observed (the one in the revision). */
function suiteDigest(ctx: Ctx): string | undefined {
  const ref = goldenReferenceOfStep(ctx.spec, ctx.status.currentStep ?? 0);
  return ref ? referenceDigest(ctx.obs.world, ref) : undefined;
}

/** No evidence is no verdict: retry until progressDeadline after the step started, then ask a human. */
function waitForGolden(ctx: Ctx, why: string, started: number): false | "stop" {
  const deadline = started + parseDuration(ctx.spec.strategy.progressDeadline);
  if (ctx.now.getTime() < deadline) {
    ctx.wakeAt.push(Math.min(deadline, ctx.now.getTime() + GOLDEN_RETRY_MS));
    return false;
  }
  const i = ctx.status.currentStep ?? 0;
  pause(ctx, Reason.InsufficientEvidence, `Step ${i + 1}/${ctx.steps.length} (golden): no evidence ${ctx.spec.strategy.progressDeadline} after the step started: ${why}. Waiting for a human (promote or abort)`);
  return "stop";
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
    rollBack(ctx, Reason.AnalysisFailed, `background analysis: ${runMessage(ctx, run)}`);
    return false;
  }
  if (run.phase === "Inconclusive" || run.phase === "Error") {
    pause(ctx, run.phase === "Error" ? Reason.AnalysisError : Reason.AnalysisInconclusive, `Background analysis ${run.phase === "Error" ? "could not measure" : "inconclusive"}, waiting for a human: ${runMessage(ctx, run)}`);
    return false;
  }
  return true;
}

/**
 * Whether an analysis step judges against the noise baseline (judge.baseline: noise): it keeps
 * mirroring, since that baseline is the second stable's answers to mirrored copies, compared
 * with the candidate's answers to the same copies.
 */
function judgesAgainstNoise(analysis: ResolvedAnalysis, step: ResolvedStep): boolean {
  return step.type === "analysis" && (step.metrics ?? []).some((n) => analysis.step.get(n)?.judge?.baseline === "noise");
}

/** The candidate's environment roles: canary, plus shadow when a step mirrors to it. */
function candidateRoles(spec: Spec): RolloutRole[] {
  if (!spec.candidate.image) return [];
  const mirrors = spec.strategy.steps.some((st) => st.shadow) || (spec.analysis?.metrics ?? []).some((m) => m.judge?.baseline === "noise");
  return mirrors ? ["canary", "shadow"] : ["canary"];
}

/**
 * A hash of what the stable environment deploys, so an edit to it updates the stack: the version's
 * spec, and the content of the ConfigMap/Secret keys it refers to (its prompt, env valueFrom).
 * The same for spec.stable, status.stable and the candidate it takes at promotion, so the stack
 * a promotion updated is not updated again when the next rollout starts from status.stable.
 */
export function stableEnvironmentRevision(v: VersionSpec, world: Pick<World, "references"> = { references: {} }): string {
  // Named as spec.stable's whatever the source: revisions of existing stables stay as they were.
  const refs = versionReferencesOf(v, "spec.stable").map((r) => [r.field, referenceDigest(world, r) ?? null]);
  // refs only when there are any: stable revisions without references stay as they were.
  const material = { version: v.version, image: v.image, config: v.config ?? null, env: v.env ?? null, replicas: v.replicas, port: v.port, ...(refs.length > 0 ? { refs } : {}) };
  return shortHash(JSON.stringify(material));
}

type EnvNeed = EnsureRequest;

/**
 * Brings the environments in `needs` to their revisions: Ready ones pass; others are requested
 * (Plan.ensure) or, once runPass (pass.ts) had them run, folded into status.environments.
 * Failures set Degraded; after spec.environments.pulumi.maxConsecutiveFailures in a row the
 * rollout is Stalled and stops retrying until the spec changes. Returns whether all are Ready.
 */
function environmentsReady(ctx: Ctx, needs: EnvNeed[]): boolean {
  for (const need of needs) {
    if (isReady(ctx, need)) continue;
    const outcome = ctx.obs.world.environments?.[need.role];
    if (!outcome) requestEnvironment(ctx, need);
    else if (outcome.ok) recordReady(ctx, need, outcome.status);
    else recordFailure(ctx, need, outcome.failure);
  }
  return needs.every((n) => isReady(ctx, n));
}

function isReady(ctx: Ctx, n: EnvNeed): boolean {
  const e = ctx.status.environments?.[n.role];
  return e?.phase === "Ready" && e.revision === n.revision;
}

function maxEnvironmentFailures(spec: Spec): number {
  return spec.environments?.pulumi.maxConsecutiveFailures ?? 3;
}

/** Asks for `pulumi up`, unless this revision already failed maxConsecutiveFailures times. */
function requestEnvironment(ctx: Ctx, need: EnvNeed): void {
  const cur = ctx.status.environments?.[need.role];
  const gaveUp = cur?.phase === "Failed" && cur.revision === need.revision && (cur.consecutiveFailures ?? 0) >= maxEnvironmentFailures(ctx.spec);
  if (!gaveUp) ctx.ensure.push(need);
}

function recordReady(ctx: Ctx, need: EnvNeed, env: EnvironmentStatus): void {
  const s = ctx.status;
  s.environments = { ...s.environments, [need.role]: { ...env, revision: need.revision, consecutiveFailures: 0 } };
  ctx.events.push({ type: "Normal", reason: "EnvironmentReady", message: `${need.role} environment ready: stack ${env.stack}${env.url ? ` at ${env.url}` : ""}`, dedupeKey: `env/${need.role}/${need.revision}/a${s.attempt ?? 0}` });
}

/**
 * A transient failure (a locked stack) only backs off; any other counts towards
 * maxConsecutiveFailures (a permanent one reaches it at once), sets Degraded and says why.
 */
function recordFailure(ctx: Ctx, need: EnvNeed, f: EnvironmentFailure): void {
  const s = ctx.status;
  const cur = s.environments?.[need.role];
  const maxFailures = maxEnvironmentFailures(ctx.spec);
  const before = cur?.revision === need.revision ? (cur.consecutiveFailures ?? 0) : 0;
  const failures = f.permanent ? maxFailures : before + (f.transient ? 0 : 1);
  s.environments = { ...s.environments, [need.role]: { ...cur, stack: f.stackName, phase: "Failed", revision: need.revision, message: f.message, consecutiveFailures: failures } };
  if (f.transient) {
    ctx.backoff = true;
    return;
  }
  const message = `${need.role} environment (stack ${f.stackName}): ${f.message}`;
  s.conditions = setCondition(s.conditions, { type: ConditionType.Degraded, status: "True", reason: f.reason, message }, ctx.now, ctx.obs.object.metadata.generation);
  ctx.events.push({ type: "Warning", reason: f.reason, message, dedupeKey: `env/${need.role}/${need.revision}/fail${failures}` });
  if (failures < maxFailures) {
    ctx.backoff = true;
    return;
  }
  const stall = `${message}; ${failures} failures in a row (maxConsecutiveFailures ${maxFailures}): not retrying until the spec changes`;
  ctx.events.push({ type: "Warning", reason: Reason.Stalled, message: stall, dedupeKey: `env/${need.role}/${need.revision}/stalled` });
}

/** What must run before the steps start: the stable and the candidate's environments. */
function startNeeds(ctx: Ctx): EnvNeed[] {
  const needs: EnvNeed[] = [];
  const stable = ctx.stable?.version;
  if (stable?.image) needs.push({ role: "stable", version: "stable", deploy: stable, revision: stableEnvironmentRevision(stable, ctx.obs.world) });
  for (const role of candidateRoles(ctx.spec)) needs.push({ role, version: "candidate", deploy: ctx.spec.candidate, revision: ctx.status.revision ?? "" });
  return needs;
}

/**
 * The shadow step (the rule is in shadow-evidence.ts): reads the gateways' evidence for this
 * revision, keeps status.shadow current, and passes, rolls back, keeps waiting, or pauses for a
 * human when the evidence is still missing progressDeadline after the step's duration.
 */
function judgeShadowStep(ctx: Ctx, step: ResolvedStep, started: number): boolean | "stop" {
  const durationEnd = started + (step.durationSeconds ?? 0) * 1000;
  const read = readShadowEvidence(ctx, durationEnd);
  if (read === "pending") return false;
  const durationOver = ctx.now.getTime() >= durationEnd;
  if (!durationOver) ctx.wakeAt.push(durationEnd);
  const verdict: ShadowVerdict = read.ok ? judgeShadow(read.evidence, shadowRule(ctx.spec), durationOver) : { kind: "wait", why: read.why };
  ctx.status.shadow = { ...ctx.status.shadow, verdict: verdict.kind === "wait" ? `waiting: ${verdict.why}` : verdict.rule };
  switch (verdict.kind) {
    case "pass":
      return true;
    case "fail":
      rollBack(ctx, Reason.ShadowMismatch, `shadow step: ${verdict.rule}`);
      return "stop";
    case "wait":
      return waitForEvidence(ctx, verdict.why, durationEnd);
  }
}

/** The shadow rule of the spec (defaults from the schema). */
function shadowRule(spec: Spec): ShadowRule {
  const sh = spec.shadow;
  return { minSamples: sh?.minSamples ?? 100, baseline: sh?.noiseBaseline?.enabled ?? false, maxMismatchRate: sh?.maxMismatchRate ?? 0.05 };
}

/** Missing evidence is no verdict: keep mirroring until progressDeadline past the duration, then ask a human. */
function waitForEvidence(ctx: Ctx, why: string, durationEnd: number): false | "stop" {
  const deadline = durationEnd + parseDuration(ctx.spec.strategy.progressDeadline);
  if (ctx.now.getTime() < deadline) {
    ctx.wakeAt.push(deadline);
    return false;
  }
  const i = ctx.status.currentStep ?? 0;
  pause(ctx, Reason.InsufficientEvidence, `Step ${i + 1}/${ctx.steps.length} (shadow): not enough evidence ${ctx.spec.strategy.progressDeadline} after its duration: ${why}. Waiting for a human (promote or abort)`);
  return "stop";
}

/**
 * The gateways' evidence, read through Prometheus once per analysis interval and once more when
 * the step's duration ends; "pending" while a read is not due or its answers are not in yet.
 */
function readShadowEvidence(ctx: Ctx, durationEnd: number): "pending" | ReturnType<typeof readEvidence> {
  const a = ctx.spec.analysis;
  if (!a) return { ok: false, why: "spec.analysis.prometheus is not set, so the gateways' comparisons cannot be read" };
  const s = ctx.status;
  const intervalMs = parseDuration(a.interval);
  const now = ctx.now.getTime();
  const last = s.shadow?.updatedAt ? Date.parse(s.shadow.updatedAt) : -Infinity;
  const due = now - last >= intervalMs || (last < durationEnd && now >= durationEnd);
  if (!due) {
    ctx.wakeAt.push(last + intervalMs);
    return "pending";
  }
  const queries = shadowEvidenceQueries(ctx.obs.object.metadata, s.revision ?? "");
  const outcomes = Object.fromEntries(Object.keys(queries).map((k) => [k, ctx.obs.world.measurements?.[k]]));
  ctx.wakeAt.push(now + intervalMs);
  if (Object.values(outcomes).some((o) => o === undefined)) {
    const timeoutMs = parseDuration(a.prometheus.timeout);
    for (const [key, query] of Object.entries(queries)) ctx.measure.push({ key, query, address: a.prometheus.address, timeoutMs });
    return "pending";
  }
  const read = readEvidence(outcomes);
  s.shadow = read.ok ? shadowStatus(read.evidence, shadowRule(ctx.spec), ctx.now) : { ...s.shadow, updatedAt: iso(ctx.now) };
  return read;
}

/** status.shadow from the evidence: the SHADOW MISMATCH column and the counts behind it. */
function shadowStatus(e: ShadowEvidence, rule: ShadowRule, now: Date): NonNullable<Status["shadow"]> {
  return {
    compared: e.compared,
    required: rule.minSamples,
    noiseCompared: e.noiseCompared,
    judged: missingEvidence(e, rule) === undefined,
    mismatched: e.mismatched,
    mismatchRate: e.compared > 0 ? `${((e.mismatched / e.compared) * 100).toFixed(1)}%` : "-",
    ...(e.sampled === undefined ? {} : { sampled: e.sampled }),
    ...(coverageText(e) === undefined ? {} : { coverage: coverageText(e) }),
    updatedAt: iso(now),
  };
}

/**
 * A step running longer than spec.strategy.progressDeadline (pauses for a human excepted) sets
 * Progressing=False/ProgressDeadlineExceeded with a Warning, as Argo Rollouts does; the rollout
 * is not aborted for it.
 */
function checkProgressDeadline(ctx: Ctx): void {
  const s = ctx.status;
  // A shadow step that lacks evidence past its deadline pauses for a human (judgeShadowStep).
  if (s.phase !== "Progressing") return;
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
  ctx.deadlineExceeded = message;
  const already = s.conditions?.some((c) => c.type === ConditionType.Progressing && c.reason === Reason.ProgressDeadlineExceeded);
  if (!already) ctx.events.push({ type: "Warning", reason: Reason.ProgressDeadlineExceeded, message, dedupeKey: stepEventKey(ctx, "deadline") });
}

/** A new value of one of the human-control annotations, or undefined. */
function request(obj: AIRollout, status: Status, kind: keyof typeof ANNOTATIONS): string | undefined {
  const v = obj.metadata.annotations?.[ANNOTATIONS[kind]];
  if (!v || status.handled?.[kind] === v) return undefined;
  return v;
}

/**
 * Runs the state machine from an initialised status. Mutates nothing it was given. A pass reads
 * as its steps: the human requests, the handler of the phase, the deadline, then the conditions
 * and the next wake-up follow from the status built.
 */
export function advance(obs: Observed, spec: Spec, steps: ResolvedStep[], analysis: ResolvedAnalysis, prev: Status): Pick<Plan, "status" | "events" | "actions" | "measure" | "ensure" | "golden" | "requeueAfterMs" | "backoff"> {
  const status = structuredClone(prev);
  const ctx: Ctx = { obs, spec, stable: effectiveStable(spec, prev), steps, analysis, now: obs.now, status, events: [], actions: [], measure: [], ensure: [], golden: [], wakeAt: [], requests: takeHumanRequests(obs.object, status) };
  handleRetryAndAbort(ctx);
  runPhase(ctx);
  checkProgressDeadline(ctx);
  ctx.status.conditions = deriveConditions(ctx.status, healthFacts(ctx), ctx.now, obs.object.metadata.generation);
  return toPlan(ctx);
}

/** Reads the human-control annotations not acted on yet and marks them handled (each acts once). */
function takeHumanRequests(obj: AIRollout, s: Status): HumanRequests {
  const abort = request(obj, s, "abort");
  const retry = request(obj, s, "retry");
  const promote = request(obj, s, "promote");
  if (abort) s.handled = { ...s.handled, abort };
  if (retry) s.handled = { ...s.handled, retry };
  if (promote) s.handled = { ...s.handled, promote };
  return { abort, retry, promote, promoteStep: promote !== undefined && /^step/.test(promote) };
}

/** `retry` restarts a rolled-back rollout from step 1; `abort` rolls back one in progress. */
function handleRetryAndAbort(ctx: Ctx): void {
  const s = ctx.status;
  const { retry, abort } = ctx.requests;
  if (retry && s.phase === "RolledBack") {
    s.attempt = (s.attempt ?? 0) + 1;
    s.abort = false;
    delete s.analysis;
    transition(ctx, "Initialized", Reason.Retry, `Retry ${s.attempt}: restarting from step 1`);
    s.conditions = setCondition(s.conditions, { type: ConditionType.Degraded, status: "False", reason: Reason.Retry, message: "" }, ctx.now, ctx.obs.object.metadata.generation);
  }
  if (abort && !TERMINAL.has(s.phase ?? "Pending") && s.phase !== "RollingBack") {
    s.abort = true;
    rollBack(ctx, Reason.Aborted, `aborted by a human (annotation ${ANNOTATIONS.abort}=${abort})`);
  }
}

/** One handler per phase. */
function runPhase(ctx: Ctx): void {
  const phase = ctx.status.phase ?? "Initialized";
  if (phase === "RollingBack") finishRollback(ctx);
  else if (phase === "Promoting") finishPromotion(ctx);
  else if (phase === "Initialized") standUpThenStart(ctx);
  else if (!TERMINAL.has(phase)) runSteps(ctx);
}

/** The candidate's environments go (rollBack asked for it); the stable keeps serving. */
function finishRollback(ctx: Ctx): void {
  const s = ctx.status;
  if (s.environments) {
    const envs = { ...s.environments };
    for (const role of candidateRoles(ctx.spec)) delete envs[role];
    s.environments = envs;
  }
  const to = ctx.stable ? `Rolled back to ${stableName(ctx)}` : "Rolled back: there is no stable version to serve";
  transition(ctx, "RolledBack", s.abort ? Reason.Aborted : Reason.RolledBack, `${to}; candidate ${ctx.spec.candidate.version} gets no traffic`, "Warning");
}

/**
 * Flagger's way: the stable environment takes the candidate's spec (an image candidate), then the
 * candidate's own environments go, and status.stable records the candidate as the stable of the
 * next rollout (ADR 0009). A rollout without a stable adopts its candidate the same way.
 */
function finishPromotion(ctx: Ctx): void {
  const { spec } = ctx;
  const s = ctx.status;
  const adopting = ctx.stable === undefined;
  const promoteNeeds: EnvNeed[] = spec.candidate.image ? [{ role: "stable", version: "candidate", deploy: spec.candidate, revision: stableEnvironmentRevision(spec.candidate, ctx.obs.world) }] : [];
  if (!environmentsReady(ctx, promoteNeeds)) {
    const doing = `${adopting ? "Adopting" : "Promoting"} ${spec.candidate.version}`;
    s.message = environmentsMessage(ctx, promoteNeeds, { doing: `${doing}: updating the stable environment`, gaveUp: `Gave up ${doing.toLowerCase()} (updating the stable environment)` });
    return;
  }
  const roles = promotionLeftovers(ctx, adopting);
  if (roles.length) {
    ctx.actions.push({ type: "destroyEnvironments", reason: "promoted", roles });
    const envs = { ...s.environments };
    for (const role of roles) delete envs[role];
    s.environments = envs;
  }
  s.stableVersion = spec.candidate.version;
  s.stable = stableRecord(spec, s.revision ?? "", ctx.now, adopting);
  if (adopting) transition(ctx, "Succeeded", Reason.Adopted, `Adopted ${spec.candidate.version} as the stable without steps (there was none): it serves all traffic`);
  else transition(ctx, "Succeeded", Reason.Succeeded, `Promoted ${spec.candidate.version}: it serves all traffic`);
}

/**
 * Environments a promotion leaves without a purpose: the candidate's own (an adoption made none),
 * and a stable environment still running an image when an endpoint version took over.
 */
function promotionLeftovers(ctx: Ctx, adopting: boolean): RolloutRole[] {
  const roles = adopting ? [] : candidateRoles(ctx.spec);
  if (ctx.spec.candidate.endpoint !== undefined && ctx.status.environments?.stable) roles.push("stable");
  return roles;
}

/**
 * Before step 1: the environments must be Ready; then the steps start in the same pass. The step's
 * clock starts at the pass's `now`, which runPass (pass.ts) takes after the stand-up answered.
 */
function standUpThenStart(ctx: Ctx): void {
  const needs = startNeeds(ctx);
  if (!environmentsReady(ctx, needs)) {
    const pending = needs.filter((n) => !isReady(ctx, n)).map((n) => n.role);
    ctx.status.message = environmentsMessage(ctx, needs, { doing: `Standing up environments: ${pending.join(", ")}`, gaveUp: "Gave up standing up environments" });
    return;
  }
  enterStep(ctx, 0);
  runSteps(ctx);
}

/**
 * status.message while environments are not Ready: what they are being stood up for, the
 * failures being retried with backoff, or, once one gave up, that nothing is retried and why
 * (a stalled rollout must not read as one still at work).
 */
function environmentsMessage(ctx: Ctx, needs: EnvNeed[], say: { doing: string; gaveUp: string }): string {
  const envs = ctx.status.environments ?? {};
  const max = maxEnvironmentFailures(ctx.spec);
  const failed = needs.filter((n) => envs[n.role]?.phase === "Failed" && envs[n.role]?.revision === n.revision);
  const gaveUp = failed.find((n) => (envs[n.role]!.consecutiveFailures ?? 0) >= max);
  if (gaveUp) {
    const e = envs[gaveUp.role]!;
    return `${say.gaveUp}: the ${gaveUp.role} environment (stack ${e.stack}) failed ${e.consecutiveFailures} times in a row (maxConsecutiveFailures ${max}): ${e.message ?? "no message"}. Not retrying until the spec changes`;
  }
  const retrying = failed.map((n) => `${n.role}: ${envs[n.role]!.message ?? "failed"} (${envs[n.role]!.consecutiveFailures ?? 0} of ${max} failures)`);
  return `${say.doing}${retrying.length ? `; retrying with backoff after ${retrying.join("; ")}` : ""}`;
}

/**
 * Runs the steps from the current one: a human's promote or spec.paused first, then background
 * analysis, then each step in turn until one is not complete yet.
 */
function runSteps(ctx: Ctx): void {
  if (!followPromoteAndPause(ctx)) return;
  // Background analysis keeps measuring through pauses, like Argo Rollouts'; a failure there
  // rolls back even a rollout that waits for a human. A run that stopped the rollout waits.
  if (!pausedForAnalysis(ctx) && !background(ctx)) return;
  completeSteps(ctx);
}

/**
 * `promote --full` skips to promotion; spec.paused holds the rollout (a step promote still goes
 * through) and its removal resumes it. Returns whether the steps may run in this pass.
 */
function followPromoteAndPause(ctx: Ctx): boolean {
  const { steps, spec, requests } = ctx;
  const s = ctx.status;
  if (requests.promote !== undefined) clearStoppedBackgroundRun(ctx);
  if (requests.promote !== undefined && /^full/.test(requests.promote)) {
    enterStep(ctx, steps.length);
    return false;
  }
  if (spec.paused && !requests.promoteStep) {
    if (s.phase !== "Paused") pause(ctx, Reason.SpecPaused, "Paused by spec.paused");
    return false;
  }
  if (s.phase === "Paused" && !requests.promoteStep && s.pauseReason === Reason.SpecPaused) {
    transition(ctx, steps[s.currentStep ?? 0]?.type === "shadow" ? "ShadowTesting" : "Progressing", Reason.Resumed, "Resumed: spec.paused is false");
  }
  return true;
}

/** Paused because an analysis could not decide, and not promoted past it. */
function pausedForAnalysis(ctx: Ctx): boolean {
  const s = ctx.status;
  return s.phase === "Paused" && (s.pauseReason === Reason.AnalysisInconclusive || s.pauseReason === Reason.AnalysisError) && !ctx.requests.promoteStep;
}

/** Completes steps in order; each loop turn completes at most one, a paused rollout none. */
function completeSteps(ctx: Ctx): void {
  const { steps, requests } = ctx;
  const s = ctx.status;
  for (let turn = 0; turn <= steps.length && s.phase !== "Promoting"; turn++) {
    if (s.phase === "Paused" && !requests.promoteStep) return;
    if ((s.currentStep ?? 0) >= steps.length) {
      // The steps were edited to fewer than the rollout had already passed.
      enterStep(ctx, steps.length);
      return;
    }
    if (turn > 0 && !background(ctx)) return;
    if (stepComplete(ctx, requests.promoteStep) !== true) return;
    if (requests.promoteStep) {
      ctx.events.push({ type: "Normal", reason: Reason.Promoted, message: `Step ${(s.currentStep ?? 0) + 1} promoted by a human`, dedupeKey: `promote/${requests.promote}` });
      requests.promoteStep = false;
    }
    enterStep(ctx, (s.currentStep ?? 0) + 1);
  }
}

/** A human's promote also clears a background run that stopped the rollout. */
function clearStoppedBackgroundRun(ctx: Ctx): void {
  const bg = ctx.status.analysis?.background;
  if (bg && (bg.phase === "Inconclusive" || bg.phase === "Error")) {
    archive(ctx, bg);
    setRun(ctx, "background", undefined);
  }
}

/** What the conditions need beyond the status: the deadline and environments that gave up. */
function healthFacts(ctx: Ctx): HealthFacts {
  const maxFailures = maxEnvironmentFailures(ctx.spec);
  const envs = ctx.status.environments ?? {};
  const gaveUp = (["stable", "canary", "shadow"] as const).map((r) => [r, envs[r]] as const).find(([, e]) => e?.phase === "Failed" && (e.consecutiveFailures ?? 0) >= maxFailures);
  const envFailed = (["stable", "canary", "shadow"] as const).some((r) => envs[r]?.phase === "Failed");
  return {
    servingVersion: ctx.status.phase === "Succeeded" ? ctx.spec.candidate.version : stableName(ctx),
    ...(ctx.deadlineExceeded ? { deadlineExceeded: ctx.deadlineExceeded } : {}),
    ...(gaveUp ? { environmentsStalled: `${gaveUp[0]} environment: ${gaveUp[1]!.message ?? "failed"}; ${gaveUp[1]!.consecutiveFailures} failures in a row (maxConsecutiveFailures ${maxFailures}): not retrying until the spec changes` } : {}),
    environmentFailed: envFailed,
  };
}

/** The plan of the pass: the status, what to do, and when to run again. */
function toPlan(ctx: Ctx): ReturnType<typeof advance> {
  const p = ctx.status.phase;
  // A phase that moves on by itself next pass (RollingBack, Promoting) runs again at once.
  if (p === "RollingBack" || p === "Promoting") ctx.wakeAt.push(ctx.now.getTime());
  const future = ctx.wakeAt.filter((t) => Number.isFinite(t));
  const requeueAfterMs = future.length ? Math.max(0, Math.min(...future) - ctx.now.getTime()) : undefined;
  return {
    status: ctx.status,
    events: ctx.events,
    actions: ctx.actions,
    measure: ctx.measure,
    ensure: ctx.ensure,
    ...(ctx.golden.length ? { golden: ctx.golden } : {}),
    ...(ctx.backoff ? { backoff: true } : {}),
    ...(requeueAfterMs !== undefined && !ctx.backoff ? { requeueAfterMs } : {}),
  };
}
