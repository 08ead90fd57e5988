/**
 * The reconcile decision, as a pure function: (observed object, world, now) -> plan.
 * No I/O here; kube/controller.ts gathers the world, runPass (pass.ts) calls this once, or twice
 * around the measurements and environment stand-ups it asks for, and the controller carries the
 * final plan out.
 *
 * A pass validates the spec and its references, initialises a new revision (Pending ->
 * Initialized, steps resolved, status filled), then runs the canary state machine (machine.ts).
 */
import { FINALIZER, SpecSchema, type AIRollout, type Phase, type ResolvedStep, type Spec, type Status } from "../api/schema.ts";
import { parseDuration } from "../api/duration.ts";
import { deriveConditions } from "./conditions.ts";
import { Reason } from "./reasons.ts";
import { advance, resolveRolloutAnalysis, type ResolvedAnalysis } from "./machine.ts";
import type { EventSpec, Observed, Plan, Reference, World } from "./contract.ts";
import { goldenReferences, goldenRevisionMaterial, referenceDigest, referenceKey, versionReferences, versionReferencesOf } from "./references.ts";
import { shortHash } from "../api/hash.ts";
import { egressProblems } from "../api/egress.ts";
import { effectiveStable, stableRecord, stableRecordProblem, type EffectiveStable } from "../api/stable.ts";

export { referenceDigest, referenceKey, versionReferences };

/** Formats zod issues as `spec.<path>: <message>` lines, naming the field. */
export function formatIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .map((i) => {
      const path = i.path.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : `${acc}.${String(p)}`), "spec");
      return `${path}: ${i.message}`;
    })
    .join("; ");
}

type Validated = { ok: true; spec: Spec } | { ok: false; message: string };

/**
 * Results by spec object. A pass validates the same spec up to four times (the reference index,
 * observing the world, the decision, the stand-ups) and a cached object keeps its spec until the
 * next watch event, so a spec is parsed about once per generation; weak, so a replaced object's
 * entry goes with it.
 */
const validated = new WeakMap<object, Readonly<Validated>>();

/**
 * Parses the spec; returns the typed spec or the error text naming the fields. The result may be
 * shared between callers: read it, never change it.
 */
export function validateSpec(spec: unknown): Validated {
  const cached = spec !== null && typeof spec === "object" ? validated.get(spec) : undefined;
  if (cached) return cached;
  const res = SpecSchema.safeParse(spec);
  const out: Validated = res.success ? { ok: true, spec: res.data } : { ok: false, message: formatIssues(res.error.issues) };
  if (spec !== null && typeof spec === "object") validated.set(spec, out);
  return out;
}

/**
 * Objects the spec refers to, with the field that refers to each: the traffic and environment
 * Secrets, the candidate's, and the stable's (from spec.stable or status.stable, ADR 0009).
 */
export function references(spec: Spec, status?: Pick<Status, "stable">): Reference[] {
  const refs: Reference[] = [];
  const sig = spec.traffic?.signature;
  if (sig) refs.push({ kind: "Secret", name: sig.secretRef.name, key: sig.secretRef.key, field: "spec.traffic.signature.secretRef" });
  const pass = spec.environments?.pulumi.passphraseSecretRef;
  if (pass) refs.push({ kind: "Secret", name: pass.name, key: pass.key, field: "spec.environments.pulumi.passphraseSecretRef" });
  // A broken status.stable stops the rollout before its references matter (reconcile).
  const stable = stableRecordProblem(status) === undefined ? effectiveStable(spec, status) : undefined;
  if (stable) refs.push(...versionReferencesOf(stable.version, stable.field));
  refs.push(...versionReferences(spec, "candidate"));
  refs.push(...goldenReferences(spec));
  return refs;
}

/** Problems with references: missing objects or keys, each naming the spec field. */
export function referenceProblems(spec: Spec, world: World, namespace: string, status?: Pick<Status, "stable">): string[] {
  const out: string[] = [];
  for (const r of references(spec, status)) {
    const seen = world.references[referenceKey(r)];
    if (!seen?.exists) out.push(`${r.field}: ${r.kind} "${r.name}" not found in namespace "${namespace}"`);
    else if (!seen.keys.includes(r.key)) out.push(`${r.field}: ${r.kind} "${r.name}" has no key "${r.key}"`);
  }
  return out;
}

