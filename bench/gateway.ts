/**
 * Gateway benchmark, loopback only. One backend process; one autocannon driver (this process);
 * three ways to reach the backend:
 *   direct       autocannon -> backend
 *   passthrough  autocannon -> minimal node:http proxy (keep-alive agent, buffered) -> backend
 *   gateway      autocannon -> airollout gateway (split 20% to the candidate, every request
 *                mirrored to the shadow and diffed under realistic rules) -> backend
 * The proxy and the gateway each run in a process of their own, so they are measured alike.
 *
 * Two measurements per path: maximum throughput (32 connections) and latency at a fixed
 * 1,000 req/s (the "p99 added at 1,000 req/s"), each taken ROUNDS times in turns with the
 * other paths; the median run is reported. Prints one JSON line.
 *
 * Run: node_modules/.bin/node bench/gateway.ts [seconds-per-run]
 * Child roles (internal): bench/gateway.ts --role backend|passthrough|gateway --upstream URL
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, request, Agent, type IncomingMessage, type ServerResponse } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";

const SELF = fileURLToPath(import.meta.url);

/**
 * A ~2 KB answer of a triage bot, varying slightly per call like a real model: ids, timestamps,
 * scores within a few percent, two phrasings of the summary. The candidate (the same backend)
 * therefore mostly agrees within the rules, and one answer in 16 changes the intent.
 */
function answer(n: number): string {
  const jitter = 1 + ((n % 5) - 2) * 0.004;
  return JSON.stringify({
    id: `req-${n}`,
    created: 1_718_000_000 + n,
    intent: n % 16 === 0 ? "billing" : "refund",
    confidence: 0.82 * jitter,
    priority: n % 32 === 0 ? "high" : "normal",
    summary: n % 2 ? "The customer reports a late delivery and asks for a refund of the order." : "Customer reports a late delivery and asks for a refund of the order.",
    entities: Array.from({ length: 12 }, (_, i) => ({ type: ["PERSON", "ORG", "ORDER"][i % 3], text: `entity-${i}`, start: i * 10, end: i * 10 + 8, score: (0.6 + i / 40) * jitter })),
    tags: ["support", "order", "late-delivery", "refund"],
    routing: { queue: "refund-queue", team: "tier1", escalate: false },
    usage: { prompt_tokens: 412, completion_tokens: 96, total_tokens: 508, cost: 0.0021 },
  });
}

const REQUEST_BODY = JSON.stringify({ ticket: { id: 123456, subject: "Late delivery", body: "My order arrived two weeks late and the box was damaged. I would like a refund.", customer: { tier: "gold" } } });

function listen(server: ReturnType<typeof createServer>): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : 0);
    });
  });
}

function announce(port: number): void {
  process.stdout.write(`${JSON.stringify({ ready: port })}\n`);
}

async function runBackend(): Promise<void> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const body = answer(n++);
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 65_000;
  announce(await listen(server));
}

/** The reference: the least a proxy that buffers (as the gateway must, to diff) can do. */
async function runPassthrough(upstream: string): Promise<void> {
  const u = new URL(upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const up = request({ hostname: u.hostname, port: u.port, path: req.url, method: req.method, agent, headers: { ...req.headers, host: u.host, "content-length": String(body.length) } }, (r) => {
        const out: Buffer[] = [];
        r.on("data", (c: Buffer) => out.push(c));
        r.on("end", () => {
          const b = Buffer.concat(out);
          res.writeHead(r.statusCode ?? 502, { "content-type": r.headers["content-type"] ?? "application/octet-stream", "content-length": String(b.length) });
          res.end(b);
        });
      });
      up.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      up.end(body);
    });
  });
  server.keepAliveTimeout = 65_000;
  announce(await listen(server));
}

async function runGateway(upstream: string, sampleRate: number): Promise<void> {
  const { Gateway } = await import("../controller/src/gateway/gateway.ts");
  const stateDir = mkdtempSync(join(tmpdir(), "airollout-bench-gw-"));
  process.on("exit", () => rmSync(stateDir, { recursive: true, force: true }));
  const gw = new Gateway({ log: pino({ level: "warn" }), stateDir });
  gw.upsert({
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bench", namespace: "bench", uid: "bench", generation: 1, resourceVersion: "1" },
    spec: {
      stable: { version: "v1", endpoint: upstream },
      // Same backend, distinct URL: split and shadow go through their own breakers and pools.
      candidate: { version: "v2", endpoint: `${upstream}/` },
      strategy: { steps: [{ setWeight: 20 }] },
      traffic: { circuitBreaker: { consecutiveFailures: 50 } },
      shadow: {
        sampleRate,
        minSamples: 100,
        maxConcurrency: 64,
        queueSize: 2000,
        compare: {
          ignore: ["$.id", "$.created", "$.usage"],
          tolerances: [{ path: "$.confidence", relative: 0.03 }, { path: "$.entities[*].score", relative: 0.05 }],
          labels: ["$.intent", "$.priority", "$.entities[*].type"],
          text: [{ path: "$.summary", minSimilarity: 0.8 }],
          unorderedArrays: ["$.tags"],
        },
      },
    },
    status: { canaryWeight: 20, shadowEnabled: true, phase: "Progressing" },
  });
  const { port } = await gw.listen(0, "127.0.0.1");
  announce(port);
}

interface Child {
  proc: ChildProcess;
  url: string;
}

