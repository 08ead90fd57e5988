import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayProcesses, mergeProcessMetrics, PROCESS_LABEL } from "./cluster.ts";

const BENCH = fileURLToPath(new URL("../../../bench/gateway.ts", import.meta.url));

describe("gatewayProcesses (--workers)", () => {
  it("takes auto as the core count and whole numbers from 1 to 64", () => {
    expect(gatewayProcesses("auto", 6)).toBe(6);
    expect(gatewayProcesses("auto", 0)).toBe(1);
    expect(gatewayProcesses("3", 2)).toBe(3);
    for (const bad of ["0", "65", "1.5", "", " ", "two"]) expect(() => gatewayProcesses(bad, 2)).toThrow(/--workers/);
  });
});

/** A registry shaped like one gateway process's: a counter, a ratio gauge, a histogram. */
async function processMetrics(requests: number, judged: number, seconds: number[]) {
  const r = new Registry();
  new Counter({ name: "airollout_requests_total", help: "h", labelNames: ["rollout"], registers: [r] }).inc({ rollout: "a" }, requests);
  new Gauge({ name: "airollout_shadow_judged", help: "h", labelNames: ["rollout"], registers: [r] }).set({ rollout: "a" }, judged);
  const h = new Histogram({ name: "airollout_request_duration_seconds", help: "h", labelNames: ["rollout"], buckets: [0.1, 1], registers: [r] });
  for (const s of seconds) h.observe({ rollout: "a" }, s);
  return r.getMetricsAsJSON();
}

/** Sample lines of a text exposition: name, labels, value. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  return text
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(l)!;
      const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

const sumOf = (text: string, name: string, where: Record<string, string> = {}) =>
  samples(text)
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);

describe("mergeProcessMetrics", () => {
  it("keeps every process's series apart under its gateway_process label, each family once", async () => {
    const text = await mergeProcessMetrics(
      new Map([
        ["0", await processMetrics(7, 1, [0.05, 0.5])],
        ["1", await processMetrics(5, 0, [2])],
      ]),
    ).metrics();
    expect(text.match(/^# TYPE airollout_requests_total counter$/gm)).toHaveLength(1);
    const reqs = samples(text).filter((s) => s.name === "airollout_requests_total");
    expect(reqs.map((s) => [s.labels[PROCESS_LABEL], s.value])).toEqual([["0", 7], ["1", 5]]);
    // What the controller's sum(...) reads is the processes' total; min(judged) sees the process
    // that has not judged yet (a sum or an average in the primary would hide it).
    expect(sumOf(text, "airollout_requests_total")).toBe(12);
    expect(Math.min(...samples(text).filter((s) => s.name === "airollout_shadow_judged").map((s) => s.value))).toBe(0);
    expect(sumOf(text, "airollout_request_duration_seconds_count")).toBe(3);
    expect(sumOf(text, "airollout_request_duration_seconds_bucket", { le: "0.1", [PROCESS_LABEL]: "0" })).toBe(1);
    expect(sumOf(text, "airollout_request_duration_seconds_bucket", { le: "+Inf", [PROCESS_LABEL]: "1" })).toBe(1);
  });
});

/** Starts a bench role and resolves with its announced ports. */
function startRole(args: string[], procs: ChildProcess[]): Promise<{ port: number; metrics?: number }> {
  const p = spawn(process.execPath, [BENCH, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  procs.push(p);
  return new Promise((resolve, reject) => {
    let buf = "";
    p.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /\{"ready":(\d+)(?:,"metrics":(\d+))?\}/.exec(buf);
      if (m) resolve({ port: Number(m[1]), ...(m[2] ? { metrics: Number(m[2]) } : {}) });
    });
    p.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}`)));
  });
}

async function post(port: number): Promise<number> {
  // A new connection each time, so the cluster hands requests to both processes.
  const res = await fetch(`http://127.0.0.1:${port}/hooks/bench/bench/triage`, { method: "POST", headers: { "content-type": "application/json", connection: "close" }, body: JSON.stringify({ ticket: 1 }) });
  await res.arrayBuffer();
  return res.status;
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("a gateway cluster of two processes (bench/gateway.ts --processes 2)", () => {
  const procs: ChildProcess[] = [];
  let gw: { port: number; metrics?: number };
  const metrics = async () => (await fetch(`http://127.0.0.1:${gw.metrics}/metrics`)).text();
  const processes = async () => (await (await fetch(`http://127.0.0.1:${gw.metrics}/__processes`)).json()) as { pids: Record<string, number>; replaced: number };

  beforeAll(async () => {
    const backend = await startRole(["--role", "backend"], procs);
    const url = `http://127.0.0.1:${backend.port}`;
    gw = await startRole(["--role", "gateway", "--upstream", url, "--candidate", url, "--sample-rate", "1", "--processes", "2"], procs);
    // Both processes listen before the test counts on them.
    await until("two processes", async () => (Object.keys((await processes()).pids).length === 2 && (await metrics()).includes(`${PROCESS_LABEL}="1"`) ? true : undefined));
  }, 120_000);

  afterAll(() => {
    for (const p of procs.reverse()) p.kill("SIGTERM");
  });

  it("serves one port from both processes; the merged metrics add up to what was sent", async () => {
    const before = sumOf(await metrics(), "airollout_requests_total");
    const statuses = [];
    for (let i = 0; i < 40; i++) statuses.push(await post(gw.port));
    expect(statuses.every((s) => s === 200)).toBe(true);
    // Every copy compared or dropped (both process queues empty), then the totals.
    const text = await until("shadow queues empty", async () => {
      const t = await metrics();
      return sumOf(t, "airollout_mirror_queue") === 0 ? t : undefined;
    });
    expect(sumOf(text, "airollout_requests_total") - before).toBe(40);
    for (const p of ["0", "1"]) expect(sumOf(text, "airollout_requests_total", { [PROCESS_LABEL]: p })).toBeGreaterThan(0);
    // The controller's shadow evidence query, sum(airollout_shadow_revision_comparisons{kind="candidate"}),
    // reads both processes' comparisons: as many as the stable answers mirrored, none counted twice.
    const compared = sumOf(text, "airollout_shadow_revision_comparisons", { kind: "candidate" });
    const mirrored = sumOf(text, "airollout_mirror_sampled_total");
    const dropped = sumOf(text, "airollout_mirror_dropped_total");
    expect(mirrored).toBeGreaterThan(0);
    expect(compared + dropped).toBe(mirrored);
    expect(compared).toBe(sumOf(text, "airollout_shadow_comparisons_total"));
  }, 120_000);

  it("replaces a process that is killed, under the same index", async () => {
    const { pids } = await processes();
    process.kill(pids["1"]!, "SIGKILL");
    const after = await until(
      "a replacement",
      async () => {
        const p = await processes();
        return p.replaced === 1 && p.pids["1"] !== undefined && p.pids["1"] !== pids["1"] ? p : undefined;
      },
      // A new process loads the gateway's sources again: slow on a loaded machine.
      150_000,
    );
    expect(after.pids["0"]).toBe(pids["0"]);
    // The new process serves and reports again under gateway_process="1".
    await until("process 1 serving", async () => ((await metrics()).includes(`${PROCESS_LABEL}="1"`) ? true : undefined), 150_000);
    const statuses = [];
    for (let i = 0; i < 10; i++) statuses.push(await post(gw.port));
    expect(statuses.every((s) => s === 200)).toBe(true);
  }, 360_000);
});
