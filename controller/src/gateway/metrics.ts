/**
 * The gateway's metrics. The names are the contract with the analysis templates
 * (analysis/templates.ts): `rollout` is the AIRollout's name and `namespace` its namespace.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { JUDGE_BUCKETS } from "../analysis/judge.ts";

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
  mirrorSampled: Counter<RN>;
  tokens: Counter<RN | "version">;
  cost: Counter<RN | "version">;
  judgeSample: Histogram<RN | "version" | "signal">;
  quarantined: Counter<RN | "reason">;
  quarantineSkipped: Counter<"reason">;
  circuitState: Gauge<RN | "version">;
  rejected: Counter<RN | "reason" | "code">;
  idempotentReplays: Counter<RN>;
  mirrorQueue: Gauge<RN | "state">;
  shadowEvidence: Gauge<RN | "revision" | "kind">;
  shadowEvidenceMismatches: Gauge<RN | "revision">;
  shadowJudged: Gauge<RN | "revision">;
  shadowSampled: Gauge<RN | "revision">;
  shadowCoverage: Gauge<RN | "revision">;
  fixturesStored: Counter<RN>;
  fixturesEvicted: Counter<RN | "reason">;
  fixturesSkipped: Counter<RN | "reason">;
  fixturesKept: Gauge<RN>;
}

/**
 * The shadow evidence this replica holds for a rollout's current revision (its noise tracker's
 * summary). The controller's shadow step reads it to decide on evidence, never on an empty 0.
 */
export interface ShadowEvidence {
  /** status.revision the tracker counts for ("" before the controller set one). */
  revision: string;
  /** Candidate comparisons recorded. */
  compared: number;
  /**
   * Requests chosen for mirroring while this revision's tracker counted (stable answers that the
   * methods and sampleRate let through): compared / sampled is the coverage, how much of what was
   * configured to be diffed was diffed (the rest was dropped: queue full, circuit open, timeout).
   */
  sampled: number;
  /** Noise-baseline comparisons recorded. */
  noiseCompared: number;
  /** Candidate comparisons with a mismatch in a field the noise rule flags (retroactive). */
  mismatched: number;
  /** Whether the tracker is ready to judge (minSamples reached on every side it needs). */
  judged: boolean;
}

/** One rollout's state, read at scrape time. */
export interface RolloutStats {
  rollout: string;
  namespace: string;
  /** Shadow jobs running and queued. */
  running: number;
  queued: number;
  shadow: ShadowEvidence;
}

/** Four gauges read the same stats on one scrape: compute them once (noise summaries walk fields). */
function oncePerScrape<T>(read: () => Iterable<T>): () => readonly T[] {
  let at = -Infinity;
  let cached: readonly T[] = [];
  return () => {
    const now = Date.now();
    if (now - at > 100) {
      cached = [...read()];
      at = now;
    }
    return cached;
  };
}

/**
 * Creates the gateway's registry (one per gateway; tests create their own). `rolloutStats` is read
 * when /metrics is scraped, so the request path never updates a gauge for it, and a rollout's
 * series of an older revision disappear with the next scrape.
 */
export function createGatewayMetrics(readStats: () => Iterable<RolloutStats> = () => [], readFixtures: () => ReadonlyMap<string, number> = () => new Map()): GatewayMetrics {
  const rolloutStats = oncePerScrape(readStats);
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
    mirrorSampled: new Counter({
      name: "airollout_mirror_sampled_total",
      help: "Requests chosen for mirroring (answered by the stable while shadowing, method and sampleRate allowing). airollout_shadow_comparisons_total / this is the shadow coverage.",
      labelNames: ["rollout", "namespace"],
      registers: r,
    }),
    mirrorDropped: new Counter({ name: "airollout_mirror_dropped_total", help: "Sampled shadow copies that produced no comparison, by reason (queue_full, circuit_open, timeout, error, no_backend).", labelNames: ["rollout", "namespace", "reason"], registers: r }),
    tokens: new Counter({ name: "airollout_tokens_total", help: "Tokens reported by backends (x-airollout-tokens header or $.usage.total_tokens) on answered requests.", labelNames: ["rollout", "namespace", "version"], registers: r }),
    cost: new Counter({ name: "airollout_cost_total", help: "Cost reported by backends (x-airollout-cost header or $.usage.cost) on answered requests.", labelNames: ["rollout", "namespace", "version"], registers: r }),
    judgeSample: new Histogram({
      name: "airollout_judge_sample",
      help: "The statistical judge's samples per version and signal (latency in seconds, tokens, cost, or a numeric answer field by its path), for rollouts with judge metrics only. Fixed log-spaced buckets, 10 per decade from 1e-6 to 1e7.",
      labelNames: ["rollout", "namespace", "version", "signal"],
      buckets: [...JUDGE_BUCKETS],
      registers: r,
    }),
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
        for (const m of rolloutStats()) {
          this.set({ rollout: m.rollout, namespace: m.namespace, state: "running" }, m.running);
          this.set({ rollout: m.rollout, namespace: m.namespace, state: "queued" }, m.queued);
        }
      },
    }),
    ...evidenceGauges(r, rolloutStats),
    ...fixtureMetrics(r, readFixtures),
  };
}

