import { describe, expect, it } from "vitest";
import { ANNOTATIONS, FINALIZER, type AIRollout, type Status } from "../api/schema.ts";
import type { QueryOutcome } from "../analysis/provider.ts";
import { runPass } from "./pass.ts";
import type { EnvironmentOutcome, EventSpec, GoldenOutcome, GoldenRequest, Plan, RolloutRole, World } from "./contract.ts";

/**
 * Drives reconcile the way the controller does (measure, then decide; write status; requeue),
 * on a simulated clock. `metric` answers every query at the current time.
 */
class Sim {
  obj: AIRollout;
  now: number;
  events: EventSpec[] = [];
  queries: string[] = [];
  actions: string[] = [];
  metric: (query: string, now: number) => QueryOutcome = () => ({ kind: "value", value: 0.001 });
  ensured: string[] = [];
  /** What the controller observed of referenced Secrets and ConfigMaps. */
  refs: World["references"] = {};
  env: (role: string, version: string) => EnvironmentOutcome = (role, version) => ({ ok: true, status: { stack: `ns-bot-${role}`, phase: "Ready", url: `http://${role}.ns.svc:8080`, version } });
  /** How long a stand-up (all the environments of one pass, in parallel) takes on the simulated clock. */
  standUpMs = 0;
  /** Status messages published before a stand-up ran (what `kubectl get` shows during it). */
  announced: string[] = [];
  /** Answers golden runs; undefined: this process has no golden runner. */
  golden: ((r: GoldenRequest) => GoldenOutcome) | undefined;
  goldenRuns: GoldenRequest[] = [];

