/**
 * Environments through Pulumi against the real local control plane: real `pulumi up` and
 * `pulumi destroy` (the CLI and the Kubernetes provider built from Go modules) through the
 * adapter, with KWOK and kube-scheduler standing in for kubelets so Deployments become
 * Available and Pulumi's readiness checks run for real.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { AIRollout, VersionSpec } from "../../controller/src/api/schema.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { EnvironmentError, StackLockedError } from "../../controller/src/environments/errors.ts";
import { startNodeSimulator, type NodeSimulator } from "../../controller/src/dev/kwok.ts";
import { PROJECT, PulumiEnvironments, kubeSecretReader, stackNameFor } from "../../controller/src/environments/pulumi.ts";
import { ApiError } from "../../controller/src/kube/client.ts";
import { isEnvironmentFailure } from "../../controller/src/reconcile/contract.ts";
import { pulumi, pulumiTestEnv, type PulumiTestEnv } from "../support/pulumi.ts";
import { NODE, client, createNamespace, kubeconfig, kubectl, kubectlOk, waitFor } from "./helpers.ts";

/** Real updates on a busy 2-core machine: a cold first `up` alone can take a minute. */
const TIMEOUT = 600_000;
const timings: Record<string, number> = {};
async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    timings[label] = (performance.now() - t0) / 1000;
  }
}

let env: PulumiTestEnv;
let sim: NodeSimulator | undefined;
let ns: string;
let adapter: PulumiEnvironments;
const output: string[] = [];

function rollout(name: string, environments: Record<string, unknown> = {}): AIRollout {
  return {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace: ns, uid: `uid-${name}`, generation: 1, resourceVersion: "1" },
    spec: {
      stable: { version: "v1", image: "registry.local/triage:v1" },
      candidate: { version: "v2", image: "registry.local/triage:v2", config: { model: "gpt-small", temperature: 0.2 } },
      strategy: { steps: [{ setWeight: 50 }] },
      environments,
    },
  };
}

function version(over: Partial<VersionSpec> = {}): VersionSpec {
  return { version: "v2", image: "registry.local/triage:v2", port: 8080, replicas: 1, config: { model: "gpt-small", temperature: 0.2, extra: { top_p: "0.9" } }, ...over };
}

function newAdapter(stateDir = env.stateDir): PulumiEnvironments {
  return new PulumiEnvironments({
    stateDir,
    toolchain: env.toolchain,
    readSecret: kubeSecretReader((p) => client().get(p), (e) => e instanceof ApiError && e.notFound),
    env: { KUBECONFIG: kubeconfig() },
    timeoutSeconds: 120,
    onOutput: (stack, line) => output.push(`${stack}: ${line}`),
  });
}

function backendDir(): string {
  return join(env.stateDir, "backend", ".pulumi");
}

function stackFiles(): string[] {
  const dir = join(backendDir(), "stacks", PROJECT);
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
}

function lockFiles(stack: string): string[] {
  const dir = join(backendDir(), "locks", "organization", PROJECT, stack);
  // The file bucket keeps a <name>.attrs sidecar per object; only the .json files are locks.
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
}

/**
 * SIGKILLs every process of a session, as a container's end kills all its processes: the
 * process group alone is not enough, Pulumi starts its plugins in process groups of their own.
 */
