import { describe, expect, it } from "vitest";
import { MAX_TIMER_MS, boundedDelay } from "./timer.ts";

describe("boundedDelay", () => {
  it.each([
    ["a delay within bounds", 1500, undefined, 1500],
    ["720h, beyond Node's 2^31-1 ms", 720 * 3_600_000, undefined, MAX_TIMER_MS],
    ["720h under a 1 h cap", 720 * 3_600_000, 3_600_000, 3_600_000],
    ["negative: now", -5, undefined, 0],
    ["NaN: the cap, never a hot loop", Number.NaN, 3_600_000, 3_600_000],
    ["Infinity: the cap", Number.POSITIVE_INFINITY, 3_600_000, 3_600_000],
    ["-Infinity: the cap (a broken computation, not 'now')", Number.NEGATIVE_INFINITY, 3_600_000, 3_600_000],
    ["a cap above Node's limit is Node's limit", 2 ** 40, 2 ** 40, MAX_TIMER_MS],
  ])("%s", (_name, ms, max, want) => {
    expect(boundedDelay(ms, max)).toBe(want);
  });
});

describe("timers with a delay from the spec are bounded", () => {
  it("a backend queue timeout of 720h (spec.traffic.concurrency.queueTimeout) waits instead of timing out at once", async () => {
    const { BackendSlots } = await import("../gateway/upstream.ts");
    const slots = new BackendSlots();
    const limits = { maxInFlight: 1, maxQueued: 1, queueTimeoutMs: 720 * 3_600_000 };
    const first = slots.acquire("b", limits);
    expect(first).toMatchObject({ ok: true });
    let settled = false;
    const waiting = Promise.resolve(slots.acquire("b", limits)).then((g) => ((settled = true), g));
    await new Promise((r) => setTimeout(r, 50));
    // Unbounded, Node fires the 720 h timer after 1 ms: queue_timeout at once.
    expect(settled).toBe(false);
    (first as { ok: true; release: () => void }).release();
    expect(await waiting).toMatchObject({ ok: true });
  });
});