  constructor(spec: Record<string, unknown>) {
    this.now = Date.parse("2026-05-01T00:00:00Z");
    this.obj = {
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIRollout",
      metadata: { name: "bot", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1", finalizers: [FINALIZER], annotations: {} },
      spec,
    };
  }

  /** One controller pass, through the controller's own pass runner; returns the plan. */
  async pass(): Promise<Plan> {
    const plan = await runPass(this.obj, { references: { ...this.refs } }, new Date(this.now), {
      measure: async (requests) => {
        const out: Record<string, QueryOutcome> = {};
        for (const m of requests) {
          this.queries.push(m.query);
          out[m.key] = this.metric(m.query, this.now);
        }
        return out;
      },
      ensure: async (requests) => {
        const out: Partial<Record<RolloutRole, EnvironmentOutcome>> = {};
        for (const e of requests) {
          this.ensured.push(`${e.role}:${e.version}`);
          out[e.role] = this.env(e.role, e.version);
        }
        this.now += this.standUpMs;
        return out;
      },
      announce: async (status) => void this.announced.push(status.message ?? ""),
      clock: () => new Date(this.now),
      ...(this.golden ? { golden: async (requests: readonly GoldenRequest[]) => Object.fromEntries(requests.map((r) => (this.goldenRuns.push(r), [r.key, this.golden!(r)]))) } : {}),
    });
    this.events.push(...plan.events);
    this.actions.push(...plan.actions.map((a) => a.type));
    if (plan.status) this.obj = { ...this.obj, status: plan.status };
    return plan;
  }

  get status(): Status {
    return this.obj.status ?? {};
  }

  /** Passes until the phase is reached or simulated time runs out (following requeues). */
  async runUntil(phases: string[], maxMs = 3_600_000): Promise<number> {
    const start = this.now;
    for (let i = 0; i < 10_000; i++) {
      const plan = await this.pass();
      if (phases.includes(this.status.phase ?? "")) return this.now - start;
      const wait = plan.requeueAfterMs ?? 60_000;
      this.now += Math.max(wait, 1);
      if (this.now - start > maxMs) break;
    }
    throw new Error(`never reached ${phases.join("|")}; phase ${this.status.phase}: ${this.status.message}`);
  }

  annotate(key: string, value: string): void {
    this.obj = { ...this.obj, metadata: { ...this.obj.metadata, annotations: { ...this.obj.metadata.annotations, [key]: value } } };
  }

  reasons(): string[] {
    return this.events.map((e) => e.reason);
  }
}

/** What the gateways report of the current revision, answered to the shadow step's queries. */
function gatewayEvidence(e: { compared: number; mismatched: number; judged: boolean; noise?: number; sampled?: number }): (query: string) => QueryOutcome {
  return (q) => {
    if (q.includes("airollout_shadow_revision_sampled")) return e.sampled === undefined ? { kind: "empty" } : { kind: "value", value: e.sampled };
    if (q.includes("airollout_shadow_revision_comparisons") && q.includes('kind="noise"')) return { kind: "value", value: e.noise ?? 0 };
    if (q.includes("airollout_shadow_revision_comparisons")) return { kind: "value", value: e.compared };
    if (q.includes("airollout_shadow_revision_mismatches")) return { kind: "value", value: e.mismatched };
    if (q.includes("airollout_shadow_judged")) return { kind: "value", value: e.judged ? 1 : 0 };
    return { kind: "value", value: 0.001 };
  };
}

const analysis = {
  prometheus: { address: "http://prom:9090" },
  interval: "5s",
  failureLimit: 2,
  metrics: [{ name: "error-rate", query: 'sum(rate(errors{rollout="{{rollout}}"}[1m]))', successCondition: "result < 0.01" }],
};
const baseSpec = {
  stable: { version: "v1", endpoint: "http://127.0.0.1:1/" },
  candidate: { version: "v2", endpoint: "http://127.0.0.1:2/" },
  analysis,
  strategy: { steps: [{ setWeight: 10 }, { pause: { duration: "1m" } }, { analysis: {} }, { setWeight: 50 }, { analysis: {} }, { setWeight: 100 }] },
};

describe("canary state machine", () => {
  it("healthy values: every step passes, weights rise in order, Succeeded", async () => {
    const sim = new Sim(baseSpec);
    const weights: number[] = [];
    for (let i = 0; i < 200 && sim.status.phase !== "Succeeded"; i++) {
      const plan = await sim.pass();
      if (weights.at(-1) !== sim.status.canaryWeight) weights.push(sim.status.canaryWeight ?? 0);
      sim.now += Math.max(plan.requeueAfterMs ?? 1000, 1);
    }
    expect(sim.status.phase).toBe("Succeeded");
    // No 0: a new rollout's first status already has its first step started (runPass, chainFirstSight).
    expect(weights).toEqual([10, 50, 100]);
    expect(sim.status.stableVersion).toBe("v2");
    expect(sim.reasons()).toEqual(expect.arrayContaining(["Initialized", "StepStarted", "Promoting", "Succeeded"]));
    // Step analysis takes failureLimit + 1 = 3 measurements; two analysis steps.
    expect(sim.queries).toHaveLength(6);
    expect(sim.queries[0]).toBe('sum(rate(errors{rollout="bot"}[1m]))');
    expect(sim.status.analysis!.history!.map((r) => [r.id, r.phase])).toEqual([
      ["step-4-a0", "Successful"],
      ["step-2-a0", "Successful"],
    ]);
    const ready = sim.status.conditions!.find((c) => c.type === "Ready")!;
    expect(ready.message).toBe("v2 serves all traffic");
  });

  it("timed pause waits its duration; the pass asks to be requeued for its end", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { pause: { duration: "1m" } }, { setWeight: 100 }] } });
    await sim.pass();
    const plan = await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Progressing", currentStep: 1, canaryWeight: 10 });
    expect(plan.requeueAfterMs).toBe(60_000);
    sim.now += 59_000;
    await sim.pass();
    expect(sim.status.currentStep).toBe(1);
    sim.now += 1_000;
    await sim.pass();
    expect(sim.status.phase).toBe("Promoting");
  });

  it("a 720h pause asks to be woken at its end; a pass woken early (the queue wakes at most hourly) asks for the time left", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ pause: { duration: "720h" } }, { setWeight: 100 }] } });
    await sim.pass();
    const entered = await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Progressing", currentStep: 0 });
    expect(entered.requeueAfterMs).toBe(720 * 3_600_000);
    sim.now += 3_600_000;
    const early = await sim.pass();
    expect(sim.status.currentStep).toBe(0);
    expect(early.requeueAfterMs).toBe(719 * 3_600_000);
  });

  it("an analysis step measures the named metrics (all when empty)", async () => {
    const metrics = [
      { name: "a", query: "qa", successCondition: "result < 1" },
      { name: "b", query: "qb", successCondition: "result < 1" },
    ];
    const sim = new Sim({ ...baseSpec, analysis: { ...analysis, metrics }, strategy: { steps: [{ analysis: { metrics: ["b"] } }, { setWeight: 10 }, { analysis: {} }, { setWeight: 100 }] } });
    await sim.runUntil(["Progressing"]);
    await sim.runUntil(["Succeeded"]);
    const firstStep = sim.queries.slice(0, 3);
    expect(new Set(firstStep)).toEqual(new Set(["qb"]));
    expect(new Set(sim.queries.slice(3))).toEqual(new Set(["qa", "qb"]));
  });

  it("an error-rate breach rolls back within interval x failureLimit, naming metric, query and value", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { analysis: {} }, { setWeight: 100 }] } });
    sim.metric = () => ({ kind: "value", value: 0.2 });
    await sim.runUntil(["Progressing"]);
    const start = sim.now;
    await sim.runUntil(["RollingBack"]);
    expect(sim.now - start).toBeLessThanOrEqual(5_000 * 2);
    expect(sim.status.canaryWeight).toBe(0);
    const degraded = sim.status.conditions!.find((c) => c.type === "Degraded")!;
    expect(degraded).toMatchObject({ status: "True", reason: "AnalysisFailed" });
    expect(degraded.message).toContain('metric "error-rate"');
    expect(degraded.message).toContain("0.2");
    expect(degraded.message).toContain('sum(rate(errors{rollout="bot"}[1m]))');
    // Endpoint versions have no environments to tear down.
    expect(sim.actions).not.toContain("destroyEnvironments");
    await sim.runUntil(["RolledBack"]);
    expect(sim.events.filter((e) => e.type === "Warning").map((e) => e.reason)).toEqual(["AnalysisFailed", "RolledBack"]);
    const warn = sim.events.find((e) => e.reason === "AnalysisFailed")!;
    expect(warn.message).toContain("error-rate");
    // Terminal: more passes change nothing.
    const before = JSON.stringify(sim.status);
    sim.now += 600_000;
    const plan = await sim.pass();
    expect(plan.events).toEqual([]);
    expect(JSON.stringify(sim.status)).toBe(before);
  });

  it.each([
    ["empty result", { kind: "empty" } as QueryOutcome],
    ["NaN", { kind: "value", value: NaN } as QueryOutcome],
  ])("%s is Inconclusive -> Paused, never promoted; promote by hand continues", async (_name, outcome) => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { analysis: {} }, { setWeight: 100 }] } });
    sim.metric = () => outcome;
    await sim.runUntil(["Paused"]);
    expect(sim.status.pauseReason).toBe("AnalysisInconclusive");
    expect(sim.status.canaryWeight).toBe(10);
    sim.now += 3_600_000;
    await sim.pass();
    expect(sim.status.phase).toBe("Paused");
    expect(sim.status.currentStep).toBe(1);
    sim.annotate(ANNOTATIONS.promote, "step-1");
    sim.metric = () => ({ kind: "value", value: 0.001 });
    await sim.runUntil(["Succeeded"]);
    expect(sim.reasons()).toContain("Promoted");
  });

  it("the controller acts on each new annotation value exactly once: a command repeated acts again, a replayed pass never does", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ pause: {} }, { pause: {} }, { pause: {} }, { setWeight: 100 }] } });
    await sim.runUntil(["Paused"]);
    sim.annotate(ANNOTATIONS.promote, "step-a");
    await sim.pass();
    await sim.pass();
    await sim.pass();
    expect(sim.status.currentStep).toBe(1);
    sim.annotate(ANNOTATIONS.promote, "step-b");
    await sim.pass();
    expect(sim.status.currentStep).toBe(2);
    sim.annotate(ANNOTATIONS.promote, "full-c");
    await sim.runUntil(["Succeeded"]);
  });

  it("records each human-control value it acted on in status.handled", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ pause: {} }, { pause: {} }, { setWeight: 100 }] } });
    await sim.runUntil(["Paused"]);
    expect(sim.status.handled?.promote).toBeUndefined();
    sim.annotate(ANNOTATIONS.promote, "step-a");
    await sim.pass();
    expect(sim.status.handled).toMatchObject({ promote: "step-a" });
    sim.annotate(ANNOTATIONS.abort, "x1");
    await sim.runUntil(["RolledBack"]);
    sim.annotate(ANNOTATIONS.retry, "r1");
    await sim.pass();
    expect(sim.status.handled).toMatchObject({ promote: "step-a", abort: "x1", retry: "r1" });
  });

  it("measurement errors within consecutiveErrorLimit do not stop the step; beyond it the rollout pauses (no rollback)", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { analysis: {} }, { setWeight: 100 }] } });
    let calls = 0;
    sim.metric = () => (++calls <= 2 ? { kind: "error", message: "connect ECONNREFUSED 127.0.0.1:9090" } : { kind: "value", value: 0.001 });
    await sim.runUntil(["Succeeded"]);
    expect(calls).toBe(5);

    const down = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { analysis: {} }, { setWeight: 100 }] } });
    down.metric = () => ({ kind: "error", message: "connect ECONNREFUSED 127.0.0.1:9090" });
    await down.runUntil(["Paused"]);
    expect(down.status.pauseReason).toBe("AnalysisError");
    expect(down.status.message).toContain("ECONNREFUSED");
    expect(down.status.canaryWeight).toBe(10);
  });

  it("abort rolls back from any step; retry restarts from step 1 without deleting anything", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 30 }, { pause: {} }, { setWeight: 100 }] } });
    await sim.runUntil(["Paused"]);
    sim.annotate(ANNOTATIONS.abort, "x1");
    await sim.runUntil(["RolledBack"]);
    expect(sim.status).toMatchObject({ abort: true, canaryWeight: 0 });
    expect(sim.status.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "Aborted" });
    sim.annotate(ANNOTATIONS.retry, "r1");
    await sim.pass();
    expect(sim.status).toMatchObject({ attempt: 1, abort: false });
    expect(sim.reasons()).toContain("Retry");
    await sim.runUntil(["Paused"]);
    expect(sim.status.currentStep).toBe(1);
    expect(sim.status.canaryWeight).toBe(30);
    expect(sim.status.conditions!.find((c) => c.type === "Degraded")!.status).toBe("False");
    // The same retry value again does nothing.
    sim.annotate(ANNOTATIONS.abort, "x2");
    await sim.runUntil(["RolledBack"]);
    await sim.pass();
    expect(sim.status.phase).toBe("RolledBack");
  });

  it("background analysis from a starting step rolls back on failure mid-pause", async () => {
    const spec = {
      ...baseSpec,
      analysis: { ...analysis, background: { startingStep: 1 } },
      strategy: { steps: [{ setWeight: 10 }, { setWeight: 20 }, { pause: { duration: "10m" } }, { setWeight: 100 }] },
    };
    const sim = new Sim(spec);
    sim.metric = (_q, now) => ({ kind: "value", value: now - sim.now >= 0 && sim.queries.length > 3 ? 0.5 : 0.001 });
    await sim.runUntil(["RollingBack"]);
    expect(sim.status.currentStep).toBe(2);
    expect(sim.events.find((e) => e.reason === "AnalysisFailed")!.message).toContain("background analysis");
  });

  it("spec.paused holds the rollout and resumes when cleared", async () => {
    const sim = new Sim({ ...baseSpec, paused: true, strategy: { steps: [{ setWeight: 10 }, { setWeight: 100 }] } });
    await sim.pass();
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Paused", pauseReason: "SpecPaused" });
    sim.obj = { ...sim.obj, spec: { ...baseSpec, paused: false, strategy: { steps: [{ setWeight: 10 }, { setWeight: 100 }] } } };
    await sim.runUntil(["Succeeded"]);
  });

  it("a shadow step mirrors (shadowEnabled) for its duration, then passes on judged evidence within the limit", async () => {
    const spec = { ...baseSpec, shadow: { maxMismatchRate: 0.05, minSamples: 100 }, strategy: { steps: [{ shadow: { duration: "2m" } }, { setWeight: 100 }] } };
    const sim = new Sim(spec);
    await sim.pass();
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "ShadowTesting", shadowEnabled: true, canaryWeight: 0 });
    sim.metric = gatewayEvidence({ compared: 400, mismatched: 12, judged: true, sampled: 800 });
    const took = await sim.runUntil(["Succeeded"]);
    expect(took).toBeGreaterThanOrEqual(120_000);
    // Half the chosen requests were compared: the rule counts the 400, the coverage says so.
    expect(sim.status.shadow).toMatchObject({ compared: 400, required: 100, judged: true, mismatched: 12, mismatchRate: "3.0%", sampled: 800, coverage: "50.0%" });
    expect(sim.status.shadow!.verdict).toContain("end of step");
  });

  it("an analysis naming an unknown metric or a bad condition is Degraded naming the metric and field", async () => {
    const bad = new Sim({ ...baseSpec, analysis: { ...analysis, metrics: [{ name: "lat", query: "up", successCondition: "result <" }] }, strategy: { steps: [{ analysis: {} }] } });
    await bad.pass();
    const d = bad.status.conditions!.find((c) => c.type === "Degraded")!;
    expect(d).toMatchObject({ status: "True", reason: "InvalidAnalysis" });
    expect(d.message).toContain('metric "lat": successCondition');

    const unknownVar = new Sim({ ...baseSpec, analysis: { ...analysis, metrics: [{ name: "q", query: 'up{x="{{colour}}"}', max: 1 }] }, strategy: { steps: [{ analysis: {} }] } });
    await unknownVar.pass();
    expect(unknownVar.status.conditions!.find((c) => c.type === "Degraded")!.message).toContain("colour");

    const missing = new Sim({ ...baseSpec, strategy: { steps: [{ analysis: { metrics: ["nope"] } }] } });
    await missing.pass();
    expect(missing.status.conditions!.find((c) => c.type === "Degraded")!.message).toContain('"nope"');
  });

  it("a new candidate revision mid-rollout restarts from the first step", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }] } });
    await sim.runUntil(["Paused"]);
    sim.obj = { ...sim.obj, metadata: { ...sim.obj.metadata, generation: 2 }, spec: { ...baseSpec, candidate: { version: "v3", endpoint: "http://127.0.0.1:3/" }, strategy: { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }] } } };
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Initialized", currentStep: 0, canaryWeight: 0, candidateVersion: "v3" });
    expect(sim.reasons()).toContain("NewRevision");
  });
});

