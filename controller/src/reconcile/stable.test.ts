import { describe, expect, it } from "vitest";
import { FINALIZER, SpecSchema, type AIRollout, type Spec, type StableRecord, type Status } from "../api/schema.ts";
import { effectiveStable, stableRecord, stableRecordProblem, versionDigest } from "../api/stable.ts";
import type { QueryOutcome } from "../analysis/provider.ts";
import { runPass } from "./pass.ts";
import type { EnvironmentOutcome, EventSpec, RolloutRole } from "./contract.ts";

/**
 * One commit per release (ADR 0009): spec.stable is optional, the version last promoted is kept in
 * status.stable. Driven through runPass on a simulated clock, as the controller drives it.
 */
class Sim {
  obj: AIRollout;
  now = Date.parse("2026-05-01T00:00:00Z");
  events: EventSpec[] = [];
  /** role:version:deployed version name, per stand-up asked for. */
  ensured: string[] = [];
  destroyed: string[] = [];
  metric: (query: string) => QueryOutcome = () => ({ kind: "value", value: 0.001 });

  constructor(spec: Record<string, unknown>) {
    this.obj = {
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIRollout",
      metadata: { name: "bot", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1", finalizers: [FINALIZER], annotations: {} },
      spec,
    };
  }

  get status(): Status {
    return this.obj.status ?? {};
  }

  get spec(): Record<string, unknown> {
    return this.obj.spec as Record<string, unknown>;
  }

  /** A new generation of the spec: what one commit in git does. */
  edit(change: Record<string, unknown>): void {
    const spec: Record<string, unknown> = { ...this.spec, ...change };
    for (const [k, v] of Object.entries(change)) if (v === undefined) delete spec[k];
    this.obj = { ...this.obj, metadata: { ...this.obj.metadata, generation: this.obj.metadata.generation + 1 }, spec };
  }

  async pass(): Promise<number | undefined> {
    const plan = await runPass(this.obj, { references: {} }, new Date(this.now), {
      measure: async (requests) => Object.fromEntries(requests.map((m) => [m.key, this.metric(m.query)])),
      ensure: async (requests) => {
        const out: Partial<Record<RolloutRole, EnvironmentOutcome>> = {};
        for (const e of requests) {
          this.ensured.push(`${e.role}:${e.version}:${e.deploy.version}`);
          out[e.role] = { ok: true, status: { stack: `ns-bot-${e.role}`, phase: "Ready", url: `http://${e.role}.ns.svc:8080`, version: e.deploy.version } };
        }
        return out;
      },
    });
    this.events.push(...plan.events);
    for (const a of plan.actions) if (a.type === "destroyEnvironments") this.destroyed.push(...(a.roles ?? ["all"]));
    if (plan.status) this.obj = { ...this.obj, status: plan.status };
    return plan.requeueAfterMs;
  }

  async runUntil(phases: string[]): Promise<void> {
    for (let i = 0; i < 2_000; i++) {
      const wait = await this.pass();
      if (phases.includes(this.status.phase ?? "")) return;
      this.now += Math.max(wait ?? 60_000, 1);
    }
    throw new Error(`never reached ${phases.join("|")}; phase ${this.status.phase}: ${this.status.message}`);
  }

  reasons(): string[] {
    return this.events.map((e) => e.reason);
  }
}

const analysis = {
  prometheus: { address: "http://prom:9090" },
  interval: "5s",
  failureLimit: 1,
  metrics: [{ name: "error-rate", query: 'sum(rate(errors{version="{{candidate}}",stable="{{stable}}"}[1m]))', successCondition: "result < 0.01" }],
};
const steps = { steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 100 }] };
const ep = (version: string) => ({ version, endpoint: `http://${version}.example:8080/` });
const img = (version: string) => ({ version, image: `registry/bot:${version}` });

