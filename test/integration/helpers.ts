/** Shared helpers for integration tests against the real local control plane. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { inject } from "vitest";
import { KubeClient, loadKubeConfig } from "../../controller/src/kube/client.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";

export const NODE = join(PROJECT_ROOT, "node_modules", ".bin", "node");
export const CLI = join(PROJECT_ROOT, "controller", "src", "cli", "main.ts");

/** Runs `airollout ARGS` without blocking the test's event loop (servers it talks to may live in this process). */
export function runCli(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export function kubeconfig(): string {
  return inject("kubeconfig");
}

export function client(): KubeClient {
  return new KubeClient(loadKubeConfig(kubeconfig()));
}

/** Runs the control plane's own kubectl; never throws, returns code and output. */
export function kubectl(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const res = spawnSync(inject("kubectl"), args, { input, env: { ...process.env, KUBECONFIG: kubeconfig() }, encoding: "utf8", timeout: 60_000 });
  return { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** kubectl that must succeed. */
export function kubectlOk(args: string[], input?: string): string {
  const res = kubectl(args, input);
  if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

/** A fresh namespace for one test file. */
export function createNamespace(prefix: string): string {
  const ns = `${prefix}-${randomBytes(3).toString("hex")}`;
  kubectlOk(["create", "namespace", ns]);
  return ns;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

/** A controller process started from the CLI, with its JSON log lines captured. */
export class ControllerProcess {
  readonly proc: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly id: string;
  private exitCode: number | null | undefined;

  constructor(id: string, args: string[], env: Record<string, string> = {}) {
    this.id = id;
    this.proc = spawn(NODE, [CLI, "controller", "--kubeconfig", kubeconfig(), "--metrics-port", "0", "--id", id, ...args], {
      env: { ...process.env, LOG_LEVEL: "debug", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buf = "";
    // Every controller's log is kept on disk too, for a failed run's post-mortem.
    const logDir = join(tmpdir(), "airollout-test-logs");
    mkdirSync(logDir, { recursive: true });
    const logFile = join(logDir, `${id}.log`);
    this.proc.stdout!.on("data", (d: Buffer) => {
      appendFileSync(logFile, d);
      buf += d.toString();
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ level: "raw", msg: line });
        }
      }
    });
    this.proc.stderr!.on("data", (d: Buffer) => this.lines.push({ level: "stderr", msg: d.toString() }));
    this.proc.on("exit", (code) => (this.exitCode = code));
  }

  get exited(): boolean {
    return this.exitCode !== undefined;
  }

  has(pred: (l: LogLine) => boolean): boolean {
    return this.lines.some(pred);
  }

  waitForLog(what: string, pred: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    return waitFor(what + ` (log of ${this.id})`, () => this.lines.find(pred), timeoutMs, 50);
  }

  /** Sends a signal and waits for the process to exit; returns its exit code. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (this.exitCode === undefined) {
      const exited = new Promise<void>((r) => this.proc.once("exit", () => r()));
      this.proc.kill(signal);
      await exited;
    }
    return this.exitCode ?? null;
  }
}
