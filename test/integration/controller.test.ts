/**
 * The controller against the real local control plane: kubectl in, status and Events out,
 * crash/restart, leader election and API server restarts.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { restartComponent } from "../../controller/src/dev/controlplane.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { ControllerProcess, client, createNamespace, kubeconfig, kubectl, kubectlOk, waitFor } from "./helpers.ts";

const example = parse(readFileSync(join(PROJECT_ROOT, "examples", "airollout.yaml"), "utf8")) as { metadata: Record<string, unknown>; spec: Record<string, unknown> };

/**
 * The example with its versions as loopback endpoint URLs: these tests are about the controller
 * and the API server, not Pulumi (test/integration/environments.test.ts covers image versions).
 */
function manifest(ns: string, name: string, specPatch: Record<string, unknown> = {}): string {
  const spec = example.spec as { stable?: Record<string, unknown>; candidate: Record<string, unknown> };
  const asEndpoint = (v: Record<string, unknown>, path: string) => {
    const { image: _image, ...rest } = v;
    return { ...rest, endpoint: `http://127.0.0.1:9/${path}` };
  };
  // The example names only its candidate (ADR 0009); these tests roll it out from a named stable
  // v1, so that the first apply runs the steps instead of adopting the candidate.
  const stable = spec.stable ?? { ...spec.candidate, version: "v1", config: { ...(spec.candidate.config as Record<string, unknown>), model: "small" } };
  return stringify({ ...example, metadata: { name, namespace: ns }, spec: { ...example.spec, stable: asEndpoint(stable, "stable"), candidate: asEndpoint(spec.candidate, "candidate"), ...specPatch } });
}

async function getRollout(ns: string, name: string): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
}

interface EventItem {
  reason: string;
  type: string;
  message: string;
  count?: number;
}
async function eventsFor(ns: string, name: string): Promise<EventItem[]> {
  const list = await client().get<{ items: EventItem[] }>(`/api/v1/namespaces/${ns}/events`, { fieldSelector: `involvedObject.name=${name},involvedObject.kind=AIRollout` });
  return list.items;
}

const controllers: ControllerProcess[] = [];
function startController(id: string, ns: string, env: Record<string, string> = {}, extra: string[] = []): ControllerProcess {
  const c = new ControllerProcess(id, ["--namespace", ns, "--lease-namespace", ns, ...extra], env);
  controllers.push(c);
  return c;
}

afterAll(async () => {
  await Promise.all(controllers.map((c) => c.stop("SIGKILL")));
});

describe("AIRollout API on the real API server", () => {
  let ns: string;
  beforeAll(() => {
    ns = createNamespace("api");
  });

  it.each([
    ["a weight of 150", { strategy: { steps: [{ setWeight: 150 }] } }, "spec.strategy.steps[0].setWeight"],
    ["empty steps", { strategy: { steps: [] } }, "spec.strategy.steps"],
    ["a duration that does not parse", { strategy: { steps: [{ pause: { duration: "5 minutes" } }] } }, "spec.strategy.steps[0].pause.duration"],
    ["a step with two actions", { strategy: { steps: [{ setWeight: 5, pause: {} }] } }, "exactly one of shadow, setWeight, pause, analysis"],
    ["both image and endpoint", { candidate: { version: "v2", image: "x", endpoint: "http://x" } }, "exactly one of image and endpoint"],
  ])("rejects %s, naming the field", (_what, patch, expected) => {
    const res = kubectl(["apply", "-f", "-"], manifest(ns, "bad", patch));
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(expected);
    expect(kubectl(["get", "air", "bad", "-n", ns]).code).not.toBe(0);
  });

  it("the API server accepts examples/airollout.yaml as it is", () => {
    const res = kubectl(["apply", "--dry-run=server", "-f", join(PROJECT_ROOT, "examples", "airollout.yaml")]);
    expect(res.stderr).toBe("");
    expect(res.stdout).toContain("triage-bot created (server dry run)");
  });

  it("kubectl explain shows the field descriptions", () => {
    const out = kubectlOk(["explain", "airollout.spec.strategy"]);
    expect(out).toContain("How the candidate is rolled out.");
    expect(out).toContain("steps");
    expect(kubectlOk(["explain", "air.spec.strategy.steps.setWeight"])).toContain("Percent of requests (0..100) sent to the candidate.");
  });
});

