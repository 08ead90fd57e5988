/**
 * The AIPreview reconciler's decisions, PURE: from the preview object, the rollout it names, the
 * clock and the outcome of the work a previous decision asked for, to the status to write, the
 * Events to record, the finalizer change and at most one piece of work (stand the stack up,
 * destroy it, replay fixtures). kube/preview-controller.ts carries a plan out and, when it ran
 * work, asks again with the outcome, so each decision sees what really happened.
 *
 * The life of a preview: Pending -> Provisioning -> Ready (url) -> Expired when its ttl passes
 * (stack destroyed, object kept, so a GitOps tool that applied it does not create it again),
 * or Terminating -> gone when it is deleted (finalizer: the stack is destroyed first). Failed is
 * retried with backoff while a retry may help, and Stalled when only a person can fix it.
 */
import type { Condition, Spec, VersionSpec } from "../api/schema.ts";
import { SpecSchema } from "../api/schema.ts";
import type { AIRollout } from "../api/schema.ts";
import { DEFAULT_PREVIEW_TTL, PREVIEW_FINALIZER, PreviewSpecSchema, type AIPreview, type PreviewPhase, type PreviewSpec, type PreviewStatus } from "../api/preview-schema.ts";
import { parseDuration } from "../api/duration.ts";
import { effectiveStable } from "../api/stable.ts";
import type { FixtureReplaySummary } from "../fixtures/port.ts";
import { getCondition, setCondition, type ConditionInput } from "./conditions.ts";
import type { EnvironmentFailure, EnvironmentRole, EnvironmentStatus, EventSpec } from "./contract.ts";
import { ConditionType, Reason } from "./reasons.ts";

/** Condition reasons and Event reasons of previews, in one place. */
export const PreviewReason = {
  Pending: "Pending",
  Provisioning: "Provisioning",
  Ready: "Ready",
  Failed: "Failed",
  Expired: "Expired",
  Terminating: "Terminating",
  Destroyed: "Destroyed",
  DestroyFailed: "DestroyFailed",
  InvalidSpec: Reason.InvalidSpec,
  RolloutNotFound: "RolloutNotFound",
  InvalidRollout: "InvalidRollout",
  AsExpected: Reason.AsExpected,
  FixturesReplayed: "FixturesReplayed",
  FixturesIncomplete: "FixturesIncomplete",
  FixturesUnavailable: "FixturesUnavailable",
  FixturesFailed: "FixturesFailed",
  NoStableURL: "NoStableURL",
} as const;

/** The condition a fixture replay reports in (besides Ready, Reconciling, Stalled). */
export const FIXTURES_CONDITION = "FixturesReplayed";

/** The environment role of a preview: one stack per rollout and preview name. */
export function previewRole(preview: Pick<AIPreview, "metadata">): EnvironmentRole {
  return `preview-${preview.metadata.name}`;
}

/** Work a decision asks the runner to do before it decides again. */
export type PreviewWork =
  | { type: "ensure"; role: EnvironmentRole; version: VersionSpec; expiresAt: Date }
  | { type: "destroy"; role: EnvironmentRole; reason: string }
  | { type: "replay"; request: { namespace: string; rollout: string; count: number; previewUrl: string; stableUrl: string } };

/** What the work came to; a failure is data, never an exception. */
export type PreviewWorkOutcome =
  | { type: "ensure"; ok: true; status: EnvironmentStatus }
  | { type: "ensure"; ok: false; failure: Pick<EnvironmentFailure, "transient" | "permanent" | "reason" | "message"> }
  | { type: "destroy"; ok: true }
  | { type: "destroy"; ok: false; message: string }
  | { type: "replay"; ok: true; summary: FixtureReplaySummary }
  | { type: "replay"; ok: false; message: string };

export interface PreviewObserved {
  preview: AIPreview;
  /** The AIRollout spec.rolloutRef names; undefined when it does not exist. */
  rollout: AIRollout | undefined;
  now: Date;
  /** Whether the controller has a fixtures replayer (fixtures/port.ts) at all. */
  fixturesAvailable: boolean;
  /** The outcome of the work the previous decision of this pass asked for. */
  outcome?: PreviewWorkOutcome;
}

