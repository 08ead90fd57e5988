/**
 * The reconcile decision, as a pure function: (observed object, world, now) -> plan.
 * No I/O here; kube/controller.ts gathers the world, then carries the plan out.
 *
 * A pass validates the spec and its references, initialises a new revision (Pending ->
 * Initialized, steps resolved, status filled), then runs the canary state machine (machine.ts).
 */
import { createHash } from "node:crypto";
import { FINALIZER, SpecSchema, type AIRollout, type Phase, type ResolvedStep, type Spec, type Status } from "../api/schema.ts";
import { parseDuration } from "../api/duration.ts";
import { setCondition } from "./conditions.ts";
import { ConditionType, Reason } from "./reasons.ts";
import { advance, resolveRolloutAnalysis } from "./machine.ts";
import type { EventSpec, Observed, Plan, Reference, World } from "./types.ts";

/** Formats zod issues as `spec.<path>: <message>` lines, naming the field. */
export function formatIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .map((i) => {
      const path = i.path.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : `${acc}.${String(p)}`), "spec");
      return `${path}: ${i.message}`;
    })
    .join("; ");
}

/** Parses the spec; returns the typed spec or the error text naming the fields. */
export function validateSpec(spec: unknown): { ok: true; spec: Spec } | { ok: false; message: string } {
  const res = SpecSchema.safeParse(spec);
  if (res.success) return { ok: true, spec: res.data };
  return { ok: false, message: formatIssues(res.error.issues) };
}

/** Objects the spec refers to, with the field that refers to each. */
export function references(spec: Spec): Reference[] {
  const refs: Reference[] = [];
  const sig = spec.traffic?.signature;
  if (sig) refs.push({ kind: "Secret", name: sig.secretRef.name, key: sig.secretRef.key, field: "spec.traffic.signature.secretRef" });
  const pass = spec.environments?.pulumi.passphraseSecretRef;
  if (pass) refs.push({ kind: "Secret", name: pass.name, key: pass.key, field: "spec.environments.pulumi.passphraseSecretRef" });
  for (const role of ["stable", "candidate"] as const) {
    const p = spec[role].config?.promptRef;
    if (p) refs.push({ kind: "ConfigMap", name: p.configMap, key: p.key, field: `spec.${role}.config.promptRef` });
  }
  return refs;
}

/** The key a reference is looked up by in World.references. */
export function referenceKey(r: Pick<Reference, "kind" | "name">): string {
  return `${r.kind}/${r.name}`;
}

/** Problems with references: missing objects or keys, each naming the spec field. */
export function referenceProblems(spec: Spec, world: World, namespace: string): string[] {
  const out: string[] = [];
  for (const r of references(spec)) {
    const seen = world.references[referenceKey(r)];
    if (!seen?.exists) out.push(`${r.field}: ${r.kind} "${r.name}" not found in namespace "${namespace}"`);
    else if (!seen.keys.includes(r.key)) out.push(`${r.field}: ${r.kind} "${r.name}" has no key "${r.key}"`);
  }
  return out;
}

