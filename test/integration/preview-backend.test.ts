/**
 * `airollout preview` is a thin client of AIPreview objects, and their stacks land in the
 * controller's Pulumi backend: the controller (here with a --state-dir of its own, not the
 * default) publishes its backend in a ConfigMap, `airollout stacks` finds it there, and
 * `preview up --wait` prints the URL the controller wrote. Also the ways discovery refuses:
 * nothing published, only stale, a file backend on another host, controllers that disagree.
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
  it("preview up --wait applies an AIPreview and prints its URL; the stack is in the controller's backend; preview list and stacks show it; preview destroy --wait tears it down", async () => {
    const spec = {
      stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" },
      candidate: { version: "v2", image: "registry.example.com/triage:v2" },
      strategy: { steps: [{ pause: {} }] },
      // No kubelet here: the Deployments never become Available, and need not.
      environments: { waitForReady: false },
    };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
    const url = `http://bot-preview-pr-1.${ns}.svc.cluster.local:8080`;

    const up = cli(["preview", "up", "pr-1", "--rollout", "bot", "-n", ns, "--ttl", "1h", "--wait", "--timeout", "4m"]);
    expect(up.stderr).toBe("");
    expect(up.stdout).toMatch(new RegExp(`^preview pr-1: Ready at ${url.replaceAll(".", "\\.")}; expires 20\\d\\d-`, "m"));
    const object = JSON.parse(kubectlOk(["get", "aipreview", "pr-1", "-n", ns, "-o", "json", "--show-managed-fields"])) as { spec: unknown; metadata: { managedFields: { manager: string }[] } };
    expect(object.spec).toEqual({ rolloutRef: { name: "bot" }, ttl: "1h" });
    expect(object.metadata.managedFields.map((f) => f.manager)).toContain("airollout-cli");
    // The stack's state is in the controller's file backend, not under the CLI's state directory.
    const stacksDir = join(controllerState, "backend", ".pulumi", "stacks");
    expect(readdirSync(stacksDir, { recursive: true }).map(String).some((f) => f.includes(`${ns}-bot-preview-pr-1`))).toBe(true);
    expect(existsSync(join(dir, "cli-home", "cli", "backend"))).toBe(false);

    const list = cli(["preview", "list", "--rollout", "bot", "-n", ns]);
    expect(list.stderr).toBe("");
    expect(list.stdout).toMatch(/^NAME\s+ROLLOUT\s+PHASE\s+URL\s+EXPIRES$/m);
    expect(list.stdout).toMatch(new RegExp(`^pr-1\\s+bot\\s+Ready\\s+${url.replaceAll(".", "\\.")}\\s+20`, "m"));
    expect(cli(["preview", "list", "--rollout", "other", "-n", ns]).stdout).toBe("no previews\n");

    const stacks = cli(["stacks", "-n", ns]);
    expect(stacks.code, stacks.stderr).toBe(0);
    expect(stacks.stderr).toContain(`backend: file://${join(controllerState, "backend")} (published by controller previews in ConfigMap ${ns}/airollout-controller-backend)`);
    expect(stacks.stdout).toMatch(new RegExp(`^${ns}/bot\\s+preview-pr-1\\s+${ns}-bot-preview-pr-1\\s+${url.replaceAll(".", "\\.")}\\s+20`, "m"));

    // --backend wins over the lookup (which would fail here: no controller in that namespace).
    const explicit = cli(["stacks", "-n", ns, "--backend", `file://${join(controllerState, "backend")}`, "--controller-namespace", "no-such-namespace"]);
    expect(explicit.code, explicit.stderr).toBe(0);
    expect(explicit.stdout).toContain(`${ns}-bot-preview-pr-1`);

    // A bad spec is the API server's refusal, in its words.
    const bad = cli(["preview", "up", "pr-2", "--rollout", "bot", "-n", ns, "--ttl", "0s"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("preview pr-2: refused by the API server:");
    expect(bad.stderr).toContain("ttl must be a positive duration");
    expect(cli(["preview", "up", "Bad_Id", "--rollout", "bot", "-n", ns]).stderr).toContain("give the preview's id: lowercase letters, digits and dashes");

    const destroy = cli(["preview", "destroy", "pr-1", "-n", ns, "--wait", "--timeout", "4m"]);
    expect(destroy.stdout, destroy.stderr).toBe("preview pr-1: destroyed\n");
    expect(cli(["preview", "list", "-n", ns]).stdout).toBe("no previews\n");
    expect(cli(["stacks", "-n", ns]).stdout).not.toContain(`${ns}-bot-preview-pr-1`);
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
