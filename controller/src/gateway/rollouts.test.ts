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
});
