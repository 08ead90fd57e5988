import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compare, compileRules, CompiledRules, NoiseTracker, UnparsedBody, type CompareRulesInput, type DiffResponse } from "../diff/index.ts";
import { backendVerdict, InlineShadowRunner, judge, MAX_SAMPLE_BODY, MAX_SAMPLE_MISMATCHES, RulesCache, runShadowJob, sampleText, type Outcome, type ShadowJob } from "./shadow.ts";
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

  it("serialises a 100,000-deep array or object without overflowing the stack, bounded in depth and length", () => {
    let arr: unknown = [];
    let obj: unknown = {};
    for (let i = 0; i < 100_000; i++) {
      arr = [arr];
      obj = { a: obj };
    }
    // JSON.stringify throws RangeError on both: the bug this guards against.
    expect(() => JSON.stringify(arr)).toThrow(RangeError);
    const a = sampleText(arr);
    expect(a.startsWith("[[[[")).toBe(true);
    expect(a).toContain("[…]");
    expect(a.length).toBeLessThanOrEqual(MAX_SAMPLE_BODY + 20);
    expect(sampleText(obj)).toContain('{"a":{"a":');
    expect(sampleText(obj)).toContain("{…}");
  });

  it("cuts long JSON at MAX_SAMPLE_BODY characters and says so", () => {
    const t = sampleText({ xs: Array.from({ length: 5000 }, (_, i) => i) });
    expect(t.startsWith('{"xs":[0,1,2')).toBe(true);
    expect(t.endsWith("... (truncated)")).toBe(true);
    expect(t.length).toBe(MAX_SAMPLE_BODY + "... (truncated)".length);
  });

  it("shows an unparsed body's text and why it was not parsed", () => {
    expect(sampleText(new UnparsedBody("nested deeper than 1000 levels", "[[[1]]]"))).toBe("[[[1]]] (not parsed: nested deeper than 1000 levels)");
  });
});