describe("effectiveStable", () => {
  const v1 = SpecSchema.parse({ stable: ep("v1"), candidate: ep("v2"), analysis, strategy: steps });
  const promoted = stableRecord(v1, "rev2", new Date(0), false);
  it.each([
    ["spec.stable, nothing promoted", v1, undefined, "spec", "v1"],
    ["spec.stable unchanged since the promotion", v1, promoted, "status", "v2"],
    ["spec.stable edited after the promotion", { ...v1, stable: SpecSchema.parse({ stable: ep("v9"), candidate: ep("v2"), analysis, strategy: steps }).stable }, promoted, "spec", "v9"],
    ["no spec.stable, a promotion", { candidate: v1.candidate }, stableRecord({ candidate: v1.candidate }, "rev2", new Date(0), false), "status", "v2"],
  ] as const)("%s", (_name, spec, record, source, version) => {
    const got = effectiveStable(spec as Pick<Spec, "stable">, record ? { stable: record as StableRecord } : {});
    expect(got?.source).toBe(source);
    expect(got?.version.version).toBe(version);
  });

  it("none without spec.stable and status.stable: the first candidate is adopted", () => {
    expect(effectiveStable({}, {})).toBeUndefined();
  });

  it("the digest of spec.stable does not depend on key order (the API server reorders)", () => {
    expect(versionDigest({ version: "v1", endpoint: "http://a/", port: 8080, replicas: 1 })).toBe(versionDigest({ replicas: 1, port: 8080, endpoint: "http://a/", version: "v1" }));
    expect(versionDigest({ version: "v1", endpoint: "http://a/", port: 8080, replicas: 1 })).not.toBe(versionDigest({ version: "v1", endpoint: "http://b/", port: 8080, replicas: 1 }));
  });

  it("a broken status.stable is a problem naming the field, not a stable", () => {
    expect(stableRecordProblem({})).toBeUndefined();
    expect(stableRecordProblem({ stable: promoted })).toBeUndefined();
    const broken = { ...promoted, spec: { version: "v2" } } as unknown as Status["stable"];
    expect(stableRecordProblem({ stable: broken })).toMatch(/^status\.stable\.spec: exactly one of image and endpoint/);
  });
});

