import { describe, expect, it } from "vitest";
import { ShadowSchema } from "../api/schema.ts";
import { NoiseTracker } from "../diff/index.ts";
import { RolloutState } from "./rollout-state.ts";

const shadow = (s: Record<string, unknown> = {}) => ShadowSchema.parse(s);
const mismatch = { path: "$.a", concretePath: "$.a", match: false, rule: "equal", reason: "x" } as const;

describe("RolloutState", () => {
  it("makes nothing until used: a scrape or a shutdown of an idle rollout reads the empty answers", async () => {
    const st = new RolloutState(shadow());
    expect(st.peekTracker()).toBeUndefined();
    expect(st.mirrorLoad()).toEqual({ running: 0, queued: 0 });
    await st.mirrorIdle();
    st.summary(0);
    st.summary(20);
    expect(st.peekTracker()).toBeUndefined();
    expect(st.breaker("v1|http://a")).toBeUndefined();
  });

  it.each([
    ["minSamples 0 (ready at once)", { minSamples: 0 }],
    ["minSamples 5", { minSamples: 5 }],
    ["with a noise baseline", { minSamples: 0, noiseBaseline: { enabled: true, endpoint: "http://n" } }],
    ["defaults", {}],
  ])("an unused tracker's summary is a fresh tracker's: %s", (_, s) => {
    const sh = shadow(s);
    const st = new RolloutState(sh);
    expect(st.summary(0)).toEqual(NoiseTracker.fromShadow(sh).summary(0));
    expect(st.summary(20)).toEqual(NoiseTracker.fromShadow(sh).summary(20));
  });

  it("a tracker made on first use counts, and the summary is then its own", () => {
    const st = new RolloutState(shadow({ minSamples: 1 }));
    st.tracker.recordCandidate([mismatch]);
    expect(st.peekTracker()).toBe(st.tracker);
    expect(st.summary(0).compared).toBe(1);
    expect(st.summary(0).ready).toBe(true);
  });

  it("a reset starts the evidence over with the settings of the reset, even when the tracker is made later", () => {
    const st = new RolloutState(shadow({ minSamples: 1, maxSamples: 3 }));
    st.tracker.recordCandidate([mismatch]);
    st.fieldLabels.add("$.a");
    const budget = st.sampleBudget;
    st.resetEvidence("id-2", shadow({ minSamples: 7, maxSamples: 2 }));
    expect(st.trackerIdentity).toBe("id-2");
    expect(st.peekTracker()).toBeUndefined();
    expect(st.summary(0)).toMatchObject({ compared: 0, minSamples: 7, ready: false });
    expect(st.tracker.minSamples).toBe(7);
    expect(st.fieldLabels.size).toBe(0);
    expect(st.sampleBudget).not.toBe(budget);
    // A full budget of the reset's maxSamples, then none.
    const now = Date.now();
    expect([1, 2, 3].map(() => st.sampleBudget.take(now).allowed)).toEqual([true, true, false]);
  });

  it("the mirror queue takes the latest limits, made before or after they changed", async () => {
    const st = new RolloutState(shadow({ maxConcurrency: 1, queueSize: 0 }));
    st.setMirrorLimits(1, 1);
    const release: (() => void)[] = [];
    const job = () => new Promise<void>((r) => release.push(r));
    expect([st.mirror.submit(job), st.mirror.submit(job), st.mirror.submit(job)]).toEqual([true, true, false]);
    expect(st.mirrorLoad()).toEqual({ running: 1, queued: 1 });
    st.setMirrorLimits(2, 1);
    expect(st.mirrorLoad()).toEqual({ running: 2, queued: 0 });
    for (const r of release.splice(0)) r();
    await st.mirrorIdle();
    expect(st.mirrorLoad()).toEqual({ running: 0, queued: 0 });
  });
});
