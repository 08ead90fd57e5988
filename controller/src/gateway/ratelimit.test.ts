import { describe, expect, it } from "vitest";
import { RateLimiter, TokenBucket } from "./ratelimit.ts";

describe("token bucket", () => {
  it("allows a burst, then refills at the rate", () => {
    const b = new TokenBucket(2, 3, 0);
    expect([1, 2, 3].map(() => b.take(0).allowed)).toEqual([true, true, true]);
    const refused = b.take(0);
    expect(refused).toEqual({ allowed: false, retryAfterSeconds: 1, remaining: 0 });
    expect(b.take(499).allowed).toBe(false);
    expect(b.take(500).allowed).toBe(true);
    expect(b.take(600).allowed).toBe(false);
  });

  it("never holds more than the burst after a long idle time", () => {
    const b = new TokenBucket(10, 5, 0);
    expect(b.tokens(3_600_000)).toBe(5);
  });

  it("Retry-After rounds the wait up to whole seconds, at least 1", () => {
    const slow = new TokenBucket(0.1, 1, 0);
    expect(slow.take(0).allowed).toBe(true);
    expect(slow.take(0).retryAfterSeconds).toBe(10);
    expect(slow.take(7_500).retryAfterSeconds).toBe(3);
    const fast = new TokenBucket(1000, 1, 0);
    fast.take(0);
    expect(fast.take(0).retryAfterSeconds).toBe(1);
  });

  it("a clock stepping backwards neither mints nor burns tokens", () => {
    const b = new TokenBucket(1, 2, 10_000);
    b.take(10_000);
    b.take(10_000);
    expect(b.take(5_000).allowed).toBe(false);
    expect(b.take(11_000).allowed).toBe(true);
  });

  it("rejects nonsense parameters", () => {
    expect(() => new TokenBucket(0, 1, 0)).toThrow(/rate/);
    expect(() => new TokenBucket(1, 0, 0)).toThrow(/burst/);
  });
});

describe("rate limiter", () => {
  it("keeps one bucket per tenant", () => {
    const l = new RateLimiter(1, 2);
    expect(l.take("a", 0).allowed).toBe(true);
    expect(l.take("a", 0).allowed).toBe(true);
    expect(l.take("a", 0).allowed).toBe(false);
    expect(l.take("b", 0).allowed).toBe(true);
  });

  it("holds at most maxKeys tenants, forgetting the least recently used", () => {
    const l = new RateLimiter(1, 1, 3);
    for (const k of ["a", "b", "c"]) l.take(k, 0);
    l.take("a", 0); // a is now the most recent; b is the oldest
    l.take("d", 0);
    expect(l.size).toBe(3);
    expect(l.take("b", 0).allowed).toBe(true); // forgotten, so a fresh bucket
    expect(l.take("a", 0).allowed).toBe(false);
  });
});
