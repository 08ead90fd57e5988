import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FINALIZER, type AIRollout } from "../api/schema.ts";
import { EnvironmentReason } from "../environments/errors.ts";
import { reconcile } from "./reconcile.ts";
import { Reason } from "./reasons.ts";

const README = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");

function rollout(spec: Record<string, unknown>): AIRollout {
  return { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "triage", namespace: "team", uid: "u1", generation: 1, resourceVersion: "10", finalizers: [FINALIZER] }, spec };
}

const spec = {
  stable: { version: "v1", image: "registry/triage:v1" },
  candidate: { version: "v2", image: "registry/triage:v2" },
  strategy: { steps: [{ setWeight: 50 }, { setWeight: 100 }] },
  environments: { pulumi: { passphraseSecretRef: { name: "pulumi-pass", key: "passphrase" } } },
};

/** The README's bullet about environment errors (from "- **Errors.**" to the next bullet). */
function errorsBullet(): string {
  const start = README.indexOf("- **Errors.**");
  expect(start).toBeGreaterThan(0);
  const end = README.indexOf("\n- **", start + 1);
  return README.slice(start, end);
}

describe("reason names: code and README agree", () => {
  it("a missing passphrase Secret is MissingReference naming the field, retried with backoff (not Stalled)", () => {
    const plan = reconcile({ object: rollout(spec), world: { references: {} }, now: new Date("2026-03-01T12:00:00Z") });
    const degraded = plan.status!.conditions!.find((c) => c.type === "Degraded")!;
    expect(degraded.reason).toBe(Reason.MissingReference);
    expect(degraded.message).toBe('spec.environments.pulumi.passphraseSecretRef: Secret "pulumi-pass" not found in namespace "team"');
    expect(plan.backoff).toBe(true);
    expect(plan.status!.conditions!.find((c) => c.type === "Stalled")!.status).toBe("False");
  });

  it("a passphrase Secret without the key is MissingReference too", () => {
    const plan = reconcile({ object: rollout(spec), world: { references: { "Secret/pulumi-pass": { exists: true, keys: ["other"] } } }, now: new Date("2026-03-01T12:00:00Z") });
    expect(plan.status!.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ reason: Reason.MissingReference });
    expect(plan.status!.message).toContain('has no key "passphrase"');
  });

  it("every environment failure reason is a named Reason", () => {
    const reasons = new Set<string>(Object.values(Reason));
    for (const r of Object.values(EnvironmentReason)) expect(reasons.has(r), r).toBe(true);
  });

  it("the README's environment errors name only reasons the code has, and say a missing Secret or key is MissingReference", () => {
    const bullet = errorsBullet();
    const named = [...bullet.matchAll(/`([A-Z][A-Za-z]+)`/g)].map((m) => m[1]!).filter((w) => w !== "EnvironmentFailure");
    expect(named.length).toBeGreaterThan(4);
    const reasons = new Set<string>(Object.values(Reason));
    for (const r of named) expect(reasons.has(r), `README names reason ${r}`).toBe(true);
    expect(bullet.replace(/\s+/g, " ")).toMatch(/passphrase Secret or key that does not exist is `MissingReference`/);
    expect(bullet.replace(/\s+/g, " ")).not.toMatch(/`MissingPassphrase` \(Secret or key missing/);
  });
});
