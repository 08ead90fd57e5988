/**
 * Scale benchmark (`make bench`, the controller part of issue 16): thousands of AIRollouts in the
 * real local control plane, the controller started on them, and the gateway watching many.
 *
 * For each size N (default 1,000, 5,000 and 10,000, plus a 1-rollout baseline), in a namespace
 * of its own: N AIRollouts like a new user's (endpoint versions, `setWeight: 10` then an
 * indefinite pause) are created with bounded parallelism; then, one process at a time:
 *   client_node_informer  @kubernetes/client-node's makeInformer alone on the same objects
 *   airollout_informer    this project's kube/informer.ts alone (the cache the controller holds)
 *   controller            `airollout controller --namespace <ns> --environments none`
 * The controller is timed from its spawn until every rollout is Paused (its own phase gauge,
 * then checked against the API server), its RSS read from /proc, its reconcile p50/p99 taken
 * from its reconcile duration histogram, and the API server's `apiserver_request_total` counted
 * around it. At the largest N it then soaks (default 10 minutes): RSS every 10 s, the slope by
 * least squares, idle CPU, and the requests a resync costs per rollout.
 * Then the controller is stopped and started again on the same rollouts, as after an upgrade, a
 * crash or a leader change, and timed until every rollout has had its pass (`restart`).
 *
 * Gateway: two `airollout gateway` processes, one watching a namespace with 1 rollout, one with
 * G (default 1,000), take the same fixed-rate traffic to one rollout in turns: RSS (idle after the
 * first list, right after each side's own traffic, settled), V8 heap used/total and CPU per
 * request side by side, each with its ratio; the memory targets judge idle and after traffic.
 *
 * Prints one JSON line; a part that fails is reported under `errors` (exit code 1) and makes
 * `meets_targets` false, never a pass.
 *
 * Run: node_modules/.bin/node bench/scale.ts [--quick]
 * Env: AIROLLOUT_SCALE_N=1000,5000,10000  AIROLLOUT_SCALE_SOAK_SECONDS=600
 *      AIROLLOUT_SCALE_GATEWAY_N=1000 (quick: 200,1000 / 60 s / 1000)
 *      AIROLLOUT_SCALE_KEEP=1 keeps the control plane's directory (logs) for inspection
 * Child roles (internal): bench/scale.ts --role client-node-informer|airollout-informer
 *   --kubeconfig PATH --namespace NS
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { rolloutsPath } from "../controller/src/api/paths.ts";
import { down, freePort, installCRD, up, type ControlPlaneState } from "../controller/src/dev/controlplane.ts";
import { KubeClient, loadKubeConfig } from "../controller/src/kube/client.ts";
import type { KubeObject } from "../controller/src/kube/informer.ts";
import type { KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";

const SELF = fileURLToPath(import.meta.url);
const ROOT = join(SELF, "..", "..");
const CLI = join(ROOT, "bin", "airollout");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, digits = 1) => Number(x.toFixed(digits));

/**
 * A new rollout's requests before the write reductions (finalizer only where environments need
 * it, first sight decided in one pass, Events once per name): bench/scale.ts at commit 4c46626 with
 * the client-side count added, 200 rollouts; the API server's own count agreed.
 */
const BEFORE = {
  perRollout: 7,
  byKind: { "PATCH airollouts": 1, "PUT airollouts/status": 2, "POST events": 4 },
  measured: "commit 4c46626 plus the request counter, 200 rollouts, 2026-11-29 (client and API server agreed: 7.0)",
};

const TARGETS = { rss_mb_at_10000: 500, init_seconds_at_10000: 120, gateway_ratio_max: 1.1 };
/** Parallel creates: enough to keep the API server busy, few enough not to time out on 2 cores. */
const CREATE_CONCURRENCY = 24;

// ---------------------------------------------------------------- process and metrics readers

/** Resident set size of a process in MB (Linux /proc), or undefined when it is gone. */
function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? undefined : round(Number(kb) / 1024);
  } catch {
    return undefined;
  }
}

/** CPU time (ms, user + system) of a whole process, or undefined when it is gone. */
function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // USER_HZ is 100 on every Linux architecture Node runs on.
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition into samples (comments skipped). */
function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * A quantile from cumulative histogram buckets, interpolated linearly inside the bucket like
 * PromQL's histogram_quantile. Undefined without observations (missing evidence, not zero).
 */
