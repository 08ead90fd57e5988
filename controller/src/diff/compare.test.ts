import { describe, expect, it } from "vitest";
import { CompareRulesSchema } from "../api/schema.ts";
import { compare, compileRules, DEFAULT_LIMITS } from "./compare.ts";
import { UnparsedBody } from "./json.ts";
import type { CompareRulesInput, DiffResponse, FieldResult } from "./compare.ts";

const res = (body: unknown, status = 200, headers: DiffResponse["headers"] = {}): DiffResponse => ({ status, headers, body });

/** Compares two bodies and returns the results for one normalised path. */
function at(path: string, a: unknown, b: unknown, rules: CompareRulesInput = {}): FieldResult[] {
  return compare(res(a), res(b), rules).fields.filter((f) => f.path === path);
}

function only(path: string, a: unknown, b: unknown, rules: CompareRulesInput = {}): FieldResult {
  const found = at(path, a, b, rules);
  expect(found, `results at ${path}`).toHaveLength(1);
  return found[0]!;
}

describe("default equality", () => {
  it.each([
    { name: "equal strings", a: { x: "a" }, b: { x: "a" }, match: true, rule: "equal", reason: "equal" },
    { name: "different strings", a: { x: "a" }, b: { x: "b" }, match: false, rule: "equal", reason: '"a" vs "b"' },
    { name: "equal numbers", a: { x: 1.5 }, b: { x: 1.5 }, match: true, rule: "equal", reason: "equal" },
    { name: "different numbers", a: { x: 1 }, b: { x: 2 }, match: false, rule: "equal", reason: "1 vs 2" },
    { name: "booleans", a: { x: true }, b: { x: false }, match: false, rule: "equal", reason: "true vs false" },
    { name: "null vs null", a: { x: null }, b: { x: null }, match: true, rule: "equal", reason: "equal" },
    { name: "number vs string", a: { x: 1 }, b: { x: "1" }, match: false, rule: "type", reason: 'number 1 vs string "1"' },
    { name: "null vs number", a: { x: null }, b: { x: 0 }, match: false, rule: "type", reason: "null null vs number 0" },
    { name: "object vs array", a: { x: {} }, b: { x: [] }, match: false, rule: "type", reason: "object object(0 keys) vs array array(0)" },
    { name: "key missing in shadow", a: { x: null }, b: {}, match: false, rule: "missing", reason: "missing in shadow" },
    { name: "key missing in primary", a: {}, b: { x: 1 }, match: false, rule: "missing", reason: "missing in primary" },
  ])("$name", ({ a, b, match, rule, reason }) => {
    expect(only("$.x", a, b)).toMatchObject({ concretePath: "$.x", match, rule, reason });
  });

  it("walks nested objects and reports leaf paths", () => {
    const r = compare(res({ a: { b: { c: 1, d: 2 } } }), res({ a: { b: { c: 1, d: 3 } } }), { status: false });
    expect(r.fields.map((f) => [f.path, f.match])).toEqual([
      ["$.a.b.c", true],
      ["$.a.b.d", false],
    ]);
    expect(r.summary).toEqual({ matched: false, mismatches: 1, mismatchedPaths: ["$.a.b.d"], fields: 2 });
  });

  it("compares arrays in order, normalising indices to [*] and keeping concrete paths", () => {
    const r = compare(res({ items: [{ s: 1 }, { s: 2 }] }), res({ items: [{ s: 2 }, { s: 1 }, { s: 9 }] }), { status: false });
    expect(r.fields).toEqual([
      { path: "$.items[*].s", concretePath: "$.items[0].s", match: false, rule: "equal", reason: "1 vs 2" },
      { path: "$.items[*].s", concretePath: "$.items[1].s", match: false, rule: "equal", reason: "2 vs 1" },
      { path: "$.items[*]", concretePath: "$.items[2]", match: false, rule: "missing", reason: "missing in primary" },
    ]);
    expect(r.summary.mismatchedPaths).toEqual(["$.items[*].s", "$.items[*]"]);
  });

  it("compares raw string bodies at $", () => {
    expect(only("$", "ok", "ok")).toMatchObject({ match: true, rule: "equal" });
    expect(only("$", "ok", "not ok")).toMatchObject({ match: false, rule: "equal" });
    expect(only("$", "ok", { ok: true })).toMatchObject({ match: false, rule: "type", reason: 'string "ok" vs object object(1 keys)' });
  });

  it("treats two absent bodies as equal", () => {
    expect(compare(res(undefined), res(undefined)).summary.matched).toBe(true);
  });

  it("quotes keys outside the path alphabet so paths stay unambiguous", () => {
    const r = compare(res({ "a.b": 1, "x y": 2 }), res({ "a.b": 2, "x y": 2 }), { status: false });
    expect(r.fields.map((f) => f.path)).toEqual(['$["a.b"]', '$["x y"]']);
  });

  it("matches when everything is equal", () => {
    const body = { a: [1, 2, { b: "c" }], d: null, e: true };
    const r = compare(res(body), res(structuredClone(body)));
    expect(r.summary).toMatchObject({ matched: true, mismatches: 0, mismatchedPaths: [] });
  });
});

