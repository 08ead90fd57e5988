import { describe, expect, it } from "vitest";
import type { AIRollout, Status } from "../api/schema.ts";
import { createGatewayMetrics } from "./metrics.ts";
import { compileRollout, type CompileProblem } from "./rollouts.ts";

const metrics = createGatewayMetrics();

function obj(spec: Record<string, unknown>, status: Status = {}): AIRollout {
  return {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bot", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1" },
    spec: { stable: { version: "v1", endpoint: "http://stable:8080" }, candidate: { version: "v2", endpoint: "http://cand:8080/base/" }, strategy: { steps: [{ setWeight: 10 }] }, ...spec },
    status,
  };
}

describe("compileRollout", () => {
  it("takes endpoints as written, the weight and the shadow switch from status", () => {
    const r = compileRollout(obj({}, { canaryWeight: 25, phase: "Progressing" }), undefined, metrics);
    expect(r.error).toBeUndefined();
    expect(r.stable.backend?.host).toBe("stable:8080");
    expect(r.candidate.backend?.basePath).toBe("/base");
    expect(r.shadowTarget.backend?.url).toBe("http://cand:8080/base/");
    expect(r.weight).toBe(25);
    expect(r.shadowOn).toBe(false);
    expect(compileRollout(obj({}, { phase: "ShadowTesting" }), undefined, metrics).shadowOn).toBe(true);
    expect(compileRollout(obj({}, { shadowEnabled: true }), undefined, metrics).shadowOn).toBe(true);
    expect(r.seed).toBe("ns/bot/v2");
  });

  it("image versions use status.environments URLs and say why when there is none", () => {
    const spec = { stable: { version: "v1", image: "reg/x:1" }, candidate: { version: "v2", image: "reg/x:2" } };
    const none = compileRollout(obj(spec), undefined, metrics);
    expect(none.stable.backend).toBeUndefined();
    expect(none.stable.unavailable).toMatch(/status.environments has no URL/);
    const some = compileRollout(obj(spec, { environments: { stable: { stack: "a", phase: "Ready", url: "http://s" }, canary: { stack: "b", phase: "Ready", url: "http://c" } } }), undefined, metrics);
    expect(some.stable.backend?.url).toBe("http://s");
    expect(some.candidate.backend?.url).toBe("http://c");
    expect(some.shadowTarget.backend?.url).toBe("http://c");
    const withShadow = compileRollout(obj(spec, { environments: { canary: { stack: "b", phase: "Ready", url: "http://c" }, shadow: { stack: "c", phase: "Ready", url: "http://sh" } } }), undefined, metrics);
    expect(withShadow.shadowTarget.backend?.url).toBe("http://sh");
  });

  it("reports spec problems once per compile and keeps traffic flowing where it can", () => {
    const problems: CompileProblem[] = [];
    const r = compileRollout(obj({ shadow: { noiseBaseline: { enabled: true } }, traffic: { stickyBy: "header:x-tenant" } }), undefined, metrics, problems);
    expect(r.error).toBeUndefined();
    expect(r.noise).toBeUndefined();
    expect(r.sticky).toEqual({ kind: "header", name: "x-tenant" });
    expect(problems.map((p) => p.field).sort()).toEqual(["spec.shadow.noiseBaseline.endpoint"]);
    const invalid = compileRollout(obj({ strategy: { steps: [] } }), undefined, metrics);
    expect(invalid.error).toMatch(/invalid spec: spec.strategy.steps/);
    // A payloadSchema that does not compile fails the spec itself: every request is answered 503
    // spec_invalid naming the field, as the controller reports the rollout Degraded/InvalidSpec.
    const badSchema = compileRollout(obj({ traffic: { payloadSchema: { type: "object", properties: { a: { type: "string", pattern: "(" } } } } }), undefined, metrics);
    expect(badSchema.error).toMatch(/invalid spec: spec\.traffic\.payloadSchema: invalid JSON Schema: #\/properties\/a\/pattern: invalid pattern/);
  });

  it("keeps noise statistics and limiter buckets across status updates, resets them when their meaning changes", () => {
    const first = compileRollout(obj({ traffic: { rateLimit: { requestsPerSecond: 1, burst: 1 } } }, { canaryWeight: 0 }), undefined, metrics);
    first.state.tracker.recordCandidate([{ path: "$.a", concretePath: "$.a", match: false, rule: "equal", reason: "x" }]);
    const limiter = first.state.limiter;
    const second = compileRollout(obj({ traffic: { rateLimit: { requestsPerSecond: 1, burst: 1 } } }, { canaryWeight: 50 }), first, metrics);
    expect(second.state.tracker.summary().compared).toBe(1);
    expect(second.state.limiter).toBe(limiter);
    const newCandidate = compileRollout(obj({ candidate: { version: "v3", endpoint: "http://cand:8080" }, traffic: { rateLimit: { requestsPerSecond: 2, burst: 1 } } }), second, metrics);
    expect(newCandidate.state.tracker.summary().compared).toBe(0);
    expect(newCandidate.state.limiter).not.toBe(limiter);
  });

  it("keeps what requests need, not the spec: the judge signals compiled, the rest dropped", () => {
    const none = compileRollout(obj({}), undefined, metrics);
    expect(none.judge).toBeUndefined();
    expect("spec" in none).toBe(false);
    const judged = compileRollout(obj({ analysis: { prometheus: { address: "http://p:9090" }, metrics: [{ name: "lat", judge: { signal: "latency" } }] } }), undefined, metrics);
    expect(judged.judge).toMatchObject({ latency: true, tokens: false, mirrored: false });
  });

  it("shares compiled rules, masks, traffic and shadow sections between rollouts that have them alike", () => {
    const compare = { ignore: ["$.id"], labels: ["$.intent"] };
    const shadow = { compare, maskPatterns: ["secret-[0-9]+"] };
    const a = compileRollout({ ...obj({ shadow }), metadata: { name: "a", namespace: "ns", uid: "ua", generation: 1, resourceVersion: "1" } }, undefined, metrics);
    const b = compileRollout({ ...obj({ shadow: { ...shadow, compare: { ...compare } } }), metadata: { name: "b", namespace: "ns", uid: "ub", generation: 1, resourceVersion: "1" } }, undefined, metrics);
    expect(b.rules).toBe(a.rules);
    expect(b.rulesKey).toBe(a.rulesKey);
    expect(b.masks).toBe(a.masks);
    expect(b.shadow).toBe(a.shadow);
    expect(b.traffic).toBe(a.traffic);
    // Each keeps its own state and identity.
    expect(b.state).not.toBe(a.state);
    expect(b.seed).not.toBe(a.seed);
    const other = compileRollout(obj({ shadow: { compare: { ignore: ["$.other"] } }, traffic: { maxBodyBytes: 1024 } }), undefined, metrics);
    expect(other.rules).not.toBe(a.rules);
    expect(other.shadow).not.toBe(a.shadow);
    expect(other.traffic).not.toBe(a.traffic);
    expect(other.traffic.maxBodyBytes).toBe(1024);
    expect(other.rules!.root).not.toEqual(a.rules!.root);
  });

  it("creates no noise tracker, mirror queue or sample budget for a rollout that takes no shadow traffic", () => {
    const r = compileRollout(obj({}, { phase: "ShadowTesting" }), undefined, metrics);
    const again = compileRollout(obj({}, { phase: "ShadowTesting", canaryWeight: 0 }), r, metrics);
    expect(again.state).toBe(r.state);
    expect(r.state.peekTracker()).toBeUndefined();
    expect(r.state.mirrorLoad()).toEqual({ running: 0, queued: 0 });
  });
});
