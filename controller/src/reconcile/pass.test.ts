import { describe, expect, it } from "vitest";
import { FINALIZER, type AIRollout } from "../api/schema.ts";
import type { EnsureRequest } from "./contract.ts";
import { runPass } from "./pass.ts";
import { mayOwnEnvironments } from "./reconcile.ts";

const now = new Date("2026-05-01T00:00:00Z");
const endpoints = {
  stable: { version: "v1", endpoint: "http://127.0.0.1:1/" },
  candidate: { version: "v2", endpoint: "http://127.0.0.1:2/" },
  strategy: { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }] },
};
const images = { ...endpoints, candidate: { version: "v2", image: "registry.example.com/bot:v2" } };

function rollout(spec: Record<string, unknown>, finalizers: string[] = []): AIRollout {
  return { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1", finalizers }, spec } as AIRollout;
}

/** One pass with I/O that records what it was asked for. */
async function pass(obj: AIRollout) {
  const ensured: EnsureRequest[] = [];
  const plan = await runPass(obj, { references: {} }, now, {
    measure: async () => ({}),
    ensure: async (requests) => {
      ensured.push(...requests);
      return Object.fromEntries(requests.map((r) => [r.role, { ok: true, status: { stack: `s-${r.role}`, url: "http://x" } }]));
    },
  });
  return { plan, ensured };
}

describe("runPass: the writes a new rollout costs", () => {
  it("first sight of endpoint versions: one plan from Pending to the pause, the Initialized Event kept, no finalizer", async () => {
    const { plan } = await pass(rollout(endpoints));
    expect(plan.status).toMatchObject({ phase: "Paused", currentStep: 1, canaryWeight: 10 });
    expect(plan.events.map((e) => e.reason)).toEqual(["Initialized", "StepStarted", "StepStarted", "PauseStep"]);
    expect(new Set(plan.events.map((e) => e.dedupeKey)).size).toBe(4);
    expect(plan.actions).toEqual([]);
    // Settled: the next pass over that status changes nothing.
    const again = await pass({ ...rollout(endpoints), status: plan.status });
    expect(again.plan.events).toEqual([]);
    expect(again.plan.status).toEqual(plan.status);
  });

  it("a new revision of a rollout under way still shows Initialized on its own", async () => {
    const { plan } = await pass(rollout(endpoints));
    const edited = { ...rollout({ ...endpoints, candidate: { version: "v3", endpoint: "http://127.0.0.1:3/" } }), status: plan.status };
    const next = await pass(edited);
    expect(next.plan.status?.phase).toBe("Initialized");
    expect(next.plan.events.map((e) => e.reason)).toEqual(["NewRevision"]);
    expect(next.plan.requeueAfterMs).toBe(0);
  });

  it("first sight of image versions: Initialized with the finalizer, nothing stood up before it is on", async () => {
    const { plan, ensured } = await pass(rollout(images));
    expect(plan.status?.phase).toBe("Initialized");
    expect(plan.actions).toEqual([{ type: "addFinalizer" }]);
    expect(ensured).toEqual([]);
  });

  it("a stand-up asked for while the finalizer is missing (an endpoint candidate edited to an image) adds the finalizer first", async () => {
    const { plan } = await pass(rollout(endpoints));
    const restarted = await pass({ ...rollout(images), status: plan.status });
    expect(restarted.plan.status?.phase).toBe("Initialized");
    expect(restarted.plan.actions).toEqual([{ type: "addFinalizer" }]);
    expect(restarted.ensured).toEqual([]);
    // The next pass would stand the canary up; without the finalizer on, it only adds it.
    const initialized = { ...rollout(images), status: restarted.plan.status };
    const guarded = await pass(initialized);
    expect(guarded.ensured).toEqual([]);
    expect(guarded.plan).toEqual({ events: [], actions: [{ type: "addFinalizer" }], requeueAfterMs: 0 });
    const withFinalizer = await pass({ ...initialized, metadata: { ...initialized.metadata, finalizers: [FINALIZER] } });
    expect(withFinalizer.ensured.map((e) => e.role)).toEqual(["canary"]);
  });
});

describe("mayOwnEnvironments: who needs the finalizer", () => {
  it.each([
    ["endpoint versions", endpoints, undefined, false],
    ["an image candidate", images, undefined, true],
    ["an image stable", { ...endpoints, stable: { version: "v1", image: "r/b:v1" } }, undefined, true],
    ["a promoted image stable in status.stable", { candidate: endpoints.candidate, strategy: endpoints.strategy }, { stable: { spec: { version: "v1", image: "r/b:v1" } } }, true],
    ["environments in status", endpoints, { environments: { canary: { stack: "s", phase: "Ready" } } }, true],
    ["a spec that does not parse", { candidate: 7 }, undefined, false],
  ])("%s: %s", (_what, spec, status, expected) => {
    expect(mayOwnEnvironments({ spec, status } as unknown as AIRollout)).toBe(expected);
  });
});
