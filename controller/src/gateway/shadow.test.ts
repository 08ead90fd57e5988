import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compare, compileRules, NoiseTracker, type CompareRulesInput, type DiffResponse } from "../diff/index.ts";
import { InlineShadowRunner, judge, MAX_SAMPLE_BODY, MAX_SAMPLE_MISMATCHES, RulesCache, sampleText, type ShadowJob } from "./shadow.ts";
import { ShadowWorkerPool } from "./shadow-pool.ts";
import { createAgents, parseBackend } from "./upstream.ts";

const rules: CompareRulesInput = { ignore: ["$.id"], tolerances: [{ path: "$.score", relative: 0.05 }], labels: ["$.intent"] };

const resp = (body: unknown, status = 200): DiffResponse => ({ status, headers: { "content-type": "application/json" }, body });

describe("judge", () => {
  it("reduces a comparison to distinct compared and mismatched paths, keeping the first mismatches", () => {
    const primary = resp({ id: 1, intent: "refund", score: 0.8, items: [{ v: 1 }, { v: 2 }, { v: 3 }] });
    const other = resp({ id: 2, intent: "billing", score: 0.81, items: [{ v: 1 }, { v: 9 }, { v: 8 }] });
    const j = judge(primary, other, compileRules(rules));
    expect(j.matched).toBe(false);
    expect(new Set(j.compared)).toEqual(new Set(["$status", "$.intent", "$.score", "$.items[*].v"]));
    expect(j.compared.length).toBe(new Set(j.compared).size);
    expect(j.mismatched).toEqual(["$.intent", "$.items[*].v"]);
    expect(j.mismatches.map((m) => m.concretePath)).toEqual(["$.intent", "$.items[1].v", "$.items[2].v"]);
    expect(j.mismatches[0]).toMatchObject({ rule: "label", reason: expect.stringContaining("billing") });
  });

  it("caps the mismatches it returns", () => {
    const many = (v: number) => resp({ xs: Array.from({ length: 100 }, () => v) });
    const j = judge(many(1), many(2), compileRules({}));
    expect(j.mismatches).toHaveLength(MAX_SAMPLE_MISMATCHES);
    expect(j.mismatched).toEqual(["$.xs[*]"]);
  });

  it("feeds a tracker exactly as the full result does", () => {
    const compiled = compileRules(rules);
    const a = new NoiseTracker({ minSamples: 1 });
    const b = new NoiseTracker({ minSamples: 1 });
    const pairs: [unknown, unknown][] = [
      [{ intent: "a", score: 1, xs: [1, 2] }, { intent: "b", score: 1, xs: [1, 3] }],
      [{ intent: "a", score: 1 }, { intent: "a", score: 2 }],
      [{ intent: "a", score: 1 }, { intent: "a", score: 1.01 }],
      [{ intent: "a" }, "not json"],
    ];
    for (const [p, o] of pairs) {
      a.recordCandidate(compare(resp(p), resp(o), compiled));
      const j = judge(resp(p), resp(o), compiled);
      b.recordPaths("candidate", j.compared, j.mismatched);
      a.recordNoise(compare(resp(p), resp(p), compiled));
      const n = judge(resp(p), resp(p), compiled);
      b.recordPaths("noise", n.compared, n.mismatched);
    }
    expect(b.summary(50)).toEqual(a.summary(50));
  });
});

describe("sampleText", () => {
  it("serialises JSON, keeps text and truncates naming what was cut", () => {
    expect(sampleText({ a: 1 })).toBe('{"a":1}');
    expect(sampleText("plain")).toBe("plain");
    const long = sampleText("x".repeat(MAX_SAMPLE_BODY + 10));
    expect(long.startsWith("x".repeat(MAX_SAMPLE_BODY))).toBe(true);
    expect(long.endsWith("... (10 more characters)")).toBe(true);
  });
});

describe("RulesCache", () => {
  it("compiles once per key, stays bounded and rethrows a compile error", () => {
    const c = new RulesCache(2);
    const r1 = c.get("a", { ignore: ["$.x"] });
    expect(c.get("a", undefined)).toBe(r1);
    c.get("b", {});
    c.get("c", {});
    expect(c.get("a", undefined)).toBeUndefined();
    expect(() => c.get("bad", { ignore: ["not a path"] })).toThrow(/path/);
  });
});

/** A loopback backend answering a fixed JSON body per path; /hang never answers. */
let server: Server;
let base: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/hang") return;
      const body = JSON.stringify(req.url === "/regressed" ? { id: 9, intent: "billing", score: 0.5, mark: req.headers["x-airollout-shadow"] } : { id: 7, intent: "refund", score: 0.81, mark: req.headers["x-airollout-shadow"] });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