describe("bad queries", () => {
  it("a query Prometheus rejects stops at once with a Degraded condition quoting its error, no hot loop", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { analysis: {} }, { setWeight: 100 }] } });
    sim.metric = () => ({ kind: "error", message: "bad_data: 1:14: parse error: unexpected end of input", permanent: true });
    await sim.runUntil(["Paused"]);
    expect(sim.queries).toHaveLength(1);
    const d = sim.status.conditions!.find((c) => c.type === "Degraded")!;
    expect(d).toMatchObject({ status: "True", reason: "InvalidQuery" });
    expect(d.message).toContain("bad_data: 1:14: parse error");
    const plan = await sim.pass();
    expect(plan.measure ?? []).toEqual([]);
    expect(plan.requeueAfterMs).toBeUndefined();
  });
});

describe("background analysis during pauses", () => {
  it("keeps measuring while paused for a human and rolls back on a breach", async () => {
    const spec = { ...baseSpec, analysis: { ...analysis, background: { startingStep: 0 } }, strategy: { steps: [{ setWeight: 20 }, { pause: {} }] } };
    const sim = new Sim(spec);
    await sim.runUntil(["Paused"]);
    const before = sim.queries.length;
    sim.now += 5_000;
    await sim.pass();
    expect(sim.queries.length).toBe(before + 1);
    sim.metric = () => ({ kind: "value", value: 0.9 });
    await sim.runUntil(["RollingBack"]);
    expect(sim.events.find((e) => e.reason === "AnalysisFailed")!.message).toContain("background analysis");
  });
});

