import { describe, expect, it } from "vitest";
import { DEFAULT_TRAFFIC } from "./rollouts.ts";
import { slotLimits } from "./slot-limits.ts";
import { BackendSlots, type SlotGrant } from "./upstream.ts";

const limits = { maxInFlight: 2, maxQueued: 1, queueTimeoutMs: 50 };

function granted(g: SlotGrant): Extract<SlotGrant, { ok: true }> {
  if (!g.ok) throw new Error(`expected a slot, got ${g.reason}`);
  return g;
}

describe("BackendSlots", () => {
  it("gives maxInFlight slots at once, queues maxQueued, sheds the rest with a reason naming the caps", async () => {
    const slots = new BackendSlots();
    const a = granted(await slots.acquire("k", limits));
    const b = granted(await slots.acquire("k", limits));
    const waiting = slots.acquire("k", limits);
    expect(waiting).toBeInstanceOf(Promise);
    const shed = await slots.acquire("k", limits);
    expect(shed).toMatchObject({ ok: false, reason: "queue_full" });
    expect(!shed.ok && shed.message).toContain("maxInFlight 2");
    expect(slots.usage("k")).toEqual({ inFlight: 2, waiting: 1 });
    a.release();
    const c = granted(await waiting);
    expect(slots.usage("k")).toEqual({ inFlight: 2, waiting: 0 });
    b.release();
    c.release();
    c.release(); // a second release is ignored, not a free slot
    expect(slots.usage("k")).toEqual({ inFlight: 0, waiting: 0 });
  });

  it("a waiter past queueTimeout is refused and leaves the queue; idle pools are forgotten", async () => {
    const slots = new BackendSlots();
    const a = granted(await slots.acquire("k", limits));
    granted(await slots.acquire("k", limits)).release();
    const b = granted(await slots.acquire("k", limits));
    expect(await slots.acquire("k", limits)).toMatchObject({ ok: false, reason: "queue_timeout" });
    expect(slots.usage("k")).toEqual({ inFlight: 2, waiting: 0 });
    a.release();
    b.release();
    expect(slots.usage("k")).toEqual({ inFlight: 0, waiting: 0 });
  });

  it("serves waiters in arrival order and keeps backends apart", async () => {
    const slots = new BackendSlots();
    const one = { maxInFlight: 1, maxQueued: 10, queueTimeoutMs: 1000 };
    const first = granted(await slots.acquire("a", one));
    granted(await slots.acquire("b", one));
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) => Promise.resolve(slots.acquire("a", one)).then((g) => (order.push(n), granted(g))));
    first.release();
    for (const w of waiters) (await w).release();
    expect(order).toEqual([1, 2, 3]);
    expect(slots.usage("b")).toEqual({ inFlight: 1, waiting: 0 });
  });
});

describe("slotLimits", () => {
  it("applies the defaults (256 in flight, 512 queued, 5 s) when spec.traffic.concurrency is absent, the spec's values otherwise", () => {
    expect(DEFAULT_TRAFFIC.concurrency).toBeUndefined();
    expect(slotLimits(DEFAULT_TRAFFIC)).toEqual({ maxInFlight: 256, maxQueued: 512, queueTimeoutMs: 5000 });
    expect(slotLimits({ concurrency: { maxInFlight: 2, maxQueued: 0, queueTimeout: "1.5s" } })).toEqual({ maxInFlight: 2, maxQueued: 0, queueTimeoutMs: 1500 });
  });
});
