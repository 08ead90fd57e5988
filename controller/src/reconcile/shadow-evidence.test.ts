import { describe, expect, it } from "vitest";
import { shadowEvidenceQueries as evidenceQueries } from "../analysis/templates.ts";
import { coverageText, judgeShadow, missingEvidence, readEvidence, sequentialTest, wilsonLowerBound, type ShadowRule } from "./shadow-evidence.ts";

const rule: ShadowRule = { minSamples: 100, baseline: true, maxMismatchRate: 0.1 };
const judged = (compared: number, mismatched: number) => ({ compared, noiseCompared: compared, mismatched, judged: true });

describe("wilsonLowerBound", () => {
  it.each([
    // m, n, lower bound at z = 2.326 (one-sided 99%)
    [0, 100, 0],
    [16, 100, 0.0926],
    [32, 200, 0.1088],
    [12, 200, 0.0313],
    [100, 100, 0.9487],
  ])("%i of %i: %f", (m, n, expected) => {
    expect(wilsonLowerBound(m, n)).toBeCloseTo(expected, 3);
  });

  it("is 0 without comparisons (never a reason to stop)", () => {
    expect(wilsonLowerBound(0, 0)).toBe(0);
  });
});

describe("judgeShadow: evidence before passing", () => {
  it("waits while fewer than minSamples comparisons were made, even with no mismatch at all", () => {
    const v = judgeShadow({ compared: 40, noiseCompared: 40, mismatched: 0, judged: false }, rule, true);
    expect(v).toEqual({ kind: "wait", why: "40 of 100 required comparisons, 40 of 100 required noise comparisons" });
  });

  it("waits for noise comparisons when a baseline is configured", () => {
    expect(missingEvidence({ compared: 500, noiseCompared: 10, mismatched: 0, judged: true }, rule)).toBe("10 of 100 required noise comparisons");
    expect(missingEvidence({ compared: 500, noiseCompared: 10, mismatched: 0, judged: true }, { ...rule, baseline: false })).toBeUndefined();
  });

  it("waits while a gateway replica has not judged this revision yet", () => {
    expect(judgeShadow({ compared: 500, noiseCompared: 500, mismatched: 0, judged: false }, rule, true).kind).toBe("wait");
  });

  it("minSamples 0 still needs one comparison: 0/0 is not a rate", () => {
    expect(judgeShadow({ compared: 0, noiseCompared: 0, mismatched: 0, judged: true }, { ...rule, minSamples: 0 }, true)).toEqual({ kind: "wait", why: "0 of 1 required comparisons, 0 of 1 required noise comparisons" });
  });

  it("passes at the end of the step when the judged rate is within the limit", () => {
    expect(judgeShadow(judged(300, 24), rule, true)).toMatchObject({ kind: "pass" });
  });

  it("does not pass before the step's duration is over while the evidence is inconclusive (24/300 against 10%)", () => {
    expect(judgeShadow(judged(300, 24), rule, false).kind).toBe("wait");
  });

  it("passes early once judged and conclusively below the limit (3/300 against 10%)", () => {
    const v = judgeShadow(judged(300, 3), rule, false);
    expect(v.kind).toBe("pass");
    expect((v as { rule: string }).rule).toMatch(/^passed early: 3\/300 comparisons mismatched \(1\.0%\); the likelihood ratio for a rate below maxMismatchRate 10\.0% is 1\.2e\+8, at least 100 \(1\.0% over the whole step\)$/);
  });

  it("never passes early before minSamples, however clean the comparisons", () => {
    expect(judgeShadow({ compared: 99, noiseCompared: 99, mismatched: 0, judged: true }, rule, false).kind).toBe("wait");
    expect(judgeShadow({ compared: 5000, noiseCompared: 5000, mismatched: 0, judged: false }, rule, false).kind).toBe("wait");
  });
});

describe("judgeShadow: stop early", () => {
  it("a clear regression stops before the end of the step (16% of 400 against a 10% limit)", () => {
    const v = judgeShadow(judged(400, 64), rule, false);
    expect(v.kind).toBe("fail");
    expect((v as { rule: string }).rule).toMatch(/^stopped early: 64\/400 comparisons mismatched \(16\.0%\); the likelihood ratio for a rate above maxMismatchRate 10\.0% is 243, at least 100/);
  });

  it("a candidate near the limit is not stopped on noise (12% of 200 against 10%)...", () => {
    expect(judgeShadow(judged(200, 24), rule, false).kind).toBe("wait");
  });

  it("...but fails at the end of the step when its rate is above the limit", () => {
    const v = judgeShadow(judged(200, 24), rule, true);
    expect(v).toMatchObject({ kind: "fail" });
    expect((v as { rule: string }).rule).toContain("end of step: 24/200 comparisons mismatched (12.0%), above maxMismatchRate 10.0%");
  });

  it("16% of 200 is not yet conclusive over repeated reads (a per-read 99% bound would have stopped it)", () => {
    expect(wilsonLowerBound(32, 200)).toBeGreaterThan(0.1);
    expect(judgeShadow(judged(200, 32), rule, false).kind).toBe("wait");
  });
});

