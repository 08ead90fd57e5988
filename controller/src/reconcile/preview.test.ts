import { describe, expect, it } from "vitest";
import type { AIRollout } from "../api/schema.ts";
import { PREVIEW_FINALIZER, type AIPreview } from "../api/preview-schema.ts";
import type { FixtureReplaySummary } from "../fixtures/port.ts";
import type { EventSpec } from "./contract.ts";
import { decidePreview, runPreviewPass, type PreviewPlan, type PreviewWork, type PreviewWorkOutcome } from "./preview.ts";

const T0 = Date.parse("2026-05-01T00:00:00Z");
const HOUR = 3_600_000;

function rollout(spec: Record<string, unknown> = {}, status: AIRollout["status"] = undefined): AIRollout {
  return {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bot", namespace: "team", uid: "r1", generation: 1, resourceVersion: "1" },
    spec: {
      stable: { version: "v1", endpoint: "http://stable.team.svc:8080" },
      candidate: { version: "v2", image: "registry/bot:v2" },
      strategy: { steps: [{ pause: {} }] },
      ...spec,
    },
    ...(status ? { status } : {}),
  };
}

/** Drives runPreviewPass the way kube/preview-controller.ts does, with fakes and a simulated clock. */
class Sim {
  obj: AIPreview | undefined;
  rollout: AIRollout | undefined = rollout();
  now = T0;
  fixturesAvailable = true;
  events: EventSpec[] = [];
  work: PreviewWork[] = [];
  statusWrites = 0;
  ensure: (w: Extract<PreviewWork, { type: "ensure" }>) => PreviewWorkOutcome = (w) => ({ type: "ensure", ok: true, status: { stack: `team-bot-${w.role}`, phase: "Ready", url: `http://bot-${w.role}.team.svc.cluster.local:8080`, version: w.version.version } });
  destroy: () => PreviewWorkOutcome = () => ({ type: "destroy", ok: true });
  replay: (req: Extract<PreviewWork, { type: "replay" }>["request"]) => PreviewWorkOutcome = () => ({ type: "replay", ok: true, summary: summary() });

  constructor(spec: Record<string, unknown> = { rolloutRef: { name: "bot" } }) {
    this.obj = { apiVersion: "airollout.dev/v1alpha1", kind: "AIPreview", metadata: { name: "pr-7", namespace: "team", uid: "p1", generation: 1, resourceVersion: "1", creationTimestamp: new Date(T0).toISOString() }, spec };
  }

  get status() {
    return this.obj!.status!;
  }

  condition(type: string) {
    return this.status.conditions?.find((c) => c.type === type);
  }

  async pass() {
    return runPreviewPass(this.obj!, this.rollout, this.fixturesAvailable, {
      clock: () => new Date(this.now),
      apply: async (p: AIPreview, plan: PreviewPlan) => {
        let obj = structuredClone(p);
        if (plan.addFinalizer) obj.metadata.finalizers = [...(obj.metadata.finalizers ?? []), PREVIEW_FINALIZER];
        this.events.push(...plan.events);
        if (plan.status && JSON.stringify(plan.status) !== JSON.stringify(obj.status)) {
          obj = { ...obj, status: plan.status };
          this.statusWrites++;
        }
        if (plan.removeFinalizer) {
          this.obj = undefined;
          return undefined;
        }
        this.obj = obj;
        return obj;
      },
      work: async (w) => {
        this.work.push(w);
        if (w.type === "ensure") return this.ensure(w);
        if (w.type === "destroy") return this.destroy();
        return this.replay(w.request);
      },
    });
  }

  edit(spec: Record<string, unknown>) {
    this.obj = { ...this.obj!, spec, metadata: { ...this.obj!.metadata, generation: this.obj!.metadata.generation + 1 } };
  }

  delete() {
    this.obj = { ...this.obj!, metadata: { ...this.obj!.metadata, deletionTimestamp: new Date(this.now).toISOString() } };
  }

