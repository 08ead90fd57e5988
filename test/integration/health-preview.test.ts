/**
 * AIPreview health as the real consumers read it: kstatus from sigs.k8s.io/cli-utils (Flux's
 * healthChecks, `kubectl wait`-style tooling) and the chart's Argo CD check for AIPreview
 * (charts/airollout/files/argocd-health-aipreview.lua) in gopher-lua, restricted as Argo CD
 * restricts a custom script, both through airollout-health (hack/health).
 *
 * Given AIPreviews in each phase, first with the status the controller's own decisions
 * (reconcile/preview.ts) write for each step of a preview's life, then live objects written by a
 * real controller process on the local API server, When the consumers read them, Then kstatus
 * says Current only when the preview is Ready, InProgress while it moves on by itself and when the
 * controller has not seen the object, and Failed when it is Stalled, Expired included (only a
 * person moves an expired preview on: delete it or extend spec.ttl); and Argo CD says Healthy
 * only when Ready, Progressing while Pending/Provisioning or behind the spec, Degraded when
 * Failed and Suspended when Expired (although Expired is Stalled).
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { PREVIEW_FINALIZER, previewPath, type AIPreview, type PreviewStatus } from "../../controller/src/api/preview-schema.ts";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { decidePreview, type PreviewWorkOutcome } from "../../controller/src/reconcile/preview.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { healthConsumers, type HealthConsumers } from "./health-consumers.ts";
import { ControllerProcess, client, createNamespace, kubectl, kubectlOk } from "./helpers.ts";
import { previewInPhase } from "./preview-helpers.ts";

const LUA = join(PROJECT_ROOT, "charts", "airollout", "files", "argocd-health-aipreview.lua");

let consumers: HealthConsumers;
const kstatus = (obj: unknown) => consumers.kstatus(obj);
const argo = (obj: unknown) => consumers.argo(obj, LUA);

beforeAll(async () => {
  consumers = await healthConsumers();
}, 900_000);

// ---------------------------------------------------------------------------------------------
// The status reconcile/preview.ts decides for each step of a preview's life.

describe("AIPreviews with the status the controller's decisions write", () => {
  const created = new Date("2026-11-29T12:00:00Z");
  const soon = new Date(created.getTime() + 60_000);
  const rollout = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bot", namespace: "team", uid: "r1", generation: 1, resourceVersion: "1" },
    spec: { stable: { version: "v1", endpoint: "http://stable.team:8080" }, candidate: { version: "v2", endpoint: "http://v2.team:8080" }, strategy: { steps: [{ pause: {} }] } },
  } as unknown as AIRollout;

  /** An image preview of `bot`, created at `created`, with a one-hour ttl and the given status. */
  function preview(status: PreviewStatus | undefined, extra: Partial<AIPreview["metadata"]> = {}): AIPreview {
    return {
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIPreview",
      metadata: { name: "pr-7", namespace: "team", uid: "p1", generation: 1, resourceVersion: "1", creationTimestamp: created.toISOString(), finalizers: [PREVIEW_FINALIZER], ...extra },
      spec: { rolloutRef: { name: "bot" }, version: { version: "pr-7", image: "registry.example.com/bot:pr-7" }, ttl: "1h" },
      ...(status ? { status } : {}),
    };
  }

  /** The preview with the status the controller decides from `from` at `now`, given the outcome of its work. */
  function decide(from: AIPreview, now: Date, outcome?: PreviewWorkOutcome, withRollout = true): AIPreview {
    const plan = decidePreview({ preview: from, rollout: withRollout ? rollout : undefined, now, fixturesAvailable: false, ...(outcome ? { outcome } : {}) });
    expect(plan.status, "the decision writes a status").toBeDefined();
    return { ...from, status: plan.status! };
  }

  const failure = (n: { transient?: boolean; permanent?: boolean }): PreviewWorkOutcome => ({ type: "ensure", ok: false, failure: { transient: n.transient ?? false, permanent: n.permanent ?? false, reason: "EnvironmentFailed", message: "pulumi up: image pull backoff" } });
  const provisioning = () => decide(preview({ observedGeneration: 0 }), soon);
  const readyPreview = () => decide(provisioning(), soon, { type: "ensure", ok: true, status: { stack: "team-bot-preview-pr-7", phase: "Ready", url: "http://bot-preview-pr-7.team.svc.cluster.local:8080", version: "pr-7" } });

  it("new, as the CRD defaults it (observedGeneration 0): kstatus InProgress, Argo CD Progressing, waiting for the controller", () => {
    const o = preview({ observedGeneration: 0 });
    expect(kstatus(o).status).toBe("InProgress");
    expect(argo(o)).toEqual({ status: "Progressing", message: "Waiting for the controller" });
  });

  it("Provisioning (a stand-up under way, or retried after a transient failure): InProgress and Progressing", () => {
    const o = provisioning();
    expect(o.status?.phase).toBe("Provisioning");
    expect(kstatus(o).status).toBe("InProgress");
    expect(argo(o)).toEqual({ status: "Progressing", message: "standing up pr-7 (registry.example.com/bot:pr-7) through Pulumi" });
    const transient = decide(o, soon, failure({ transient: true }));
    expect(transient.status?.phase).toBe("Provisioning");
    expect(kstatus(transient).status).toBe("InProgress");
    expect(argo(transient)).toEqual({ status: "Progressing", message: "pulumi up: image pull backoff" });
  });

  it("Pending (a phase no decision writes today, only the phase set): Argo CD Progressing", () => {
    const o = preview({ observedGeneration: 1, phase: "Pending" });
    expect(argo(o)).toEqual({ status: "Progressing", message: "Pending" });
  });

  it("Ready: kstatus Current, Argo CD Healthy saying where it serves", () => {
    const o = readyPreview();
    expect(o.status?.phase).toBe("Ready");
    expect(kstatus(o).status).toBe("Current");
    expect(argo(o)).toEqual({ status: "Healthy", message: "serving pr-7 at http://bot-preview-pr-7.team.svc.cluster.local:8080" });
  });

  it("Healthy only when the phase and the Ready condition agree (a status edited by hand): Progressing otherwise", () => {
    const o = readyPreview();
    const withReady = (status: "True" | "False", phase: PreviewStatus["phase"]) => ({ ...o, status: { ...o.status!, phase, conditions: o.status!.conditions!.map((c) => (c.type === "Ready" ? { ...c, status } : c)) } });
    expect(argo(withReady("False", "Ready")).status).toBe("Progressing");
    expect(argo(withReady("True", "Provisioning")).status).toBe("Progressing");
    expect(argo(withReady("True", "Ready")).status).toBe("Healthy");
  });

  it("Ready, then its spec edited (observedGeneration behind generation): InProgress and Progressing, never Current or Healthy", () => {
    const o = readyPreview();
    const edited = { ...o, metadata: { ...o.metadata, generation: 2 } };
    expect(kstatus(edited).status).toBe("InProgress");
    expect(argo(edited)).toEqual({ status: "Progressing", message: "Waiting for the controller" });
  });

  it("Failed and retried with backoff: kstatus InProgress (it moves on by itself), Argo CD Degraded (it does not serve)", () => {
    const o = decide(provisioning(), soon, failure({}));
    expect(o.status?.phase).toBe("Failed");
    expect(o.status?.conditions?.find((c) => c.type === "Reconciling")?.status).toBe("True");
    expect(kstatus(o).status).toBe("InProgress");
    expect(argo(o)).toEqual({ status: "Degraded", message: "pulumi up: image pull backoff" });
  });

  it("Failed and Stalled (a failure no retry clears, a missing rollout): kstatus Failed, Argo CD Degraded with the Stalled message", () => {
    const permanent = decide(provisioning(), soon, failure({ permanent: true }));
    expect(permanent.status?.conditions?.find((c) => c.type === "Stalled")?.status).toBe("True");
    expect(kstatus(permanent).status).toBe("Failed");
    expect(argo(permanent)).toEqual({ status: "Degraded", message: "pulumi up: image pull backoff" });

    const orphan = decide(preview({ observedGeneration: 0 }), soon, undefined, false);
    expect(orphan.status?.phase).toBe("Failed");
    expect(kstatus(orphan).status).toBe("Failed");
    const a = argo(orphan);
    expect(a.status).toBe("Degraded");
    expect(a.message).toContain("spec.rolloutRef.name: AIRollout team/bot not found");
  });

  it("Expired (ttl passed, stack destroyed, object kept): Stalled, so kstatus Failed at once; Argo CD Suspended, not Degraded", () => {
    const later = new Date(created.getTime() + 2 * 3_600_000);
    const o = decide(readyPreview(), later, { type: "destroy", ok: true });
    expect(o.status?.phase).toBe("Expired");
    expect(o.status?.url).toBeUndefined();
    const message = "expired at 2026-11-29T13:00:00.000Z; stack team-bot-preview-pr-7 destroyed; delete the AIPreview, or set spec.ttl to a later end to stand it up again";
    expect(o.status?.conditions?.find((c) => c.type === "Stalled")).toMatchObject({ status: "True", reason: "Expired", message });
    expect(kstatus(o)).toEqual({ status: "Failed", message });
    // The Lua checks Expired before its Stalled -> Degraded rule.
    expect(argo(o)).toEqual({ status: "Suspended", message });
    // Still Expired on the next pass (nothing left to destroy): the same answers.
    const again = decide(o, new Date(later.getTime() + 60_000));
    expect(kstatus(again).status).toBe("Failed");
    expect(argo(again).status).toBe("Suspended");
  });

  it("Expired but its stack could not be destroyed: Failed, retried (InProgress), and Degraded in Argo CD: a stack is left running", () => {
    const later = new Date(created.getTime() + 2 * 3_600_000);
    const o = decide(readyPreview(), later, { type: "destroy", ok: false, message: "pulumi destroy: stack locked" });
    expect(o.status?.phase).toBe("Failed");
    expect(kstatus(o).status).toBe("InProgress");
    const a = argo(o);
    expect(a.status).toBe("Degraded");
    expect(a.message).toContain("destroying its stack failed");
  });

  it("Terminating (deleted, stack being destroyed): kstatus Terminating, Argo CD Progressing", () => {
    const ready = readyPreview();
    const deleted = { ...ready, metadata: { ...ready.metadata, deletionTimestamp: soon.toISOString() } };
    const o = decide(deleted, soon);
    expect(o.status?.phase).toBe("Terminating");
    expect(kstatus(o).status).toBe("Terminating");
    expect(argo(o)).toEqual({ status: "Progressing", message: "destroying stack team-bot-preview-pr-7" });
  });
});