export interface PreviewPlan {
  /** The status to write (undefined: leave it). */
  status?: PreviewStatus;
  events: EventSpec[];
  addFinalizer?: boolean;
  removeFinalizer?: boolean;
  /** Carry this out, then decide again with its outcome. */
  work?: PreviewWork;
  /** Decide again after this long (the ttl's end). */
  requeueAfterMs?: number;
  /** Decide again with the queue's exponential backoff (a problem that may clear by itself). */
  backoff?: boolean;
}

/** Failed stand-ups in a row after which a preview is Stalled, unless its rollout says otherwise. */
const DEFAULT_MAX_FAILURES = 3;

/** What every decision works from: the observation and the status so far. */
interface Base {
  o: PreviewObserved;
  gen: number;
  prev: PreviewStatus;
}

/** A live preview's decision: with its parsed spec. */
interface Ctx extends Base {
  spec: PreviewSpec;
}

/** The rollout as a preview reads it, or why it cannot. */
type RolloutView = { ok: true; spec: Spec } | { ok: false; reason: string; message: string };

/** Decides one step of a preview's life; see the module comment. */
export function decidePreview(o: PreviewObserved): PreviewPlan {
  const p = o.preview;
  if (p.metadata.deletionTimestamp) return deleting(o);
  const addFinalizer = !(p.metadata.finalizers ?? []).includes(PREVIEW_FINALIZER);
  const plan = decideLive(o);
  return addFinalizer ? { ...plan, addFinalizer: true } : plan;
}

function decideLive(o: PreviewObserved): PreviewPlan {
  const gen = o.preview.metadata.generation;
  const prev = o.preview.status ?? {};
  const parsed = PreviewSpecSchema.safeParse(o.preview.spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const message = `${["spec", ...issue.path.map(String)].join(".")}: ${issue.message}`;
    // A spec edit bumps the generation and brings the object back: nothing to retry until then.
    return failed({ o, gen, prev }, { reason: PreviewReason.InvalidSpec, message, stalled: true });
  }
  const ctx: Ctx = { o, gen, prev, spec: parsed.data };
  const rollout = viewRollout(ctx);
  const expiresAt = expiryOf(ctx, rollout);
  if (!expiresAt.ok) return failed(ctx, { reason: PreviewReason.InvalidRollout, message: expiresAt.message, stalled: true, backoff: true });
  if (o.now.getTime() >= expiresAt.at.getTime()) return expire(ctx, expiresAt.at);
  if (!rollout.ok && rollout.reason === PreviewReason.RolloutNotFound) return rolloutGone(ctx, rollout.message);
  if (!rollout.ok) return failed(ctx, { reason: rollout.reason, message: rollout.message, stalled: true, backoff: true });
  return provision(ctx, rollout.spec, expiresAt.at);
}

/**
 * The rollout is gone (deleted, or never made). Its deletion destroyed this preview's stack with
 * its own (same stack tag; the rollout names the backend and passphrase), and a stack it left
 * (a rollout with no finalizer) is destroyed here, so nothing runs that no object accounts for.
 * The AIPreview itself stays, as Git has it: Failed, Stalled with RolloutNotFound and no url,
 * and it stands up again as soon as the rollout exists again (a rollout's creation wakes it).
 */
function rolloutGone(ctx: Ctx, message: string): PreviewPlan {
  const { o, prev } = ctx;
  const out = o.outcome?.type === "destroy" ? o.outcome : undefined;
  if (!out && mayHaveStack(prev)) return { events: [], work: { type: "destroy", role: previewRole(o.preview), reason: "its AIRollout is gone" } };
  if (out && !out.ok) return failed(ctx, { reason: PreviewReason.DestroyFailed, message: `${message}; destroying the preview's stack ${prev.stack ?? ""} failed: ${out.message}`, stalled: false, backoff: true });
  const plan = failed(ctx, { reason: PreviewReason.RolloutNotFound, message, stalled: true, backoff: true });
  const status = { ...plan.status! };
  delete status.url;
  delete status.stack;
  delete status.consecutiveFailures;
  const destroyed: EventSpec[] = out?.ok ? [{ type: "Normal", reason: PreviewReason.Destroyed, message: `stack ${prev.stack ?? previewRole(o.preview)} destroyed: its AIRollout is gone; the preview is kept`, dedupeKey: `${ctx.gen}/rollout-gone` }] : [];
  return { ...plan, status, events: [...destroyed, ...plan.events] };
}

// ---------------------------------------------------------------------------------------------
// Reading the rollout