describe("status extras", () => {
  it("fills status.shadow from the gateways' evidence of this revision in Prometheus while shadowing", async () => {
    const spec = { ...baseSpec, strategy: { steps: [{ shadow: { duration: "10m" } }, { setWeight: 100 }] } };
    const sim = new Sim(spec);
    sim.metric = gatewayEvidence({ compared: 200, mismatched: 10, judged: true });
    await sim.pass();
    await sim.pass();
    expect(sim.status.shadow).toMatchObject({ compared: 200, mismatched: 10, mismatchRate: "5.0%", judged: true, required: 100 });
    expect(sim.queries.every((q) => q.includes(`revision="${sim.status.revision}"`))).toBe(true);
    const n = sim.queries.length;
    sim.now += 1000;
    await sim.pass();
    expect(sim.queries.length).toBe(n);
  });

  it("a step overrunning progressDeadline sets Progressing=False with a Warning, without aborting", async () => {
    const spec = {
      ...baseSpec,
      analysis: { ...analysis, metrics: [{ ...analysis.metrics[0], count: 100 }] },
      strategy: { progressDeadline: "1m", steps: [{ setWeight: 10 }, { analysis: {} }, { setWeight: 100 }] },
    };
    const sim = new Sim(spec);
    for (let i = 0; i < 30; i++) {
      const plan = await sim.pass();
      sim.now += plan.requeueAfterMs ?? 5000;
    }
    const progressing = sim.status.conditions!.find((c) => c.type === "Progressing")!;
    expect(progressing).toMatchObject({ status: "False", reason: "ProgressDeadlineExceeded" });
    expect(sim.events.filter((e) => e.reason === "ProgressDeadlineExceeded")).toHaveLength(1);
    expect(sim.status.phase).toBe("Progressing");
  });

  it("progressDeadline (default 10m) marks a step that overruns with Progressing=False/ProgressDeadlineExceeded and Stalled=True", async () => {
    const sim = new Sim({ ...baseSpec, analysis: { ...analysis, metrics: [{ ...analysis.metrics[0], count: 1000 }] }, strategy: { steps: [{ setWeight: 10 }, { analysis: {} }] } });
    await sim.runUntil(["Progressing"]);
    const passUntil = async (elapsedMs: number) => {
      while (sim.now - Date.parse(sim.status.stepStartedAt!) < elapsedMs) {
        await sim.pass();
        sim.now += 5_000;
      }
      await sim.pass();
    };
    const cond = (type: string) => sim.status.conditions!.find((c) => c.type === type)!;
    await passUntil(9 * 60_000);
    expect(sim.status.currentStep).toBe(1);
    expect(cond("Progressing").reason).not.toBe("ProgressDeadlineExceeded");
    expect(cond("Stalled").status).toBe("False");
    await passUntil(10 * 60_000 + 5_000);
    expect(cond("Progressing")).toMatchObject({ status: "False", reason: "ProgressDeadlineExceeded" });
    expect(cond("Stalled")).toMatchObject({ status: "True", reason: "ProgressDeadlineExceeded" });
    expect(sim.status.phase).toBe("Progressing");
  });

  it("progressDeadline counts from the end of a timed step's own duration", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { progressDeadline: "1m", steps: [{ setWeight: 10 }, { pause: { duration: "5m" } }, { setWeight: 100 }] } });
    await sim.runUntil(["Succeeded"]);
    expect(sim.reasons()).not.toContain("ProgressDeadlineExceeded");
  });
});

