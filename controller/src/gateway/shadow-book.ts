/**
 * The shadow book: what the gateway keeps of mirrored requests once a shadow runner has judged
 * them. It records each result in the rollout's noise tracker (the evidence the controller's
 * shadow step reads from /metrics), counts comparisons, mismatches and dropped copies, keeps the
 * bounded field labels and the masked mismatch samples, and answers the reads: the stats for a
 * scrape and the view for GET /api/rollouts/<ns>/<name>/diffs.
 *
 * The per-rollout state it writes (tracker, field labels, sample budget) lives in the rollout's
 * RolloutState, because compileRollout resets it when its meaning changes (new revision, version,
 * backend or rules); the samples live here, keyed by rollout.
 */
import type { Logger } from "pino";
import { maskPII, SampleStore, type NoiseSummary } from "../diff/index.ts";
import type { GatewayMetrics, RolloutStats } from "./metrics.ts";
import type { Rollout } from "./rollouts.ts";
import type { Judged, Mismatch, ShadowResult } from "./shadow.ts";
import { recordMirroredSamples } from "./judge-samples.ts";

/** A stored diff sample: every value that came from a request or answer is masked text. */
export interface DiffSample {
  time: string;
  requestId: string;
  path: string;
  stable: { version: string; status: number; body: string };
  candidate: { version: string; status: number; body: string };
  mismatches: { path: string; concretePath: string; rule: string; reason: string }[];
}

/** The mirrored request a result belongs to: what a sample quotes besides the answers. */
export interface MirroredRequest {
  requestId: string;
  /** The forwarded path (masked before it is stored). */
  path: string;
  /** The primary (stable) answer's status. */
  primaryStatus: number;
  /** Logger of the request (requestId, rollout). */
  log: Logger;
}

/** What the diffs endpoint shows of one rollout. */
export interface DiffsView {
  summary: NoiseSummary;
  samples: DiffSample[];
  evicted: number;
}

/** Which copy a drop is about: the candidate's shadow or the noise baseline's second stable. */
export type CopyKind = "shadow" | "noise";

/** Most distinct field labels per rollout on airollout_shadow_field_mismatches_total. */
const MAX_FIELD_LABELS = 100;
const OTHER_FIELD = "$(other)";
/** Fields listed in the diffs view's summary. */
const SUMMARY_FIELDS = 20;

/** Records shadow results and serves the evidence they add up to. */
export class ShadowBook {
  readonly #metrics: GatewayMetrics;
  readonly #samples = new SampleStore<DiffSample>({ capacity: 100 });
  /**
   * Requests chosen for mirroring, per noise tracker: a rollout's tracker is replaced whenever its
   * evidence starts over (new revision, versions, backends, rules), and so is this count.
   */
  readonly #sampled = new WeakMap<object, number>();

  constructor(metrics: GatewayMetrics) {
    this.#metrics = metrics;
  }

  /** Counts a request chosen for mirroring (before any drop): the denominator of the coverage. */
  sampled(r: Rollout): void {
    this.#metrics.mirrorSampled.inc({ rollout: r.name, namespace: r.namespace });
    const t = r.state.tracker;
    this.#sampled.set(t, (this.#sampled.get(t) ?? 0) + 1);
  }

  /** Counts a sampled copy that produced no comparison (`noise_` prefixed for the noise copy). */
  dropped(r: Rollout, kind: CopyKind, reason: string, log: Logger): void {
    this.#metrics.mirrorDropped.inc({ rollout: r.name, namespace: r.namespace, reason: kind === "noise" ? `noise_${reason}` : reason });
    log.debug({ kind, reason }, "shadow copy dropped");
  }

  /** Records what a shadow runner made of one mirrored request: the noise copy first, then the shadow's. */
  record(r: Rollout, req: MirroredRequest, result: ShadowResult): void {
    const { shadow, noise } = result;
    const signals = r.judge;
    if (signals?.mirrored) recordMirroredSamples(this.#metrics.judgeSample, signals, r, result);
    if (noise) {
      if (noise.ok) this.#recordNoise(r, noise.judged);
      else this.dropped(r, "noise", noise.reason, req.log);
    }
    if (!shadow) return;
    if (!shadow.ok) {
      this.dropped(r, "shadow", shadow.reason, req.log);
      if (req.log.isLevelEnabled("debug")) req.log.debug({ detail: shadow.detail }, "shadow exchange failed");
      return;
    }
    this.#recordCandidate(r, req, shadow.judged, { primaryText: result.primaryText ?? "", status: shadow.status, text: shadow.text ?? "" });
  }

