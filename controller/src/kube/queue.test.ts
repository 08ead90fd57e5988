import { describe, expect, it } from "vitest";
import { WorkQueue } from "./queue.ts";
import { MAX_TIMER_MS } from "../api/timer.ts";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("WorkQueue", () => {
  it("never runs one key concurrently, and reruns a key added during its pass once", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let runs = 0;
    const q = new WorkQueue(
      async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        runs++;
        await tick(20);
        inFlight--;
      },
      { concurrency: 4 },
    );
    q.add("a");
    await tick(5);
    q.add("a");
    q.add("a");
    q.add("a");
    await tick(80);
    expect(maxInFlight).toBe(1);
    expect(runs).toBe(2);
    await q.shutdown();
  });

  it("processes different keys in parallel up to the concurrency", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const q = new WorkQueue(
      async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await tick(20);
        inFlight--;
      },
      { concurrency: 2 },
    );
    for (const k of ["a", "b", "c", "d"]) q.add(k);
    await tick(70);
    expect(maxInFlight).toBe(2);
    await q.shutdown();
  });

  it("backs off exponentially on errors and resets after success", async () => {
    const times: number[] = [];
    let fail = 3;
    const q = new WorkQueue(
      async () => {
        times.push(Date.now());
        if (fail-- > 0) throw new Error("boom");
      },
      { baseDelayMs: 20, maxDelayMs: 1000 },
    );
    q.add("k");
    await tick(250);
    expect(times.length).toBe(4);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(18);
    expect(gaps[1]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeGreaterThanOrEqual(78);
    expect(q.backoffFor("k")).toBe(20);
    await q.shutdown();
  });

  it("honours requeueAfterMs and backoff results, and the earliest delayed add wins", async () => {
    const runs: string[] = [];
    const q = new WorkQueue(async (k) => {
      runs.push(k);
      return k === "timed" && runs.filter((r) => r === k).length === 1 ? { requeueAfterMs: 30 } : undefined;
    });
    q.add("timed");
    q.addAfter("late", 200);
    q.addAfter("late", 10);
    await tick(80);
    expect(runs.filter((r) => r === "timed")).toHaveLength(2);
    expect(runs.filter((r) => r === "late")).toHaveLength(1);
    await q.shutdown();
  });

  it("shutdown waits for passes in progress and drops pending work", async () => {
    let finished = 0;
    const q = new WorkQueue(async () => {
      await tick(30);
      finished++;
    }, { concurrency: 1 });
    q.add("a");
    q.add("b");
    await tick(5);
    await q.shutdown();
    expect(finished).toBe(1);
    q.add("c");
    await tick(40);
    expect(finished).toBe(1);
  });

  it("a wait longer than Node's timers (pause 720h) is not a hot loop: the key runs after maxWaitMs and asks again", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    const hours720 = 720 * 3_600_000;
    expect(hours720).toBeGreaterThan(MAX_TIMER_MS);
    let runs = 0;
    const q = new WorkQueue(
      async () => {
        runs++;
        return { requeueAfterMs: hours720 };
      },
      { maxWaitMs: 40 },
    );
    q.add("paused");
    await tick(230);
    await q.shutdown();
    process.off("warning", onWarning);
    // Unbounded, the 720 h timer fires after 1 ms: hundreds of passes in 230 ms.
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(runs).toBeLessThanOrEqual(8);
    expect(warnings).not.toContain("TimeoutOverflowWarning");
  });

  it("by default a delayed add of 720h, NaN or Infinity waits (an hour), never fires at once", async () => {
    const runs: string[] = [];
    const q = new WorkQueue(async (k) => void runs.push(k));
    q.addAfter("long", 720 * 3_600_000);
    q.addAfter("nan", Number.NaN);
    q.addAfter("inf", Number.POSITIVE_INFINITY);
    q.addAfter("soon", 5);
    await tick(60);
    expect(runs).toEqual(["soon"]);
    await q.shutdown();
  });
});
