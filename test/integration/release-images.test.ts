/**
 * One commit per release with image versions (ADR 0009): the controller stands the environments
 * up through real `pulumi up`s on the local control plane (KWOK makes Deployments Available). The
 * AIRollout names only its candidate image; the first is adopted into the stable environment,
 * each later release is one change of the candidate's image, and the stable environment keeps
 * running the version promoted last: it is neither taken back to an older image nor updated again
 * when the next rollout starts.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ANNOTATIONS, type AIRollout } from "../../controller/src/api/schema.ts";
import { startNodeSimulator, type NodeSimulator } from "../../controller/src/dev/kwok.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { ControllerProcess, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let sim: NodeSimulator;
let controller: ControllerProcess;

beforeAll(async () => {
  ns = createNamespace("relimg");
  const dir = mkdtempSync(join(tmpdir(), "airollout-relimg-"));
  sim = await startNodeSimulator({ kubeconfig: kubeconfig(), dir: join(dir, "kwok"), ownerPid: process.pid });
  controller = new ControllerProcess(`relimg-${ns}`, ["--namespace", ns, "--lease-namespace", ns, "--environments", "pulumi", "--state-dir", join(dir, "state")]);
  await controller.waitForLog("leadership", (l) => l.msg === "became leader", 120_000);
}, 300_000);

afterAll(async () => {
  await controller?.stop();
  await sim?.stop();
});

const image = (v: string) => `registry.example.com/triage:${v}`;

/** The manifest in git; a release changes the candidate's version and image, nothing else. */
function apply(v: string): void {
  const spec = { candidate: { version: v, image: image(v), config: { model: "small" } }, strategy: { steps: [{ setWeight: 50 }, { pause: {} }] } };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
}

async function phase(phases: string[], check: (o: AIRollout) => boolean): Promise<AIRollout> {
  return waitFor(`bot in ${phases.join("|")}`, async () => {
    const o = await client().get<AIRollout>(`${rolloutsPath(ns)}/bot`);
    return phases.includes(o.status?.phase ?? "") && check(o) ? o : undefined;
  }, 240_000, 500);
}

/** Deployment name -> image, of the rollout's environments. */
function images(): Record<string, string> {
  const out = kubectlOk(["get", "deploy", "-n", ns, "-l", "airollout.dev/rollout=bot", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.template.spec.containers[0].image}{\"\\n\"}{end}"]);
  return Object.fromEntries(out.trim().split("\n").filter(Boolean).map((l) => l.split("=") as [string, string]));
}

describe("one commit per release, image versions through Pulumi", () => {
  it("adopts v1 into the stable environment, then each release is one change of the candidate's image", async () => {
    apply("v1");
    const adopted = await phase(["Succeeded"], () => true);
    expect(adopted.status!.stable).toMatchObject({ version: "v1", adopted: true });
    expect(adopted.status!.environments!.stable).toMatchObject({ phase: "Ready", version: "v1" });
    expect(images()).toEqual({ "bot-stable": image("v1") });
    const adoptedRevision = adopted.status!.environments!.stable!.revision;

    // Release v2: one change. The stable environment keeps v1, at the revision the adoption gave it.
    apply("v2");
    const rolling = await phase(["Paused"], (o) => o.status?.candidateVersion === "v2");
    expect(rolling.status).toMatchObject({ stableVersion: "v1", canaryWeight: 50 });
    expect(rolling.status!.environments!.stable!.revision).toBe(adoptedRevision);
    expect(images()).toEqual({ "bot-canary": image("v2"), "bot-stable": image("v1") });
    kubectlOk(["annotate", "--overwrite", "-n", ns, "airollout/bot", `${ANNOTATIONS.promote}=full-v2`]);
    const promoted = await phase(["Succeeded"], (o) => o.status?.stable?.version === "v2");
    expect(images()).toEqual({ "bot-stable": image("v2") });
    const promotedRevision = promoted.status!.environments!.stable!.revision;

    // Release v3: one change. The stable is v2, the version just promoted; its environment is
    // neither taken back to v1 nor updated again.
    apply("v3");
    const next = await phase(["Paused"], (o) => o.status?.candidateVersion === "v3");
    expect(next.status).toMatchObject({ stableVersion: "v2", canaryWeight: 50 });
    expect(next.status!.environments!.stable).toMatchObject({ version: "v2", revision: promotedRevision });
    expect(images()).toEqual({ "bot-canary": image("v3"), "bot-stable": image("v2") });
    const updates = controller.lines.filter((l) => l.msg === "environment ready").map((l) => l.role);
    expect(updates).toEqual(["stable", "canary", "stable", "canary"]);
  }, 600_000);
});