describe("status and headers", () => {
  it.each([
    { name: "same status", a: 200, b: 200, rules: {}, expected: [{ path: "$status", match: true, rule: "status", reason: "both 200" }] },
    { name: "different status", a: 200, b: 500, rules: {}, expected: [{ path: "$status", match: false, rule: "status", reason: "200 vs 500" }] },
    { name: "status disabled", a: 200, b: 500, rules: { status: false }, expected: [] },
  ])("$name", ({ a, b, rules, expected }) => {
    const r = compare(res(null, a), res(null, b), rules);
    expect(r.fields.filter((f) => f.rule === "status")).toMatchObject(expected);
  });

  it.each([
    { name: "equal, names differ in case", a: { "Content-Type": "application/json" }, b: { "content-type": "application/json" }, match: true, reason: "equal" },
    { name: "different values", a: { "content-type": "application/json" }, b: { "CONTENT-TYPE": "text/plain" }, match: false, reason: '"application/json" vs "text/plain"' },
    { name: "missing in shadow", a: { "content-type": "a" }, b: {}, match: false, reason: "missing in shadow" },
    { name: "missing in primary", a: {}, b: { "content-type": "a" }, match: false, reason: "missing in primary" },
    { name: "absent in both", a: {}, b: {}, match: true, reason: "absent in both" },
    { name: "list values joined", a: { "content-type": ["a", "b"] }, b: { "content-type": "a, b" }, match: true, reason: "equal" },
  ])("header $name", ({ a, b, match, reason }) => {
    const r = compare(res(null, 200, a), res(null, 200, b), { headers: ["Content-Type"] });
    expect(r.fields.filter((f) => f.rule === "header")).toEqual([{ path: "$headers.content-type", concretePath: "$headers.content-type", match, rule: "header", reason }]);
  });

  it("ignores headers that are not configured", () => {
    const r = compare(res(null, 200, { date: "Mon" }), res(null, 200, { date: "Tue" }));
    expect(r.summary.matched).toBe(true);
  });
});