describe("environments (image versions)", () => {
  const imageSpec = {
    ...baseSpec,
    stable: { version: "v1", image: "registry/triage:v1" },
    candidate: { version: "v2", image: "registry/triage:v2" },
    strategy: { steps: [{ shadow: { duration: "1m" } }, { setWeight: 50 }, { setWeight: 100 }] },
  };

  it("stands up stable, canary and shadow before the first step; promotion moves stable to the candidate and destroys the rest", async () => {
    const sim = new Sim(imageSpec);
    sim.metric = gatewayEvidence({ compared: 300, mismatched: 0, judged: true });
    await sim.pass();
    await sim.pass();
    expect(sim.ensured).toEqual(["stable:stable", "canary:candidate", "shadow:candidate"]);
    expect(sim.status.phase).toBe("ShadowTesting");
    expect(sim.status.environments!.canary).toMatchObject({ phase: "Ready", url: "http://canary.ns.svc:8080" });
    await sim.runUntil(["Succeeded"]);
    expect(sim.ensured.at(-1)).toBe("stable:candidate");
    expect(sim.actions).toContain("destroyEnvironments");
    expect(Object.keys(sim.status.environments!)).toEqual(["stable"]);
  });

  it("a failing environment is Degraded with Pulumi's message, retried with backoff, then Stalled after maxConsecutiveFailures", async () => {
    const sim = new Sim(imageSpec);
    sim.env = (role) => (role === "canary" ? { ok: false, failure: { transient: false, reason: "InvalidEnvironment", message: "image \"registry/triage:v2\" is not a valid reference", stackName: "ns-bot-canary", role: "canary" } } : { ok: true, status: { stack: `ns-bot-${role}`, phase: "Ready" } });
    await sim.pass();
    const plans = [await sim.pass(), await sim.pass(), await sim.pass()];
    expect(plans.slice(0, 2).every((p) => p.backoff)).toBe(true);
    expect(sim.status.phase).toBe("Initialized");
    const degraded = sim.status.conditions!.find((c) => c.type === "Degraded")!;
    expect(degraded).toMatchObject({ status: "True", reason: "InvalidEnvironment" });
    expect(degraded.message).toContain("not a valid reference");
    expect(sim.status.conditions!.find((c) => c.type === "Stalled")).toMatchObject({ status: "True" });
    const tries = sim.ensured.filter((e) => e.startsWith("canary")).length;
    expect(tries).toBe(3);
    const after = await sim.pass();
    expect(sim.ensured.filter((e) => e.startsWith("canary")).length).toBe(tries);
    expect(after.backoff).toBeUndefined();
  });

  it("a locked stack (transient) backs off without counting towards Stalled", async () => {
    const sim = new Sim(imageSpec);
    let locked = 5;
    sim.env = (role) => (role === "canary" && locked-- > 0 ? { ok: false, failure: { transient: true, reason: "StackLocked", message: "the stack is locked by an update in progress", stackName: "ns-bot-canary", role: "canary" } } : { ok: true, status: { stack: `ns-bot-${role}`, phase: "Ready" } });
    await sim.pass();
    for (let i = 0; i < 7; i++) await sim.pass();
    expect(sim.status.phase).toBe("ShadowTesting");
    expect(sim.status.conditions!.find((c) => c.type === "Stalled")).toMatchObject({ status: "False" });
  });

  it("a step's clock starts when its environments are Ready: a stand-up longer than the step does not use the step up", async () => {
    const sim = new Sim({ ...imageSpec, strategy: { steps: [{ pause: { duration: "5s" } }, { pause: {} }] } });
    sim.standUpMs = 15_000;
    await sim.pass();
    expect(sim.status.phase).toBe("Initialized");
    const passStart = sim.now;
    const plan = await sim.pass();
    const ready = passStart + 15_000;
    expect(sim.now).toBe(ready);
    expect(sim.status).toMatchObject({ phase: "Progressing", currentStep: 0 });
    expect(Date.parse(sim.status.stepStartedAt!)).toBe(ready);
    expect(plan.requeueAfterMs).toBe(5_000);
    await sim.runUntil(["Paused"]);
    expect(sim.status.currentStep).toBe(1);
    // The 5 s pause ran its full 5 s after Ready (before the fix: 0 s, the stand-up had used it).
    expect(Date.parse(sim.status.stepStartedAt!) - ready).toBeGreaterThanOrEqual(5_000);

    // A config change restarts from step 1 with a new candidate revision: the same again.
    sim.obj = { ...sim.obj, metadata: { ...sim.obj.metadata, generation: 2 }, spec: { ...(sim.obj.spec as Record<string, unknown>), candidate: { version: "v2", image: "registry/triage:v2", config: { model: "large" } } } };
    sim.standUpMs = 3_000;
    await sim.pass();
    expect(sim.status.phase).toBe("Initialized");
    const again = sim.now + 3_000;
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Progressing", currentStep: 0 });
    expect(Date.parse(sim.status.stepStartedAt!)).toBe(again);
    await sim.runUntil(["Paused"]);
    expect(Date.parse(sim.status.stepStartedAt!) - again).toBeGreaterThanOrEqual(5_000);
  });

  it("while environments are stood up the status says which; a failure retried says so; one that gave up says it stopped and why", async () => {
    const sim = new Sim(imageSpec);
    await sim.pass();
    await sim.pass();
    expect(sim.announced).toEqual(["Standing up environments: stable, canary, shadow"]);

    const failing = new Sim(imageSpec);
    failing.env = (role) => (role === "canary" ? { ok: false, failure: { transient: false, reason: "InvalidEnvironment", message: "image is not a valid reference", stackName: "ns-bot-canary", role: "canary" } } : { ok: true, status: { stack: `ns-bot-${role}`, phase: "Ready" } });
    await failing.pass();
    await failing.pass();
    expect(failing.status.message).toBe("Standing up environments: canary; retrying with backoff after canary: image is not a valid reference (1 of 3 failures)");
    await failing.pass();
    // During the retry the status published says what it retries after.
    expect(failing.announced.at(-1)).toBe("Standing up environments: canary; retrying with backoff after canary: image is not a valid reference (1 of 3 failures)");
    expect(failing.status.message).toContain("(2 of 3 failures)");
    await failing.pass();
    expect(failing.status.conditions!.find((c) => c.type === "Stalled")).toMatchObject({ status: "True" });
    expect(failing.status.message).toBe(
      "Gave up standing up environments: the canary environment (stack ns-bot-canary) failed 3 times in a row (maxConsecutiveFailures 3): image is not a valid reference. Not retrying until the spec changes",
    );
    await failing.pass();
    expect(failing.status.message).toMatch(/^Gave up standing up environments/);
  });

  it("a promotion whose stable update keeps failing says it gave up, not that it is still promoting", async () => {
    const sim = new Sim({ ...imageSpec, strategy: { steps: [{ setWeight: 100 }] } });
    sim.env = (role, version) =>
      role === "stable" && version === "candidate"
        ? { ok: false, failure: { transient: false, reason: "EnvironmentUpdateFailed", message: "error: the Deployment was refused", stackName: "ns-bot-stable", role: "stable" } }
        : { ok: true, status: { stack: `ns-bot-${role}`, phase: "Ready" } };
    for (let i = 0; i < 3; i++) await sim.pass();
    expect(sim.status.phase).toBe("Promoting");
    expect(sim.status.message).toBe("Promoting v2: updating the stable environment; retrying with backoff after stable: error: the Deployment was refused (1 of 3 failures)");
    for (let i = 0; i < 3; i++) await sim.pass();
    expect(sim.status.conditions!.find((c) => c.type === "Stalled")).toMatchObject({ status: "True" });
    expect(sim.status.message).toBe(
      "Gave up promoting v2 (updating the stable environment): the stable environment (stack ns-bot-stable) failed 3 times in a row (maxConsecutiveFailures 3): error: the Deployment was refused. Not retrying until the spec changes",
    );
  });

  it("rollback destroys the candidate's environments only", async () => {
    const sim = new Sim({ ...imageSpec, strategy: { steps: [{ setWeight: 50 }, { pause: {} }] } });
    await sim.runUntil(["Paused"]);
    sim.annotate(ANNOTATIONS.abort, "now");
    const plan = await sim.pass();
    expect(plan.actions).toContainEqual({ type: "destroyEnvironments", reason: "rollback", roles: ["canary"] });
    await sim.runUntil(["RolledBack"]);
    expect(Object.keys(sim.status.environments!)).toEqual(["stable"]);
  });
});

