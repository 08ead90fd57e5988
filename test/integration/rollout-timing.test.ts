/**
 * Step clocks and failure backoff as a user sees them, with the controller process standing the
 * candidate's environment up through a real `pulumi up` against the local control plane (KWOK
 * makes the Deployment Available):
 * - the first step's duration is measured from when its environment answered Ready, not from
 *   the start of the pass that stood it up, and the status says what is being stood up;
 * - a failing environment is retried with the queue's doubling backoff (0.5 s, 1 s) before the
 *   rollout is Stalled, even though every failure writes status (whose watch event comes back
 *   at once); the stalled status says it gave up and why.
 * Times are compared loosely, as orderings and lower bounds: nothing here bounds speed.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { startNodeSimulator, type NodeSimulator } from "../../controller/src/dev/kwok.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { ControllerProcess, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let sim: NodeSimulator;
let controller: ControllerProcess;

beforeAll(async () => {
  ns = createNamespace("timing");
  const dir = mkdtempSync(join(tmpdir(), "airollout-timing-"));
  sim = await startNodeSimulator({ kubeconfig: kubeconfig(), dir: join(dir, "kwok"), ownerPid: process.pid });
  controller = new ControllerProcess("timing", ["--namespace", ns, "--lease-namespace", ns, "--environments", "pulumi", "--state-dir", join(dir, "state")]);
  await controller.waitForLog("leadership", (l) => l.msg === "became leader");
}, 300_000);

afterAll(async () => {
  await controller?.stop();
  await sim?.stop();
});

const apply = (name: string, spec: Record<string, unknown>) => kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec }));
const get = (name: string) => client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
/** The stable is an external endpoint: only the candidate's canary environment is stood up. */
const stable = { version: "v1", endpoint: "http://127.0.0.1:9/" };

describe("step clocks and backoff, driven by the controller", () => {
  it("a first step's duration is measured from when its environment answered Ready; the status says what is being stood up", async () => {
    apply("clock", { stable, candidate: { version: "v2", image: "registry.example.com/triage:v2" }, strategy: { steps: [{ pause: { duration: "5s" } }, { pause: {} }] } });
    const messages = new Set<string>();
    let firstStepStartedAt: string | undefined;
    const done = await waitFor(
      "step 2 of clock",
      async () => {
        const o = await get("clock");
        if (o.status?.message) messages.add(o.status.message);
        if (o.status?.currentStep === 0 && o.status.phase === "Progressing") firstStepStartedAt = o.status.stepStartedAt;
        return o.status?.phase === "Paused" && o.status.currentStep === 1 ? o : undefined;
      },
      300_000,
      250,
    );
    expect([...messages]).toContain("Standing up environments: canary");
    expect(firstStepStartedAt).toBeDefined();
    const start = Date.parse(firstStepStartedAt!);
    const ready = Date.parse(done.status!.environments!.canary!.lastUpdateTime!);
    const readyLog = controller.lines.find((l) => l.msg === "environment ready" && l.role === "canary" && l.rollout === `${ns}/clock`);
    // The step started after the environment was Ready (before the fix: at the start of the
    // pass that ran `pulumi up`, seconds earlier), and lasted its 5 s from there.
    expect(start).toBeGreaterThanOrEqual(ready);
    expect(start).toBeGreaterThanOrEqual(Date.parse(readyLog!.time as string));
    expect(Date.parse(done.status!.stepStartedAt!) - start).toBeGreaterThanOrEqual(5_000);
  }, 360_000);

  it("a failing environment backs off (0.5 s, then 1 s) before Stalled, and the stalled status says it gave up and why", async () => {
    apply("bad", { stable, candidate: { version: "v2", image: "Registry/Triage:v 2" }, strategy: { steps: [{ setWeight: 50 }, { pause: {} }] } });
    const stalled = await waitFor(
      "bad Stalled",
      async () => {
        const o = await get("bad");
        return o.status?.conditions?.find((c) => c.type === "Stalled" && c.status === "True") ? o : undefined;
      },
      120_000,
      250,
    );
    const failures = controller.lines.filter((l) => l.msg === "environment update failed" && l.rollout === `${ns}/bad`);
    expect(failures.map((l) => l.reason)).toEqual(["InvalidEnvironment", "InvalidEnvironment", "InvalidEnvironment"]);
    const times = failures.map((l) => Date.parse(l.time as string));
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // Nominal 500 ms then 1000 ms; before the fix, 39-57 ms (our own status write requeued at once).
    expect(gaps[0]).toBeGreaterThanOrEqual(0.4 * 500);
    expect(gaps[1]).toBeGreaterThanOrEqual(0.4 * 1000);
    expect(stalled.status!.message).toMatch(/^Gave up standing up environments: the canary environment \(stack \S+-bad-canary\) failed 3 times in a row \(maxConsecutiveFailures 3\): .*Registry\/Triage:v 2.*Not retrying until the spec changes$/);
    // Nothing is retried afterwards.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(controller.lines.filter((l) => l.msg === "environment update failed" && l.rollout === `${ns}/bad`)).toHaveLength(3);
    expect((await get("bad")).status!.message).toBe(stalled.status!.message);
  }, 180_000);
});
