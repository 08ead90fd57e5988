/**
 * Gateway benchmark against the proxies a user would pick instead, loopback only, as a new user
 * would measure it: autocannon (a load generator nobody here wrote) with 32 connections POSTing a
 * 1 KB JSON body; the stable and the candidate/shadow backends as Node processes of their own.
 * Paths, each its own process(es), measured in turns, ROUNDS times:
 *   direct                 autocannon -> stable backend
 *   passthrough            a bare node:http proxy (keep-alive agent, body buffered) -> stable
 *   nginx_mirror           nginx (Debian's package), one worker, `mirror` of every request to the
 *                          shadow backend -> stable
 *   nginx_mirror_auto      the same with `worker_processes auto`
 *   gateway                airollout: split 20% to the candidate, every request the stable
 *                          answers mirrored to the shadow and diffed under realistic rules
 *   gateway_shadow_nice0   the same with the shadow worker threads at the gateway's own priority
 *                          (the default runs them at nice +10, ADR 0003)
 *   gateway_mirror_10pct   the same with shadow.sampleRate 0.1
 *   gateway_no_mirror      split and guardrails only (shadow.sampleRate 0)
 *   gateway_cluster        gateway, as one process per core sharing the port (node:cluster,
 *                          controller/src/gateway/cluster.ts), against nginx_mirror_auto
 *   gateway_no_mirror_cluster  gateway_no_mirror as one process per core
 * Shadow settings are the spec's defaults (maxConcurrency 32, queueSize 1000), as a user has them.
 *
 * Per round and path: a saturation run (throughput, p50/p99, errors, non-2xx) and a run at 1,000
 * req/s offered, paced evenly and open loop by vegeta (p99 to the hundredth of a millisecond; the
 * JSON says how busy the busiest 100 ms the direct backend saw was, about 1,000 req/s when the
 * pacing held, and each gateway's event-loop delay, read from its own metrics). autocannon's own
 * rate limit was not used for it: it hands each connection its quota at every second's start, so
 * "1,000 req/s" arrived as bursts at full speed. Every mirroring path reports its coverage per saturation run: what reached
 * the shadow and was compared over what should have been mirrored. For nginx, the requests the
 * shadow backend received over the requests nginx answered; for the gateway, its comparisons over
 * the requests it chose for mirroring (airollout_mirror_sampled_total), both read once the
 * copies still in flight have settled (nginx's falls short of 100% by about the requests in
 * flight when autocannon closes its connections at a run's end). Ratios and p99-added are computed per round from that
 * round's pair of runs, then the median over rounds is reported. A target counts as met only
 * when none of the runs behind it had errors or non-2xx answers and every coverage behind it is
 * at least 99%, measured over runs long enough to overflow the shadow queue (else inconclusive,
 * unmet), and the p99 target only when both latency runs reached 95% of the 1,000 req/s offered.
 *
 * The machine this runs on may be a shared 2-core VM: outside load lowers throughput and raises
 * latency in bursts; the load average at start is printed, and taking turns spreads a burst over
 * all paths. Prints one JSON line.
 *
 * vegeta (hack/versions.env VEGETA_VERSION) is built from the Go module proxy on first use.
 * Run: node_modules/.bin/node bench/gateway.ts [seconds-per-run]
 *   AIROLLOUT_BENCH_ROUNDS=N (default 3); AIROLLOUT_BENCH_CPU_PROF=<dir> runs the gateways and
 *   the pass-through with --cpu-prof into a directory per child under <dir>, one profile per
 *   thread (keep it out of git; summarise with bench/profile-summary.ts);
 *   AIROLLOUT_BENCH_PATHS=name,... measures only those paths (and direct).
 * Child roles (internal): bench/gateway.ts --role backend|passthrough|gateway --upstream URL
 *   [--candidate URL] [--sample-rate R] [--shadow-nice N] [--shadow-workers N]
 *   [--processes N|auto] (a gateway cluster: N processes sharing the port, metrics on another)
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createServer, request, Agent, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createNetServer } from "node:net";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { pino } from "pino";

const execFileAsync = promisify(execFile);

const SELF = fileURLToPath(import.meta.url);
const HOOK_PATH = "/hooks/bench/bench/triage";

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

/** A 1 KB webhook (the load): a support ticket with a few lines of history. */
const REQUEST_BODY = JSON.stringify({
  ticket: {
    id: 123456,
    subject: "Late delivery",
    body: "My order arrived two weeks late and the box was damaged. I would like a refund.",
    customer: { tier: "gold", since: "2019-04-02", locale: "en-GB" },
    history: Array.from({ length: 7 }, (_, i) => ({ at: `2024-06-0${i + 1}T10:00:00Z`, from: i % 2 ? "agent" : "customer", text: `Message ${i + 1} about the delayed parcel and its tracking number.` })),
  },
});

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

/** Arrival buckets kept by a backend: an hour of 100 ms buckets at most. */
const ARRIVAL_BUCKET_MS = 100;
const MAX_ARRIVAL_BUCKETS = 36_000;

/**
 * POST arrivals per 100 ms since the last reset: how evenly a load generator offers its rate
 * (vegeta paces evenly; autocannon's overallRate hands each connection its quota at every
 * second's start, which is why the latency runs do not use it).
 */
