/**
 * Previews land in the controller's Pulumi backend without a flag to match it: the controller
 * (here with a --state-dir of its own, not the default) publishes its backend in a ConfigMap,
 * `airollout preview` and `airollout stacks` find it there, and the controller's garbage
 * collector destroys the preview when its TTL passes. Also the ways discovery refuses: nothing
 * published, only stale, a file backend on another host, controllers that disagree.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { discoverBackend, publishBackend, STALE_AFTER_MS, type PublishedBackend } from "../../controller/src/cli/backend.ts";
import { CLI, ControllerProcess, NODE, client, createNamespace, kubeconfig, kubectlOk } from "./helpers.ts";

let ns: string;
let dir: string;
let controllerState: string;
let controller: ControllerProcess;

/** The CLI as a user runs it: KUBECONFIG in the environment, no --state-dir or --backend. */
function cli(args: string[]) {
  const r = spawnSync(NODE, [CLI, ...args], {
    encoding: "utf8",
    timeout: 240_000,
    // The CLI's own state directory (workspaces, PULUMI_HOME) is not the controller's.
    env: { ...process.env, KUBECONFIG: kubeconfig(), AIROLLOUT_STATE_DIR: join(dir, "cli-home"), LOG_LEVEL: "warn" },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  ns = createNamespace("previews");
  dir = mkdtempSync(join(tmpdir(), "airollout-previews-"));
  controllerState = join(dir, "controller-state");
  controller = new ControllerProcess("previews", ["--namespace", ns, "--lease-namespace", ns, "--environments", "pulumi", "--state-dir", controllerState, "--preview-gc-interval", "2s"]);
  await controller.waitForLog("published backend", (l) => l.msg === "published the Pulumi backend", 120_000);
}, 180_000);

afterAll(async () => {
  await controller?.stop();
});

describe("previews in the controller's backend", () => {
  it("preview up without --state-dir lands in the controller's backend; preview list and stacks show its URL; the controller collects it when it expires", async () => {
    const spec = {
      stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" },
      candidate: { version: "v2", image: "registry.example.com/triage:v2" },
      strategy: { steps: [{ pause: {} }] },
      // No kubelet here: the Deployments never become Available, and need not.
      environments: { waitForReady: false },
    };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
    const url = `http://bot-preview-pr-1.${ns}.svc.cluster.local:8080`;

    const up = cli(["preview", "up", "pr-1", "--rollout", "bot", "-n", ns, "--ttl", "1h"]);
    expect(up.stderr).toBe("");
    expect(up.stdout).toContain(`preview pr-1: stack ${ns}-bot-preview-pr-1 ready at ${url}`);
    // The stack's state is in the controller's file backend, not under the CLI's state directory.
    const stacksDir = join(controllerState, "backend", ".pulumi", "stacks");
    expect(readdirSync(stacksDir, { recursive: true }).map(String).some((f) => f.includes(`${ns}-bot-preview-pr-1`))).toBe(true);
    expect(existsSync(join(dir, "cli-home", "cli", "backend"))).toBe(false);

    const list = cli(["preview", "list", "--rollout", "bot", "-n", ns]);
    expect(list.stderr).toBe("");
    expect(list.stdout).toMatch(new RegExp(`^pr-1\\s+${ns}-bot-preview-pr-1\\s+${url.replaceAll(".", "\\.")}\\s+expires 20`, "m"));

    const stacks = cli(["stacks", "-n", ns]);
    expect(stacks.code, stacks.stderr).toBe(0);
    expect(stacks.stderr).toContain(`backend: file://${join(controllerState, "backend")} (published by controller previews in ConfigMap ${ns}/airollout-controller-backend)`);
    expect(stacks.stdout).toMatch(new RegExp(`^${ns}/bot\\s+preview-pr-1\\s+${ns}-bot-preview-pr-1\\s+${url.replaceAll(".", "\\.")}\\s+20`, "m"));

    // --backend wins over the lookup (which would fail here: no controller in that namespace).
    const explicit = cli(["stacks", "-n", ns, "--backend", `file://${join(controllerState, "backend")}`, "--controller-namespace", "no-such-namespace"]);
    expect(explicit.code, explicit.stderr).toBe(0);
    expect(explicit.stdout).toContain(`${ns}-bot-preview-pr-1`);

    // Made again with a TTL that has passed by the time it is up: the next collection takes it
    // (a short TTL from the start would race the assertions above on a loaded machine).
    const shortened = cli(["preview", "up", "pr-1", "--rollout", "bot", "-n", ns, "--ttl", "1s"]);
    expect(shortened.code, shortened.stderr).toBe(0);
    const gone = await controller.waitForLog(
      "the expired preview collected",
      (l) => l.msg === "expired preview environments destroyed" && (l.stacks as string[]).includes(`${ns}-bot-preview-pr-1`),
      240_000,
    );
    expect(gone.stacks).toEqual([`${ns}-bot-preview-pr-1`]);
    expect(cli(["preview", "list", "--rollout", "bot", "-n", ns]).stdout).toBe("");
    expect(kubectlOk(["get", "deploy", "-n", ns, "-o", "name"])).not.toContain("bot-preview-pr-1");
  }, 600_000);
});

describe("backend discovery refuses what would strand a preview", () => {
  const base = (over: Partial<PublishedBackend> = {}): PublishedBackend => ({
    backend: "s3://bucket/airollout",
    environments: "pulumi",
    watchNamespace: "",
    host: "pod-a",
    identity: "pod-a_1",
    heartbeat: new Date().toISOString(),
    ...over,
  });

  it("nothing published, only stale, a file backend on another host, --environments none, and two controllers that disagree", async () => {
    const where = createNamespace("discovery");
    const find = () => discoverBackend(client(), "team-a", where);
    await expect(find()).rejects.toThrow(`no running airollout controller managing namespace team-a has published its Pulumi backend in namespace ${where}`);

    await publishBackend(client(), { namespace: where, leaseName: "old" }, base({ heartbeat: new Date(Date.now() - STALE_AFTER_MS - 60_000).toISOString() }));
    await expect(find()).rejects.toThrow(`only stale ones: ${where}/old-backend`);

    await publishBackend(client(), { namespace: where, leaseName: "old" }, base({ watchNamespace: "team-b" }));
    await expect(find()).rejects.toThrow("no running airollout controller");

    await publishBackend(client(), { namespace: where, leaseName: "a" }, base({ backend: "file:///var/lib/airollout/backend" }));
    await expect(find()).rejects.toThrow(`is a directory on host "pod-a", not on this one (${JSON.stringify(hostname())})`);

    await publishBackend(client(), { namespace: where, leaseName: "a" }, base({ environments: "none", backend: "" }));
    await expect(find()).rejects.toThrow("runs with --environments none");

    await publishBackend(client(), { namespace: where, leaseName: "a" }, base());
    await expect(find()).resolves.toMatchObject({ backend: "s3://bucket/airollout" });
    await publishBackend(client(), { namespace: where, leaseName: "b" }, base({ backend: "s3://other/airollout", watchNamespace: "team-a" }));
    await expect(find()).rejects.toThrow(`several controllers manage namespace team-a with different Pulumi backends (${where}/a-backend, ${where}/b-backend)`);
  }, 120_000);
});
