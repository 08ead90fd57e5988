import { describe, expect, it } from "vitest";
import { createControllerMetrics } from "./metrics.ts";

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
});