// ---------------------------------------------------------------------------------------------
// Live objects on the real API server, written by a real controller process.

describe("health of live AIPreviews (a controller run with --environments none)", () => {
  let ns: string;
  let controller: ControllerProcess;

  beforeAll(async () => {
    ns = createNamespace("health-aipv");
    // No Pulumi: endpoint previews are Ready at their endpoint, image previews Stalled.
    controller = new ControllerProcess("health-aipv", ["--namespace", ns, "--lease-namespace", ns, "--environments", "none"]);
    await controller.waitForLog("watching previews", (l) => l.msg === "watching previews", 120_000);
    const spec = { stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" }, candidate: { version: "v2", endpoint: "http://127.0.0.1:9/v2" }, strategy: { steps: [{ pause: {} }] } };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
  }, 300_000);

  afterAll(async () => {
    await controller?.stop();
  });

  const apply = (namespace: string, name: string, spec: Record<string, unknown>) => kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIPreview", metadata: { name, namespace }, spec }));

  /** The live preview once the controller has written a status of its generation in `phase`. */
  const settled = (name: string, phase: string): Promise<AIPreview> => previewInPhase(ns, name, phase, 120_000);

  it("Ready at its endpoint: kstatus Current, Argo CD Healthy, kubectl wait returns 0; behind an edit: InProgress and Progressing", async () => {
    apply(ns, "ready", { rolloutRef: { name: "bot" }, ttl: "2h" });
    const o = await settled("ready", "Ready");
    expect(kstatus(o).status).toBe("Current");
    expect(argo(o)).toEqual({ status: "Healthy", message: "serving v2 at its endpoint http://127.0.0.1:9/v2" });
    const wait = kubectl(["wait", "--for=condition=Ready", "aipv/ready", "-n", ns, "--timeout=30s"]);
    expect(wait.code, wait.stdout + wait.stderr).toBe(0);
    // As the API server serves it between a spec edit and the controller's next status.
    const edited = { ...o, metadata: { ...o.metadata, generation: o.metadata.generation + 1 } };
    expect(kstatus(edited).status).toBe("InProgress");
    expect(argo(edited)).toEqual({ status: "Progressing", message: "Waiting for the controller" });
  });

  it("Expired: kstatus Failed, Argo CD Suspended saying when it expired, kubectl wait for Stalled returns 0 and for Ready times out", async () => {
    // The ttl counts from creation: one second has passed by the time the controller looks again.
    apply(ns, "expired", { rolloutRef: { name: "bot" }, ttl: "1s" });
    const o = await settled("expired", "Expired");
    expect(kstatus(o).status).toBe("Failed");
    const a = argo(o);
    expect(a.status).toBe("Suspended");
    expect(a.message).toMatch(/^expired at 20\d\d-.*; delete the AIPreview, or set spec\.ttl to a later end to stand it up again$/);
    const stalled = kubectl(["wait", "--for=condition=Stalled", "aipv/expired", "-n", ns, "--timeout=30s"]);
    expect(stalled.code, stalled.stdout + stalled.stderr).toBe(0);
    const wait = kubectl(["wait", "--for=condition=Ready", "aipv/expired", "-n", ns, "--timeout=5s"]);
    expect(wait.code, wait.stdout + wait.stderr).not.toBe(0);
  });

  it("an image preview on a controller that stands nothing up: Failed and Stalled, kstatus Failed, Argo CD Degraded naming --environments none", async () => {
    apply(ns, "image", { rolloutRef: { name: "bot" }, version: { version: "pr-1", image: "registry.example.com/bot:pr-1" } });
    const o = await settled("image", "Failed");
    expect(o.status?.conditions?.find((c) => c.type === "Stalled")).toMatchObject({ status: "True", reason: "EnvironmentsDisabled" });
    expect(kstatus(o).status).toBe("Failed");
    const a = argo(o);
    expect(a.status).toBe("Degraded");
    expect(a.message).toContain("--environments none");
  });

  it("a preview of a rollout that does not exist: kstatus Failed, Argo CD Degraded naming spec.rolloutRef.name", async () => {
    apply(ns, "orphan", { rolloutRef: { name: "nope" } });
    const o = await settled("orphan", "Failed");
    expect(kstatus(o).status).toBe("Failed");
    const a = argo(o);
    expect(a.status).toBe("Degraded");
    expect(a.message).toContain("spec.rolloutRef.name");
  });

  it("before any controller has seen it: kstatus InProgress, Argo CD Progressing, waiting for the controller", async () => {
    // A namespace no controller watches: the object keeps the CRD's default status.
    const other = createNamespace("health-aipv-unwatched");
    apply(other, "new", { rolloutRef: { name: "bot" } });
    const o = await client().get<AIPreview>(previewPath(other, "new"));
    expect(o.status?.observedGeneration).toBe(0);
    expect(kstatus(o).status).toBe("InProgress");
    expect(argo(o)).toEqual({ status: "Progressing", message: "Waiting for the controller" });
  });
});
