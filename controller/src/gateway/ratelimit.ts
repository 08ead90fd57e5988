/**
 * Per-tenant token buckets. Time is passed in (milliseconds), so the arithmetic is testable without
 * clocks. Memory is bounded: at most maxKeys buckets; the least recently used is forgotten first,
 * which at worst hands an idle tenant a full bucket again.
 */

/** The verdict on one request. */
export interface RateDecision {
  allowed: boolean;
  /** Whole seconds until one token is available (the Retry-After value); 0 when allowed. */
  retryAfterSeconds: number;
  /** Tokens left after this request. */
  remaining: number;
}

/** One token bucket: `burst` tokens, refilled at `ratePerSecond`. */
export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  #tokens: number;
  #updated: number;

  constructor(ratePerSecond: number, burst: number, nowMs: number) {
    if (!(ratePerSecond > 0)) throw new Error(`rate must be positive, got ${ratePerSecond}`);
    if (!(burst >= 1)) throw new Error(`burst must be at least 1, got ${burst}`);
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.#tokens = burst;
    this.#updated = nowMs;
  }

  /** Tokens available at nowMs (refilled, capped at burst). */
  tokens(nowMs: number): number {
    this.#refill(nowMs);
    return this.#tokens;
  }

  #refill(nowMs: number): void {
    // A clock that steps backwards must not mint or burn tokens.
    const elapsed = Math.max(0, nowMs - this.#updated);
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed / 1000) * this.ratePerSecond);
    this.#updated = Math.max(this.#updated, nowMs);
  }

  /** Takes one token when available. */
  take(nowMs: number): RateDecision {
    this.#refill(nowMs);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0, remaining: Math.floor(this.#tokens) };
    }
    const waitSeconds = (1 - this.#tokens) / this.ratePerSecond;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitSeconds)), remaining: 0 };
  }
}

/** Token buckets by tenant key, with a bounded number of tenants. */
export class RateLimiter {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly maxKeys: number;
  // Map order is insertion order; re-inserting on use makes it least-recently-used order.
  #buckets = new Map<string, TokenBucket>();

  constructor(ratePerSecond: number, burst: number, maxKeys = 100_000) {
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.maxKeys = maxKeys;
  }

  /** Takes a token from the tenant's bucket. */
  take(key: string, nowMs: number): RateDecision {
    let bucket = this.#buckets.get(key);
    if (bucket) {
      this.#buckets.delete(key);
    } else {
      bucket = new TokenBucket(this.ratePerSecond, this.burst, nowMs);
      if (this.#buckets.size >= this.maxKeys) {
        const oldest = this.#buckets.keys().next();
        if (!oldest.done) this.#buckets.delete(oldest.value);
      }
    }
    this.#buckets.set(key, bucket);
    return bucket.take(nowMs);
  }

  get size(): number {
    return this.#buckets.size;
  }
}