  reasons() {
    return this.events.map((e) => e.reason);
  }
}

function summary(over: Partial<FixtureReplaySummary> = {}): FixtureReplaySummary {
  return { replayed: 50, mismatched: 3, errors: 0, topFields: [{ path: "$.intent", mismatches: 3 }], source: "gateway:team/bot", at: new Date(T0).toISOString(), ...over };
}

describe("an image preview: provisioned, Ready, expired", () => {
  it("adds the finalizer, stands the candidate up as preview-<name>, and is Ready with the stack's URL until its ttl", async () => {
    const sim = new Sim();
    const res = await sim.pass();
    expect(sim.obj!.metadata.finalizers).toEqual([PREVIEW_FINALIZER]);
    expect(sim.work).toEqual([{ type: "ensure", role: "preview-pr-7", version: expect.objectContaining({ version: "v2", image: "registry/bot:v2" }), expiresAt: new Date(T0 + 24 * HOUR) }]);
    expect(sim.status).toMatchObject({ observedGeneration: 1, phase: "Ready", url: "http://bot-preview-pr-7.team.svc.cluster.local:8080", stack: "team-bot-preview-pr-7", version: "v2", expiresAt: "2026-05-02T00:00:00.000Z" });
    expect(sim.condition("Ready")).toMatchObject({ status: "True", observedGeneration: 1 });
    expect(sim.condition("Reconciling")).toMatchObject({ status: "False" });
    expect(sim.condition("Stalled")).toMatchObject({ status: "False" });
    expect(sim.reasons()).toEqual(["Provisioning", "Ready"]);
    // Provisioning was written before the stand-up ran, then Ready: two writes.
    expect(sim.statusWrites).toBe(2);
    expect(res).toEqual({ requeueAfterMs: 24 * HOUR });
  });

  it("a pass on a Ready preview does nothing but wait for the ttl's end", async () => {
    const sim = new Sim();
    await sim.pass();
    sim.now += HOUR;
    const writes = sim.statusWrites;
    expect(await sim.pass()).toEqual({ requeueAfterMs: 23 * HOUR });
    expect(sim.work).toHaveLength(1);
    expect(sim.statusWrites).toBe(writes);
  });

  it("when the ttl passes, destroys the stack once and keeps the object as Expired, without url or stack", async () => {
    const sim = new Sim({ rolloutRef: { name: "bot" }, ttl: "2h" });
    await sim.pass();
    sim.now = T0 + 2 * HOUR;
    expect(await sim.pass()).toEqual({});
    expect(sim.work.map((w) => w.type)).toEqual(["ensure", "destroy"]);
    expect(sim.work[1]).toEqual({ type: "destroy", role: "preview-pr-7", reason: "expired" });
    expect(sim.status.phase).toBe("Expired");
    expect(sim.status.url).toBeUndefined();
    expect(sim.status.stack).toBeUndefined();
    const message = "expired at 2026-05-01T02:00:00.000Z; stack team-bot-preview-pr-7 destroyed; delete the AIPreview, or set spec.ttl to a later end to stand it up again";
    expect(sim.status.message).toBe(message);
    expect(sim.condition("Ready")).toMatchObject({ status: "False", reason: "Expired" });
    expect(sim.condition("Reconciling")).toMatchObject({ status: "False" });
    // Only a person moves it on: Stalled, so kstatus reads Failed at once (no Flux timeout).
    expect(sim.condition("Stalled")).toMatchObject({ status: "True", reason: "Expired", message });
    expect(sim.reasons().at(-1)).toBe("Expired");
    // Expired is final: later passes neither destroy again nor requeue.
    sim.now += HOUR;
    expect(await sim.pass()).toEqual({});
    expect(sim.work).toHaveLength(2);
  });

  it("an Expired preview whose ttl is edited to end later is stood up again", async () => {
    const sim = new Sim({ rolloutRef: { name: "bot" }, ttl: "1h" });
    await sim.pass();
    sim.now = T0 + 2 * HOUR;
    await sim.pass();
    expect(sim.status.phase).toBe("Expired");
    sim.edit({ rolloutRef: { name: "bot" }, ttl: "48h" });
    expect(await sim.pass()).toEqual({ requeueAfterMs: 46 * HOUR });
    expect(sim.work.map((w) => w.type)).toEqual(["ensure", "destroy", "ensure"]);
    expect(sim.status).toMatchObject({ phase: "Ready", observedGeneration: 2, expiresAt: "2026-05-03T00:00:00.000Z" });
    expect(sim.condition("Stalled")).toMatchObject({ status: "False" });
  });

  it("ttl: spec.ttl, else the rollout's spec.preview.ttl, else 24h; a rollout ttl of 0s is refused naming spec.ttl", async () => {
    const own = new Sim({ rolloutRef: { name: "bot" }, ttl: "90m" });
    await own.pass();
    expect(own.status.expiresAt).toBe("2026-05-01T01:30:00.000Z");
    const fromRollout = new Sim();
    fromRollout.rollout = rollout({ preview: { ttl: "3h" } });
    await fromRollout.pass();
    expect(fromRollout.status.expiresAt).toBe("2026-05-01T03:00:00.000Z");
    const zero = new Sim();
    zero.rollout = rollout({ preview: { ttl: "0s" } });
    expect(await zero.pass()).toEqual({ backoff: true });
    expect(zero.work).toEqual([]);
    expect(zero.status.phase).toBe("Failed");
    expect(zero.condition("Stalled")).toMatchObject({ status: "True", reason: "InvalidRollout" });
    expect(zero.status.message).toContain("spec.ttl: not set, and AIRollout team/bot spec.preview.ttl is 0s");
  });

  it("spec.version wins over the rollout's candidate", async () => {
    const sim = new Sim({ rolloutRef: { name: "bot" }, version: { version: "pr7", image: "registry/bot:pr-7" } });
    await sim.pass();
    expect(sim.work[0]).toMatchObject({ type: "ensure", version: { version: "pr7", image: "registry/bot:pr-7" } });
    expect(sim.status.version).toBe("pr7");
  });

  it("a spec edit stands the new version up again", async () => {
    const sim = new Sim();
    await sim.pass();
    sim.edit({ rolloutRef: { name: "bot" }, version: { version: "v3", image: "registry/bot:v3" } });
    await sim.pass();
    expect(sim.work.map((w) => w.type)).toEqual(["ensure", "ensure"]);
    expect(sim.status).toMatchObject({ observedGeneration: 2, phase: "Ready", version: "v3" });
  });

  it("a preview without spec.version follows the rollout's candidate when it changes", async () => {
    const sim = new Sim();
    await sim.pass();
    sim.rollout = rollout({ candidate: { version: "v3", image: "registry/bot:v3" } });
    await sim.pass();
    expect(sim.work.map((w) => w.type)).toEqual(["ensure", "ensure"]);
    expect(sim.work[1]).toMatchObject({ version: { version: "v3", image: "registry/bot:v3" } });
    expect(sim.status.version).toBe("v3");
    await sim.pass();
    expect(sim.work).toHaveLength(2);
  });

  it("an image preview whose expiry moved (the rollout's ttl changed) is updated again, so the stack's expiry tag follows", async () => {
    const sim = new Sim();
    await sim.pass();
    sim.rollout = rollout({ preview: { ttl: "48h" } });
    await sim.pass();
    expect(sim.work).toHaveLength(2);
    expect(sim.work[1]).toMatchObject({ type: "ensure", expiresAt: new Date(T0 + 48 * HOUR) });
  });
});

