import { describe, expect, it } from "vitest";
import { FINALIZER, type AIRollout } from "../api/schema.ts";
import { reconcile, resolveSteps, validateSpec, candidateRevision } from "./reconcile.ts";
import type { World } from "./types.ts";

const now = new Date("2026-03-01T12:00:00Z");
const noWorld: World = { references: {} };

function rollout(spec: Record<string, unknown>, extra: Partial<AIRollout> = {}): AIRollout {
  return {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "triage", namespace: "team", uid: "u1", generation: 1, resourceVersion: "10", finalizers: [FINALIZER] },
    spec,
    ...extra,
  };
}

const base = {
  stable: { version: "v1", image: "registry/triage:v1", config: { model: "small" } },
  candidate: { version: "v2", image: "registry/triage:v2", config: { model: "large" } },
  strategy: { steps: [{ shadow: { duration: "10m" } }, { setWeight: 5 }, { pause: { duration: "5m" } }, { setWeight: 50 }, { pause: {} }, { setWeight: 100 }] },
};

describe("validateSpec", () => {
  it.each([
    ["weight above 100", { ...base, strategy: { steps: [{ setWeight: 150 }] } }, "spec.strategy.steps[0].setWeight"],
    ["empty steps", { ...base, strategy: { steps: [] } }, "spec.strategy.steps"],
    ["bad duration", { ...base, strategy: { steps: [{ pause: { duration: "5 minutes" } }] } }, "spec.strategy.steps[0].pause.duration"],
    ["two actions in one step", { ...base, strategy: { steps: [{ setWeight: 5, pause: {} }] } }, "spec.strategy.steps[0]"],
    ["image and endpoint", { ...base, candidate: { version: "v2", image: "x", endpoint: "http://a" } }, "spec.candidate"],
    ["analysis step without analysis", { ...base, strategy: { steps: [{ analysis: {} }] } }, "spec.strategy.steps"],
    ["same versions", { ...base, candidate: { version: "v1", image: "x" } }, "spec.candidate.version"],
    ["missing stable", { candidate: base.candidate, strategy: base.strategy }, "spec.stable"],
  ])("rejects %s, naming the field", (_name, spec, field) => {
    const res = validateSpec(spec);
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.message).toContain(field);
  });

  it("accepts the design sketch and fills defaults", () => {
    const res = validateSpec(base);
    expect(res.ok).toBe(true);
    if (res.ok) expect(res.spec.candidate.replicas).toBe(1);
  });
});

describe("resolveSteps", () => {
  it("carries the weight in effect through pauses and resolves durations", () => {
    const res = validateSpec(base);
    if (!res.ok) throw new Error(res.message);
    expect(resolveSteps(res.spec)).toEqual([
      { index: 0, type: "shadow", weight: 0, durationSeconds: 600 },
      { index: 1, type: "setWeight", weight: 5 },
      { index: 2, type: "pause", weight: 5, durationSeconds: 300 },
      { index: 3, type: "setWeight", weight: 50 },
      { index: 4, type: "pause", weight: 50 },
      { index: 5, type: "setWeight", weight: 100 },
    ]);
  });
});

