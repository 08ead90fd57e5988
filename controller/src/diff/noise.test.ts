import { describe, expect, it } from "vitest";
import { ShadowSchema } from "../api/schema.ts";
import { compare, compileRules } from "./compare.ts";
import type { DiffResponse, FieldResult } from "./compare.ts";
import { NoiseTracker, OVERFLOW_PATH } from "./noise.ts";
import type { NoiseTrackerOptions } from "./noise.ts";

/** Deterministic PRNG (mulberry32) so the simulations are reproducible. */
function rng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

const field = (path: string, match: boolean): FieldResult => ({ path, concretePath: path, match, rule: "equal", reason: "" });

/** Records `total` comparisons of a kind in which `path` mismatched in the first `mismatched`. */
function feed(t: NoiseTracker, kind: "candidate" | "noise", path: string, total: number, mismatched: number): void {
  for (let i = 0; i < total; i++) t.record(kind, [field(path, i >= mismatched)]);
}

describe("Diffy's rule, per field", () => {
  it.each([
    { name: "not ready before minSamples", opts: { minSamples: 100 }, cand: [50, 50], noise: [0, 0], flagged: false, ready: false },
    { name: "no baseline: any mismatch after minSamples", opts: { minSamples: 100 }, cand: [100, 1], noise: [0, 0], flagged: true, ready: true },
    { name: "no baseline: no mismatch", opts: { minSamples: 100 }, cand: [100, 0], noise: [0, 0], flagged: false, ready: true },
    { name: "baseline: noise 0 is an infinite relative difference", opts: { minSamples: 100, baseline: true }, cand: [1000, 1], noise: [1000, 0], flagged: true, ready: true },
    { name: "baseline: below the absolute threshold", opts: { minSamples: 100, baseline: true }, cand: [5000, 1], noise: [5000, 0], flagged: false, ready: true },
    { name: "baseline: equal to noise", opts: { minSamples: 100, baseline: true }, cand: [1000, 300], noise: [1000, 300], flagged: false, ready: true },
    { name: "baseline: 16.7% above noise < 20%", opts: { minSamples: 100, baseline: true }, cand: [1000, 350], noise: [1000, 300], flagged: false, ready: true },
    { name: "baseline: 33% above noise > 20%", opts: { minSamples: 100, baseline: true }, cand: [1000, 400], noise: [1000, 300], flagged: true, ready: true },
    { name: "baseline: below noise", opts: { minSamples: 100, baseline: true }, cand: [1000, 250], noise: [1000, 300], flagged: false, ready: true },
    { name: "baseline: absolute threshold not met", opts: { minSamples: 100, baseline: true, absoluteThreshold: 0.2 }, cand: [1000, 400], noise: [1000, 300], flagged: false, ready: true },
    { name: "baseline: relative threshold configurable", opts: { minSamples: 100, baseline: true, relativeThreshold: 0.1 }, cand: [1000, 350], noise: [1000, 300], flagged: true, ready: true },
    { name: "baseline: too few noise samples is not ready", opts: { minSamples: 100, baseline: true }, cand: [1000, 400], noise: [10, 0], flagged: false, ready: false },
    { name: "minSamples 0 with nothing recorded", opts: { minSamples: 0 }, cand: [0, 0], noise: [0, 0], flagged: false, ready: true },
  ] satisfies { name: string; opts: NoiseTrackerOptions; cand: [number, number]; noise: [number, number]; flagged: boolean; ready: boolean }[])(
    "$name",
    ({ opts, cand, noise, flagged, ready }) => {
      const t = new NoiseTracker(opts);
      feed(t, "candidate", "$.f", cand[0], cand[1]);
      feed(t, "noise", "$.f", noise[0], noise[1]);
      expect(t.isFlagged("$.f")).toBe(flagged);
      expect(t.ready).toBe(ready);
      const s = t.summary();
      expect(s.ready).toBe(ready);
      expect(s.mismatched).toBe(flagged ? cand[1] : 0);
    },
  );
});