describe("endpoint versions need no stack", () => {
  it("Ready at once with the endpoint as URL, nothing stood up, nothing destroyed when deleted", async () => {
    const sim = new Sim({ rolloutRef: { name: "bot" }, version: { version: "ext", endpoint: "https://preview.example.com/hook" } });
    await sim.pass();
    expect(sim.work).toEqual([]);
    expect(sim.status).toMatchObject({ phase: "Ready", url: "https://preview.example.com/hook" });
    expect(sim.status.stack).toBeUndefined();
    sim.delete();
    await sim.pass();
    expect(sim.obj).toBeUndefined();
    expect(sim.work).toEqual([]);
  });

  it("an image preview edited to an endpoint destroys its old stack first", async () => {
    const sim = new Sim();
    await sim.pass();
    sim.edit({ rolloutRef: { name: "bot" }, version: { version: "ext", endpoint: "https://preview.example.com/hook" } });
    await sim.pass();
    expect(sim.work.map((w) => w.type)).toEqual(["ensure", "destroy"]);
    expect(sim.status).toMatchObject({ phase: "Ready", url: "https://preview.example.com/hook" });
    expect(sim.status.stack).toBeUndefined();
  });
});

describe("deletion", () => {
  it("destroys the stack (Terminating meanwhile), then removes the finalizer", async () => {
    const sim = new Sim();
    await sim.pass();
    sim.delete();
    let seen: string | undefined;
    sim.destroy = () => {
      seen = sim.obj!.status!.phase;
      return { type: "destroy", ok: true };
    };
    await sim.pass();
    expect(seen).toBe("Terminating");
    expect(sim.work.at(-1)).toEqual({ type: "destroy", role: "preview-pr-7", reason: "preview deleted" });
    expect(sim.obj).toBeUndefined();
    expect(sim.reasons().at(-1)).toBe("Destroyed");
  });

  it("a failed destroy keeps the finalizer, says why, and backs off", async () => {
    const sim = new Sim();
    await sim.pass();
    sim.delete();
    sim.destroy = () => ({ type: "destroy", ok: false, message: "pulumi destroy: backend gone" });
    expect(await sim.pass()).toEqual({ backoff: true });
    expect(sim.obj!.metadata.finalizers).toEqual([PREVIEW_FINALIZER]);
    expect(sim.status).toMatchObject({ phase: "Terminating", message: "deleted, but destroying its stack failed: pulumi destroy: backend gone; retrying" });
    expect(sim.events.at(-1)).toMatchObject({ type: "Warning", reason: "DestroyFailed" });
  });

  it("an Expired preview (stack already gone) or one never stood up lets go at once", async () => {
    const expired = new Sim({ rolloutRef: { name: "bot" }, ttl: "1h" });
    await expired.pass();
    expired.now += 2 * HOUR;
    await expired.pass();
    expired.delete();
    await expired.pass();
    expect(expired.obj).toBeUndefined();
    expect(expired.work.map((w) => w.type)).toEqual(["ensure", "destroy"]);

    const invalid = new Sim({ rolloutRef: { name: "bot" }, ttl: "soon" });
    await invalid.pass();
    invalid.delete();
    await invalid.pass();
    expect(invalid.obj).toBeUndefined();
    expect(invalid.work).toEqual([]);
  });

  it("without our finalizer there is nothing to do", () => {
    const sim = new Sim();
    sim.delete();
    expect(decidePreview({ preview: sim.obj!, rollout: sim.rollout, now: new Date(T0), fixturesAvailable: true })).toEqual({ events: [] });
  });
});