describe("ignore", () => {
  it.each([
    { name: "a top-level field", rules: { ignore: ["$.id"] }, a: { id: 1, v: 1 }, b: { id: 2, v: 1 }, paths: ["$.v"] },
    { name: "a whole subtree", rules: { ignore: ["$.meta"] }, a: { meta: { t: 1, u: [1] }, v: 1 }, b: { meta: { t: 2 }, v: 1 }, paths: ["$.v"] },
    { name: "a field in every element", rules: { ignore: ["$.items[*].id"] }, a: { items: [{ id: 1, v: 1 }, { id: 2, v: 2 }] }, b: { items: [{ id: 3, v: 1 }, { id: 4, v: 2 }] }, paths: ["$.items[*].v"] },
    { name: "a field in one element", rules: { ignore: ["$.items[1].id"] }, a: { items: [{ id: 1 }, { id: 2 }] }, b: { items: [{ id: 1 }, { id: 9 }] }, paths: ["$.items[*].id"] },
    { name: "a key present on one side only", rules: { ignore: ["$.created"] }, a: { created: "now" }, b: {}, paths: [] },
    { name: "extra array elements under a wildcard", rules: { ignore: ["$.items[*]"] }, a: { items: [1] }, b: { items: [1, 2, 3] }, paths: [] },
    { name: "a __proto__ key", rules: { ignore: ["$.__proto__"] }, a: JSON.parse('{"__proto__": 1}'), b: JSON.parse('{"__proto__": 2}'), paths: [] },
  ])("$name", ({ rules, a, b, paths }) => {
    const r = compare(res(a), res(b), { status: false, ...rules });
    expect(r.summary.matched).toBe(true);
    expect([...new Set(r.fields.map((f) => f.path))]).toEqual(paths);
  });

  it("an ignore at $ skips the body", () => {
    expect(compare(res({ a: 1 }), res("x"), { ignore: ["$"] }).fields.map((f) => f.path)).toEqual(["$status"]);
  });
});

describe("numeric tolerance", () => {
  it.each([
    { name: "within relative", tol: { relative: 0.03 }, a: 0.91, b: 0.92, match: true, reason: "within 3%" },
    { name: "beyond relative", tol: { relative: 0.03 }, a: 0.91, b: 0.8, match: false, reason: "0.91 vs 0.8 differs by 12.1% > 3%" },
    { name: "relative is against the primary", tol: { relative: 0.1 }, a: 10, b: 11, match: true, reason: "within 10%" },
    { name: "relative bound exactly reached despite float error", tol: { relative: 0.03 }, a: 1, b: 1.03, match: true, reason: "within 3%" },
    { name: "negative numbers", tol: { relative: 0.03 }, a: -1, b: -1.02, match: true, reason: "within 3%" },
    { name: "primary zero, relative only", tol: { relative: 0.03 }, a: 0, b: 0.01, match: false, reason: "0 vs 0.01 differs by ∞% > 3%" },
    { name: "both zero", tol: { relative: 0.03 }, a: 0, b: 0, match: true, reason: "equal" },
    { name: "within absolute", tol: { absolute: 0.05 }, a: 10, b: 10.04, match: true, reason: "within 0.05" },
    { name: "beyond absolute", tol: { absolute: 0.05 }, a: 10, b: 10.06, match: false, reason: "10 vs 10.06 differs by 0.06 > 0.05" },
    { name: "either bound: relative saves it", tol: { absolute: 0.01, relative: 0.1 }, a: 100, b: 105, match: true, reason: "within 0.01 or 10%" },
    { name: "either bound: absolute saves it", tol: { absolute: 0.01, relative: 0.1 }, a: 0.001, b: 0.005, match: true, reason: "within 0.01 or 10%" },
    { name: "both bounds exceeded", tol: { absolute: 0.01, relative: 0.1 }, a: 1, b: 2, match: false, reason: "1 vs 2 differs by 1 > 0.01 and 100% > 10%" },
    { name: "no bound set means exact", tol: {}, a: 1, b: 1.0001, match: false, reason: "1 vs 1.0001 differs by 0.0001 > 0" },
  ])("$name", ({ tol, a, b, match, reason }) => {
    expect(only("$.score", { score: a }, { score: b }, { tolerances: [{ path: "$.score", ...tol }] })).toMatchObject({ match, rule: "tolerance", reason });
  });

  it("reports non-numbers as a type mismatch", () => {
    expect(only("$.score", { score: "0.9" }, { score: 0.9 }, { tolerances: [{ path: "$.score", relative: 0.1 }] })).toMatchObject({
      match: false,
      rule: "type",
      reason: 'tolerance needs numbers: string "0.9" vs number 0.9',
    });
  });

  // Found by compare.property.test.ts: equal answers were flagged when a rule met a value it
  // cannot judge, so a candidate answering exactly like the stable counted as a mismatch.
  it.each([
    { name: "null under a tolerance", rules: { tolerances: [{ path: "$.score", relative: 0.1 }] }, v: null },
    { name: "an object under a tolerance", rules: { tolerances: [{ path: "$.score", absolute: 1 }] }, v: { x: [1] } },
    { name: "an array under a text rule", rules: { text: [{ path: "$.score", minSimilarity: 0.9 }] }, v: [] },
  ])("matches equal values a rule cannot judge: $name", ({ rules, v }) => {
    expect(only("$.score", { score: v }, { score: structuredClone(v) }, rules)).toMatchObject({ match: true, rule: "equal", reason: "equal" });
    expect(only("$.score", { score: v }, { score: 0.5 }, rules)).toMatchObject({ match: false, rule: "type" });
  });

  it("applies a wildcard path to every element", () => {
    const rules = { tolerances: [{ path: "$.items[*].score", absolute: 0.05 }] };
    const found = at("$.items[*].score", { items: [{ score: 0.5 }, { score: 0.5 }] }, { items: [{ score: 0.52 }, { score: 0.6 }] }, rules);
    expect(found.map((f) => [f.concretePath, f.match, f.rule])).toEqual([
      ["$.items[0].score", true, "tolerance"],
      ["$.items[1].score", false, "tolerance"],
    ]);
  });

  it("applies a concrete index only to that element", () => {
    const rules = { tolerances: [{ path: "$.items[0]", absolute: 1 }] };
    const found = at("$.items[*]", { items: [1, 1] }, { items: [1.5, 1.5] }, rules);
    expect(found.map((f) => [f.concretePath, f.match, f.rule])).toEqual([
      ["$.items[0]", true, "tolerance"],
      ["$.items[1]", false, "equal"],
    ]);
  });
});

