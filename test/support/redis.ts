/**
 * A real Redis server for tests: Debian's `redis-server` on a free loopback port with a temporary
 * directory and no persistence (`--save '' --appendonly no`). When the binary is missing,
 * hack/ensure-system.sh installs the Debian package (as root) or explains what to install.
 *
 * No orphans: the server is killed when the test process exits, and a small `sh` watchdog kills
 * it and removes its directory if the test process dies without running exit handlers.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../controller/src/dev/controlplane.ts";
import { systemBinary } from "../../controller/src/dev/tools.ts";

export interface TestRedis {
  /** redis://127.0.0.1:PORT (what spec.traffic.idempotency.redisUrl holds). */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Sends one inline command and returns the raw reply (for assertions). */
  command(line: string): Promise<string>;
  /** SIGKILLs the server (an outage); start() brings it back on the same port, empty. */
  kill(): Promise<void>;
  /** Starts the server again after kill() and waits until it answers PING. */
  start(): Promise<void>;
  /** Stops the server and deletes its directory. */
  dispose(): Promise<void>;
}

/** The redis-server binary, installing Debian's package through hack/ensure-system.sh when missing. */
export function redisBinary(): string {
  return systemBinary("redis-server", "REDIS_SERVER_BIN");
}

function inline(port: number, line: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    let out = "";
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`redis on ${port}: no reply to ${line}`))), timeoutMs);
    s.on("connect", () => s.write(`${line}\r\n`));
    s.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.endsWith("\r\n")) {
        clearTimeout(timer);
        s.end();
        resolve(out.trimEnd());
      }
    });
    s.on("error", (e) => (clearTimeout(timer), reject(e)));
  });
}

// $1 owner pid, $2 redis pid, $3 directory to remove once the owner is gone.
const WATCHDOG = [
  'while kill -0 "$1" 2>/dev/null; do kill -0 "$2" 2>/dev/null || exit 0; sleep 1; done',
  'kill -KILL "$2" 2>/dev/null',
  'rm -rf "$3"',
].join("\n");

/** Starts redis-server and waits until it answers PING. */
export async function startRedis(readyTimeoutMs = 15_000): Promise<TestRedis> {
  const binary = redisBinary();
  const dir = mkdtempSync(join(tmpdir(), "airollout-redis-"));
  const port = await freePort();
  const logFile = join(dir, "redis.log");
  let server = await launch(binary, port, dir, logFile, readyTimeoutMs);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    command: (line) => inline(port, line),
    async kill() {
      await server.stop("SIGKILL");
    },
    async start() {
      server = await launch(binary, port, dir, logFile, readyTimeoutMs);
    },
    async dispose() {
      await server.stop("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One redis-server process with its watchdog, ready (answering PING). */
async function launch(binary: string, port: number, dir: string, logFile: string, readyTimeoutMs: number): Promise<{ stop: (signal: NodeJS.Signals) => Promise<void> }> {
  const proc = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--logfile", logFile, "--daemonize", "no"], { detached: true, stdio: "ignore" });
  proc.unref();
  if (proc.pid === undefined) throw new Error(`could not start ${binary}`);
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const dog = spawn("sh", ["-c", WATCHDOG, "redis-watchdog", String(process.pid), String(proc.pid), dir], { detached: true, stdio: "ignore" });
  dog.unref();
  const onExit = () => {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    try {
      if ((await inline(port, "PING")) === "+PONG") break;
    } catch {
      /* not listening yet */
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      let log = "(no log)";
      try {
        log = readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n");
      } catch {
        /* none */
      }
      throw new Error(`redis-server on port ${port} did not answer PING; last lines of its log:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    async stop(signal) {
      process.removeListener("exit", onExit);
      proc.kill(signal);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      proc.kill("SIGKILL");
      try {
        if (dog.pid !== undefined) process.kill(dog.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    },
  };
}