/** Steps as the controller runs them: type, the weight in effect, durations in seconds. */
export function resolveSteps(spec: Spec): ResolvedStep[] {
  let weight = 0;
  // spec.golden.gate: the suite runs as an extra first step, before any traffic or mirroring.
  const gate: Spec["strategy"]["steps"] = spec.golden?.gate ? [{ golden: {} }] : [];
  return [...gate, ...spec.strategy.steps].map((s, index): ResolvedStep => {
    if (s.golden) return { index, type: "golden", weight, maxFailures: s.golden.maxFailures ?? spec.golden?.maxFailures ?? 0 };
    if (s.setWeight !== undefined) {
      weight = s.setWeight;
      return { index, type: "setWeight", weight };
    }
    if (s.shadow) {
      return { index, type: "shadow", weight, ...(s.shadow.duration ? { durationSeconds: parseDuration(s.shadow.duration) / 1000 } : {}) };
    }
    if (s.pause) {
      return { index, type: "pause", weight, ...(s.pause.duration ? { durationSeconds: parseDuration(s.pause.duration) / 1000 } : {}) };
    }
    return { index, type: "analysis", weight, metrics: s.analysis?.metrics?.length ? s.analysis.metrics : (spec.analysis?.metrics.map((m) => m.name) ?? []) };
  });
}

/**
 * The candidate's revision: a hash of everything that changes what the candidate answers
 * (image or endpoint, model, prompt, config, env, and the content of the ConfigMap/Secret keys
 * it refers to). A new revision restarts the rollout, the way Flagger restarts analysis when a
 * referenced ConfigMap changes. Referenced content the world has not observed hashes as null;
 * reconcile only computes a revision once referenceProblems() found every reference.
 */
export function candidateRevision(spec: Spec, world: Pick<World, "references"> = { references: {} }): string {
  const c = spec.candidate;
  const refs = versionReferences(spec, "candidate");
  const prompt = refs.find((r) => r.field === "spec.candidate.config.promptRef");
  const envRefs = refs.filter((r) => r !== prompt).map((r) => [r.field, referenceDigest(world, r) ?? null]);
  const material = JSON.stringify({
    version: c.version,
    image: c.image ?? null,
    endpoint: c.endpoint ?? null,
    config: c.config ?? null,
    env: c.env ?? null,
    prompt: prompt ? (referenceDigest(world, prompt) ?? null) : null,
    // Only when there are any: the revisions of candidates without env references stay what
    // earlier controllers computed, so an upgrade does not restart their rollouts.
    ...(envRefs.length > 0 ? { envRefs } : {}),
    // The golden suites judge the candidate: editing one re-judges it from step 1.
    ...goldenRevisionMaterial(spec, world),
  });
  return shortHash(material);
}

/**
 * A digest of each input of the candidate's revision, by spec field (status.revisionInputs):
 * what a NewRevision Event compares to say what changed. Reference fields carry the content
 * digest of the referenced key, never the content.
 */
export function candidateInputs(spec: Spec, world: Pick<World, "references">): Record<string, string> {
  const c = spec.candidate;
  const inputs: Record<string, string> = { "spec.candidate.version": shortHash(JSON.stringify(c.version)) };
  if (c.image !== undefined) inputs["spec.candidate.image"] = shortHash(JSON.stringify(c.image));
  if (c.endpoint !== undefined) inputs["spec.candidate.endpoint"] = shortHash(JSON.stringify(c.endpoint));
  if (c.config !== undefined) inputs["spec.candidate.config"] = shortHash(JSON.stringify(c.config));
  if (c.env !== undefined) inputs["spec.candidate.env"] = shortHash(JSON.stringify(c.env));
  for (const r of versionReferences(spec, "candidate")) inputs[r.field] = referenceDigest(world, r) ?? "unobserved";
  for (const r of goldenReferences(spec)) inputs[r.field] = referenceDigest(world, r) ?? "unobserved";
  return inputs;
}

/**
 * Which inputs differ between the previous revision's and this one's, in words, e.g.
 * `ConfigMap prompts key triage.txt (spec.candidate.config.promptRef) changed`. Empty when the
 * previous inputs are unknown (a status written before revisionInputs existed).
 */
export function describeRevisionChange(prev: Record<string, string> | undefined, next: Record<string, string>, spec: Spec): string {
  if (!prev) return "";
  const refs = new Map([...versionReferences(spec, "candidate"), ...goldenReferences(spec)].map((r) => [r.field, r]));
  const name = (field: string) => {
    const r = refs.get(field);
    return r ? `${r.kind} ${r.name} key ${r.key} (${field})` : field;
  };
  const out: string[] = [];
  for (const [field, d] of Object.entries(next)) {
    if (!(field in prev)) out.push(`${name(field)} added`);
    else if (prev[field] !== d) out.push(`${name(field)} changed`);
  }
  for (const field of Object.keys(prev)) if (!(field in next)) out.push(`${field} removed`);
  // Bounded: an Event message is no place for a list of 128 env entries.
  return out.length > 6 ? `${out.slice(0, 6).join(", ")} and ${out.length - 6} more` : out.join(", ");
}