function histogramQuantile(samples: Sample[], name: string, q: number): number | undefined {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(count - prevCount, 1);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

const sum = (samples: Sample[], name: string, match: (l: Record<string, string>) => boolean = () => true) =>
  samples.filter((s) => s.name === name && match(s.labels)).reduce((n, s) => n + s.value, 0);

/**
 * The resources whose requests are counted: the controller's per-rollout traffic. The API
 * server's own upkeep (its lease, endpoints, kube-system ConfigMaps) goes to other resources and
 * would blur the figure; the controller's ConfigMap and Secret informers list once per start.
 */
const COUNTED_RESOURCES = new Set(["airollouts", "events"]);

/** The API server's request counters by verb and resource (watches left out). */
async function apiRequests(client: KubeClient): Promise<Map<string, number>> {
  const text = await client.request<string>("GET", "/metrics");
  const out = new Map<string, number>();
  for (const s of parseProm(typeof text === "string" ? text : "")) {
    if (s.name !== "apiserver_request_total" || !COUNTED_RESOURCES.has(s.labels.resource ?? "") || s.labels.verb === "WATCH") continue;
    const key = `${s.labels.verb} ${s.labels.resource}${s.labels.subresource ? `/${s.labels.subresource}` : ""}`;
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

/**
 * The controller's own count of the requests it sent (airollout_controller_api_requests_total,
 * counted in its client) to the per-rollout resources, by `VERB resource`.
 */
function clientRequests(samples: Sample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== "airollout_controller_api_requests_total") continue;
    const resource = s.labels.resource ?? "";
    if (!COUNTED_RESOURCES.has(resource.split("/")[0]!)) continue;
    const key = `${s.labels.verb} ${resource}`;
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

function requestDelta(before: Map<string, number>, after: Map<string, number>): { total: number; byKind: Record<string, number> } {
  const byKind: Record<string, number> = {};
  let total = 0;
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) {
      byKind[k] = d;
      total += d;
    }
  }
  return { total, byKind };
}

/** Least-squares slope of RSS over time, in MB per minute. */
function slopeMbPerMin(points: { t: number; mb: number }[]): number | undefined {
  if (points.length < 3) return undefined;
  const n = points.length;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const mm = points.reduce((a, p) => a + p.mb, 0) / n;
  const num = points.reduce((a, p) => a + (p.t - mt) * (p.mb - mm), 0);
  const den = points.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return den === 0 ? undefined : (num / den) * 60_000;
}

// ---------------------------------------------------------------- objects

/**
 * One rollout as a new user writes it: endpoint versions, 10% then an indefinite pause, created
 * the way `kubectl apply` creates it (with its last-applied-configuration annotation).
 */
function rollout(namespace: string, name: string, backend: string): unknown {
  const applied = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace, labels: { app: "triage", bench: "scale" } },
    spec: {
      stable: { version: "v1", endpoint: `${backend}/stable`, config: { model: "small", temperature: 0.2, prompt: "Classify the ticket's intent and urgency. Answer JSON." } },
      candidate: { version: "v2", endpoint: `${backend}/candidate`, config: { model: "large", temperature: 0.2, prompt: "Classify intent and urgency; summarise in one sentence. Answer JSON." } },
      traffic: { stickyBy: "header:x-tenant-id", maxBodyBytes: 262144 },
      shadow: {
        sampleRate: 1,
        minSamples: 200,
        maxMismatchRate: 0.05,
        compare: { ignore: ["$.id", "$.created"], tolerances: [{ path: "$.confidence", relative: 0.03 }], labels: ["$.intent", "$.urgency"], text: [{ path: "$.summary", minSimilarity: 0.8 }] },
      },
      strategy: { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }] },
    },
  };
  return { ...applied, metadata: { ...applied.metadata, annotations: { "kubectl.kubernetes.io/last-applied-configuration": `${JSON.stringify(applied)}\n` } } };
}

/** Creates N rollouts with bounded parallelism; returns objects per second. */
async function createRollouts(client: KubeClient, namespace: string, n: number, backend: string): Promise<number> {
  await client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
  const t0 = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const body = rollout(namespace, `triage-${String(i).padStart(5, "0")}`, backend);
      for (let attempt = 0; ; attempt++) {
        try {
          await client.create(rolloutsPath(namespace), body);
          break;
        } catch (err) {
          // A loaded API server may time out or throttle; a few retries, then the run fails.
          if (attempt >= 4 || (err as { status?: number }).status === 409) throw err;
          await sleep(500 * (attempt + 1));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CREATE_CONCURRENCY, n) }, worker));
  return round(n / ((Date.now() - t0) / 1000));
}

interface Listed {
  metadata: { generation?: number };
  status?: { phase?: string; observedGeneration?: number };
}

/** Counts the rollouts of a namespace by phase, for the ones whose status is for their generation. */
async function phasesFromApi(client: KubeClient, namespace: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let token: string | undefined;
  do {
    const page = await client.get<{ items: Listed[]; metadata: { continue?: string } }>(rolloutsPath(namespace), { limit: 500, ...(token ? { continue: token } : {}) });
    for (const o of page.items) {
      const current = o.status?.observedGeneration === o.metadata.generation;
      const k = current ? (o.status?.phase ?? "none") : "stale";
      out[k] = (out[k] ?? 0) + 1;
    }
    token = page.metadata.continue || undefined;
  } while (token);
  return out;
}

// ---------------------------------------------------------------- child processes

interface Proc {
  child: ChildProcess;
  pid: number;
  startedAt: number;
}

function spawnNode(args: string[], log: string, env: Record<string, string> = {}): Proc {
  return spawnCommand(process.execPath, ["--disable-warning=ExperimentalWarning", ...args], log, env);
}

/** `airollout <args>` exactly as a user runs it (bin/airollout execs Node: same pid, same flags). */
function spawnCli(args: string[], log: string, env: Record<string, string> = {}): Proc {
  return spawnCommand(CLI, args, log, env);
}

/** Every child started, so an interrupted run (Ctrl-C) leaves none behind. */
const children = new Set<ChildProcess>();

