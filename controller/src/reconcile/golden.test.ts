import { describe, expect, it } from "vitest";
import { FINALIZER, type AIRollout, type Status } from "../api/schema.ts";
import { runPass, type PassIO } from "./pass.ts";
import type { EventSpec, GoldenOutcome, GoldenRequest, Plan } from "./contract.ts";
import { candidateRevision, validateSpec } from "./reconcile.ts";
import { goldenRevisionMaterial } from "./references.ts";
import { withStepResult } from "./golden.ts";

const SUITE = { name: "suites", key: "suite.yaml" };
const STEP_SUITE = { name: "step-suites", key: "smoke.yaml" };

function spec(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    stable: { version: "v1", endpoint: "http://stable.test:8080" },
    candidate: { version: "v2", endpoint: "http://candidate.test:8080" },
    golden: { configMapRef: SUITE, gate: true },
    strategy: { steps: [{ setWeight: 50 }, { setWeight: 100 }], progressDeadline: "2m" },
    ...extra,
  };
}

const passed = (total: number): GoldenOutcome => ({ ok: true, suiteVersion: "7", result: { total, answered: total, passed: total, failed: 0, failures: [] } });

/** Drives passes on a simulated clock; `golden` answers every run the machine asks for. */
class Sim {
  obj: AIRollout;
  now = Date.parse("2026-05-01T00:00:00Z");
  events: EventSpec[] = [];
  requests: GoldenRequest[] = [];
  /** Every weight and mirroring flag the status ever had: traffic before the verdict shows here. */
  weights: number[] = [];
  mirrored = false;
  digest = "d1";
  /** The digest of the step's own suite (ConfigMap step-suites); undefined: that ConfigMap is missing. */
  stepDigest: string | undefined = "s1";
  golden: ((r: GoldenRequest) => GoldenOutcome) | undefined = () => passed(3);

