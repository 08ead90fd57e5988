import { describe, expect, it } from "vitest";
import type { AIRollout } from "../api/schema.ts";
import { ChangeFilter } from "./changes.ts";

const base: AIRollout = {
  apiVersion: "airollout.dev/v1alpha1",
  kind: "AIRollout",
  metadata: { name: "bot", namespace: "ns", uid: "u1", generation: 1, resourceVersion: "10", annotations: {}, finalizers: ["airollout.dev/finalizer"] },
  spec: {} as AIRollout["spec"],
  status: { phase: "Initialized" },
};
const edit = (m: Partial<AIRollout["metadata"]>, status?: AIRollout["status"]): AIRollout => ({ ...base, metadata: { ...base.metadata, resourceVersion: String(Math.random()), ...m }, status: status ?? base.status });

describe("ChangeFilter: which watch events call for a pass", () => {
  it.each([
    ["our own status write (same generation, new resourceVersion)", edit({}, { phase: "Initialized", message: "Standing up environments: canary; retrying" }), false],
    ["a spec edit (new generation)", edit({ generation: 2 }), true],
    ["a promote/abort/retry annotation", edit({ annotations: { "airollout.dev/promote": "step-1" } }), true],
    ["a finalizer change", edit({ finalizers: [] }), true],
    ["deletion", edit({ deletionTimestamp: "2026-05-01T00:00:00Z" }), true],
    ["a new object of the same name", edit({ uid: "u2" }), true],
    ["kubectl's last-applied annotation dropped (the informer cache) or another tool's annotation", edit({ annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}", "argocd.argoproj.io/tracking-id": "x" } }), false],
  ])("%s: %s", (_name, next, want) => {
    const f = new ChangeFilter();
    expect(f.changed("ns/bot", base)).toBe(true);
    expect(f.changed("ns/bot", next)).toBe(want);
  });

  it("a version we wrote ourselves (finalizer added) is no change when its watch event comes back; a later edit still is", () => {
    const f = new ChangeFilter();
    f.changed("ns/bot", base);
    const ours = edit({ finalizers: ["airollout.dev/finalizer", "other"] });
    f.observe("ns/bot", ours);
    expect(f.changed("ns/bot", { ...ours, metadata: { ...ours.metadata } })).toBe(false);
    expect(f.changed("ns/bot", edit({ ...ours.metadata, generation: 2 }))).toBe(true);
  });

  it("a forgotten (deleted) key counts as new again", () => {
    const f = new ChangeFilter();
    f.changed("ns/bot", base);
    f.forget("ns/bot");
    expect(f.changed("ns/bot", base)).toBe(true);
  });
});