function spawnCommand(command: string, args: string[], log: string, env: Record<string, string>): Proc {
  const fd = openSync(log, "a");
  const child = spawn(command, args, { stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  if (!child.pid) throw new Error(`could not start ${args.join(" ")}`);
  children.add(child);
  child.once("exit", () => children.delete(child));
  return { child, pid: child.pid, startedAt: Date.now() };
}

async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.child.once("exit", () => r()));
  p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

function exitedEarly(p: Proc, what: string, log: string): void {
  if (p.child.exitCode !== null || p.child.signalCode !== null) {
    let tail = "";
    try {
      tail = readFileSync(log, "utf8").trimEnd().split("\n").slice(-10).join("\n");
    } catch {
      /* no log */
    }
    throw new Error(`${what} exited (${p.child.exitCode ?? p.child.signalCode}); last lines of ${log}:\n${tail}`);
  }
}

async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000}s`);
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url, { signal: AbortSignal.timeout(20_000) });
  return parseProm(await res.text());
}

// ---------------------------------------------------------------- the run

interface Ctx {
  cp: ControlPlaneState;
  client: KubeClient;
  dir: string;
  backend: string;
  soakSeconds: number;
  settleSeconds: number;
  /** How long a controller may take to initialise one size before its figures are taken as they are. */
  initTimeoutSeconds: number;
  errors: string[];
}

/** RSS of an informer-only process once its first list is in memory and it has settled. */
async function informerRss(ctx: Ctx, role: string, namespace: string, n: number): Promise<number | undefined> {
  const log = join(ctx.dir, `${role}-${namespace}.log`);
  const p = spawnNode([SELF, "--role", role, "--kubeconfig", ctx.cp.kubeconfig, "--namespace", namespace], log);
  try {
    await waitUntil(`${role} on ${n} rollouts`, () => {
      exitedEarly(p, role, log);
      return readFileSync(log, "utf8").includes(`{"synced":${n}}`);
    }, 600_000);
    await sleep(ctx.settleSeconds * 1000);
    return rssMb(p.pid);
  } finally {
    await stopProc(p);
  }
}

interface ControllerRun {
  n: number;
  create_per_second: number;
  /** Until all were initialised; undefined when they were not within the init timeout (see initialised). */
  init_seconds: number | undefined;
  /** Rollouts Paused (the controller's gauge) when the figures were taken. */
  initialised: number;
  all_paused_seconds: number;
  cpu_ms_per_rollout_init: Record<string, number | undefined>;
  load_average_at_init: number[];
  rss_mb_initialised: number | undefined;
  rss_mb_settled: number | undefined;
  rss_mb_peak: number;
  /** When the peak was seen, from the spawn (sampled every 2 s while initialising). */
  rss_mb_peak_at_seconds: number;
  /** What V8 reported in the scrape that saw the peak: its heap (used, total) and memory outside it. */
  memory_mb_at_peak: Record<string, number>;
  heap_used_mb_settled: number | undefined;
  reconcile_passes: number;
  reconcile_p50_ms: number | undefined;
  reconcile_p99_ms: number | undefined;
  api_requests_per_rollout_init: number;
  api_requests_init: Record<string, number>;
  /** The same, counted by the controller's client: the figure the write reductions are judged by. */
  client_requests_per_rollout_init: number | undefined;
  client_requests_init: Record<string, number>;
  phases_from_api: Record<string, number>;
  baseline: { client_node_informer_rss_mb: number | undefined; airollout_informer_rss_mb: number | undefined };
  soak?: Soak;
  restart?: Restart;
}

/**
 * A controller restarted on rollouts it already initialised (an upgrade, a crash, a new leader):
 * how long until every rollout has had its pass, and what that cost the API server.
 */
interface Restart {
  /** From spawn until every rollout had a reconcile pass and the queue was empty; undefined past the timeout. */
  seconds: number | undefined;
  reconcile_passes: number;
  rss_mb_peak: number;
  rss_mb_settled: number | undefined;
  api_requests_per_rollout: number;
  api_requests: Record<string, number>;
  cpu_ms_per_rollout: Record<string, number | undefined>;
}

interface Soak {
  seconds: number;
  rss_mb_start: number | undefined;
  rss_mb_end: number | undefined;
  rss_slope_mb_per_min: number | undefined;
  cpu_percent: number | undefined;
  reconcile_passes: number;
  resyncs_seen: number;
  api_requests: Record<string, number>;
  api_requests_per_rollout_per_resync: number | undefined;
  client_requests_per_rollout_per_resync: number | undefined;
}

/** Runs the controller on one namespace of n rollouts: time to initialise all, memory, requests. */
async function controllerRun(ctx: Ctx, n: number, namespace: string, createRate: number, soak: boolean): Promise<ControllerRun> {
  const baseline = {
    client_node_informer_rss_mb: await informerRss(ctx, "client-node-informer", namespace, n),
    airollout_informer_rss_mb: await informerRss(ctx, "airollout-informer", namespace, n),
  };
  const before = await apiRequests(ctx.client);
  const { p, log, metricsUrl } = await startController(ctx, namespace, `controller-${namespace}.log`);
  try {
    let peak = 0;
    let peakAt = p.startedAt;
    let atPeak: Record<string, number> = {};
    let allPausedAt: number | undefined;
    let cpu: ReturnType<typeof cpuOf> | undefined;
    let paused = 0;
    let initialisedAt: number | undefined;
    // Initialised: every rollout Paused (the controller's phase gauge) and its queue empty, so the
    // writes that follow the phase change (the last conditions) are in as well. Past the timeout
    // the figures are taken as they are, with the count initialised so far (never a pass).
    const initDone = waitUntil(`controller initialising ${n} rollouts`, async () => {
      exitedEarly(p, "controller", log);
      const rss = rssMb(p.pid) ?? 0;
      let samples: Sample[];
      try {
        samples = await scrape(metricsUrl);
      } catch {
        return false; // not listening yet
      }
      if (rss > peak) [peak, peakAt, atPeak] = [rss, Date.now(), memoryOf(samples)];
      // From the first answer on: Node's start-up (loading modules) is not a per-rollout cost.
      cpu ??= cpuOf(ctx, p.pid);
      paused = sum(samples, "airollout_controller_rollout_phase", (l) => l.phase === "Paused");
      if (paused >= n) allPausedAt ??= Date.now();
      return paused >= n && sum(samples, "airollout_controller_queue_depth") === 0;
    }, ctx.initTimeoutSeconds * 1000, 2000).then(
      () => (initialisedAt = Date.now()),
      (err: unknown) => ctx.errors.push(`${n} rollouts: ${(err as Error).message} (${paused} of ${n} Paused)`),
    );
    await initDone;
    const initSeconds = initialisedAt === undefined ? undefined : (initialisedAt - p.startedAt) / 1000;
    const cpuInit = cpuOf(ctx, p.pid);
    const rssInitialised = rssMb(p.pid);
    const afterInit = await apiRequests(ctx.client);
    const phases = await phasesFromApi(ctx.client, namespace);
    if (initSeconds !== undefined && phases.Paused !== n) ctx.errors.push(`${n} rollouts: the controller reported all Paused, the API server shows ${JSON.stringify(phases)}`);
    await sleep(ctx.settleSeconds * 1000);
    const settled = await scrape(metricsUrl);
    const init = requestDelta(before, afterInit);
    // Everything the controller sent since its start was for initialising (and its first list).
    const clientInit = requestDelta(new Map(), clientRequests(settled));
    const run: ControllerRun = {
      n,
      create_per_second: createRate,
      init_seconds: initSeconds === undefined ? undefined : round(initSeconds),
      initialised: paused,
      all_paused_seconds: round(((allPausedAt ?? Date.now()) - p.startedAt) / 1000),
      // CPU spent per rollout while initialising: what the figures cost apart from the machine's load.
      cpu_ms_per_rollout_init: cpuPerRollout(cpu, cpuInit, n),
      load_average_at_init: loadavg().map((l) => round(l, 2)),
      rss_mb_initialised: rssInitialised,
      rss_mb_settled: rssMb(p.pid),
      rss_mb_peak: Math.max(peak, rssInitialised ?? 0),
      rss_mb_peak_at_seconds: round((peakAt - p.startedAt) / 1000),
      memory_mb_at_peak: atPeak,
      heap_used_mb_settled: round(sum(settled, "airollout_controller_process_nodejs_heap_size_used_bytes") / 2 ** 20),
      reconcile_passes: sum(settled, "airollout_controller_reconcile_total"),
      reconcile_p50_ms: msOf(histogramQuantile(settled, "airollout_controller_reconcile_duration_seconds", 0.5)),
      reconcile_p99_ms: msOf(histogramQuantile(settled, "airollout_controller_reconcile_duration_seconds", 0.99)),
      // Per rollout initialised: a run stopped by its timeout counts what it did.
      api_requests_per_rollout_init: round(init.total / Math.max(paused, 1), 2),
      api_requests_init: init.byKind,
      client_requests_per_rollout_init: clientInit.total > 0 && paused > 0 ? round(clientInit.total / paused, 2) : undefined,
      client_requests_init: clientInit.byKind,
      phases_from_api: phases,
      baseline,
    };
    if (soak) run.soak = await soakRun(ctx, { p, n, metricsUrl, log, start: settled });
    await stopProc(p);
    if (n > 1) run.restart = await restartRun(ctx, n, namespace);
    return run;
  } finally {
    await stopProc(p);
  }
}

/**
 * Starts the controller again on the rollouts the previous one initialised and times it until
 * each has had a pass (its reconcile counter reaches N) and its queue is empty. Nothing changed
 * while it was down, so a pass should find status current and write nothing.
 */
async function restartRun(ctx: Ctx, n: number, namespace: string): Promise<Restart> {
  const before = await apiRequests(ctx.client);
  const { p, log, metricsUrl } = await startController(ctx, namespace, `controller-${namespace}-restart.log`);
  try {
    let peak = 0;
    let passes = 0;
    let cpu: ReturnType<typeof cpuOf> | undefined;
    let doneAt: number | undefined;
    await waitUntil(`controller restarted on ${n} rollouts`, async () => {
      exitedEarly(p, "controller (restart)", log);
      peak = Math.max(peak, rssMb(p.pid) ?? 0);
      let samples: Sample[];
      try {
        samples = await scrape(metricsUrl);
      } catch {
        return false;
      }
      cpu ??= cpuOf(ctx, p.pid);
      passes = sum(samples, "airollout_controller_reconcile_total");
      return passes >= n && sum(samples, "airollout_controller_queue_depth") === 0;
    }, ctx.initTimeoutSeconds * 1000, 1000).then(
      () => (doneAt = Date.now()),
      (err: unknown) => ctx.errors.push(`${n} rollouts, restart: ${(err as Error).message} (${passes} passes)`),
    );
    const cpuDone = cpuOf(ctx, p.pid);
    const requests = requestDelta(before, await apiRequests(ctx.client));
    await sleep(ctx.settleSeconds * 1000);
    return {
      seconds: doneAt === undefined ? undefined : round((doneAt - p.startedAt) / 1000),
      reconcile_passes: passes,
      rss_mb_peak: peak,
      rss_mb_settled: rssMb(p.pid),
      api_requests_per_rollout: round(requests.total / n, 2),
      api_requests: requests.byKind,
      cpu_ms_per_rollout: cpuPerRollout(cpu, cpuDone, n),
    };
  } finally {
    await stopProc(p);
  }
}

/** `airollout controller` on one namespace, as the bench runs it, with its metrics on a port of its own. */
async function startController(ctx: Ctx, namespace: string, logName: string): Promise<{ p: Proc; log: string; metricsUrl: string }> {
  const port = await freePort();
  const log = join(ctx.dir, logName);
  const p = spawnCli(["controller", "--namespace", namespace, "--environments", "none", "--leader-elect", "false", "--metrics-port", String(port)], log, { KUBECONFIG: ctx.cp.kubeconfig });
  return { p, log, metricsUrl: `http://127.0.0.1:${port}/metrics` };
}

