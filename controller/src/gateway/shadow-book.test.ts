import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AIRollout } from "../api/schema.ts";
import { createGatewayMetrics, type GatewayMetrics } from "./metrics.ts";
import { compileRollout, type Rollout } from "./rollouts.ts";
import type { Judged, Outcome, ShadowResult } from "./shadow.ts";
import { ShadowBook, type MirroredRequest } from "./shadow-book.ts";

const log = pino({ level: "silent" });

function rolloutObject(shadow: Record<string, unknown> = {}): AIRollout {
  return {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bot", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1" },
    spec: { stable: { version: "v1", endpoint: "http://stable:8080" }, candidate: { version: "v2", endpoint: "http://cand:8080" }, strategy: { steps: [{ setWeight: 10 }] }, shadow: { minSamples: 1, ...shadow } },
    status: { revision: "rev1" },
  } as AIRollout;
}

function rollout(metrics: GatewayMetrics, shadow: Record<string, unknown> = {}): Rollout {
  return compileRollout(rolloutObject(shadow), undefined, metrics);
}

function judged(compared: string[], mismatched: string[]): Judged {
  return { matched: mismatched.length === 0, compared, mismatched, mismatches: mismatched.map((p) => ({ path: p, concretePath: p, rule: "equal", reason: `${p} differs for jane@example.com` })) };
}

const ok = (j: Judged, text?: string): Outcome => ({ ok: true, status: 200, judged: j, text });
const req = (requestId: string): MirroredRequest => ({ requestId, path: "/hook?mail=jane@example.com", primaryStatus: 200, log });
const result = (shadow: Outcome | undefined, noise?: Outcome): ShadowResult => ({ shadow, noise, primaryText: '{"to":"jane@example.com"}' });

