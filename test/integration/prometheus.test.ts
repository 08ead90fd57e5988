/**
 * The Prometheus adapter against a real Prometheus (Debian's binary, 1 s scrape interval)
 * scraping a real exporter whose values the test drives. No part of Prometheus is mocked: parse
 * errors, NaN, infinities, empty vectors and series order are whatever Prometheus really returns.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { judgeMeasurement, renderMetricQuery, resolveMetric, type MetricSpec, type QueryTarget, type ResolvedMetric } from "../../controller/src/analysis/assess.ts";
import type { QueryOutcome } from "../../controller/src/analysis/provider.ts";
import { compileCondition } from "../../controller/src/analysis/expr.ts";
import { PrometheusProvider } from "../../controller/src/analysis/prometheus.ts";
import { TEMPLATE_NAMES, type TemplateName } from "../../controller/src/analysis/templates.ts";
import { freePort } from "../../controller/src/dev/controlplane.ts";
import { startExporter, type Exporter } from "../support/exporter.ts";
import { startPrometheus, type TestPrometheus } from "../../controller/src/dev/prometheus.ts";

const CHECKOUT: QueryTarget = { rollout: "checkout", namespace: "shop", stable: "v1", candidate: "v2" };
/** Series exist but nothing flows: every ratio is 0/0. */
const IDLE: QueryTarget = { rollout: "idle", namespace: "shop", stable: "v1", candidate: "v2" };
/** No series at all. */
const GHOST: QueryTarget = { rollout: "ghost", namespace: "shop", stable: "v1", candidate: "v2" };
const TIMEOUT_MS = 5000;
// Four scrape intervals: rate() needs two samples in the window, with room for jitter.
const INTERVAL = "5s";

/** What each built-in template must return for CHECKOUT's traffic, and how it is judged. */
const EXPECTED: Record<TemplateName, { value: number; phase: "Successful" | "Failed" }> = {
  "error-rate": { value: 0.1, phase: "Failed" },
  "latency-p95": { value: 0.4875, phase: "Successful" },
  "shadow-mismatch-rate": { value: 0.02, phase: "Successful" },
  "tokens-per-request": { value: 1200, phase: "Successful" },
  "cost-per-request": { value: 0.002, phase: "Successful" },
  "baseline-error-ratio": { value: 5, phase: "Failed" },
};

let exporter: Exporter;
let prom: TestPrometheus;
let provider: PrometheusProvider;
const timings: string[] = [];

function serveTraffic(e: Exporter): void {
  const req = "airollout_requests_total";
  const at = (t: QueryTarget, version: string) => ({ rollout: t.rollout, namespace: t.namespace, version });
  // Stable: 50 req/s, 2% errors. Candidate: 20 req/s, 10% errors, 0.3 s each, 1200 tokens and
  // 0.002 per request. All counters grow steadily, so rate() ratios are exact.
  e.setCounterRate(req, { ...at(CHECKOUT, "v1"), code: "200" }, 49);
  e.setCounterRate(req, { ...at(CHECKOUT, "v1"), code: "500" }, 1);
  e.setCounterRate(req, { ...at(CHECKOUT, "v2"), code: "200" }, 18);
  e.setCounterRate(req, { ...at(CHECKOUT, "v2"), code: "500" }, 2);
  e.setObservationRate("airollout_request_duration_seconds", at(CHECKOUT, "v1"), 50, 0.08);
  e.setObservationRate("airollout_request_duration_seconds", at(CHECKOUT, "v2"), 20, 0.3);
  e.setCounterRate("airollout_tokens_total", at(CHECKOUT, "v1"), 50 * 900);
  e.setCounterRate("airollout_tokens_total", at(CHECKOUT, "v2"), 20 * 1200);
  e.setCounterRate("airollout_cost_total", at(CHECKOUT, "v1"), 50 * 0.0015);
  e.setCounterRate("airollout_cost_total", at(CHECKOUT, "v2"), 20 * 0.002);
  e.setCounterRate("airollout_shadow_comparisons_total", { rollout: "checkout", namespace: "shop" }, 10);
  e.setCounterRate("airollout_shadow_mismatches_total", { rollout: "checkout", namespace: "shop" }, 0.2);
  // The gateway has judged this revision (minSamples reached): the mismatch rate is evidence.
  e.setGauge("airollout_shadow_judged", { rollout: "checkout", namespace: "shop", revision: "r1" }, 1);

  for (const v of ["v1", "v2"]) {
    e.setCounterRate(req, { ...at(IDLE, v), code: "200" }, 0);
    e.setObservationRate("airollout_request_duration_seconds", at(IDLE, v), 0, 0.3);
    e.setCounterRate("airollout_tokens_total", at(IDLE, v), 0);
    e.setCounterRate("airollout_cost_total", at(IDLE, v), 0);
  }
  e.setCounterRate("airollout_shadow_comparisons_total", { rollout: "idle", namespace: "shop" }, 0);
  e.setGauge("airollout_shadow_judged", { rollout: "idle", namespace: "shop", revision: "r1" }, 1);
  // Comparisons flow but the gateway has not judged the revision yet (fewer than minSamples).
  e.setCounterRate("airollout_shadow_comparisons_total", { rollout: "unjudged", namespace: "shop" }, 10);
  e.setGauge("airollout_shadow_judged", { rollout: "unjudged", namespace: "shop", revision: "r1" }, 0);
}