class Arrivals {
  #start = performance.now();
  #counts: number[] = [];
  add(): void {
    const i = Math.floor((performance.now() - this.#start) / ARRIVAL_BUCKET_MS);
    if (i < MAX_ARRIVAL_BUCKETS) this.#counts[i] = (this.#counts[i] ?? 0) + 1;
  }
  /** The busiest 100 ms as a rate (req/s) and the total, then a fresh start. */
  take(): { peakReqPerSecIn100Ms: number; total: number } {
    let peak = 0;
    let total = 0;
    for (const c of this.#counts) {
      peak = Math.max(peak, c ?? 0);
      total += c ?? 0;
    }
    this.#start = performance.now();
    this.#counts = [];
    return { peakReqPerSecIn100Ms: peak * (1000 / ARRIVAL_BUCKET_MS), total };
  }
}

/**
 * A backend answering every POST; GET /__count says how many POSTs it has received (coverage of a
 * mirror); GET /__arrivals the busiest 100 ms since the previous call (the offered load's shape).
 */
async function runBackend(): Promise<void> {
  let n = 0;
  let received = 0;
  const arrivals = new Arrivals();
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/__count") {
      res.end(String(received));
      return;
    }
    if (req.method === "GET" && req.url === "/__arrivals") {
      res.end(JSON.stringify(arrivals.take()));
      return;
    }
    arrivals.add();
    req.resume();
    req.on("end", () => {
      received++;
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

async function runGateway(upstream: string, candidateUrl: string, sampleRate: number, shadow: { nice?: number; workers?: number }): Promise<void> {
  const { Gateway } = await import("../controller/src/gateway/gateway.ts");
  const stateDir = mkdtempSync(join(tmpdir(), "airollout-bench-gw-"));
  process.on("exit", () => rmSync(stateDir, { recursive: true, force: true }));
  const gw = new Gateway({ log: pino({ level: "warn" }), stateDir, shadowNice: shadow.nice, shadowWorkers: shadow.workers });
  gw.upsert({
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bench", namespace: "bench", uid: "bench", generation: 1, resourceVersion: "1" },
    spec: {
      stable: { version: "v1", endpoint: upstream },
      // The candidate's canary share and its shadow copies go to the candidate's own backend.
      candidate: { version: "v2", endpoint: candidateUrl },
      strategy: { steps: [{ setWeight: 20 }] },
      traffic: { circuitBreaker: { consecutiveFailures: 50 } },
      shadow: {
        sampleRate,
        minSamples: 100,
        compare: {
          ignore: ["$.id", "$.created", "$.usage"],
          tolerances: [{ path: "$.confidence", relative: 0.03 }, { path: "$.entities[*].score", relative: 0.05 }],
          labels: ["$.intent", "$.priority", "$.entities[*].type"],
          text: [{ path: "$.summary", minSimilarity: 0.8 }],
          unorderedArrays: ["$.tags"],
        },
      },
    },
    status: { canaryWeight: 20, shadowEnabled: true, phase: "Progressing", revision: "bench" },
  } as Parameters<typeof gw.upsert>[0]);
  const { port } = await gw.listen(0, "127.0.0.1");
  const { joinGatewayCluster, processIndex } = await import("../controller/src/gateway/cluster.ts");
  // A cluster process: the primary announces the shared port and serves the merged metrics.
  if (processIndex() !== undefined) joinGatewayCluster(gw.metrics.registry, port);
  else announce(port);
}

/**
 * The gateway as `processes` processes sharing one port (controller/src/gateway/cluster.ts):
 * this primary forks them (each runs runGateway) and serves their metrics, labelled by process,
 * on a port of its own (GET /metrics; GET /__processes: their pids, for tests).
 */
async function runGatewayCluster(processes: number): Promise<void> {
  const { GatewayCluster } = await import("../controller/src/gateway/cluster.ts");
  const c = new GatewayCluster({ processes, log: pino({ level: "warn" }) });
  const port = await c.start();
  const admin = createServer((req, res) => {
    if (req.url === "/__processes") {
      res.end(JSON.stringify({ pids: c.pids(), replaced: c.replaced }));
      return;
    }
    if (req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    c.metrics().then(
      (text) => res.writeHead(200, { "content-type": c.contentType }).end(text),
      (err: unknown) => res.writeHead(503, { "content-type": "text/plain" }).end(String(err)),
    );
  });
  const metricsPort = await listen(admin);
  process.stdout.write(`${JSON.stringify({ ready: port, metrics: metricsPort })}\n`);
}

interface Child {
  proc: ChildProcess;
  url: string;
  /** A gateway cluster's primary serves every process's metrics on a port of its own. */
  metricsUrl?: string;
}

/** Where a gateway child's metrics are read: its cluster primary's metrics port, else its own port. */
const metricsOf = (c: Child) => c.metricsUrl ?? c.url;

function start(role: string, upstream?: string, extra: string[] = []): Promise<Child> {
  const prof = process.env.AIROLLOUT_BENCH_CPU_PROF;
  // A directory per child and Node's default names: a fixed --cpu-prof-name would make every
  // worker thread (shadow workers) write over the main thread's profile. The names carry the
  // thread id (0: main thread).
  const profArgs = prof && role !== "backend" ? ["--cpu-prof", "--cpu-prof-dir", join(prof, `${role}-${extra.join("_").replace(/[^\w.]/g, "")}-${Date.now()}`)] : [];
  const args = [...profArgs, SELF, "--role", role, ...(upstream ? ["--upstream", upstream] : []), ...extra];
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let buf = "";
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /\{"ready":(\d+)(?:,"metrics":(\d+))?\}/.exec(buf);
      if (m) resolve({ proc, url: `http://127.0.0.1:${m[1]}`, ...(m[2] ? { metricsUrl: `http://127.0.0.1:${m[2]}` } : {}) });
    });
    proc.once("exit", (code) => reject(new Error(`${role} exited with ${code} before it was ready`)));
  });
}

/** A free loopback port (nginx needs one in its config). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** The nginx binary, or undefined when it is not installed (`bash hack/ensure-system.sh nginx`). */
function nginxBinary(): string | undefined {
  for (const p of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]) if (existsSync(p)) return p;
  const which = spawnSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : undefined;
}