  constructor(s: Record<string, unknown>) {
    this.obj = { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1", finalizers: [FINALIZER] }, spec: s };
  }

  async pass(): Promise<Plan> {
    const io: PassIO = { measure: async () => ({}), ensure: async () => ({}) };
    if (this.golden) {
      const answer = this.golden;
      io.golden = async (reqs) => Object.fromEntries(reqs.map((r) => (this.requests.push(r), [r.key, answer(r)])));
    }
    const refs = {
      "ConfigMap/suites": { exists: true, keys: [SUITE.key], digests: { [SUITE.key]: this.digest } },
      ...(this.stepDigest === undefined ? {} : { "ConfigMap/step-suites": { exists: true, keys: [STEP_SUITE.key], digests: { [STEP_SUITE.key]: this.stepDigest } } }),
    };
    const plan = await runPass(this.obj, { references: refs }, new Date(this.now), io);
    this.events.push(...plan.events);
    if (plan.status) this.obj = { ...this.obj, status: plan.status };
    this.weights.push(this.status.canaryWeight ?? 0);
    this.mirrored ||= this.status.shadowEnabled === true;
    return plan;
  }

  get status(): Status {
    return this.obj.status ?? {};
  }

  async runUntil(phases: string[], maxMs = 3_600_000): Promise<void> {
    const start = this.now;
    while (this.now - start <= maxMs) {
      const plan = await this.pass();
      if (phases.includes(this.status.phase ?? "")) return;
      this.now += Math.max(plan.requeueAfterMs ?? 60_000, 1);
    }
    throw new Error(`never reached ${phases.join("|")}; phase ${this.status.phase}: ${this.status.message}`);
  }
}

describe("golden gate and step (machine transitions)", () => {
  it("a passing suite runs against the candidate's own URL before any traffic, then the next step starts", async () => {
    const sim = new Sim(spec());
    await sim.runUntil(["Succeeded"]);
    expect(sim.requests).toHaveLength(1);
    expect(sim.requests[0]).toMatchObject({ url: "http://candidate.test:8080", configMapRef: SUITE, digest: "d1", concurrency: 4, timeoutMs: 10_000 });
    expect(sim.status.steps?.map((s) => s.type)).toEqual(["golden", "setWeight", "setWeight"]);
    expect(sim.status.golden).toMatchObject({ phase: "Passed", total: 3, passed: 3, failed: 0, suiteVersion: "7", suiteDigest: "d1" });
    expect(sim.events.map((e) => e.reason)).toContain("GoldenSuitePassed");
    // The weights before the suite's verdict were 0: the gate ran before any traffic.
    const firstTraffic = sim.weights.findIndex((w) => w > 0);
    expect(sim.weights.slice(0, firstTraffic).every((w) => w === 0)).toBe(true);
  });

  it("a failing suite rolls back before any traffic or mirroring, with status.golden and a GoldenSuiteFailed Event naming the masked failure", async () => {
    const sim = new Sim(spec({ strategy: { steps: [{ shadow: {} }, { setWeight: 50 }] }, shadow: {}, analysis: { prometheus: { address: "http://prom.test:9090" }, metrics: [{ name: "errors", query: "vector(0)", successCondition: "result < 1" }] } }));
    sim.golden = () => ({ ok: true, suiteVersion: "7", result: { total: 3, answered: 3, passed: 2, failed: 1, failures: [{ name: "refund", reason: "$.intent: [EMAIL] vs billing" }] } });
    await sim.runUntil(["RolledBack"]);
    expect(Math.max(...sim.weights)).toBe(0);
    expect(sim.mirrored).toBe(false);
    expect(sim.status.golden).toMatchObject({ phase: "Failed", failed: 1, maxFailures: 0, failures: [{ name: "refund" }] });
    const ev = sim.events.find((e) => e.reason === "GoldenSuiteFailed");
    expect(ev?.type).toBe("Warning");
    expect(ev?.message).toContain("2/3 cases passed, 1 failed (maxFailures 0)");
    expect(ev?.message).toContain("refund: $.intent: [EMAIL] vs billing");
  });

  it("failures up to maxFailures (set on the step) pass", async () => {
    const sim = new Sim(spec({ golden: { configMapRef: SUITE }, strategy: { steps: [{ golden: { maxFailures: 1 } }, { setWeight: 100 }] } }));
    sim.golden = () => ({ ok: true, suiteVersion: "7", result: { total: 3, answered: 3, passed: 2, failed: 1, failures: [{ name: "x", reason: "y" }] } });
    await sim.runUntil(["Succeeded"]);
    expect(sim.status.golden).toMatchObject({ phase: "Passed", maxFailures: 1 });
  });

  it.each([
    ["the suite could not be run", { ok: false, message: "reading the golden suite: not found" } as GoldenOutcome],
    ["no case was run", { ok: true, suiteVersion: "7", result: { total: 0, answered: 0, passed: 0, failed: 0, failures: [] } } as GoldenOutcome],
    ["the candidate answered no case", { ok: true, suiteVersion: "7", result: { total: 2, answered: 0, passed: 0, failed: 2, failures: [{ name: "a", reason: "no answer: ECONNREFUSED" }] } } as GoldenOutcome],
  ])("no evidence (%s) is never a pass: retried, then paused for a human, no traffic", async (_why, outcome) => {
    const sim = new Sim(spec());
    sim.golden = () => outcome;
    await sim.runUntil(["Paused"]);
    expect(sim.status.pauseReason).toBe("InsufficientEvidence");
    expect(sim.status.golden?.phase).toBe("Error");
    expect(sim.requests.length).toBeGreaterThan(1);
    expect(Math.max(...sim.weights)).toBe(0);
    expect(sim.status.currentStep).toBe(0);
  });

  it("a process without a golden runner never passes the step", async () => {
    const sim = new Sim(spec());
    sim.golden = undefined;
    await sim.runUntil(["Paused"]);
    expect(sim.status.golden).toMatchObject({ phase: "Error", message: "no golden runner in this process" });
    expect(Math.max(...sim.weights)).toBe(0);
  });

  it("the suite's digest is part of the revision: editing it makes a new revision that runs the suite again", async () => {
    const parsed = validateSpec(spec());
    if (!parsed.ok) throw new Error(parsed.message);
    const world = (d: string) => ({ references: { "ConfigMap/suites": { exists: true, keys: [SUITE.key], digests: { [SUITE.key]: d } } } });
    expect(candidateRevision(parsed.spec, world("d1"))).not.toBe(candidateRevision(parsed.spec, world("d2")));
    const sim = new Sim(spec());
    await sim.runUntil(["Succeeded"]);
    const first = sim.status.revision;
    sim.digest = "d2";
    sim.obj = { ...sim.obj, spec: spec({ candidate: { version: "v3", endpoint: "http://candidate.test:8080" } }) };
    await sim.runUntil(["Succeeded"]);
    expect(sim.status.revision).not.toBe(first);
    expect(sim.requests.map((r) => r.digest)).toEqual(["d1", "d2"]);
  });

  it("golden steps without spec.golden are refused, naming the field", () => {
    const res = validateSpec({ ...spec(), golden: undefined, strategy: { steps: [{ golden: {} }] } });
    expect(res).toMatchObject({ ok: false, message: "spec.strategy.steps: golden steps need spec.golden" });
  });
});

describe("per-step golden suites", () => {
  const twoSuites = (steps: unknown[]) => spec({ strategy: { steps, progressDeadline: "2m" } });
  const bySuite = (r: GoldenRequest): GoldenOutcome => (r.configMapRef.name === STEP_SUITE.name ? passed(5) : passed(3));

  it("a golden step runs its own suite, the gate spec.golden's; status.golden.steps keeps each step's result", async () => {
    const sim = new Sim(twoSuites([{ golden: { configMapRef: STEP_SUITE } }, { setWeight: 100 }]));
    sim.golden = bySuite;
    await sim.runUntil(["Succeeded"]);
    expect(sim.requests.map((r) => [r.configMapRef, r.field, r.digest])).toEqual([
      [SUITE, "spec.golden.configMapRef", "d1"],
      [STEP_SUITE, "spec.strategy.steps[0].golden.configMapRef", "s1"],
    ]);
    expect(sim.status.golden).toMatchObject({ phase: "Passed", total: 5, suiteDigest: "s1" });
    expect(sim.status.golden?.steps).toEqual([
      { step: 0, suite: "ConfigMap suites key suite.yaml", phase: "Passed", suiteVersion: "7", suiteDigest: "d1", total: 3, passed: 3, failed: 0, updatedAt: expect.any(String) },
      { step: 1, suite: "ConfigMap step-suites key smoke.yaml", phase: "Passed", suiteVersion: "7", suiteDigest: "s1", total: 5, passed: 5, failed: 0, updatedAt: expect.any(String) },
    ]);
  });

  it("a failing step suite rolls back, its own entry saying so while the gate's keeps its pass", async () => {
    const sim = new Sim(twoSuites([{ golden: { configMapRef: STEP_SUITE } }, { setWeight: 100 }]));
    sim.golden = (r) => (r.configMapRef.name === STEP_SUITE.name ? { ok: true, suiteVersion: "2", result: { total: 2, answered: 2, passed: 1, failed: 1, failures: [{ name: "smoke", reason: "status 500" }] } } : passed(3));
    await sim.runUntil(["RolledBack"]);
    expect(sim.status.golden?.steps?.map((e) => [e.step, e.phase])).toEqual([[0, "Passed"], [1, "Failed"]]);
    expect(sim.events.find((e) => e.reason === "GoldenSuiteFailed")?.message).toContain("smoke: status 500");
  });

  it("editing a step's own suite is a new revision: it restarts from step 1, naming the field that changed", async () => {
    const parsed = validateSpec(twoSuites([{ golden: { configMapRef: STEP_SUITE } }]));
    if (!parsed.ok) throw new Error(parsed.message);
    const world = (d: string) => ({ references: { "ConfigMap/suites": { exists: true, keys: [SUITE.key], digests: { [SUITE.key]: "d1" } }, "ConfigMap/step-suites": { exists: true, keys: [STEP_SUITE.key], digests: { [STEP_SUITE.key]: d } } } });
    expect(candidateRevision(parsed.spec, world("s1"))).not.toBe(candidateRevision(parsed.spec, world("s2")));

    const sim = new Sim(twoSuites([{ setWeight: 10 }, { golden: { configMapRef: STEP_SUITE } }, { pause: {} }, { setWeight: 100 }]));
    await sim.runUntil(["Paused"]);
    const first = sim.status.revision;
    expect(sim.status.revisionInputs?.["spec.strategy.steps[1].golden.configMapRef"]).toBe("s1");
    sim.stepDigest = "s2";
    await sim.pass();
    expect(sim.status.revision).not.toBe(first);
    expect(sim.status.currentStep ?? 0).toBe(0);
    const ev = sim.events.find((e) => e.reason === "NewRevision");
    expect(ev?.message).toContain("ConfigMap step-suites key smoke.yaml (spec.strategy.steps[1].golden.configMapRef) changed");
    await sim.runUntil(["Paused"]);
    expect(sim.requests.filter((r) => r.configMapRef.name === STEP_SUITE.name).map((r) => r.digest)).toEqual(["s1", "s2"]);
  });

  it("a step suite whose ConfigMap is missing holds the rollout, naming the step's field", async () => {
    const sim = new Sim(twoSuites([{ golden: { configMapRef: STEP_SUITE } }]));
    sim.stepDigest = undefined;
    await sim.pass();
    expect(sim.status.message).toContain('spec.strategy.steps[0].golden.configMapRef: ConfigMap "step-suites" not found');
    expect(sim.requests).toEqual([]);
  });

  it("revisions of rollouts without step suites are computed as before (no goldenSteps in the material)", () => {
    const parsed = validateSpec(spec());
    if (!parsed.ok) throw new Error(parsed.message);
    expect(goldenRevisionMaterial(parsed.spec, { references: {} })).toEqual({ golden: null });
  });

  it("withStepResult keeps one entry per step of the same revision and attempt, and starts over on a new one", () => {
    const g = (run: string, total: number) => ({ run, phase: "Passed" as const, total, passed: total, failed: 0, updatedAt: "t" });
    const suite = { name: "cm", key: "k" };
    let s = withStepResult(undefined, g("r1/a0/s0", 1), 0, suite);
    s = withStepResult(s, g("r1/a0/s2", 2), 2, suite);
    s = withStepResult(s, g("r1/a0/s0", 3), 0, suite);
    expect(s.steps?.map((e) => [e.step, e.total])).toEqual([[0, 3], [2, 2]]);
    expect(withStepResult(s, g("r1/a1/s2", 4), 2, suite).steps?.map((e) => [e.step, e.total])).toEqual([[2, 4]]);
    expect(withStepResult(s, g("r2/a0/s0", 5), 0, suite).steps).toHaveLength(1);
  });
});
