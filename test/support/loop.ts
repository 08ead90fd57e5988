/**
 * The whole decision loop, every part real, on loopback: the gateway process (`airollout gateway`)
 * watching AIRollouts through the API server, loopback backends behind it, a real Prometheus
 * scraping the gateway's and the controller's /metrics every second, the controller process
 * deciding from what Prometheus returns, and a traffic generator sending real webhooks to the
 * gateway.
 *
 *   traffic -> gateway process -> stable | candidate (| shadow copies, noise baseline) backends
 *   gateway /metrics <- Prometheus <- controller process -> AIRollout status -> gateway
 *
 * Nothing here stands in for a part of the loop: the test only chooses how the backends answer
 * and how much traffic flows, and reads the outcome from the API server and Prometheus.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PrometheusProvider } from "../../controller/src/analysis/prometheus.ts";
import { startPrometheus, type TestPrometheus } from "../../controller/src/dev/prometheus.ts";
import { startBackend, type Responder, type TestBackend } from "./backends.ts";
import { CLI, ControllerProcess, NODE, waitFor, type LogLine } from "../integration/helpers.ts";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Log lines kept in memory per process; the full log is on disk. */
const MAX_LINES = 20_000;

/** Where the loop's processes write their logs, for a failed run's post-mortem. */
export const LOG_DIR = join(tmpdir(), "airollout-test-logs");

/** Options of {@link GatewayProcess}. */
export interface GatewayProcessOptions {
  kubeconfig: string;
  /** Namespace watched (default: all). */
  namespace?: string;
  /** Name of the log file under {@link LOG_DIR}. */
  id: string;
  /** Extra flags, e.g. --shadow-workers. */
  args?: string[];
}

/** The gateway started from the CLI on a free loopback port, with its JSON log lines captured. */
export class GatewayProcess {
  readonly proc: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly stateDir: string;
  readonly logFile: string;
  #port: number | undefined;
  #exit: number | null | undefined;

