/**
 * Property-based tests of the diff engine (fast-check, fixed seed, bounded runs): compare is
 * total on arbitrary JSON under arbitrary valid rules, equal answers never mismatch, the verdict
 * is symmetric wherever the rules are (relative tolerances are not: they are relative to the
 * primary), and bodies past the limits are refused as `limit` mismatches, never walked and never
 * a match.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CompareRulesSchema } from "../api/schema.ts";
import { compare, compileRules } from "./compare.ts";
import type { CompareLimits, CompareResult, CompareRulesInput, DiffResponse } from "./compare.ts";
import { boundedJSON, measureValue } from "./json.ts";
import { MASK, maskPII } from "./pii.ts";

const SEED = 20261129;
const RUNS = 300;
const opts = { seed: SEED, numRuns: RUNS };

// A small key vocabulary so generated rules actually meet generated bodies, plus keys that have
// broken naive object walks elsewhere (`__proto__`, `constructor`) and arbitrary text.
const KEYS = ["a", "b", "items", "score", "intent", "__proto__", "constructor", "toString"];
const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KEYS) }, { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 8 }) });

// Plain objects built with defineProperty, as JSON.parse builds them: `__proto__` stays an own key.
function plainObject(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

const json: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer({ min: -5, max: 5 }),
    fc.string({ unit: "binary", maxLength: 12 }),
    fc.constantFrom("refund", "billing", "the quick brown fox", ""),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.array(fc.tuple(key, tie("value")), { maxLength: 5 }).map(plainObject),
  ),
})).value;

const segment = fc.oneof(fc.constantFrom(...KEYS.filter((k) => /^[A-Za-z0-9_-]+$/.test(k))).map((k) => `.${k}`), fc.constant("[*]"), fc.nat({ max: 3 }).map((i) => `[${i}]`));
const path = fc.array(segment, { maxLength: 3 }).map((s) => `$${s.join("")}`);

/** Rules as a user could write them (they pass CompareRulesSchema); `relative` only when asked. */
function rulesArb(withRelative: boolean): fc.Arbitrary<CompareRulesInput> {
  type Tolerance = { path: string; absolute?: number; relative?: number };
  const absolute = fc.double({ min: 0, max: 10, noNaN: true });
  const tolerance: fc.Arbitrary<Tolerance> = withRelative
    ? fc.record({ path, absolute: fc.option(absolute, { nil: undefined }), relative: fc.double({ min: 0, max: 1, noNaN: true }) })
    : fc.record({ path, absolute });
  return fc.record(
    {
      status: fc.boolean(),
      headers: fc.array(fc.constantFrom("content-type", "X-Model", "x-request-id"), { maxLength: 2 }),
      ignore: fc.array(path, { maxLength: 2 }),
      tolerances: fc.array(tolerance, { maxLength: 2 }),
      labels: fc.array(path, { maxLength: 2 }),
      text: fc.array(fc.record({ path, minSimilarity: fc.double({ min: 0, max: 1, noNaN: true }), method: fc.constantFrom("jaccard" as const, "levenshtein" as const) }), { maxLength: 2 }),
      unorderedArrays: fc.array(path, { maxLength: 2 }),
    },
    { requiredKeys: [] },
  );
}

const headerValue = fc.option(fc.oneof(fc.constantFrom("application/json", "gpt-small", "gpt-large"), fc.array(fc.constantFrom("a", "b"), { minLength: 1, maxLength: 2 })), { nil: undefined });
const response = (body: fc.Arbitrary<unknown>): fc.Arbitrary<DiffResponse> =>
  fc.record({
    status: fc.constantFrom(200, 201, 400, 500),
    headers: fc.record({ "content-type": headerValue, "x-model": headerValue, "X-Model": headerValue }, { requiredKeys: [] }),
    body,
  });

/** The invariants every result holds, whatever went in. */
function checkConsistent(r: CompareResult): void {
  const mismatched = r.fields.filter((f) => !f.match);
  expect(r.summary.mismatches).toBe(mismatched.length);
  expect(r.summary.matched).toBe(mismatched.length === 0);
  expect(r.summary.fields).toBe(r.fields.length);
  expect(new Set(r.summary.mismatchedPaths)).toEqual(new Set(mismatched.map((f) => f.path)));
  expect(new Set(r.summary.mismatchedPaths).size).toBe(r.summary.mismatchedPaths.length);
  for (const f of r.fields) {
    expect(typeof f.reason).toBe("string");
    expect(f.path.startsWith("$")).toBe(true);
  }
}