describe("controller", () => {
  let ns: string;
  let main: ControllerProcess;
  beforeAll(async () => {
    ns = createNamespace("ctl");
    main = startController("main", ns);
    await main.waitForLog("leadership", (l) => l.msg === "became leader", 30_000);
  });

  it("initialises an applied AIRollout: status, observedGeneration, conditions, one Event, printer columns", async () => {
    kubectlOk(["apply", "-f", "-"], manifest(ns, "triage-bot"));
    const obj = await waitFor("status initialised and the first step started", async () => {
      const o = await getRollout(ns, "triage-bot");
      return o.status?.phase === "ShadowTesting" ? o : undefined;
    });
    expect(obj.status!.observedGeneration).toBe(obj.metadata.generation);
    expect(obj.status).toMatchObject({ currentStep: 0, stepCount: 7, canaryWeight: 0, shadowEnabled: true, stableVersion: "v1", candidateVersion: "v2" });
    expect(obj.status!.steps!.map((s) => s.type)).toEqual(["shadow", "setWeight", "pause", "analysis", "setWeight", "pause", "setWeight"]);
    // Endpoint versions own no environments: no finalizer, one write less (image versions get it).
    expect(obj.metadata.finalizers ?? []).not.toContain("airollout.dev/environments");
    const types = Object.fromEntries(obj.status!.conditions!.map((c) => [c.type, c.status]));
    // Ready waits for the candidate to serve all traffic; kstatus reads Reconciling=True as InProgress.
    expect(types).toEqual({ Ready: "False", Reconciling: "True", Stalled: "False", Progressing: "True", Degraded: "False" });
    const events = await waitFor("Initialized and StepStarted events", async () => {
      const evs = await eventsFor(ns, "triage-bot");
      return evs.some((e) => e.reason === "Initialized") && evs.some((e) => e.reason === "StepStarted") ? evs : undefined;
    });
    expect(events.filter((e) => e.reason === "Initialized")).toHaveLength(1);
    expect(events.filter((e) => e.reason === "StepStarted")).toHaveLength(1);

    const table = kubectlOk(["get", "air", "-n", ns]);
    const header = table.split("\n")[0]!;
    for (const col of ["NAME", "PHASE", "WEIGHT", "STEP", "SHADOW MISMATCH", "AGE"]) expect(header).toContain(col);
    expect(table.split("\n")[1]).toMatch(/^triage-bot\s+ShadowTesting\s+0\s+0\s/);
    expect(main.has((l) => l.rollout === `${ns}/triage-bot` && l.msg === "phase changed")).toBe(true);
  });

  it("works as a kubectl plugin: `kubectl airollout status` and `kubectl airollout promote`", () => {
    const dir = mkdtempSync(join(tmpdir(), "airollout-plugin-"));
    symlinkSync(join(PROJECT_ROOT, "bin", "airollout"), join(dir, "kubectl-airollout"));
    const env = { ...process.env, PATH: `${dir}:${process.env.PATH}`, KUBECONFIG: kubeconfig() };
    const status = spawnSync(inject("kubectl"), ["airollout", "status", "triage-bot", "-n", ns], { env, encoding: "utf8" });
    expect(status.stderr).toBe("");
    expect(status.stdout).toContain(`Name:        ${ns}/triage-bot`);
    expect(status.stdout).toContain("Phase:       ShadowTesting");
    const promote = spawnSync(inject("kubectl"), ["airollout", "promote", "triage-bot", "-n", ns], { env, encoding: "utf8" });
    expect(promote.stdout).toContain("promotion of the current step requested");
  });

  it("bumps observedGeneration on a strategy change without restarting when the candidate is unchanged", async () => {
    kubectlOk(["patch", "air", "triage-bot", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { strategy: { steps: [{ setWeight: 10 }, { setWeight: 100 }] } } })]);
    const obj = await waitFor("observedGeneration 2", async () => {
      const o = await getRollout(ns, "triage-bot");
      return o.status?.observedGeneration === 2 ? o : undefined;
    });
    expect(obj.status!.stepCount).toBe(2);
    expect(obj.status!.revision).toBeDefined();
    expect((await eventsFor(ns, "triage-bot")).filter((e) => e.reason === "Initialized" || e.reason === "NewRevision")).toHaveLength(1);
  });

  it("a missing Secret gives Degraded naming the field and a Warning; creating it recovers, with backoff and no hot loop", async () => {
    kubectlOk(["apply", "-f", "-"], manifest(ns, "signed", { traffic: { signature: { scheme: "github", secretRef: { name: "hook-hmac", key: "secret" } } } }));
    const degraded = await waitFor("Degraded", async () => {
      const o = await getRollout(ns, "signed");
      return o.status?.conditions?.find((c) => c.type === "Degraded" && c.status === "True");
    });
    expect(degraded.reason).toBe("MissingReference");
    expect(degraded.message).toContain("spec.traffic.signature.secretRef");
    expect(degraded.message).toContain('Secret "hook-hmac" not found');
    const warnings = await waitFor("Warning event", async () => {
      const w = (await eventsFor(ns, "signed")).filter((e) => e.type === "Warning" && e.reason === "MissingReference");
      return w.length ? w : undefined;
    });
    expect(warnings).toHaveLength(1);

    // Backoff: over 3 s an exponential backoff from 0.5 s makes at most a handful of passes.
    const before = main.lines.filter((l) => l.rollout === `${ns}/signed`).length;
    await new Promise((r) => setTimeout(r, 3000));
    expect(main.lines.filter((l) => l.rollout === `${ns}/signed`).length - before).toBeLessThan(8);
    expect((await eventsFor(ns, "signed")).filter((e) => e.type === "Warning")).toHaveLength(1);

    kubectlOk(["create", "secret", "generic", "hook-hmac", "-n", ns, "--from-literal=secret=s3cret"]);
    const ready = await waitFor("recovered", async () => {
      const o = await getRollout(ns, "signed");
      return o.status?.phase === "ShadowTesting" ? o : undefined;
    }, 60_000);
    expect(ready.status!.conditions!.find((c) => c.type === "Degraded")!.status).toBe("False");
  });

  it("a Secret deleted mid-rollout makes it Degraded; recreated, the rollout resumes at the same step instead of restarting", async () => {
    const steps = [{ setWeight: 10 }, { setWeight: 30 }, { pause: {} }, { setWeight: 100 }];
    kubectlOk(["apply", "-f", "-"], manifest(ns, "resume", { traffic: { signature: { scheme: "github", secretRef: { name: "resume-hmac", key: "secret" } } }, strategy: { steps } }));
    kubectlOk(["create", "secret", "generic", "resume-hmac", "-n", ns, "--from-literal=secret=s3cret"]);
    const paused = await waitFor("paused at step 3", async () => {
      const o = await getRollout(ns, "resume");
      return o.status?.phase === "Paused" && o.status.currentStep === 2 ? o : undefined;
    }, 60_000);
    const revision = paused.status!.revision;

    kubectlOk(["delete", "secret", "resume-hmac", "-n", ns]);
    const degraded = await waitFor("Degraded mid-rollout", async () => {
      const o = await getRollout(ns, "resume");
      return o.status?.phase === "Degraded" ? o : undefined;
    }, 60_000);
    expect(degraded.status).toMatchObject({ interruptedPhase: "Paused", currentStep: 2, canaryWeight: 30 });

    kubectlOk(["create", "secret", "generic", "resume-hmac", "-n", ns, "--from-literal=secret=s3cret"]);
    const resumed = await waitFor("resumed", async () => {
      const o = await getRollout(ns, "resume");
      return o.status?.phase === "Paused" ? o : undefined;
    }, 60_000);
    expect(resumed.status).toMatchObject({ currentStep: 2, canaryWeight: 30, revision });
    const reasons = (await eventsFor(ns, "resume")).map((e) => e.reason);
    expect(reasons).toContain("Recovered");
    expect(reasons.filter((r) => r === "Initialized" || r === "NewRevision")).toEqual(["Initialized"]);
  });

  it("deleting a rollout of endpoint versions (no environments, no finalizer) removes it at once, with no teardown", async () => {
    expect((await getRollout(ns, "signed")).metadata.finalizers ?? []).toEqual([]);
    // Its series on /metrics: one phase and the canary weight, gone with the rollout (an alert on
    // a deleted rollout's last phase would otherwise fire until the controller restarts).
    const started = await main.waitForLog("metrics port", (l) => l.msg === "controller started" && typeof l.port === "number");
    const series = async () =>
      (await (await fetch(`http://127.0.0.1:${started.port as number}/metrics`)).text())
        .split("\n")
        .filter((l) => l.startsWith("airollout_controller_rollout_") && l.includes(`namespace="${ns}",name="signed"`));
    expect((await series()).map((l) => l.replace(/\{.*$/, "")).sort()).toEqual(["airollout_controller_rollout_canary_weight", "airollout_controller_rollout_phase"]);
    kubectlOk(["delete", "air", "signed", "-n", ns, "--wait=true", "--timeout=30s"]);
    expect(kubectl(["get", "air", "signed", "-n", ns]).code).not.toBe(0);
    expect((await eventsFor(ns, "signed")).some((e) => e.reason === "Deleting")).toBe(false);
    await waitFor("the deleted rollout's series gone from /metrics", async () => ((await series()).length === 0 ? true : undefined), 30_000);
  });

  it("recovers its watch when the API server restarts under it", async () => {
    await restartComponent("kube-apiserver", { dir: inject("devDir"), downtimeMs: 2000 });
    kubectlOk(["apply", "-f", "-"], manifest(ns, "after-restart"));
    const obj = await waitFor("reconciled after restart", async () => {
      const o = await getRollout(ns, "after-restart");
      return o.status?.phase === "ShadowTesting" ? o : undefined;
    }, 60_000);
    expect(obj.status!.observedGeneration).toBe(1);
    expect(main.exited).toBe(false);
    // The restarted API server's watch cache starts at the current revision, which Lease
    // renewals have moved past the informer's last one: resuming answers 410 Gone, and the
    // informer relists instead of giving up.
    expect(main.has((l) => l.msg === "watch resourceVersion expired (410 Gone); relisting")).toBe(true);
  });

  afterAll(async () => {
    await main.stop("SIGTERM");
  });
});