  /** What /metrics reports of one rollout at scrape time: shadow queue and shadow evidence. */
  stats(r: Rollout): RolloutStats {
    // Read without making a tracker or a queue: most watched rollouts never see a request here.
    const t = r.state.summary(0);
    const tracker = r.state.peekTracker();
    const { running, queued } = r.state.mirrorLoad();
    return {
      rollout: r.name,
      namespace: r.namespace,
      running,
      queued,
      shadow: { revision: r.revision, compared: t.compared, sampled: tracker ? (this.#sampled.get(tracker) ?? 0) : 0, noiseCompared: t.noiseCompared, mismatched: t.mismatched, judged: t.ready },
    };
  }

  /** The tracker's summary and the newest `limit` samples (all kept when undefined). */
  view(r: Rollout, limit: number | undefined): DiffsView {
    return { summary: r.state.summary(SUMMARY_FIELDS), samples: this.#samples.list(r.key, limit), evicted: this.#samples.evicted(r.key) };
  }

  /** Drops the samples of a deleted rollout. */
  forget(key: string): void {
    this.#samples.delete(key);
  }

  #recordNoise(r: Rollout, j: Judged): void {
    const labels = { rollout: r.name, namespace: r.namespace };
    r.state.tracker.recordPaths("noise", j.compared, j.mismatched);
    this.#metrics.noiseComparisons.inc(labels);
    if (!j.matched) this.#metrics.noiseMismatches.inc(labels);
  }

  #recordCandidate(r: Rollout, req: MirroredRequest, j: Judged, answers: { primaryText: string; status: number; text: string }): void {
    const labels = { rollout: r.name, namespace: r.namespace };
    const tracker = r.state.tracker;
    tracker.recordPaths("candidate", j.compared, j.mismatched);
    this.#metrics.shadowComparisons.inc(labels);
    if (j.matched) return;
    for (const p of j.mismatched) this.#metrics.shadowFieldMismatches.inc({ ...labels, field: fieldLabel(r, p) });
    if (j.mismatched.some((p) => tracker.isFlagged(p))) this.#metrics.shadowMismatches.inc(labels);
    // Masking costs more than the diff; under load a steady trickle of samples is plenty.
    if (!r.state.sampleBudget.take(Date.now()).allowed) return;
    const sample = maskedSample(r, req, j.mismatches, answers);
    this.#samples.add(r.key, sample, r.shadow.maxSamples);
  }
}

/** A bounded label for a field path: beyond MAX_FIELD_LABELS distinct paths they pool. */
function fieldLabel(r: Rollout, path: string): string {
  const seen = r.state.fieldLabels;
  if (seen.has(path)) return path;
  if (seen.size >= MAX_FIELD_LABELS) return OTHER_FIELD;
  seen.add(path);
  return path;
}

/** A sample with everything from the request and the answers masked. */
function maskedSample(r: Rollout, req: MirroredRequest, mismatches: readonly Mismatch[], answers: { primaryText: string; status: number; text: string }): DiffSample {
  // Bodies arrive as text (shadow.ts sampleText): a card number that is a JSON number is masked
  // too, and masked text stays valid inside a JSON string.
  const m = (s: string) => maskPII(s, r.masks);
  return {
    time: new Date().toISOString(),
    requestId: req.requestId,
    path: m(req.path),
    stable: { version: r.stable.version, status: req.primaryStatus, body: m(answers.primaryText) },
    candidate: { version: r.candidate.version, status: answers.status, body: m(answers.text) },
    mismatches: mismatches.map((f) => ({ path: m(f.path), concretePath: m(f.concretePath), rule: f.rule, reason: m(f.reason) })),
  };
}