describe("sequentialTest: edges", () => {
  it("a limit of 0 is exceeded by one mismatch and can never be proven", () => {
    expect(sequentialTest(1, 100, 0).decision).toBe("stop");
    expect(sequentialTest(0, 100_000, 0).decision).toBeUndefined();
  });

  it("a limit of 1 cannot be exceeded", () => {
    expect(sequentialTest(100, 100, 1).decision).toBe("pass");
  });

  it.each([
    ["no comparisons", 0, 0, 0.1],
    ["more mismatches than comparisons", 5, 4, 0.1],
    ["a fractional count", 1.5, 100, 0.1],
    ["a NaN limit", 1, 100, Number.NaN],
    ["a limit above 1", 1, 100, 1.5],
  ])("%s concludes nothing", (_name, m, n, limit) => {
    expect(sequentialTest(m, n, limit).decision).toBeUndefined();
  });
});

describe("readEvidence: fail closed", () => {
  const q = evidenceQueries({ name: "bot", namespace: "ns" }, "abc");
  const all = (v: number) => Object.fromEntries(Object.keys(q).map((k) => [k, { kind: "value" as const, value: v }]));

  it("queries the current revision's gauges of every replica", () => {
    expect(q["shadow/compared"]).toBe('sum(airollout_shadow_revision_comparisons{rollout="bot",namespace="ns",revision="abc",kind="candidate"})');
    expect(q["shadow/judged"]).toBe('min(airollout_shadow_judged{rollout="bot",namespace="ns",revision="abc"})');
  });

  it("an empty result is no evidence, not 0% mismatches", () => {
    expect(readEvidence({ ...all(1), "shadow/compared": { kind: "empty" } })).toMatchObject({ ok: false, why: "no gateway has reported comparisons of this revision yet" });
  });

  it.each([
    ["NaN", Number.NaN],
    ["+Inf", Number.POSITIVE_INFINITY],
    ["negative", -1],
  ])("a %s count is incomplete evidence", (_name, v) => {
    expect(readEvidence({ ...all(1), "shadow/mismatched": { kind: "value", value: v } }).ok).toBe(false);
  });

  it("several series where one sum was expected is incomplete evidence", () => {
    expect(readEvidence({ ...all(1), "shadow/compared": { kind: "value", value: [100, 200] } }).ok).toBe(false);
  });

  it("a Prometheus error is no evidence, with its message", () => {
    expect(readEvidence({ ...all(1), "shadow/judged": { kind: "error", message: "connection refused" } })).toEqual({ ok: false, why: "Prometheus: connection refused" });
  });

  it("reads the sums and the judged flag", () => {
    expect(readEvidence({ ...all(1), "shadow/compared": { kind: "value", value: 250 }, "shadow/mismatched": { kind: "value", value: [7] }, "shadow/sampled": { kind: "value", value: 500 } })).toEqual({
      ok: true,
      evidence: { compared: 250, noiseCompared: 1, mismatched: 7, judged: true, sampled: 500 },
    });
  });

  it("reads the coverage's denominator, and leaves it out when the gateways do not report it", () => {
    expect(q["shadow/sampled"]).toBe('sum(airollout_shadow_revision_sampled{rollout="bot",namespace="ns",revision="abc"})');
    const read = readEvidence({ ...all(1), "shadow/compared": { kind: "value", value: 245 }, "shadow/sampled": { kind: "value", value: 500 } });
    expect(read.ok && coverageText(read.evidence)).toBe("49.0%");
    const older = readEvidence({ ...all(1), "shadow/sampled": { kind: "empty" } });
    expect(older.ok && older.evidence.sampled).toBeUndefined();
    expect(older.ok && coverageText(older.evidence)).toBeUndefined();
    // Nothing chosen is no coverage (not 0%, not 100%).
    expect(coverageText({ compared: 0, noiseCompared: 0, mismatched: 0, judged: false, sampled: 0 })).toBeUndefined();
  });
});