function job(path: string, over: Partial<ShadowJob> = {}): ShadowJob {
  const primaryBody = JSON.stringify({ id: 1, intent: "refund", score: 0.8, mark: "true" });
  return {
    rulesKey: JSON.stringify(rules),
    method: "POST",
    path,
    headers: { "content-type": "application/json", "x-airollout-shadow": "true" },
    body: new Uint8Array(Buffer.from('{"ticket":1}')),
    timeoutMs: 2000,
    maxResponseBytes: 1 << 20,
    primary: { status: 200, headers: { "content-type": "application/json" }, body: new Uint8Array(Buffer.from(primaryBody)) },
    shadow: parseBackend(base),
    noise: undefined,
    ...over,
  };
}

describe("shadow runners (real worker threads, loopback backend)", () => {
  it("a worker judges like the inline runner: matching, regressed, and a noise copy", async () => {
    const pool = new ShadowWorkerPool(2, pino({ level: "silent" }));
    const inline = new InlineShadowRunner(createAgents(8));
    try {
      for (const j of [job("/ok"), job("/regressed"), job("/ok", { noise: parseBackend(`${base}/`) })]) {
        const [w, i] = await Promise.all([pool.run(j, rules), inline.run(job(j.path, { noise: j.noise }), rules)]);
        expect(w).toEqual(i);
      }
      const regressed = await pool.run(job("/regressed"), rules);
      expect(regressed.shadow).toMatchObject({ ok: true, status: 200, judged: { matched: false, mismatched: ["$.intent", "$.score"] } });
      expect(regressed.primaryText).toContain('"intent":"refund"');
      expect(regressed.shadow?.ok && regressed.shadow.text).toContain('"intent":"billing"');
      const ok = await pool.run(job("/ok"), rules);
      expect(ok.shadow).toMatchObject({ ok: true, judged: { matched: true, mismatched: [] }, text: undefined });
      expect(ok.primaryText).toBeUndefined();
    } finally {
      await Promise.all([pool.close(), inline.close()]);
    }
  });

  it("reports a timeout and invalid rules as outcomes, never rejects", async () => {
    const pool = new ShadowWorkerPool(1, pino({ level: "silent" }));
    try {
      expect((await pool.run(job("/hang", { timeoutMs: 200 }), rules)).shadow).toMatchObject({ ok: false, reason: "timeout" });
      const bad = await pool.run(job("/ok", { rulesKey: "bad" }), { ignore: ["not a path"] });
      expect(bad.shadow).toMatchObject({ ok: false, reason: "error", detail: expect.stringContaining("spec.shadow.compare does not compile") });
    } finally {
      await pool.close();
    }
  });

  it("a worker that dies fails its pending jobs and is replaced", async () => {
    const pool = new ShadowWorkerPool(1, pino({ level: "silent" }));
    try {
      const pending = pool.run(job("/hang", { timeoutMs: 30_000 }), rules);
      await new Promise((r) => setTimeout(r, 100));
      await pool.terminateWorker(0);
      expect((await pending).shadow).toMatchObject({ ok: false, reason: "error", detail: expect.stringContaining("exited") });
      // The replacement has no rules yet: the pool sends them again.
      expect((await pool.run(job("/ok"), rules)).shadow).toMatchObject({ ok: true, judged: { matched: true } });
    } finally {
      await pool.close();
    }
  });

  it.runIf(process.platform === "linux")("runs the shadow threads at a lower CPU priority than the thread answering webhooks (Linux)", async () => {
    const niceOf = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ")[16]);
    const shadowThreads = () => readdirSync("/proc/self/task").filter((t) => readFileSync(`/proc/self/task/${t}/comm`, "utf8").startsWith("airollout-shado"));
    const before = new Set(shadowThreads());
    const pool = new ShadowWorkerPool(2, pino({ level: "silent" }), { nice: 7 });
    try {
      // A job answered proves the worker ran its start-up code.
      await Promise.all([pool.run(job("/ok"), rules), pool.run(job("/ok"), rules)]);
      const mine = shadowThreads().filter((t) => !before.has(t));
      expect(mine).toHaveLength(2);
      const main = niceOf(String(process.pid));
      for (const t of mine) expect(niceOf(t)).toBe(Math.min(19, main + 7));
    } finally {
      await pool.close();
    }
  });

  it("answers jobs after close with an error outcome", async () => {
    const pool = new ShadowWorkerPool(1, pino({ level: "silent" }));
    await pool.close();
    expect((await pool.run(job("/ok"), rules)).shadow).toMatchObject({ ok: false, reason: "error" });
  });
});