describe("reconcile", () => {
  it("initialises a new rollout: Pending -> Initialized, status filled, one Event", () => {
    const plan = reconcile({ object: rollout(base), world: noWorld, now });
    expect(plan.status).toMatchObject({ phase: "Initialized", observedGeneration: 1, currentStep: 0, stepCount: 6, canaryWeight: 0, stableVersion: "v1", candidateVersion: "v2" });
    expect(plan.status!.conditions!.map((c) => [c.type, c.status])).toEqual([
      ["Degraded", "False"],
      ["Ready", "True"],
      ["Progressing", "True"],
    ]);
    expect(plan.events).toHaveLength(1);
    expect(plan.events[0]).toMatchObject({ type: "Normal", reason: "Initialized" });
    expect(plan.actions).toEqual([]);
  });

  it("asks for the finalizer when it is missing", () => {
    const obj = rollout(base);
    obj.metadata.finalizers = [];
    expect(reconcile({ object: obj, world: noWorld, now }).actions).toEqual([{ type: "addFinalizer" }]);
  });

  it("is idempotent: once settled, another pass over its own status emits no event and changes nothing", () => {
    const first = reconcile({ object: rollout(base), world: noWorld, now });
    expect(first.requeueAfterMs).toBe(0);
    const asked = reconcile({ object: rollout(base, { status: first.status }), world: noWorld, now });
    expect(asked.ensure!.map((e) => e.role)).toEqual(["stable", "canary", "shadow"]);
    const ready = Object.fromEntries(asked.ensure!.map((e) => [e.role, { ok: true as const, status: { stack: e.role, phase: "Ready" as const } }]));
    const second = reconcile({ object: rollout(base, { status: first.status }), world: { references: {}, environments: ready }, now });
    expect(second.status!.phase).toBe("ShadowTesting");
    expect(second.events.map((e) => e.reason)).toEqual(["EnvironmentReady", "EnvironmentReady", "EnvironmentReady", "StepStarted"]);
    const third = reconcile({ object: rollout(base, { status: second.status }), world: noWorld, now: new Date(now.getTime() + 60_000) });
    expect(third.events).toEqual([]);
    expect(third.status).toEqual(second.status);
  });

  it("restarts from step 0 on a new candidate revision (a model change) with a NewRevision event", () => {
    const first = reconcile({ object: rollout(base), world: noWorld, now });
    const advanced = { ...first.status!, currentStep: 3, canaryWeight: 50, phase: "Progressing" as const };
    const changed = { ...base, candidate: { ...base.candidate, config: { model: "larger" } } };
    const obj = rollout(changed, { status: advanced });
    obj.metadata.generation = 2;
    const plan = reconcile({ object: obj, world: noWorld, now });
    expect(plan.status).toMatchObject({ phase: "Initialized", currentStep: 0, canaryWeight: 0, observedGeneration: 2 });
    expect(plan.events[0]).toMatchObject({ reason: "NewRevision" });
  });

  it("reports an invalid spec as Degraded naming the field, with a Warning and no backoff loop", () => {
    const plan = reconcile({ object: rollout({ ...base, strategy: { steps: [{ setWeight: 150 }] } }), world: noWorld, now });
    expect(plan.status).toMatchObject({ phase: "Degraded" });
    const degraded = plan.status!.conditions!.find((c) => c.type === "Degraded")!;
    expect(degraded).toMatchObject({ status: "True", reason: "InvalidSpec" });
    expect(degraded.message).toContain("spec.strategy.steps[0].setWeight");
    expect(plan.events).toEqual([expect.objectContaining({ type: "Warning", reason: "InvalidSpec" })]);
    expect(plan.backoff).toBe(false);
  });

  it.each([
    ["an unknown keyword", { traffic: { payloadSchema: { type: "object", properties: { ticket: { typ: "string" } } } } }, "spec.traffic.payloadSchema", 'unknown keyword "typ"'],
    ["an unknown format", { traffic: { payloadSchema: { properties: { at: { format: "datetime" } } } } }, "spec.traffic.payloadSchema", 'format "datetime" is not checked'],
    ["a remote $ref", { shadow: { compare: { outputSchema: { $ref: "https://example.com/s.json" } } } }, "spec.shadow.compare.outputSchema", "is not a local reference"],
  ])("reports a JSON Schema with %s as Degraded/InvalidSpec naming the field", (_name, extra, field, why) => {
    const plan = reconcile({ object: rollout({ ...base, ...extra }), world: noWorld, now });
    expect(plan.status).toMatchObject({ phase: "Degraded" });
    const degraded = plan.status!.conditions!.find((c) => c.type === "Degraded")!;
    expect(degraded).toMatchObject({ status: "True", reason: "InvalidSpec" });
    expect(degraded.message).toContain(`${field}: invalid JSON Schema`);
    expect(degraded.message).toContain(why);
  });

  it("reports a missing Secret as Degraded/MissingReference naming the field, and backs off", () => {
    const spec = { ...base, traffic: { signature: { scheme: "github", secretRef: { name: "hook-secret", key: "hmac" } } } };
    const plan = reconcile({ object: rollout(spec), world: noWorld, now });
    const degraded = plan.status!.conditions!.find((c) => c.type === "Degraded")!;
    expect(degraded.reason).toBe("MissingReference");
    expect(degraded.message).toBe('spec.traffic.signature.secretRef: Secret "hook-secret" not found in namespace "team"');
    expect(plan.backoff).toBe(true);

    const present: World = { references: { "Secret/hook-secret": { exists: true, keys: ["other"] } } };
    expect(reconcile({ object: rollout(spec), world: present, now }).status!.message).toContain('has no key "hmac"');

    const fixed: World = { references: { "Secret/hook-secret": { exists: true, keys: ["hmac"] } } };
    const ok = reconcile({ object: rollout(spec, { status: plan.status }), world: fixed, now });
    expect(ok.status!.phase).toBe("Initialized");
    expect(ok.status!.conditions!.find((c) => c.type === "Degraded")!.status).toBe("False");
  });

  it("gives the same Warning the same dedupe key on a retried pass", () => {
    const spec = { ...base, traffic: { signature: { scheme: "github", secretRef: { name: "s", key: "k" } } } };
    const a = reconcile({ object: rollout(spec), world: noWorld, now });
    const b = reconcile({ object: rollout(spec, { status: a.status }), world: noWorld, now });
    expect(b.events[0]!.dedupeKey).toBe(a.events[0]!.dedupeKey);
  });

  it("on deletion destroys environments and removes the finalizer, leaving status alone", () => {
    const obj = rollout(base);
    obj.metadata.deletionTimestamp = "2026-03-01T12:00:00Z";
    const plan = reconcile({ object: obj, world: noWorld, now });
    expect(plan.status).toBeUndefined();
    expect(plan.actions).toEqual([{ type: "destroyEnvironments", reason: "deleted" }, { type: "removeFinalizer" }]);
  });

  it("revision changes with the prompt, not with strategy", () => {
    const a = validateSpec(base);
    const b = validateSpec({ ...base, strategy: { steps: [{ setWeight: 10 }] } });
    const c = validateSpec({ ...base, candidate: { ...base.candidate, config: { model: "large", prompt: "be brief" } } });
    if (!a.ok || !b.ok || !c.ok) throw new Error("invalid");
    expect(candidateRevision(a.spec)).toBe(candidateRevision(b.spec));
    expect(candidateRevision(a.spec)).not.toBe(candidateRevision(c.spec));
  });
});