  constructor(o: GatewayProcessOptions) {
    this.stateDir = mkdtempSync(join(tmpdir(), "airollout-loop-gateway-"));
    mkdirSync(LOG_DIR, { recursive: true });
    this.logFile = join(LOG_DIR, `${o.id}.log`);
    writeFileSync(this.logFile, "");
    const args = [CLI, "gateway", "--kubeconfig", o.kubeconfig, "--port", "0", "--host", "127.0.0.1", "--state-dir", this.stateDir, ...(o.namespace ? ["--namespace", o.namespace] : []), ...(o.args ?? [])];
    this.proc = spawn(NODE, args, { env: { ...process.env, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] });
    let buf = "";
    this.proc.stdout!.on("data", (d: Buffer) => {
      appendFileSync(this.logFile, d);
      buf += d.toString();
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const text = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { level: "raw", msg: text };
        }
        if (line.msg === "gateway started" && typeof line.port === "number") this.#port = line.port;
        this.lines.push(line);
        if (this.lines.length > MAX_LINES) this.lines.splice(0, this.lines.length - MAX_LINES);
      }
    });
    this.proc.stderr!.on("data", (d: Buffer) => {
      appendFileSync(this.logFile, d);
      this.lines.push({ level: "stderr", msg: d.toString() });
    });
    this.proc.on("exit", (code) => (this.#exit = code));
  }

  /** The bound port, once the gateway logged it. */
  get port(): number {
    if (this.#port === undefined) throw new Error("the gateway has not started listening yet");
    return this.#port;
  }

  /** Base URL, http://127.0.0.1:PORT. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** host:port, as a Prometheus scrape target (the webhook port serves /metrics too). */
  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Where a webhook for a rollout is POSTed. */
  hookUrl(namespace: string, name: string, path = "/classify"): string {
    return `${this.url}/hooks/${namespace}/${name}${path}`;
  }

  /** Resolves once the gateway listens and its AIRollout watch has synced (/readyz 200). */
  async ready(timeoutMs = 60_000): Promise<void> {
    // A gateway that exits (a syntax error, a bad flag) fails this at once, not at the timeout.
    const exited = new Promise<never>((_, reject) => {
      const fail = (): void => reject(new Error(`gateway exited with ${this.proc.exitCode ?? this.proc.signalCode}; see ${this.logFile}`));
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) fail();
      else this.proc.once("exit", fail);
    });
    exited.catch(() => {});
    await Promise.race([exited, waitFor(`gateway listening (log ${this.logFile})`, () => this.#port !== undefined, timeoutMs, 50)]);
    await Promise.race([
      exited,
      waitFor(`gateway /readyz (log ${this.logFile})`, async () => {
        const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        return res.status === 200;
      }, timeoutMs, 100),
    ]);
  }

  /** The gateway's view of a rollout (GET /api/rollouts/NS/NAME/diffs), undefined while it does not know it. */
  async rollout(namespace: string, name: string): Promise<Record<string, unknown> | undefined> {
    const res = await fetch(`${this.url}/api/rollouts/${namespace}/${name}/diffs?limit=0`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as Record<string, unknown>;
    return res.status === 200 ? body : undefined;
  }

  /** Waits until the gateway watches the rollout, so webhooks reach it rather than the quarantine. */
  async knows(namespace: string, name: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(`gateway knows ${namespace}/${name}`, () => this.rollout(namespace, name), timeoutMs, 100);
  }

  /** SIGTERM, then waits for the exit; removes the state directory. */
  async stop(): Promise<void> {
    if (this.#exit === undefined && this.proc.exitCode === null) {
      const exited = new Promise<void>((r) => this.proc.once("exit", () => r()));
      this.proc.kill("SIGTERM");
      const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!done) {
        this.proc.kill("SIGKILL");
        await exited;
      }
    }
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** Options of {@link startTraffic}. */
export interface TrafficOptions {
  /** Webhook URL (see {@link GatewayProcess.hookUrl}). */
  url: string;
  /** Requests started per second, steadily. */
  ratePerSecond: number;
  /** Stops after this many requests. */
  maxRequests: number;
  /** ...or after this long, whichever comes first. */
  maxDurationMs: number;
  /** Body of the request with this id (default `{ id, text }`); ids count up from firstId. */
  body?: (id: number) => unknown;
  /** Default 0. */
  firstId?: number;
  /** Requests in flight at most; a tick finding this many is skipped (and counted). Default 32. */
  maxInFlight?: number;
  /** Per-request timeout. Default 10 s. */
  timeoutMs?: number;
}

/** What a traffic run did. */
export interface TrafficReport {
  sent: number;
  /** Answers by HTTP status. */
  statuses: Record<string, number>;
  /** Answers by the gateway's x-airollout-version header. */
  versions: Record<string, number>;
  /** Requests without an answer (connection error, timeout). */
  failed: number;
  /** Ticks skipped because maxInFlight requests were still open. */
  skipped: number;
}

/** A running traffic generator; it stops by itself at maxRequests or maxDurationMs. */
export interface TrafficRun {
  readonly report: TrafficReport;
  /** Resolves when it stopped and every request it started has finished. */
  readonly done: Promise<TrafficReport>;
  /** Stops sending; resolves like `done`. */
  stop(): Promise<TrafficReport>;
}

/**
 * Sends real webhooks (JSON POSTs) at a steady rate. Bounded in count, time and concurrency, and
 * loopback only: anything else is refused, since a test must never send traffic off the machine.
 */
export function startTraffic(o: TrafficOptions): TrafficRun {
  const target = new URL(o.url);
  if (target.hostname !== "127.0.0.1" && target.hostname !== "localhost" && target.hostname !== "[::1]") {
    throw new Error(`traffic goes to loopback only, not ${target.hostname}`);
  }
  if (!(o.ratePerSecond > 0 && o.ratePerSecond <= 1000)) throw new Error(`ratePerSecond must be in (0, 1000], got ${o.ratePerSecond}`);
  if (!(Number.isInteger(o.maxRequests) && o.maxRequests >= 0 && o.maxRequests <= 100_000)) throw new Error(`maxRequests must be a whole number up to 100000, got ${o.maxRequests}`);
  if (!(o.maxDurationMs > 0 && o.maxDurationMs <= 15 * 60_000)) throw new Error(`maxDurationMs must be in (0, 15 min], got ${o.maxDurationMs}`);
  const maxInFlight = o.maxInFlight ?? 32;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const body = o.body ?? ((id: number) => ({ id, text: `ticket ${id}` }));
  const report: TrafficReport = { sent: 0, statuses: {}, versions: {}, failed: 0, skipped: 0 };
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let wake: (() => void) | undefined;

  const send = async (id: number): Promise<void> => {
    try {
      const res = await fetch(o.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body(id)),
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer();
      report.statuses[res.status] = (report.statuses[res.status] ?? 0) + 1;
      const v = res.headers.get("x-airollout-version") ?? "(none)";
      report.versions[v] = (report.versions[v] ?? 0) + 1;
    } catch {
      report.failed++;
    }
  };

  const run = async (): Promise<TrafficReport> => {
    const started = Date.now();
    const every = 1000 / o.ratePerSecond;
    let due = started;
    let id = o.firstId ?? 0;
    while (!stopped && report.sent < o.maxRequests && Date.now() - started < o.maxDurationMs) {
      if (inFlight.size >= maxInFlight) {
        report.skipped++;
      } else {
        const p = send(id++).finally(() => inFlight.delete(p));
        inFlight.add(p);
        report.sent++;
      }
      // A steady rate, no catch-up bursts: after a stall the schedule restarts from now.
      due = Math.max(due + every, Date.now());
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, due - Date.now());
      });
    }
    await Promise.all([...inFlight]);
    return report;
  };

  const done = run();
  return {
    report,
    done,
    stop() {
      stopped = true;
      wake?.();
      return done;
    },
  };
}

/** Options of {@link startLoop}. */
export interface LoopOptions {
  kubeconfig: string;
  /** The namespace the gateway and the controller watch (and where the controller's Lease lives). */
  namespace: string;
  /** Names the log files under {@link LOG_DIR}. */
  id: string;
  /** Prometheus scrape interval; default 1 s. */
  scrapeIntervalSeconds?: number;
  /** Extra controller flags; `--environments none` is always passed (every version is an endpoint). */
  controllerArgs?: string[];
}

/** A running loop: see the module comment. */
export interface Loop {
  readonly namespace: string;
  readonly gateway: GatewayProcess;
  readonly prometheus: TestPrometheus;
  readonly provider: PrometheusProvider;
  readonly controller: ControllerProcess;
  /** host:port of the controller's /metrics, which Prometheus scrapes as well as the gateway's. */
  readonly controllerTarget: string;
  /** Starts a loopback backend, closed by close(). */
  backend(name: string, respond?: Responder): Promise<TestBackend>;
  /** Starts traffic to a rollout's webhook URL through the gateway, stopped by close(). */
  traffic(name: string, o: Omit<TrafficOptions, "url"> & { path?: string }): TrafficRun;
  /**
   * One instant query: a single number, or undefined for an empty result or an error.
   * Several series are an error here: the loop's queries are written to return one.
   */
  value(promql: string): Promise<number | undefined>;
  /** Stops traffic, the controller, the gateway, Prometheus and the backends, in that order. */
  close(): Promise<void>;
}

/**
 * Starts the gateway process, the controller process (which must win its Lease before this
 * resolves) and a Prometheus scraping both. A part that fails to start stops the parts already up.
 */
export async function startLoop(o: LoopOptions): Promise<Loop> {
  const backends: TestBackend[] = [];
  const runs: TrafficRun[] = [];
  const gateway = new GatewayProcess({ kubeconfig: o.kubeconfig, namespace: o.namespace, id: `${o.id}-gateway` });
  let prometheus: TestPrometheus | undefined;
  let controller: ControllerProcess | undefined;
  const close = async (): Promise<void> => {
    await Promise.all(runs.map((r) => r.stop()));
    await controller?.stop();
    await gateway.stop();
    await prometheus?.dispose();
    await Promise.all(backends.map((b) => b.close()));
  };
  let controllerTarget = "";
  try {
    await gateway.ready();
    // The controller first: Prometheus scrapes its /metrics too (phase and weight per rollout),
    // and its port is known only once it listens. Nothing queries Prometheus before a rollout exists.
    controller = new ControllerProcess(`${o.id}-controller`, ["--namespace", o.namespace, "--lease-namespace", o.namespace, "--environments", "none", ...(o.controllerArgs ?? [])]);
    const started = await controller.waitForLog("metrics port", (l) => l.msg === "controller started" && typeof l.port === "number", 60_000);
    controllerTarget = `127.0.0.1:${started.port as number}`;
    prometheus = await startPrometheus({ targets: [gateway.target, controllerTarget], scrapeIntervalSeconds: o.scrapeIntervalSeconds ?? 1 });
    await controller.waitForLog("leadership", (l) => l.msg === "became leader", 60_000);
  } catch (err) {
    await close();
    throw err;
  }
  const provider = new PrometheusProvider(prometheus.url);
  const ctl = controller;
  const prom = prometheus;
  return {
    namespace: o.namespace,
    gateway,
    prometheus: prom,
    provider,
    controller: ctl,
    controllerTarget,
    async backend(name, respond) {
      const b = await startBackend(name, respond);
      backends.push(b);
      return b;
    },
    traffic(name, t) {
      const run = startTraffic({ ...t, url: gateway.hookUrl(o.namespace, name, t.path) });
      runs.push(run);
      return run;
    },
    async value(promql) {
      const out = await provider.query(promql, { timeoutMs: 5000 });
      if (out.kind !== "value") return undefined;
      if (!Array.isArray(out.value)) return out.value as number;
      return out.value.length === 1 ? out.value[0] : undefined;
    },
    close,
  };
}