describe("one commit per release", () => {
  it("adopts the first candidate without steps when there is no stable (endpoint version)", async () => {
    const sim = new Sim({ candidate: ep("v1"), analysis, strategy: steps });
    await sim.pass();
    expect(sim.status.phase).toBe("Promoting");
    expect(sim.status.message).toMatch(/^Adopting v1 .* as the stable without steps/);
    await sim.runUntil(["Succeeded"]);
    expect(sim.reasons()).toEqual(["Adopted", "Adopted"]);
    expect(sim.status.stable).toMatchObject({ version: "v1", adopted: true, revision: sim.status.revision, spec: { endpoint: "http://v1.example:8080/" } });
    expect(sim.status.stable?.specStableDigest).toBeUndefined();
    expect(sim.status.stableVersion).toBe("v1");
    expect(sim.status.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(sim.ensured).toEqual([]);
  });

  it("adopts an image candidate into the stable environment, standing up no canary", async () => {
    const sim = new Sim({ candidate: img("v1"), strategy: { steps: [{ shadow: { duration: "1m" } }, { setWeight: 100 }] } });
    await sim.runUntil(["Succeeded"]);
    expect(sim.ensured).toEqual(["stable:candidate:v1"]);
    expect(sim.destroyed).toEqual([]);
    expect(sim.status.environments?.stable?.url).toBe("http://stable.ns.svc:8080");
    expect(sim.status.stable?.version).toBe("v1");
  });

  it("after a promotion, changing only the candidate starts the next rollout from the version just promoted", async () => {
    const sim = new Sim({ candidate: ep("v1"), analysis, strategy: steps });
    await sim.runUntil(["Succeeded"]);
    const queries: string[] = [];
    sim.metric = (q) => (queries.push(q), { kind: "value", value: 0.001 });

    sim.edit({ candidate: ep("v2") });
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Initialized", stableVersion: "v1", candidateVersion: "v2", canaryWeight: 0 });
    expect(sim.status.message).toContain("stable v1 (endpoint http://v1.example:8080/) (status.stable: last promoted)");
    await sim.runUntil(["Succeeded"]);
    expect(queries.some((q) => q.includes('version="v2",stable="v1"'))).toBe(true);
    expect(sim.status.stable).toMatchObject({ version: "v2", revision: sim.status.revision });
    expect(sim.status.stable?.adopted).toBeUndefined();

    // The next release is again one change: v3 rolls out from v2, never from v1.
    sim.edit({ candidate: ep("v3") });
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Initialized", stableVersion: "v2", candidateVersion: "v3" });
    expect(sim.reasons().at(-1)).toBe("NewRevision");
  });

  it("with the explicit pair, the promoted version is the next stable until spec.stable is edited", async () => {
    const sim = new Sim({ stable: img("v1"), candidate: img("v2"), analysis, strategy: steps });
    await sim.runUntil(["Succeeded"]);
    expect(sim.ensured).toEqual(["stable:stable:v1", "canary:candidate:v2", "stable:candidate:v2"]);
    expect(sim.status.stable).toMatchObject({ version: "v2", specStableDigest: expect.stringMatching(/^[0-9a-f]{16}$/) });

    // Only the candidate changes (spec.stable still says v1): v2 is the stable, and its
    // environment, updated at the promotion, is not taken back to v1 nor updated again.
    sim.ensured = [];
    sim.edit({ candidate: img("v3") });
    await sim.runUntil(["Succeeded"]);
    expect(sim.events.find((e) => e.reason === "NewRevision")?.message).toContain("stable v2 (image registry/bot:v2) (status.stable: last promoted)");
    expect(sim.ensured).toEqual(["canary:candidate:v3", "stable:candidate:v3"]);
    expect(sim.status.stable?.version).toBe("v3");

    // An edit of spec.stable says something new: spec.stable is the stable again.
    sim.ensured = [];
    sim.edit({ stable: img("v3b"), candidate: img("v4") });
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Initialized", stableVersion: "v3b" });
    await sim.pass();
    expect(sim.ensured.slice(0, 1)).toEqual(["stable:stable:v3b"]);
  });

  it("promoting an image candidate over an endpoint stable stands the stable environment up with it; an endpoint over an image destroys it", async () => {
    const sim = new Sim({ stable: ep("v1"), candidate: img("v2"), analysis, strategy: steps });
    await sim.runUntil(["Succeeded"]);
    expect(sim.ensured).toEqual(["canary:candidate:v2", "stable:candidate:v2"]);
    expect(sim.status.environments?.stable).toMatchObject({ phase: "Ready", version: "v2" });

    sim.edit({ candidate: ep("v3") });
    await sim.runUntil(["Succeeded"]);
    expect(sim.destroyed).toEqual(["canary", "stable"]);
    expect(sim.status.environments?.stable).toBeUndefined();
    expect(sim.status.stable?.spec.endpoint).toBe("http://v3.example:8080/");
  });

  it("a rollback keeps status.stable; reverting the candidate to it is steady state, with no steps", async () => {
    const sim = new Sim({ candidate: ep("v1"), analysis, strategy: steps });
    await sim.runUntil(["Succeeded"]);
    sim.edit({ candidate: ep("v2") });
    await sim.runUntil(["Succeeded"]);
    const promoted = sim.status.stable;

    sim.metric = () => ({ kind: "value", value: 0.5 });
    sim.edit({ candidate: ep("v3") });
    await sim.runUntil(["RolledBack"]);
    expect(sim.status.stable).toEqual(promoted);
    expect(sim.status.stableVersion).toBe("v2");
    expect(sim.status.message).toMatch(/^Rolled back to v2; candidate v3/);

    // The revert in git: the candidate is the stable again.
    sim.edit({ candidate: ep("v2") });
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Succeeded", candidateVersion: "v2", stableVersion: "v2", revision: promoted?.revision });
    expect(sim.status.message).toMatch(/^Candidate v2 is the stable \(status\.stable, promoted .*\): nothing to roll out$/);
    expect(sim.reasons().at(-1)).toBe("CandidateIsStable");
    expect(sim.status.stable).toEqual(promoted);
  });

  it("a candidate changed under the stable's version name is Degraded/VersionNameTaken, naming the field", async () => {
    const sim = new Sim({ candidate: ep("v1"), analysis, strategy: steps });
    await sim.runUntil(["Succeeded"]);
    sim.edit({ candidate: { version: "v1", endpoint: "http://other.example:8080/" } });
    await sim.pass();
    expect(sim.status.phase).toBe("Degraded");
    expect(sim.status.message).toMatch(/^spec\.candidate\.version: v1 is the stable's version name \(status\.stable, promoted /);
    expect(sim.reasons().at(-1)).toBe("VersionNameTaken");
    expect(sim.status.stable?.spec.endpoint).toBe("http://v1.example:8080/");
  });

  it("a broken status.stable stops the rollout (InvalidStableRecord) instead of adopting the candidate", async () => {
    const sim = new Sim({ candidate: ep("v2"), analysis, strategy: steps });
    sim.obj = { ...sim.obj, status: { stable: { version: "v1", revision: "r", promotedAt: "x", spec: { version: "v1" } } as unknown as Status["stable"] } };
    await sim.pass();
    expect(sim.status.phase).toBe("Degraded");
    expect(sim.reasons()).toEqual(["InvalidStableRecord"]);
    expect(sim.status.message).toMatch(/^status\.stable\.spec: .*: the stable version is unknown; set spec\.stable to name it$/);
  });

  it("a promotion recorded before status.stable existed is recorded on the next pass", async () => {
    const sim = new Sim({ stable: ep("v1"), candidate: ep("v2"), analysis, strategy: steps });
    await sim.runUntil(["Succeeded"]);
    const { stable: _dropped, ...older } = sim.status;
    sim.obj = { ...sim.obj, status: older };
    await sim.pass();
    expect(sim.status.stable).toMatchObject({ version: "v2", revision: sim.status.revision, specStableDigest: expect.any(String) });
    sim.edit({ candidate: ep("v3") });
    await sim.pass();
    expect(sim.status).toMatchObject({ phase: "Initialized", stableVersion: "v2" });
  });
});
