import { describe, expect, it } from "vitest";
import { concludeMetric, judgeMeasurement, MEASUREMENT_HISTORY, newMetricStatus, nextMeasurementDue, recordMeasurement, renderMetricQuery, resolveAnalysis, resolveMetric, runPhase, summarizeRun, type Judge, type Measurement, type MeasurementPhase, type MetricLimits, type MetricPhase, type MetricSpec, type MetricStatus, type ResolvedMetric, type RunPhase } from "./assess.ts";
import type { QueryOutcome } from "./provider.ts";
import { MetricSchema } from "../api/schema.ts";

const NOW = new Date("2025-01-01T00:00:00.000Z");
const target = { rollout: "triage", namespace: "bots", stable: "v1", candidate: "v2" };

function resolved(spec: Omit<MetricSpec, "name"> & { name?: string }): ResolvedMetric {
  const r = resolveMetric({ name: "m", ...spec });
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join("\n"));
  return r.metric;
}

function judge(spec: Omit<MetricSpec, "name">, outcome: QueryOutcome): Measurement {
  const metric: Judge = resolved({ query: "up", ...spec });
  return judgeMeasurement(metric, outcome, NOW);
}

const value = (v: number | number[]): QueryOutcome => ({ kind: "value", value: v });
const EMPTY: QueryOutcome = { kind: "empty" };
const ERROR: QueryOutcome = { kind: "error", message: "connect ECONNREFUSED 127.0.0.1:9090" };

// ---------------------------------------------------------------------------------------------

