import { describe, expect, it } from "vitest";
import { Histogram, Registry } from "prom-client";
import { JUDGE_BUCKETS } from "../analysis/judge.ts";
import { SpecSchema, type Spec } from "../api/schema.ts";
import { judgeSignals, recordJudgeSample } from "./judge-samples.ts";

function spec(metrics: unknown[]): Spec {
  return SpecSchema.parse({
    candidate: { version: "v2", endpoint: "http://c:8080" },
    strategy: { steps: [{ setWeight: 20 }] },
    analysis: { prometheus: { address: "http://p:9090" }, metrics },
  });
}

function histogram() {
  const registry = new Registry();
  const h = new Histogram({ name: "airollout_judge_sample", help: "h", labelNames: ["rollout", "namespace", "version", "signal"], buckets: [...JUDGE_BUCKETS], registers: [registry] });
  return { registry, h };
}

const labels = { rollout: "hook", namespace: "team", version: "v2" };
const json = { "content-type": "application/json" };

describe("judge samples", () => {
  it("records nothing for a rollout without judge metrics", () => {
    expect(judgeSignals(spec([{ name: "e", templateRef: "error-rate" }]))).toBeUndefined();
    expect(judgeSignals(undefined)).toBeUndefined();
  });

  it("records the judged signals only, fields from JSON answers by their path", async () => {
    const signals = judgeSignals(spec([{ name: "lat", judge: { signal: "latency" } }, { name: "conf", judge: { signal: "field", field: "$.confidence" } }]))!;
    expect(signals).toMatchObject({ latency: true, tokens: false, cost: false });
    const { registry, h } = histogram();
    const body = Buffer.from(JSON.stringify({ confidence: 0.9 }));
    recordJudgeSample(h, signals, { labels, seconds: 0.05, usage: { tokens: 10, cost: 1 }, headers: json, body });
    recordJudgeSample(h, signals, { labels, seconds: 0.07, usage: { tokens: undefined, cost: undefined }, headers: json, body: Buffer.from("{}") });
    recordJudgeSample(h, signals, { labels, seconds: 0.07, usage: { tokens: undefined, cost: undefined }, headers: { "content-type": "text/plain" }, body });
    const text = await registry.metrics();
    expect(text).toContain('airollout_judge_sample_count{rollout="hook",namespace="team",version="v2",signal="latency"} 3');
    expect(text).toContain('airollout_judge_sample_count{rollout="hook",namespace="team",version="v2",signal="$.confidence"} 1');
    expect(text).not.toContain('signal="tokens"');
    // 0.9 lies above the 10^-0.1 (0.794) bound and at most 10^0 (1).
    expect(text).toContain('airollout_judge_sample_bucket{le="0.794328",rollout="hook",namespace="team",version="v2",signal="$.confidence"} 0');
    expect(text).toContain('airollout_judge_sample_bucket{le="1",rollout="hook",namespace="team",version="v2",signal="$.confidence"} 1');
  });
});