function viewRollout(ctx: Ctx): RolloutView {
  const { o, spec } = ctx;
  const ref = `AIRollout ${o.preview.metadata.namespace}/${spec.rolloutRef.name}`;
  if (!o.rollout) return { ok: false, reason: PreviewReason.RolloutNotFound, message: `spec.rolloutRef.name: ${ref} not found; create it, or point the preview at one that exists` };
  const res = SpecSchema.safeParse(o.rollout.spec);
  if (!res.success) {
    const issue = res.error.issues[0]!;
    return { ok: false, reason: PreviewReason.InvalidRollout, message: `spec.rolloutRef.name: ${ref} has an invalid spec (${["spec", ...issue.path.map(String)].join(".")}: ${issue.message})` };
  }
  return { ok: true, spec: res.data };
}

/**
 * When the preview expires: its creation plus its ttl (spec.ttl, else the rollout's
 * spec.preview.ttl, else 24h). With the rollout gone and no spec.ttl the time already in
 * status stands, so a preview still expires when its rollout was deleted.
 */
function expiryOf(ctx: Ctx, rollout: RolloutView): { ok: true; at: Date } | { ok: false; message: string } {
  const { o, spec, prev } = ctx;
  const created = Date.parse(o.preview.metadata.creationTimestamp ?? "");
  const base = Number.isFinite(created) ? created : o.now.getTime();
  if (spec.ttl !== undefined) return { ok: true, at: new Date(base + parseDuration(spec.ttl)) };
  if (!rollout.ok) {
    const recorded = Date.parse(prev.expiresAt ?? "");
    return { ok: true, at: new Date(Number.isFinite(recorded) ? recorded : base + parseDuration(DEFAULT_PREVIEW_TTL)) };
  }
  const ttl = rollout.spec.preview?.ttl ?? DEFAULT_PREVIEW_TTL;
  const ms = parseDuration(ttl);
  // The rollout's schema admits 0s; a preview that expires as it is made is no preview.
  if (!(ms > 0)) return { ok: false, message: `spec.ttl: not set, and AIRollout ${o.preview.metadata.namespace}/${spec.rolloutRef.name} spec.preview.ttl is ${ttl}, not a positive duration; set spec.ttl` };
  return { ok: true, at: new Date(base + ms) };
}

// ---------------------------------------------------------------------------------------------
// Standing up

/** Stalled reasons that clear by themselves once the rollout is there and sound. */
const ROLLOUT_PROBLEMS: ReadonlySet<string> = new Set([PreviewReason.RolloutNotFound, PreviewReason.InvalidRollout]);

/**
 * A preview this generation already settled: Ready (nothing to do but wait), or stalled by its
 * stand-up. Not settled when what it runs moved under it: the rollout's candidate (a preview
 * without spec.version follows it) or, for an image preview, its expiry (the rollout's
 * spec.preview.ttl changed, and the stack's expiry tag must move with it).
 */
function settled(ctx: Ctx, rollout: Spec, version: VersionSpec, expiresAt: Date): PreviewPlan | undefined {
  const { gen, prev } = ctx;
  if (prev.observedGeneration !== gen) return undefined;
  const same = prev.version === version.version && (!prev.stack || prev.expiresAt === expiresAt.toISOString());
  if (prev.phase === "Ready" && prev.url && same) return ready(ctx, rollout, expiresAt);
  // Stalled by its stand-up (a permanent failure, too many failures): only an edit helps.
  const stalled = getCondition(prev.conditions, ConditionType.Stalled);
  if (prev.phase === "Failed" && stalled?.status === "True" && !ROLLOUT_PROBLEMS.has(stalled.reason)) return { events: [] };
  return undefined;
}

