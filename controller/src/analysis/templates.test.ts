import { describe, expect, it } from "vitest";
import { renderMetricQuery, resolveMetric } from "./assess.ts";
import { compileCondition } from "./expr.ts";
import { compileTemplate, unknownVariables } from "./template.ts";
import { BUILTIN_TEMPLATES, getTemplate, TEMPLATE_NAMES } from "./templates.ts";

const target = { rollout: "triage-bot", namespace: "bots", stable: "v1", candidate: "v2" };

describe("built-in templates", () => {
  it("lists every template by its own name", () => {
    expect(Object.keys(BUILTIN_TEMPLATES).sort()).toEqual([...TEMPLATE_NAMES].sort());
    for (const name of TEMPLATE_NAMES) expect(BUILTIN_TEMPLATES[name].name).toBe(name);
  });

  it.each(TEMPLATE_NAMES)("%s: uses only known variables once window and its own args are set", (name) => {
    const t = BUILTIN_TEMPLATES[name];
    expect(unknownVariables(compileTemplate(t.query), ["window", ...Object.keys(t.args ?? {})])).toEqual([]);
  });

  it.each(TEMPLATE_NAMES)("%s: has a default condition that compiles", (name) => {
    const t = BUILTIN_TEMPLATES[name];
    expect(t.successCondition).toBeDefined();
    for (const c of [t.successCondition, t.failureCondition]) if (c !== undefined) expect(() => compileCondition(c)).not.toThrow();
  });

  it.each(TEMPLATE_NAMES)("%s: resolves and renders with nothing but templateRef", (name) => {
    const r = resolveMetric({ name: "m", templateRef: name }, { interval: "1m" });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const q = renderMetricQuery(r.metric, target);
    expect(q).not.toMatch(/\{\{|\}\}/);
    expect(q).toContain('rollout="triage-bot",namespace="bots"');
    expect(q).toContain("[1m]");
  });

  it.each<[string, string[], string[]]>([
    ["error-rate", ["airollout_requests_total", 'code=~"5.."', 'version="v2"'], ['version="v1"']],
    ["latency-p95", ["histogram_quantile(0.95", "airollout_request_duration_seconds_bucket", "sum by (le)", 'version="v2"'], ['version="v1"']],
    ["shadow-mismatch-rate", ["airollout_shadow_mismatches_total", "airollout_shadow_comparisons_total"], ["version="]],
    ["tokens-per-request", ["airollout_tokens_total", "airollout_requests_total", 'version="v2"'], ['version="v1"']],
    ["cost-per-request", ["airollout_cost_total", "airollout_requests_total", 'version="v2"'], ['version="v1"']],
    ["baseline-error-ratio", ['version="v2"', 'version="v1"', "clamp_min(", ", 0.01)"], []],
  ])("%s queries the gateway's metrics", (name, present, absent) => {
    const r = resolveMetric({ name: "m", templateRef: name });
    if (!r.ok) throw new Error(r.errors.map((e) => e.message).join("\n"));
    const q = renderMetricQuery(r.metric, target);
    for (const p of present) expect(q).toContain(p);
    for (const a of absent) expect(q).not.toContain(a);
  });

  it.each(TEMPLATE_NAMES)("%s: no traffic cannot read as 0 (every ratio divides by the traffic itself)", (name) => {
    const q = BUILTIN_TEMPLATES[name].query;
    // `or vector(0)` may only fill a numerator: as a whole result or denominator it would turn
    // "no data" into a passing 0.
    for (const m of q.matchAll(/or vector\(0\)\)/g)) {
      expect(q.slice((m.index ?? 0) + m[0].length).trimStart().startsWith("/")).toBe(true);
    }
    expect(q.trimEnd().endsWith("or vector(0)")).toBe(false);
  });

  it("lets args override template defaults and the window", () => {
    const r = resolveMetric({ name: "m", templateRef: "baseline-error-ratio", args: { floor: "0.001", window: "5m" } });
    if (!r.ok) throw new Error("expected ok");
    const q = renderMetricQuery(r.metric, target);
    expect(q).toContain(", 0.001)");
    expect(q).toContain("[5m]");
  });

  it.each(["nope", "constructor", "__proto__", "toString"])("getTemplate(%j) is undefined", (name) => {
    expect(getTemplate(name)).toBeUndefined();
  });
});
