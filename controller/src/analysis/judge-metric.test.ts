import { describe, expect, it } from "vitest";
import { judgeMeasurement, newMetricStatus, recordMeasurement, renderMetricQuery, resolveMetric, summarizeRun, type MetricStatus } from "./assess.ts";
import { applyJudgeVerdict } from "./judge-metric.ts";
import { MetricSchema } from "../api/schema.ts";
import type { QueryOutcome, SeriesLabels } from "./provider.ts";

const now = new Date("2026-01-01T00:00:00Z");
const target = { rollout: "hook", namespace: "team", stable: "v1", candidate: "v2" };

/** A vector as Prometheus answers the judge query: cumulative le buckets per side. */
function answer(sides: Record<string, readonly number[]>, les = ["0.1", "1", "10", "+Inf"]): QueryOutcome {
  const value: number[] = [];
  const labels: SeriesLabels[] = [];
  for (const [side, counts] of Object.entries(sides)) {
    let cumulative = 0;
    counts.forEach((c, i) => {
      cumulative += c;
      value.push(cumulative);
      labels.push({ side, le: les[i]! });
    });
  }
  return { kind: "value", value, labels };
}

function resolved(judge: Record<string, unknown>) {
  const r = resolveMetric({ name: "latency-judge", judge: { signal: "latency", ...judge } as never });
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join("; "));
  return r.metric;
}

