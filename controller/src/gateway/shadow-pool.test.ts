import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { FixtureStore } from "./fixtures.ts";
import { profilerFlags, ShadowWorkerPool } from "./shadow-pool.ts";
import { selfTimes } from "../../../bench/profile-summary.ts";

describe("profilerFlags", () => {
  it("keeps only the CPU profiler's flags, joining a separate value to its flag", () => {
    expect(profilerFlags(["--cpu-prof", "--cpu-prof-dir", "/tmp/p", "--max-old-space-size=512", "--inspect", "--cpu-prof-interval=500"])).toEqual(["--cpu-prof", "--cpu-prof-dir=/tmp/p", "--cpu-prof-interval=500"]);
    expect(profilerFlags(["--cpu-prof-dir=/x", "--conditions", "dev"])).toEqual(["--cpu-prof-dir=/x"]);
    expect(profilerFlags([])).toEqual([]);
  });

  it("makes `node --cpu-prof` write a profile for the shadow worker thread as well as the main thread", () => {
    const dir = mkdtempSync(join(tmpdir(), "airollout-prof-"));
    try {
      const script = `
        import { ShadowWorkerPool } from ${JSON.stringify(new URL("./shadow-pool.ts", import.meta.url).href)};
        import { pino } from "pino";
        const pool = new ShadowWorkerPool(1, pino({ level: "silent" }));
        setTimeout(() => pool.close().then(() => process.exit(0)), 1500);`;
      const r = spawnSync(process.execPath, ["--cpu-prof", "--cpu-prof-dir", dir, "--input-type=module", "-e", script], { cwd: process.cwd(), encoding: "utf8", timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
      // Node names them CPU.<date>.<time>.<pid>.<thread id>.<seq>: thread 0 and a worker thread.
      const threads = new Set(files.map((f) => f.split(".")[4]));
      expect(threads.has("0")).toBe(true);
      expect([...threads].some((t) => t !== "0")).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe("selfTimes (bench/profile-summary.ts)", () => {
  it("adds each sample's time to its function, idle apart, largest first", () => {
    const frame = (functionName: string, url = "") => ({ functionName, url, lineNumber: 9 });
    const p = {
      nodes: [
        { id: 1, callFrame: frame("(idle)") },
        { id: 2, callFrame: frame("hot", "file:///x/a.ts") },
        { id: 3, callFrame: frame("cold", "file:///x/a.ts") },
      ],
      startTime: 0,
      endTime: 100,
      // Sample i stands for the time up to the next sample (timeDeltas[i + 1]).
      samples: [2, 1, 2, 3, 2],
      timeDeltas: [0, 10, 40, 10, 20, 5],
    };
    const s = selfTimes(p);
    expect(s.totalUs).toBe(85);
    expect(s.idleUs).toBe(40);
    expect(s.top.map((t) => [t.key.split(" ")[0], t.us])).toEqual([["(idle)", 40], ["hot", 25], ["cold", 20]]);
    expect(s.files.find((f) => f.key.endsWith("a.ts"))?.us).toBe(45);
  });
});

describe("the fixtures' checkpoints on the first shadow worker", () => {
  it("moves the fixtures' WAL into the database from the worker, below SQLite's automatic checkpoint threshold", async () => {
    const dir = mkdtempSync(join(tmpdir(), "airollout-checkpoint-"));
    const store = new FixtureStore(join(dir, "fixtures.db"));
    const pool = new ShadowWorkerPool(1, pino({ level: "silent" }), { checkpoint: { file: store.file, intervalMs: 50 } });
    try {
      const empty = statSync(store.file).size;
      // About 30 pages of WAL: far below the 1,000 at which SQLite checkpoints inside an insert.
      for (let i = 0; i < 10; i++) store.add({ namespace: "ns", name: "a", method: "POST", path: `/p${i}`, headers: {}, body: JSON.stringify({ i, text: "x".repeat(4000) }), version: "v1", status: 200 });
      const grown = () => statSync(store.file).size > empty + 10 * 4000;
      const deadline = Date.now() + 30_000;
      while (!grown() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // The rows reached the database file itself, which no insert on this thread checkpointed.
      expect(grown()).toBe(true);
      expect(store.document("ns", "a", 20, true).requests).toHaveLength(10);
    } finally {
      await pool.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