/**
 * nginx in the foreground with a generated config in a temporary directory: keep-alive pools to
 * both backends, every request mirrored (body included) to the shadow, whose answer nginx drops.
 */
async function startNginx(bin: string, workers: "1" | "auto", stable: string, shadow: string): Promise<Child & { dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "airollout-bench-nginx-"));
  const port = await freePort();
  const hostPort = (u: string) => new URL(u).host;
  // As root nginx's workers would switch to `nobody`, which cannot use a 0700 temporary directory.
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${join(dir, t)};`).join("\n");
  writeFileSync(
    join(dir, "nginx.conf"),
    `${user}worker_processes ${workers};
daemon off;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 4096; }
http {
  access_log off;
${temp}
  upstream stable { server ${hostPort(stable)}; keepalive 128; }
  upstream shadow { server ${hostPort(shadow)}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    client_body_buffer_size 64k;
    keepalive_requests 1000000;
    location / {
      mirror /__mirror;
      mirror_request_body on;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://stable;
    }
    location = /__mirror {
      internal;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://shadow$request_uri;
    }
  }
}
`,
  );
  const proc = spawn(bin, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "inherit"] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}; see ${join(dir, "error.log")}`);
    try {
      await fetch(`${url}/`, { method: "POST", body: "{}" });
      return { proc, url, dir };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("nginx did not answer within 10 s");
}

interface Run {
  reqPerSec: number;
  total: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  /** Mirroring paths, saturation runs: compared (or received by the shadow) / eligible. */
  coverage?: number;
  /**
   * A gateway run too short to show drops: its bounded shadow queue (maxConcurrency +
   * queueSize) holds a large part of the run's copies, which are then compared after the run.
   * Such a coverage is not evidence of keeping up; a target resting on it is unmet.
   */
  coverageInconclusive?: boolean;
  /** CPU microseconds per request of the proxy's main thread and of its whole process (Linux, Node proxies). */
  cpuUsPerReq?: { mainThread: number; process: number };
  /** Gateway paths, latency runs: how late the gateway's event loop ran its timer (its own metric). */
  loopDelay?: LoopDelay;
  /** The direct path's latency runs: the busiest 100 ms of what autocannon offered, as a rate. */
  offeredPeakReqPerSec?: number;
}

/** The gateway's event-loop delay over one run, in ms (the worst process of a cluster). */
interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

/**
 * prom-client's event-loop histogram (collectDefaultMetrics, eventLoopMonitoringPrecision's
 * default) holds the intervals of a 10 ms timer: the delay is what exceeds 10 ms.
 */
const LOOP_TIMER_MS = 10;

/**
 * The gateway's event-loop delay since its previous scrape, read from the metrics it exports
 * (airollout_gateway_process_nodejs_eventloop_lag_*: a scrape also resets the histogram, so a
 * scrape before a run starts it afresh).
 */
async function loopDelay(url: string): Promise<LoopDelay> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const worst = (name: string) => {
    let ms = 0;
    for (const line of text.split("\n")) if (line.startsWith(`airollout_gateway_process_nodejs_eventloop_lag_${name}_seconds`)) ms = Math.max(ms, Number(line.slice(line.lastIndexOf(" ") + 1)) * 1000 - LOOP_TIMER_MS);
    return round(Math.max(0, ms), 1);
  };
  return { p99Ms: worst("p99"), maxMs: worst("max") };
}

/** The busiest 100 ms a backend saw since the previous call, as a rate (see Arrivals). */
async function offeredPeak(backendUrl: string): Promise<number> {
  return ((await (await fetch(`${backendUrl}/__arrivals`)).json()) as { peakReqPerSecIn100Ms: number }).peakReqPerSecIn100Ms;
}

/**
 * CPU time (ms) of the processes' main threads and of the whole processes (a gateway cluster:
 * its primary and every gateway process, added up), or undefined off Linux.
 */