describe("backendVerdict", () => {
  const judged = { matched: true, compared: [], mismatched: [], mismatches: [] };
  it.each<[string, Outcome, string]>([
    ["an answer", { ok: true, status: 200, judged, text: undefined }, "success"],
    ["a 5xx answer", { ok: true, status: 503, judged, text: undefined }, "failure"],
    ["a timeout", { ok: false, stage: "exchange", reason: "timeout", detail: "" }, "failure"],
    ["a refused connection", { ok: false, stage: "exchange", reason: "error", detail: "" }, "failure"],
    ["an answer too large", { ok: false, stage: "exchange", reason: "too_large", detail: "" }, "failure"],
    ["a diff error on a 200", { ok: false, stage: "diff", reason: "diff_error", status: 200, detail: "RangeError" }, "success"],
    ["a diff error on a 500", { ok: false, stage: "diff", reason: "diff_error", status: 500, detail: "RangeError" }, "failure"],
    ["a worker crash", { ok: false, stage: "runner", reason: "worker_error", detail: "exited" }, "unknown"],
    ["rules that do not compile", { ok: false, stage: "runner", reason: "rules_invalid", detail: "" }, "unknown"],
  ])("%s is %s for the breaker", (_name, outcome, verdict) => {
    expect(backendVerdict(outcome)).toBe(verdict);
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

const DEEP_ARRAY = `${"[".repeat(100_000)}1${"]".repeat(100_000)}`;
const DEEP_OBJECT = `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`;

/** A loopback backend answering a fixed JSON body per path; /hang never answers; /deep-* nest 100,000 levels. */
let server: Server;
let base: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/hang") return;
      if (req.url === "/deep-array" || req.url === "/deep-object") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(req.url === "/deep-array" ? DEEP_ARRAY : DEEP_OBJECT);
        return;
      }
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

// Worker threads load their modules through type stripping: on a loaded 2-core machine a start
// takes seconds, so these tests get more than vitest's default 5 s (no speed is asserted).
describe("shadow runners (real worker threads, loopback backend)", { timeout: 30_000 }, () => {
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

  it("returns each answered copy's time, headers and exact body only when the job asks (judge baseline: noise)", async () => {
    const pool = new ShadowWorkerPool(1, pino({ level: "silent" }));
    try {
      const asked = await pool.run(job("/regressed", { noise: parseBackend(`${base}/`), answers: true }), rules);
      for (const copy of [asked.shadow, asked.noise]) {
        expect(copy?.ok).toBe(true);
        const answer = copy?.ok ? copy.answer : undefined;
        expect(answer?.seconds).toBeGreaterThan(0);
        expect(answer?.headers["content-type"]).toBe("application/json");
        expect(JSON.parse(Buffer.from(answer!.body).toString("utf8"))).toHaveProperty("intent");
      }
      const plain = await pool.run(job("/regressed", { noise: parseBackend(`${base}/`) }), rules);
      expect(plain.shadow?.ok && plain.shadow.answer).toBeUndefined();
      expect(plain.noise?.ok && plain.noise.answer).toBeUndefined();
    } finally {
      await pool.close();
    }
  });

  it("reports a timeout and invalid rules as outcomes, never rejects", async () => {
    const pool = new ShadowWorkerPool(1, pino({ level: "silent" }));
    try {
      expect((await pool.run(job("/hang", { timeoutMs: 200 }), rules)).shadow).toMatchObject({ ok: false, reason: "timeout" });
      const bad = await pool.run(job("/ok", { rulesKey: "bad" }), { ignore: ["not a path"] });
      expect(bad.shadow).toMatchObject({ ok: false, stage: "runner", reason: "rules_invalid", detail: expect.stringContaining("spec.shadow.compare does not compile") });
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
      expect((await pending).shadow).toMatchObject({ ok: false, stage: "runner", reason: "worker_error", detail: expect.stringContaining("exited") });
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
    expect((await pool.run(job("/ok"), rules)).shadow).toMatchObject({ ok: false, stage: "runner", reason: "worker_error" });
  });

  it("judges 100,000-deep answers (shadow's and primary's) as a limit mismatch on a worker, never an error", async () => {
    const pool = new ShadowWorkerPool(1, pino({ level: "silent" }));
    try {
      for (const path of ["/deep-array", "/deep-object"]) {
        const r = await pool.run(job(path), rules);
        expect(r.shadow).toMatchObject({ ok: true, status: 200, judged: { matched: false, mismatched: ["$"], mismatches: [{ rule: "limit", reason: "shadow answer nested deeper than 1000 levels" }] } });
        expect(r.shadow?.ok && r.shadow.text).toMatch(/^\[\[\[|^\{"a":/);
        expect(backendVerdict(r.shadow!)).toBe("success");
      }
      const deepPrimary = job("/ok", { primary: { status: 200, headers: { "content-type": "application/json" }, body: new Uint8Array(Buffer.from(DEEP_OBJECT)) } });
      const r = await pool.run(deepPrimary, rules);
      expect(r.shadow).toMatchObject({ ok: true, judged: { matched: false, mismatches: [{ rule: "limit", reason: "primary answer nested deeper than 1000 levels" }] } });
      expect(r.primaryText).toContain("(not parsed: nested deeper than 1000 levels)");
    } finally {
      await pool.close();
    }
  });

  it("reports a failure of the diff as a diff_error carrying the backend's status, not as an exchange failure", async () => {
    // Rules whose every use throws stand in for any bug on the diff side.
    const overflow = {
      get: () => {
        throw new RangeError("Maximum call stack size exceeded");
      },
    };
    const broken = Object.create(CompiledRules.prototype, { status: overflow, limits: overflow }) as CompiledRules;
    const agents = createAgents(2);
    try {
      const r = await runShadowJob(job("/ok"), broken, agents);
      expect(r.shadow).toEqual({ ok: false, stage: "diff", reason: "diff_error", status: 200, detail: expect.stringContaining("Maximum call stack") });
      expect(backendVerdict(r.shadow!)).toBe("success");
      const refused = await runShadowJob(job("/ok", { shadow: parseBackend("http://127.0.0.1:1") }), broken, agents);
      expect(refused.shadow).toMatchObject({ ok: false, stage: "exchange", reason: "error" });
    } finally {
      agents.http.destroy();
      agents.https.destroy();
    }
  });
});
