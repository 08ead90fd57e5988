import { describe, expect, it } from "vitest";
import { MirrorQueue } from "./mirror.ts";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("mirror queue", () => {
  it("runs at most maxConcurrency, queues up to queueSize, refuses beyond", async () => {
    const q = new MirrorQueue(2, 3);
    const gates = Array.from({ length: 6 }, deferred);
    let started = 0;
    const accepted = gates.map((g) => q.submit(() => (started++, g.promise)));
    expect(accepted).toEqual([true, true, true, true, true, false]);
    expect(q.running).toBe(2);
    expect(q.queued).toBe(3);
    expect(started).toBe(2);
    gates[0]!.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toBe(3);
    for (const g of gates) g.resolve();
    await q.idle();
    expect(started).toBe(5);
    expect(q.running).toBe(0);
  });

  it("contains failing and throwing jobs", async () => {
    const errors: unknown[] = [];
    const q = new MirrorQueue(1, 10, (e) => errors.push(e));
    q.submit(() => Promise.reject(new Error("boom")));
    q.submit(() => {
      throw new Error("sync boom");
    });
    let ran = false;
    q.submit(async () => {
      ran = true;
    });
    await q.idle();
    expect(ran).toBe(true);
    expect(errors.map((e) => (e as Error).message)).toEqual(["boom", "sync boom"]);
  });

  it("a queue of 0 only runs what fits the slots", () => {
    const q = new MirrorQueue(1, 0);
    const g = deferred();
    expect(q.submit(() => g.promise)).toBe(true);
    expect(q.submit(() => g.promise)).toBe(false);
    g.resolve();
  });

  it("raising the limits starts queued jobs", async () => {
    const q = new MirrorQueue(1, 5);
    const g = deferred();
    let started = 0;
    for (let i = 0; i < 4; i++) q.submit(() => (started++, g.promise));
    expect(started).toBe(1);
    q.setLimits(4, 5);
    expect(started).toBe(4);
    g.resolve();
    await q.idle();
  });
});