describe("counting", () => {
  it("counts a field once per comparison however many instances differ", () => {
    const t = new NoiseTracker({ minSamples: 1 });
    const items = [field("$.items[*].score", false), field("$.items[*].score", false), field("$.items[*].score", true)];
    t.recordCandidate(items);
    t.recordCandidate([field("$.items[*].score", true)]);
    expect(t.field("$.items[*].score")).toMatchObject({ candidateCompared: 2, candidateMismatched: 1 });
    expect(t.summary().topFields).toEqual([{ path: "$.items[*].score", rate: 0.5, noiseRate: undefined, flagged: true, candidateMismatched: 1, noiseMismatched: 0 }]);
  });

  it("divides by all comparisons, so a field that only appears when it differs is not 100%", () => {
    const t = new NoiseTracker({ minSamples: 1, baseline: true });
    for (let i = 0; i < 100; i++) {
      t.recordCandidate(i === 0 ? [field("$.a", true), field("$.debug", false)] : [field("$.a", true)]);
      t.recordNoise([field("$.a", true)]);
    }
    const row = t.summary().topFields.find((f) => f.path === "$.debug");
    expect(row).toMatchObject({ rate: 0.01, noiseRate: 0, flagged: true });
    expect(t.field("$.debug")).toMatchObject({ candidateCompared: 1, candidateMismatched: 1 });
  });

  it("mismatched counts only comparisons with a flagged field", () => {
    const t = new NoiseTracker({ minSamples: 10, baseline: true });
    for (let i = 0; i < 100; i++) {
      // $.summary differs half the time on both sides: noise. $.intent differs 10% for the candidate only.
      t.recordCandidate([field("$.summary", i % 2 === 0), field("$.intent", i % 10 !== 0)]);
      t.recordNoise([field("$.summary", i % 2 === 1), field("$.intent", true)]);
    }
    const s = t.summary();
    expect(s).toMatchObject({ compared: 100, mismatched: 10, mismatchRate: 0.1, rawMismatched: 60, noiseCompared: 100, noiseMismatched: 50, approximate: false });
    expect(s.topFields.map((f) => [f.path, f.rate, f.noiseRate, f.flagged])).toEqual([
      ["$.summary", 0.5, 0.5, false],
      ["$.intent", 0.1, 0, true],
    ]);
  });

  it("mismatched is retroactive: mismatches before the field was flagged still count", () => {
    const t = new NoiseTracker({ minSamples: 10 });
    feed(t, "candidate", "$.a", 5, 5);
    expect(t.summary()).toMatchObject({ compared: 5, mismatched: 0, ready: false });
    feed(t, "candidate", "$.a", 5, 0);
    expect(t.summary()).toMatchObject({ compared: 10, mismatched: 5, mismatchRate: 0.5, ready: true });
  });

  it("pools paths beyond maxPaths into a field that is judged like any other", () => {
    const t = new NoiseTracker({ minSamples: 1, maxPaths: 5 });
    for (let i = 0; i < 50; i++) t.recordCandidate([field(`$.k${i}`, false)]);
    const s = t.summary(100);
    expect(s.trackedPaths).toBe(5);
    expect(s.topFields.find((f) => f.path === OVERFLOW_PATH)).toMatchObject({ rate: 0.9, flagged: true, candidateMismatched: 45 });
    expect(s.mismatched).toBe(50);
  });

  it("keeps memory bounded on many distinct paths", () => {
    const t = new NoiseTracker({ minSamples: 1 });
    for (let i = 0; i < 20_000; i++) t.recordCandidate([field(`$.random${i}`, false), field(`$.other${i}`, false)]);
    const s = t.summary(3);
    expect(s.trackedPaths).toBe(1000);
    expect(s.topFields[0]).toMatchObject({ path: OVERFLOW_PATH, rate: 1 - 500 / 20_000 });
    expect(s.topFields).toHaveLength(3);
    // Once paths pool, their mismatch sets collapse into one signature: still exact.
    expect(s.approximate).toBe(false);
    expect(s.mismatched).toBe(20_000);
  });

  it("beyond maxSignatures mismatched is an upper bound, never below the exact count", () => {
    const t = new NoiseTracker({ minSamples: 1, baseline: true, maxSignatures: 1 });
    const sets = [["$.a"], ["$.b"], ["$.a", "$.b"], ["$.c"], ["$.b", "$.c"]];
    for (let r = 0; r < 20; r++) {
      for (const set of sets) t.recordCandidate(set.map((p) => field(p, false)));
      // Noise makes $.b as noisy as the candidate, so only $.a and $.c are flagged.
      for (let i = 0; i < sets.length; i++) t.recordNoise([field("$.b", i >= 3)]);
    }
    const s = t.summary();
    expect(t.isFlagged("$.a") && t.isFlagged("$.c") && !t.isFlagged("$.b")).toBe(true);
    const exact = 20 * 4; // every set but ["$.b"]
    expect(s.approximate).toBe(true);
    expect(s.mismatched).toBeGreaterThanOrEqual(exact);
    expect(s.mismatched).toBeLessThanOrEqual(s.compared);
  });

  it("reset forgets everything", () => {
    const t = new NoiseTracker({ minSamples: 1 });
    feed(t, "candidate", "$.a", 10, 10);
    t.reset();
    expect(t.summary()).toMatchObject({ compared: 0, mismatched: 0, mismatchRate: 0, topFields: [], trackedPaths: 0 });
  });

  it("reads its options from the shadow spec", () => {
    const t = NoiseTracker.fromShadow(ShadowSchema.parse({ minSamples: 200, noiseBaseline: { enabled: true } }));
    expect(t).toMatchObject({ minSamples: 200, baseline: true, relativeThreshold: 0.2, absoluteThreshold: 0.0003 });
    expect(NoiseTracker.fromShadow(ShadowSchema.parse({}))).toMatchObject({ minSamples: 100, baseline: false });
  });
});

