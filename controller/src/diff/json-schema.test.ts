import { describe, expect, it } from "vitest";
import { compileJsonSchema, MAX_UNIQUE_ITEMS, validateJsonSchema } from "./json-schema.ts";

const D4 = "http://json-schema.org/draft-04/schema#";
const D6 = "http://json-schema.org/draft-06/schema#";
const D7 = "http://json-schema.org/draft-07/schema#";
const D2019 = "https://json-schema.org/draft/2019-09/schema";

describe("validateJsonSchema", () => {
  it.each([
    { name: "type string ok", schema: { type: "string" }, value: "x", errors: [] },
    { name: "type string bad", schema: { type: "string" }, value: 1, errors: ['$: Instance type "number" is invalid. Expected "string".'] },
    { name: "type list", schema: { type: ["string", "null"] }, value: null, errors: [] },
    { name: "integer bad", schema: { type: "integer" }, value: 3.5, errors: ['$: Instance type "number" is invalid. Expected "integer".'] },
    { name: "array is not object", schema: { type: "object" }, value: [], errors: ['$: Instance type "array" is invalid. Expected "object".'] },
    { name: "required", schema: { required: ["a", "b"] }, value: { a: 1 }, errors: ['$: Instance does not have required property "b".'] },
    { name: "nested paths", schema: { properties: { items: { items: { properties: { score: { maximum: 1 } } } } } }, value: { items: [{ score: 0.5 }, { score: 2 }] }, errors: ["$.items[1].score: 2 is greater than 1."] },
    { name: "digit keys of objects stay keys", schema: { properties: { "1": { type: "number" } } }, value: { "1": "x" }, errors: ['$.1: Instance type "string" is invalid. Expected "number".'] },
    { name: "false schema", schema: false, value: 1, errors: ["$: False boolean schema."] },
    { name: "additionalProperties false", schema: { properties: { a: {} }, additionalProperties: false }, value: { a: 1, b: 2 }, errors: ['$: Property "b" does not match additional properties schema.'] },
    { name: "maxLength counts code points", schema: { maxLength: 2 }, value: "😀😀", errors: [] },
    { name: "pattern", schema: { pattern: "^[A-Z]{3}$" }, value: "abc", errors: ["$: String does not match pattern."] },
    { name: "keywords apply only to their type", schema: { minimum: 5, minLength: 5 }, value: true, errors: [] },
  ])("$name", ({ schema, value, errors }) => {
    expect(validateJsonSchema(schema, value)).toEqual(errors);
  });

  // Each of these was silently ignored by the former hand-written subset: a value that breaks
  // only that keyword passed.
  describe("keywords the former subset ignored are enforced", () => {
    it.each([
      { keyword: "oneOf", schema: { oneOf: [{ type: "string" }, { maxLength: 3 }] }, valid: ["long text", 7], invalid: ["ab"] },
      { keyword: "anyOf", schema: { anyOf: [{ type: "string" }, { minimum: 3 }] }, valid: ["x", 5], invalid: [2] },
      { keyword: "allOf", schema: { allOf: [{ minimum: 1 }, { maximum: 3 }] }, valid: [2], invalid: [0, 4] },
      { keyword: "not", schema: { not: { type: "null" } }, valid: [1], invalid: [null] },
      { keyword: "local $ref", schema: { $defs: { label: { enum: ["refund", "billing"] } }, properties: { intent: { $ref: "#/$defs/label" } } }, valid: [{ intent: "refund" }], invalid: [{ intent: "other" }] },
      { keyword: "$ref to the root (recursion that descends)", schema: { type: "object", properties: { child: { $ref: "#" } }, required: ["n"] }, valid: [{ n: 1, child: { n: 2 } }], invalid: [{ n: 1, child: {} }] },
      { keyword: "$anchor", schema: { $defs: { s: { $anchor: "score", maximum: 1 } }, items: { $ref: "#score" } }, valid: [[0.5]], invalid: [[1.5]] },
      { keyword: "format email", schema: { format: "email" }, valid: ["bob@example.com"], invalid: ["bob at example"] },
      { keyword: "format date-time", schema: { format: "date-time" }, valid: ["2026-11-29T13:38:21Z"], invalid: ["yesterday", "2026-13-01T00:00:00Z"] },
      { keyword: "format uuid", schema: { format: "uuid" }, valid: ["123e4567-e89b-12d3-a456-426614174000"], invalid: ["123"] },
      { keyword: "tuple prefixItems", schema: { prefixItems: [{ type: "string" }, { type: "number" }], items: false }, valid: [["a", 1]], invalid: [[1, "a"], ["a", 1, 2]] },
      { keyword: "if/then/else", schema: { if: { properties: { kind: { const: "refund" } } }, then: { required: ["amount"] } }, valid: [{ kind: "refund", amount: 1 }, { kind: "other" }], invalid: [{ kind: "refund" }] },
      { keyword: "patternProperties", schema: { patternProperties: { "^x-": { type: "string" } } }, valid: [{ "x-a": "s" }], invalid: [{ "x-a": 1 }] },
      { keyword: "uniqueItems", schema: { uniqueItems: true }, valid: [[1, 2]], invalid: [[{ a: 1 }, { a: 1 }]] },
      { keyword: "contains", schema: { contains: { const: "ok" } }, valid: [["no", "ok"]], invalid: [["no"]] },
      { keyword: "multipleOf", schema: { multipleOf: 0.01 }, valid: [0.07], invalid: [0.075] },
      { keyword: "dependentRequired", schema: { dependentRequired: { amount: ["currency"] } }, valid: [{ amount: 1, currency: "EUR" }], invalid: [{ amount: 1 }] },
      { keyword: "propertyNames", schema: { propertyNames: { maxLength: 3 } }, valid: [{ abc: 1 }], invalid: [{ abcd: 1 }] },
      { keyword: "unevaluatedProperties", schema: { allOf: [{ properties: { a: {} } }], unevaluatedProperties: false }, valid: [{ a: 1 }], invalid: [{ a: 1, b: 2 }] },
      { keyword: "draft-04 exclusiveMaximum", schema: { $schema: D4, maximum: 3, exclusiveMaximum: true }, valid: [2], invalid: [3] },
      { keyword: "draft-07 dependencies", schema: { $schema: D7, dependencies: { a: ["b"] } }, valid: [{ a: 1, b: 1 }], invalid: [{ a: 1 }] },
      { keyword: "draft 2019-09 $recursiveRef", schema: { $schema: D2019, $recursiveAnchor: true, type: "object", properties: { kids: { items: { $recursiveRef: "#" } } }, required: ["id"] }, valid: [{ id: 1, kids: [{ id: 2 }] }], invalid: [{ id: 1, kids: [{}] }] },
    ])("$keyword", ({ schema, valid, invalid }) => {
      const c = compileJsonSchema(schema);
      for (const v of valid) expect(c.validate(v), JSON.stringify(v)).toEqual([]);
      for (const v of invalid) expect(c.validate(v), JSON.stringify(v)).not.toEqual([]);
    });
  });

  it("stops after maxErrors", () => {
    // shortCircuit stops at the first failing item; several keywords fail at once here.
    const v = compileJsonSchema({ type: "string", minimum: 10, allOf: [{ type: "number" }, { type: "boolean" }, { type: "null" }] }, { maxErrors: 2 });
    expect(v.validate({})).toHaveLength(2);
  });

  it("refuses a 100,000-deep array or object as too deep, without recursing", () => {
    let arr: unknown = 1;
    let obj: unknown = 1;
    for (let i = 0; i < 100_000; i++) {
      arr = [arr];
      obj = { a: obj };
    }
    const c = compileJsonSchema({ items: { $ref: "#" }, properties: { a: { $ref: "#" } } });
    expect(c.validate(arr)).toEqual(["$: nested deeper than 64 levels or more than 100000 values: too large to validate"]);
    expect(c.validate(obj)).toEqual(["$: nested deeper than 64 levels or more than 100000 values: too large to validate"]);
    expect(c.validate([[[1]]])).toEqual([]);
  });

  it("refuses a body with more values than maxNodes instead of passing it", () => {
    const v = compileJsonSchema({ items: { type: "number" } }, { maxNodes: 100 });
    expect(v.validate(new Array(1000).fill(1))).toEqual(["$: nested deeper than 64 levels or more than 100 values: too large to validate"]);
    expect(v.validate(new Array(50).fill(1))).toEqual([]);
  });

  it("refuses arrays too long for uniqueItems rather than comparing every pair", () => {
    const v = compileJsonSchema({ properties: { tags: { uniqueItems: true } } });
    expect(v.validate({ other: Array.from({ length: MAX_UNIQUE_ITEMS + 1 }, (_, i) => i) })).toEqual([`$: an array of ${MAX_UNIQUE_ITEMS + 1} elements is too long to check uniqueItems (at most ${MAX_UNIQUE_ITEMS})`]);
    expect(compileJsonSchema({ type: "array" }).validate(Array.from({ length: MAX_UNIQUE_ITEMS + 1 }, (_, i) => i))).toEqual([]);
  });

  it.each(["constructor", "__proto__", "toString", "hasOwnProperty"])("a body key %s does not find Object.prototype members", (key) => {
    const schema = { type: "object", properties: { a: { type: "number" } }, additionalProperties: false };
    expect(validateJsonSchema(schema, JSON.parse(`{"${key}": 1}`))).toEqual([`$: Property "${key}" does not match additional properties schema.`]);
    expect(validateJsonSchema({ properties: {} }, JSON.parse(`{"${key}": 1}`))).toEqual([]);
    expect(validateJsonSchema({ required: [key] }, {})).toEqual([`$: Instance does not have required property "${key}".`]);
  });

  it("does not change the schema object it was given", () => {
    const schema = { $defs: { a: { type: "string" } }, properties: { x: { $ref: "#/$defs/a" } } };
    const before = JSON.stringify(schema);
    compileJsonSchema(schema).validate({ x: 1 });
    expect(JSON.stringify(schema)).toBe(before);
    expect(Object.getOwnPropertyNames(schema.properties.x)).toEqual(["$ref"]);
  });
});