describe("labels", () => {
  it.each([
    { name: "equal label", a: "refund", b: "refund", match: true, reason: "equal" },
    { name: "different label", a: "refund", b: "billing", match: false, reason: '"refund" vs "billing"' },
    { name: "labels are case-sensitive", a: "Refund", b: "refund", match: false, reason: '"Refund" vs "refund"' },
    { name: "numeric labels", a: 3, b: 3, match: true, reason: "equal" },
    { name: "objects equal whatever the key order", a: { k: 1, j: [1, 2] }, b: { j: [1, 2], k: 1 }, match: true, reason: "equal" },
    { name: "objects that differ", a: { k: 1 }, b: { k: 2 }, match: false, reason: "object(1 keys) vs object(1 keys) differ" },
    { name: "different kinds", a: "1", b: 1, match: false, reason: 'string "1" vs number 1' },
  ])("$name", ({ a, b, match, reason }) => {
    expect(only("$.intent", { intent: a }, { intent: b }, { labels: ["$.intent"] })).toMatchObject({ match, rule: "label", reason });
  });

  it("labels inside arrays through a wildcard", () => {
    const found = at("$.entities[*].type", { entities: [{ type: "PER" }, { type: "ORG" }] }, { entities: [{ type: "PER" }, { type: "LOC" }] }, { labels: ["$.entities[*].type"] });
    expect(found.map((f) => [f.match, f.rule])).toEqual([
      [true, "label"],
      [false, "label"],
    ]);
  });
});

