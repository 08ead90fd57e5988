/**
 * The statistical judge's samples (docs/adr/0010-judge-samples.md): every answered request of a
 * rollout with judge metrics adds its latency, tokens, cost and the judged numeric answer fields
 * to airollout_judge_sample, a histogram with fixed log-spaced buckets per rollout, version and
 * signal. The buckets are the bounded reservoir: memory and series do not grow with traffic, and
 * Prometheus sums the replicas' counts, so the controller judges all of a rollout's traffic.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Histogram } from "prom-client";
import type { Spec } from "../api/schema.ts";
import { parseFieldPath, type PathSegment } from "../diff/index.ts";
import { extractUsage, isJsonContentType, headerValue, numberAt, type Usage, type UsageSource } from "./payload.ts";
import { mirroredVersion } from "../analysis/judge-metric.ts";
import type { ShadowResult } from "./shadow.ts";

/** What a rollout's judge metrics ask the gateway to record; undefined when it has none. */
export interface JudgeSignals {
  latency: boolean;
  tokens: boolean;
  cost: boolean;
  /** Answer fields, by their path text (the `signal` label) and parsed once. */
  fields: readonly { label: string; path: readonly PathSegment[] }[];
  /**
   * A judge metric compares against the noise baseline (baseline: noise), so the mirrored
   * answers are sampled too: the shadow's and the second stable's (recordMirroredSamples).
   */
  mirrored: boolean;
}

const cache = new WeakMap<object, JudgeSignals | undefined>();

/**
 * The signals a spec's judge metrics read (spec.analysis.metrics[].judge), computed once per spec
 * object. At most 32 metrics exist (the schema's bound), so the series per version are bounded.
 */
export function judgeSignals(spec: Spec | undefined): JudgeSignals | undefined {
  if (spec === undefined) return undefined;
  if (cache.has(spec)) return cache.get(spec);
  const judges = (spec.analysis?.metrics ?? []).flatMap((m) => (m.judge ? [m.judge] : []));
  let out: JudgeSignals | undefined;
  if (judges.length > 0) {
    const fields = new Map<string, readonly PathSegment[]>();
    for (const j of judges) if (j.signal === "field" && j.field !== undefined && !fields.has(j.field)) fields.set(j.field, parseFieldPath(j.field));
    out = {
      latency: judges.some((j) => j.signal === "latency"),
      tokens: judges.some((j) => j.signal === "tokens"),
      cost: judges.some((j) => j.signal === "cost"),
      fields: [...fields].map(([label, path]) => ({ label, path })),
      mirrored: judges.some((j) => j.baseline === "noise"),
    };
  }
  cache.set(spec, out);
  return out;
}

/** One answered request, as the judge samples it. */
export interface AnsweredSample {
  labels: { rollout: string; namespace: string; version: string };
  seconds: number;
  usage: Usage;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * Records one answered request's samples. Answer fields are read only from JSON answers, which
 * are parsed once here (bounded by the gateway's answer size limit); an answer without the field
 * adds no sample for it, so a missing field is missing evidence, never a zero.
 */
export function recordJudgeSample(h: Histogram<"rollout" | "namespace" | "version" | "signal">, signals: JudgeSignals, s: AnsweredSample): void {
  const observe = (signal: string, value: number | undefined): void => {
    if (value !== undefined && Number.isFinite(value)) h.observe({ ...s.labels, signal }, value);
  };
  if (signals.latency) observe("latency", s.seconds);
  if (signals.tokens) observe("tokens", s.usage.tokens);
  if (signals.cost) observe("cost", s.usage.cost);
  if (signals.fields.length === 0 || !isJsonContentType(headerValue(s.headers, "content-type"))) return;
  let value: unknown;
  try {
    value = JSON.parse(s.body.toString("utf8"));
  } catch {
    return;
  }
  for (const f of signals.fields) observe(f.label, numberAt(value, f.path));
}

/** What recordMirroredSamples needs of a rollout. */
export interface MirroredRollout {
  name: string;
  namespace: string;
  usage: UsageSource;
  stable: { version: string };
  candidate: { version: string };
}

/**
 * Records the samples of one mirrored request's answered copies, for `baseline: noise` judge
 * metrics: the shadow's under version `<candidate>:shadow`, the noise baseline's under
 * `<stable>:noise` (mirroredVersion). Both answered the same request at the same moment from the
 * same worker, so neither side's latency carries the other's path. A copy that failed, or was not
 * asked for its answer, adds nothing: missing evidence, never a zero.
 */
export function recordMirroredSamples(h: Histogram<"rollout" | "namespace" | "version" | "signal">, signals: JudgeSignals, r: MirroredRollout, result: Pick<ShadowResult, "shadow" | "noise">): void {
  const copies = [
    [result.shadow, mirroredVersion(r.candidate.version, "shadow")],
    [result.noise, mirroredVersion(r.stable.version, "noise")],
  ] as const;
  for (const [outcome, version] of copies) {
    if (!outcome?.ok || outcome.answer === undefined) continue;
    const { seconds, headers, body } = outcome.answer;
    const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    recordJudgeSample(h, signals, { labels: { rollout: r.name, namespace: r.namespace, version }, seconds, usage: extractUsage(headers, buf, r.usage), headers, body: buf });
  }
}