function provision(ctx: Ctx, rollout: Spec, expiresAt: Date): PreviewPlan {
  const { o, gen, prev } = ctx;
  const version = ctx.spec.version ?? rollout.candidate;
  const current = prev.observedGeneration === gen;
  const done = settled(ctx, rollout, version, expiresAt);
  if (done) return done;
  const role = previewRole(o.preview);
  if (version.image === undefined) return endpointPreview(ctx, rollout, version, expiresAt);
  const out = o.outcome?.type === "ensure" ? o.outcome : undefined;
  if (out?.ok) {
    const status = statusFor(ctx, { phase: "Ready", reason: PreviewReason.Ready, message: `serving ${version.version} at ${out.status.url ?? "(no url)"}` }, { url: out.status.url, stack: out.status.stack, version: version.version, expiresAt: expiresAt.toISOString(), consecutiveFailures: undefined });
    const event: EventSpec = { type: "Normal", reason: PreviewReason.Ready, message: `stack ${out.status.stack} ready at ${out.status.url ?? "(no url)"}; expires ${expiresAt.toISOString()}`, dedupeKey: `${gen}/ready` };
    return withReady({ ...ctx, prev: status }, rollout, expiresAt, [event]);
  }
  if (out && !out.ok) return standUpFailed(ctx, rollout, out.failure, expiresAt);
  // A new generation starts counting failures afresh.
  const status = statusFor(ctx, { phase: "Provisioning", reason: PreviewReason.Provisioning, message: `standing up ${version.version} (${version.image}) through Pulumi` }, { version: version.version, expiresAt: expiresAt.toISOString(), consecutiveFailures: current ? prev.consecutiveFailures : undefined });
  return {
    status,
    events: [{ type: "Normal", reason: PreviewReason.Provisioning, message: `standing up ${version.version} (${version.image}); expires ${expiresAt.toISOString()}`, dedupeKey: `${gen}/provisioning` }],
    work: { type: "ensure", role, version, expiresAt },
  };
}

/** An endpoint version is already running: its URL is the preview's, and no stack is needed (an old one goes). */
function endpointPreview(ctx: Ctx, rollout: Spec, version: VersionSpec, expiresAt: Date): PreviewPlan {
  const { o, gen, prev } = ctx;
  const out = o.outcome?.type === "destroy" ? o.outcome : undefined;
  if (prev.stack && !out) return { events: [], work: { type: "destroy", role: previewRole(o.preview), reason: `version ${version.version} is an external endpoint` } };
  if (out && !out.ok) return failed(ctx, { reason: PreviewReason.DestroyFailed, message: `destroying stack ${prev.stack ?? ""} of the previous image version: ${out.message}`, stalled: false, backoff: true });
  const status = statusFor(ctx, { phase: "Ready", reason: PreviewReason.Ready, message: `serving ${version.version} at its endpoint ${version.endpoint!}` }, { url: version.endpoint, stack: undefined, version: version.version, expiresAt: expiresAt.toISOString(), consecutiveFailures: undefined });
  const event: EventSpec = { type: "Normal", reason: PreviewReason.Ready, message: `${version.version} is an external endpoint: ready at ${version.endpoint!}; expires ${expiresAt.toISOString()}`, dedupeKey: `${gen}/ready` };
  return withReady({ ...ctx, prev: status }, rollout, expiresAt, [event]);
}

/**
 * A failed stand-up: transient ones (a locked stack) retry with backoff; a failure no retry can
 * clear (environments turned off, input the program refuses), or the rollout's
 * maxConsecutiveFailures in a row, is Stalled; the rest are Failed and retried with backoff.
 */