function cpuMs(pids: number[] | undefined): { main: number; all: number } | undefined {
  if (pids === undefined || pids.length === 0) return undefined;
  const ticks = (file: string) => {
    const f = readFileSync(file, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) * (1000 / CLOCK_TICKS);
  };
  try {
    return pids.reduce((t, pid) => ({ main: t.main + ticks(`/proc/${pid}/task/${pid}/stat`), all: t.all + ticks(`/proc/${pid}/stat`) }), { main: 0, all: 0 });
  } catch {
    return undefined;
  }
}

/** The processes whose CPU a path's latency run reads: the proxy's, or a cluster's primary and processes. */
async function pidsOf(p: Path): Promise<number[] | undefined> {
  if (p.processes === undefined) return p.pid === undefined ? undefined : [p.pid];
  const { pids } = (await (await fetch(`${metricsOf(p.child)}/__processes`)).json()) as { pids: Record<string, number> };
  return [p.child.proc.pid!, ...Object.values(pids)];
}
/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

/** A saturation run: autocannon's 32 connections, each sending its next request on the answer (closed loop). */
async function cannon(url: string, seconds: number): Promise<Run> {
  // Loaded here so the server roles do not pay for it.
  const { default: autocannon } = await import("autocannon");
  const opts: Record<string, unknown> = {
    url: `${url}${HOOK_PATH}`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: REQUEST_BODY,
    connections: 32,
    duration: seconds,
  };
  const r = (await autocannon(opts)) as AutocannonResult;
  return { reqPerSec: Math.round(r.requests.average), total: r.requests.total, p50Ms: r.latency.p50, p99Ms: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

/** vegeta's JSON report (latencies in nanoseconds). */
interface VegetaReport {
  requests: number;
  /** Successful answers per second, over the attack and the wait for the last answers. */
  throughput: number;
  latencies: { "50th": number; "99th": number };
  status_codes: Record<string, number>;
}

/**
 * Senders of the paced runs at most, as many as the saturation runs' connections: open loop until
 * 32 requests are in flight, then a sender waits for an answer (vegeta reports the rate it kept).
 * Unbounded, a path that falls behind is sent ever more connections and dies of the storm.
 */
const PACED_SENDERS = 32;

/** The vegeta binary of hack/versions.env, built from the Go module proxy on first use (about 20 s). */
async function vegetaBinary(): Promise<string> {
  const { cacheDir, runBuild, toolVersions } = await import("../controller/src/dev/tools.ts");
  const bin = join(cacheDir(), "bin", `vegeta-${toolVersions().VEGETA_VERSION}`, "vegeta");
  if (!existsSync(bin)) await runBuild("vegeta", (l) => process.stderr.write(`${l}\n`));
  return bin;
}

/**
 * A run at `rate` requests a second paced evenly, open loop (vegeta attack): each request is sent
 * at its time whether or not earlier ones were answered, as independent webhook senders do.
 * autocannon's rate limit instead hands every connection its quota at each second's start.
 */
async function paced(url: string, seconds: number, rate: number, pids?: number[]): Promise<Run> {
  const vegeta = await vegetaBinary();
  const dir = mkdtempSync(join(tmpdir(), "airollout-bench-vegeta-"));
  try {
    writeFileSync(join(dir, "body.json"), REQUEST_BODY);
    writeFileSync(join(dir, "targets"), `POST ${url}${HOOK_PATH}\nContent-Type: application/json\n@${join(dir, "body.json")}\n`);
    const before = cpuMs(pids);
    await execFileAsync(vegeta, ["attack", `-rate=${rate}/1s`, `-duration=${seconds}s`, `-targets=${join(dir, "targets")}`, `-output=${join(dir, "results.bin")}`, "-timeout=10s", `-workers=${PACED_SENDERS}`, `-max-workers=${PACED_SENDERS}`, `-max-connections=${PACED_SENDERS}`]);
    const after = cpuMs(pids);
    const r = JSON.parse((await execFileAsync(vegeta, ["report", "-type=json", join(dir, "results.bin")])).stdout) as VegetaReport;
    const ok = Object.entries(r.status_codes).reduce((n, [code, c]) => (code.startsWith("2") ? n + c : n), 0);
    const failed = r.status_codes["0"] ?? 0;
    const out: Run = { reqPerSec: Math.round(r.throughput), total: r.requests, p50Ms: round(r.latencies["50th"] / 1e6, 2), p99Ms: round(r.latencies["99th"] / 1e6, 2), errors: failed, non2xx: r.requests - ok - failed };
    if (before && after && r.requests > 0) {
      const per = (ms: number) => Math.round((ms * 1000) / r.requests);
      out.cpuUsPerReq = { mainThread: per(after.main - before.main), process: per(after.all - before.all) };
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The gateway's shadow counters: requests chosen for mirroring, comparisons, drops by reason, jobs in its queue. */
interface MirrorCounts {
  sampled: number;
  compared: number;
  inQueue: number;
  dropped: Record<string, number>;
}

async function mirrorCounts(url: string): Promise<MirrorCounts> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const c: MirrorCounts = { sampled: 0, compared: 0, inQueue: 0, dropped: {} };
  for (const line of text.split("\n")) {
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith("airollout_mirror_sampled_total{")) c.sampled += value;
    else if (line.startsWith("airollout_shadow_comparisons_total{")) c.compared += value;
    else if (line.startsWith("airollout_mirror_queue{")) c.inQueue += value;
    else if (line.startsWith("airollout_mirror_dropped_total{")) {
      const reason = /reason="([^"]*)"/.exec(line)?.[1] ?? "?";
      c.dropped[reason] = (c.dropped[reason] ?? 0) + value;
    }
  }
  return c;
}

/** The spec defaults the bench's gateways run with: shadow.maxConcurrency 32 + shadow.queueSize 1000. */
const SHADOW_BACKLOG = 32 + 1000;
/** Copies a run must have chosen for its coverage to say whether the shadow keeps up: 10 backlogs. */
const CONCLUSIVE_SAMPLED = 10 * SHADOW_BACKLOG;
/** The offered rate of the latency runs, and the share of it a run must reach to count. */
const FIXED_RATE = 1000;
const FIXED_RATE_REACHED = 0.95;

/** Waits (up to 20 s) until a gateway's shadow queue is empty: copies in flight are compared or dropped first. */
async function gatewaySettled(url: string): Promise<MirrorCounts> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const c = await mirrorCounts(url);
    if (c.inQueue === 0 || Date.now() > deadline) return c;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function shadowReceived(backendUrl: string): Promise<number> {
  return Number(await (await fetch(`${backendUrl}/__count`)).text());
}

/** Waits until the shadow backend's count stops moving (nginx finishes its mirror subrequests). */
async function shadowSettled(backendUrl: string): Promise<number> {
  let last = await shadowReceived(backendUrl);
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 150));
    const now = await shadowReceived(backendUrl);
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** How a path is reached and how its coverage is read. */
interface Path {
  name: string;
  child: Child;
  /** A Node process whose CPU time is read (/proc). */
  pid?: number;
  mirror?: "nginx" | "gateway";
  /** Gateway processes sharing the port (cluster paths). */
  processes?: number;
}