describe("text similarity", () => {
  it.each([
    { name: "identical", method: "jaccard", min: 0.8, a: "same text", b: "same text", match: true, reason: "equal" },
    { name: "jaccard ignores case and punctuation", method: "jaccard", min: 1, a: "The quick brown fox.", b: "the QUICK, brown fox!", match: true, reason: "jaccard similarity 1.00 >= 1.00" },
    { name: "jaccard reordering is free", method: "jaccard", min: 0.9, a: "refund the order", b: "order the refund", match: true, reason: "jaccard similarity 1.00 >= 0.90" },
    { name: "jaccard below threshold", method: "jaccard", min: 0.8, a: "customer wants a refund", b: "customer asks about shipping", match: false, reason: "jaccard similarity 0.14 < 0.80" },
    { name: "jaccard 3 of 5 tokens", method: "jaccard", min: 0.6, a: "a b c d", b: "a b c e", match: true, reason: "jaccard similarity 0.60 >= 0.60" },
    { name: "default method is jaccard", method: undefined, min: 0.5, a: "x y", b: "x z", match: false, reason: "jaccard similarity 0.33 < 0.50" },
    { name: "levenshtein within", method: "levenshtein", min: 0.5, a: "kitten", b: "sitting", match: true, reason: "levenshtein similarity 0.57 >= 0.50" },
    { name: "levenshtein below", method: "levenshtein", min: 0.6, a: "kitten", b: "sitting", match: false, reason: "levenshtein similarity < 0.60 (more than 2 edits)" },
    { name: "levenshtein exact threshold", method: "levenshtein", min: 0.8, a: "abcdefghij", b: "abcdefghXY", match: true, reason: "levenshtein similarity 0.80 >= 0.80" },
    { name: "minSimilarity 0 always matches", method: "levenshtein", min: 0, a: "abc", b: "xyz", match: true, reason: "levenshtein similarity 0.00 >= 0.00" },
  ] as const)("$name", ({ method, min, a, b, match, reason }) => {
    const rules: CompareRulesInput = { text: [{ path: "$.summary", minSimilarity: min, ...(method ? { method } : {}) }] };
    expect(only("$.summary", { summary: a }, { summary: b }, rules)).toMatchObject({ match, rule: "text", reason });
  });

  it("reports non-strings as a type mismatch", () => {
    expect(only("$.summary", { summary: 1 }, { summary: "1" }, { text: [{ path: "$.summary", minSimilarity: 0.5 }] })).toMatchObject({ match: false, rule: "type" });
  });
});

describe("arrays as sets", () => {
  it.each([
    { name: "same elements, other order", a: ["a", "b", "c"], b: ["c", "a", "b"], match: true, reason: "same 3 elements" },
    { name: "multiset counts matter", a: ["a", "a", "b"], b: ["a", "b", "b"], match: false, reason: '1 only in primary (e.g. "a"), 1 only in shadow (e.g. "b")' },
    { name: "extra element", a: ["a"], b: ["a", "z"], match: false, reason: '1 only in shadow (e.g. "z")' },
    { name: "objects regardless of key order", a: [{ k: 1, v: 2 }, { k: 3 }], b: [{ k: 3 }, { v: 2, k: 1 }], match: true, reason: "same 2 elements" },
    { name: "empty sets", a: [], b: [], match: true, reason: "same 0 elements" },
    { name: "strings never collide with canonical text", a: ['"a"', "1", "null"], b: ["a", 1, null], match: false, reason: '3 only in primary (e.g. "\\"a\\""), 3 only in shadow (e.g. "a")' },
    { name: "quoted commas inside nested arrays stay distinct", a: [["a,'b"]], b: [["a", "b"]], match: false, reason: "1 only in primary (e.g. array(1)), 1 only in shadow (e.g. array(2))" },
    { name: "mixed kinds", a: [1, "1", true, null, { a: 1 }], b: [{ a: 1 }, null, true, "1", 1], match: true, reason: "same 5 elements" },
  ])("$name", ({ a, b, match, reason }) => {
    expect(only("$.tags", { tags: a }, { tags: b }, { unorderedArrays: ["$.tags"] })).toMatchObject({ match, rule: "set", reason });
  });

  it("is ordered without the rule", () => {
    expect(compare(res({ tags: ["a", "b"] }), res({ tags: ["b", "a"] })).summary.mismatchedPaths).toEqual(["$.tags[*]"]);
  });

  it("honours ignore paths inside elements", () => {
    const rules = { unorderedArrays: ["$.items"], ignore: ["$.items[*].id"] };
    const r = only("$.items", { items: [{ id: 1, v: "x" }, { id: 2, v: "y" }] }, { items: [{ id: 7, v: "y" }, { id: 8, v: "x" }] }, rules);
    expect(r).toMatchObject({ match: true, rule: "set" });
  });

  it("keeps nested strings escaped when rules apply inside elements", () => {
    const rules = { unorderedArrays: ["$.rows"], ignore: ["$.rows[*][9]"] };
    expect(only("$.rows", { rows: [["a,'b"]] }, { rows: [["a", "b"]] }, rules)).toMatchObject({ match: false, rule: "set" });
    expect(only("$.rows", { rows: [["a", "b", 1, 2, 3, 4, 5, 6, 7, "x"]] }, { rows: [["a", "b", 1, 2, 3, 4, 5, 6, 7, "y"]] }, rules)).toMatchObject({ match: true });
  });

  it("honours nested unordered arrays", () => {
    const rules = { unorderedArrays: ["$.groups", "$.groups[*].members"] };
    const r = only("$.groups", { groups: [{ members: [1, 2] }, { members: [3] }] }, { groups: [{ members: [3] }, { members: [2, 1] }] }, rules);
    expect(r).toMatchObject({ match: true, rule: "set" });
  });

  it("a label on an unordered array compares it as a set", () => {
    expect(only("$.tags", { tags: [1, 2] }, { tags: [2, 1] }, { labels: ["$.tags"], unorderedArrays: ["$.tags"] })).toMatchObject({ match: true, rule: "set" });
  });
});

