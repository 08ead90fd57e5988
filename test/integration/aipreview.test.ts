/**
 * AIPreview objects end to end on the local control plane: the controller process stands an
 * image preview up through real `pulumi up`s (KWOK makes the Deployment Available), writes its
 * URL, phase and conditions, destroys the stack when the ttl passes and keeps the object as
 * Expired, destroys it when the object is deleted and lets the object go; the API server refuses
 * an invalid spec (CEL), and a preview of a missing rollout says so in a condition and an Event.
 * A rollout's edit reaches a preview that follows its candidate at once (no resync wait); a
 * rollout's deletion keeps its previews (Stalled RolloutNotFound, no url) but not their stacks,
 * and its return stands them up again.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { previewPath, type AIPreview } from "../../controller/src/api/preview-schema.ts";
import { startNodeSimulator, type NodeSimulator } from "../../controller/src/dev/kwok.ts";
import { CLI, ControllerProcess, NODE, client, createNamespace, kubeconfig, kubectl, kubectlOk, waitFor } from "./helpers.ts";
import { previewInPhase } from "./preview-helpers.ts";

let ns: string;
let sim: NodeSimulator;
let controller: ControllerProcess;
let stateDir: string;

beforeAll(async () => {
  ns = createNamespace("aipv");
  const dir = mkdtempSync(join(tmpdir(), "airollout-aipv-"));
  sim = await startNodeSimulator({ kubeconfig: kubeconfig(), dir: join(dir, "kwok"), ownerPid: process.pid });
  stateDir = join(dir, "state");
  controller = new ControllerProcess("aipv", ["--namespace", ns, "--lease-namespace", ns, "--environments", "pulumi", "--state-dir", stateDir]);
  await controller.waitForLog("watching previews", (l) => l.msg === "watching previews", 120_000);
  // Endpoint versions: the rollout itself stands nothing up, only its previews do.
  const spec = { stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" }, candidate: { version: "v2", endpoint: "http://127.0.0.1:9/v2" }, strategy: { steps: [{ pause: {} }] } };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
}, 300_000);

afterAll(async () => {
  await controller?.stop();
  await sim?.stop();
});

const apply = (name: string, spec: Record<string, unknown>) => kubectl(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIPreview", metadata: { name, namespace: ns }, spec }));
const get = (name: string) => client().get<AIPreview>(previewPath(ns, name));
const condition = (p: AIPreview, type: string) => p.status?.conditions?.find((c) => c.type === type);
const image = (tag: string) => ({ version: tag, image: `registry.example.com/triage:${tag}` });
const deployments = () => kubectlOk(["get", "deploy", "-n", ns, "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas}{\"\\n\"}{end}"]).trim().split("\n").filter(Boolean).sort();
const stacks = () => spawnSync(NODE, [CLI, "stacks", "-n", ns, "--kubeconfig", kubeconfig(), "--state-dir", stateDir], { encoding: "utf8", timeout: 120_000 });
const reasons = (name: string) => kubectlOk(["get", "events", "-n", ns, "--field-selector", `involvedObject.kind=AIPreview,involvedObject.name=${name}`, "-o", "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}"]).trim().split("\n").filter(Boolean);

const waitPhase = (name: string, phase: string, timeoutMs = 300_000): Promise<AIPreview> => previewInPhase(ns, name, phase, timeoutMs);

describe("AIPreview objects, reconciled by the controller", () => {
  it("two image previews go Ready through Pulumi, each with its stack's URL, shown by kubectl get aipv", async () => {
    expect(apply("pr-1", { rolloutRef: { name: "bot" }, version: image("pr1"), ttl: "1h" }).code).toBe(0);
    expect(apply("pr-2", { rolloutRef: { name: "bot" }, version: image("pr2") }).code).toBe(0);
    const [one, two] = await Promise.all([waitPhase("pr-1", "Ready"), waitPhase("pr-2", "Ready")]);
    expect(one.status).toMatchObject({ url: `http://bot-preview-pr-1.${ns}.svc.cluster.local:8080`, stack: `${ns}-bot-preview-pr-1`, version: "pr1" });
    expect(Date.parse(one.status!.expiresAt!) - Date.parse(one.metadata.creationTimestamp!)).toBe(3_600_000);
    // No ttl: the rollout has no spec.preview either, so 24h.
    expect(Date.parse(two.status!.expiresAt!) - Date.parse(two.metadata.creationTimestamp!)).toBe(24 * 3_600_000);
    expect(one.metadata.finalizers).toEqual(["airollout.dev/preview-environment"]);
    expect(condition(one, "Ready")).toMatchObject({ status: "True", observedGeneration: 1 });
    expect(condition(one, "Reconciling")).toMatchObject({ status: "False" });
    expect(condition(one, "Stalled")).toMatchObject({ status: "False" });
    expect(deployments()).toEqual(["bot-preview-pr-1=1", "bot-preview-pr-2=1"]);
    expect(reasons("pr-1")).toEqual(expect.arrayContaining(["Provisioning", "Ready"]));
    const table = kubectlOk(["get", "aipv", "-n", ns]);
    expect(table).toMatch(/^NAME\s+ROLLOUT\s+PHASE\s+URL\s+EXPIRES\s+AGE$/m);
    expect(table).toMatch(new RegExp(`^pr-1\\s+bot\\s+Ready\\s+http://bot-preview-pr-1\\.${ns}\\.svc\\.cluster\\.local:8080\\s+20\\d\\d-`, "m"));
    // `kubectl wait` reads the Ready condition.
    expect(kubectl(["wait", "aipv/pr-2", "-n", ns, "--for=condition=Ready", "--timeout=10s"]).code).toBe(0);
  }, 420_000);

  it("when the ttl passes the controller destroys the stack and keeps the object as Expired", async () => {
    // The ttl counts from creation: one second has long passed.
    expect(apply("pr-1", { rolloutRef: { name: "bot" }, version: image("pr1"), ttl: "1s" }).code).toBe(0);
    const p = await waitPhase("pr-1", "Expired", 240_000);
    expect(p.status!.url).toBeUndefined();
    const message = `expired at ${p.status!.expiresAt}; stack ${ns}-bot-preview-pr-1 destroyed; delete the AIPreview, or set spec.ttl to a later end to stand it up again`;
    expect(p.status!.message).toBe(message);
    expect(condition(p, "Ready")).toMatchObject({ status: "False", reason: "Expired" });
    expect(condition(p, "Stalled")).toMatchObject({ status: "True", reason: "Expired", message });
    expect(deployments()).toEqual(["bot-preview-pr-2=1"]);
    const listed = stacks();
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout).not.toContain(`${ns}-bot-preview-pr-1`);
    expect(listed.stdout).toContain(`${ns}-bot-preview-pr-2`);
    expect(reasons("pr-1")).toContain("Expired");
    // Kept: a GitOps tool that applied it sees it there and does not create it again.
    expect((await get("pr-1")).status!.phase).toBe("Expired");
    // Deleting an Expired preview has nothing left to destroy.
    kubectlOk(["delete", "aipv", "pr-1", "-n", ns, "--timeout=60s"]);
  }, 300_000);

  it("deleting a preview destroys its stack first, then the object goes", async () => {
    kubectlOk(["delete", "aipv", "pr-2", "-n", ns, "--timeout=240s"]);
    expect(kubectl(["get", "aipv", "pr-2", "-n", ns]).code).not.toBe(0);
    expect(deployments()).toEqual([]);
    expect(stacks().stdout).not.toContain(`${ns}-bot-preview-pr-2`);
    // Read through the event loop: the kubectl calls above block it, so the log may not be read in yet.
    await controller.waitForLog("pr-2 destroyed", (l) => l.msg === "preview environment destroyed" && l.role === "preview-pr-2" && l.reason === "preview deleted", 10_000);
  }, 300_000);

  it("the API server refuses an invalid spec, naming the field (CEL and schema)", () => {
    const zero = apply("bad", { rolloutRef: { name: "bot" }, ttl: "0s" });
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toContain("spec.ttl: Invalid value");
    expect(zero.stderr).toContain("ttl must be a positive duration");
    const many = apply("bad", { rolloutRef: { name: "bot" }, fixtures: { fromRollout: "bot", count: 5000 } });
    expect(many.code).not.toBe(0);
    expect(many.stderr).toContain("spec.fixtures.count");
    const both = apply("bad", { rolloutRef: { name: "bot" }, version: { version: "x", image: "r/x:1", endpoint: "http://x" } });
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain("exactly one of image and endpoint must be set");
    expect(kubectl(["get", "aipv", "bad", "-n", ns]).code).not.toBe(0);
  });

  it("rolloutRef is immutable; an endpoint preview is Ready at its endpoint with no stack", async () => {
    expect(apply("ext", { rolloutRef: { name: "bot" }, version: { version: "ext", endpoint: "https://preview.example.com/hook" } }).code).toBe(0);
    const p = await waitPhase("ext", "Ready", 120_000);
    expect(p.status!.url).toBe("https://preview.example.com/hook");
    expect(p.status!.stack).toBeUndefined();
    const moved = apply("ext", { rolloutRef: { name: "other" }, version: { version: "ext", endpoint: "https://preview.example.com/hook" } });
    expect(moved.code).not.toBe(0);
    expect(moved.stderr).toContain("rolloutRef is immutable");
    kubectlOk(["delete", "aipv", "ext", "-n", ns, "--timeout=60s"]);
  }, 180_000);

  it("a preview without spec.version follows a candidate edit without waiting for the resync; deleting the rollout keeps the previews but destroys their stacks; its return stands them up again", async () => {
    const rollout = (candidate: string) => stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "follow", namespace: ns }, spec: { stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" }, candidate: { version: candidate, endpoint: `http://127.0.0.1:9/${candidate}` }, strategy: { steps: [{ pause: {} }] } } });
    kubectlOk(["apply", "-f", "-"], rollout("v2"));
    expect(apply("fol", { rolloutRef: { name: "follow" }, ttl: "2h" }).code).toBe(0);
    expect(apply("fol-img", { rolloutRef: { name: "follow" }, version: image("fol"), ttl: "2h" }).code).toBe(0);
    expect((await waitPhase("fol", "Ready", 120_000)).status!.url).toBe("http://127.0.0.1:9/v2");
    expect((await waitPhase("fol-img", "Ready")).status!.stack).toBe(`${ns}-follow-preview-fol-img`);
    kubectlOk(["apply", "-f", "-"], rollout("v3"));
    // The controller's resync is 5 minutes: a minute is the rollout watch's doing.
    await waitFor("fol following v3", async () => ((await get("fol")).status?.url === "http://127.0.0.1:9/v3" ? true : undefined), 60_000, 250);
    kubectlOk(["delete", "airollouts.airollout.dev", "follow", "-n", ns, "--timeout=120s"]);
    for (const name of ["fol", "fol-img"]) {
      const p = await waitPhase(name, "Failed", 240_000);
      expect(condition(p, "Stalled")).toMatchObject({ status: "True", reason: "RolloutNotFound" });
      expect(p.status!.url).toBeUndefined();
      expect(p.status!.stack).toBeUndefined();
    }
    expect(deployments().filter((d) => d.startsWith("follow-"))).toEqual([]);
    const listed = stacks();
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout).not.toContain(`${ns}-follow-preview-fol-img`);
    expect(reasons("fol-img")).toContain("Destroyed");
    // Nothing left to destroy: the object goes at once.
    kubectlOk(["delete", "aipv", "fol-img", "-n", ns, "--timeout=60s"]);
    kubectlOk(["apply", "-f", "-"], rollout("v4"));
    await waitFor("fol back at v4", async () => ((await get("fol")).status?.url === "http://127.0.0.1:9/v4" ? true : undefined), 60_000, 250);
    kubectlOk(["delete", "aipv", "fol", "-n", ns, "--timeout=60s"]);
    kubectlOk(["delete", "airollouts.airollout.dev", "follow", "-n", ns, "--timeout=120s"]);
  }, 900_000);

  it("a preview of a rollout that does not exist: Stalled with RolloutNotFound and a Warning naming spec.rolloutRef.name", async () => {
    expect(apply("orphan", { rolloutRef: { name: "nobody" } }).code).toBe(0);
    const p = await waitPhase("orphan", "Failed", 120_000);
    expect(condition(p, "Stalled")).toMatchObject({ status: "True", reason: "RolloutNotFound", message: `spec.rolloutRef.name: AIRollout ${ns}/nobody not found; create it, or point the preview at one that exists` });
    expect(reasons("orphan")).toEqual(["RolloutNotFound"]);
    kubectlOk(["delete", "aipv", "orphan", "-n", ns, "--timeout=60s"]);
  }, 180_000);
});
