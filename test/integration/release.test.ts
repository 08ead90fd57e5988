/**
 * One commit per release (ADR 0009), on the real control plane with the controller and a gateway
 * process: the AIRollout names only its candidate. The first one applied is adopted as the
 * stable; after that each release is ONE change of spec.candidate (here its endpoint and version
 * name, as a pull request would change them), rolled out from the version promoted last, which
 * the gateway serves as the stable because it reads status.stable by the controller's rule.
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ANNOTATIONS, type AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { startBackend, type TestBackend } from "../support/backends.ts";
import { GatewayProcess } from "../support/loop.ts";
import { CLI, ControllerProcess, NODE, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let controller: ControllerProcess;
let gateway: GatewayProcess;
const backends: Record<string, TestBackend> = {};

beforeAll(async () => {
  ns = createNamespace("release");
  for (const v of ["v1", "v2", "v3"]) backends[v] = await startBackend(v);
  controller = new ControllerProcess(`release-${ns}`, ["--namespace", ns, "--lease-namespace", ns]);
  gateway = new GatewayProcess({ kubeconfig: kubeconfig(), namespace: ns, id: `release-${ns}-gateway` });
  // Patient: the machine running the suite may be loaded; a crash shows its stderr.
  await controller.waitForLog("leadership", (l) => l.msg === "became leader", 120_000).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; stderr: ${controller.lines.filter((l) => l.level === "stderr").map((l) => l.msg).join("").slice(-2000)}`);
  });
  await gateway.ready();
}, 240_000);

afterAll(async () => {
  await controller?.stop();
  await gateway?.stop();
  for (const b of Object.values(backends)) await b.close();
});

/** The manifest in git: only the candidate changes from one release to the next (`stable`: the explicit pair). */
function apply(candidate: string, o: { name?: string; stable?: string } = {}): void {
  const spec = {
    ...(o.stable ? { stable: { version: o.stable, endpoint: backends[o.stable]!.url } } : {}),
    candidate: { version: candidate, endpoint: backends[candidate]!.url },
    // Held at 50% until promoted, so the test can look at the split while it holds.
    strategy: { steps: [{ setWeight: 50 }, { pause: {} }] },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: o.name ?? "bot", namespace: ns }, spec }));
}

async function get(name = "bot"): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
}

async function phase(phases: string[], check: (o: AIRollout) => boolean = () => true, name = "bot"): Promise<AIRollout> {
  return waitFor(`${name} in ${phases.join("|")}`, async () => {
    const o = await get(name);
    return phases.includes(o.status?.phase ?? "") && check(o) ? o : undefined;
  }, 90_000, 250);
}

async function reasons(): Promise<string[]> {
  const events = await client().get<{ items: { reason: string; message: string; firstTimestamp?: string; eventTime?: string }[] }>(`/api/v1/namespaces/${ns}/events`, { fieldSelector: "involvedObject.name=bot" });
  return events.items.map((e) => e.reason);
}

/** Sends `n` webhooks through the gateway; returns how many each backend answered. */
async function send(n: number, name = "bot"): Promise<Record<string, number>> {
  for (const b of Object.values(backends)) b.reset();
  for (let i = 0; i < n; i++) {
    const res = await fetch(gateway.hookUrl(ns, name), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ i }), signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
  return Object.fromEntries(Object.entries(backends).map(([v, b]) => [v, b.hits]));
}

/** Waits until the gateway's view has caught up with what the controller wrote (the watch). */
async function gatewaySees(what: string, ok: (hits: Record<string, number>) => boolean, name = "bot"): Promise<Record<string, number>> {
  return waitFor(`the gateway to route: ${what}`, async () => {
    const hits = await send(20, name);
    return ok(hits) ? hits : undefined;
  }, 60_000, 500);
}

function promoteFull(id: string, name = "bot"): void {
  kubectlOk(["annotate", "--overwrite", "-n", ns, `airollout/${name}`, `${ANNOTATIONS.promote}=full-${id}`]);
}