/** The value of one series in the registry's text exposition, or undefined. */
async function value(m: GatewayMetrics, name: string, labels = ""): Promise<number | undefined> {
  const line = (await m.registry.metrics()).split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

describe("ShadowBook", () => {
  afterEach(() => vi.useRealTimers());

  it("records a mismatching comparison in the tracker, the metrics and a masked sample", async () => {
    const m = createGatewayMetrics();
    const book = new ShadowBook(m);
    const r = rollout(m);
    book.record(r, req("id-1"), result(ok(judged(["$.a", "$.b"], ["$.b"]), '{"to":"joe@example.com"}')));
    expect(await value(m, "airollout_shadow_comparisons_total")).toBe(1);
    expect(await value(m, "airollout_shadow_field_mismatches_total", 'field="$.b"')).toBe(1);
    const stats = book.stats(r);
    expect(stats.shadow).toMatchObject({ revision: "rev1", compared: 1 });
    const view = book.view(r, undefined);
    expect(view.summary.compared).toBe(1);
    expect(view.samples).toHaveLength(1);
    const s = view.samples[0]!;
    expect(s).toMatchObject({ requestId: "id-1", stable: { version: "v1", status: 200 }, candidate: { version: "v2", status: 200 } });
    expect(JSON.stringify(s)).not.toContain("example.com");
    book.forget(r.key);
    expect(book.view(r, undefined).samples).toHaveLength(0);
  });

  it("counts requests chosen for mirroring per revision: compared / sampled is the coverage, drops lower it", async () => {
    const m = createGatewayMetrics();
    const book = new ShadowBook(m);
    const r = rollout(m);
    for (let i = 0; i < 4; i++) book.sampled(r);
    book.record(r, req("a"), result(ok(judged(["$.a"], []))));
    book.record(r, req("b"), result(ok(judged(["$.a"], []))));
    book.record(r, req("c"), result({ ok: false, stage: "exchange", reason: "timeout", detail: "slow" }));
    expect(await value(m, "airollout_mirror_sampled_total")).toBe(4);
    expect(book.stats(r).shadow).toMatchObject({ compared: 2, sampled: 4 });
    // A new revision starts its evidence over, the count of chosen requests with it.
    const next = compileRollout({ ...rolloutObject(), status: { revision: "rev2" } } as AIRollout, r, m);
    expect(book.stats(next).shadow).toMatchObject({ revision: "rev2", compared: 0, sampled: 0 });
    book.sampled(next);
    expect(book.stats(next).shadow.sampled).toBe(1);
    expect(await value(m, "airollout_mirror_sampled_total")).toBe(5);
  });

  it("keeps no sample of a matching comparison, and counts noise comparisons apart", async () => {
    const m = createGatewayMetrics();
    const book = new ShadowBook(m);
    const r = rollout(m);
    book.record(r, req("id-2"), result(ok(judged(["$.a"], [])), ok(judged(["$.a"], ["$.a"]))));
    expect(await value(m, "airollout_shadow_comparisons_total")).toBe(1);
    expect(await value(m, "airollout_noise_comparisons_total")).toBe(1);
    expect(await value(m, "airollout_noise_mismatches_total")).toBe(1);
    book.record(r, req("id-2b"), result(undefined, ok(judged(["$.a"], []))));
    expect(await value(m, "airollout_noise_comparisons_total")).toBe(2);
    expect(await value(m, "airollout_noise_mismatches_total")).toBe(1);
    expect(book.stats(r).shadow.noiseCompared).toBe(2);
    expect(book.view(r, undefined).samples).toHaveLength(0);
  });

  it("counts failed copies as drops, the noise copy's with a noise_ prefix, and records nothing", async () => {
    const m = createGatewayMetrics();
    const book = new ShadowBook(m);
    const r = rollout(m);
    book.record(r, req("id-3"), result({ ok: false, stage: "exchange", reason: "timeout", detail: "slow" }, { ok: false, stage: "exchange", reason: "error", detail: "reset" }));
    expect(await value(m, "airollout_mirror_dropped_total", 'reason="timeout"')).toBe(1);
    expect(await value(m, "airollout_mirror_dropped_total", 'reason="noise_error"')).toBe(1);
    expect(await value(m, "airollout_shadow_comparisons_total")).toBeUndefined();
    expect(book.stats(r).shadow.compared).toBe(0);
  });

  it("pools field labels beyond 100 distinct paths as $(other)", async () => {
    const m = createGatewayMetrics();
    const book = new ShadowBook(m);
    const r = rollout(m);
    const paths = Array.from({ length: 105 }, (_, i) => `$.f${i}`);
    book.record(r, req("id-4"), result(ok(judged(paths, paths))));
    expect(await value(m, "airollout_shadow_field_mismatches_total", 'field="$.f99"')).toBe(1);
    expect(await value(m, "airollout_shadow_field_mismatches_total", 'field="$.f100"')).toBeUndefined();
    expect(await value(m, "airollout_shadow_field_mismatches_total", 'field="$(other)"')).toBe(5);
  });

  it("stores samples within the rollout's sample budget: maxSamples at once, then 10 per second", () => {
    // A frozen clock: the budget must not refill between records on a slow machine.
    vi.useFakeTimers({ toFake: ["Date"] });
    const m = createGatewayMetrics();
    const book = new ShadowBook(m);
    const r = rollout(m, { maxSamples: 2 });
    for (let i = 0; i < 5; i++) book.record(r, req(`id-${i}`), result(ok(judged(["$.a"], ["$.a"]))));
    expect(book.stats(r).shadow.compared).toBe(5);
    expect(book.view(r, undefined).samples.map((s) => s.requestId)).toEqual(["id-1", "id-0"]);
    vi.setSystemTime(Date.now() + 150);
    book.record(r, req("id-5"), result(ok(judged(["$.a"], ["$.a"]))));
    expect(book.view(r, undefined).samples.map((s) => s.requestId)).toEqual(["id-5", "id-1"]);
  });
});
