import { describe, expect, it } from "vitest";
import { Histogram, Registry } from "prom-client";
import { JUDGE_BUCKETS } from "../analysis/judge.ts";
import { SpecSchema, type Spec } from "../api/schema.ts";
import { judgeSignals, recordJudgeSample, recordMirroredSamples } from "./judge-samples.ts";
import { compileUsage } from "./payload.ts";
import type { Outcome } from "./shadow.ts";

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

  it("samples mirrored answers only for a judge against the noise baseline", () => {
    expect(judgeSignals(spec([{ name: "conf", judge: { signal: "field", field: "$.confidence" } }]))!.mirrored).toBe(false);
    expect(judgeSignals(spec([{ name: "lat", judge: { signal: "latency" } }, { name: "conf", judge: { signal: "field", field: "$.confidence", baseline: "noise" } }]))!.mirrored).toBe(true);
  });

  it("records the shadow's answer as <candidate>:shadow and the noise baseline's as <stable>:noise; a failed or unasked copy adds nothing", async () => {
    const signals = judgeSignals(spec([{ name: "conf", judge: { signal: "field", field: "$.confidence", baseline: "noise" } }, { name: "tok", judge: { signal: "tokens", baseline: "noise" } }]))!;
    const { registry, h } = histogram();
    const rollout = { name: "hook", namespace: "team", usage: compileUsage(), stable: { version: "v1" }, candidate: { version: "v2" } };
    const judged = { matched: true, compared: [], mismatched: [], mismatches: [] };
    const answered = (confidence: number, tokens: number): Outcome => ({
      ok: true,
      status: 200,
      judged,
      text: undefined,
      answer: { seconds: 0.02, headers: { ...json, "x-airollout-tokens": String(tokens) }, body: new Uint8Array(Buffer.from(JSON.stringify({ confidence }))) },
    });
    recordMirroredSamples(h, signals, rollout, { shadow: answered(0.5, 30), noise: answered(0.9, 20) });
    recordMirroredSamples(h, signals, rollout, { shadow: { ok: false, stage: "exchange", reason: "timeout", detail: "t" }, noise: { ok: true, status: 200, judged, text: undefined } });
    recordMirroredSamples(h, signals, rollout, { shadow: undefined, noise: undefined });
    const text = await registry.metrics();
    expect(text).toContain('airollout_judge_sample_count{rollout="hook",namespace="team",version="v2:shadow",signal="$.confidence"} 1');
    expect(text).toContain('airollout_judge_sample_count{rollout="hook",namespace="team",version="v1:noise",signal="$.confidence"} 1');
    expect(text).toContain('airollout_judge_sample_count{rollout="hook",namespace="team",version="v1:noise",signal="tokens"} 1');
    expect(text).toContain('airollout_judge_sample_sum{rollout="hook",namespace="team",version="v2:shadow",signal="tokens"} 30');
    expect(text).toContain('airollout_judge_sample_bucket{le="0.501187",rollout="hook",namespace="team",version="v2:shadow",signal="$.confidence"} 1');
    expect(text).not.toMatch(/version="v[12]",/);
  });
});