function newRevisionMessage(revision: string, changed: string, initialized: string): string {
  return `New candidate revision ${revision}${changed ? ` (${changed})` : ""}: rollout restarts from step 1. ${initialized}`;
}

function describeVersion(v: Spec["candidate"]): string {
  const where = v.image ? `image ${v.image}` : `endpoint ${v.endpoint}`;
  const model = v.config?.model ? `, model ${v.config.model}` : "";
  return `${v.version} (${where}${model})`;
}

/** A Degraded rollout whose problem cleared goes on in the phase it had, with an Event saying so. */
function resumeAfterDegraded(status: Status, events: EventSpec[], generation: number): void {
  const problem = status.message ?? "";
  status.phase = status.interruptedPhase as Phase;
  delete status.interruptedPhase;
  status.message = `Recovered: going on at step ${Math.min((status.currentStep ?? 0) + 1, status.stepCount ?? 1)}/${status.stepCount ?? "?"} (${status.phase})`;
  const key = shortHash(problem, 12);
  events.push({ type: "Normal", reason: Reason.Recovered, message: `${status.message}; the problem cleared: ${problem}`, dedupeKey: `g${generation}/recovered/${key}` });
}

/**
 * Whether a rollout may own environments (Pulumi stacks), so that its deletion must wait for their
 * teardown behind the finalizer: an image in spec.stable, spec.candidate or the promoted stable of
 * status.stable (each is stood up as a stack; a preview runs the candidate's image), or
 * environments recorded in status. Endpoint versions own nothing outside the object: no finalizer,
 * one write less per new rollout and a deletion that never waits for a controller. Read from the
 * raw object, so a spec that stopped parsing still keeps what it had. Once added, the finalizer
 * stays until deletion (runPass adds it before any stand-up).
 */
export function mayOwnEnvironments(obj: Pick<AIRollout, "spec" | "status">): boolean {
  const image = (v: unknown) => typeof (v as { image?: unknown } | undefined)?.image === "string";
  const spec = obj.spec as { stable?: unknown; candidate?: unknown } | undefined;
  const envs = obj.status?.environments;
  return image(spec?.stable) || image(spec?.candidate) || image(obj.status?.stable?.spec) || (envs !== undefined && Object.keys(envs).length > 0);
}

/** The finalizer goes on a rollout that may own environments and does not have it yet. */
function finalizerActions(obj: AIRollout): Plan["actions"] {
  return (obj.metadata.finalizers ?? []).includes(FINALIZER) || !mayOwnEnvironments(obj) ? [] : [{ type: "addFinalizer" }];
}