describe("problems: a condition and an Event naming the field, never a hot loop", () => {
  it("an invalid spec is Failed and Stalled, naming the field; no retry until it is edited", async () => {
    const sim = new Sim({ rolloutRef: { name: "bot" }, fixtures: { fromRollout: "bot", count: 5000 } });
    expect(await sim.pass()).toEqual({});
    expect(sim.status.phase).toBe("Failed");
    expect(sim.status.message).toMatch(/^spec\.fixtures\.count: /);
    expect(sim.condition("Stalled")).toMatchObject({ status: "True", reason: "InvalidSpec" });
    expect(sim.events).toEqual([expect.objectContaining({ type: "Warning", reason: "InvalidSpec", message: sim.status.message })]);
  });

  it("a missing rollout is Stalled with RolloutNotFound naming spec.rolloutRef.name, retried with backoff; it goes on once the rollout exists", async () => {
    const sim = new Sim();
    sim.rollout = undefined;
    expect(await sim.pass()).toEqual({ backoff: true });
    expect(sim.status.message).toBe("spec.rolloutRef.name: AIRollout team/bot not found; create it, or point the preview at one that exists");
    expect(sim.condition("Stalled")).toMatchObject({ status: "True", reason: "RolloutNotFound" });
    const writes = sim.statusWrites;
    await sim.pass();
    // The same problem again: no new write, and the same Event name (recorded once: the API server refuses the second).
    expect(sim.statusWrites).toBe(writes);
    expect(sim.reasons()).toEqual(["RolloutNotFound", "RolloutNotFound"]);
    expect(new Set(sim.events.map((e) => e.dedupeKey)).size).toBe(1);
    sim.rollout = rollout();
    await sim.pass();
    expect(sim.status.phase).toBe("Ready");
    expect(sim.condition("Stalled")).toMatchObject({ status: "False" });
  });

  it("a Ready preview whose rollout is deleted: its stack goes (once), the object stays Stalled RolloutNotFound without url, and stands up again when the rollout is back", async () => {
    const sim = new Sim();
    await sim.pass();
    expect(sim.status.phase).toBe("Ready");
    sim.rollout = undefined;
    expect(await sim.pass()).toEqual({ backoff: true });
    expect(sim.work.map((w) => w.type)).toEqual(["ensure", "destroy"]);
    expect(sim.work[1]).toEqual({ type: "destroy", role: "preview-pr-7", reason: "its AIRollout is gone" });
    expect(sim.status).toMatchObject({ phase: "Failed", message: "spec.rolloutRef.name: AIRollout team/bot not found; create it, or point the preview at one that exists" });
    expect(sim.status.url).toBeUndefined();
    expect(sim.status.stack).toBeUndefined();
    expect(sim.condition("Ready")).toMatchObject({ status: "False", reason: "RolloutNotFound" });
    expect(sim.condition("Stalled")).toMatchObject({ status: "True", reason: "RolloutNotFound" });
    expect(sim.events.slice(-2).map((e) => [e.type, e.reason])).toEqual([["Normal", "Destroyed"], ["Warning", "RolloutNotFound"]]);
    // Later passes destroy nothing more and write nothing.
    const writes = sim.statusWrites;
    await sim.pass();
    expect(sim.work).toHaveLength(2);
    expect(sim.statusWrites).toBe(writes);
    sim.rollout = rollout();
    await sim.pass();
    expect(sim.work.map((w) => w.type)).toEqual(["ensure", "destroy", "ensure"]);
    expect(sim.status).toMatchObject({ phase: "Ready", url: "http://bot-preview-pr-7.team.svc.cluster.local:8080" });
  });

  it("a failed destroy after the rollout went is retried with backoff, not reported as gone", async () => {
    const sim = new Sim();
    await sim.pass();
    sim.rollout = undefined;
    sim.destroy = () => ({ type: "destroy", ok: false, message: "backend unreachable" });
    expect(await sim.pass()).toEqual({ backoff: true });
    expect(sim.status.phase).toBe("Failed");
    expect(sim.status.stack).toBe("team-bot-preview-pr-7");
    expect(sim.condition("Stalled")).toMatchObject({ status: "False" });
    expect(sim.condition("Reconciling")).toMatchObject({ status: "True", reason: "DestroyFailed" });
  });

  it("an invalid rollout spec is reported through spec.rolloutRef.name with the rollout's field", async () => {
    const sim = new Sim();
    sim.rollout = rollout({ candidate: { version: "v2" } });
    await sim.pass();
    expect(sim.condition("Stalled")).toMatchObject({ status: "True", reason: "InvalidRollout" });
    expect(sim.status.message).toContain("spec.rolloutRef.name: AIRollout team/bot has an invalid spec (spec.candidate");
  });

  it("environments turned off (--environments none) is a permanent failure of an image preview: Stalled, no retry", async () => {
    const sim = new Sim();
    const message = "version v2 is an image version (registry/bot:v2), but this controller runs with --environments none and stands nothing up";
    sim.ensure = () => ({ type: "ensure", ok: false, failure: { transient: false, permanent: true, reason: "EnvironmentsDisabled", message } });
    expect(await sim.pass()).toEqual({});
    expect(sim.status).toMatchObject({ phase: "Failed", message });
    expect(sim.condition("Stalled")).toMatchObject({ status: "True", reason: "EnvironmentsDisabled" });
    expect(sim.condition("Reconciling")).toMatchObject({ status: "False" });
    await sim.pass();
    expect(sim.work).toHaveLength(1);
  });

  it("a locked stack retries with backoff, still Provisioning; other failures count to the rollout's maxConsecutiveFailures, then Stalled", async () => {
    const sim = new Sim();
    sim.ensure = () => ({ type: "ensure", ok: false, failure: { transient: true, reason: "StackLocked", message: "locked" } });
    expect(await sim.pass()).toEqual({ backoff: true });
    expect(sim.status.phase).toBe("Provisioning");
    expect(sim.condition("Reconciling")).toMatchObject({ status: "True", reason: "StackLocked" });

    sim.ensure = () => ({ type: "ensure", ok: false, failure: { transient: false, reason: "EnvironmentUpdateFailed", message: "pulumi up failed" } });
    expect(await sim.pass()).toEqual({ backoff: true });
    expect(sim.status).toMatchObject({ phase: "Failed", consecutiveFailures: 1 });
    expect(sim.condition("Stalled")).toMatchObject({ status: "False" });
    expect(sim.condition("Reconciling")).toMatchObject({ status: "True", reason: "EnvironmentUpdateFailed" });
    await sim.pass();
    expect(await sim.pass()).toEqual({});
    expect(sim.status).toMatchObject({ phase: "Failed", consecutiveFailures: 3, message: "pulumi up failed (3 failures in a row; edit the preview to try again)" });
    expect(sim.condition("Stalled")).toMatchObject({ status: "True" });
    await sim.pass();
    expect(sim.work).toHaveLength(4);
    // An edit starts over, counting afresh.
    sim.edit({ rolloutRef: { name: "bot" }, ttl: "12h" });
    sim.ensure = new Sim().ensure;
    await sim.pass();
    expect(sim.status.phase).toBe("Ready");
    expect(sim.status.consecutiveFailures).toBeUndefined();
  });
});