describe("shadow steps decide on evidence", () => {
  const shadowSpec = (extra: Record<string, unknown> = {}) => ({
    ...baseSpec,
    shadow: { maxMismatchRate: 0.05, minSamples: 50 },
    strategy: { steps: [{ shadow: { duration: "10m" } }, { setWeight: 20 }, { setWeight: 100 }], progressDeadline: "5m" },
    ...extra,
  });

  it("a clear regression is rolled back as soon as the evidence is conclusive, before the step's duration ends", async () => {
    const sim = new Sim(shadowSpec());
    sim.metric = gatewayEvidence({ compared: 300, mismatched: 45, judged: true });
    const took = await sim.runUntil(["RolledBack"]);
    expect(took).toBeLessThan(10 * 60_000);
    expect(sim.reasons()).toContain("ShadowMismatch");
    const ev = sim.events.find((e) => e.reason === "ShadowMismatch")!;
    expect(ev.message).toContain("stopped early: 45/300 comparisons mismatched (15.0%)");
    expect(sim.status.canaryWeight).toBe(0);
    expect(sim.status.conditions!.find((c) => c.type === "Stalled")).toMatchObject({ status: "True", reason: "RolledBack" });
  });

  it("rollback: the weight goes to 0 and mirroring stops (the gateway follows status)", async () => {
    const sim = new Sim(shadowSpec());
    sim.metric = gatewayEvidence({ compared: 10, mismatched: 0, judged: false });
    await sim.runUntil(["ShadowTesting"]);
    expect(sim.status.shadowEnabled).toBe(true);
    sim.annotate(ANNOTATIONS.abort, "a1");
    await sim.runUntil(["RolledBack"]);
    expect(sim.status).toMatchObject({ canaryWeight: 0, shadowEnabled: false });
  });

  it("a candidate near the limit runs its whole step, then the end-of-step rule decides", async () => {
    const sim = new Sim(shadowSpec());
    sim.metric = gatewayEvidence({ compared: 300, mismatched: 18, judged: true });
    const took = await sim.runUntil(["RolledBack"]);
    expect(took).toBeGreaterThanOrEqual(10 * 60_000);
    expect(sim.events.find((e) => e.reason === "ShadowMismatch")!.message).toContain("end of step: 18/300 comparisons mismatched (6.0%), above maxMismatchRate 5.0%");
  });

  it("a low-traffic candidate never passes its shadow step: it keeps mirroring, then pauses for a human with the counts", async () => {
    const sim = new Sim(shadowSpec());
    // Nothing is flagged before minSamples, so the gateway's counters read 0 mismatches: not a pass.
    sim.metric = gatewayEvidence({ compared: 12, mismatched: 0, judged: false });
    await sim.runUntil(["Paused"]);
    expect(sim.status).toMatchObject({ phase: "Paused", pauseReason: "InsufficientEvidence", canaryWeight: 0, currentStep: 0 });
    expect(sim.status.shadow).toMatchObject({ compared: 12, required: 50, judged: false });
    expect(sim.status.message).toContain("12 of 50 required comparisons");
    expect(sim.status.conditions!.find((c) => c.type === "Stalled")).toMatchObject({ status: "True", reason: "InsufficientEvidence" });
    expect(sim.status.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "False" });
    // A human may still decide: promote completes the step.
    sim.annotate(ANNOTATIONS.promote, "step-1");
    await sim.pass();
    expect(sim.status.currentStep).toBeGreaterThan(0);
  });

  it("no gateway reporting this revision (empty results) is no evidence", async () => {
    const sim = new Sim(shadowSpec());
    sim.metric = () => ({ kind: "empty" });
    await sim.runUntil(["Paused"]);
    expect(sim.status.pauseReason).toBe("InsufficientEvidence");
    expect(sim.status.message).toContain("no gateway has reported comparisons of this revision yet");
  });

  it("a shadow step without spec.analysis cannot read evidence and never passes on its duration alone", async () => {
    const { analysis: _none, ...noAnalysis } = shadowSpec();
    const sim = new Sim(noAnalysis);
    await sim.runUntil(["Paused"]);
    expect(sim.status.pauseReason).toBe("InsufficientEvidence");
    expect(sim.status.message).toContain("spec.analysis.prometheus is not set");
  });

  it("with a noise baseline the noise comparisons are required too", async () => {
    const sim = new Sim(shadowSpec({ shadow: { maxMismatchRate: 0.05, minSamples: 50, noiseBaseline: { enabled: true, endpoint: "http://127.0.0.1:3/" } } }));
    sim.metric = gatewayEvidence({ compared: 500, mismatched: 0, judged: true, noise: 20 });
    await sim.runUntil(["Paused"]);
    expect(sim.status.message).toContain("20 of 50 required noise comparisons");
  });
});

describe("health conditions follow the phase (kstatus: Ready, Reconciling, Stalled)", () => {
  const cond = (sim: Sim, type: string) => {
    const c = sim.status.conditions!.find((x) => x.type === type)!;
    return `${c.status}/${c.reason}`;
  };

  it.each([
    ["progressing", { steps: [{ setWeight: 10 }, { pause: { duration: "1h" } }] }, ["Progressing"], "False/Progressing", "True/Progressing", "False/AsExpected"],
    ["paused for a human", { steps: [{ setWeight: 10 }, { pause: {} }] }, ["Paused"], "False/Paused", "False/PauseStep", "True/PauseStep"],
    ["succeeded", { steps: [{ setWeight: 10 }, { setWeight: 100 }] }, ["Succeeded"], "True/Succeeded", "False/Succeeded", "False/AsExpected"],
  ])("%s", async (_name, strategy, phases, ready, reconciling, stalled) => {
    const sim = new Sim({ ...baseSpec, strategy });
    await sim.runUntil(phases);
    expect([cond(sim, "Ready"), cond(sim, "Reconciling"), cond(sim, "Stalled")]).toEqual([ready, reconciling, stalled]);
    expect(sim.status.conditions!.every((c) => c.observedGeneration === 1)).toBe(true);
  });

  it("rolled back: Ready False, Stalled True (Aborted), not Reconciling", async () => {
    const sim = new Sim({ ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { pause: {} }] } });
    await sim.runUntil(["Paused"]);
    sim.annotate(ANNOTATIONS.abort, "a1");
    await sim.runUntil(["RolledBack"]);
    expect([cond(sim, "Ready"), cond(sim, "Reconciling"), cond(sim, "Stalled")]).toEqual(["False/RolledBack", "False/Aborted", "True/Aborted"]);
  });

  it("an invalid spec is Stalled; a missing reference is Reconciling (it retries with backoff)", async () => {
    const invalid = new Sim({ ...baseSpec, strategy: { steps: [{ analysis: { metrics: ["nope"] } }] } });
    await invalid.pass();
    expect([cond(invalid, "Ready"), cond(invalid, "Reconciling"), cond(invalid, "Stalled")]).toEqual(["False/InvalidAnalysis", "False/InvalidAnalysis", "True/InvalidAnalysis"]);

    const missing = new Sim({ ...baseSpec, candidate: { ...baseSpec.candidate, config: { promptRef: { configMap: "prompts", key: "p" } } } });
    const plan = await missing.pass();
    expect(plan.backoff).toBe(true);
    expect([cond(missing, "Ready"), cond(missing, "Reconciling"), cond(missing, "Stalled")]).toEqual(["False/MissingReference", "True/Degraded", "False/AsExpected"]);
  });

  it("environments that gave up after maxConsecutiveFailures are Stalled", async () => {
    const sim = new Sim({ ...baseSpec, stable: { version: "v1", image: "r/t:v1" }, candidate: { version: "v2", image: "r/t:v2" } });
    sim.env = (role) => ({ ok: false, failure: { transient: false, reason: "InvalidEnvironment", message: "bad image", stackName: `ns-bot-${role}`, role: role as "canary" } });
    for (let i = 0; i < 5; i++) await sim.pass();
    expect(cond(sim, "Stalled")).toBe("True/EnvironmentFailed");
    expect(cond(sim, "Reconciling")).toBe("False/EnvironmentFailed");
  });

  it("a permanent environment failure (image versions with --environments none) is Stalled at once, naming the cause", async () => {
    const sim = new Sim({ ...baseSpec, stable: { version: "v1", image: "r/t:v1" }, candidate: { version: "v2", image: "r/t:v2" } });
    sim.env = (role) => ({ ok: false, failure: { transient: false, permanent: true, reason: "EnvironmentsDisabled", message: "image versions need environments", stackName: `ns-bot-${role}`, role: role as "canary" } });
    await sim.pass();
    await sim.pass();
    expect(cond(sim, "Stalled")).toBe("True/EnvironmentFailed");
    expect(sim.status.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "EnvironmentsDisabled" });
    expect(sim.status.canaryWeight).toBe(0);
    expect(sim.status.phase).toBe("Initialized");
  });
});