/** CPU per rollout (ms) of the controller, the API server and etcd between two cpuOf readings. */
function cpuPerRollout(from: ReturnType<typeof cpuOf> | undefined, to: ReturnType<typeof cpuOf>, n: number): Record<string, number | undefined> {
  return { controller: perRollout(from?.controller, to.controller, n), kube_apiserver: perRollout(from?.apiserver, to.apiserver, n), etcd: perRollout(from?.etcd, to.etcd, n) };
}

/** CPU time so far of the controller and of the control plane's API server and etcd. */
function cpuOf(ctx: Ctx, controllerPid: number): { controller?: number; apiserver?: number; etcd?: number } {
  return { controller: cpuMs(controllerPid), apiserver: cpuMs(ctx.cp.processes["kube-apiserver"]?.pid), etcd: cpuMs(ctx.cp.processes.etcd?.pid) };
}

/** The controller's own memory figures (prom-client's process metrics), in MB. */
function memoryOf(samples: Sample[]): Record<string, number> {
  const mb = (name: string) => round(sum(samples, `airollout_controller_${name}`) / 2 ** 20);
  return { heap_used: mb("process_nodejs_heap_size_used_bytes"), heap_total: mb("process_nodejs_heap_size_total_bytes"), external: mb("process_nodejs_external_memory_bytes") };
}