/** One saturation run with the path's coverage, read after its copies settled. */
async function saturation(p: Path, seconds: number, backends: Backends): Promise<Run> {
  if (p.mirror === "gateway") {
    const before = await gatewaySettled(metricsOf(p.child));
    const run = await cannon(p.child.url, seconds);
    const after = await gatewaySettled(metricsOf(p.child));
    const sampled = after.sampled - before.sampled;
    run.coverage = sampled > 0 ? round((after.compared - before.compared) / sampled, 4) : 0;
    // Each process of a cluster has its own shadow queue.
    if (sampled < CONCLUSIVE_SAMPLED * (p.processes ?? 1)) run.coverageInconclusive = true;
    return run;
  }
  if (p.mirror === "nginx") {
    // Over what the stable received, not what autocannon counted: requests still in flight when
    // a run ends reached both backends but are not in autocannon's total.
    const before = { shadow: await shadowSettled(backends.shadow), stable: await shadowReceived(backends.stable) };
    const run = await cannon(p.child.url, seconds);
    const shadow = await shadowSettled(backends.shadow);
    const stable = (await shadowReceived(backends.stable)) - before.stable;
    run.coverage = stable > 0 ? round((shadow - before.shadow) / stable, 4) : 0;
    return run;
  }
  return cannon(p.child.url, seconds);
}

