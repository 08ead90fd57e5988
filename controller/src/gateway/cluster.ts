/**
 * The gateway as several processes sharing one port (node:cluster), so that it uses every core
 * the way nginx's `worker_processes auto` does. The primary forks the processes, replaces one
 * that dies and serves the metrics of all of them; each process runs a whole Gateway.
 *
 * Per-rollout state (noise statistics, samples, shadow evidence, circuit breakers, rate limits
 * and concurrency caps without Redis, the shadow queue) is per process, exactly as it is per
 * replica when the gateway runs as several pods. The metrics follow the same rule: the primary
 * exports each process's series with a `gateway_process` label (its index, 0..N-1, kept by a
 * replacement), never summed or averaged in the primary. So every query that reads several
 * gateway replicas right reads several processes right: the controller's `sum(...)` of comparison
 * and mismatch counts adds the processes' evidence, `min(airollout_shadow_judged)` needs every
 * process to have judged, and a ratio gauge (coverage) stays per process. A scrape that cannot
 * reach every serving process fails rather than under-report.
 */
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValue } from "prom-client";

/** The label that tells the processes' series apart. */
export const PROCESS_LABEL = "gateway_process";
/** The environment variable that gives a forked process its index. */
export const PROCESS_ENV = "AIROLLOUT_GATEWAY_PROCESS";

const METRICS_REQUEST = "airollout:metrics-request";
const METRICS_REPLY = "airollout:metrics-reply";
const LISTENING = "airollout:listening";

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

interface MetricsRequest {
  type: typeof METRICS_REQUEST;
  id: number;
}
interface MetricsReply {
  type: typeof METRICS_REPLY;
  id: number;
  metrics?: MetricsJson;
  error?: string;
}
interface Listening {
  type: typeof LISTENING;
  port: number;
}

/**
 * `--workers`: a whole number from 1 to 64, or `auto` for the machine's cores (its
 * availableParallelism). Throws naming the flag.
 */
export function gatewayProcesses(value: string, cores: number): number {
  if (value === "auto") return Math.max(1, Math.min(64, cores));
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 1 || n > 64) throw new Error(`--workers: ${value} is not auto or a whole number from 1 to 64`);
  return n;
}

/**
 * One exposition of every process's metrics: each series gets the process's `gateway_process`
 * label, so none is added to another's; families (HELP, TYPE) appear once.
 */
export function mergeProcessMetrics(perProcess: ReadonlyMap<string, MetricsJson>): Registry {
  const labelled: MetricsJson[] = [];
  for (const [index, metrics] of perProcess) {
    labelled.push(
      metrics.map((m) => ({
        ...m,
        // With distinct labels the "sum" aggregator only groups; it never adds two processes' values.
        aggregator: "sum",
        values: m.values.map((v) => ({ ...v, labels: { ...v.labels, [PROCESS_LABEL]: index } })),
      })),
    );
  }
  return AggregatorRegistry.aggregate(labelled);
}

/** The index of this process in a gateway cluster, or undefined when it is not a cluster worker. */
export function processIndex(): string | undefined {
  return cluster.isWorker ? process.env[PROCESS_ENV] : undefined;
}

/**
 * In a cluster worker: answers the primary's metrics requests with this process's registry, tells
 * the primary the port it listens on, and exits when the primary goes away (a process whose
 * primary died would serve on without anyone to replace it or read its metrics).
 */
export function joinGatewayCluster(registry: Registry, port: number): void {
  if (!cluster.isWorker) return;
  process.on("message", (m: MetricsRequest) => {
    if (m?.type !== METRICS_REQUEST) return;
    registry.getMetricsAsJSON().then(
      (metrics) => process.send?.({ type: METRICS_REPLY, id: m.id, metrics } satisfies MetricsReply),
      (err: unknown) => process.send?.({ type: METRICS_REPLY, id: m.id, error: String(err) } satisfies MetricsReply),
    );
  });
  process.once("disconnect", () => process.exit(0));
  process.send?.({ type: LISTENING, port } satisfies Listening);
}

export interface GatewayClusterOptions {
  processes: number;
  log: Logger;
  /** How long a scrape waits for every process (default 5 s). */
  scrapeTimeoutMs?: number;
  /** Replacements of a process that dies, at most this many a minute before waiting (default 10). */
  restartsPerMinute?: number;
}

interface Pending {
  waiting: Set<Worker>;
  got: Map<string, MetricsJson>;
  done: (err?: Error) => void;
}

/** The primary of a gateway cluster: forks, replaces and scrapes the processes. */
export class GatewayCluster {
  readonly processes: number;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #restartsPerMinute: number;
  readonly #workers = new Map<string, Worker>();
  /** Processes that listen and answer scrapes; one still starting is left out, like an unready replica. */
  readonly #joined = new WeakSet<Worker>();
  readonly #pending = new Map<number, Pending>();
  readonly #restarts: number[] = [];
  #nextId = 0;
  #stopping = false;
  #port: Promise<number> | undefined;
  #portFound: ((port: number) => void) | undefined;
  /** Processes started to replace one that died (tests, logs). */
  replaced = 0;