const perRollout = (a: number | undefined, b: number | undefined, n: number) => (a === undefined || b === undefined ? undefined : round((b - a) / n, 2));

const msOf = (s: number | undefined) => (s === undefined ? undefined : round(s * 1000, 2));

/** Watches the controller idle (resyncs only) for the soak: RSS slope, CPU, requests per resync. */
async function soakRun(ctx: Ctx, s: { p: Proc; n: number; metricsUrl: string; log: string; start: Sample[] }): Promise<Soak> {
  const { p, n, metricsUrl, start } = s;
  const before = await apiRequests(ctx.client);
  const cpu0 = cpuMs(p.pid);
  const t0 = Date.now();
  const points: { t: number; mb: number }[] = [];
  while (Date.now() - t0 < ctx.soakSeconds * 1000) {
    exitedEarly(p, "controller (soak)", s.log);
    const mb = rssMb(p.pid);
    if (mb !== undefined) points.push({ t: Date.now() - t0, mb });
    await sleep(10_000);
  }
  const seconds = (Date.now() - t0) / 1000;
  const cpu1 = cpuMs(p.pid);
  const end = await scrape(metricsUrl);
  const requests = requestDelta(before, await apiRequests(ctx.client));
  const passes = sum(end, "airollout_controller_reconcile_total") - sum(start, "airollout_controller_reconcile_total");
  // A resync queues every rollout once: passes / n is how many resyncs the soak saw.
  const resyncs = passes / n;
  return {
    seconds: round(seconds),
    rss_mb_start: points[0]?.mb,
    rss_mb_end: points.at(-1)?.mb,
    rss_slope_mb_per_min: ((s) => (s === undefined ? undefined : round(s, 3)))(slopeMbPerMin(points)),
    cpu_percent: cpu0 !== undefined && cpu1 !== undefined ? round(((cpu1 - cpu0) / (seconds * 1000)) * 100, 2) : undefined,
    reconcile_passes: passes,
    resyncs_seen: round(resyncs, 2),
    api_requests: requests.byKind,
    api_requests_per_rollout_per_resync: resyncs >= 0.5 ? round(requests.total / passes, 3) : undefined,
    client_requests_per_rollout_per_resync: resyncs >= 0.5 ? round(requestDelta(clientRequests(start), clientRequests(end)).total / passes, 3) : undefined,
  };
}

// ---------------------------------------------------------------- gateway

interface GatewaySide {
  rollouts: number;
  /** Once the first list is in and settled, before any traffic. */
  rss_mb_watched: number | undefined;
  /** Read right after this side's own last round (each side alike: none idles through the other's round first). */
  rss_mb_after_traffic: number | undefined;
  /** After the rounds and a settle both sides spend idle. */
  rss_mb_settled_after_traffic: number | undefined;
  /** V8 heap used/total from the gateway's own metrics: used counts garbage not yet collected. */
  heap_used_mb_watched: number | undefined;
  heap_total_mb_watched: number | undefined;
  heap_used_mb_after_traffic: number | undefined;
  heap_total_mb_after_traffic: number | undefined;
  /** V8's young generation (new space) as committed after the traffic: V8 sizes it from what survives. */
  new_space_mb_after_traffic: number | undefined;
  cpu_us_per_request: number | undefined;
  p50_ms: number | undefined;
  p99_ms: number | undefined;
  errors: number;
}