describe("resolveMetric", () => {
  it("spends a judge metric's alpha over its planned measurements (count), so repeated looks keep the written level", () => {
    const five = resolveMetric({ name: "lat", judge: { signal: "latency", alpha: 0.01 }, count: 5 });
    expect(five.ok && five.metric.judge?.alpha).toBeCloseTo(0.002, 12);
    const once = resolveMetric({ name: "lat", judge: { signal: "latency", alpha: 0.01 } }, {}, { defaultCount: 1 });
    expect(once.ok && once.metric.judge?.alpha).toBe(0.01);
    // Background runs have no planned number of looks: the written alpha per measurement.
    const background = resolveMetric({ name: "lat", judge: { signal: "latency", alpha: 0.01 } });
    expect(background.ok && background.metric.judge?.alpha).toBe(0.01);
  });

  it("takes metric fields over analysis defaults over built-in defaults", () => {
    const analysis = { interval: "10s", failureLimit: 2, inconclusiveLimit: 1, consecutiveErrorLimit: 3, args: { a: "1", b: "2" } };
    const own = resolveMetric(
      { name: "m", query: 'x{a="{{args.a}}",b="{{args.b}}"}', successCondition: "result < 1", interval: "5s", failureLimit: 7, args: { b: "3" } },
      analysis,
    );
    expect(own.ok && own.metric).toMatchObject({
      intervalMs: 5000,
      failureLimit: 7,
      inconclusiveLimit: 1,
      consecutiveErrorLimit: 3,
      onEmpty: "Inconclusive",
      nonFinite: "Inconclusive",
      count: undefined,
      initialDelayMs: 0,
      args: { a: "1", b: "3", window: "5s" },
    });
    const bare = resolveMetric({ name: "m", query: "up", successCondition: "result < 1" });
    expect(bare.ok && bare.metric).toMatchObject({ intervalMs: 30_000, failureLimit: 0, inconclusiveLimit: 0, consecutiveErrorLimit: 4 });
  });

  it("accepts metrics parsed by the schema", () => {
    const spec = MetricSchema.parse({ name: "m", templateRef: "error-rate", onEmpty: "Failed", initialDelay: "1m", count: 3 });
    const r = resolveMetric(spec, { interval: "1.5m" });
    expect(r.ok && r.metric).toMatchObject({ onEmpty: "Failed", nonFinite: "Inconclusive", initialDelayMs: 60_000, count: 3, intervalMs: 90_000, args: { window: "1m30s" } });
    const optOut = resolveMetric(MetricSchema.parse({ name: "m", templateRef: "latency-p95", nonFinite: "Evaluate" }));
    expect(optOut.ok && optOut.metric.nonFinite).toBe("Evaluate");
    expect(() => MetricSchema.parse({ name: "m", templateRef: "latency-p95", nonFinite: "Successful" })).toThrow(/nonFinite/);
  });

  it("applies defaultCount only when the metric sets no count", () => {
    expect(resolved({ query: "up", max: 1 }).count).toBeUndefined();
    const r1 = resolveMetric({ name: "m", query: "up", max: 1 }, {}, { defaultCount: 1 });
    const r2 = resolveMetric({ name: "m", query: "up", max: 1, count: 5 }, {}, { defaultCount: 1 });
    expect(r1.ok && r1.metric.count).toBe(1);
    expect(r2.ok && r2.metric.count).toBe(5);
  });

  it.each<[string, Omit<MetricSpec, "name" | "templateRef">, string | undefined, string | undefined, number | undefined, number | undefined]>([
    ["no own criteria: the template's", {}, "result <= 0.01", undefined, undefined, undefined],
    ["own max replaces all template criteria", { max: 0.02 }, undefined, undefined, undefined, 0.02],
    ["own failureCondition replaces the template's successCondition", { failureCondition: "result > 0.05" }, undefined, "result > 0.05", undefined, undefined],
    ["own successCondition", { successCondition: "result < 0.5" }, "result < 0.5", undefined, undefined, undefined],
  ])("criteria from a template are replaced as a group: %s", (_name, spec, success, failure, min, max) => {
    const m = resolved({ templateRef: "error-rate", ...spec });
    expect(m.successCondition?.source).toBe(success);
    expect(m.failureCondition?.source).toBe(failure);
    expect(m.min).toBe(min);
    expect(m.max).toBe(max);
  });

  it.each<[string, Omit<MetricSpec, "name">, string, RegExp]>([
    ["unknown template", { templateRef: "p99" }, "templateRef", /unknown template "p99"; built-in templates are error-rate, latency-p95/],
    ["template named like a prototype member", { templateRef: "constructor" }, "templateRef", /unknown template "constructor"/],
    ["query and templateRef", { query: "up", templateRef: "error-rate" }, "query", /set exactly one of query, templateRef and judge/],
    ["query and judge", { query: "up", judge: { signal: "latency" } }, "query", /set exactly one of query, templateRef and judge/],
    ["neither query nor templateRef", { successCondition: "result < 1" }, "query", /set query, templateRef or judge/],
    ["condition does not parse", { query: "up", successCondition: "result <" }, "successCondition", /"result <": expected a value but found end of input at column 9/],
    ["unknown identifier", { query: "up", failureCondition: "process.exit(1)" }, "failureCondition", /unknown identifier "process" at column 1/],
    ["condition is not boolean", { query: "up", successCondition: "result * 2" }, "successCondition", /must be true or false/],
    ["min above max", { query: "up", min: 5, max: 1 }, "min", /min 5 is greater than max 1/],
    ["nothing to judge by", { query: "up" }, "successCondition", /nothing to judge a measurement by/],
    ["unknown query variable", { query: 'x{v="{{canidate}}"}', max: 1 }, "query", /unknown template variable \{\{canidate\}\}; known: \{\{rollout\}\}/],
    ["unknown arg", { query: 'x{v="{{args.team}}"}', max: 1 }, "query", /unknown template variable \{\{args.team\}\}/],
    ["unclosed placeholder", { query: "x{{rollout", max: 1 }, "query", /unclosed/],
    ["unsafe arg outside quotes", { query: "rate(x[{{args.window}}])", max: 1, args: { window: "1m]) or vector(1" } }, "args.window", /\{\{args.window\}\} is used outside a quoted string/],
    ["built-in name outside quotes", { query: "x > {{rollout}}", max: 1 }, "query", /\{\{rollout\}\} is used outside a quoted string/],
    ["bad interval", { query: "up", max: 1, interval: "soon" }, "interval", /invalid duration "soon"/],
    ["interval too short", { query: "up", max: 1, interval: "100ms" }, "interval", /at least 1s/],
    ["bad initialDelay", { query: "up", max: 1, initialDelay: "1d" }, "initialDelay", /invalid duration "1d"/],
    ["count 0", { query: "up", max: 1, count: 0 }, "count", /whole number >= 1, got 0/],
    ["negative limit", { query: "up", max: 1, failureLimit: -1 }, "failureLimit", /whole number >= 0, got -1/],
    ["fractional limit", { query: "up", max: 1, consecutiveErrorLimit: 1.5 }, "consecutiveErrorLimit", /got 1.5/],
  ])("spec error: %s", (_name, spec, field, message) => {
    const r = resolveMetric({ name: "latency", ...spec });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const e = r.errors.find((x) => x.field === field);
    expect(e, JSON.stringify(r.errors)).toBeDefined();
    expect(e?.metric).toBe("latency");
    expect(e?.message).toMatch(new RegExp(`^metric "latency": ${field}: `));
    expect(e?.message).toMatch(message);
  });

  it("renders the query with the interval as a PromQL duration", () => {
    const m = resolved({ query: 'rate(x{r="{{rollout}}",v="{{candidate}}"}[{{interval}}])', max: 1, interval: "1.5m" });
    expect(renderMetricQuery(m, target)).toBe('rate(x{r="triage",v="v2"}[1m30s])');
  });
});