  constructor(o: GatewayClusterOptions) {
    if (!cluster.isPrimary) throw new Error("GatewayCluster runs in the primary process");
    if (!(Number.isInteger(o.processes) && o.processes >= 1)) throw new Error(`gateway processes must be a positive integer, got ${o.processes}`);
    this.processes = o.processes;
    this.#log = o.log;
    this.#timeoutMs = o.scrapeTimeoutMs ?? 5000;
    this.#restartsPerMinute = o.restartsPerMinute ?? 10;
  }

  /** Forks the processes; resolves with the port once the first listens (they share it). */
  start(): Promise<number> {
    this.#port ??= new Promise<number>((resolve) => (this.#portFound = resolve));
    for (let i = 0; i < this.processes; i++) this.#fork(String(i));
    return this.#port;
  }

  /** The live processes' ids by index (tests, diagnostics). */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries([...this.#workers].map(([i, w]) => [i, w.process.pid]));
  }

  #fork(index: string): void {
    const w = cluster.fork({ [PROCESS_ENV]: index });
    this.#workers.set(index, w);
    w.on("message", (m: MetricsReply | Listening) => {
      if (m?.type === LISTENING) {
        this.#joined.add(w);
        this.#portFound?.(m.port);
      }
      else if (m?.type === METRICS_REPLY) this.#reply(index, w, m);
    });
    w.on("exit", (code, signal) => this.#exited(index, w, code, signal));
  }

  #exited(index: string, w: Worker, code: number | null, signal: string | null): void {
    if (this.#workers.get(index) === w) this.#workers.delete(index);
    // A scrape waiting for it fails: its series are gone, and a partial scrape under-reports.
    for (const p of this.#pending.values()) if (p.waiting.has(w)) p.done(new Error(`gateway process ${index} exited during the scrape`));
    if (this.#stopping) return;
    const now = Date.now();
    while (this.#restarts.length && this.#restarts[0]! < now - 60_000) this.#restarts.shift();
    // A process that dies at once would otherwise be forked in a tight loop: past the budget, the
    // next fork waits until the oldest of the last minute's forks is a minute old.
    const delay = this.#restarts.length >= this.#restartsPerMinute ? Math.max(0, 60_000 - (now - this.#restarts[0]!)) : 0;
    this.#log.error({ process: index, pid: w.process.pid, code, signal, restartInMs: delay }, "gateway process exited; starting a new one");
    setTimeout(() => {
      if (this.#stopping) return;
      this.#restarts.push(Date.now());
      this.replaced++;
      this.#fork(index);
    }, delay);
  }

  #reply(index: string, w: Worker, m: MetricsReply): void {
    const p = this.#pending.get(m.id);
    if (!p || !p.waiting.has(w)) return;
    if (m.error !== undefined || !m.metrics) {
      p.done(new Error(`gateway process ${index}: ${m.error ?? "no metrics"}`));
      return;
    }
    p.waiting.delete(w);
    p.got.set(index, m.metrics);
    if (p.waiting.size === 0) p.done();
  }

  /**
   * The metrics of every serving process, labelled by process; rejects when one of them does not
   * answer in time. A process still starting has no series yet, as a replica that is not ready.
   */
  async metrics(): Promise<string> {
    const id = this.#nextId++;
    const got = new Map<string, MetricsJson>();
    const live = [...this.#workers.values()].filter((w) => this.#joined.has(w) && w.isConnected());
    if (live.length === 0) throw new Error("no gateway process is serving");
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`a gateway process did not answer the scrape within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      const done = (err?: Error) => {
        if (!this.#pending.delete(id)) return;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      this.#pending.set(id, { waiting: new Set(live), got, done });
      for (const w of live) w.send({ type: METRICS_REQUEST, id } satisfies MetricsRequest);
    });
    return mergeProcessMetrics(new Map([...got].sort(([a], [b]) => Number(a) - Number(b)))).metrics();
  }

  /** The exposition's content type. */
  get contentType(): string {
    return Registry.PROMETHEUS_CONTENT_TYPE;
  }

  /** Stops every process (SIGTERM, then SIGKILL after `graceMs`) without replacing it. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    const exits = [...this.#workers.values()].map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.process.exitCode !== null || w.process.signalCode !== null) return resolve();
          w.once("exit", () => resolve());
          w.process.kill("SIGTERM");
          setTimeout(() => (w.process.kill("SIGKILL"), resolve()), graceMs).unref();
        }),
    );
    await Promise.all(exits);
  }
}
