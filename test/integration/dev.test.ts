/**
 * `airollout dev up --node-simulator | status | down` as a user runs them: a second local
 * control plane in a directory of its own (the suite's shared one is untouched), with KWOK and
 * kube-scheduler, where a Deployment of an image that exists nowhere becomes Available.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readState, alive } from "../../controller/src/dev/controlplane.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { CLI, NODE, waitFor } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "airollout-dev-it-"));

function cli(args: string[], timeout = 600_000) {
  const r = spawnSync(NODE, [CLI, ...args], { encoding: "utf8", timeout });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

afterAll(() => {
  cli(["dev", "down", "--purge", "--dir", dir], 120_000);
  rmSync(dir, { recursive: true, force: true });
});

describe("airollout dev", () => {
  it("up --node-simulator starts a control plane where Deployments become Available; up is idempotent; down stops everything", async () => {
    const first = cli(["dev", "up", "--node-simulator", "--dir", dir]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain("node simulator up");
    const kubeconfig = /export KUBECONFIG=(\S+)/.exec(first.stdout)?.[1];
    expect(kubeconfig).toBe(join(dir, "kubeconfig"));
    const state = readState(dir)!;
    expect(state.nodeSimulator?.nodeName).toBe("kwok-node-0");

    // What `dev up` tells a user to run, run as a shell would: kubectl, airollout and the kubectl
    // plugin come from PATH, the cluster from KUBECONFIG.
    expect(first.stderr).toContain(`eval "$(${join(PROJECT_ROOT, "bin", "airollout")} dev env --dir '${dir}')"`);
    const env = cli(["dev", "env", "--dir", dir]);
    expect(env.code, env.stderr).toBe(0);
    const shell = spawnSync("sh", ["-c", 'eval "$EXPORTS" && kubectl get namespace default -o name && airollout --help >/dev/null && kubectl airollout status -h | head -1'], {
      encoding: "utf8",
      env: { PATH: "/usr/bin:/bin", HOME: process.env.HOME ?? "/", EXPORTS: env.stdout },
      timeout: 60_000,
    });
    expect(shell.stderr).toBe("");
    // Run through kubectl, the plugin's help names itself as kubectl's subcommand.
    expect(shell.stdout).toMatch(/^namespace\/default\nusage: kubectl airollout status NAME .*\n$/);

    const status = cli(["dev", "status", "--dir", dir]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/kwok\s+running \(pid \d+\) \(node simulator, node kwok-node-0\)/);
    expect(status.stdout).toMatch(/kube-scheduler\s+running/);

    const kubectl = (args: string[], input?: string) => spawnSync(state.kubectl, args, { input, encoding: "utf8", env: { ...process.env, KUBECONFIG: kubeconfig } });
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "sim", namespace: "default" },
      spec: { replicas: 2, selector: { matchLabels: { app: "sim" } }, template: { metadata: { labels: { app: "sim" } }, spec: { containers: [{ name: "c", image: "registry.invalid/never-pulled:1" }] } } },
    };
    expect(kubectl(["apply", "-f", "-"], JSON.stringify(deployment)).status).toBe(0);
    await waitFor("the Deployment is Available on the simulated node", () => {
      const out = kubectl(["get", "deployment", "sim", "-o", "json"]);
      if (out.status !== 0) return false;
      const d = JSON.parse(out.stdout) as { status?: { availableReplicas?: number } };
      return d.status?.availableReplicas === 2;
    }, 120_000, 500);

    const again = cli(["dev", "up", "--node-simulator", "--dir", dir]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("already running");
    expect(again.stderr).toContain("node simulator already running");
    expect(readState(dir)!.nodeSimulator?.pids).toEqual(state.nodeSimulator?.pids);

    const down = cli(["dev", "down", "--dir", dir]);
    expect(down.code).toBe(0);
    expect(down.stderr).toMatch(/stopped kwok \(pid \d+, node simulator\)/);
    expect(down.stderr).toMatch(/stopped kube-scheduler \(pid \d+, node simulator\)/);
    for (const pid of [...Object.values(state.nodeSimulator!.pids), ...Object.values(state.processes).map((p) => p.pid)]) {
      await waitFor(`pid ${pid} stopped`, () => !alive(pid), 20_000, 100);
    }
    expect(cli(["dev", "status", "--dir", dir]).code).toBe(1);
  });

  it("dev env without a control plane says to run dev up", () => {
    const empty = mkdtempSync(join(tmpdir(), "airollout-dev-env-"));
    const r = cli(["dev", "env", "--dir", empty], 60_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`no local control plane in ${empty}: run airollout dev up --dir ${empty} first`);
    rmSync(empty, { recursive: true, force: true });
  });

  it("refuses --node-simulator without kube-controller-manager, naming both flags", () => {
    const r = cli(["dev", "up", "--node-simulator", "--without-controller-manager", "--dir", dir], 60_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--without-controller-manager");
  });
});