describe("compileJsonSchema", () => {
  it.each([
    { name: "an unknown keyword", schema: { properties: { a: { typ: "string" } } }, error: '#/properties/a: unknown keyword "typ" in draft 2020-12' },
    { name: "an unknown format", schema: { properties: { when: { format: "datetime" } } }, error: '#/properties/when/format: format "datetime" is not checked by the validator' },
    { name: "the url format (backtracks on hostile input)", schema: { format: "url" }, error: '#/format: format "url" is not checked' },
    { name: "a remote $ref", schema: { $ref: "https://example.com/schema.json" }, error: '#/$ref: $ref "https://example.com/schema.json" is not a local reference' },
    { name: "a relative file $ref", schema: { items: { $ref: "other.json#/a" } }, error: "#/items/$ref: $ref \"other.json#/a\" is not a local reference" },
    { name: "a local $ref that does not resolve", schema: { properties: { a: { $ref: "#/$defs/missing" } } }, error: '#/properties/a/$ref: $ref "#/$defs/missing" does not resolve' },
    { name: "a $ref cycle that never descends", schema: { allOf: [{ $ref: "#" }] }, error: "#: $ref cycle that never descends into the value" },
    { name: "$dynamicRef", schema: { $dynamicRef: "#meta" }, error: "#: $dynamicRef is not supported by the validator" },
    { name: "contentMediaType", schema: { contentMediaType: "application/json" }, error: "#: contentMediaType is an annotation the validator does not enforce" },
    { name: "an invalid pattern", schema: { properties: { a: { pattern: "(" } } }, error: "#/properties/a/pattern: invalid pattern" },
    { name: "an invalid patternProperties key", schema: { patternProperties: { "(": {} } }, error: "#/patternProperties/(: invalid pattern" },
    { name: "an unknown type", schema: { type: "float" }, error: "#/type: type must be one of" },
    { name: "a non-numeric maximum", schema: { maximum: "1" }, error: "#/maximum: maximum must be a number" },
    { name: "a negative maxLength", schema: { maxLength: -1 }, error: "#/maxLength: maxLength must be a non-negative integer" },
    { name: "a non-list required", schema: { required: "a" }, error: "#/required: required must be a list of strings" },
    { name: "an empty oneOf", schema: { oneOf: [] }, error: "#/oneOf: oneOf must be a non-empty list of schemas" },
    { name: "a non-schema", schema: 5, error: "#: a schema must be an object or a boolean, got number" },
    { name: "an unknown $schema", schema: { $schema: "https://example.com/my-draft" }, error: '#: $schema "https://example.com/my-draft" is not a known draft' },
    { name: "$id below the root", schema: { properties: { a: { $id: "https://example.com/a" } } }, error: "#/properties/a/$id: $id is only supported at the schema's root" },
    { name: "prefixItems in draft 2019-09", schema: { $schema: D2019, prefixItems: [{}] }, error: '#: unknown keyword "prefixItems" in draft 2019-09' },
    { name: "tuple items in draft 2020-12", schema: { items: [{}] }, error: "#/items: a schema must be an object or a boolean, got array" },
    { name: "if in draft 6", schema: { $schema: D6, if: {} }, error: '#: unknown keyword "if" in draft 6' },
    { name: "const in draft 4", schema: { $schema: D4, const: 1 }, error: '#: unknown keyword "const" in draft 4' },
    { name: "boolean subschemas in draft 4", schema: { $schema: D4, items: true }, error: "#/items: boolean schemas need draft 6 or later" },
    { name: "assertions beside $ref in draft 7", schema: { $schema: D7, definitions: { a: {} }, $ref: "#/definitions/a", minimum: 1 }, error: "#: minimum next to $ref would be ignored in draft 7" },
  ])("refuses $name, naming the keyword and where", ({ schema, error }) => {
    expect(() => compileJsonSchema(schema)).toThrow(error);
  });

  it("accepts annotations, $defs/definitions and $ref next to assertions where the draft honours them", () => {
    expect(() => compileJsonSchema({ title: "t", description: "d", default: 1, examples: [1], $comment: "c", deprecated: false, readOnly: true, writeOnly: false, $defs: { a: {} }, definitions: { b: {} } })).not.toThrow();
    expect(compileJsonSchema({ $defs: { a: { minimum: 1 } }, $ref: "#/$defs/a", maximum: 3 }).validate(5)).toEqual(["$: 5 is greater than 3."]);
  });

  it("reads each draft from $schema, 2020-12 without one", () => {
    expect(compileJsonSchema({}).draft).toBe("2020-12");
    expect(compileJsonSchema({ $schema: D4 }).draft).toBe("4");
    expect(compileJsonSchema({ $schema: "https://json-schema.org/draft-07/schema" }).draft).toBe("7");
    expect(compileJsonSchema({ $schema: D2019 }).draft).toBe("2019-09");
  });

  it("refuses schemas nested deeper than its limit", () => {
    let schema: unknown = {};
    for (let i = 0; i < 1000; i++) schema = { items: schema };
    expect(() => compileJsonSchema(schema)).toThrow(/the schema is nested deeper than 256 levels/);
  });

  it("reports nothing as unsupported: what is not enforced does not compile", () => {
    expect(compileJsonSchema({ type: "object", properties: { a: { oneOf: [{ type: "string" }, { type: "null" }] } } }).unsupported).toEqual([]);
  });
});