/** Fixed-rate traffic to one rollout through one gateway; CPU per request from /proc. */
async function drive(url: string, pid: number, seconds: number, rate: number): Promise<{ cpuUs: number | undefined; p50: number; p99: number; errors: number }> {
  const { default: autocannon } = await import("autocannon");
  const before = cpuMs(pid);
  const r = (await autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json", "x-tenant-id": "t1" },
    body: JSON.stringify({ ticket: { id: 1, subject: "Late delivery", body: "My order arrived two weeks late." } }),
    connections: 8,
    overallRate: rate,
    duration: seconds,
  })) as { requests: { total: number }; latency: { p50: number; p99: number }; errors: number; timeouts: number; non2xx: number };
  const after = cpuMs(pid);
  const cpuUs = before !== undefined && after !== undefined && r.requests.total > 0 ? ((after - before) * 1000) / r.requests.total : undefined;
  return { cpuUs, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

/** A gateway's V8 heap used and total (MB) from its /metrics; undefined when the scrape fails (missing, not zero). */
async function gatewayHeap(url: string): Promise<{ used: number | undefined; total: number | undefined; newSpace: number | undefined }> {
  try {
    const samples = await scrape(url);
    const mb = (name: string) => {
      const v = samples.find((x) => x.name === name)?.value;
      return v !== undefined && Number.isFinite(v) ? round(v / 2 ** 20) : undefined;
    };
    const space = samples.find((x) => x.name === "airollout_gateway_process_nodejs_heap_space_size_total_bytes" && x.labels.space === "new")?.value;
    return {
      used: mb("airollout_gateway_process_nodejs_heap_size_used_bytes"),
      total: mb("airollout_gateway_process_nodejs_heap_size_total_bytes"),
      newSpace: space !== undefined && Number.isFinite(space) ? round(space / 2 ** 20) : undefined,
    };
  } catch {
    return { used: undefined, total: undefined, newSpace: undefined };
  }
}

/**
 * Gateway RSS, heap and per-request cost with G rollouts watched against 1, same traffic, in
 * turns. Memory is judged idle (after the first list) and right after traffic, each side read the
 * same way; the settled reading and the heap figures say where a difference sits.
 */
async function gatewayRun(ctx: Ctx, g: number, quick: boolean): Promise<Record<string, unknown>> {
  const sides = [
    { rollouts: 1, namespace: "gw-1" },
    { rollouts: g, namespace: `gw-${g}` },
  ];
  for (const s of sides) await createRollouts(ctx.client, s.namespace, s.rollouts, ctx.backend);
  // Four distinct ports, taken one after another (two sides asking at once could be given the same).
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < 2 * sides.length; i++) {
    const p = await freePort(taken);
    taken.add(p);
    ports.push(p);
  }
  const procs = await Promise.all(
    sides.map(async (s, k) => {
      const [port, metricsPort] = [ports[2 * k]!, ports[2 * k + 1]!];
      const log = join(ctx.dir, `gateway-${s.namespace}.log`);
      const stateDir = mkdtempSync(join(ctx.dir, `gw-state-${s.namespace}-`));
      const p = spawnCli(["gateway", "--namespace", s.namespace, "--port", String(port), "--metrics-port", String(metricsPort), "--host", "127.0.0.1", "--state-dir", stateDir], log, { KUBECONFIG: ctx.cp.kubeconfig });
      return { ...s, p, log, url: `http://127.0.0.1:${port}/hooks/${s.namespace}/triage-00000/triage`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
    }),
  );
  try {
    for (const s of procs) {
      // Ready when the measured rollout routes (the first list is in).
      await waitUntil(`gateway watching ${s.rollouts} rollouts`, async () => {
        exitedEarly(s.p, "gateway", s.log);
        try {
          const res = await fetch(s.url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
          return res.status === 200;
        } catch {
          return false;
        }
      }, 300_000);
    }
    await sleep(ctx.settleSeconds * 1000);
    // RSS first, then the scrape (which itself makes the per-rollout series a Prometheus scrape makes).
    const watched = procs.map((s) => rssMb(s.p.pid));
    const heapWatched = await Promise.all(procs.map((s) => gatewayHeap(s.metricsUrl)));
    const rounds = quick ? 2 : 4;
    const seconds = quick ? 5 : 10;
    const rate = 200;
    const runs: { cpuUs: number | undefined; p50: number; p99: number; errors: number }[][] = [[], []];
    const afterOwn: (number | undefined)[] = [];
    for (let i = 0; i < rounds; i++) {
      for (const [k, s] of procs.entries()) {
        runs[k]!.push(await drive(s.url, s.p.pid, seconds, rate));
        afterOwn[k] = rssMb(s.p.pid);
      }
    }
    const heapAfter = await Promise.all(procs.map((s) => gatewayHeap(s.metricsUrl)));
    await sleep(ctx.settleSeconds * 1000);
    const settled = procs.map((s) => rssMb(s.p.pid));
    // Best of the rounds, as bench/gateway.ts: outside load on a shared machine only ever adds.
    const min = (xs: (number | undefined)[]) => {
      const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
      return v.length === xs.length && v.length > 0 ? Math.min(...v) : undefined;
    };
    const out: GatewaySide[] = procs.map((s, k) => ({
      rollouts: s.rollouts,
      rss_mb_watched: watched[k],
      rss_mb_after_traffic: afterOwn[k],
      rss_mb_settled_after_traffic: settled[k],
      heap_used_mb_watched: heapWatched[k]?.used,
      heap_total_mb_watched: heapWatched[k]?.total,
      heap_used_mb_after_traffic: heapAfter[k]?.used,
      heap_total_mb_after_traffic: heapAfter[k]?.total,
      new_space_mb_after_traffic: heapAfter[k]?.newSpace,
      cpu_us_per_request: ((v) => (v === undefined ? undefined : round(v)))(min(runs[k]!.map((r) => r.cpuUs))),
      p50_ms: min(runs[k]!.map((r) => r.p50)),
      p99_ms: min(runs[k]!.map((r) => r.p99)),
      errors: runs[k]!.reduce((a, r) => a + r.errors, 0),
    }));
    const ratio = (f: (s: GatewaySide) => number | undefined) => {
      const [a, b] = [f(out[0]!), f(out[1]!)];
      return a !== undefined && b !== undefined && a > 0 ? round(b / a, 3) : undefined;
    };
    if (out.some((s) => s.errors > 0)) ctx.errors.push(`gateway: ${out.map((s) => `${s.rollouts} rollouts ${s.errors} failed requests`).join(", ")}`);
    return {
      traffic: `${rate} req/s to one rollout, ${seconds}s x ${rounds} rounds in turns, best round`,
      one: out[0],
      many: out[1],
      rss_idle_ratio: ratio((s) => s.rss_mb_watched),
      rss_ratio: ratio((s) => s.rss_mb_after_traffic),
      rss_settled_ratio: ratio((s) => s.rss_mb_settled_after_traffic),
      heap_used_idle_ratio: ratio((s) => s.heap_used_mb_watched),
      heap_used_after_traffic_ratio: ratio((s) => s.heap_used_mb_after_traffic),
      cpu_per_request_ratio: ratio((s) => s.cpu_us_per_request),
      p99_ratio: ratio((s) => s.p99_ms),
    };
  } finally {
    await Promise.all(procs.map((s) => stopProc(s.p)));
  }
}

// ---------------------------------------------------------------- orchestration

function sizes(quick: boolean): number[] {
  const raw = process.env.AIROLLOUT_SCALE_N ?? (quick ? "200,1000" : "1000,5000,10000");
  const ns = raw.split(",").map((s) => Number(s.trim()));
  if (ns.length === 0 || ns.some((n) => !Number.isInteger(n) || n < 1 || n > 50_000)) throw new Error(`AIROLLOUT_SCALE_N: ${raw} is not a list of whole numbers from 1 to 50000`);
  return [...new Set([1, ...ns])].sort((a, b) => a - b);
}

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name}: ${raw} is not a whole number of 0 or more`);
  return v;
}

/** Starts a backend on loopback (bench/gateway.ts's role) for the endpoints. */
function startBackend(dir: string): Promise<{ proc: Proc; url: string }> {
  const log = join(dir, "backend.log");
  const proc = spawnNode([join(ROOT, "bench", "gateway.ts"), "--role", "backend"], log);
  return waitUntil("backend", () => {
    exitedEarly(proc, "backend", log);
    return /\{"ready":\d+\}/.test(readFileSync(log, "utf8"));
  }, 30_000, 200).then(() => ({ proc, url: `http://127.0.0.1:${/\{"ready":(\d+)\}/.exec(readFileSync(log, "utf8"))![1]}` }));
}

