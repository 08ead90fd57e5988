import { describe, expect, it } from "vitest";
import { FINALIZER, type AIRollout } from "../api/schema.ts";
import { reconcile, resolveSteps, validateSpec, candidateRevision, candidateInputs, describeRevisionChange, references } from "./reconcile.ts";
import { stableEnvironmentRevision } from "./machine.ts";
import type { World } from "./contract.ts";

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
    ["missing candidate", { stable: base.stable, strategy: base.strategy }, "spec.candidate"],
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
    // kstatus reads Reconciling=True as InProgress; Ready waits for the candidate to serve all traffic.
    expect(plan.status!.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ["Ready", "False", "Initialized"],
      ["Reconciling", "True", "Initialized"],
      ["Stalled", "False", "AsExpected"],
      ["Progressing", "True", "Initialized"],
      ["Degraded", "False", "AsExpected"],
    ]);
    expect(plan.status!.conditions!.every((c) => c.observedGeneration === 1)).toBe(true);
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

describe("revisions with referenced ConfigMaps and Secrets", () => {
  // Endpoint versions: no environments to stand up, so a pass decides on the spec and the world.
  const refSpec = {
    stable: { version: "v1", endpoint: "http://stable.local", config: { model: "small", promptRef: { configMap: "stable-prompts", key: "triage.txt" } } },
    candidate: {
      version: "v2",
      endpoint: "http://candidate.local",
      config: { model: "large", promptRef: { configMap: "prompts", key: "triage.txt" } },
      env: [{ name: "MODE", value: "strict" }, { name: "TOKEN", valueFrom: { secretKeyRef: { name: "llm", key: "token" } } }, { name: "INDEX", valueFrom: { configMapKeyRef: { name: "retrieval", key: "index" } } }],
    },
    strategy: { steps: [{ setWeight: 10 }, { pause: {} }] },
  };
  const parsed = () => {
    const res = validateSpec(refSpec);
    if (!res.ok) throw new Error(res.message);
    return res.spec;
  };
  const world = (over: { prompt?: string; token?: string; stablePrompt?: string; index?: string } = {}): World => ({
    references: {
      "ConfigMap/prompts": { exists: true, keys: ["triage.txt", "other.txt"], digests: { "triage.txt": over.prompt ?? "p1p1p1p1p1p1p1p1", "other.txt": "o1o1o1o1o1o1o1o1" } },
      "ConfigMap/stable-prompts": { exists: true, keys: ["triage.txt"], digests: { "triage.txt": over.stablePrompt ?? "s1s1s1s1s1s1s1s1" } },
      "Secret/llm": { exists: true, keys: ["token"], digests: { token: over.token ?? "t1t1t1t1t1t1t1t1" } },
      "ConfigMap/retrieval": { exists: true, keys: ["index"], digests: { index: over.index ?? "i1i1i1i1i1i1i1i1" } },
    },
  });

  it("references() names each env valueFrom by its field, for stable and candidate", () => {
    const refs = references(parsed());
    expect(refs.map((r) => [r.kind, r.name, r.key, r.field])).toEqual([
      ["ConfigMap", "stable-prompts", "triage.txt", "spec.stable.config.promptRef"],
      ["ConfigMap", "prompts", "triage.txt", "spec.candidate.config.promptRef"],
      ["Secret", "llm", "token", "spec.candidate.env[1].valueFrom.secretKeyRef"],
      ["ConfigMap", "retrieval", "index", "spec.candidate.env[2].valueFrom.configMapKeyRef"],
    ]);
  });

  it("a missing env Secret is Degraded/MissingReference naming the env field", () => {
    const w = world();
    delete w.references["Secret/llm"];
    const plan = reconcile({ object: rollout(refSpec), world: w, now });
    expect(plan.status!.phase).toBe("Degraded");
    expect(plan.status!.message).toBe('spec.candidate.env[1].valueFrom.secretKeyRef: Secret "llm" not found in namespace "team"');
  });

  it("candidateRevision changes with the prompt's and the env references' content, not with an unrelated key", () => {
    const spec = parsed();
    const r = candidateRevision(spec, world());
    expect(candidateRevision(spec, world())).toBe(r);
    expect(candidateRevision(spec, world({ prompt: "p2p2p2p2p2p2p2p2" }))).not.toBe(r);
    expect(candidateRevision(spec, world({ token: "t2t2t2t2t2t2t2t2" }))).not.toBe(r);
    expect(candidateRevision(spec, world({ index: "i2i2i2i2i2i2i2i2" }))).not.toBe(r);
    const unrelated = world();
    unrelated.references["ConfigMap/prompts"]!.digests!["other.txt"] = "o2o2o2o2o2o2o2o2";
    expect(candidateRevision(spec, unrelated)).toBe(r);
  });

  it("a stable-side reference changes the stable environment's revision, not the candidate's", () => {
    const spec = parsed();
    const edited = world({ stablePrompt: "s2s2s2s2s2s2s2s2" });
    expect(candidateRevision(spec, edited)).toBe(candidateRevision(spec, world()));
    expect(stableEnvironmentRevision(spec.stable!, edited)).not.toBe(stableEnvironmentRevision(spec.stable!, world()));
    const first = reconcile({ object: rollout(refSpec), world: world(), now });
    const again = reconcile({ object: rollout(refSpec, { status: { ...first.status!, phase: "Paused", currentStep: 1, canaryWeight: 10 } }), world: edited, now });
    expect(again.status!.revision).toBe(first.status!.revision);
    expect(again.events.map((e) => e.reason)).not.toContain("NewRevision");
  });

  it("keeps the revision of a candidate without references as before (an upgrade restarts nothing)", () => {
    const res = validateSpec(base);
    if (!res.ok) throw new Error(res.message);
    expect(candidateRevision(res.spec, world())).toBe(candidateRevision(res.spec));
  });

  it("records the inputs' digests in status, never a value, and a NewRevision Event names what changed", () => {
    const first = reconcile({ object: rollout(refSpec), world: world(), now });
    expect(first.status!.revisionInputs).toEqual({
      "spec.candidate.version": expect.stringMatching(/^[0-9a-f]{16}$/),
      "spec.candidate.endpoint": expect.stringMatching(/^[0-9a-f]{16}$/),
      "spec.candidate.config": expect.stringMatching(/^[0-9a-f]{16}$/),
      "spec.candidate.env": expect.stringMatching(/^[0-9a-f]{16}$/),
      "spec.candidate.config.promptRef": "p1p1p1p1p1p1p1p1",
      "spec.candidate.env[1].valueFrom.secretKeyRef": "t1t1t1t1t1t1t1t1",
      "spec.candidate.env[2].valueFrom.configMapKeyRef": "i1i1i1i1i1i1i1i1",
    });
    const paused = { ...first.status!, phase: "Paused" as const, currentStep: 1, canaryWeight: 10 };

    const promptEdit = reconcile({ object: rollout(refSpec, { status: paused }), world: world({ prompt: "p2p2p2p2p2p2p2p2" }), now });
    expect(promptEdit.status).toMatchObject({ phase: "Initialized", currentStep: 0, canaryWeight: 0 });
    expect(promptEdit.status!.revision).not.toBe(first.status!.revision);
    const ev = promptEdit.events.find((e) => e.reason === "NewRevision")!;
    expect(ev.message).toContain("(ConfigMap prompts key triage.txt (spec.candidate.config.promptRef) changed)");
    expect(ev.message).not.toContain("spec.candidate.env");

    const secretEdit = reconcile({ object: rollout(refSpec, { status: paused }), world: world({ token: "t2t2t2t2t2t2t2t2" }), now });
    expect(secretEdit.events.find((e) => e.reason === "NewRevision")!.message).toContain("(Secret llm key token (spec.candidate.env[1].valueFrom.secretKeyRef) changed)");

    const modelEdit = reconcile({ object: rollout({ ...refSpec, candidate: { ...refSpec.candidate, config: { ...refSpec.candidate.config, model: "larger" } } }, { status: paused }), world: world(), now });
    expect(modelEdit.events.find((e) => e.reason === "NewRevision")!.message).toContain("(spec.candidate.config changed)");
  });

  it("describes added and removed inputs, bounds a long list, and says nothing without the previous inputs", () => {
    const spec = parsed();
    const next = candidateInputs(spec, world());
    expect(describeRevisionChange(undefined, next, spec)).toBe("");
    const prev = { ...next, "spec.candidate.image": "x" };
    delete (prev as Record<string, string>)["spec.candidate.env[2].valueFrom.configMapKeyRef"];
    expect(describeRevisionChange(prev, next, spec)).toBe("ConfigMap retrieval key index (spec.candidate.env[2].valueFrom.configMapKeyRef) added, spec.candidate.image removed");
    const many = Object.fromEntries(Object.keys(next).map((k) => [k, "changed"]));
    expect(describeRevisionChange(many, next, spec)).toMatch(/, spec\.candidate\.env\[2\]\.valueFrom\.configMapKeyRef changed$|and 1 more$/);
    expect(describeRevisionChange(many, next, spec)).toMatch(/and 1 more$/);
  });
});

describe("env entries", () => {
  it.each([
    ["both value and valueFrom", [{ name: "A", value: "x", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }], "exactly one of value and valueFrom"],
    ["neither value nor valueFrom", [{ name: "A" }], "exactly one of value and valueFrom"],
    ["both secretKeyRef and configMapKeyRef", [{ name: "A", valueFrom: { secretKeyRef: { name: "s", key: "k" }, configMapKeyRef: { name: "c", key: "k" } } }], "spec.candidate.env[0].valueFrom: exactly one of secretKeyRef and configMapKeyRef"],
    ["a secretKeyRef without key", [{ name: "A", valueFrom: { secretKeyRef: { name: "s" } } }], "spec.candidate.env[0].valueFrom.secretKeyRef.key"],
  ])("rejects %s, naming the field", (_what, env, expected) => {
    const res = validateSpec({ ...base, candidate: { ...base.candidate, env } });
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.message).toContain(expected);
  });
});
