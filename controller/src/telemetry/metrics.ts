/** The controller's prom-client registry and metrics (names prefixed airollout_controller_). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { PHASES } from "../api/schema.ts";

/** Metrics of the controller process. */
export interface ControllerMetrics {
  registry: Registry;
  reconcileTotal: Counter<"result">;
  reconcileDuration: Histogram<"result">;
  queueDepth: Gauge;
  leader: Gauge;
  watchRestarts: Counter<"reason">;
  rolloutPhase: Gauge<"namespace" | "name" | "phase">;
  rolloutCanaryWeight: Gauge<"namespace" | "name">;
}

/** Creates a fresh registry (one per process; tests create their own). */
export function createControllerMetrics(): ControllerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "airollout_controller_process_" });
  return {
    registry,
    reconcileTotal: new Counter({ name: "airollout_controller_reconcile_total", help: "Reconcile passes by result (ok, requeue, error).", labelNames: ["result"], registers: [registry] }),
    reconcileDuration: new Histogram({ name: "airollout_controller_reconcile_duration_seconds", help: "Duration of reconcile passes.", labelNames: ["result"], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    queueDepth: new Gauge({ name: "airollout_controller_queue_depth", help: "Keys waiting in the work queue.", registers: [registry] }),
    leader: new Gauge({ name: "airollout_controller_leader", help: "1 while this replica holds the leader lease.", registers: [registry] }),
    watchRestarts: new Counter({ name: "airollout_controller_watch_restarts_total", help: "Watch restarts by reason (closed, error, gone).", labelNames: ["reason"], registers: [registry] }),
    rolloutPhase: new Gauge({ name: "airollout_controller_rollout_phase", help: "1 for the phase each rollout is in.", labelNames: ["namespace", "name", "phase"], registers: [registry] }),
    rolloutCanaryWeight: new Gauge({ name: "airollout_controller_rollout_canary_weight", help: "Percent of real traffic each rollout sends to its candidate (status.canaryWeight, 0 when unset), as last written.", labelNames: ["namespace", "name"], registers: [registry] }),
  };
}

/**
 * Removes every series of one rollout (its phase under any phase, its canary weight), for a
 * rollout that is gone: a deleted rollout's last phase would otherwise stay exported until the
 * process restarts, and an alert on it (AIRolloutRolledBack) would keep firing. A new
 * per-rollout series must be removed here too (metrics.test.ts checks every series labelled
 * with a namespace and name).
 */
export function forgetRollout(m: ControllerMetrics, namespace: string, name: string): void {
  for (const phase of PHASES) m.rolloutPhase.remove({ namespace, name, phase });
  m.rolloutCanaryWeight.remove({ namespace, name });
}