function start(role: string, upstream?: string, extra: string[] = []): Promise<Child> {
  const args = [SELF, "--role", role, ...(upstream ? ["--upstream", upstream] : []), ...extra];
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let buf = "";
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /\{"ready":(\d+)\}/.exec(buf);
      if (m) resolve({ proc, url: `http://127.0.0.1:${m[1]}` });
    });
    proc.once("exit", (code) => reject(new Error(`${role} exited with ${code} before it was ready`)));
  });
}

interface Run {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

async function cannon(url: string, seconds: number, rate?: number): Promise<Run> {
  // Loaded here so the server roles do not pay for it.
  const { default: autocannon } = await import("autocannon");
  const opts: Record<string, unknown> = {
    url: `${url}/hooks/bench/bench/triage`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: REQUEST_BODY,
    connections: rate ? 16 : 32,
    duration: seconds,
  };
  if (rate) opts.overallRate = rate;
  const r = (await autocannon(opts)) as AutocannonResult;
  return { reqPerSec: Math.round(r.requests.average), p50Ms: r.latency.p50, p99Ms: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

const ROUNDS = 3;

/** The run with the median value of `by`. */
function median(runs: Run[], by: (r: Run) => number): Run {
  return [...runs].sort((a, b) => by(a) - by(b))[Math.floor(runs.length / 2)]!;
}

async function orchestrate(seconds: number): Promise<void> {
  const load = loadavg().map((l) => Number(l.toFixed(2)));
  const children: Child[] = [];
  try {
    const backend = await start("backend");
    children.push(backend);
    const passthrough = await start("passthrough", backend.url);
    children.push(passthrough);
    const gateway = await start("gateway", backend.url, ["--sample-rate", "1"]);
    children.push(gateway);
    const sampled = await start("gateway", backend.url, ["--sample-rate", "0.1"]);
    children.push(sampled);
    const targets = { direct: backend.url, passthrough: passthrough.url, gateway: gateway.url, gateway_mirror_10pct: sampled.url } as const;

    // warm-up: sockets, JIT, the gateway's first comparisons
    for (const url of Object.values(targets)) await cannon(url, 1);
    // The machine may be shared: the paths take turns, ROUNDS times, and the median run of each
    // is reported, so a burst of outside load does not land on one path only.
    const rounds: Record<string, Run[]> = {};
    const roundsAt1000: Record<string, Run[]> = {};
    for (let i = 0; i < ROUNDS; i++) {
      for (const [name, url] of Object.entries(targets)) (rounds[name] ??= []).push(await cannon(url, seconds));
      for (const [name, url] of Object.entries(targets)) (roundsAt1000[name] ??= []).push(await cannon(url, seconds, 1000));
    }
    const throughput = Object.fromEntries(Object.entries(rounds).map(([k, runs]) => [k, median(runs, (r) => r.reqPerSec)]));
    const at1000 = Object.fromEntries(Object.entries(roundsAt1000).map(([k, runs]) => [k, median(runs, (r) => r.p99Ms)]));

    const ratio = throughput.gateway!.reqPerSec / throughput.passthrough!.reqPerSec;
    const p99Added = at1000.gateway!.p99Ms - at1000.passthrough!.p99Ms;
    process.stdout.write(
      `${JSON.stringify({
        seconds_per_run: seconds,
        rounds: ROUNDS,
        gateway_config: "split 20% to the candidate, 100% mirrored to the shadow and diffed (5 rule kinds), circuit breakers on; gateway_mirror_10pct: the same with shadow.sampleRate 0.1",
        // The machine is shared: a load average above the core count makes every number noisier.
        load_average_at_start: load,
        cores: availableParallelism(),
        throughput,
        at_1000_rps: at1000,
        gateway_vs_passthrough_throughput: Number(ratio.toFixed(3)),
        gateway_mirror_10pct_vs_passthrough_throughput: Number((throughput.gateway_mirror_10pct!.reqPerSec / throughput.passthrough!.reqPerSec).toFixed(3)),
        p99_added_ms_at_1000_rps: Number(p99Added.toFixed(2)),
        p99_added_vs_direct_ms_at_1000_rps: Number((at1000.gateway!.p99Ms - at1000.direct!.p99Ms).toFixed(2)),
        targets: { gateway_vs_passthrough_throughput: 0.7, p99_added_ms_at_1000_rps: 2 },
        meets_targets: { throughput: ratio >= 0.7, p99: p99Added <= 2 },
        node: process.version,
      })}\n`,
    );
  } finally {
    for (const c of children) c.proc.kill("SIGKILL");
  }
}

const argv = process.argv.slice(2);
const role = argv[argv.indexOf("--role") + 1];
const upstream = argv.includes("--upstream") ? argv[argv.indexOf("--upstream") + 1] : undefined;
const sampleRate = argv.includes("--sample-rate") ? Number(argv[argv.indexOf("--sample-rate") + 1]) : 1;
if (argv.includes("--role")) {
  // A clean exit on SIGTERM lets `--cpu-prof` write its profile when profiling a role.
  process.once("SIGTERM", () => process.exit(0));
  if (role === "backend") await runBackend();
  else if (role === "passthrough") await runPassthrough(upstream!);
  else if (role === "gateway") await runGateway(upstream!, sampleRate);
  else throw new Error(`unknown role ${role}`);
} else {
  const seconds = Number(argv[0] ?? "2");
  if (!(seconds > 0)) throw new Error(`seconds per run must be positive, got ${argv[0]}`);
  await orchestrate(seconds);
}