describe("resolveAnalysis", () => {
  it("resolves every metric and reports duplicate names and every bad metric", () => {
    const r = resolveAnalysis({
      prometheus: { address: "http://prometheus:9090" },
      metrics: [
        { name: "a", templateRef: "error-rate" },
        { name: "a", templateRef: "latency-p95" },
        { name: "b", query: "up", successCondition: "nope" },
      ],
    });
    expect(r.metrics.map((m) => m.name)).toEqual(["a", "a"]);
    expect(r.errors.map((e) => `${e.metric}.${e.field}`)).toEqual(["a.name", "b.successCondition"]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("judgeMeasurement", () => {
  it.each<[string, Omit<MetricSpec, "name">, QueryOutcome, MeasurementPhase, string | undefined, RegExp]>([
    // errors and missing data
    ["provider error", { max: 1 }, ERROR, "Error", undefined, /^query failed: connect ECONNREFUSED/],
    ["empty", { max: 1 }, EMPTY, "Inconclusive", "empty", /empty result .*counted as Inconclusive \(onEmpty\)/],
    ["empty, onEmpty Failed", { max: 1, onEmpty: "Failed" }, EMPTY, "Failed", "empty", /counted as Failed/],
    ["empty, onEmpty Successful", { max: 1, onEmpty: "Successful" }, EMPTY, "Successful", "empty", /counted as Successful/],
    ["NaN", { successCondition: "result < 1" }, value(NaN), "Inconclusive", "NaN", /result NaN is NaN/],
    ["empty vector", { successCondition: "true" }, value([]), "Inconclusive", "[]", /empty vector/],
    ["NaN in a vector", { successCondition: "result[0] < 1" }, value([0.5, NaN]), "Inconclusive", "[0.5, NaN]", /is NaN/],
    ["NaN, onEmpty Failed", { successCondition: "result < 1", onEmpty: "Failed" }, value(NaN), "Failed", "NaN", /counted as Failed/],
    // successCondition only: not meeting it fails (Argo)
    ["success only, met", { successCondition: "result < 0.01" }, value(0.004), "Successful", "0.004", /^result 0.004 met successCondition "result < 0.01"$/],
    ["success only, not met", { successCondition: "result < 0.01" }, value(0.05), "Failed", "0.05", /^result 0.05 did not meet successCondition "result < 0.01"$/],
    // failureCondition only: not matching succeeds (Argo)
    ["failure only, matched", { failureCondition: "result > 0.05" }, value(0.1), "Failed", "0.1", /^result 0.1 matched failureCondition "result > 0.05"$/],
    ["failure only, not matched", { failureCondition: "result > 0.05" }, value(0.01), "Successful", "0.01", /did not match failureCondition "result > 0.05"/],
    // both: neither matching is Inconclusive, failure wins over success
    ["both, success", { successCondition: "result < 0.01", failureCondition: "result > 0.05" }, value(0.001), "Successful", "0.001", /met successCondition/],
    ["both, failure", { successCondition: "result < 0.01", failureCondition: "result > 0.05" }, value(0.1), "Failed", "0.1", /matched failureCondition/],
    ["both, neither", { successCondition: "result < 0.01", failureCondition: "result > 0.05" }, value(0.02), "Inconclusive", "0.02", /^result 0.02 met neither successCondition "result < 0.01" nor the failure criteria \(failureCondition "result > 0.05"\)$/],
    ["both true: failure wins", { successCondition: "result > 0", failureCondition: "result > 1" }, value(2), "Failed", "2", /matched failureCondition/],
    // min/max shorthand
    ["below min", { min: 10 }, value(5), "Failed", "5", /^result 5: 5 is below min 10$/],
    ["above max", { max: 1 }, value(1.5), "Failed", "1.5", /^result 1.5: 1.5 is above max 1$/],
    ["max is inclusive", { max: 1 }, value(1), "Successful", "1", /^result 1 is not above max 1$/],
    ["within min and max", { min: 1, max: 5 }, value(3), "Successful", "3", /is within min 1 and max 5/],
    ["vector element above max", { max: 1 }, value([0.5, 2]), "Failed", "[0.5, 2]", /2 is above max 1/],
    ["vector within max", { max: 1 }, value([0.5, 1]), "Successful", "[0.5, 1]", /not above max 1/],
    ["max and successCondition, both ok", { max: 1, successCondition: "result < 0.5" }, value(0.2), "Successful", "0.2", /met successCondition/],
    ["max and successCondition, between", { max: 1, successCondition: "result < 0.5" }, value(0.7), "Inconclusive", "0.7", /nor the failure criteria \(above max 1\)/],
    ["max and failureCondition", { max: 1, failureCondition: "result < 0" }, value(0.5), "Successful", "0.5", /did not match failureCondition "result < 0" and is not above max 1/],
    // NaN produced by the condition's own arithmetic is undecidable, never a match
    ["0/0 in successCondition", { successCondition: "result / result < 2" }, value(0), "Inconclusive", "0", /could not be decided/],
    ["negated 0/0 in successCondition", { successCondition: "!(result / result > 2)" }, value(0), "Inconclusive", "0", /could not be decided/],
    ["0/0 in failureCondition", { failureCondition: "result / result > 2", successCondition: "true" }, value(0), "Inconclusive", "0", /failureCondition .* could not be decided/],
    ["missing series index", { successCondition: "result[1] < 1" }, value([0.5]), "Inconclusive", "[0.5]", /could not be decided/],
    // data-dependent evaluation problems are Errors (the measurement could not be judged)
    ["fractional index", { successCondition: "result[0.5] < 1" }, value([0.1]), "Error", "[0.1]", /evaluating successCondition "result\[0.5\] < 1": index 0.5 is not a whole number/],
    ["fractional index in failureCondition", { failureCondition: "result[0.5] > 1" }, value([0.1]), "Error", "[0.1]", /evaluating failureCondition/],
    // several series read as one: Inconclusive, not an Error (the query, not the data, is at fault)
    ["multi-series in scalar position", { successCondition: "result < 1" }, value([0.1, 0.2]), "Inconclusive", "[0.1, 0.2]", /^result \[0.1, 0.2\]: 2 series \(labels unknown\): reduce the query/],
    ["multi-series in failureCondition", { failureCondition: "result > 1" }, value([0.1, 0.2]), "Inconclusive", "[0.1, 0.2]", /failureCondition "result > 1" reads a single series/],
    // infinities are missing evidence by default (nonFinite), values when opted in
    ["+Inf against a bound", { successCondition: "result <= 1.5" }, value(Infinity), "Inconclusive", "+Inf", /^result \+Inf is not finite \(\+Inf: a ratio x\/0/],
    ["-Inf", { min: 0 }, value(-Infinity), "Inconclusive", "-Inf", /counted as Inconclusive \(nonFinite\)/],
    ["+Inf against a bound, Evaluate", { successCondition: "result <= 1.5", nonFinite: "Evaluate" }, value(Infinity), "Failed", "+Inf", /result \+Inf did not meet/],
    ["-Inf, Evaluate", { min: 0, nonFinite: "Evaluate" }, value(-Infinity), "Failed", "-Inf", /-Inf is below min 0/],
  ])("%s", (_name, spec, outcome, phase, text, message) => {
    const m = judge(spec, outcome);
    expect(m.phase).toBe(phase);
    expect(m.value).toBe(text);
    expect(m.message).toMatch(message);
    expect(m.time).toBe(NOW.toISOString());
  });

  const conditions: Omit<MetricSpec, "name">[] = [
    { successCondition: "result < 1" },
    { successCondition: "!(result > 1)" },
    { successCondition: "true" },
    { successCondition: "isNaN(result)" },
    { successCondition: "result != 0" },
    { failureCondition: "result > 1" },
    { failureCondition: "false" },
    { min: 0 },
    { max: 1 },
    { min: 0, max: 1, successCondition: "true" },
  ];
  const missing: QueryOutcome[] = [EMPTY, value(NaN), value([]), value([NaN]), value([1, NaN])];
  it.each(conditions.flatMap((c) => missing.map((o) => [c, o] as const)))("empty or NaN is never Successful: %j with %j", (spec, outcome) => {
    expect(judge(spec, outcome).phase).toBe("Inconclusive");
    expect(judge({ ...spec, onEmpty: "Failed" }, outcome).phase).toBe("Failed");
  });

  const infinite: QueryOutcome[] = [value(Infinity), value(-Infinity), value([Infinity]), value([1, -Infinity]), value([NaN, Infinity])];
  it.each(conditions.flatMap((c) => infinite.map((o) => [c, o] as const)))("+Inf/-Inf is Inconclusive by default, whatever onEmpty says: %j with %j", (spec, outcome) => {
    for (const onEmpty of ["Successful", "Failed", "Inconclusive"] as const) {
      const m = judge({ ...spec, onEmpty }, outcome);
      expect(m.phase).toBe("Inconclusive");
      expect(m.message).toMatch(/counted as Inconclusive \(nonFinite\)$/);
    }
  });
});

describe("judgeMeasurement: non-finite values and several series", () => {
  const v1 = { version: "v1" };
  const v2 = { version: "v2" };
  const series = (values: number[], labels: Record<string, string>[]): QueryOutcome => ({ kind: "value", value: values, labels });
  const AT_LEAST = { successCondition: "result[0] >= 0.95" };
  const ALL_AT_LEAST = { successCondition: "min(result) >= 0.95" };
  const UNREDUCED = '2 series ({version="v1"}, {version="v2"}): reduce the query (sum/max by ...) to one series';

  it.each<[string, Omit<MetricSpec, "name">, QueryOutcome, MeasurementPhase, string | RegExp]>([
    // finite, one series: judged, and the series named
    ["finite pass, one labelled series", AT_LEAST, series([0.99], [v2]), "Successful", 'result [0.99] (series {version="v2"}) met successCondition "result[0] >= 0.95"'],
    ["finite fail, one labelled series", AT_LEAST, series([0.5], [v2]), "Failed", 'result [0.5] (series {version="v2"}) did not meet successCondition "result[0] >= 0.95"'],
    ["finite pass, scalar", { successCondition: "result >= 0.95" }, value(0.99), "Successful", 'result 0.99 met successCondition "result >= 0.95"'],
    ["a reduced query's empty label set is not named", AT_LEAST, series([0.99], [{}]), "Successful", 'result [0.99] met successCondition "result[0] >= 0.95"'],
    ["the metric name is printed as Prometheus does", AT_LEAST, series([0.99], [{ __name__: "ok_ratio", version: "v2" }]), "Successful", /\(series ok_ratio\{version="v2"\}\)/],
    // non-finite, default
    ["NaN scalar takes onEmpty", AT_LEAST, value(NaN), "Inconclusive", /^result NaN is NaN \(no traffic in the window, e.g. 0\/0\); counted as Inconclusive \(onEmpty\)$/],
    ["NaN in a labelled series takes onEmpty", ALL_AT_LEAST, series([0.99, NaN], [v1, v2]), "Inconclusive", /^result \[0.99, NaN\] \(series \{version="v1"\}, \{version="v2"\}\) is NaN/],
    ["+Inf scalar (x/0)", { successCondition: "result >= 0.95" }, value(Infinity), "Inconclusive", "result +Inf is not finite (+Inf: a ratio x/0 has no denominator, so no evidence); counted as Inconclusive (nonFinite)"],
    ["+Inf in one series", ALL_AT_LEAST, series([0.99, Infinity], [v1, v2]), "Inconclusive", /is not finite \(\+Inf \(\{version="v2"\}\): a ratio x\/0/],
    ["-Inf scalar", { failureCondition: "result < 0" }, value(-Infinity), "Inconclusive", /^result -Inf is not finite/],
    ["-Inf in one series, onEmpty Successful", { ...ALL_AT_LEAST, onEmpty: "Successful" }, series([-Infinity, 0.99], [v1, v2]), "Inconclusive", /-Inf \(\{version="v1"\}\)/],
    ["+Inf against max", { max: 1 }, value(Infinity), "Inconclusive", /counted as Inconclusive \(nonFinite\)/],
    // several series: a condition reading one of them is Inconclusive, in either order
    ["several series, indexed, first passes", AT_LEAST, series([0.99, 0.1], [v1, v2]), "Inconclusive", `result [0.99, 0.1]: ${UNREDUCED}; successCondition "result[0] >= 0.95" reads a single series, or judge every series with min(result)/max(result)`],
    ["several series, indexed, first fails", AT_LEAST, series([0.1, 0.99], [v1, v2]), "Inconclusive", `result [0.1, 0.99]: ${UNREDUCED}; successCondition "result[0] >= 0.95" reads a single series, or judge every series with min(result)/max(result)`],
    ["several series, indexed failureCondition", { failureCondition: "result[1] > 0.5" }, series([0.99, 0.1], [v1, v2]), "Inconclusive", /reduce the query .*; failureCondition "result\[1\] > 0.5" reads a single series/],
    ["several series, both conditions indexed", { failureCondition: "result[0] < 0.5", successCondition: "result[0] >= 0.95" }, series([0.99, 0.1], [v1, v2]), "Inconclusive", /failureCondition "result\[0\] < 0.5" and successCondition "result\[0\] >= 0.95" reads/],
    ["several series, scalar use", { successCondition: "abs(result) < 1" }, series([0.99, 0.1], [v1, v2]), "Inconclusive", UNREDUCED],
    ["several series, provider without labels", AT_LEAST, value([0.99, 0.1]), "Inconclusive", /2 series \(labels unknown\)/],
    // several series judged explicitly: every series counts, and the failing one is named
    ["several series, min(result), one below", ALL_AT_LEAST, series([0.99, 0.1], [v1, v2]), "Failed", 'result [0.99, 0.1] (series {version="v1"}, {version="v2"}) did not meet successCondition "min(result) >= 0.95"'],
    ["several series, min(result), all above", ALL_AT_LEAST, series([0.99, 0.97], [v1, v2]), "Successful", /\(series \{version="v1"\}, \{version="v2"\}\) met successCondition "min\(result\) >= 0.95"/],
    ["several series, max(result) failureCondition", { failureCondition: "max(result) > 0.5" }, series([0.99, 0.1], [v1, v2]), "Failed", /matched failureCondition "max\(result\) > 0.5"/],
    ["several series, len(result)", { successCondition: "len(result) == 2" }, series([0.99, 0.1], [v1, v2]), "Successful", /met successCondition/],
    ["several series, max shorthand names the breaching series", { max: 0.5 }, series([0.1, 0.99], [v1, v2]), "Failed", /: 0.99 \(\{version="v2"\}\) is above max 0.5$/],
    ["several series, min shorthand names the breaching series", { min: 0.5 }, series([0.99, 0.1], [v1, v2]), "Failed", /: 0.1 \(\{version="v2"\}\) is below min 0.5$/],
    // opt-out: nonFinite Evaluate hands the value to the conditions
    ["Evaluate: +Inf meets a lower bound", { successCondition: "result >= 0.95", nonFinite: "Evaluate" }, value(Infinity), "Successful", 'result +Inf met successCondition "result >= 0.95"'],
    ["Evaluate: +Inf breaches an upper bound", { successCondition: "result <= 2", nonFinite: "Evaluate" }, value(Infinity), "Failed", /did not meet/],
    ["Evaluate: +Inf above max", { max: 2, nonFinite: "Evaluate" }, series([Infinity], [v2]), "Failed", /\+Inf is above max 2/],
    ["Evaluate: NaN decided by isNaN", { failureCondition: "isNaN(result)", nonFinite: "Evaluate" }, value(NaN), "Failed", /matched failureCondition "isNaN\(result\)"/],
    ["Evaluate: NaN comparison is undecided, not onEmpty", { successCondition: "result < 1", onEmpty: "Successful", nonFinite: "Evaluate" }, value(NaN), "Inconclusive", /could not be decided/],
    ["Evaluate: NaN never passes max", { max: 1, nonFinite: "Evaluate" }, value(NaN), "Inconclusive", "result NaN: max 1 could not be decided (a value is NaN)"],
    ["Evaluate: NaN never passes min and max", { min: 0, max: 1, nonFinite: "Evaluate" }, value([0.5, NaN]), "Inconclusive", /min 0 and max 1 could not be decided/],
    ["Evaluate: empty vector still takes onEmpty", { max: 1, nonFinite: "Evaluate" }, value([]), "Inconclusive", /empty vector; counted as Inconclusive \(onEmpty\)/],
    ["Evaluate: several series still need reducing", { ...AT_LEAST, nonFinite: "Evaluate" }, series([Infinity, 0.1], [v1, v2]), "Inconclusive", UNREDUCED],
  ])("%s", (_name, spec, outcome, phase, message) => {
    const m = judge(spec, outcome);
    expect(m.phase).toBe(phase);
    if (typeof message === "string") expect(m.message).toContain(message);
    else expect(m.message).toMatch(message);
  });

  it("bounds what a measurement quotes of a high-cardinality vector", () => {
    const n = 1000;
    const outcome = series(
      Array.from({ length: n }, (_, i) => i / n),
      Array.from({ length: n }, (_, i) => ({ pod: `gateway-${String(i).padStart(4, "0")}`, long: "x".repeat(500) })),
    );
    const m = judge(ALL_AT_LEAST, outcome);
    expect(m.value).toBe("[0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, ... 990 more]");
    expect(m.message).toMatch(/and 995 more\)/);
    expect(m.message).toContain('{long="xxx');
    expect((m.message ?? "").length).toBeLessThan(2000);
  });

  it("puts the series judged into the metric's status", () => {
    const metric = resolved({ query: "up", ...AT_LEAST, count: 1 });
    const unreduced = recordMeasurement(newMetricStatus(metric.name, "q"), judgeMeasurement(metric, series([0.99, 0.1], [v1, v2]), NOW), metric);
    expect(unreduced).toMatchObject({ phase: "Inconclusive", inconclusive: 1, lastValue: "[0.99, 0.1]" });
    expect(unreduced.message).toContain(UNREDUCED);
    expect(unreduced.measurements?.[0]?.message).toContain(UNREDUCED);

    const reduced = recordMeasurement(newMetricStatus(metric.name, "q"), judgeMeasurement(metric, series([0.99], [v2]), NOW), metric);
    expect(reduced).toMatchObject({ phase: "Successful", successful: 1 });
    expect(reduced.message).toContain('(series {version="v2"})');
  });
});

// ---------------------------------------------------------------------------------------------

let clock = 0;
function meas(phase: MeasurementPhase, v?: string): Measurement {
  clock += 1000;
  return { time: new Date(NOW.getTime() + clock).toISOString(), phase, ...(v === undefined ? {} : { value: v }), message: `${phase} ${v ?? ""}`.trim() };
}
const S = (): Measurement => meas("Successful", "0.001");
const F = (): Measurement => meas("Failed", "0.5");
const I = (): Measurement => meas("Inconclusive", "NaN");
const E = (): Measurement => meas("Error");

const LIMITS: MetricLimits = { failureLimit: 0, inconclusiveLimit: 0, consecutiveErrorLimit: 4, count: undefined };

function fold(limits: Partial<MetricLimits>, seq: (() => Measurement)[]): MetricStatus {
  return seq.reduce((s, next) => recordMeasurement(s, next(), { ...LIMITS, ...limits }), newMetricStatus("error-rate", "q"));
}

describe("recordMeasurement", () => {
  it.each<[string, Partial<MetricLimits>, (() => Measurement)[], MetricPhase, Partial<MetricStatus>, RegExp]>([
    ["one success keeps running without count", {}, [S], "Running", { successful: 1 }, /^Successful 0.001$/],
    ["count reached with a success", { count: 2 }, [S, S], "Successful", { successful: 2 }, /^count 2 reached: 2 successful, 0 failed, 0 inconclusive; last: Successful/],
    ["count reached with failures within the limit", { count: 3, failureLimit: 2 }, [F, S, F], "Successful", { successful: 1, failed: 2 }, /count 3 reached: 1 successful, 2 failed/],
    ["count reached without a success, some failed: fail closed", { count: 2, failureLimit: 5 }, [F, F], "Failed", { failed: 2 }, /count 2 reached without a successful measurement \(0 successful, 2 failed, 0 inconclusive\)/],
    ["count reached with only inconclusive: fail closed", { count: 2, inconclusiveLimit: 5 }, [I, I], "Inconclusive", { inconclusive: 2 }, /without a successful measurement/],
    ["count 1 with a single failure inside failureLimit", { count: 1, failureLimit: 2 }, [F], "Failed", { failed: 1 }, /without a successful measurement/],
    ["errors do not count towards count", { count: 2 }, [S, E, E], "Running", { successful: 1, error: 2, consecutiveError: 2 }, /^Error$/],
    ["first failure with failureLimit 0", {}, [F], "Failed", { failed: 1 }, /^1 failed measurements, more than failureLimit 0; last: Failed 0.5$/],
    ["failures up to the limit keep running", { failureLimit: 2 }, [F, F], "Running", { failed: 2 }, /Failed/],
    ["failures beyond the limit", { failureLimit: 2 }, [F, S, F, F], "Failed", { failed: 3, successful: 1 }, /3 failed measurements, more than failureLimit 2/],
    ["failure beats reaching count", { count: 1 }, [F], "Failed", { failed: 1 }, /more than failureLimit 0/],
    ["first inconclusive with inconclusiveLimit 0", {}, [I], "Inconclusive", { inconclusive: 1 }, /1 inconclusive measurements, more than inconclusiveLimit 0; last: Inconclusive NaN/],
    ["inconclusive within the limit", { inconclusiveLimit: 1 }, [I, S], "Running", { inconclusive: 1, successful: 1 }, /Successful/],
    ["inconclusive beyond the limit", { inconclusiveLimit: 1 }, [I, S, I], "Inconclusive", { inconclusive: 2 }, /more than inconclusiveLimit 1/],
    ["errors up to the limit keep running", {}, [E, E, E, E], "Running", { error: 4, consecutiveError: 4 }, /Error/],
    ["errors beyond the limit", {}, [E, E, E, E, E], "Error", { error: 5, consecutiveError: 5 }, /^5 errors in a row, more than consecutiveErrorLimit 4; last: Error$/],
    ["a success resets consecutive errors", { consecutiveErrorLimit: 1 }, [E, S, E, S, E], "Running", { error: 3, consecutiveError: 1 }, /Error/],
    ["consecutiveErrorLimit 0", { consecutiveErrorLimit: 0 }, [E], "Error", { consecutiveError: 1 }, /more than consecutiveErrorLimit 0/],
    ["a final phase is kept", {}, [F, S, S], "Failed", { failed: 1, successful: 0 }, /failureLimit 0/],
  ])("%s", (_name, limits, seq, phase, counters, message) => {
    const s = fold(limits, seq);
    expect(s.phase).toBe(phase);
    expect(s).toMatchObject(counters);
    expect(s.message).toMatch(message);
    expect(s.name).toBe("error-rate");
    expect(s.query).toBe("q");
  });

  it("keeps the last measurements only, newest last", () => {
    const s = fold({ inconclusiveLimit: 100 }, Array.from({ length: 25 }, () => I));
    expect(s.measurements).toHaveLength(MEASUREMENT_HISTORY);
    expect(s.inconclusive).toBe(25);
    const times = s.measurements?.map((m) => m.time) ?? [];
    expect([...times].sort()).toEqual(times);
  });

  it("keeps the last value across errors", () => {
    const s = fold({}, [S, E]);
    expect(s.lastValue).toBe("0.001");
  });

  it("does not mutate its input", () => {
    const before = newMetricStatus("m");
    const copy = structuredClone(before);
    recordMeasurement(before, S(), LIMITS);
    expect(before).toEqual(copy);
  });

  it("starts Pending", () => {
    expect(newMetricStatus("m")).toEqual({ name: "m", phase: "Pending", successful: 0, failed: 0, inconclusive: 0, error: 0, consecutiveError: 0 });
  });
});

describe("concludeMetric", () => {
  it.each<[string, (() => Measurement)[], Partial<MetricLimits>, MetricPhase, RegExp]>([
    ["never measured", [], {}, "Inconclusive", /^stopped before any measurement was judged$/],
    ["only errors", [E], {}, "Inconclusive", /stopped before any measurement was judged; last: Error/],
    ["a success", [S, F], { failureLimit: 3 }, "Successful", /^run stopped: 1 successful, 1 failed/],
    ["only failures within the limit", [F], { failureLimit: 3 }, "Failed", /run stopped without a successful measurement/],
    ["only inconclusive within the limit", [I], { inconclusiveLimit: 3 }, "Inconclusive", /without a successful measurement/],
    ["already final", [F], {}, "Failed", /more than failureLimit/],
  ])("%s", (_name, seq, limits, phase, message) => {
    const s = concludeMetric(fold(limits, seq));
    expect(s.phase).toBe(phase);
    expect(s.message).toMatch(message);
  });
});

// ---------------------------------------------------------------------------------------------

function status(name: string, phase: MetricPhase, successful = phase === "Successful" ? 1 : 0): MetricStatus {
  return { ...newMetricStatus(name, `q_${name}`), phase, successful, lastValue: "0.5", message: `${name} says ${phase}` };
}

describe("runPhase", () => {
  it.each<[MetricStatus[], RunPhase]>([
    [[], "Inconclusive"],
    [[status("a", "Successful")], "Successful"],
    [[status("a", "Successful"), status("b", "Successful")], "Successful"],
    [[status("a", "Successful"), status("b", "Pending")], "Pending"],
    [[status("a", "Pending"), status("b", "Running")], "Running"],
    [[status("a", "Running"), status("b", "Inconclusive")], "Inconclusive"],
    [[status("a", "Inconclusive"), status("b", "Error")], "Error"],
    [[status("a", "Error"), status("b", "Failed")], "Failed"],
    [[status("a", "Failed"), status("b", "Error")], "Failed"],
    [[status("a", "Successful"), status("b", "Failed"), status("c", "Running")], "Failed"],
    // a metric that claims success without a successful measurement cannot promote the run
    [[status("a", "Successful", 0)], "Inconclusive"],
    [[status("a", "Successful"), status("b", "Successful", 0)], "Inconclusive"],
  ])("%# -> %s", (metrics, phase) => {
    expect(runPhase(metrics)).toBe(phase);
  });
});

describe("summarizeRun", () => {
  it("names the worst metric, its reason and its query", () => {
    const s = summarizeRun([status("latency", "Successful"), status("errors", "Failed"), status("cost", "Error")]);
    expect(s.phase).toBe("Failed");
    expect(s.metric?.name).toBe("errors");
    expect(s.message).toBe('metric "errors" is Failed; errors says Failed; query: q_errors');
  });

  it("explains a Successful claim without a successful measurement", () => {
    const s = summarizeRun([{ ...newMetricStatus("a"), phase: "Successful" }]);
    expect(s).toMatchObject({ phase: "Inconclusive", message: 'metric "a" is Inconclusive; it reports Successful without a successful measurement' });
  });

  it("reports success for all metrics", () => {
    expect(summarizeRun([status("a", "Successful"), status("b", "Successful")])).toEqual({ phase: "Successful", message: "all 2 metrics successful" });
  });
});

// ---------------------------------------------------------------------------------------------

describe("nextMeasurementDue", () => {
  const started = new Date("2025-01-01T00:00:00.000Z");
  const at = (iso: string): Date => new Date(iso);
  const after = (phase: MeasurementPhase, time: string): MetricStatus =>
    recordMeasurement(newMetricStatus("m"), { time, phase }, { ...LIMITS, failureLimit: 9, inconclusiveLimit: 9 });

  it.each<[string, MetricStatus, number, number, Date, string | undefined, number | undefined]>([
    ["first, no initialDelay", newMetricStatus("m"), 30_000, 0, at("2025-01-01T00:00:05Z"), "2025-01-01T00:00:00.000Z", 0],
    ["first, waiting for initialDelay", newMetricStatus("m"), 30_000, 60_000, at("2025-01-01T00:00:20Z"), "2025-01-01T00:01:00.000Z", 40_000],
    ["after a measurement", after("Successful", "2025-01-01T00:01:00Z"), 30_000, 60_000, at("2025-01-01T00:01:10Z"), "2025-01-01T00:01:30.000Z", 20_000],
    ["overdue", after("Inconclusive", "2025-01-01T00:01:00Z"), 30_000, 0, at("2025-01-01T00:05:00Z"), "2025-01-01T00:01:30.000Z", 0],
    ["after an error, same pace", after("Error", "2025-01-01T00:01:00Z"), 10_000, 0, at("2025-01-01T00:01:00Z"), "2025-01-01T00:01:10.000Z", 10_000],
    ["unreadable time: now", after("Successful", "yesterday"), 30_000, 0, at("2025-01-01T00:02:00Z"), "2025-01-01T00:02:00.000Z", 0],
    ["counters without history: now", { ...newMetricStatus("m"), phase: "Running", successful: 2 }, 30_000, 60_000, at("2025-01-01T00:00:10Z"), "2025-01-01T00:00:10.000Z", 0],
    ["final metric: never", { ...after("Successful", "2025-01-01T00:01:00Z"), phase: "Successful" }, 30_000, 0, at("2025-01-01T00:02:00Z"), undefined, undefined],
    ["failed metric: never", status("m", "Failed"), 30_000, 0, at("2025-01-01T00:02:00Z"), undefined, undefined],
  ])("%s", (_name, s, interval, delay, now, dueAt, waitMs) => {
    const due = nextMeasurementDue(s, interval, delay, now, started);
    expect(due?.at.toISOString()).toBe(dueAt);
    expect(due?.waitMs).toBe(waitMs);
  });
});

// ---------------------------------------------------------------------------------------------

describe("a metric from spec to phase", () => {
  const metric = resolved({ name: "error-rate", templateRef: "error-rate", count: 3, failureLimit: 1, inconclusiveLimit: 1 });
  const runOf = (outcomes: QueryOutcome[]): MetricStatus =>
    outcomes.reduce((s, o, i) => recordMeasurement(s, judgeMeasurement(metric, o, new Date(NOW.getTime() + i * 1000)), metric), newMetricStatus(metric.name, renderMetricQuery(metric, target)));

  it.each<[string, QueryOutcome[], MetricPhase, RegExp]>([
    // The third measurement could no longer fail the metric (failureLimit 1, inconclusiveLimit 1): settled after two.
    ["healthy", [value(0.001), value(0.002), value(0)], "Successful", /passed early: settled after 2 of 3 measurements \(2 successful\)/],
    ["breach", [value(0.001), value(0.2), value(0.3)], "Failed", /2 failed measurements, more than failureLimit 1; last: result 0.3 did not meet successCondition "result <= 0.01"/],
    ["no traffic", [EMPTY, value(NaN)], "Inconclusive", /2 inconclusive measurements, more than inconclusiveLimit 1; last: result NaN is NaN/],
    ["no traffic then traffic", [EMPTY, value(0.001), value(0.001)], "Successful", /count 3 reached: 2 successful, 0 failed, 1 inconclusive/],
    ["Prometheus down", [ERROR, ERROR, ERROR, ERROR, ERROR], "Error", /5 errors in a row/],
    ["Prometheus down, then back", [ERROR, ERROR, value(0.001), ERROR, value(0.001), value(0.001)], "Successful", /passed early: settled after 2 of 3/],
  ])("%s", (_name, outcomes, phase, message) => {
    const s = runOf(outcomes);
    expect(s.phase).toBe(phase);
    expect(s.message).toMatch(message);
    expect(s.query).toContain('version="v2"');
    expect(runPhase([s])).toBe(phase);
  });
});