describe("a Degraded rollout resumes where it was", () => {
  it("a reference that goes missing mid-rollout and comes back resumes at the same step, not step 1", async () => {
    const sim = new Sim({ ...baseSpec, traffic: { signature: { scheme: "github", secretRef: { name: "hmac", key: "k" } } }, strategy: { steps: [{ setWeight: 10 }, { setWeight: 30 }, { pause: {} }, { setWeight: 100 }] } });
    sim.refs = { "Secret/hmac": { exists: true, keys: ["k"] } };
    await sim.runUntil(["Paused"]);
    const revision = sim.status.revision;
    expect(sim.status).toMatchObject({ currentStep: 2, canaryWeight: 30 });
    sim.refs = {};
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Degraded", interruptedPhase: "Paused", currentStep: 2 });
    sim.refs = { "Secret/hmac": { exists: true, keys: ["k"] } };
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Paused", currentStep: 2, canaryWeight: 30, revision });
    expect(sim.status.interruptedPhase).toBeUndefined();
    expect(sim.reasons()).toContain("Recovered");
    expect(sim.reasons().filter((r) => r === "Initialized" || r === "NewRevision")).toEqual(["Initialized"]);
  });

  it("an invalid edit mid-rollout keeps its step in status.interruptedPhase and resumes there, with a Recovered Event", async () => {
    const spec = { ...baseSpec, strategy: { steps: [{ setWeight: 10 }, { setWeight: 30 }, { pause: {} }, { setWeight: 100 }] } };
    const sim = new Sim(spec);
    await sim.runUntil(["Paused"]);
    sim.obj = { ...sim.obj, spec: { ...spec, analysis: { ...analysis, metrics: [{ ...analysis.metrics[0], successCondition: "result <" }] } } };
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Degraded", interruptedPhase: "Paused", currentStep: 2 });
    sim.obj = { ...sim.obj, spec: { ...spec, analysis } };
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Paused", currentStep: 2, canaryWeight: 30 });
    expect(sim.reasons()).toContain("Recovered");
  });
});

/** A judge query's answer: each side's cumulative buckets (le 0.1, 1, +Inf), labelled side and le. */
function judgeHistogram(candidate: [number, number], baseline: [number, number]): QueryOutcome {
  const series = (side: string, [low, high]: [number, number]) => [
    { labels: { side, le: "0.1" }, value: low },
    { labels: { side, le: "1" }, value: low + high },
    { labels: { side, le: "+Inf" }, value: low + high },
  ];
  const all = [...series("candidate", candidate), ...series("baseline", baseline)];
  return { kind: "value", value: all.map((s) => s.value), labels: all.map((s) => s.labels) };
}

describe("analysis steps decide early both ways", () => {
  const judgeAnalysis = (judge: Record<string, unknown> = {}) => ({
    prometheus: { address: "http://prom:9090" },
    interval: "10s",
    metrics: [
      { name: "conf", judge: { signal: "field", field: "$.confidence", minSamples: 100, ...judge }, count: 5 },
      { name: "errors", query: "errs", successCondition: "result < 0.01", count: 5, failureLimit: 4, inconclusiveLimit: 4 },
    ],
  });
  const spec = (a = judgeAnalysis()) => ({ ...baseSpec, analysis: a, strategy: { steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 100 }] } });
  const answer = (judge: QueryOutcome) => (q: string): QueryOutcome => (q.includes("airollout_judge_sample_bucket") ? judge : { kind: "value", value: 0.001 });

  it("passes at the first measurement when every metric is conclusive or settled, not after count 5, and says which rule decided", async () => {
    const sim = new Sim(spec());
    sim.metric = answer(judgeHistogram([1000, 1000], [1000, 1000]));
    await sim.runUntil(["Succeeded"]);
    const run = sim.status.analysis!.history!.find((r) => r.id.startsWith("step-1"))!;
    expect(run.phase).toBe("Successful");
    // Decided by the first measurements, taken when the step started.
    expect(run.finishedAt).toBe(run.startedAt);
    const [conf, errors] = run.metrics;
    expect(conf!.successful).toBe(1);
    expect(conf!.judge).toMatchObject({ classification: "Pass", conclusive: true });
    expect(conf!.message).toMatch(/passed early: conclusive after 1 of 5 measurements/);
    expect(conf!.message).toMatch(/upper bound of Cliff's delta, [0-9.]+, is below 0.2/);
    expect(errors!.message).toMatch(/passed early: settled after 1 of 5 measurements/);
    expect(sim.queries.filter((q) => q === "errs")).toHaveLength(1);
  });

  it("a Pass that is not yet conclusive (few samples) keeps measuring to its count", async () => {
    const sim = new Sim(spec());
    // 150 a side: above minSamples, but the bound's spread (0.19) leaves no room below 0.2.
    sim.metric = answer(judgeHistogram([75, 75], [75, 75]));
    await sim.runUntil(["Progressing"]);
    await sim.runUntil(["Succeeded"]);
    const conf = sim.status.analysis!.history!.find((r) => r.id.startsWith("step-1"))!.metrics[0]!;
    expect(conf.successful).toBe(5);
    expect(conf.judge?.conclusive).toBeUndefined();
    expect(conf.message).toMatch(/count 5 reached/);
  });

  it("stops at the first measurement on a clear regression (High), never waiting for the count", async () => {
    const sim = new Sim(spec());
    sim.metric = answer(judgeHistogram([100, 1900], [1900, 100]));
    await sim.runUntil(["RolledBack"]);
    expect(sim.reasons()).toContain("AnalysisFailed");
    const run = sim.status.analysis!.history!.find((r) => r.id.startsWith("step-1"))!;
    expect(run).toMatchObject({ phase: "Failed", finishedAt: run.startedAt });
    expect(run.metrics[0]).toMatchObject({ failed: 1, judge: { classification: "High" } });
  });

  it("never passes early on too few samples: NoData pauses", async () => {
    const sim = new Sim(spec());
    sim.metric = answer(judgeHistogram([20, 20], [20, 20]));
    await sim.runUntil(["Paused"]);
    expect(sim.status.pauseReason).toBe("AnalysisInconclusive");
    expect(sim.status.canaryWeight).toBe(20);
  });
});