function round(x: number, digits = 3): number {
  return Number(x.toFixed(digits));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The backends' URLs: their POST counts give nginx's coverage. */
interface Backends {
  stable: string;
  shadow: string;
}

/** Errors and non-2xx answers over runs: any makes a figure built on them unmet. */
const failures = (runs: Run[]) => runs.reduce((n, r) => n + r.errors + r.non2xx, 0);

/** The processes of one benchmark: two backends, the proxies, the gateways. */
async function startPaths(children: { proc: ChildProcess }[], dirs: string[]): Promise<{ paths: Path[]; backends: Backends; nginxMissing: boolean }> {
  const stable = await start("backend");
  children.push(stable);
  // The candidate (its 20% and every shadow copy) on a backend process of its own, as in a
  // cluster; nginx mirrors to the same one.
  const shadow = await start("backend");
  children.push(shadow);
  const paths: Path[] = [{ name: "direct", child: stable }];
  const passthrough = await start("passthrough", stable.url);
  children.push(passthrough);
  paths.push({ name: "passthrough", child: passthrough, pid: passthrough.proc.pid });
  const nginx = nginxBinary();
  if (nginx) {
    for (const [name, workers] of [["nginx_mirror", "1"], ["nginx_mirror_auto", "auto"]] as const) {
      const n = await startNginx(nginx, workers, stable.url, shadow.url);
      children.push(n);
      dirs.push(n.dir);
      paths.push({ name, child: n, mirror: "nginx" });
    }
  }
  // gateway_shadow_nice0: the shadow workers at the answering thread's priority instead of
  // nice +10 (ADR 0003): coverage bought with the primary's CPU.
  // *_cluster: one gateway process per core sharing the port (node:cluster), like nginx's
  // worker_processes auto; its CPU per request adds up the primary's and every process's.
  const gateways = [
    ["gateway", "1", []],
    ["gateway_shadow_nice0", "1", ["--shadow-nice", "0"]],
    ["gateway_mirror_10pct", "0.1", []],
    ["gateway_no_mirror", "0", []],
    ["gateway_cluster", "1", ["--processes", "auto"]],
    ["gateway_no_mirror_cluster", "0", ["--processes", "auto"]],
  ] as const;
  for (const [name, rate, extra] of gateways) {
    const g = await start("gateway", stable.url, ["--sample-rate", rate, "--candidate", shadow.url, ...extra]);
    children.push(g);
    const cluster = name.endsWith("_cluster");
    paths.push({ name, child: g, pid: g.proc.pid, mirror: rate === "0" ? undefined : "gateway", ...(cluster ? { processes: availableParallelism() } : {}) });
  }
  return { paths, backends: { stable: stable.url, shadow: shadow.url }, nginxMissing: !nginx };
}

interface Rounds {
  sat: Record<string, Run[]>;
  at1000: Record<string, Run[]>;
  /** Requests each path answered over the whole benchmark, warm-up included (profiles: time per request). */
  served: Record<string, number>;
}

/**
 * One run at 1,000 req/s offered, paced evenly (vegeta), with what explains its p99: for the
 * direct path the busiest 100 ms the backend received (how evenly the load came), for a gateway
 * its event-loop delay.
 */
async function latencyRun(p: Path, seconds: number): Promise<Run> {
  const gateway = p.name.startsWith("gateway");
  if (gateway) await loopDelay(metricsOf(p.child));
  if (p.name === "direct") await offeredPeak(p.child.url);
  const run = await paced(p.child.url, seconds, FIXED_RATE, await pidsOf(p));
  if (gateway) run.loopDelay = await loopDelay(metricsOf(p.child));
  if (p.name === "direct") run.offeredPeakReqPerSec = await offeredPeak(p.child.url);
  return run;
}

/** The paths take turns, ROUNDS times, so a burst of outside load does not land on one path only. */
async function measure(paths: Path[], backends: Backends, seconds: number, rounds: number): Promise<Rounds> {
  // warm-up: sockets, JIT, the gateway's first comparisons and shadow workers
  const out: Rounds = { sat: {}, at1000: {}, served: {} };
  for (const p of paths) out.served[p.name] = (await saturation(p, 1, backends)).total;
  for (let i = 0; i < rounds; i++) {
    for (const p of paths) (out.sat[p.name] ??= []).push(await saturation(p, seconds, backends));
    for (const p of paths) {
      (out.at1000[p.name] ??= []).push(await latencyRun(p, seconds));
      if (p.mirror === "gateway") await gatewaySettled(metricsOf(p.child));
    }
  }
  return out;
}

/** Per path: medians over rounds, every round's figures, errors and coverage. */
function summarise(r: Rounds): Record<string, unknown> {
  return Object.fromEntries(
    Object.keys(r.sat).map((name) => {
      const sat = r.sat[name]!;
      const at = r.at1000[name]!;
      const cov = sat.map((x) => x.coverage).filter((c): c is number => c !== undefined);
      const cpu = at.map((x) => x.cpuUsPerReq).filter((c) => c !== undefined);
      const loop = at.map((x) => x.loopDelay).filter((l) => l !== undefined);
      return [
        name,
        {
          reqPerSec: median(sat.map((x) => x.reqPerSec)),
          p50Ms: median(sat.map((x) => x.p50Ms)),
          p99Ms: median(sat.map((x) => x.p99Ms)),
          p99MsAt1000: median(at.map((x) => x.p99Ms)),
          requestsServed: sat.concat(at).reduce((n, x) => n + x.total, r.served[name] ?? 0),
          errors: sat.concat(at).reduce((n, x) => n + x.errors, 0),
          non2xx: sat.concat(at).reduce((n, x) => n + x.non2xx, 0),
          ...(cov.length ? { coverage: { min: Math.min(...cov), median: median(cov), inconclusiveRuns: sat.filter((x) => x.coverageInconclusive).length } } : {}),
          ...(cpu.length ? { cpuUsPerReqAt1000: { mainThread: median(cpu.map((c) => c.mainThread)), process: median(cpu.map((c) => c.process)) } } : {}),
          ...(loop.length ? { eventLoopDelayMsAt1000: { p99: median(loop.map((l) => l.p99Ms)), max: median(loop.map((l) => l.maxMs)) } } : {}),
          rounds: sat.map((x, i) => ({
            reqPerSec: x.reqPerSec,
            p99Ms: x.p99Ms,
            reqPerSecAt1000: at[i]!.reqPerSec,
            p99MsAt1000: at[i]!.p99Ms,
            ...(x.coverage !== undefined ? { coverage: x.coverage } : {}),
            ...(at[i]!.loopDelay ? { eventLoopDelayP99MsAt1000: at[i]!.loopDelay!.p99Ms } : {}),
            ...(at[i]!.offeredPeakReqPerSec !== undefined ? { offeredPeakReqPerSecAt1000: at[i]!.offeredPeakReqPerSec } : {}),
          })),
        },
      ];
    }),
  );
}

/** A ratio of two paths' throughput per round (same round's pair) and its median. */
function ratioOf(r: Rounds, num: string, den: string): { median: number; rounds: number[] } | undefined {
  const a = r.sat[num];
  const b = r.sat[den];
  if (!a || !b) return undefined;
  const rounds = a.map((x, i) => round(x.reqPerSec / b[i]!.reqPerSec));
  return { median: round(median(rounds)), rounds };
}

/** The busiest 100 ms of the direct path's latency runs (as a rate; an even 1,000 req/s would read about 1,000). */
function offeredShape(r: Rounds): { peakReqPerSecIn100Ms: { median: number; rounds: number[] } } | undefined {
  const rounds = (r.at1000.direct ?? []).map((x) => x.offeredPeakReqPerSec).filter((x) => x !== undefined);
  return rounds.length ? { peakReqPerSecIn100Ms: { median: median(rounds), rounds } } : undefined;
}

/** p99 at 1,000 req/s of a path minus the direct path's in the same round, and its median. */
function p99Added(r: Rounds, name: string): { median: number; rounds: number[] } | undefined {
  const a = r.at1000[name];
  const d = r.at1000.direct;
  if (!a || !d) return undefined;
  const rounds = a.map((x, i) => round(x.p99Ms - d[i]!.p99Ms, 2));
  return { median: round(median(rounds), 2), rounds };
}

/**
 * The targets, each met only when its figure reaches the bar, none of the runs behind it
 * had errors or non-2xx answers, and every coverage behind it is at least 99%.
 */
function targets(r: Rounds): Record<string, unknown> {
  const clean = (...names: string[]) => names.every((n) => r.sat[n] && failures(r.sat[n]!) === 0 && failures(r.at1000[n]!) === 0);
  const covered = (...names: string[]) => names.every((n) => (r.sat[n] ?? []).every((x) => x.coverage === undefined || (x.coverage >= 0.99 && !x.coverageInconclusive)));
  // A latency run that did not reach the offered rate measured a saturated path, not 1,000 req/s.
  const atRate = (...names: string[]) => names.every((n) => (r.at1000[n] ?? []).every((x) => x.reqPerSec >= FIXED_RATE * FIXED_RATE_REACHED));
  const vsNginx = ratioOf(r, "gateway", "nginx_mirror");
  const tenPct = ratioOf(r, "gateway_mirror_10pct", "passthrough");
  const none = ratioOf(r, "gateway_no_mirror", "passthrough");
  const added = p99Added(r, "gateway");
  const met = {
    mirror_100pct_vs_nginx_mirror_ge_1: vsNginx !== undefined && vsNginx.median >= 1 && clean("gateway", "nginx_mirror") && covered("gateway"),
    mirror_10pct_vs_passthrough_ge_0_9: tenPct !== undefined && tenPct.median >= 0.9 && clean("gateway_mirror_10pct", "passthrough") && covered("gateway_mirror_10pct"),
    no_mirror_vs_passthrough_ge_1: none !== undefined && none.median >= 1 && clean("gateway_no_mirror", "passthrough"),
    p99_added_at_1000_rps_le_1ms: added !== undefined && added.median <= 1 && clean("gateway", "direct") && atRate("gateway", "direct"),
  };
  // The same bars for the gateway as one process per core, against nginx with as many workers.
  const clusterVsNginx = ratioOf(r, "gateway_cluster", "nginx_mirror_auto");
  const clusterNone = ratioOf(r, "gateway_no_mirror_cluster", "passthrough");
  const cluster = {
    cluster_mirror_100pct_vs_nginx_mirror_auto_ge_1: clusterVsNginx !== undefined && clusterVsNginx.median >= 1 && clean("gateway_cluster", "nginx_mirror_auto") && covered("gateway_cluster"),
    cluster_no_mirror_vs_passthrough_ge_1: clusterNone !== undefined && clusterNone.median >= 1 && clean("gateway_no_mirror_cluster", "passthrough"),
  };
  return { ...met, all: Object.values(met).every(Boolean), ...cluster };
}

/**
 * AIROLLOUT_BENCH_PATHS=a,b (profiling, quick looks): only those paths, plus `direct` (every
 * ratio and p99-added needs it). A name that is no path is an error, not an empty run.
 */
function onlyPaths(all: Path[]): Path[] {
  const want = process.env.AIROLLOUT_BENCH_PATHS;
  if (!want) return all;
  const names = new Set(["direct", ...want.split(",").map((n) => n.trim()).filter(Boolean)]);
  for (const n of names) if (!all.some((p) => p.name === n)) throw new Error(`AIROLLOUT_BENCH_PATHS: ${n} is not a path (${all.map((p) => p.name).join(", ")})`);
  return all.filter((p) => names.has(p.name));
}

async function orchestrate(seconds: number, rounds: number): Promise<void> {
  const load = loadavg().map((l) => round(l, 2));
  const children: { proc: ChildProcess }[] = [];
  const dirs: string[] = [];
  try {
    const started = await startPaths(children, dirs);
    const { backends, nginxMissing } = started;
    const paths = onlyPaths(started.paths);
    const r = await measure(paths, backends, seconds, rounds);
    const proxies = paths.filter((p) => p.name !== "direct").map((p) => p.name);
    process.stdout.write(
      `${JSON.stringify({
        seconds_per_run: seconds,
        rounds,
        load: "saturation: autocannon -c 32; latency: vegeta at 1,000 req/s paced evenly, open loop; POST 1 KB JSON, answers ~2 KB",
        gateway_config: "split 20% to the candidate, shadow.sampleRate 1 (gateway) / 0.1 / 0 of the stable's answers mirrored and diffed (5 rule kinds), shadow defaults (maxConcurrency 32, queueSize 1000, worker threads), circuit breakers on",
        nginx: nginxMissing ? "not installed (bash hack/ensure-system.sh nginx): its paths and the target against it are missing" : "Debian's nginx, mirror + mirror_request_body, keep-alive upstreams; nginx_mirror: worker_processes 1, nginx_mirror_auto: auto",
        // The machine may be shared: a load average above the core count makes every number noisier.
        load_average_at_start: load,
        cores: availableParallelism(),
        paths: summarise(r),
        ratios: {
          gateway_vs_nginx_mirror: ratioOf(r, "gateway", "nginx_mirror"),
          gateway_vs_nginx_mirror_auto: ratioOf(r, "gateway", "nginx_mirror_auto"),
          gateway_shadow_nice0_vs_nginx_mirror: ratioOf(r, "gateway_shadow_nice0", "nginx_mirror"),
          gateway_mirror_10pct_vs_passthrough: ratioOf(r, "gateway_mirror_10pct", "passthrough"),
          gateway_no_mirror_vs_passthrough: ratioOf(r, "gateway_no_mirror", "passthrough"),
          gateway_cluster_vs_nginx_mirror_auto: ratioOf(r, "gateway_cluster", "nginx_mirror_auto"),
          gateway_cluster_vs_nginx_mirror: ratioOf(r, "gateway_cluster", "nginx_mirror"),
          gateway_no_mirror_cluster_vs_passthrough: ratioOf(r, "gateway_no_mirror_cluster", "passthrough"),
          nginx_mirror_vs_passthrough: ratioOf(r, "nginx_mirror", "passthrough"),
        },
        p99_added_ms_at_1000_rps_vs_direct: Object.fromEntries(proxies.map((n) => [n, p99Added(r, n)])),
        // What "1,000 req/s offered" is: autocannon sends each connection's per-second quota back
        // to back at every second's start, so the p99 is a p99 of 16-deep bursts at full speed.
        offered_at_1000_rps: offeredShape(r),
        targets: { gateway_vs_nginx_mirror: 1.0, gateway_mirror_10pct_vs_passthrough: 0.9, gateway_no_mirror_vs_passthrough: 1.0, p99_added_ms_at_1000_rps: 1, coverage: 0.99 },
        meets_targets: targets(r),
        node: process.version,
      })}\n`,
    );
  } finally {
    // SIGTERM: a profiled child writes its profile on a clean exit; nginx's master stops its workers.
    for (const c of children) c.proc.kill("SIGTERM");
    // A profiled child may need many seconds on a loaded machine to write its profiles.
    const grace = process.env.AIROLLOUT_BENCH_CPU_PROF ? 60_000 : 1500;
    const deadline = Date.now() + grace;
    while (Date.now() < deadline && children.some((c) => c.proc.exitCode === null && c.proc.signalCode === null)) await new Promise((res) => setTimeout(res, 100));
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
const role = argv[argv.indexOf("--role") + 1];
const upstream = argv.includes("--upstream") ? argv[argv.indexOf("--upstream") + 1] : undefined;
const sampleRate = argv.includes("--sample-rate") ? Number(argv[argv.indexOf("--sample-rate") + 1]) : 1;
const candidate = argv.includes("--candidate") ? argv[argv.indexOf("--candidate") + 1] : undefined;
// Experiments (profiling): the gateway's shadow worker count and nice steps; defaults otherwise.
const numberArg = (name: string) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : undefined);
if (argv.includes("--role")) {
  // A clean exit on SIGTERM lets `--cpu-prof` write its profile when profiling a role.
  process.once("SIGTERM", () => process.exit(0));
  if (role === "backend") await runBackend();
  else if (role === "passthrough") await runPassthrough(upstream!);
  else if (role === "gateway" && argv.includes("--processes") && (await import("node:cluster")).default.isPrimary) {
    const { gatewayProcesses } = await import("../controller/src/gateway/cluster.ts");
    await runGatewayCluster(gatewayProcesses(argv[argv.indexOf("--processes") + 1]!, availableParallelism()));
  } else if (role === "gateway") await runGateway(upstream!, candidate ?? `${upstream}/`, sampleRate, { nice: numberArg("--shadow-nice"), workers: numberArg("--shadow-workers") });
  else throw new Error(`unknown role ${role}`);
} else {
  const seconds = Number(argv[0] ?? "2");
  if (!(seconds > 0)) throw new Error(`seconds per run must be positive, got ${argv[0]}`);
  const rounds = Number(process.env.AIROLLOUT_BENCH_ROUNDS ?? "3");
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`AIROLLOUT_BENCH_ROUNDS must be a positive integer, got ${process.env.AIROLLOUT_BENCH_ROUNDS}`);
  await orchestrate(seconds, rounds);
}
