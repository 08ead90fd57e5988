/**
 * The state of one watched rollout that outlives spec and status updates: noise statistics, the
 * mirror queue, the sample budget, field labels, circuit breakers, the rate limiter.
 *
 * A gateway watches every rollout of its namespaces and most of them take no traffic through it
 * (issue 16: 1,000 watched, traffic to a few). Each part is therefore created on first use, never
 * at watch time, and readers that only look (a /metrics scrape, graceful shutdown) see what an
 * unused part would say without creating it. Behaviour is that of parts created up front: a part
 * created late starts from the settings of the last reset, as it would have then.
 */
import type { z } from "zod";
import type { ShadowSchema } from "../api/schema.ts";
import { NoiseTracker, type NoiseSummary } from "../diff/index.ts";
import type { CircuitBreaker } from "./circuit.ts";
import { MirrorQueue } from "./mirror.ts";
import { TokenBucket, type RateLimiter } from "./ratelimit.ts";

type Shadow = z.output<typeof ShadowSchema>;

/** Steady rate of stored mismatch samples per rollout, after a burst of maxSamples. */
export const SAMPLES_PER_SECOND = 10;

/** Empty summaries by the settings they depend on: at most a handful in a real fleet; bounded anyway. */
const EMPTY_SUMMARIES = new Map<string, NoiseSummary>();
const MAX_EMPTY_SUMMARIES = 64;

/**
 * What a tracker with no comparisons says (summary(limit) of a fresh one): shared and frozen, so a
 * scrape of a thousand idle rollouts allocates no trackers.
 */
function emptySummary(shadow: Shadow): NoiseSummary {
  const key = `${shadow.minSamples}/${shadow.noiseBaseline?.enabled ?? false}`;
  let s = EMPTY_SUMMARIES.get(key);
  if (s === undefined) {
    if (EMPTY_SUMMARIES.size >= MAX_EMPTY_SUMMARIES) EMPTY_SUMMARIES.clear();
    const fresh = NoiseTracker.fromShadow(shadow).summary(0);
    s = Object.freeze({ ...fresh, topFields: Object.freeze([]) as unknown as NoiseSummary["topFields"] });
    EMPTY_SUMMARIES.set(key, s);
  }
  return s;
}

/** State that survives spec and status updates of one rollout; each part made on first use. */
export class RolloutState {
  /** Identity of what the noise statistics count (a digest): a change starts them over. */
  trackerIdentity = "";
  limiter: RateLimiter | undefined = undefined;
  limiterIdentity = "";
  /** The shadow settings as of the last reset: a tracker or budget made later takes these. */
  #shadowAtReset: Shadow;
  #tracker: NoiseTracker | undefined;
  #sampleBudget: TokenBucket | undefined;
  #fieldLabels: Set<string> | undefined;
  #mirror: MirrorQueue | undefined;
  #mirrorLimits: { maxConcurrency: number; queueSize: number };
  #breakers: Map<string, CircuitBreaker> | undefined;

  constructor(shadow: Shadow) {
    this.#shadowAtReset = shadow;
    this.#mirrorLimits = { maxConcurrency: shadow.maxConcurrency, queueSize: shadow.queueSize };
  }

  /** The noise statistics of the current identity (made on first use). */
  get tracker(): NoiseTracker {
    return (this.#tracker ??= NoiseTracker.fromShadow(this.#shadowAtReset));
  }

  /** The tracker if one was made; undefined means no comparison was recorded since the last reset. */
  peekTracker(): NoiseTracker | undefined {
    return this.#tracker;
  }

  /** The noise summary without making a tracker: an unused one's is the empty summary. */
  summary(limit: number): NoiseSummary {
    return this.#tracker?.summary(limit) ?? emptySummary(this.#shadowAtReset);
  }

  /** Mismatch samples built per second: a full buffer at once, then SAMPLES_PER_SECOND. */
  get sampleBudget(): TokenBucket {
    return (this.#sampleBudget ??= new TokenBucket(SAMPLES_PER_SECOND, Math.max(1, this.#shadowAtReset.maxSamples), Date.now()));
  }

  /** Field labels in use on airollout_shadow_field_mismatches_total (bounded by the caller). */
  get fieldLabels(): Set<string> {
    return (this.#fieldLabels ??= new Set());
  }

  /** The shadow work queue, with the current limits. */
  get mirror(): MirrorQueue {
    return (this.#mirror ??= new MirrorQueue(this.#mirrorLimits.maxConcurrency, this.#mirrorLimits.queueSize));
  }

  /** Shadow jobs running and queued, without making a queue. */
  mirrorLoad(): { running: number; queued: number } {
    return { running: this.#mirror?.running ?? 0, queued: this.#mirror?.queued ?? 0 };
  }

  /** Resolves when no shadow work runs or waits. */
  mirrorIdle(): Promise<void> {
    return this.#mirror?.idle() ?? Promise.resolve();
  }

  /** Applies the spec's mirror limits (now to a queue that exists, else when one is made). */
  setMirrorLimits(maxConcurrency: number, queueSize: number): void {
    this.#mirrorLimits = { maxConcurrency, queueSize };
    this.#mirror?.setLimits(maxConcurrency, queueSize);
  }

  /**
   * Starts the shadow evidence over (a new identity): noise statistics, field labels and the
   * sample budget, later made from these settings.
   */
  resetEvidence(identity: string, shadow: Shadow): void {
    this.trackerIdentity = identity;
    this.#shadowAtReset = shadow;
    this.#tracker = undefined;
    this.#fieldLabels = undefined;
    this.#sampleBudget = undefined;
  }

  /** The circuit breaker kept under an id (version and backend URL), if any. */
  breaker(id: string): CircuitBreaker | undefined {
    return this.#breakers?.get(id);
  }

  /** Keeps a circuit breaker under an id. */
  setBreaker(id: string, breaker: CircuitBreaker): void {
    (this.#breakers ??= new Map()).set(id, breaker);
  }
}