function killSession(sid: number): void {
  const pids = spawnSync("ps", ["-o", "pid=", "-s", String(sid)], { encoding: "utf8" }).stdout.split("\n").map(Number).filter((p) => p > 0);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

function get(kind: string, name: string, jsonpath: string): string {
  return kubectlOk(["get", kind, name, "-n", ns, "-o", `jsonpath=${jsonpath}`]);
}

/** The environment's ConfigMap data (its name carries a content hash). */
function configOf(rolloutName: string, role: string): Record<string, string> {
  const items = JSON.parse(kubectlOk(["get", "configmaps", "-n", ns, "-l", `airollout.dev/rollout=${rolloutName},airollout.dev/role=${role}`, "-o", "json"])) as { items: { data?: Record<string, string> }[] };
  expect(items.items).toHaveLength(1);
  return items.items[0]!.data ?? {};
}

/** kind/name of the rollout's Deployments, Services and ConfigMaps, sorted, hashes as <hash>. */
function resourcesOf(rolloutName: string): string {
  return kubectlOk(["get", "deployments,services,configmaps", "-n", ns, "-l", `airollout.dev/rollout=${rolloutName}`, "-o", "name"])
    .trim()
    .split("\n")
    .map((l) => l.replace(/-config-[0-9a-f]{8}$/, "-config-<hash>"))
    .sort()
    .join("\n");
}

beforeAll(async () => {
  env = await pulumiTestEnv();
  sim = await startNodeSimulator({ kubeconfig: kubeconfig(), dir: join(inject("devDir"), "kwok"), ownerPid: process.pid, log: (l) => process.stderr.write(`[kwok] ${l}\n`) });
  ns = createNamespace("env");
  adapter = newAdapter();
}, 60 * 60_000);

afterAll(async () => {
  await sim?.stop();
  env?.cleanup();
  const rows = Object.entries(timings).map(([k, v]) => `  ${k.padEnd(44)} ${v.toFixed(1)} s`);
  process.stderr.write(`\nPulumi environment timings (one environment, local control plane, KWOK):\n${rows.join("\n")}\n`);
});

describe("an environment through Pulumi", () => {
  const r = () => rollout("triage");

  it("pulumi up creates the Deployment, Service and ConfigMap, and the Deployment becomes Available", async () => {
    const status = await timed("up, create (cold: first run, plugin load)", () => adapter.ensure(r(), "canary", version(), { revision: "rev1" }));
    expect(status).toMatchObject({
      stack: `${ns}-triage-canary`,
      phase: "Ready",
      serviceName: "triage-canary",
      url: `http://triage-canary.${ns}.svc.cluster.local:8080`,
      version: "v2",
      revision: "rev1",
    });
    expect(resourcesOf("triage").split("\n")).toEqual(["configmap/triage-canary-config-<hash>", "deployment.apps/triage-canary", "service/triage-canary"]);
    expect(get("deployment", "triage-canary", "{.metadata.labels}")).toContain('"airollout.dev/role":"canary"');
    expect(get("deployment", "triage-canary", "{.spec.template.spec.containers[0].image}")).toBe("registry.local/triage:v2");
    expect(get("deployment", "triage-canary", '{.status.conditions[?(@.type=="Available")].status}')).toBe("True");
    expect(configOf("triage", "canary")).toEqual({ AIROLLOUT_MODEL: "gpt-small", AIROLLOUT_TEMPERATURE: "0.2", AIROLLOUT_CONFIG_TOP_P: "0.9" });
    expect(get("service", "triage-canary", "{.spec.ports[0].port}")).toBe("8080");
    expect(stackFiles()).toContain(`${ns}-triage-canary.json`);
  }, TIMEOUT);

  it("a config change updates them in place, and an unchanged spec changes nothing", async () => {
    const before = get("deployment", "triage-canary", "{.spec.template.metadata.annotations.airollout\\.dev/config-hash}");
    const status = await timed("up, update (warm: config change)", () => adapter.ensure(r(), "canary", version({ config: { model: "gpt-large", temperature: 0.7 } }), { revision: "rev2" }));
    // A new ConfigMap, the Deployment updated in place (a rolling update), the old ConfigMap gone.
    expect(status.message).toMatch(/^pulumi up: replace 1, update 1 in /);
    expect(configOf("triage", "canary")).toEqual({ AIROLLOUT_MODEL: "gpt-large", AIROLLOUT_TEMPERATURE: "0.7" });
    expect(get("deployment", "triage-canary", "{.metadata.generation}")).toBe("2");
    expect(get("deployment", "triage-canary", "{.spec.template.metadata.annotations.airollout\\.dev/config-hash}")).not.toBe(before);
    expect(get("deployment", "triage-canary", "{.spec.template.metadata.annotations.airollout\\.dev/revision}")).toBe("rev2");
    const same = await timed("up, no changes (warm)", () => adapter.ensure(r(), "canary", version({ config: { model: "gpt-large", temperature: 0.7 } }), { revision: "rev2" }));
    expect(same.message).toMatch(/^pulumi up: no changes/);
  }, TIMEOUT);

  it("lists the rollout's stacks by their tags", async () => {
    expect(await adapter.list(r())).toEqual([expect.objectContaining({ stack: `${ns}-triage-canary`, role: "canary", rollout: `${ns}/triage`, updating: false })]);
  }, TIMEOUT);

  it("destroy leaves no resources and no stack behind", async () => {
    await timed("destroy + stack rm", () => adapter.destroy(r(), "canary", "test"));
    expect(resourcesOf("triage")).toBe("");
    expect(stackFiles()).not.toContain(`${ns}-triage-canary.json`);
    expect(await adapter.list(r())).toEqual([]);
    // A second destroy of a stack that is gone is not an error.
    await adapter.destroy(r(), "canary", "test");
  }, TIMEOUT);
});

describe("many environments of one rollout", () => {
  const r = () => rollout("multi");

  it("creates shadow and preview stacks, collects an expired preview, and destroyAll removes the rest", async () => {
    await timed("up, create (warm: another environment)", () => adapter.ensure(r(), "shadow", version()));
    // Two stacks update side by side in one process (inline programs keep their state apart).
    const soon = new Date(Date.now() + 1000);
    const [preview, shadow] = await Promise.all([
      adapter.ensure(r(), "preview-pr-7", version({ version: "pr-7" }), { expiresAt: soon }),
      adapter.ensure(r(), "shadow", version({ config: { model: "shadow-model" } })),
    ]);
    expect(preview).toMatchObject({ phase: "Ready", serviceName: "multi-preview-pr-7", version: "pr-7", expiresAt: soon.toISOString() });
    expect(shadow).toMatchObject({ phase: "Ready", serviceName: "multi-shadow" });
    expect(configOf("multi", "shadow")).toEqual({ AIROLLOUT_MODEL: "shadow-model" });
    expect(configOf("multi", "preview-pr-7")).toEqual({ AIROLLOUT_MODEL: "gpt-small", AIROLLOUT_TEMPERATURE: "0.2", AIROLLOUT_CONFIG_TOP_P: "0.9" });
    expect((await adapter.list(r())).map((s) => s.role).sort()).toEqual(["preview-pr-7", "shadow"]);

    expect(await adapter.collectExpired(new Date(soon.getTime() - 60_000))).toEqual([]);
    const collected = await adapter.collectExpired(new Date(soon.getTime() + 1000));
    expect(collected.map((s) => s.stack)).toEqual([`${ns}-multi-preview-pr-7`]);
    expect(resourcesOf("multi").split("\n")).toEqual(["configmap/multi-shadow-config-<hash>", "deployment.apps/multi-shadow", "service/multi-shadow"]);

    await adapter.destroyAll(r(), "deleted");
    expect(resourcesOf("multi")).toBe("");
    expect(await adapter.list(r())).toEqual([]);
    expect(stackFiles().filter((f) => f.startsWith(`${ns}-multi-`))).toEqual([]);
  }, TIMEOUT);
});

describe("locks", () => {
  const r = () => rollout("locky");
  const stack = () => stackNameFor(r(), "canary");

  it("recovers a stack whose update was killed mid-way (stale lock, pending operations)", async () => {
    // A controller process that dies with everything it started (as when its container is
    // killed) in the middle of `pulumi up`. detached: a session of its own, to kill it whole.
    const dir = join(env.stateDir, "killed");
    mkdirSync(dir, { recursive: true });
    const script = join(dir, "up.ts");
    writeFileSync(
      script,
      `import { PulumiEnvironments } from ${JSON.stringify(join(PROJECT_ROOT, "controller/src/environments/pulumi.ts"))};
const toolchain = ${JSON.stringify(env.toolchain)};
const a = new PulumiEnvironments({ stateDir: ${JSON.stringify(env.stateDir)}, toolchain, readSecret: async () => undefined, env: { KUBECONFIG: ${JSON.stringify(kubeconfig())} }, onOutput: (_s, l) => console.log(l) });
const rollout = ${JSON.stringify(r())};
await a.ensure(rollout, "canary", ${JSON.stringify(version())});
console.log("DONE");
`,
    );
    const child = spawn(NODE, [script], { detached: true, stdio: ["ignore", "pipe", "pipe"], cwd: PROJECT_ROOT });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    // Kill once the Deployment is being created: the lock is held and an operation is pending.
    await waitFor("the killed update to start creating the Deployment", () => /kubernetes:apps\/v1:Deployment.*creating/i.test(out) || out.includes("DONE"), 180_000, 50);
    expect(out).not.toContain("DONE");
    killSession(child.pid!);
    await exited;
    expect(lockFiles(stack())).toHaveLength(1);
    const checkpoint = JSON.parse(readFileSync(join(backendDir(), "stacks", PROJECT, `${stack()}.json`), "utf8")) as { checkpoint: { latest?: { pending_operations?: unknown[] } } };
    expect(checkpoint.checkpoint.latest?.pending_operations?.length ?? 0).toBeGreaterThan(0);

    const status = await timed("up after a killed update (stale lock cleared)", () => adapter.ensure(r(), "canary", version()));
    expect(status.phase).toBe("Ready");
    expect(lockFiles(stack())).toEqual([]);
    expect(get("deployment", "locky-canary", '{.status.conditions[?(@.type=="Available")].status}')).toBe("True");
    expect(output.some((l) => l.startsWith(`${stack()}: `))).toBe(true);
  }, TIMEOUT);

  it("a lock held by a live update is a transient StackLockedError; an old lock of another host is cleared", async () => {
    const dir = join(backendDir(), "locks", "organization", PROJECT, stack());
    mkdirSync(dir, { recursive: true });
    const lock = join(dir, "live.json");
    // A running process of this host holds it (its command line names pulumi, as a CLI's does).
    const holder = spawn(NODE, ["-e", "setTimeout(() => {}, 600000)", "pulumi-up-in-progress"], { stdio: "ignore" });
    try {
      writeFileSync(lock, JSON.stringify({ pid: holder.pid, username: "test", hostname: hostname(), timestamp: new Date().toISOString() }));
      const err = await adapter.ensure(r(), "canary", version()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StackLockedError);
      expect(isEnvironmentFailure(err) && err.transient).toBe(true);
      expect((err as StackLockedError).holders).toEqual([expect.objectContaining({ pid: holder.pid, host: hostname() })]);
      expect(existsSync(lock)).toBe(true);
    } finally {
      holder.kill("SIGKILL");
    }

    // A lock of a controller Pod that is long gone: another host, older than staleLockMs.
    writeFileSync(lock, JSON.stringify({ pid: 1, username: "root", hostname: "airollout-controller-7d9f-old", timestamp: new Date(Date.now() - 3600_000).toISOString() }));
    const status = await adapter.ensure(r(), "canary", version());
    expect(status.phase).toBe("Ready");
    expect(existsSync(lock)).toBe(false);
    await adapter.destroyAll(r(), "test");
    expect(resourcesOf("locky")).toBe("");
  }, TIMEOUT);
});

describe("bad input", () => {
  it("an invalid image reference is refused with what to fix, and no stack is created", async () => {
    const err = await adapter.ensure(rollout("badimg"), "canary", version({ image: "Registry/Triage:v 2" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EnvironmentError);
    expect(err).toMatchObject({ transient: false, reason: "InvalidEnvironment", stackName: `${ns}-badimg-canary` });
    expect((err as Error).message).toContain('image "Registry/Triage:v 2" is not an image reference of the form [registry[:port]/]repository[:tag]');
    expect(stackFiles().filter((f) => f.includes("badimg"))).toEqual([]);
    expect(resourcesOf("badimg")).toBe("");
  }, TIMEOUT);

  it("a passphrase Secret that does not exist is a clear MissingReference error (as the rollout reports it), before any stack exists", async () => {
    const err = await adapter.ensure(rollout("nopass", { pulumi: { passphraseSecretRef: { name: "pulumi-pass", key: "passphrase" } } }), "canary", version()).catch((e: unknown) => e);
    expect(err).toMatchObject({ transient: false, reason: "MissingReference" });
    expect((err as Error).message).toBe(
      `spec.environments.pulumi.passphraseSecretRef: Secret "pulumi-pass" in namespace "${ns}" has no key "passphrase" (or does not exist): create it with kubectl create secret generic pulumi-pass -n ${ns} --from-literal=passphrase=<passphrase>`,
    );
    expect(stackFiles().filter((f) => f.includes("nopass"))).toEqual([]);
  }, TIMEOUT);

  it("deleting a rollout that has no stacks is not held up by its missing passphrase Secret", async () => {
    await adapter.destroyAll(rollout("nopass", { pulumi: { passphraseSecretRef: { name: "gone", key: "passphrase" } } }), "deleted");
  }, TIMEOUT);

  it("a passphrase from a Secret works, and a changed one says the stack needs the original", async () => {
    kubectlOk(["create", "secret", "generic", "pulumi-pass", "-n", ns, "--from-literal=passphrase=correct horse battery staple"]);
    const r = rollout("withpass", { pulumi: { passphraseSecretRef: { name: "pulumi-pass", key: "passphrase" } } });
    expect((await adapter.ensure(r, "canary", version())).phase).toBe("Ready");
    kubectl(["delete", "secret", "pulumi-pass", "-n", ns]);
    kubectlOk(["create", "secret", "generic", "pulumi-pass", "-n", ns, "--from-literal=passphrase=something else"]);
    // A new process: nothing cached from the first update.
    const err = await newAdapter().ensure(r, "canary", version({ config: { model: "other" } })).catch((e: unknown) => e);
    expect(err).toMatchObject({ transient: false, reason: "MissingPassphrase" });
    expect((err as Error).message).toMatch(/passphrase/i);
    kubectl(["delete", "secret", "pulumi-pass", "-n", ns]);
    kubectlOk(["create", "secret", "generic", "pulumi-pass", "-n", ns, "--from-literal=passphrase=correct horse battery staple"]);
    await adapter.destroyAll(r, "test");
    expect(resourcesOf("withpass")).toBe("");
  }, TIMEOUT);

  it("an unwritable backend is a clear error", async () => {
    const err = await adapter.ensure(rollout("nobackend", { pulumi: { backend: "file:///proc/airollout-state" } }), "canary", version()).catch((e: unknown) => e);
    expect(err).toMatchObject({ transient: false, reason: "BackendUnavailable" });
    expect((err as Error).message).toContain("Pulumi backend file:///proc/airollout-state is not writable");
  }, TIMEOUT);

  it("a stack the CLI lists matches what the adapter reports", () => {
    const res = pulumi(env, ["stack", "ls", "--json", "--all"]);
    expect(res.code, res.stderr).toBe(0);
    const names = (JSON.parse(res.stdout) as { name: string }[]).map((s) => s.name.split("/").pop());
    expect(names.filter((n) => n?.startsWith(ns))).toEqual([]);
  }, TIMEOUT);
});
