import { describe, expect, it } from "vitest";
import { compileJsonSchema, validateJsonSchema } from "./json-schema.ts";

describe("validateJsonSchema", () => {
  it.each([
    { name: "type string ok", schema: { type: "string" }, value: "x", errors: [] },
    { name: "type string bad", schema: { type: "string" }, value: 1, errors: ["$: expected string, got number"] },
    { name: "type list", schema: { type: ["string", "null"] }, value: null, errors: [] },
    { name: "integer ok", schema: { type: "integer" }, value: 3, errors: [] },
    { name: "integer bad", schema: { type: "integer" }, value: 3.5, errors: ["$: expected integer, got number"] },
    { name: "number accepts integers", schema: { type: "number" }, value: 3, errors: [] },
    { name: "array is not object", schema: { type: "object" }, value: [], errors: ["$: expected object, got array"] },
    { name: "null is not object", schema: { type: "object" }, value: null, errors: ["$: expected object, got null"] },
    { name: "required", schema: { required: ["a", "b"] }, value: { a: 1 }, errors: ["$.b: required property is missing"] },
    { name: "properties", schema: { properties: { a: { type: "number" } } }, value: { a: "1" }, errors: ["$.a: expected number, got string"] },
    { name: "additionalProperties false", schema: { properties: { a: {} }, additionalProperties: false }, value: { a: 1, b: 2 }, errors: ["$.b: additional property not allowed"] },
    { name: "additionalProperties schema", schema: { additionalProperties: { type: "number" } }, value: { a: 1, b: "2" }, errors: ['$.b: expected number, got string'] },
    { name: "items", schema: { items: { type: "number" } }, value: [1, "2", 3], errors: ["$[1]: expected number, got string"] },
    { name: "enum ok", schema: { enum: ["a", 1, null, { k: [1] }] }, value: { k: [1] }, errors: [] },
    { name: "enum bad", schema: { enum: ["a", "b"] }, value: "c", errors: ['$: "c" is not one of the allowed values'] },
    { name: "const", schema: { const: 5 }, value: 6, errors: ["$: 6 is not the required constant"] },
    { name: "minimum", schema: { minimum: 0 }, value: -1, errors: ["$: -1 < minimum 0"] },
    { name: "maximum", schema: { maximum: 1 }, value: 1.2, errors: ["$: 1.2 > maximum 1"] },
    { name: "maximum inclusive", schema: { maximum: 1 }, value: 1, errors: [] },
    { name: "exclusiveMaximum", schema: { exclusiveMaximum: 1 }, value: 1, errors: ["$: 1 >= exclusiveMaximum 1"] },
    { name: "exclusiveMinimum", schema: { exclusiveMinimum: 0 }, value: 0, errors: ["$: 0 <= exclusiveMinimum 0"] },
    { name: "minLength", schema: { minLength: 3 }, value: "ab", errors: ["$: length 2 < minLength 3"] },
    { name: "maxLength counts code points", schema: { maxLength: 2 }, value: "😀😀", errors: [] },
    { name: "maxLength bad", schema: { maxLength: 2 }, value: "abc", errors: ["$: length 3 > maxLength 2"] },
    { name: "pattern ok", schema: { pattern: "^[A-Z]{3}-\\d+$" }, value: "ABC-12", errors: [] },
    { name: "pattern bad", schema: { pattern: "^[A-Z]{3}$" }, value: "abc", errors: ['$: does not match pattern "^[A-Z]{3}$"'] },
    { name: "minItems", schema: { minItems: 2 }, value: [1], errors: ["$: 1 items < minItems 2"] },
    { name: "maxItems", schema: { maxItems: 1 }, value: [1, 2], errors: ["$: 2 items > maxItems 1"] },
    { name: "keywords apply only to their type", schema: { minimum: 5, minLength: 5 }, value: true, errors: [] },
    { name: "true schema", schema: true, value: { anything: [1] }, errors: [] },
    { name: "false schema", schema: false, value: 1, errors: ["$: not allowed by the schema"] },
    { name: "false property schema", schema: { properties: { a: false } }, value: { a: 1 }, errors: ["$.a: not allowed by the schema"] },
    {
      name: "nested paths",
      schema: { properties: { items: { items: { properties: { score: { maximum: 1 } } } } } },
      value: { items: [{ score: 0.5 }, { score: 2 }] },
      errors: ["$.items[1].score: 2 > maximum 1"],
    },
  ])("$name", ({ schema, value, errors }) => {
    expect(validateJsonSchema(schema, value)).toEqual(errors);
  });

  it("stops after maxErrors", () => {
    const v = compileJsonSchema({ items: { type: "string" } }, { maxErrors: 3 });
    expect(v.validate([1, 2, 3, 4, 5])).toHaveLength(3);
  });

  it("reports a body too large to validate instead of passing it", () => {
    const v = compileJsonSchema({ items: { type: "number" } }, { maxNodes: 100 });
    expect(v.validate(new Array(1000).fill(1))).toEqual(["$[99]: body too large to validate (more than 100 values)"]);
  });

  it.each(["constructor", "__proto__", "toString", "hasOwnProperty"])("a body key %s does not find Object.prototype members", (key) => {
    const schema = { type: "object", properties: { a: { type: "number" } }, additionalProperties: false };
    expect(validateJsonSchema(schema, JSON.parse(`{"${key}": 1}`))).toEqual([`$.${key}: additional property not allowed`]);
    expect(validateJsonSchema({ properties: {} }, JSON.parse(`{"${key}": 1}`))).toEqual([]);
    expect(validateJsonSchema({ required: [key] }, {})).toEqual([`$.${key}: required property is missing`]);
  });

  it("accepts schema property names that are Object.prototype members", () => {
    const schema = JSON.parse('{"properties": {"__proto__": {"type": "string"}, "constructor": {"type": "number"}}}') as unknown;
    expect(validateJsonSchema(schema, JSON.parse('{"__proto__": 1, "constructor": "x"}'))).toEqual([
      "$.__proto__: expected string, got number",
      "$.constructor: expected number, got string",
    ]);
  });
});

describe("compileJsonSchema", () => {
  it.each([
    { name: "invalid pattern", schema: { properties: { a: { pattern: "(" } } }, error: /outputSchema #\/properties\/a: invalid pattern/ },
    { name: "unknown type", schema: { type: "float" }, error: /type must be one of/ },
    { name: "non-numeric maximum", schema: { maximum: "1" }, error: /maximum must be a number/ },
    { name: "negative maxLength", schema: { maxLength: -1 }, error: /maxLength must be a non-negative integer/ },
    { name: "non-list required", schema: { required: "a" }, error: /required must be a list of strings/ },
    { name: "non-object schema", schema: 5, error: /a schema must be an object or a boolean/ },
  ])("rejects $name", ({ schema, error }) => {
    expect(() => compileJsonSchema(schema)).toThrow(error);
  });

  it("rejects schemas nested deeper than the limit", () => {
    let schema: unknown = {};
    for (let i = 0; i < 1000; i++) schema = { items: schema };
    expect(() => compileJsonSchema(schema)).toThrow(/nested deeper than 64 levels/);
  });

  it("lists keywords it ignores", () => {
    const v = compileJsonSchema({ type: "object", description: "d", properties: { a: { $ref: "#/x", oneOf: [] } }, items: [{}] });
    expect(v.unsupported).toEqual(["#/properties/a: $ref", "#/properties/a: oneOf", "#: items (tuple form)"]);
  });
});