function standUpFailed(ctx: Ctx, rollout: Spec, f: Pick<EnvironmentFailure, "transient" | "permanent" | "reason" | "message">, expiresAt: Date): PreviewPlan {
  const { gen, prev } = ctx;
  if (f.transient) {
    const status = statusFor(ctx, { phase: "Provisioning", reason: f.reason, message: f.message }, { expiresAt: expiresAt.toISOString() });
    return { status, events: [], backoff: true };
  }
  const failures = (prev.observedGeneration === gen ? (prev.consecutiveFailures ?? 0) : 0) + 1;
  const max = rollout.environments?.pulumi.maxConsecutiveFailures ?? DEFAULT_MAX_FAILURES;
  const stalled = f.permanent === true || f.reason === Reason.InvalidEnvironment || failures >= max;
  const message = stalled && !f.permanent && f.reason !== Reason.InvalidEnvironment ? `${f.message} (${failures} failures in a row; edit the preview to try again)` : f.message;
  const plan = failed(ctx, { reason: f.reason, message, stalled, backoff: !stalled, failures });
  plan.status = { ...plan.status!, expiresAt: expiresAt.toISOString() };
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Ready, and the fixture replay

/** A Ready preview: replay fixtures when due, and wake up when the ttl passes. */
function ready(ctx: Ctx, rollout: Spec, expiresAt: Date): PreviewPlan {
  const status = statusFor(ctx, { phase: "Ready", reason: PreviewReason.Ready, message: ctx.prev.message ?? "" }, { expiresAt: expiresAt.toISOString() });
  return withReady({ ...ctx, prev: status }, rollout, expiresAt, []);
}

function withReady(ctx: Ctx, rollout: Spec, expiresAt: Date, events: EventSpec[]): PreviewPlan {
  const wake = Math.max(0, expiresAt.getTime() - ctx.o.now.getTime());
  const fixtures = replayFixtures(ctx, rollout);
  return { status: fixtures.status ?? ctx.prev, events: [...events, ...fixtures.events], ...(fixtures.work ? { work: fixtures.work } : {}), requeueAfterMs: wake };
}

/** Replays once per generation; whatever it finds (or why it found nothing) goes to status.fixtures and an Event. */
function replayFixtures(ctx: Ctx, rollout: Spec): { status?: PreviewStatus; events: EventSpec[]; work?: PreviewWork } {
  const { o, gen, prev, spec } = ctx;
  if (!spec.fixtures || prev.fixtures?.observedGeneration === gen) return { events: [] };
  const no = (reason: string, message: string) => fixturesResult(ctx, reason, { observedGeneration: gen, message }, `no fixture evidence: ${message}`);
  if (!o.fixturesAvailable) return no(PreviewReason.FixturesUnavailable, "fixtures are not available: this controller has no fixtures replayer");
  const out = o.outcome?.type === "replay" ? o.outcome : undefined;
  if (out && !out.ok) return no(PreviewReason.FixturesFailed, `replaying fixtures of AIRollout ${spec.fixtures.fromRollout}: ${out.message}`);
  if (out?.ok) return replayed(ctx, out.summary);
  const stableUrl = stableUrlOf(rollout, o.rollout!);
  if (!stableUrl.ok) return no(PreviewReason.NoStableURL, stableUrl.message);
  return { events: [], work: { type: "replay", request: { namespace: o.preview.metadata.namespace, rollout: spec.fixtures.fromRollout, count: spec.fixtures.count, previewUrl: prev.url!, stableUrl: stableUrl.url } } };
}

/**
 * A replay's summary. Evidence only when fixtures were replayed and none failed: zero replayed,
 * or some that could not be compared, is reported but never reads as a clean pass.
 */
function replayed(ctx: Ctx, s: FixtureReplaySummary): { status: PreviewStatus; events: EventSpec[] } {
  const fields = s.topFields.slice(0, 10);
  const top = fields.length > 0 ? `; top fields: ${fields.map((f) => `${f.path} (${f.mismatches})`).join(", ")}` : "";
  const text = `replayed ${s.replayed} fixtures from ${s.source}: ${s.mismatched} mismatched, ${s.errors} errors${top}`;
  const complete = Number.isInteger(s.replayed) && s.replayed > 0 && s.errors === 0;
  const reason = complete ? PreviewReason.FixturesReplayed : PreviewReason.FixturesIncomplete;
  const why = complete ? text : `${text} (${s.replayed > 0 ? "some fixtures could not be compared" : "nothing was compared"}: not a pass)`;
  const fixtures = { observedGeneration: ctx.gen, replayed: s.replayed, mismatched: s.mismatched, errors: s.errors, topFields: fields, source: s.source, at: s.at, ...(complete ? {} : { message: why }) };
  return fixturesResult(ctx, reason, fixtures, why, complete);
}

function fixturesResult(ctx: Base, reason: string, fixtures: NonNullable<PreviewStatus["fixtures"]>, message: string, ok = false): { status: PreviewStatus; events: EventSpec[] } {
  const conditions = setCondition(ctx.prev.conditions, { type: FIXTURES_CONDITION, status: ok ? "True" : "False", reason, message }, ctx.o.now, ctx.gen);
  return {
    status: { ...ctx.prev, fixtures, conditions },
    // Every replay's Event is named FixturesReplayed so one `kubectl get events --field-selector reason=FixturesReplayed` finds them.
    events: [{ type: ok ? "Normal" : "Warning", reason: PreviewReason.FixturesReplayed, message: `${reason}: ${message}`, dedupeKey: `${ctx.gen}/fixtures` }],
  };
}

/** The stable's own URL (its endpoint, or its environment's URL in the rollout's status). */
function stableUrlOf(spec: Spec, rollout: AIRollout): { ok: true; url: string } | { ok: false; message: string } {
  const name = `AIRollout ${rollout.metadata.namespace}/${rollout.metadata.name}`;
  const stable = effectiveStable(spec, rollout.status);
  if (!stable) return { ok: false, message: `${name} has no stable yet to compare the preview with` };
  const url = stable.version.endpoint ?? rollout.status?.environments?.stable?.url;
  if (!url) return { ok: false, message: `${name}: the stable ${stable.version.version} is an image version and status.environments.stable has no URL yet` };
  return { ok: true, url };
}

// ---------------------------------------------------------------------------------------------
// Expiry and deletion

/** The ttl has passed: destroy the stack once, then keep the object as Expired. */
function expire(ctx: Ctx, expiresAt: Date): PreviewPlan {
  const { o, gen, prev } = ctx;
  const at = expiresAt.toISOString();
  // Stalled: only a person moves an expired preview on, and kstatus (Flux, `kubectl wait
  // --for=condition=Stalled`) then reads Failed at once rather than waiting for a timeout.
  const expired = (message: string) => statusFor(ctx, { phase: "Expired", reason: PreviewReason.Expired, message, stalled: true }, { url: undefined, stack: undefined, expiresAt: at });
  if (prev.phase === "Expired") return { status: expired(prev.message ?? expiredMessage(at, undefined)), events: [] };
  const out = o.outcome?.type === "destroy" ? o.outcome : undefined;
  if (out && !out.ok) return failed(ctx, { reason: PreviewReason.DestroyFailed, message: `expired at ${at}, but destroying its stack failed: ${out.message}`, stalled: false, backoff: true });
  if (out?.ok || !mayHaveStack(prev)) {
    const message = expiredMessage(at, prev.stack);
    return { status: expired(message), events: [{ type: "Normal", reason: PreviewReason.Expired, message: `${message}; the object is kept`, dedupeKey: `expired/${at}/${gen}` }] };
  }
  return { events: [], work: { type: "destroy", role: previewRole(o.preview), reason: "expired" } };
}

/** When it expired, what went with it, and the two ways out. */
function expiredMessage(at: string, stack: string | undefined): string {
  return `expired at ${at}${stack ? `; stack ${stack} destroyed` : ""}; delete the AIPreview, or set spec.ttl to a later end to stand it up again`;
}

/** Whether a stack may exist: one was recorded, a stand-up was started, or one failed. */
function mayHaveStack(s: PreviewStatus): boolean {
  return s.stack !== undefined || s.phase === "Provisioning" || s.phase === "Terminating" || s.consecutiveFailures !== undefined;
}

/** Deleted: destroy the stack (unless there is none), then let the object go. */
function deleting(o: PreviewObserved): PreviewPlan {
  const p = o.preview;
  if (!(p.metadata.finalizers ?? []).includes(PREVIEW_FINALIZER)) return { events: [] };
  const prev = p.status ?? {};
  const out = o.outcome?.type === "destroy" ? o.outcome : undefined;
  if (out?.ok || prev.phase === "Expired" || !mayHaveStack(prev)) {
    return { events: out?.ok ? [{ type: "Normal", reason: PreviewReason.Destroyed, message: `stack ${prev.stack ?? previewRole(p)} destroyed; preview deleted`, dedupeKey: "destroyed" }] : [], removeFinalizer: true };
  }
  const ctx: Base = { o, gen: p.metadata.generation, prev };
  if (out && !out.ok) return failed(ctx, { reason: PreviewReason.DestroyFailed, message: `deleted, but destroying its stack failed: ${out.message}; retrying`, stalled: false, backoff: true, phase: "Terminating" });
  const status = statusFor(ctx, { phase: "Terminating", reason: PreviewReason.Terminating, message: `destroying stack ${prev.stack ?? ""}`.trim() }, {});
  return { status, events: [], work: { type: "destroy", role: previewRole(p), reason: "preview deleted" } };
}

// ---------------------------------------------------------------------------------------------
// Status and conditions

interface Health {
  phase: PreviewPhase;
  reason: string;
  message: string;
  /** Only a person can move it on. */
  stalled?: boolean;
}

/** Fields of status to set (undefined removes one). */
type StatusFields = Partial<Record<"url" | "stack" | "version" | "expiresAt", string | undefined>> & { consecutiveFailures?: number | undefined };

/** The status for a phase, with the kstatus conditions derived from it. */
function statusFor(ctx: Base, h: Health, fields: StatusFields): PreviewStatus {
  const merged: PreviewStatus = { ...ctx.prev, ...fields, observedGeneration: ctx.gen, phase: h.phase, message: h.message };
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete (merged as Record<string, unknown>)[k];
  merged.conditions = healthConditions(ctx.prev.conditions, h, ctx.o.now, ctx.gen);
  return merged;
}

/**
 * Ready=True only while serving; Reconciling=True while it moves on by itself (reason: what it
 * waits for); Stalled=True when only a person can help. Expired is Stalled (reason Expired): it
 * waits for a person to delete it or extend spec.ttl, so kstatus reads Failed, as AIRollout's
 * human pause does.
 */
function healthConditions(prev: readonly Condition[] | undefined, h: Health, now: Date, gen: number): Condition[] {
  const moving = h.phase === "Pending" || h.phase === "Provisioning" || h.phase === "Terminating" || (h.phase === "Failed" && !h.stalled);
  const inputs: ConditionInput[] = [
    h.phase === "Ready" ? { type: ConditionType.Ready, status: "True", reason: PreviewReason.Ready, message: h.message } : { type: ConditionType.Ready, status: "False", reason: h.reason, message: h.message },
    moving ? { type: ConditionType.Reconciling, status: "True", reason: h.reason, message: h.message } : { type: ConditionType.Reconciling, status: "False", reason: h.phase, message: "" },
    h.stalled ? { type: ConditionType.Stalled, status: "True", reason: h.reason, message: h.message } : { type: ConditionType.Stalled, status: "False", reason: PreviewReason.AsExpected, message: "" },
  ];
  let list = [...(prev ?? [])];
  for (const c of inputs) list = setCondition(list, c, now, gen);
  return list;
}

interface Failure {
  reason: string;
  message: string;
  stalled: boolean;
  backoff?: boolean;
  failures?: number;
  phase?: PreviewPhase;
}

/** A failed preview: status and a Warning Event naming the reason (once per generation, reason and attempt). */
function failed(ctx: Base, f: Failure): PreviewPlan {
  const status = statusFor(ctx, { phase: f.phase ?? "Failed", reason: f.reason, message: f.message, stalled: f.stalled }, f.failures !== undefined ? { consecutiveFailures: f.failures } : {});
  const event: EventSpec = { type: "Warning", reason: f.reason, message: f.message, dedupeKey: `${ctx.gen}/failed/${f.reason}/${f.failures ?? 0}` };
  return { status, events: [event], ...(f.backoff ? { backoff: true } : {}) };
}

// ---------------------------------------------------------------------------------------------
// One pass

/** What a pass needs done by the runner (kube/preview-controller.ts, or a test's fakes). */
export interface PreviewPassIO {
  /**
   * Carries a plan out (finalizer, Events, status; then finalizer removal) and returns the
   * object as stored afterwards, or undefined when the finalizer was removed (the object goes).
   */
  apply(preview: AIPreview, plan: PreviewPlan): Promise<AIPreview | undefined>;
  /** Does the work; a failure is an outcome, never an exception. */
  work(work: PreviewWork): Promise<PreviewWorkOutcome>;
  clock(): Date;
}

/** Decisions one pass makes at most: stand up (or destroy), then replay, then record. */
const MAX_DECISIONS = 4;

/**
 * One pass: decide, apply, do the work asked for, decide again with its outcome, until a
 * decision asks for no work (at most MAX_DECISIONS). Returns when to come back.
 */
export async function runPreviewPass(preview: AIPreview, rollout: AIRollout | undefined, fixturesAvailable: boolean, io: PreviewPassIO): Promise<Pick<PreviewPlan, "requeueAfterMs" | "backoff">> {
  let current = preview;
  let outcome: PreviewWorkOutcome | undefined;
  for (let i = 0; i < MAX_DECISIONS; i++) {
    const plan = decidePreview({ preview: current, rollout, now: io.clock(), fixturesAvailable, ...(outcome ? { outcome } : {}) });
    const after = await io.apply(current, plan);
    if (!after) return {};
    current = after;
    if (!plan.work) return { ...(plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : {}), ...(plan.backoff ? { backoff: true } : {}) };
    // Still asking for work after every decision a pass allows: a later pass, after backoff.
    if (i === MAX_DECISIONS - 1) break;
    outcome = await io.work(plan.work);
  }
  return { backoff: true };
}
