/**
 * The gateway's metrics. The names are the contract with the analysis templates
 * (analysis/templates.ts): `rollout` is the AIRollout's name and `namespace` its namespace.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

type RN = "rollout" | "namespace";

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<RN | "version" | "code">;
  duration: Histogram<RN | "version">;
  shadowComparisons: Counter<RN>;
  shadowMismatches: Counter<RN>;
  shadowFieldMismatches: Counter<RN | "field">;
  noiseComparisons: Counter<RN>;
  noiseMismatches: Counter<RN>;
  mirrorDropped: Counter<RN | "reason">;
  tokens: Counter<RN | "version">;
  cost: Counter<RN | "version">;
  quarantined: Counter<RN | "reason">;
  quarantineSkipped: Counter<"reason">;
  circuitState: Gauge<RN | "version">;
  rejected: Counter<RN | "reason" | "code">;
  idempotentReplays: Counter<RN>;
  mirrorQueue: Gauge<RN | "state">;
}

/** Shadow work of one rollout, read at scrape time. */
export interface MirrorStats {
  rollout: string;
  namespace: string;
  running: number;
  queued: number;
}

/**
 * Creates the gateway's registry (one per gateway; tests create their own). `mirrorStats` is read
 * when /metrics is scraped, so the request path never updates a gauge for it.
 */
export function createGatewayMetrics(mirrorStats: () => Iterable<MirrorStats> = () => []): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "airollout_gateway_process_" });
  const r = [registry];
  return {
    registry,
    requests: new Counter({ name: "airollout_requests_total", help: "Requests answered by a backend version (or refused for it by an open circuit), by HTTP status code.", labelNames: ["rollout", "namespace", "version", "code"], registers: r }),
    duration: new Histogram({
      name: "airollout_request_duration_seconds",
      help: "Time from a fully received webhook to its answer sent, per version.",
      labelNames: ["rollout", "namespace", "version"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    shadowComparisons: new Counter({ name: "airollout_shadow_comparisons_total", help: "Stable-vs-candidate comparisons of mirrored requests.", labelNames: ["rollout", "namespace"], registers: r }),
    shadowMismatches: new Counter({ name: "airollout_shadow_mismatches_total", help: "Comparisons with a mismatch in a field flagged by the noise rule at the time of the comparison.", labelNames: ["rollout", "namespace"], registers: r }),
    shadowFieldMismatches: new Counter({ name: "airollout_shadow_field_mismatches_total", help: "Comparisons in which a field (normalised path) differed, flagged or not.", labelNames: ["rollout", "namespace", "field"], registers: r }),
    noiseComparisons: new Counter({ name: "airollout_noise_comparisons_total", help: "Stable-vs-stable (noise baseline) comparisons.", labelNames: ["rollout", "namespace"], registers: r }),
    noiseMismatches: new Counter({ name: "airollout_noise_mismatches_total", help: "Stable-vs-stable comparisons with any differing field.", labelNames: ["rollout", "namespace"], registers: r }),
    mirrorDropped: new Counter({ name: "airollout_mirror_dropped_total", help: "Sampled shadow copies that produced no comparison, by reason (queue_full, circuit_open, timeout, error, no_backend).", labelNames: ["rollout", "namespace", "reason"], registers: r }),
    tokens: new Counter({ name: "airollout_tokens_total", help: "Tokens reported by backends (x-airollout-tokens header or $.usage.total_tokens) on answered requests.", labelNames: ["rollout", "namespace", "version"], registers: r }),
    cost: new Counter({ name: "airollout_cost_total", help: "Cost reported by backends (x-airollout-cost header or $.usage.cost) on answered requests.", labelNames: ["rollout", "namespace", "version"], registers: r }),
    quarantined: new Counter({ name: "airollout_quarantined_total", help: "Webhooks refused and stored in the quarantine, by reason.", labelNames: ["rollout", "namespace", "reason"], registers: r }),
    quarantineSkipped: new Counter({
      name: "airollout_quarantine_skipped_total",
      help: "Refused webhooks not stored because their reason's quarantine budget was spent (unknown_rollout: a flood of made-up URLs must not evict real payloads).",
      labelNames: ["reason"],
      registers: r,
    }),
    circuitState: new Gauge({ name: "airollout_circuit_state", help: "Circuit breaker state per backend version: 0 closed, 1 half-open, 2 open.", labelNames: ["rollout", "namespace", "version"], registers: r }),
    rejected: new Counter({ name: "airollout_rejected_total", help: "Requests answered by the gateway itself with an error, by reason and status code.", labelNames: ["rollout", "namespace", "reason", "code"], registers: r }),
    idempotentReplays: new Counter({ name: "airollout_idempotent_replays_total", help: "Repeated idempotency keys answered from the store without forwarding.", labelNames: ["rollout", "namespace"], registers: r }),
    mirrorQueue: new Gauge({
      name: "airollout_mirror_queue",
      help: "Shadow jobs running and queued.",
      labelNames: ["rollout", "namespace", "state"],
      registers: r,
      collect() {
        this.reset();
        for (const m of mirrorStats()) {
          this.set({ rollout: m.rollout, namespace: m.namespace, state: "running" }, m.running);
          this.set({ rollout: m.rollout, namespace: m.namespace, state: "queued" }, m.queued);
        }
      },
    }),
  };
}