/** What a run has measured so far: printed at its end, or when it is stopped (SIGINT, SIGTERM). */
const progress: { out: Record<string, unknown>; runs: ControllerRun[]; gateway?: Record<string, unknown>; errors: string[]; t0: number; printed: boolean } = { out: {}, runs: [], errors: [], t0: Date.now(), printed: false };

/** Prints the one JSON line with what was measured (once). */
function printSummary(): void {
  if (progress.printed) return;
  progress.printed = true;
  Object.assign(progress.out, summarize(progress.runs, progress.gateway, progress.errors), { wall_seconds: round((Date.now() - progress.t0) / 1000) });
  process.stdout.write(`${JSON.stringify(progress.out)}\n`);
}

async function orchestrate(quick: boolean): Promise<void> {
  const ns = sizes(quick);
  const soakSeconds = positiveEnv("AIROLLOUT_SCALE_SOAK_SECONDS", quick ? 60 : 600);
  const gatewayN = positiveEnv("AIROLLOUT_SCALE_GATEWAY_N", 1000);
  // The soak runs on 1,000 rollouts when that size is measured (the largest otherwise), and the
  // gateway part right after it: the long starts of the largest sizes come last.
  const soakN = positiveEnv("AIROLLOUT_SCALE_SOAK_N", ns.includes(1000) ? 1000 : ns.at(-1)!);
  const initTimeoutSeconds = positiveEnv("AIROLLOUT_SCALE_INIT_TIMEOUT_SECONDS", 3600);
  const dir = mkdtempSync(join(tmpdir(), "airollout-scale-"));
  const load = loadavg().map((l) => round(l, 2));
  const errors = progress.errors;
  const out: Record<string, unknown> = progress.out;
  Object.assign(out, {
    controller_command: "airollout controller --namespace scale-<N> --environments none --leader-elect false",
    rollout: "endpoint versions; steps setWeight 10, pause (indefinite), setWeight 100; created as kubectl apply does (last-applied annotation)",
    api_requests_counted: [...COUNTED_RESOURCES],
    mode: quick ? "quick" : "full", sizes: ns.filter((n) => n > 1), soak_seconds: soakSeconds, soak_rollouts: soakN, init_timeout_seconds: initTimeoutSeconds, load_average_at_start: load, cores: availableParallelism(), node: process.version });
  const runs = progress.runs;
  let backend: { proc: Proc; url: string } | undefined;
  try {
    const cp = await up({ dir: join(dir, "cp"), ownerPid: process.pid, withoutControllerManager: true, log: (l) => process.stderr.write(`[scale] ${l}\n`) });
    await installCRD(cp);
    backend = await startBackend(dir);
    const ctx: Ctx = { cp, client: new KubeClient(loadKubeConfig(cp.kubeconfig)), dir, backend: backend.url, soakSeconds, settleSeconds: 10, initTimeoutSeconds, errors };
    const gatewayPart = async () => {
      if (gatewayN === 0) return;
      try {
        process.stderr.write(`[scale] gateway: 1 vs ${gatewayN} rollouts watched\n`);
        progress.gateway = await gatewayRun(ctx, gatewayN, quick);
        process.stderr.write(`[scale] ${JSON.stringify(progress.gateway)}\n`);
      } catch (err) {
        errors.push(`gateway: ${(err as Error).message}`);
      }
    };
    for (const n of ns) {
      try {
        const namespace = `scale-${n}`;
        process.stderr.write(`[scale] creating ${n} rollouts\n`);
        const rate = await createRollouts(ctx.client, namespace, n, ctx.backend);
        process.stderr.write(`[scale] ${n} rollouts created (${rate}/s); informers, then the controller\n`);
        const run = await controllerRun(ctx, n, namespace, rate, n === soakN && n > 1 && soakSeconds > 0);
        runs.push(run);
        process.stderr.write(`[scale] ${JSON.stringify(run)}\n`);
      } catch (err) {
        errors.push(`${n} rollouts: ${(err as Error).message}`);
      }
      if (n === soakN) await gatewayPart();
    }
    if (!ns.includes(soakN)) await gatewayPart();
  } catch (err) {
    errors.push((err as Error).message);
  } finally {
    if (backend) await stopProc(backend.proc);
    await down({ dir: join(dir, "cp"), purge: !process.env.AIROLLOUT_SCALE_KEEP });
  }
  if (process.env.AIROLLOUT_SCALE_KEEP) out.logs = dir;
  printSummary();
  if (errors.length > 0) process.exitCode = 1;
}