type FixtureMetrics = Pick<GatewayMetrics, "fixturesStored" | "fixturesEvicted" | "fixturesSkipped" | "fixturesKept">;

/** The masked fixtures' counters (gateway/fixtures.ts) and the rows kept, read from the store at scrape time. */
function fixtureMetrics(r: Registry[], readFixtures: () => ReadonlyMap<string, number>): FixtureMetrics {
  return {
    fixturesStored: new Counter({ name: "airollout_fixtures_stored_total", help: "Accepted webhooks stored (masked) as fixtures.", labelNames: ["rollout", "namespace"], registers: r }),
    fixturesEvicted: new Counter({ name: "airollout_fixtures_evicted_total", help: "Fixtures deleted, by reason (rollout_cap, total_cap, age, rollout_deleted).", labelNames: ["rollout", "namespace", "reason"], registers: r }),
    fixturesSkipped: new Counter({ name: "airollout_fixtures_skipped_total", help: "Accepted webhooks not stored as fixtures, by reason (rate, too_large, too_deep, unmaskable, error).", labelNames: ["rollout", "namespace", "reason"], registers: r }),
    fixturesKept: new Gauge({
      name: "airollout_fixtures",
      help: "Fixtures kept in this gateway's store per rollout.",
      labelNames: ["rollout", "namespace"],
      registers: r,
      collect() {
        this.reset();
        for (const [key, n] of readFixtures()) {
          const slash = key.indexOf("/");
          this.set({ namespace: key.slice(0, slash), rollout: key.slice(slash + 1) }, n);
        }
      },
    }),
  };
}

type EvidenceGauges = Pick<GatewayMetrics, "shadowEvidence" | "shadowEvidenceMismatches" | "shadowJudged" | "shadowSampled" | "shadowCoverage">;

/** The gauges of the current revision's shadow evidence, read from the rollouts' stats at scrape time. */
function evidenceGauges(r: Registry[], rolloutStats: () => readonly RolloutStats[]): EvidenceGauges {
  return {
    shadowEvidence: new Gauge({
      name: "airollout_shadow_revision_comparisons",
      help: "Comparisons this gateway recorded for the rollout's current revision, by kind (candidate: stable vs candidate; noise: stable vs stable).",
      labelNames: ["rollout", "namespace", "revision", "kind"],
      registers: r,
      collect() {
        this.reset();
        for (const m of rolloutStats()) {
          const rev = { rollout: m.rollout, namespace: m.namespace, revision: m.shadow.revision };
          this.set({ ...rev, kind: "candidate" }, m.shadow.compared);
          this.set({ ...rev, kind: "noise" }, m.shadow.noiseCompared);
        }
      },
    }),
    shadowEvidenceMismatches: new Gauge({
      name: "airollout_shadow_revision_mismatches",
      help: "Candidate comparisons of the current revision with a mismatch in a field the noise rule flags now (counted back to the first comparison). 0 until judged.",
      labelNames: ["rollout", "namespace", "revision"],
      registers: r,
      collect() {
        this.reset();
        for (const m of rolloutStats()) this.set({ rollout: m.rollout, namespace: m.namespace, revision: m.shadow.revision }, m.shadow.mismatched);
      },
    }),
    shadowJudged: new Gauge({
      name: "airollout_shadow_judged",
      help: "1 once this gateway has enough comparisons of the current revision to judge fields (spec.shadow.minSamples, and as many noise comparisons with a baseline), else 0. A mismatch rate read while this is 0 is not evidence.",
      labelNames: ["rollout", "namespace", "revision"],
      registers: r,
      collect() {
        this.reset();
        for (const m of rolloutStats()) this.set({ rollout: m.rollout, namespace: m.namespace, revision: m.shadow.revision }, m.shadow.judged ? 1 : 0);
      },
    }),
    shadowSampled: new Gauge({
      name: "airollout_shadow_revision_sampled",
      help: "Requests chosen for mirroring while this gateway counted the rollout's current revision: the denominator of the shadow coverage (airollout_shadow_revision_comparisons{kind=\"candidate\"} / this).",
      labelNames: ["rollout", "namespace", "revision"],
      registers: r,
      collect() {
        this.reset();
        for (const m of rolloutStats()) this.set({ rollout: m.rollout, namespace: m.namespace, revision: m.shadow.revision }, m.shadow.sampled);
      },
    }),
    shadowCoverage: new Gauge({
      name: "airollout_shadow_coverage_ratio",
      help: "Candidate comparisons / requests chosen for mirroring, for the current revision on this gateway: below 1 the diff saw less than spec.shadow.sampleRate asked for (drops: queue full, circuit open, timeouts; jobs still running). No series before a request was chosen.",
      labelNames: ["rollout", "namespace", "revision"],
      registers: r,
      collect() {
        this.reset();
        for (const m of rolloutStats()) if (m.shadow.sampled > 0) this.set({ rollout: m.rollout, namespace: m.namespace, revision: m.shadow.revision }, Math.min(1, m.shadow.compared / m.shadow.sampled));
      },
    }),
  };
}