describe("compare: properties", () => {
  it("generated rules are valid rules (so the properties below speak about real specs)", () => {
    fc.assert(fc.property(rulesArb(true), (rules) => {
      expect(CompareRulesSchema.safeParse(rules).success).toBe(true);
    }), { seed: SEED, numRuns: 100 });
  });

  it("is total: any two JSON answers under any valid rules give a consistent result, never a throw", () => {
    fc.assert(fc.property(response(json), response(json), rulesArb(true), (a, b, rules) => {
      checkConsistent(compare(a, b, compileRules(rules)));
    }), opts);
  });

  it("never reports a mismatch for equal answers, whatever the rules", () => {
    fc.assert(fc.property(response(json), rulesArb(true), (a, rules) => {
      const r = compare(a, structuredClone(a), compileRules(rules));
      expect(r.fields.filter((f) => !f.match)).toEqual([]);
    }), opts);
  });

  it("is symmetric without relative tolerances: swapping primary and shadow flags the same paths", () => {
    fc.assert(fc.property(response(json), response(json), rulesArb(false), (a, b, rules) => {
      const c = compileRules(rules);
      const ab = compare(a, b, c).summary;
      const ba = compare(b, a, c).summary;
      expect(ba.matched).toBe(ab.matched);
      expect(new Set(ba.mismatchedPaths)).toEqual(new Set(ab.mismatchedPaths));
    }), opts);
  });

  it("within the limits an answer matches itself; past any limit it is a `limit` mismatch, never a match", () => {
    const limits = fc.record({
      maxDepth: fc.integer({ min: 0, max: 4 }),
      maxNodes: fc.integer({ min: 0, max: 30 }),
      maxArrayLength: fc.integer({ min: 0, max: 4 }),
      maxObjectKeys: fc.integer({ min: 0, max: 4 }),
    });
    fc.assert(fc.property(json, limits, (body, l: Partial<CompareLimits> & { maxDepth: number; maxNodes: number; maxArrayLength: number; maxObjectKeys: number }) => {
      const r = compare({ status: 200, headers: {}, body }, { status: 200, headers: {}, body: structuredClone(body) }, compileRules({ status: false }, l));
      checkConsistent(r);
      const size = measureValue(body, l.maxDepth, l.maxNodes);
      const fits = size !== undefined && size.longestArray <= l.maxArrayLength && widestObject(body) <= l.maxObjectKeys;
      expect(r.summary.matched).toBe(fits);
      if (!fits) expect(r.fields.some((f) => f.rule === "limit")).toBe(true);
    }), opts);
  });

  it("survives answers nested far deeper than the stack allows, under every rule kind", () => {
    const deep = (n: number, leaf: unknown): unknown => {
      let v: unknown = leaf;
      for (let i = 0; i < n; i++) v = i % 2 ? [v] : { a: v };
      return v;
    };
    fc.assert(fc.property(fc.integer({ min: 1_000, max: 100_000 }), rulesArb(true), (n, rules) => {
      const body = deep(n, 1);
      const r = compare({ status: 200, headers: {}, body }, { status: 200, headers: {}, body: deep(n, 2) }, compileRules({ ...rules, ignore: [] }));
      checkConsistent(r);
      expect(r.summary.matched).toBe(false);
    }), { seed: SEED, numRuns: 10 });
  });
});

function widestObject(v: unknown): number {
  let widest = 0;
  const stack = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (x === null || typeof x !== "object") continue;
    if (!Array.isArray(x)) widest = Math.max(widest, Object.keys(x).length);
    stack.push(...(Array.isArray(x) ? x : Object.values(x)));
  }
  return widest;
}

describe("boundedJSON: properties", () => {
  it("is JSON.stringify whenever it says nothing was cut, and never longer than maxChars", () => {
    const limits = fc.record({ maxDepth: fc.integer({ min: 0, max: 6 }), maxChars: fc.integer({ min: 0, max: 200 }) });
    fc.assert(fc.property(json, limits, (v, l) => {
      const out = boundedJSON(v, l);
      expect(out.text.length).toBeLessThanOrEqual(l.maxChars);
      const full = JSON.stringify(v);
      if (!out.truncated) expect(out.text).toBe(full);
      const depth = measureValue(v, l.maxDepth, Infinity);
      if (depth !== undefined && full.length <= l.maxChars) expect(out.truncated).toBe(false);
    }), opts);
  });
});

describe("maskPII: properties", () => {
  // Distinctive PII as real payloads carry it: the raw value must never survive masking, whatever
  // text surrounds it.
  const email = fc.tuple(fc.stringMatching(/^[a-z][a-z0-9._%+-]{0,10}$/), fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), fc.constantFrom("com", "io", "co.uk")).map(([l, d, t]) => `${l}@${d}.${t}`);
  const card = fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 14, maxLength: 14 }).map((d) => {
    // A 16-digit number with a valid Luhn check digit.
    const digits = [4, ...d];
    let sum = 0;
    for (let i = 0; i < digits.length; i++) {
      let x = digits[digits.length - 1 - i]!;
      if (i % 2 === 0) x *= 2;
      sum += x > 9 ? x - 9 : x;
    }
    return [...digits, (10 - (sum % 10)) % 10].join("");
  });
  const phone = fc.tuple(fc.integer({ min: 200, max: 999 }), fc.integer({ min: 200, max: 999 }), fc.integer({ min: 1000, max: 9999 })).map(([a, b, c]) => `+1 ${a}-${b}-${c}`);
  // Values sit between separators (JSON quotes, spaces, punctuation), as in real text; digits glued
  // to letters read as identifiers and are deliberately left alone.
  const before = fc.constantFrom("", " ", "contact: ", "\n", "(", "\"", ", ", "<", ": ");
  const after = fc.constantFrom("", " ", "\n", ")", "\"", ", ", ">", ". Thanks");

  it("masks every email, Luhn-valid card number and phone number embedded in text", () => {
    fc.assert(fc.property(fc.constantFrom("email", "card", "phone"), email, card, phone, before, after, (kind, e, c, p, pre, post) => {
      const raw = kind === "email" ? e : kind === "card" ? c : p;
      const masked = maskPII(`${pre}${raw}${post}`);
      expect(masked).not.toContain(raw);
      expect(masked).toContain(kind === "email" ? MASK.email : kind === "card" ? MASK.card : MASK.phone);
    }), opts);
  });
});