/** The figures, per-object memory against the 1-rollout run, and the targets judged honestly. */
function summarize(runs: ControllerRun[], gateway: Record<string, unknown> | undefined, errors: string[]): Record<string, unknown> {
  const one = runs.find((r) => r.n === 1);
  const perObjectKb = (r: ControllerRun, f: (r: ControllerRun) => number | undefined) => {
    const [a, b] = [one && f(one), f(r)];
    return a !== undefined && b !== undefined && r.n > 1 ? round(((b - a) * 1024) / (r.n - 1), 2) : undefined;
  };
  const controller = runs.map((r) => ({
    ...r,
    memory_per_object_kb: {
      controller_rss: perObjectKb(r, (x) => x.rss_mb_settled),
      controller_heap_used: perObjectKb(r, (x) => x.heap_used_mb_settled),
      client_node_informer_rss: perObjectKb(r, (x) => x.baseline.client_node_informer_rss_mb),
      airollout_informer_rss: perObjectKb(r, (x) => x.baseline.airollout_informer_rss_mb),
    },
    rss_vs_client_node_informer: r.rss_mb_settled && r.baseline.client_node_informer_rss_mb ? round(r.rss_mb_settled / r.baseline.client_node_informer_rss_mb, 2) : undefined,
  }));
  const largestInit = [...runs].reverse().find((r) => r.n > 1 && r.client_requests_per_rollout_init !== undefined);
  return {
    // Requests a new rollout costs the controller (counted in its client), this run against the
    // figure recorded before the write reductions (same bench, not this run: the code is gone).
    requests_per_new_rollout: {
      before: { per_rollout: BEFORE.perRollout, by_kind: BEFORE.byKind, measured: BEFORE.measured },
      after: largestInit ? { per_rollout: largestInit.client_requests_per_rollout_init, rollouts: largestInit.n, by_kind: largestInit.client_requests_init } : null,
    },
    controller,
    gateway: gateway ?? null,
    targets: { ...TARGETS, soak: "slope x soak length < 2% of the RSS at the soak's start, over at least 600 s" },
    meets_targets: judgeTargets(runs, gateway, errors),
    errors,
  };
}

/** Each target met or not; missing evidence (a size not run, no soak, no gateway figures) is never a pass. */
function judgeTargets(runs: ControllerRun[], gateway: Record<string, unknown> | undefined, errors: string[]): Record<string, boolean> {
  const many = gateway?.many as GatewaySide | undefined;
  const gwOk = (k: string) => many?.rollouts === 1000 && typeof gateway?.[k] === "number" && (gateway[k] as number) <= TARGETS.gateway_ratio_max;
  return {
    ...judgeController(runs),
    gateway_memory_1000_within_10pct: gwOk("rss_ratio"),
    gateway_memory_idle_1000_within_10pct: gwOk("rss_idle_ratio"),
    gateway_cpu_per_request_1000_within_10pct: gwOk("cpu_per_request_ratio"),
    no_errors: errors.length === 0,
  };
}

/** The controller's targets: RSS and start at 10,000 rollouts, the restart, the soak. */
function judgeController(runs: ControllerRun[]): Record<string, boolean> {
  const at10k = runs.find((r) => r.n === 10_000);
  const soak = runs.find((r) => r.soak)?.soak;
  const limit = TARGETS.rss_mb_at_10000;
  // RSS at 10,000: the peak while initialising and once settled (and after a soak there, if any),
  // of a controller that initialised them all: a start cut short by its timeout is partial evidence.
  const rssOk = at10k?.init_seconds !== undefined && at10k.rss_mb_peak < limit && (at10k.rss_mb_settled ?? Infinity) < limit && (at10k.soak?.rss_mb_end ?? 0) < limit;
  const initOk = at10k?.init_seconds !== undefined && at10k.init_seconds <= TARGETS.init_seconds_at_10000;
  // After a restart (upgrade, crash, failover) on rollouts already initialised: every one had its pass.
  const restartOk = at10k?.restart?.seconds !== undefined && at10k.restart.seconds <= TARGETS.init_seconds_at_10000 && at10k.restart.rss_mb_peak < limit;
  // No growth: the fitted slope over the soak adds less than 2% of the starting RSS.
  const soakOk = soak !== undefined && soak.seconds >= 600 && soak.rss_slope_mb_per_min !== undefined && soak.rss_mb_start !== undefined && soak.rss_slope_mb_per_min * (soak.seconds / 60) < 0.02 * soak.rss_mb_start;
  return {
    rss_at_10000: rssOk,
    init_within_2_minutes_at_10000: initOk,
    all_reconciled_within_2_minutes_of_a_restart_at_10000: restartOk,
    no_growth_over_soak: soakOk,
  };
}

// ---------------------------------------------------------------- informer-only roles

async function informerRole(kind: string, kubeconfig: string, namespace: string): Promise<void> {
  const path = rolloutsPath(namespace);
  if (kind === "client-node-informer") {
    const k8s = await import("@kubernetes/client-node");
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    const api = kc.makeApiClient(k8s.CustomObjectsApi);
    const list = () => api.listNamespacedCustomObject({ group: "airollout.dev", version: "v1alpha1", namespace, plural: "airollouts" }) as Promise<KubernetesListObject<KubernetesObject>>;
    const informer = k8s.makeInformer(kc, path, list);
    informer.on("error", (err: unknown) => process.stderr.write(`informer error: ${String(err)}\n`));
    await informer.start();
    process.stdout.write(`${JSON.stringify({ synced: informer.list().length })}\n`);
  } else if (kind === "airollout-informer") {
    const { Informer } = await import("../controller/src/kube/informer.ts");
    const { pino } = await import("pino");
    const client = new KubeClient(loadKubeConfig(kubeconfig));
    const informer: InstanceType<typeof Informer<KubeObject>> = new Informer<KubeObject>(client, path, { onUpsert: () => {}, onDelete: () => {}, onSync: () => process.stdout.write(`${JSON.stringify({ synced: informer.keys().length })}\n`) }, pino({ level: "warn" }));
    informer.start();
  } else {
    throw new Error(`unknown role ${kind}`);
  }
  // Stay up (the parent reads RSS, then stops us).
  setInterval(() => {}, 60_000);
}

const argv = process.argv.slice(2);
const arg = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
if (argv.includes("--role")) {
  process.once("SIGTERM", () => process.exit(0));
  await informerRole(arg("--role")!, arg("--kubeconfig")!, arg("--namespace")!);
} else {
  // The control plane stops by itself when this process exits (its watchdog); children do not.
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      for (const c of children) c.kill("SIGKILL");
      // What was measured before the stop is printed, marked as stopped (never a pass).
      progress.errors.push(`stopped by ${sig} after ${round((Date.now() - progress.t0) / 1000)}s`);
      printSummary();
      process.exit(130);
    });
  }
  await orchestrate(argv.includes("--quick"));
}