function resolve(spec: MetricSpec): ResolvedMetric {
  const r = resolveMetric({ interval: INTERVAL, ...spec });
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join("; "));
  return r.metric;
}

const query = (promql: string, timeoutMs = TIMEOUT_MS): Promise<QueryOutcome> => provider.query(promql, { timeoutMs });

/** Polls until `accept` holds for the outcome; returns it. Seconds, not minutes. */
async function until(promql: string, accept: (o: QueryOutcome) => boolean, what: string, timeoutMs = 15_000): Promise<QueryOutcome> {
  const deadline = Date.now() + timeoutMs;
  let last: QueryOutcome | undefined;
  while (Date.now() < deadline) {
    last = await query(promql);
    if (accept(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}; last outcome: ${JSON.stringify(last)}`);
}

const isValue = (o: QueryOutcome): o is Extract<QueryOutcome, { kind: "value" }> => o.kind === "value";
const values = (o: QueryOutcome): readonly number[] => (isValue(o) ? (typeof o.value === "number" ? [o.value] : o.value) : []);
const allNaN = (o: QueryOutcome): boolean => values(o).length > 0 && values(o).every(Number.isNaN);

beforeAll(async () => {
  const t0 = Date.now();
  exporter = await startExporter();
  serveTraffic(exporter);
  exporter.setGauge("airollout_test_value", { rollout: "checkout", namespace: "shop" }, 0.004);
  for (const [series, v] of [["b", 2], ["a", 1], ["c", 3]] as const) exporter.setGauge("airollout_test_sorted", { series }, v);
  exporter.setGauge("airollout_test_special", { kind: "inf" }, Infinity);
  exporter.setGauge("airollout_test_special", { kind: "nan" }, NaN);
  exporter.setGauge("airollout_test_special", { kind: "neginf" }, -Infinity);
  // Two versions' success ratios: a `result[0]` condition would pass or fail on label order alone.
  exporter.setGauge("airollout_test_ratio", { version: "v1" }, 0.99);
  exporter.setGauge("airollout_test_ratio", { version: "v2" }, 0.1);

  prom = await startPrometheus({ targets: [exporter.target] });
  provider = new PrometheusProvider(prom.url);
  timings.push(`prometheus ready in ${Date.now() - t0}ms`);

  // Every template has data once each series has two samples in the window; Prometheus 2.42
  // only hands static targets to the scrape loop after its 5 s discovery tick, hence ~7 s.
  const t1 = Date.now();
  for (const name of TEMPLATE_NAMES) {
    const metric = resolve({ name, templateRef: name });
    await until(renderMetricQuery(metric, CHECKOUT), (o) => values(o).some((v) => !Number.isNaN(v)), `${name} for checkout`);
    await until(renderMetricQuery(metric, IDLE), allNaN, `${name} NaN for idle`);
  }
  timings.push(`templates had data ${Date.now() - t1}ms after Prometheus was ready`);
});

afterAll(async () => {
  await prom?.dispose();
  await exporter?.close();
  if (timings.length) process.stderr.write(`[prometheus.test] ${timings.join("; ")}\n`);
});

describe("values from a real Prometheus", () => {
  it("judges a scraped value against a real condition, and follows it when it changes", async () => {
    const metric = resolve({
      name: "gauge",
      query: 'airollout_test_value{rollout="{{rollout}}",namespace="{{namespace}}"}',
      successCondition: "result < 0.01",
    });
    const promql = renderMetricQuery(metric, CHECKOUT);
    expect(promql).toBe('airollout_test_value{rollout="checkout",namespace="shop"}');

    const ok = await query(promql);
    expect(ok).toMatchObject({ kind: "value", value: [0.004], labels: [{ __name__: "airollout_test_value", rollout: "checkout", namespace: "shop" }] });
    expect(judgeMeasurement(metric, ok, new Date())).toMatchObject({ phase: "Successful", value: "[0.004]" });

    const t0 = Date.now();
    exporter.setGauge("airollout_test_value", { rollout: "checkout", namespace: "shop" }, 0.5);
    const breach = await until(promql, (o) => values(o)[0] === 0.5, "the new gauge value");
    timings.push(`a changed value reached the query in ${Date.now() - t0}ms`);
    const m = judgeMeasurement(metric, breach, new Date());
    expect(m).toMatchObject({ phase: "Failed", value: "[0.5]" });
    // The series judged is named as Prometheus labels it (job and instance come from the scrape).
    expect(m.message).toMatch(/^result \[0.5\] \(series airollout_test_value\{instance="[^"]+", job="[^"]+", namespace="shop", rollout="checkout"\}\) did not meet successCondition "result < 0.01"$/);
  });

  it("orders vector values by label set", async () => {
    const sorted = await query("airollout_test_sorted");
    expect(sorted).toMatchObject({ kind: "value", value: [1, 2, 3] });
    expect(isValue(sorted) && sorted.labels?.map((l) => l.series)).toEqual(["a", "b", "c"]);
    expect(await query('airollout_test_sorted{series!="a"}')).toMatchObject({ kind: "value", value: [2, 3] });
  });

  it("keeps +Inf, -Inf and NaN as Prometheus sends them, and judges them", async () => {
    expect(await query("airollout_test_special")).toMatchObject({ kind: "value", value: [Infinity, NaN, -Infinity] });
    expect(await query("1/0")).toEqual({ kind: "value", value: Infinity });
    expect(await query("-1/0")).toEqual({ kind: "value", value: -Infinity });
    expect(await query("0/0")).toEqual({ kind: "value", value: NaN });
    expect(await query("scalar(vector(0.25))")).toEqual({ kind: "value", value: 0.25 });

    // Infinity is missing evidence by default; nonFinite: Evaluate lets the condition judge it.
    const judge = resolve({ name: "special", query: "x", successCondition: "result <= 0.01" });
    const inf = judgeMeasurement(judge, await query('airollout_test_special{kind="inf"}'), new Date());
    expect(inf).toMatchObject({ phase: "Inconclusive", value: "[+Inf]", message: expect.stringContaining("counted as Inconclusive (nonFinite)") });
    const evaluated = judgeMeasurement({ ...judge, nonFinite: "Evaluate" }, await query('airollout_test_special{kind="inf"}'), new Date());
    expect(evaluated).toMatchObject({ phase: "Failed", value: "[+Inf]" });
    const nan = judgeMeasurement(judge, await query('airollout_test_special{kind="nan"}'), new Date());
    expect(nan).toMatchObject({ phase: "Inconclusive", value: "[NaN]" });
  });

  it("judges a real x/0 ratio Inconclusive, not a pass of result[0] >= 0.95", async () => {
    // The candidate's 5xx rate over the idle rollout's request rate: a real numerator, a zero denominator.
    const ratio = resolve({
      name: "ratio",
      query: `sum(rate(airollout_requests_total{rollout="checkout",version="{{candidate}}",code="500"}[{{args.window}}])) / sum(rate(airollout_requests_total{rollout="idle",version="{{candidate}}"}[{{args.window}}]))`,
      successCondition: "result[0] >= 0.95",
    });
    const outcome = await query(renderMetricQuery(ratio, CHECKOUT));
    expect(outcome).toEqual({ kind: "value", value: [Infinity], labels: [{}] });
    const m = judgeMeasurement(ratio, outcome, new Date());
    expect(m).toEqual({
      time: expect.any(String),
      value: "[+Inf]",
      phase: "Inconclusive",
      message: "result [+Inf] is not finite (+Inf: a ratio x/0 has no denominator, so no evidence); counted as Inconclusive (nonFinite)",
    });
    // The opt-out restores the old reading, which is exactly the promotion this default prevents.
    expect(judgeMeasurement({ ...ratio, nonFinite: "Evaluate" }, outcome, new Date()).phase).toBe("Successful");
  });

  it("judges an indexed condition over two real series Inconclusive, naming their label sets", async () => {
    const unreduced = resolve({ name: "ratio", query: "max by (version) (airollout_test_ratio)", successCondition: "result[0] >= 0.95" });
    const outcome = await query(renderMetricQuery(unreduced, CHECKOUT));
    expect(outcome).toEqual({ kind: "value", value: [0.99, 0.1], labels: [{ version: "v1" }, { version: "v2" }] });
    const m = judgeMeasurement(unreduced, outcome, new Date());
    expect(m).toMatchObject({ phase: "Inconclusive", value: "[0.99, 0.1]" });
    expect(m.message).toContain('2 series ({version="v1"}, {version="v2"}): reduce the query (sum/max by ...) to one series');

    // Without by(), Prometheus' own labels are named as it prints them.
    const raw = judgeMeasurement(unreduced, await query("airollout_test_ratio"), new Date());
    expect(raw.phase).toBe("Inconclusive");
    expect(raw.message).toMatch(/2 series \(airollout_test_ratio\{instance="[^"]+", job="airollout-test", version="v1"\}, airollout_test_ratio\{.*version="v2"\}\)/);

    // Judging every series explicitly works, and so does a query reduced to one series.
    const all = judgeMeasurement({ ...unreduced, successCondition: compileCondition("min(result) >= 0.95") }, outcome, new Date());
    expect(all).toMatchObject({ phase: "Failed", message: expect.stringContaining('(series {version="v1"}, {version="v2"}) did not meet successCondition "min(result) >= 0.95"') });
    const reduced = resolve({ name: "ratio", query: "min(airollout_test_ratio)", successCondition: "result[0] >= 0.95" });
    expect(judgeMeasurement(reduced, await query(renderMetricQuery(reduced, CHECKOUT)), new Date())).toMatchObject({ phase: "Failed", value: "[0.1]" });
  });
});

describe("built-in templates", () => {
  it.each(TEMPLATE_NAMES)("%s returns a real number for a rollout with traffic and is judged", async (name) => {
    const metric = resolve({ name, templateRef: name });
    const outcome = await query(renderMetricQuery(metric, CHECKOUT));
    expect(outcome.kind).toBe("value");
    const [v, ...rest] = values(outcome);
    expect(rest).toEqual([]);
    // Relative: rate() extrapolation may differ by a sample's jitter, never by more.
    expect(Math.abs((v as number) / EXPECTED[name].value - 1)).toBeLessThan(1e-3);
    expect(judgeMeasurement(metric, outcome, new Date()).phase).toBe(EXPECTED[name].phase);
  });

  it.each(TEMPLATE_NAMES)("%s is NaN, so Inconclusive, when the series exist but no traffic flows", async (name) => {
    const metric = resolve({ name, templateRef: name });
    const outcome = await query(renderMetricQuery(metric, IDLE));
    expect(outcome).toEqual({ kind: "value", value: [NaN], labels: [{}] });
    const m = judgeMeasurement(metric, outcome, new Date());
    expect(m).toMatchObject({ phase: "Inconclusive", value: "[NaN]" });
    expect(m.message).toContain("onEmpty");
  });

  it("shadow-mismatch-rate is empty, so Inconclusive, until the gateway has judged the revision (its 0 mismatches are not evidence)", async () => {
    const metric = resolve({ name: "shadow-mismatch-rate", templateRef: "shadow-mismatch-rate" });
    const unjudged: QueryTarget = { rollout: "unjudged", namespace: "shop", stable: "v1", candidate: "v2" };
    // The comparison rate is there (10/s): without the judged gate the template would read 0.
    const rate = await query(`sum(rate(airollout_shadow_comparisons_total{rollout="unjudged"}[${INTERVAL}]))`);
    expect(values(rate)[0]).toBeGreaterThan(0);
    const outcome = await query(renderMetricQuery(metric, unjudged));
    expect(outcome).toEqual({ kind: "empty" });
    expect(judgeMeasurement(metric, outcome, new Date())).toMatchObject({ phase: "Inconclusive", value: "empty" });
  });

  it.each(TEMPLATE_NAMES)("%s is empty, so Inconclusive, for a rollout without any series", async (name) => {
    const metric = resolve({ name, templateRef: name });
    const outcome = await query(renderMetricQuery(metric, GHOST));
    expect(outcome).toEqual({ kind: "empty" });
    expect(judgeMeasurement(metric, outcome, new Date())).toMatchObject({ phase: "Inconclusive", value: "empty" });
  });
});

describe("errors", () => {
  it("quotes Prometheus' own parse error and marks it permanent", async () => {
    const outcome = await query("sum(rate(airollout_requests_total[1m])");
    expect(outcome).toEqual({
      kind: "error",
      permanent: true,
      message: `Prometheus at ${prom.url} rejected the query (HTTP 400): bad_data: invalid parameter "query": 1:39: parse error: unclosed left parenthesis`,
    });
    const m = judgeMeasurement(resolve({ name: "bad", query: "x", successCondition: "result < 1" }), outcome, new Date());
    expect(m.phase).toBe("Error");
    expect(m.message).toContain("bad_data: invalid parameter \"query\": 1:39: parse error: unclosed left parenthesis");
  });

  it("rejects a range vector permanently", async () => {
    const outcome = await query("airollout_requests_total[1m]");
    expect(outcome).toMatchObject({ kind: "error", permanent: true, message: expect.stringContaining("range vector") });
  });

  it("quotes an execution error without marking it permanent (it depends on the data)", async () => {
    const outcome = await query("airollout_requests_total / on(rollout) airollout_test_value");
    expect(outcome).toMatchObject({ kind: "error", message: expect.stringMatching(new RegExp(`^Prometheus at ${prom.url} could not run the query \\(HTTP 422\\): execution: .*many-to-one`)) });
    expect(outcome).not.toHaveProperty("permanent");
  });

  it("names the address and the status of an HTTP error", async () => {
    const wrongPath = new PrometheusProvider(`${prom.url}/not-prometheus`);
    const outcome = await wrongPath.query("up", { timeoutMs: TIMEOUT_MS });
    expect(outcome).toMatchObject({ kind: "error", message: expect.stringMatching(new RegExp(`^Prometheus at ${prom.url}/not-prometheus answered HTTP 404 Not Found`)) });
    expect(outcome).not.toHaveProperty("permanent");
  });

  it("names the address of a server that refuses connections", async () => {
    const address = `http://127.0.0.1:${await freePort()}`;
    const outcome = await new PrometheusProvider(address).query("up", { timeoutMs: TIMEOUT_MS });
    expect(outcome).toEqual({ kind: "error", message: expect.stringMatching(new RegExp(`^cannot reach Prometheus at ${address}: .*ECONNREFUSED`)) });
  });

  describe("a server that accepts connections and never answers", () => {
    let hung: Server;
    const sockets = new Set<Socket>();
    let address: string;
    beforeAll(async () => {
      hung = createServer((s) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
      });
      await new Promise<void>((r) => hung.listen(0, "127.0.0.1", () => r()));
      const a = hung.address();
      address = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hung.close(r));
    });

    it("times out after timeoutMs with a message naming the address", async () => {
      const t0 = Date.now();
      const outcome = await new PrometheusProvider(address).query("up", { timeoutMs: 300 });
      const took = Date.now() - t0;
      expect(outcome).toEqual({ kind: "error", message: `Prometheus at ${address} did not answer within 300ms (timeout)` });
      expect(took).toBeGreaterThanOrEqual(290);
      // The server never answers: the outcome came from our timeout, not from the server.
      expect(took).toBeLessThan(30_000);
    });

    it("stops when the caller aborts", async () => {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      const outcome = await new PrometheusProvider(address).query("up", { timeoutMs: 10_000, signal: ac.signal });
      expect(outcome).toEqual({ kind: "error", message: `query to Prometheus at ${address} was cancelled` });
    });
  });
});

describe("Prometheus stopped and restarted", () => {
  it("reports an error naming the address while stopped, and values again after a restart", async () => {
    const metric = resolve({ name: "error-rate", templateRef: "error-rate" });
    const promql = renderMetricQuery(metric, CHECKOUT);

    await prom.stop();
    const down = await query(promql);
    expect(down).toMatchObject({ kind: "error", message: expect.stringMatching(new RegExp(`^cannot reach Prometheus at ${prom.url}: .*ECONNREFUSED`)) });
    expect(down).not.toHaveProperty("permanent");
    expect(judgeMeasurement(metric, down, new Date())).toMatchObject({ phase: "Error", message: expect.stringContaining(prom.url) });

    const t0 = Date.now();
    await prom.start();
    const back = await until(promql, (o) => values(o).some((v) => !Number.isNaN(v)), "error-rate after the restart");
    timings.push(`values again ${Date.now() - t0}ms after restarting Prometheus`);
    expect(values(back)[0]).toBeCloseTo(0.1, 4);
    expect(judgeMeasurement(metric, back, new Date()).phase).toBe("Failed");
  });
});