describe("judge metric", () => {
  it("queries both sides' buckets, summed over replicas and tagged by side", () => {
    const q = renderMetricQuery(resolved({ signal: "field", field: "$.confidence" }), target);
    expect(q).toContain(`airollout_judge_sample_bucket{rollout="hook",namespace="team",version="v2",signal="$.confidence"}`);
    expect(q).toContain(`version="v1"`);
    expect(q).toContain(`"side", "candidate"`);
    expect(q).toContain(`"side", "baseline"`);
    expect(q).toContain("sum by (le) (increase(");
  });

  it("defaults to direction increase, alpha 0.01, effectSize 0.2, minSamples 50, weight 1 and the stable as baseline", () => {
    expect(resolved({}).judge).toMatchObject({ direction: "increase", alpha: 0.01, effectSize: 0.2, minSamples: 50, weight: 1, baseline: "stable" });
  });

  it("baseline noise reads the mirrored copies: the candidate's shadow answers against the noise baseline's, never the stable's", () => {
    const q = renderMetricQuery(resolved({ signal: "field", field: "$.confidence", baseline: "noise" }), target);
    expect(q).toContain(`airollout_judge_sample_bucket{rollout="hook",namespace="team",version="v2:shadow",signal="$.confidence"}`);
    expect(q).toContain(`airollout_judge_sample_bucket{rollout="hook",namespace="team",version="v1:noise",signal="$.confidence"}`);
    expect(q).not.toContain(`version="v1"`);
    expect(q).not.toContain(`version="v2"`);
    expect(MetricSchema.safeParse({ name: "j", judge: { signal: "latency", baseline: "canary" } }).success).toBe(false);
  });

  it("carries a conclusive Pass and its bound into the measurement; an ordinary Pass carries no conclusive flag", () => {
    const many = judgeMeasurement(resolved({ minSamples: 20 }), answer({ candidate: [500, 500, 500, 500], baseline: [500, 500, 500, 500] }), now);
    expect(many.judge).toMatchObject({ classification: "Pass", conclusive: true });
    expect(many.judge?.deltaBound).toBeCloseTo(2 * 2.3263 * Math.sqrt(0.24 / 2000), 3);
    const few = judgeMeasurement(resolved({ minSamples: 20 }), answer({ candidate: [10, 10, 10, 10], baseline: [10, 10, 10, 10] }), now);
    expect(few.judge?.classification).toBe("Pass");
    expect(few.judge?.conclusive).toBeUndefined();
  });

  it("needs no condition, and the schema refuses field without signal field (and the reverse)", () => {
    expect(resolveMetric({ name: "j", judge: { signal: "latency" } }).ok).toBe(true);
    const bad = MetricSchema.safeParse({ name: "j", judge: { signal: "field" } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(["judge", "field"]);
    expect(MetricSchema.safeParse({ name: "j", judge: { signal: "latency", field: "$.x" } }).success).toBe(false);
    expect(MetricSchema.safeParse({ name: "j", judge: { signal: "field", field: "$.confidence" } }).success).toBe(true);
  });

  it("fails a clear increase with p-value and effect size in the measurement", () => {
    const m = judgeMeasurement(resolved({ minSamples: 20 }), answer({ candidate: [0, 10, 40, 50], baseline: [50, 40, 10, 0] }), now);
    expect(m.phase).toBe("Failed");
    expect(m.value).toBe("High");
    expect(m.judge?.classification).toBe("High");
    expect(m.judge?.pValue).toBeLessThan(1e-6);
    expect(m.judge?.effectSize).toBeGreaterThan(0.5);
    expect(m.message).toMatch(/^latency: High: p=/);
  });

  it("passes the same distribution", () => {
    const m = judgeMeasurement(resolved({ minSamples: 20 }), answer({ candidate: [30, 40, 20, 10], baseline: [30, 40, 20, 10] }), now);
    expect(m.phase).toBe("Successful");
    expect(m.judge?.classification).toBe("Pass");
  });

  it("is NoData (Inconclusive) with too few samples, a missing side, an empty answer or unlabelled values", () => {
    const j = resolved({ minSamples: 50 });
    expect(judgeMeasurement(j, answer({ candidate: [1, 2, 3, 4], baseline: [30, 40, 20, 10] }), now)).toMatchObject({ phase: "Inconclusive", judge: { classification: "NoData" } });
    expect(judgeMeasurement(j, answer({ baseline: [30, 40, 20, 10] }), now)).toMatchObject({ phase: "Inconclusive", judge: { classification: "NoData" } });
    expect(judgeMeasurement(j, { kind: "empty" }, now)).toMatchObject({ phase: "Inconclusive", judge: { classification: "NoData" } });
    expect(judgeMeasurement(j, { kind: "value", value: [1, 2] }, now)).toMatchObject({ phase: "Inconclusive", judge: { classification: "NoData" } });
    expect(judgeMeasurement(j, { kind: "error", message: "down" }, now).phase).toBe("Error");
  });

  it("records the judgement in the metric's status", () => {
    const j = resolved({ minSamples: 20 });
    const s = recordMeasurement(newMetricStatus("latency-judge"), judgeMeasurement(j, answer({ candidate: [0, 10, 40, 50], baseline: [50, 40, 10, 0] }), now), { ...j, count: 1 });
    expect(s.phase).toBe("Failed");
    expect(s.judge?.classification).toBe("High");
  });
});

describe("the run's judge verdict", () => {
  const judged = (name: string, classification: "Pass" | "High" | "Low" | "NoData", weight = 1): MetricStatus => ({
    ...newMetricStatus(name),
    phase: classification === "Pass" ? "Successful" : classification === "NoData" ? "Inconclusive" : "Failed",
    successful: classification === "Pass" ? 1 : 0,
    failed: classification === "High" || classification === "Low" ? 1 : 0,
    inconclusive: classification === "NoData" ? 1 : 0,
    judge: { classification, weight },
  });

  it("rolls back a proven regression and pauses on NoData alone", () => {
    expect(summarizeRun([judged("a", "High")]).phase).toBe("Failed");
    expect(summarizeRun([judged("a", "NoData")]).phase).toBe("Inconclusive");
    expect(summarizeRun([judged("a", "Pass"), judged("b", "NoData")]).phase).toBe("Inconclusive");
    expect(summarizeRun([judged("a", "Pass"), judged("b", "Pass")]).phase).toBe("Successful");
  });

  it("passes one High among many by the score, and honours the thresholds", () => {
    const metrics = [judged("bad", "High"), ...Array.from({ length: 19 }, (_, i) => judged(`ok${i}`, "Pass"))];
    expect(summarizeRun(metrics).phase).toBe("Successful");
    expect(summarizeRun(metrics, { passScore: 100, marginalScore: 90 }).phase).toBe("Inconclusive");
    expect(summarizeRun(metrics, { passScore: 100, marginalScore: 99 }).phase).toBe("Failed");
    expect(summarizeRun(metrics, { passScore: 100, marginalScore: 99 }).message).toContain("judge score 95");
  });

  it("waits for every judge metric before scoring, and leaves other metrics alone", () => {
    const running: MetricStatus = { ...newMetricStatus("later"), phase: "Running", judge: { classification: "NoData" } };
    expect(summarizeRun([judged("a", "High"), running]).phase).toBe("Running");
    const plain: MetricStatus = { ...newMetricStatus("errors"), phase: "Failed", failed: 1 };
    expect(summarizeRun([judged("a", "Pass"), plain]).phase).toBe("Failed");
    expect(applyJudgeVerdict([plain]).verdict).toBeUndefined();
  });
});
