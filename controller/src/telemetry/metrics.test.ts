import { describe, expect, it } from "vitest";
import type { Gauge } from "prom-client";
import { PHASES } from "../api/schema.ts";
import { createControllerMetrics, forgetRollout } from "./metrics.ts";

describe("controller metrics", () => {
  it("serves the metrics README's 'Metrics' table lists for the controller, with those labels", async () => {
    const m = createControllerMetrics();
    m.reconcileTotal.inc({ result: "requeue" });
    m.reconcileDuration.observe({ result: "ok" }, 0.02);
    m.queueDepth.set(3);
    m.leader.set(1);
    m.watchRestarts.inc({ reason: "gone" });
    m.rolloutPhase.set({ namespace: "ns", name: "bot", phase: "Progressing" }, 1);
    m.rolloutCanaryWeight.set({ namespace: "ns", name: "bot" }, 20);
    const text = await m.registry.metrics();
    expect(text).toContain('airollout_controller_reconcile_total{result="requeue"} 1');
    expect(text).toContain('airollout_controller_reconcile_duration_seconds_count{result="ok"} 1');
    expect(text).toContain("airollout_controller_queue_depth 3");
    expect(text).toContain("airollout_controller_leader 1");
    expect(text).toContain('airollout_controller_watch_restarts_total{reason="gone"} 1');
    expect(text).toContain('airollout_controller_rollout_phase{namespace="ns",name="bot",phase="Progressing"} 1');
    expect(text).toContain('airollout_controller_rollout_canary_weight{namespace="ns",name="bot"} 20');
  });

  it("gives each test its own registry, so counts never leak between them", async () => {
    createControllerMetrics().queueDepth.set(7);
    expect(await createControllerMetrics().registry.metrics()).toContain("airollout_controller_queue_depth 0");
  });

  it("forgetRollout removes every series labelled with the rollout's namespace and name, under any other label, and no other rollout's", async () => {
    const m = createControllerMetrics();
    // Every metric with namespace and name labels, whatever it is: a per-rollout metric added
    // later fails here until forgetRollout removes it too (or this table names its other label).
    const others: Record<string, readonly string[]> = { phase: PHASES };
    const perRollout = m.registry.getMetricsAsArray().filter((x) => {
      const names = (x as unknown as { labelNames: string[] }).labelNames;
      return names.includes("namespace") && names.includes("name");
    });
    expect(perRollout.map((x) => x.name).sort()).toEqual(["airollout_controller_rollout_canary_weight", "airollout_controller_rollout_phase"]);
    for (const metric of perRollout) {
      const extra = (metric as unknown as { labelNames: string[] }).labelNames.filter((l) => l !== "namespace" && l !== "name");
      expect(extra.every((l) => others[l]), `${metric.name}: a value table for ${extra.join(", ")}`).toBe(true);
      const combos = extra.reduce<Record<string, string>[]>((acc, l) => acc.flatMap((c) => others[l]!.map((v) => ({ ...c, [l]: v }))), [{}]);
      for (const name of ["gone", "kept"]) for (const c of combos) (metric as unknown as Gauge<string>).set({ namespace: "ns", name, ...c }, 1);
    }
    forgetRollout(m, "ns", "gone");
    const text = await m.registry.metrics();
    expect(text).not.toContain('name="gone"');
    expect(text.match(/name="kept"/g)?.length).toBe(PHASES.length + 1);
  });
});