describe("fixtures: replayed once per generation after Ready; no evidence is never a pass", () => {
  const spec = { rolloutRef: { name: "bot" }, fixtures: { fromRollout: "bot", count: 20 } };

  it("replays to the preview and the stable's endpoint, writes status.fixtures, FixturesReplayed=True and an Event", async () => {
    const sim = new Sim(spec);
    await sim.pass();
    expect(sim.work[1]).toEqual({ type: "replay", request: { namespace: "team", rollout: "bot", count: 20, previewUrl: "http://bot-preview-pr-7.team.svc.cluster.local:8080", stableUrl: "http://stable.team.svc:8080" } });
    expect(sim.status.fixtures).toEqual({ observedGeneration: 1, replayed: 50, mismatched: 3, errors: 0, topFields: [{ path: "$.intent", mismatches: 3 }], source: "gateway:team/bot", at: new Date(T0).toISOString() });
    expect(sim.condition("FixturesReplayed")).toMatchObject({ status: "True", reason: "FixturesReplayed" });
    expect(sim.events.at(-1)).toMatchObject({ type: "Normal", reason: "FixturesReplayed", message: "FixturesReplayed: replayed 50 fixtures from gateway:team/bot: 3 mismatched, 0 errors; top fields: $.intent (3)" });
    expect(sim.status.phase).toBe("Ready");
    await sim.pass();
    expect(sim.work).toHaveLength(2);
  });

  it("an image stable is reached at its environment's URL from the rollout's status", async () => {
    const sim = new Sim(spec);
    sim.rollout = rollout({ stable: { version: "v1", image: "registry/bot:v1" } }, { environments: { stable: { stack: "s", phase: "Ready", url: "http://bot-stable.team.svc:8080" } } });
    await sim.pass();
    expect(sim.work[1]).toMatchObject({ type: "replay", request: { stableUrl: "http://bot-stable.team.svc:8080" } });
  });

  it.each([
    ["nothing replayed", summary({ replayed: 0, mismatched: 0, errors: 50, topFields: [] }), "nothing was compared"],
    ["some errors", summary({ replayed: 40, errors: 10 }), "some fixtures could not be compared"],
  ])("%s: reported, FixturesReplayed=False (FixturesIncomplete), a Warning", async (_name, s, why) => {
    const sim = new Sim(spec);
    sim.replay = () => ({ type: "replay", ok: true, summary: s });
    await sim.pass();
    expect(sim.condition("FixturesReplayed")).toMatchObject({ status: "False", reason: "FixturesIncomplete" });
    expect(sim.status.fixtures!.message).toContain(`${why}: not a pass`);
    expect(sim.events.at(-1)).toMatchObject({ type: "Warning", reason: "FixturesReplayed" });
  });

  it("no replayer in this controller: status says fixtures are not available, a Warning, no replay", async () => {
    const sim = new Sim(spec);
    sim.fixturesAvailable = false;
    await sim.pass();
    expect(sim.work.map((w) => w.type)).toEqual(["ensure"]);
    expect(sim.status.fixtures).toEqual({ observedGeneration: 1, message: "fixtures are not available: this controller has no fixtures replayer" });
    expect(sim.condition("FixturesReplayed")).toMatchObject({ status: "False", reason: "FixturesUnavailable" });
    expect(sim.events.at(-1)).toMatchObject({ type: "Warning", reason: "FixturesReplayed" });
    expect(sim.status.phase).toBe("Ready");
  });

  it("a replay that fails (no fixtures recorded) or a stable without a URL is reported, not retried until an edit", async () => {
    const failing = new Sim(spec);
    failing.replay = () => ({ type: "replay", ok: false, message: "rollout team/bot has no recorded fixtures" });
    await failing.pass();
    expect(failing.condition("FixturesReplayed")).toMatchObject({ status: "False", reason: "FixturesFailed" });
    expect(failing.status.fixtures!.message).toBe("replaying fixtures of AIRollout bot: rollout team/bot has no recorded fixtures");
    await failing.pass();
    expect(failing.work.map((w) => w.type)).toEqual(["ensure", "replay"]);
    failing.edit({ ...spec, ttl: "12h" });
    await failing.pass();
    expect(failing.work.map((w) => w.type)).toEqual(["ensure", "replay", "ensure", "replay"]);

    const noStable = new Sim(spec);
    noStable.rollout = rollout({ stable: { version: "v1", image: "registry/bot:v1" } });
    await noStable.pass();
    expect(noStable.condition("FixturesReplayed")).toMatchObject({ status: "False", reason: "NoStableURL" });
    expect(noStable.status.fixtures!.message).toContain("the stable v1 is an image version and status.environments.stable has no URL yet");
  });
});