describe("output schema", () => {
  const outputSchema = {
    type: "object",
    required: ["intent", "score"],
    additionalProperties: false,
    properties: { intent: { enum: ["refund", "billing"] }, score: { type: "number", minimum: 0, maximum: 1 } },
  };

  it.each([
    { name: "both valid", a: { intent: "refund", score: 0.5 }, b: { intent: "billing", score: 0.7 }, match: true, reason: "both valid" },
    { name: "shadow invalid", a: { intent: "refund", score: 0.5 }, b: { intent: "refund", score: 1.2 }, match: false, reason: "shadow invalid: $.score: 1.2 is greater than 1." },
    { name: "primary invalid", a: { intent: "other", score: 0.5 }, b: { intent: "refund", score: 0.5 }, match: false, reason: 'primary invalid: $.intent: Instance does not match any of ["refund","billing"].' },
    {
      name: "both invalid",
      a: { score: 0.5 },
      b: { intent: "refund", score: 0.5, extra: 1 },
      match: false,
      reason: 'primary invalid: $: Instance does not have required property "intent". | shadow invalid: $: Property "extra" does not match additional properties schema.',
    },
    { name: "not JSON", a: "oops", b: { intent: "refund", score: 0.5 }, match: false, reason: 'primary invalid: $: Instance type "string" is invalid. Expected "object".' },
  ])("$name", ({ a, b, match, reason }) => {
    expect(only("$schema", a, b, { outputSchema, ignore: ["$"] })).toEqual({ path: "$schema", concretePath: "$schema", match, rule: "schema", reason });
  });
});

