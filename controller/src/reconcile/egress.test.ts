/** The controller's side of the egress policy: a spec that dials outside it stops the rollout, Stalled. */
import { describe, expect, it } from "vitest";
import { FINALIZER, type AIRollout, type Status } from "../api/schema.ts";
import { parseEgressPolicy } from "../api/egress.ts";
import { reconcile } from "./reconcile.ts";
import type { World } from "./contract.ts";

const now = new Date("2026-03-01T12:00:00Z");

function rollout(candidateEndpoint: string, status?: Status): AIRollout {
  return {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "triage", namespace: "team", uid: "u1", generation: 3, resourceVersion: "10", finalizers: [FINALIZER] },
    spec: {
      stable: { version: "v1", endpoint: "http://127.0.0.1:8081" },
      candidate: { version: "v2", endpoint: candidateEndpoint },
      strategy: { steps: [{ setWeight: 50 }, { pause: {} }] },
    },
    ...(status ? { status } : {}),
  };
}

const world: World = { references: {}, egress: parseEgressPolicy() };

describe("reconcile with an egress policy", () => {
  it("refuses a candidate endpoint at the metadata address: Degraded, Stalled EgressDenied, a Warning, no requeue", () => {
    const plan = reconcile({ object: rollout("http://169.254.169.254/latest/meta-data/"), world, now });
    expect(plan.status?.phase).toBe("Degraded");
    expect(plan.status?.message).toMatch(/^spec\.candidate\.endpoint: egress to 169\.254\.169\.254 is denied: a link-local address/);
    const stalled = plan.status?.conditions?.find((c) => c.type === "Stalled");
    expect(stalled).toMatchObject({ status: "True", reason: "EgressDenied", observedGeneration: 3 });
    expect(plan.events).toEqual([expect.objectContaining({ type: "Warning", reason: "EgressDenied", message: plan.status?.message })]);
    expect(plan.backoff).toBeFalsy();
    expect(plan.requeueAfterMs).toBeUndefined();
    expect(plan.measure ?? []).toEqual([]);
    expect(plan.ensure ?? []).toEqual([]);
  });

  it("resumes where it was once the policy allows the endpoint", () => {
    const denied = reconcile({ object: rollout("http://10.1.2.3:8080", { phase: "Paused", revision: "r1", currentStep: 1, stepCount: 2 }), world: { references: {}, egress: parseEgressPolicy({ defaultAction: "deny" }) }, now });
    expect(denied.status).toMatchObject({ phase: "Degraded", interruptedPhase: "Paused" });
    const allowed = reconcile({ object: rollout("http://10.1.2.3:8080", denied.status), world: { references: {}, egress: parseEgressPolicy({ defaultAction: "deny", allowCidrs: ["10.0.0.0/8"] }) }, now });
    expect(allowed.status?.phase).not.toBe("Degraded");
    expect(allowed.status?.conditions?.find((c) => c.type === "Stalled")?.reason).not.toBe("EgressDenied");
  });

  it("checks nothing without a policy (the controller always passes one; tests and benchmarks may not)", () => {
    const plan = reconcile({ object: rollout("http://169.254.169.254/"), world: { references: {} }, now });
    expect(plan.status?.phase).toBe("Initialized");
  });
});