/** Steps as the controller runs them: type, the weight in effect, durations in seconds. */
export function resolveSteps(spec: Spec): ResolvedStep[] {
  let weight = 0;
  return spec.strategy.steps.map((s, index): ResolvedStep => {
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
 * (image or endpoint, model, prompt, config, env). A new revision restarts the rollout, the way
 * Flagger restarts analysis when a referenced ConfigMap changes.
 */
export function candidateRevision(spec: Spec, promptDigests: Record<string, string> = {}): string {
  const c = spec.candidate;
  const material = JSON.stringify({
    version: c.version,
    image: c.image ?? null,
    endpoint: c.endpoint ?? null,
    config: c.config ?? null,
    env: c.env ?? null,
    prompt: c.config?.promptRef ? (promptDigests[`${c.config.promptRef.configMap}/${c.config.promptRef.key}`] ?? null) : null,
  });
  return createHash("sha256").update(material).digest("hex").slice(0, 16);
}

function describeVersion(v: Spec["candidate"]): string {
  const where = v.image ? `image ${v.image}` : `endpoint ${v.endpoint}`;
  const model = v.config?.model ? `, model ${v.config.model}` : "";
  return `${v.version} (${where}${model})`;
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
  const actions: Plan["actions"] = finalizers.includes(FINALIZER) ? [] : [{ type: "addFinalizer" }];

  const degrade = (reason: string, message: string, backoff: boolean): Plan => {
    let conditions = setCondition(prev.conditions, { type: ConditionType.Degraded, status: "True", reason, message }, obs.now, generation);
    conditions = setCondition(conditions, { type: ConditionType.Ready, status: "False", reason, message }, obs.now, generation);
    conditions = setCondition(conditions, { type: ConditionType.Progressing, status: "False", reason, message: "waiting for the spec to be fixed" }, obs.now, generation);
    const status: Status = { ...prev, phase: "Degraded", message, observedGeneration: generation, conditions };
    // One Warning per distinct problem and generation: a retried pass records nothing new.
    const key = createHash("sha256").update(message).digest("hex").slice(0, 12);
    events.push({ type: "Warning", reason, message, dedupeKey: `g${generation}/${reason}/${key}` });
    return { status, events, actions, backoff };
  };

  const parsed = validateSpec(obj.spec);
  if (!parsed.ok) return degrade(Reason.InvalidSpec, parsed.message, false);
  const spec = parsed.spec;
  const problems = referenceProblems(spec, obs.world, namespace);
  if (problems.length > 0) return degrade(Reason.MissingReference, problems.join("; "), true);

  const analysis = resolveRolloutAnalysis(spec);
  if (analysis.errors.length > 0) return degrade(Reason.InvalidAnalysis, analysis.errors.map((e) => e.message).join("; "), false);

  const steps = resolveSteps(spec);
  const revision = candidateRevision(spec);
  const fresh = prev.revision !== revision || prevPhase === "Pending" || prevPhase === "Degraded";
  if (!fresh) {
    const base: Status = { ...prev, observedGeneration: generation, steps, stepCount: steps.length, candidateVersion: spec.candidate.version };
    if (prev.phase !== "Succeeded") base.stableVersion = spec.stable.version;
    const next = advance(obs, spec, steps, analysis, base);
    return { ...next, events: [...events, ...next.events], actions: [...actions, ...next.actions] };
  }
  const restarted = prev.revision !== undefined && prev.revision !== revision;
  const status: Status = {
    ...prev,
    phase: "Initialized",
    message: `Initialized: ${steps.length} steps; stable ${describeVersion(spec.stable)}, candidate ${describeVersion(spec.candidate)}`,
    observedGeneration: generation,
    revision,
    attempt: 0,
    currentStep: 0,
    stepCount: steps.length,
    steps,
    stepStartedAt: obs.now.toISOString(),
    canaryWeight: 0,
    shadowEnabled: false,
    stableVersion: spec.stable.version,
    candidateVersion: spec.candidate.version,
    abort: false,
  };
  delete status.pauseStartedAt;
  delete status.pauseReason;
  delete status.analysis;
  events.push({
    type: "Normal",
    reason: restarted ? Reason.NewRevision : Reason.Initialized,
    message: restarted ? `New candidate revision ${revision}: rollout restarts from step 1. ${status.message}` : status.message!,
    dedupeKey: `g${generation}/${prevPhase}->Initialized/${revision}`,
  });
  let conditions = setCondition(prev.conditions, { type: ConditionType.Degraded, status: "False", reason: Reason.AsExpected, message: "" }, obs.now, generation);
  conditions = setCondition(conditions, { type: ConditionType.Ready, status: "True", reason: Reason.AsExpected, message: `${spec.stable.version} serves all traffic` }, obs.now, generation);
  conditions = setCondition(conditions, { type: ConditionType.Progressing, status: "True", reason: Reason.Initialized, message: status.message ?? "" }, obs.now, generation);
  status.conditions = conditions;
  // The steps start on the next pass, right away: `kubectl get air -w` shows Initialized first.
  return { status, events, actions, requeueAfterMs: 0 };
}
