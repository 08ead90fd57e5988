import { describe, expect, it } from "vitest";
import { CircuitBreaker, type CircuitState } from "./circuit.ts";

function breaker(n = 3, openMs = 1000) {
  const changes: CircuitState[] = [];
  const b = new CircuitBreaker({ consecutiveFailures: n, openDurationMs: openMs, onChange: (s) => changes.push(s) });
  return { b, changes };
}

describe("circuit breaker", () => {
  it("opens after N consecutive failures and rejects while open", () => {
    const { b, changes } = breaker(3, 1000);
    b.onFailure(0);
    b.onFailure(0);
    expect(b.state(0)).toBe("closed");
    b.onFailure(10);
    expect(b.state(10)).toBe("open");
    expect(b.allow(500)).toEqual({ allowed: false, probe: false, retryInMs: 510 });
    expect(changes).toEqual(["open"]);
  });

  it("a success resets the consecutive count", () => {
    const { b } = breaker(3);
    b.onFailure(0);
    b.onFailure(0);
    b.onSuccess();
    b.onFailure(0);
    b.onFailure(0);
    expect(b.state(0)).toBe("closed");
    expect(b.failures).toBe(2);
  });

  it("half-open after openDuration admits exactly one probe; its success closes", () => {
    const { b, changes } = breaker(1, 1000);
    b.onFailure(0);
    expect(b.state(999)).toBe("open");
    expect(b.state(1000)).toBe("half-open");
    const probe = b.allow(1000);
    expect(probe).toEqual({ allowed: true, probe: true, retryInMs: 0 });
    expect(b.allow(1001).allowed).toBe(false);
    b.onSuccess(true);
    expect(b.state(1002)).toBe("closed");
    expect(b.allow(1002).allowed).toBe(true);
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  it("a failed probe opens the circuit for another openDuration", () => {
    const { b, changes } = breaker(2, 1000);
    b.onFailure(0);
    b.onFailure(0);
    const probe = b.allow(1000);
    b.onFailure(1200, probe.probe);
    expect(b.state(1200)).toBe("open");
    expect(b.state(2199)).toBe("open");
    expect(b.state(2200)).toBe("half-open");
    expect(changes).toEqual(["open", "half-open", "open", "half-open"]);
  });

  it("late answers of requests sent before opening do not reopen or count twice", () => {
    const { b } = breaker(1, 1000);
    b.onFailure(0);
    b.onFailure(10); // a request that was already in flight
    expect(b.state(999)).toBe("open");
    expect(b.state(1000)).toBe("half-open");
  });

  it("an unused probe permit can be released for the next request", () => {
    const { b } = breaker(1, 0);
    b.onFailure(0);
    const p = b.allow(0);
    expect(p.probe).toBe(true);
    expect(b.allow(0).allowed).toBe(false);
    b.release(p.probe);
    expect(b.allow(0).probe).toBe(true);
  });

  it("rejects a threshold below 1", () => {
    expect(() => new CircuitBreaker({ consecutiveFailures: 0, openDurationMs: 1 })).toThrow(/at least 1/);
  });
});
