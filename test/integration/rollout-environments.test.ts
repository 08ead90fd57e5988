/**
 * Image versions end to end: the controller process stands the stable, canary and shadow
 * environments up through real `pulumi up`s against the local control plane (KWOK makes the
 * Deployments Available), reports them in status, tears the candidate's down on abort and
 * everything on deletion.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { startNodeSimulator, type NodeSimulator } from "../../controller/src/dev/kwok.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { CLI, ControllerProcess, NODE, client, createNamespace, kubeconfig, kubectl, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let sim: NodeSimulator;
let controller: ControllerProcess;
let stateDir: string;

beforeAll(async () => {
  ns = createNamespace("envs");
  const dir = mkdtempSync(join(tmpdir(), "airollout-envs-"));
  sim = await startNodeSimulator({ kubeconfig: kubeconfig(), dir: join(dir, "kwok"), ownerPid: process.pid });
  stateDir = join(dir, "state");
  controller = new ControllerProcess("envs", ["--namespace", ns, "--lease-namespace", ns, "--environments", "pulumi", "--state-dir", stateDir]);
  await controller.waitForLog("leadership", (l) => l.msg === "became leader");
}, 300_000);

afterAll(async () => {
  await controller?.stop();
  await sim?.stop();
});

const deployments = () =>
  kubectlOk(["get", "deploy", "-n", ns, "-l", "airollout.dev/rollout=bot", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas}{\"\\n\"}{end}"])
    .trim()
    .split("\n")
    .filter(Boolean)
    .sort();

describe("image versions through Pulumi, driven by the controller", () => {
  it("stands up stable, canary and shadow before the first step, and reports them in status", async () => {
    const spec = {
      stable: { version: "v1", image: "registry.example.com/triage:v1", config: { model: "small" } },
      candidate: { version: "v2", image: "registry.example.com/triage:v2", config: { model: "large" } },
      strategy: { steps: [{ shadow: { duration: "10m" } }, { setWeight: 20 }, { pause: {} }] },
    };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
    const o = await waitFor("ShadowTesting", async () => {
      const x = await client().get<AIRollout>(`${rolloutsPath(ns)}/bot`);
      return x.status?.phase === "ShadowTesting" ? x : undefined;
    }, 240_000, 500);
    const envs = o.status!.environments!;
    expect(envs.canary).toMatchObject({ phase: "Ready", stack: `${ns}-bot-canary`, url: `http://bot-canary.${ns}.svc.cluster.local:8080`, version: "v2" });
    expect(envs.shadow).toMatchObject({ phase: "Ready", version: "v2" });
    expect(envs.stable).toMatchObject({ phase: "Ready", version: "v1" });
    expect(deployments()).toEqual(["bot-canary=1", "bot-shadow=1", "bot-stable=1"]);
    expect(controller.lines.filter((l) => l.msg === "environment ready")).toHaveLength(3);
  }, 300_000);

  it("`airollout preview up|list|destroy` runs a preview of the candidate as an AIPreview through the same backend", () => {
    const cli = (args: string[]) => spawnSync(NODE, [CLI, "preview", ...args, "-n", ns, "--kubeconfig", kubeconfig()], { encoding: "utf8", timeout: 240_000 });
    const up = cli(["up", "pr-7", "--rollout", "bot", "--ttl", "1h", "--wait", "--timeout", "3m"]);
    expect(up.stderr).toBe("");
    expect(up.stdout).toContain(`preview pr-7: Ready at http://bot-preview-pr-7.${ns}.svc.cluster.local:8080; expires 20`);
    expect(deployments()).toContain("bot-preview-pr-7=1");
    expect(cli(["list", "--rollout", "bot"]).stdout).toMatch(/^pr-7\s+bot\s+Ready\s+http:\/\/bot-preview-pr-7\S+\s+20/m);
    expect(cli(["destroy", "pr-7", "--wait", "--timeout", "3m"]).stdout).toBe("preview pr-7: destroyed\n");
    expect(deployments()).not.toContain("bot-preview-pr-7=1");
  }, 300_000);

  it("abort tears the candidate's environments down and keeps the stable", async () => {
    kubectlOk(["annotate", "air", "bot", "-n", ns, "airollout.dev/abort=now", "--overwrite"]);
    const o = await waitFor("RolledBack", async () => {
      const x = await client().get<AIRollout>(`${rolloutsPath(ns)}/bot`);
      return x.status?.phase === "RolledBack" ? x : undefined;
    }, 120_000, 500);
    expect(Object.keys(o.status!.environments!)).toEqual(["stable"]);
    expect(deployments()).toEqual(["bot-stable=1"]);
  }, 180_000);

  it("deleting the AIRollout destroys what is left and lets the object go", async () => {
    kubectlOk(["delete", "air", "bot", "-n", ns, "--timeout=120s"]);
    expect(kubectl(["get", "air", "bot", "-n", ns]).code).not.toBe(0);
    expect(deployments()).toEqual([]);
    expect(kubectlOk(["get", "svc,cm", "-n", ns, "-l", "airollout.dev/rollout=bot", "-o", "name"]).trim()).toBe("");
  }, 180_000);
});
