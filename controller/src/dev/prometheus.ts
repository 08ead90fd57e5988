/**
 * A real Prometheus server for tests, benchmarks and the demo: Debian's `prometheus` binary on a free loopback port, a
 * temporary storage directory and a generated config that scrapes the given targets every
 * second.
 *
 * Timing: Prometheus (2.42, Debian 12) passes static targets to the scrape loop only on its
 * 5 s service-discovery tick, so the first samples arrive about 5-6 s after /-/ready; a restart
 * keeps the TSDB, so data scraped before stop() is queryable again right after start().
 *
 * No orphans: the server is killed when its owning process exits normally, and a small `sh`
 * watchdog (independent of Node, like the control plane's) kills it and removes its directory
 * when the test process dies without running exit handlers (SIGKILL, an uncaught signal).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./controlplane.ts";
import { systemBinary } from "./tools.ts";

/** Options of {@link startPrometheus}. */
export interface PrometheusOptions {
  /** Scrape targets as host:port; their /metrics is scraped. */
  targets: readonly string[];
  /** Default 1. */
  scrapeIntervalSeconds?: number;
  /** How long start() waits for /-/ready; default 30 s. */
  readyTimeoutMs?: number;
}

/** A Prometheus started by a test. */
export interface TestPrometheus {
  /** Base URL, http://127.0.0.1:PORT (what `analysis.prometheus.address` would hold). */
  readonly url: string;
  readonly port: number;
  /** Holds the config, the TSDB (`data/`) and the log (`prometheus.log`). */
  readonly dir: string;
  readonly running: boolean;
  /** (Re)starts on the same port and storage; resolves when /-/ready answers 200. */
  start(): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL after 10 s); storage is kept for start(). */
  stop(): Promise<void>;
  /** Stops the server and deletes its directory. */
  dispose(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The prometheus binary: $PROMETHEUS_BIN, /usr/bin/prometheus or on PATH; when missing,
 * hack/ensure-system.sh installs Debian's package (as root) or explains what to install.
 */
export function prometheusBinary(): string {
  return systemBinary("prometheus", "PROMETHEUS_BIN");
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function ready(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

// $1 owner pid, $2 prometheus pid, $3 directory to remove once the owner is gone.
const WATCHDOG = [
  'while kill -0 "$1" 2>/dev/null; do kill -0 "$2" 2>/dev/null || exit 0; sleep 1; done',
  'kill -TERM "$2" 2>/dev/null',
  'i=0; while [ $i -lt 50 ] && kill -0 "$2" 2>/dev/null; do sleep 0.1; i=$((i+1)); done',
  'kill -KILL "$2" 2>/dev/null',
  'rm -rf "$3"',
].join("\n");

/**
 * Starts a real Prometheus scraping `targets` and waits until it is ready.
 * Call dispose() when done (afterAll); a forgotten server still dies with the test process.
 */
export async function startPrometheus(opts: PrometheusOptions): Promise<TestPrometheus> {
  const binary = prometheusBinary();
  const interval = opts.scrapeIntervalSeconds ?? 1;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const dir = mkdtempSync(join(tmpdir(), "airollout-prometheus-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = join(dir, "prometheus.yml");
  const logFile = join(dir, "prometheus.log");
  // JSON is YAML, and needs no quoting rules of its own.
  writeFileSync(
    config,
    JSON.stringify(
      {
        global: { scrape_interval: `${interval}s`, scrape_timeout: `${interval}s`, evaluation_interval: `${interval}s` },
        scrape_configs: [{ job_name: "airollout-test", static_configs: [{ targets: [...opts.targets] }] }],
      },
      null,
      2,
    ),
  );
  const args = [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=info",
  ];

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let watchdog: number | undefined;
  let disposed = false;

  const alive = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
  const killWatchdog = (): void => {
    if (watchdog === undefined) return;
    try {
      process.kill(-watchdog, "SIGKILL");
    } catch {
      /* already gone */
    }
    watchdog = undefined;
  };
  // Runs synchronously at exit: SIGKILL, since nobody will wait for a graceful shutdown.
  const onExit = (): void => {
    if (alive()) child?.kill("SIGKILL");
    killWatchdog();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);

  const server: TestPrometheus = {
    url,
    port,
    dir,
    get running() {
      return alive();
    },
    async start() {
      if (disposed) throw new Error(`Prometheus at ${url} was disposed`);
      if (alive()) return;
      const fd = openSync(logFile, "a");
      // detached: its own process group, so a Ctrl-C aimed at vitest reaches it only through us.
      const proc = spawn(binary, args, { detached: true, stdio: ["ignore", fd, fd] });
      closeSync(fd);
      proc.unref();
      child = proc;
      exited = new Promise((resolve) => proc.once("exit", () => resolve()));
      const spawnError = new Promise<Error>((resolve) => proc.once("error", resolve));
      if (proc.pid === undefined) throw new Error(`could not start ${binary}: ${(await spawnError).message}`);
      const dog = spawn("sh", ["-c", WATCHDOG, "prometheus-watchdog", String(process.pid), String(proc.pid), dir], { detached: true, stdio: "ignore" });
      dog.unref();
      watchdog = dog.pid;

      const deadline = Date.now() + readyTimeoutMs;
      while (!(await ready(url))) {
        if (!alive()) {
          killWatchdog();
          throw new Error(`prometheus exited during start-up on ${url}; last lines of ${logFile}:\n${tail(logFile)}`);
        }
        if (Date.now() > deadline) {
          await server.stop();
          throw new Error(`prometheus on ${url} was not ready after ${readyTimeoutMs / 1000}s; last lines of ${logFile}:\n${tail(logFile)}`);
        }
        await sleep(100);
      }
    },
    async stop() {
      if (alive()) {
        child?.kill("SIGTERM");
        const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
        if (!done) {
          child?.kill("SIGKILL");
          await exited;
        }
      }
      killWatchdog();
    },
    async dispose() {
      disposed = true;
      await server.stop();
      process.removeListener("exit", onExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await server.start();
  } catch (e) {
    process.removeListener("exit", onExit);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return server;
}