describe("one commit per release", () => {
  it("adopts the first candidate, then each release is one change of spec.candidate, rolled out from the version promoted last", async () => {
    // The first AIRollout applied has no stable: its candidate is adopted, no steps.
    apply("v1");
    const adopted = await phase(["Succeeded"]);
    expect(adopted.status!.stable).toMatchObject({ version: "v1", adopted: true, spec: { endpoint: backends.v1!.url } });
    expect(adopted.status!.stableVersion).toBe("v1");
    expect(adopted.status!.message).toMatch(/^Adopted v1 as the stable without steps/);
    expect(await reasons()).toContain("Adopted");
    await gatewaySees("all to v1", (h) => h.v1 === 20);

    // Release v2: one change. It rolls out from v1, the adopted stable.
    apply("v2");
    const rolling = await phase(["Paused"], (o) => o.status?.candidateVersion === "v2");
    expect(rolling.status).toMatchObject({ stableVersion: "v1", candidateVersion: "v2", canaryWeight: 50 });
    expect(rolling.status!.stable?.version).toBe("v1");
    const split = await gatewaySees("v1 and v2 at 50%", (h) => h.v1! > 0 && h.v2! > 0);
    expect(split.v3).toBe(0);
    promoteFull("v2");
    const promoted = await phase(["Succeeded"], (o) => o.status?.stable?.version === "v2");
    expect(promoted.status!.stable!.adopted).toBeUndefined();
    await gatewaySees("all to v2, the promoted stable", (h) => h.v2 === 20);

    // Release v3: again one change, and the stable is v2, the version just promoted; v1 gets nothing.
    apply("v3");
    const next = await phase(["Paused"], (o) => o.status?.candidateVersion === "v3");
    expect(next.status).toMatchObject({ stableVersion: "v2", candidateVersion: "v3", canaryWeight: 50 });
    expect(next.status!.conditions!.find((c) => c.type === "Ready")!.message).toContain("v2");
    const hits = await gatewaySees("v2 and v3 at 50%", (h) => h.v2! > 0 && h.v3! > 0);
    expect(hits.v1).toBe(0);
    const status = spawnSync(NODE, [CLI, "status", "bot", "-n", ns, "--kubeconfig", kubeconfig()], { encoding: "utf8" });
    expect(status.stdout).toMatch(/Stable:\s+v2/);

    // An abort rolls back to v2 and keeps it as the stable; reverting the candidate in git to v2
    // is steady state, with no rollout.
    kubectlOk(["annotate", "--overwrite", "-n", ns, "airollout/bot", `${ANNOTATIONS.abort}=stop-v3`]);
    const rolledBack = await phase(["RolledBack"]);
    expect(rolledBack.status!.stable!.version).toBe("v2");
    await gatewaySees("all to v2 after the rollback", (h) => h.v2 === 20);
    apply("v2");
    const reverted = await phase(["Succeeded"], (o) => o.status?.candidateVersion === "v2");
    expect(reverted.status!.message).toMatch(/^Candidate v2 is the stable/);
    expect(await reasons()).toContain("CandidateIsStable");
  }, 300_000);

  it("keeps the explicit pair: after a promotion, a change of the candidate alone rolls out from the promoted version, not from spec.stable", async () => {
    // The API server still refuses a pair with one version name (the CEL rule applies when spec.stable is set).
    let refused = "";
    try {
      apply("v1", { name: "same", stable: "v1" });
    } catch (err) {
      refused = (err as Error).message;
    }
    expect(refused).toContain("candidate.version must differ from stable.version");

    apply("v2", { name: "pair", stable: "v1" });
    const first = await phase(["Paused"], (o) => o.status?.candidateVersion === "v2", "pair");
    expect(first.status!.stableVersion).toBe("v1");
    promoteFull("v2", "pair");
    await phase(["Succeeded"], (o) => o.status?.stable?.version === "v2", "pair");
    // One change: spec.stable still says v1, the stable is v2 (status.stable).
    apply("v3", { name: "pair", stable: "v1" });
    const next = await phase(["Paused"], (o) => o.status?.candidateVersion === "v3", "pair");
    expect(next.status!.stableVersion).toBe("v2");
    const hits = await gatewaySees("v2 and v3 at 50%", (h) => h.v2! > 0 && h.v3! > 0, "pair");
    expect(hits.v1).toBe(0);
  }, 300_000);
});