describe("judge baseline: noise", () => {
  const noiseSpec = (shadow: Record<string, unknown> | undefined) => ({
    ...baseSpec,
    ...(shadow ? { shadow } : {}),
    analysis: { prometheus: { address: "http://prom:9090" }, interval: "10s", metrics: [{ name: "conf", judge: { signal: "field", field: "$.confidence", baseline: "noise", minSamples: 100 }, count: 3, inconclusiveLimit: 2 }] },
    strategy: { steps: [{ analysis: {} }, { setWeight: 100 }] },
  });

  it("an analysis step with a noise-baseline judge keeps mirroring and reads the mirrored answers' series", async () => {
    const sim = new Sim(noiseSpec({ noiseBaseline: { enabled: true, endpoint: "http://127.0.0.1:9/" } }));
    // No mirrored samples in Prometheus yet: NoData, so the step waits, mirroring.
    sim.metric = () => ({ kind: "empty" });
    await sim.runUntil(["Progressing"]);
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Progressing", currentStep: 0, shadowEnabled: true, canaryWeight: 0 });
    sim.metric = () => judgeHistogram([1000, 1000], [1000, 1000]);
    await sim.runUntil(["Succeeded"]);
    expect(sim.status.shadowEnabled).toBe(false);
    expect(sim.queries[0]).toContain('version="v2:shadow"');
    expect(sim.queries[0]).toContain('version="v1:noise"');
    expect(sim.queries[0]).not.toContain('version="v1"');
  });

  it("without spec.shadow.noiseBaseline the spec is Degraded, naming the metric and field", async () => {
    const sim = new Sim(noiseSpec({ sampleRate: 1 }));
    await sim.pass();
    const d = sim.status.conditions!.find((c) => c.type === "Degraded")!;
    expect(d).toMatchObject({ status: "True", reason: "InvalidAnalysis" });
    expect(d.message).toContain('metric "conf": judge.baseline: noise needs spec.shadow.noiseBaseline.enabled');
  });

  it("in a background run it is refused: that run outlives the steps that mirror", async () => {
    const base = noiseSpec({ noiseBaseline: { enabled: true, endpoint: "http://127.0.0.1:9/" } });
    const sim = new Sim({ ...base, analysis: { ...base.analysis, background: {} } });
    await sim.pass();
    const d = sim.status.conditions!.find((c) => c.type === "Degraded")!;
    expect(d).toMatchObject({ status: "True", reason: "InvalidAnalysis" });
    expect(d.message).toContain('metric "conf": judge.baseline: noise is measured in analysis steps only');
  });
});

describe("golden steps with their own suites", () => {
  const cm = (digest: string) => ({ exists: true, keys: ["suite.yaml"], digests: { "suite.yaml": digest } });
  const goldenSpec = {
    ...baseSpec,
    golden: { configMapRef: { name: "main-suite", key: "suite.yaml" } },
    strategy: { steps: [{ golden: {} }, { setWeight: 10 }, { golden: { configMapRef: { name: "canary-suite", key: "suite.yaml" }, maxFailures: 1 } }, { setWeight: 100 }] },
  };

  it("each golden step runs its own suite (else spec.golden's) with that suite's digest, and status.golden.steps keeps both", async () => {
    const sim = new Sim(goldenSpec);
    sim.refs = { "ConfigMap/main-suite": cm("m1"), "ConfigMap/canary-suite": cm("c1") };
    sim.golden = (r) => ({ ok: true, suiteVersion: r.configMapRef.name, result: { total: 4, answered: 4, passed: 3, failed: r.configMapRef.name === "canary-suite" ? 1 : 0, failures: [] } });
    await sim.runUntil(["Succeeded"]);
    expect(sim.goldenRuns.map((r) => [r.configMapRef.name, r.field, r.digest])).toEqual([
      ["main-suite", "spec.golden.configMapRef", "m1"],
      ["canary-suite", "spec.strategy.steps[2].golden.configMapRef", "c1"],
    ]);
    expect(sim.status.golden?.steps?.map((e) => [e.step, e.suite, e.phase, e.suiteDigest])).toEqual([
      [0, "ConfigMap main-suite key suite.yaml", "Passed", "m1"],
      [2, "ConfigMap canary-suite key suite.yaml", "Passed", "c1"],
    ]);
    expect(sim.status.revisionInputs).toMatchObject({ "spec.golden.configMapRef": "m1", "spec.strategy.steps[2].golden.configMapRef": "c1" });
  });

  it("editing only the step's suite mid-rollout is a new revision that starts from the first step", async () => {
    const sim = new Sim({ ...goldenSpec, strategy: { steps: [...goldenSpec.strategy.steps.slice(0, 3), { pause: {} }, { setWeight: 100 }] } });
    sim.refs = { "ConfigMap/main-suite": cm("m1"), "ConfigMap/canary-suite": cm("c1") };
    sim.golden = () => ({ ok: true, suiteVersion: "1", result: { total: 1, answered: 1, passed: 1, failed: 0, failures: [] } });
    await sim.runUntil(["Paused"]);
    const revision = sim.status.revision;
    sim.refs = { ...sim.refs, "ConfigMap/canary-suite": cm("c2") };
    await sim.pass();
    expect(sim.status.revision).not.toBe(revision);
    expect(sim.reasons()).toContain("NewRevision");
    await sim.runUntil(["Paused"]);
    expect(sim.goldenRuns.filter((r) => r.configMapRef.name === "canary-suite").map((r) => r.digest)).toEqual(["c1", "c2"]);
  });
});

