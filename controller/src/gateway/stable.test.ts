import { describe, expect, it } from "vitest";
import { SpecSchema, type AIRollout, type Status } from "../api/schema.ts";
import { stableRecord } from "../api/stable.ts";
import { createGatewayMetrics } from "./metrics.ts";
import { compileRollout } from "./rollouts.ts";

/** The gateway's stable is the controller's (api/stable.ts, ADR 0009), read from the same object. */
const metrics = createGatewayMetrics();
const steps = { steps: [{ setWeight: 10 }] };
const ep = (version: string) => ({ version, endpoint: `http://${version}.example:8080/` });

function obj(spec: Record<string, unknown>, status: Status = {}): AIRollout {
  return { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1" }, spec: { strategy: steps, ...spec }, status };
}

/** status.stable as the controller writes it when `candidate` is promoted under `spec`. */
function promoted(spec: Record<string, unknown>): NonNullable<Status["stable"]> {
  return stableRecord(SpecSchema.parse({ strategy: steps, ...spec }), "rev", new Date(0), false);
}

describe("the gateway's stable", () => {
  it("without spec.stable and status.stable there is none: the first candidate is being adopted", () => {
    const r = compileRollout(obj({ candidate: ep("v1") }, { phase: "Promoting", canaryWeight: 100 }), undefined, metrics);
    expect(r.error).toBeUndefined();
    expect(r.stable.backend).toBeUndefined();
    expect(r.stable.unavailable).toBe("no stable version yet: the first candidate is being adopted");
    expect(r.candidate.backend?.url).toBe("http://v1.example:8080/");
    expect(r.weight).toBe(100);
  });

  it("reads the version last promoted from status.stable when spec.stable is absent", () => {
    const r = compileRollout(obj({ candidate: ep("v3") }, { phase: "Progressing", canaryWeight: 10, stable: promoted({ candidate: ep("v2") }) }), undefined, metrics);
    expect(r.stable.version).toBe("v2");
    expect(r.stable.backend?.url).toBe("http://v2.example:8080/");
    expect(r.weight).toBe(10);
  });

  it("an image stable from status.stable is served from the stable environment's URL", () => {
    const stable = promoted({ candidate: { version: "v2", image: "reg/bot:v2" } });
    const r = compileRollout(obj({ candidate: { version: "v3", image: "reg/bot:v3" } }, { phase: "Progressing", stable, environments: { stable: { stack: "s", phase: "Ready", url: "http://stable.ns.svc:8080" } } }), undefined, metrics);
    expect(r.stable.version).toBe("v2");
    expect(r.stable.backend?.url).toBe("http://stable.ns.svc:8080");
  });

  it("with the explicit pair: status.stable once a promotion superseded spec.stable, spec.stable again once edited", () => {
    const pair = { stable: ep("v1"), candidate: ep("v2") };
    const status: Status = { phase: "Progressing", canaryWeight: 10, stable: promoted(pair) };
    expect(compileRollout(obj({ ...pair, candidate: ep("v3") }, status), undefined, metrics).stable.version).toBe("v2");
    expect(compileRollout(obj({ stable: ep("v9"), candidate: ep("v3") }, status), undefined, metrics).stable.version).toBe("v9");
    expect(compileRollout(obj(pair, {}), undefined, metrics).stable.version).toBe("v1");
  });

  it("Succeeded with status.stable sends every request to the promoted stable, even when the spec already names the next candidate", () => {
    const status: Status = { phase: "Succeeded", canaryWeight: 100, stable: promoted({ candidate: ep("v2") }) };
    const steady = compileRollout(obj({ candidate: ep("v2") }, status), undefined, metrics);
    expect(steady.weight).toBe(0);
    expect(steady.stable.backend?.url).toBe("http://v2.example:8080/");
    // The commit naming v3 is seen before the controller initialised it: v3 gets nothing yet.
    const edited = compileRollout(obj({ candidate: ep("v3") }, status), undefined, metrics);
    expect(edited.weight).toBe(0);
    expect(edited.stable.version).toBe("v2");
    // An edit of spec.stable is the controller's to act on: until then the promoted version serves.
    const pinned = compileRollout(obj({ stable: ep("v1"), candidate: ep("v3") }, status), undefined, metrics);
    expect(pinned.weight).toBe(0);
    expect(pinned.stable.backend?.url).toBe("http://v2.example:8080/");
    // A promotion written by a controller before status.stable existed keeps weight 100 to the candidate.
    expect(compileRollout(obj({ stable: ep("v1"), candidate: ep("v2") }, { phase: "Succeeded", canaryWeight: 100 }), undefined, metrics).weight).toBe(100);
  });

  it("a broken status.stable leaves no stable backend (503), never a guess", () => {
    const broken = { version: "v2", revision: "r", promotedAt: "x", spec: { version: "v2" } } as unknown as Status["stable"];
    const r = compileRollout(obj({ candidate: ep("v3") }, { phase: "Progressing", stable: broken }), undefined, metrics);
    expect(r.stable.backend).toBeUndefined();
    expect(r.stable.unavailable).toMatch(/^the stable is unknown: status\.stable\.spec: exactly one of image and endpoint/);
  });
});