describe("rules", () => {
  it("accepts the zod output type with defaults applied", () => {
    const rules = CompareRulesSchema.parse({ text: [{ path: "$.s", minSimilarity: 0.5 }], labels: ["$.l"] });
    const r = compare(res({ s: "a b", l: "x" }, 200), res({ s: "a c", l: "x" }, 500), rules);
    expect(r.fields.map((f) => [f.path, f.match, f.rule])).toEqual([
      ["$status", false, "status"],
      ["$.s", false, "text"],
      ["$.l", true, "label"],
    ]);
  });

  it("accepts compiled rules and gives the same answer", () => {
    const raw: CompareRulesInput = { tolerances: [{ path: "$.x", relative: 0.1 }] };
    const a = res({ x: 1 });
    const b = res({ x: 1.05 });
    expect(compare(a, b, compileRules(raw))).toEqual(compare(a, b, raw));
  });

  it("rejects malformed rule paths", () => {
    for (const path of ["x", "$.", "$..a", "$[a]", "$[-1]", "$.a b", "$[*"]) {
      expect(() => compileRules({ ignore: [path] }), path).toThrow(/invalid field path/);
    }
  });

  it("rejects an invalid schema pattern", () => {
    expect(() => compileRules({ outputSchema: { pattern: "(" } })).toThrow(/outputSchema #\/pattern: invalid pattern/);
  });

  it("the first matching rule kind wins: ignore, then tolerance, then text, then label", () => {
    const rules: CompareRulesInput = {
      tolerances: [{ path: "$.a", absolute: 10 }, { path: "$.b[*]", absolute: 10 }],
      labels: ["$.a", "$.b[0]"],
      ignore: ["$.b[1]"],
    };
    const r = compare(res({ a: 1, b: [1, 1] }), res({ a: 2, b: [2, 2] }), { ...rules, status: false });
    expect(r.fields.map((f) => [f.concretePath, f.rule])).toEqual([
      ["$.a", "tolerance"],
      ["$.b[0]", "tolerance"],
    ]);
  });
});

/** Builds [[[...]]] nested `depth` times without recursion. */
function deepArray(depth: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

function deepObject(depth: number): unknown {
  let v: unknown = "leaf";
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

describe("hostile JSON", () => {
  it.each([
    { name: "arrays 100,000 deep", a: deepArray(100_000), b: deepArray(100_000), rules: {}, rule: "limit", reason: "nested deeper than 64 levels" },
    { name: "objects 100,000 deep", a: deepObject(100_000), b: deepObject(100_000), rules: {}, rule: "limit", reason: "nested deeper than 64 levels" },
    { name: "deep under a label", a: { l: deepObject(100_000) }, b: { l: deepObject(100_000) }, rules: { labels: ["$.l"] }, rule: "limit", reason: "nested deeper than 64 levels" },
    { name: "deep under a set", a: { s: [deepArray(100_000)] }, b: { s: [deepArray(100_000)] }, rules: { unorderedArrays: ["$.s"] }, rule: "limit", reason: "set elements nested deeper than 64 levels" },
    { name: "a huge array", a: { xs: new Array(1_000_000).fill(0) }, b: { xs: [] }, rules: {}, rule: "limit", reason: "array has 1000000 elements > 10000" },
    { name: "a huge set", a: { xs: new Array(20_000).fill(0) }, b: { xs: [] }, rules: { unorderedArrays: ["$.xs"] }, rule: "limit", reason: "array has 20000 elements > 10000" },
    { name: "an object with too many keys", a: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i])), b: {}, rules: {}, rule: "limit", reason: "object has 20000 keys > 10000" },
    { name: "a huge text", a: { t: "a ".repeat(60_000) }, b: { t: "b ".repeat(60_000) }, rules: { text: [{ path: "$.t", minSimilarity: 0.5 }] }, rule: "limit", reason: "text longer than 100000 characters" },
    { name: "a long levenshtein", a: { t: "ab".repeat(20_000) }, b: { t: "ba".repeat(20_000) }, rules: { text: [{ path: "$.t", minSimilarity: 0.5, method: "levenshtein" as const }] }, rule: "limit", reason: "text too long for levenshtein at minSimilarity 0.50" },
  ])("$name is a bounded mismatch, not a crash", ({ a, b, rules, rule, reason }) => {
    const r = compare(res(a), res(b), { status: false, ...rules });
    expect(r.summary.matched).toBe(false);
    expect(r.fields.filter((f) => f.rule === "limit")).toMatchObject([{ match: false, rule, reason }]);
  });

  it("stops at the node budget and reports it once", () => {
    const wide = Array.from({ length: 5000 }, (_, i) => ({ a: i, b: [i, i], c: { d: i } }));
    const r = compare(res(wide), res(structuredClone(wide)), compileRules({ status: false }, { maxNodes: 1000 }));
    const limits = r.fields.filter((f) => f.rule === "limit");
    expect(limits).toHaveLength(1);
    expect(limits[0]!.reason).toBe("more than 1000 values to compare");
    expect(r.summary.matched).toBe(false);
    expect(r.fields.length).toBeLessThan(1100);
  });

  it("stops at the node budget on the missing-element path too", () => {
    const r = compare(res(new Array(9000).fill(1)), res([]), compileRules({ status: false }, { maxNodes: 100 }));
    expect(r.fields.length).toBeLessThanOrEqual(101);
    expect(r.fields.at(-1)).toMatchObject({ rule: "limit" });
  });

  it("nesting within the limit is compared normally", () => {
    const r = compare(res(deepObject(DEFAULT_LIMITS.maxDepth)), res(deepObject(DEFAULT_LIMITS.maxDepth)), { status: false });
    expect(r.summary.matched).toBe(true);
    expect(r.fields).toHaveLength(1);
    expect(r.fields[0]!.path).toBe(`$${".a".repeat(64)}`);
  });

  it.each(["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"])("treats a %s key as plain data", (key) => {
    const a = JSON.parse(`{"${key}": {"polluted": true}, "v": 1}`) as unknown;
    const r = compare(res(a), res({ v: 1 }), { status: false });
    expect(r.fields).toEqual([
      { path: `$.${key}`, concretePath: `$.${key}`, match: false, rule: "missing", reason: "missing in shadow" },
      { path: "$.v", concretePath: "$.v", match: true, rule: "equal", reason: "equal" },
    ]);
    const reverse = compare(res({ v: 1 }), res(a), { status: false });
    expect(reverse.fields[1]).toMatchObject({ path: `$.${key}`, rule: "missing", reason: "missing in primary" });
    const both = compare(res(a), res(JSON.parse(`{"${key}": {"polluted": false}, "v": 1}`)), { status: false });
    expect(both.fields[0]).toMatchObject({ path: `$.${key}.polluted`, match: false, reason: "true vs false" });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("polluted");
  });

  it("rules can target a __proto__ key", () => {
    const a = JSON.parse('{"__proto__": 0.91}') as unknown;
    const b = JSON.parse('{"__proto__": 0.92}') as unknown;
    expect(only("$.__proto__", a, b, { tolerances: [{ path: "$.__proto__", relative: 0.03 }] })).toMatchObject({ match: true, rule: "tolerance" });
  });

  it("cuts hostile long keys in paths", () => {
    const key = "k".repeat(10_000);
    const r = compare(res({ [key]: 1 }), res({ [key]: 2 }), { status: false });
    expect(r.fields[0]!.path.length).toBeLessThan(100);
    expect(r.fields[0]!.path).toBe(`$["${"k".repeat(64)}…(10000 chars)"]`);
  });

  it("a body the decoder left unparsed (too deep) is one limit mismatch, even against an identical one", () => {
    const deep = new UnparsedBody("nested deeper than 1000 levels", "[[[[...");
    for (const [a, b, reason] of [
      [deep, { a: 1 }, "primary answer nested deeper than 1000 levels"],
      [{ a: 1 }, deep, "shadow answer nested deeper than 1000 levels"],
      [deep, deep, "primary answer nested deeper than 1000 levels; shadow answer nested deeper than 1000 levels"],
    ] as const) {
      const r = compare(res(a), res(b), { outputSchema: { type: "object" } });
      expect(r.summary.matched).toBe(false);
      expect(r.fields.filter((f) => f.path !== "$status")).toEqual([{ path: "$", concretePath: "$", match: false, rule: "limit", reason }]);
    }
  });

  it("schema validation of a deep body is bounded", () => {
    const schema = { type: "object", properties: { a: { enum: ["x"] } } };
    const r = compare(res({ a: deepArray(100_000) }), res({ a: "x" }), { status: false, outputSchema: schema, ignore: ["$"] });
    expect(r.fields).toEqual([
      { path: "$schema", concretePath: "$schema", match: false, rule: "schema", reason: "primary invalid: $: nested deeper than 64 levels or more than 200000 values: too large to validate" },
    ]);
  });
});
