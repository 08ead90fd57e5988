/**
 * Property-based tests of spec validation (fast-check, fixed seed, bounded runs): any object,
 * however malformed or hostile, is judged without a crash and every refusal names a field;
 * generated valid specs pass, re-validate to the same value, and resolve into steps.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIssues, resolveSteps, validateSpec } from "../reconcile/reconcile.ts";
import { parseDuration } from "./duration.ts";
import { SpecSchema } from "./schema.ts";

const SEED = 20261129;
const opts = { seed: SEED, numRuns: 200 };

// --- valid specs ---------------------------------------------------------------------------

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const duration = fc.tuple(fc.integer({ min: 1, max: 720 }), fc.constantFrom("ms", "s", "m", "h")).map(([n, u]) => `${n}${u}`);
const url = fc.tuple(fc.constantFrom("http", "https"), label, fc.integer({ min: 1, max: 65535 })).map(([s, h, p]) => `${s}://${h}:${p}`);
const fieldPath = fc.array(fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/).map((k) => `.${k}`), fc.constant("[*]"), fc.nat({ max: 9 }).map((i) => `[${i}]`)), { maxLength: 4 }).map((s) => `$${s.join("")}`);

const version = (name: fc.Arbitrary<string>) =>
  fc.oneof(
    fc.record({ version: name, endpoint: url }),
    fc.record({ version: name, image: fc.stringMatching(/^registry\/[a-z]{1,8}:v[0-9]{1,3}$/), replicas: fc.integer({ min: 0, max: 5 }), port: fc.integer({ min: 1, max: 65535 }) }, { requiredKeys: ["version", "image"] }),
  );

const step = fc.oneof(
  fc.record({ setWeight: fc.integer({ min: 0, max: 100 }) }),
  fc.record({ pause: fc.record({ duration }, { requiredKeys: [] }) }),
  fc.record({ shadow: fc.record({ duration }, { requiredKeys: [] }) }),
  fc.record({ analysis: fc.constant({}) }),
);

const metric = fc.oneof(
  fc.record({ name: label, query: fc.constantFrom('sum(rate(airollout_requests_total{rollout="{{rollout}}"}[1m]))', "vector(0)"), successCondition: fc.constantFrom("result < 0.01", "isNaN(result) or result < 1", "max(result) <= 0.5") }),
  fc.record({ name: label, templateRef: fc.constantFrom("error-rate", "latency-p95", "shadow-mismatch-rate") }),
);

const compare = fc.record({
  ignore: fc.array(fieldPath, { maxLength: 3 }),
  tolerances: fc.array(fc.record({ path: fieldPath, relative: fc.double({ min: 0, max: 1, noNaN: true }) }), { maxLength: 2 }),
  labels: fc.array(fieldPath, { maxLength: 3 }),
  text: fc.array(fc.record({ path: fieldPath, minSimilarity: fc.double({ min: 0, max: 1, noNaN: true }), method: fc.constantFrom("jaccard", "levenshtein") }), { maxLength: 2 }),
}, { requiredKeys: [] });

const validSpec = fc
  .record({
    stable: version(fc.constant("v1")),
    candidate: version(fc.constantFrom("v2", "2026-11-29", "canary.3")),
    paused: fc.boolean(),
    strategy: fc.record({ steps: fc.array(step, { minLength: 1, maxLength: 8 }), progressDeadline: duration }, { requiredKeys: ["steps"] }),
    traffic: fc.record({
      stickyBy: fc.constantFrom("header:x-tenant-id", "json:$.tenant.id"),
      maxBodyBytes: fc.integer({ min: 1, max: 64 * 1024 * 1024 }),
      timeout: duration,
      signature: fc.record({ scheme: fc.constantFrom("github", "stripe"), secretRef: fc.record({ name: label, key: label }) }),
      payloadSchema: fc.constantFrom({ type: "object" }, { type: "object", required: ["id"], properties: { id: { type: "string" } } }),
    }, { requiredKeys: [] }),
    shadow: fc.record({ sampleRate: fc.double({ min: 0, max: 1, noNaN: true }), minSamples: fc.integer({ min: 0, max: 1000 }), compare }, { requiredKeys: [] }),
    analysis: fc.record({ prometheus: fc.record({ address: url }), metrics: fc.uniqueArray(metric, { minLength: 1, maxLength: 4, selector: (m) => m.name }) }),
  }, { requiredKeys: ["stable", "candidate", "strategy", "analysis"] });

describe("spec validation: properties", () => {
  it("generated valid specs pass, and validating the result again gives the same spec", () => {
    fc.assert(fc.property(validSpec, (spec) => {
      const r = validateSpec(spec);
      if (!r.ok) expect.fail(r.message);
      const again = validateSpec(structuredClone(r.spec));
      expect(again.ok && again.spec).toEqual(r.spec);
    }), opts);
  });

  it("a valid spec resolves into one step per spec step, with the durations it names", () => {
    fc.assert(fc.property(validSpec, (spec) => {
      const r = validateSpec(spec);
      if (!r.ok) return expect.fail(r.message);
      const steps = resolveSteps(r.spec);
      expect(steps).toHaveLength(spec.strategy.steps.length);
      steps.forEach((s, i) => {
        const written = r.spec.strategy.steps[i]!;
        const d = written.pause?.duration ?? written.shadow?.duration;
        if (d !== undefined) expect(s.durationSeconds).toBe(parseDuration(d) / 1000);
        expect(s.weight).toBeGreaterThanOrEqual(0);
        expect(s.weight).toBeLessThanOrEqual(100);
      });
    }), opts);
  });

  it("any value at all is judged without a throw; a refusal names a field", () => {
    fc.assert(fc.property(fc.anything({ maxDepth: 4, withNullPrototype: true, withMap: true, withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true }), (v) => {
      const r = SpecSchema.safeParse(v);
      if (!r.success) expect(r.error.issues.length).toBeGreaterThan(0);
    }), opts);
  });

  it("a valid spec with one field replaced by anything is judged without a throw, and a refusal names the field under spec.", () => {
    // Paths into the valid spec: one is chosen and its value replaced by an arbitrary one.
    const hostile = fc.oneof(
      fc.anything({ maxDepth: 3 }),
      fc.constantFrom(NaN, Infinity, -1, 1e308, "", "x".repeat(10_000), [], {}, null, "__proto__", "1e400h"),
    );
    fc.assert(fc.property(validSpec, fc.nat(), hostile, (spec, pick, value) => {
      const paths = leafPaths(spec);
      const path = paths[pick % paths.length]!;
      const mutated = structuredClone(spec) as Record<string, unknown>;
      setAt(mutated, path, value);
      const r = validateSpec(mutated);
      if (!r.ok) expect(r.message).toMatch(/^spec(\.|\[|:)/);
    }), opts);
  });

  it("a payloadSchema nested far deeper than the stack allows is refused naming the field, not a crash", () => {
    fc.assert(fc.property(validSpec, fc.integer({ min: 1_000, max: 50_000 }), (spec, depth) => {
      let schema: Record<string, unknown> = { type: "object" };
      for (let i = 0; i < depth; i++) schema = { type: "object", properties: { a: schema } };
      const r = validateSpec({ ...spec, traffic: { payloadSchema: schema } });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.message).toContain("spec.traffic.payloadSchema");
    }), { seed: SEED, numRuns: 5 });
  });

  it("formatIssues names every issue's path", () => {
    expect(formatIssues([{ path: ["strategy", "steps", 0, "setWeight"], message: "too big" }])).toBe("spec.strategy.steps[0].setWeight: too big");
  });
});

function leafPaths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (v === null || typeof v !== "object") return [at];
  const out: (string | number)[][] = at.length > 0 ? [at] : [];
  for (const [k, child] of Object.entries(v)) out.push(...leafPaths(child, [...at, Array.isArray(v) ? Number(k) : k]));
  return out;
}

function setAt(root: Record<string, unknown>, path: readonly (string | number)[], value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  Object.defineProperty(node, path.at(-1)!, { value, enumerable: true, writable: true, configurable: true });
}