describe("controller killed mid-reconcile", () => {
  it("finishes after restart without duplicated Events or lost status", async () => {
    const ns = createNamespace("kill");
    // The failpoint holds the pass between recording Events and writing status: the worst
    // moment to die.
    const first = startController("doomed", ns, { AIROLLOUT_FAILPOINT: "after-events=30000" });
    await first.waitForLog("leadership", (l) => l.msg === "became leader");
    kubectlOk(["apply", "-f", "-"], manifest(ns, "crashy"));
    await first.waitForLog("failpoint", (l) => l.msg === "failpoint after-events reached");
    await first.stop("SIGKILL");
    expect((await getRollout(ns, "crashy")).status?.phase).toBeUndefined();
    expect((await eventsFor(ns, "crashy")).filter((e) => e.reason === "Initialized")).toHaveLength(1);

    // The killed replica's lease has to expire (15 s) before the next one may act.
    const second = startController("successor", ns);
    const obj = await waitFor("initialised after restart", async () => {
      const o = await getRollout(ns, "crashy");
      return o.status?.phase === "ShadowTesting" ? o : undefined;
    }, 60_000);
    expect(obj.status!.observedGeneration).toBe(1);
    const evs = (await eventsFor(ns, "crashy")).filter((e) => e.reason === "Initialized");
    expect(evs).toHaveLength(1);
    expect(evs[0]!.count ?? 1).toBe(1);
    await second.stop();
  });
});