/** Reconciles one AIRollout: the whole decision of a pass. */
export function reconcile(obs: Observed): Plan {
  const obj: AIRollout = obs.object;
  const { generation, namespace, deletionTimestamp } = obj.metadata;
  const finalizers = obj.metadata.finalizers ?? [];
  const prev: Status = obj.status ?? {};
  const prevPhase: Phase = prev.phase ?? "Pending";
  const events: EventSpec[] = [];

  if (deletionTimestamp) {
    if (!finalizers.includes(FINALIZER)) return { events, actions: [] };
    return {
      events: [{ type: "Normal", reason: Reason.Deleting, message: "Rollout deleted: tearing its environments down", dedupeKey: `delete/${deletionTimestamp}` }],
      actions: [{ type: "destroyEnvironments", reason: "deleted" }, { type: "removeFinalizer" }],
    };
  }
  const actions = finalizerActions(obj);

  // A problem that may clear by itself (a reference not created yet) retries with backoff; one
  // only a person can fix (an invalid spec) waits for the next edit. Either way the rollout
  // remembers where it was, and resumes there once the problem clears.
  const degrade = (reason: string, message: string, backoff: boolean): Plan => {
    const status: Status = { ...prev, phase: "Degraded", message, observedGeneration: generation };
    const interrupted = prevPhase === "Degraded" ? prev.interruptedPhase : prev.revision !== undefined ? prevPhase : undefined;
    if (interrupted) status.interruptedPhase = interrupted;
    status.conditions = deriveConditions(status, { servingVersion: prev.stableVersion ?? "the stable version", degraded: { reason, message, needsPerson: !backoff } }, obs.now, generation);
    // One Warning per distinct problem and generation: a retried pass records nothing new.
    const key = shortHash(message, 12);
    events.push({ type: "Warning", reason, message, dedupeKey: `g${generation}/${reason}/${key}` });
    return { status, events, actions, backoff };
  };

  const parsed = validateSpec(obj.spec);
  if (!parsed.ok) return degrade(Reason.InvalidSpec, parsed.message, false);
  const spec = parsed.spec;
  // Before anything is dialed or stood up: only the admin (or a spec edit) can clear it.
  const denied = egressProblems(spec, namespace, obs.world.egress);
  if (denied.length > 0) return degrade(Reason.EgressDenied, denied.join("; "), false);
  const problems = referenceProblems(spec, obs.world, namespace, prev);
  if (problems.length > 0) return degrade(Reason.MissingReference, problems.join("; "), true);

  const analysis = resolveRolloutAnalysis(spec);
  if (analysis.errors.length > 0) return degrade(Reason.InvalidAnalysis, analysis.errors.map((e) => e.message).join("; "), false);

  const revision = candidateRevision(spec, obs.world);
  const wrong = stableProblem(spec, prev, revision);
  if (wrong) return degrade(wrong.reason, wrong.message, false);
  const stable = effectiveStable(spec, prev);
  const f: Fresh = { obs, spec, steps: resolveSteps(spec), revision, revisionInputs: candidateInputs(spec, obs.world), events, actions };
  // Initialisation is tracked by status.revision: a rollout Degraded mid-way resumes, it does
  // not restart, unless what the candidate answers changed.
  const fresh = prev.revision !== revision || prevPhase === "Pending" || (prevPhase === "Degraded" && !prev.interruptedPhase);
  if (!fresh) return resume(f, stable, analysis);
  if (!stable) return adopt(f);
  if (stable.source === "status" && revision === prev.stable?.revision) return candidateIsStable(f);
  return initialize(f, stable);
}

/** The same revision as the last pass: the state machine goes on where it was. */
function resume(f: Fresh, stable: EffectiveStable | undefined, analysis: ResolvedAnalysis): Plan {
  const { obs, spec, steps, events, actions } = f;
  const prev = obs.object.status ?? {};
  const generation = obs.object.metadata.generation;
  const base: Status = { ...prev, observedGeneration: generation, steps, stepCount: steps.length, candidateVersion: spec.candidate.version };
  if (prev.phase === "Degraded") resumeAfterDegraded(base, events, generation);
  if (base.phase !== "Succeeded" && stable) base.stableVersion = stable.version.version;
  // A promotion recorded by a controller before status.stable existed: record it now, so the
  // next candidate starts from the promoted version, not from a spec.stable it replaced.
  if (base.phase === "Succeeded" && !base.stable && prev.revision) base.stable = stableRecord(spec, prev.revision, obs.now, false);
  const next = advance(obs, spec, steps, analysis, base);
  return { ...next, events: [...events, ...next.events], actions: [...actions, ...next.actions] };
}

/** A new revision with a stable to compare with: Initialized, the steps start on the next pass. */
function initialize(f: Fresh, stable: EffectiveStable): Plan {
  const { obs, spec, steps, revision, revisionInputs, events, actions } = f;
  const prev = obs.object.status ?? {};
  const prevPhase = prev.phase ?? "Pending";
  const generation = obs.object.metadata.generation;
  const restarted = prev.revision !== undefined && prev.revision !== revision;
  const status = freshStatus(f, prev);
  status.phase = "Initialized";
  status.message = `Initialized: ${steps.length} steps; stable ${describeVersion(stable.version)}${stable.source === "status" ? " (status.stable: last promoted)" : ""}, candidate ${describeVersion(spec.candidate)}`;
  status.currentStep = 0;
  status.canaryWeight = 0;
  status.stableVersion = stable.version.version;
  events.push({
    type: "Normal",
    reason: restarted ? Reason.NewRevision : Reason.Initialized,
    message: restarted ? newRevisionMessage(revision, describeRevisionChange(prev.revisionInputs, revisionInputs, spec), status.message) : status.message,
    dedupeKey: `g${generation}/${prevPhase}->Initialized/${revision}`,
  });
  status.conditions = deriveConditions(status, { servingVersion: stable.version.version }, obs.now, generation);
  // The steps start on the next pass, right away: `kubectl get air -w` shows Initialized first.
  return { status, events, actions, requeueAfterMs: 0 };
}

