/**
 * The Pulumi toolchain for tests: the CLI and the Kubernetes provider built from Go modules
 * (built on first use, like the control plane), a PULUMI_HOME of the test's own, no update
 * checks and no plugin downloads, and the project's Node 24 first on PATH.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensurePulumiToolchain, pulumiEnv, type PulumiToolchain } from "../../controller/src/dev/toolchain.ts";

export interface PulumiTestEnv {
  toolchain: PulumiToolchain;
  /** A fresh directory for state: backend/, home/ (PULUMI_HOME), workspaces/. */
  stateDir: string;
  /** Environment for running the CLI by hand (pulumi()). */
  env: Record<string, string>;
  cleanup(): void;
}

/** Prepares the toolchain (building it when missing) and a temporary state directory. */
export async function pulumiTestEnv(log: (line: string) => void = (l) => process.stderr.write(`[pulumi] ${l}\n`)): Promise<PulumiTestEnv> {
  const toolchain = await ensurePulumiToolchain(log);
  const stateDir = mkdtempSync(join(tmpdir(), "airollout-pulumi-"));
  const env = { ...pulumiEnv(toolchain, join(stateDir, "home")), PULUMI_BACKEND_URL: `file://${join(stateDir, "backend")}` };
  return {
    toolchain,
    stateDir,
    env,
    cleanup: () => {
      if (!process.env.AIROLLOUT_KEEP_TEST_STATE) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Runs the pulumi CLI with the test environment; never throws. */
export function pulumi(t: PulumiTestEnv, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): { code: number; stdout: string; stderr: string } {
  const res = spawnSync(t.toolchain.pulumi, [...args, "--non-interactive"], {
    cwd: opts.cwd ?? t.stateDir,
    env: { ...process.env, ...t.env, ...opts.env },
    encoding: "utf8",
    timeout: 300_000,
  });
  return { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}