describe("leader election", () => {
  it("exactly one of two replicas leads; when it dies the other takes over within the lease duration", async () => {
    const ns = createNamespace("lead");
    const a = startController("replica-a", ns);
    const b = startController("replica-b", ns);
    const leaderLine = await waitFor("a leader", () => a.lines.find((l) => l.msg === "became leader") ?? b.lines.find((l) => l.msg === "became leader"));
    expect(leaderLine).toBeDefined();
    await new Promise((r) => setTimeout(r, 5000));
    const leaders = [a, b].filter((c) => c.has((l) => l.msg === "became leader"));
    expect(leaders).toHaveLength(1);
    const leader = leaders[0]!;
    const standby = leader === a ? b : a;
    const lease = await client().get<{ spec: { holderIdentity: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/airollout-controller`);
    expect(lease.spec.holderIdentity).toBe(leader.id);

    kubectlOk(["apply", "-f", "-"], manifest(ns, "one"));
    await waitFor("reconciled by the leader", async () => (await getRollout(ns, "one")).status?.observedGeneration === 1);
    expect(standby.has((l) => l.rollout === `${ns}/one`)).toBe(false);

    const killedAt = Date.now();
    await leader.stop("SIGKILL");
    await standby.waitForLog("takeover", (l) => l.msg === "became leader", 30_000);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThan(15_000 + 2 * 2000 + 2000);
    kubectlOk(["apply", "-f", "-"], manifest(ns, "two"));
    await waitFor("reconciled by the new leader", async () => (await getRollout(ns, "two")).status?.observedGeneration === 1);
    console.log(`leader takeover after SIGKILL: ${(takeoverMs / 1000).toFixed(1)}s (lease 15s)`);
    await standby.stop();
  });

  it("a SIGTERMed leader releases the lease, so the standby takes over at once", async () => {
    const ns = createNamespace("release");
    const a = startController("gentle-a", ns);
    await a.waitForLog("leader", (l) => l.msg === "became leader");
    const b = startController("gentle-b", ns);
    await b.waitForLog("waiting", (l) => l.msg === "waiting for leadership");
    const t0 = Date.now();
    expect(await a.stop("SIGTERM")).toBe(0);
    expect(a.has((l) => l.msg === "released lease")).toBe(true);
    await b.waitForLog("takeover", (l) => l.msg === "became leader", 14_000);
    // Sooner than the 15 s lease could expire: the standby took a released lease.
    expect(Date.now() - t0).toBeLessThan(15_000);
    await b.stop();
  });
});