describe("noise suppression, end to end through compare()", () => {
  const intents = ["refund", "billing", "shipping", "cancel"];
  const phrasings = [
    (i: string) => `The customer asks about ${i}.`,
    (i: string) => `Customer request concerning ${i}.`,
    (i: string) => `This message is a ${i} request.`,
  ];

  interface Behaviour {
    /** Probability of answering with a wrong intent. */
    wrongIntent: number;
    /** Multiplier on the true confidence. */
    confidenceBias: number;
  }

  /** One replica's answer to request n: nondeterministic wording, id, tag order and confidence jitter. */
  function answer(n: number, next: () => number, b: Behaviour): DiffResponse {
    const wrong = next() < b.wrongIntent;
    const intent = intents[(n + (wrong ? 1 : 0)) % intents.length]!;
    const base = 0.5 + (n % 7) / 20;
    const tags = ["ticket", "en", intent];
    if (next() < 0.5) tags.reverse();
    return {
      status: 200,
      headers: { "content-type": "application/json" },
      body: {
        id: `req-${Math.floor(next() * 1e9)}`,
        intent,
        confidence: base * b.confidenceBias * (1 + (next() - 0.5) * 0.08),
        summary: phrasings[Math.floor(next() * phrasings.length)]!(intent),
        tags,
      },
    };
  }

  // Realistic rules, but the summary deliberately has no text rule: its noise must be cancelled by the baseline.
  const rules = compileRules({
    ignore: ["$.id"],
    headers: ["content-type"],
    tolerances: [{ path: "$.confidence", relative: 0.03 }],
    labels: ["$.intent"],
    unorderedArrays: ["$.tags"],
  });

  function run(candidate: Behaviour, opts: NoiseTrackerOptions, requests = 3000, seed = 7): NoiseTracker {
    const next = rng(seed);
    const stable: Behaviour = { wrongIntent: 0, confidenceBias: 1 };
    const t = new NoiseTracker({ minSamples: 200, ...opts });
    for (let n = 0; n < requests; n++) {
      const primary = answer(n, next, stable);
      const secondary = answer(n, next, stable);
      const shadow = answer(n, next, candidate);
      t.recordCandidate(compare(primary, shadow, rules));
      if (opts.baseline) t.recordNoise(compare(primary, secondary, rules));
    }
    return t;
  }

  it("flags nothing for a candidate that is as noisy as two stable replicas", () => {
    const t = run({ wrongIntent: 0, confidenceBias: 1 }, { baseline: true });
    const s = t.summary();
    expect(s.ready).toBe(true);
    // The noise is real: summaries and confidences differ often on both sides...
    expect(s.rawMismatched / s.compared).toBeGreaterThan(0.5);
    expect(s.noiseMismatched / s.noiseCompared).toBeGreaterThan(0.5);
    const rate = (p: string) => s.topFields.find((f) => f.path === p);
    expect(rate("$.summary")!.rate).toBeGreaterThan(0.5);
    expect(rate("$.confidence")!.rate).toBeGreaterThan(0.1);
    // ...and none of it is held against the candidate.
    expect(s.topFields.filter((f) => f.flagged)).toEqual([]);
    expect(s).toMatchObject({ mismatched: 0, mismatchRate: 0 });
  });

  it("without a baseline the same noise would be flagged, which is why the baseline exists", () => {
    const s = run({ wrongIntent: 0, confidenceBias: 1 }, { baseline: false }).summary();
    expect(s.topFields.filter((f) => f.flagged).map((f) => f.path).sort()).toEqual(["$.confidence", "$.summary"]);
  });

  it("flags a real regression in a label the stable replicas agree on", () => {
    const s = run({ wrongIntent: 0.05, confidenceBias: 1 }, { baseline: true }).summary();
    // The tags carry the intent, so the tag set regresses with it; nothing else does.
    expect(s.topFields.filter((f) => f.flagged).map((f) => f.path).sort()).toEqual(["$.intent", "$.tags"]);
    const intent = s.topFields.find((f) => f.path === "$.intent")!;
    expect(intent.noiseRate).toBe(0);
    expect(intent.rate).toBeGreaterThan(0.03);
    expect(intent.rate).toBeLessThan(0.07);
    expect(s.mismatched).toBe(intent.candidateMismatched);
  });

  it("flags a real regression in a field that is noisy anyway", () => {
    // A 10% drop in confidence against a +-4% jitter and a 3% band: noisy on both sides, far worse for the candidate.
    const s = run({ wrongIntent: 0, confidenceBias: 0.9 }, { baseline: true }).summary();
    const conf = s.topFields.find((f) => f.path === "$.confidence")!;
    expect(conf.noiseRate).toBeGreaterThan(0.1);
    expect(conf.rate).toBeGreaterThan(0.9);
    expect(conf.flagged).toBe(true);
    expect(s.topFields.filter((f) => f.flagged).map((f) => f.path)).toEqual(["$.confidence"]);
  });

  it("does not judge before minSamples even for a bad candidate", () => {
    const s = run({ wrongIntent: 0.5, confidenceBias: 0.5 }, { baseline: true }, 150).summary();
    expect(s).toMatchObject({ ready: false, mismatched: 0 });
    expect(s.rawMismatched).toBeGreaterThan(100);
  });
});