/** What a pass decides a revision from, once the spec and its references checked out. */
interface Fresh {
  obs: Observed;
  spec: Spec;
  steps: ResolvedStep[];
  revision: string;
  revisionInputs: Record<string, string>;
  events: EventSpec[];
  actions: Plan["actions"];
}

/**
 * What stops a rollout about its stable, only a person can fix: a status.stable that does not
 * parse (the stable is unknown), or, the stable being the version last promoted (ADR 0009), a
 * candidate that differs from it under its version name, which would put two answers under one
 * metrics label. Returns the reason and the message naming the field, or undefined.
 */
function stableProblem(spec: Spec, prev: Status, revision: string): { reason: string; message: string } | undefined {
  const broken = stableRecordProblem(prev);
  if (broken) return { reason: Reason.InvalidStableRecord, message: `${broken}: the stable version is unknown; set spec.stable to name it` };
  const stable = effectiveStable(spec, prev);
  if (stable?.source !== "status" || spec.candidate.version !== stable.version.version || revision === prev.stable?.revision) return undefined;
  const message = `spec.candidate.version: ${spec.candidate.version} is the stable's version name (status.stable, promoted ${prev.stable?.promotedAt ?? "before"}), but the candidate differs from that stable; give the candidate a new version name (a prompt edited in place in its ConfigMap changes the stable too: put the new prompt under a new key or ConfigMap)`;
  return { reason: Reason.VersionNameTaken, message };
}

/** The fields every fresh revision sets, whatever it starts with (no steps run yet or none to run). */
function freshStatus(f: Fresh, prev: Status): Status {
  const status: Status = {
    ...prev,
    observedGeneration: f.obs.object.metadata.generation,
    revision: f.revision,
    revisionInputs: f.revisionInputs,
    attempt: 0,
    currentStep: f.steps.length,
    stepCount: f.steps.length,
    steps: f.steps,
    stepStartedAt: f.obs.now.toISOString(),
    canaryWeight: 100,
    shadowEnabled: false,
    candidateVersion: f.spec.candidate.version,
    abort: false,
  };
  for (const k of ["pauseStartedAt", "pauseReason", "analysis", "interruptedPhase", "shadow"] as const) delete status[k];
  return status;
}

/**
 * No spec.stable and nothing promoted yet (the first AIRollout applied): the candidate becomes the
 * stable without steps, as Argo Rollouts' first deploy does. It goes straight to Promoting, where
 * an image candidate gets the stable environment; then Succeeded with an Adopted Event.
 */
function adopt(f: Fresh): Plan {
  const prev = f.obs.object.status ?? {};
  const generation = f.obs.object.metadata.generation;
  const status = freshStatus(f, prev);
  status.phase = "Promoting";
  status.message = `Adopting ${describeVersion(f.spec.candidate)} as the stable without steps: there is no stable version yet (no spec.stable, nothing promoted before)`;
  f.events.push({ type: "Normal", reason: Reason.Adopted, message: status.message, dedupeKey: `g${generation}/adopt/${f.revision}` });
  status.conditions = deriveConditions(status, { servingVersion: "no version yet" }, f.obs.now, generation);
  return { status, events: f.events, actions: f.actions, requeueAfterMs: 0 };
}

/**
 * The candidate is the version last promoted (status.stable), e.g. a revert in git after a
 * rollback: nothing to roll out. The candidate environments of a rollout it replaces go.
 */
function candidateIsStable(f: Fresh): Plan {
  const prev = f.obs.object.status ?? {};
  const generation = f.obs.object.metadata.generation;
  const status = freshStatus(f, prev);
  status.phase = "Succeeded";
  status.stableVersion = f.spec.candidate.version;
  status.message = `Candidate ${f.spec.candidate.version} is the stable (status.stable, promoted ${prev.stable?.promotedAt ?? "before"}): nothing to roll out`;
  const leftovers = (["canary", "shadow"] as const).filter((r) => prev.environments?.[r]);
  if (leftovers.length) {
    f.actions.push({ type: "destroyEnvironments", reason: "candidate is the stable", roles: [...leftovers] });
    const envs = { ...prev.environments };
    for (const r of leftovers) delete envs[r];
    status.environments = envs;
  }
  f.events.push({ type: "Normal", reason: Reason.CandidateIsStable, message: status.message, dedupeKey: `g${generation}/stable/${f.revision}` });
  status.conditions = deriveConditions(status, { servingVersion: f.spec.candidate.version }, f.obs.now, generation);
  return { status, events: f.events, actions: f.actions };
}
