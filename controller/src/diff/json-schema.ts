/**
 * JSON Schema for webhook payloads (spec.traffic.payloadSchema) and answers
 * (spec.shadow.compare.outputSchema), validated by @cfworker/json-schema: drafts 4, 6, 7, 2019-09
 * and 2020-12, no code generation, so nothing from a schema is ever evaluated as code.
 *
 * What this module adds around the validator:
 * - Strictness. A schema is only as strong as what is enforced, so every keyword must belong to
 *   its draft's vocabulary and be enforced by the validator: an unknown or unsupported keyword, a
 *   `format` the validator does not check, a `$ref` that is not a local `#...` reference or does
 *   not resolve, a malformed keyword value are compile errors naming the keyword and the schema
 *   location (`#/properties/a: ...`), never silently ignored. Annotations (title, description,
 *   default, examples, $comment, deprecated, readOnly, writeOnly) are accepted: they assert nothing.
 * - Bounds. The validator recurses over the value; values are measured first without recursion,
 *   and one nested deeper than maxDepth or with more than maxNodes values is an error, never a
 *   stack overflow. A schema that recurses without descending into the value (`{"$ref": "#"}`) is
 *   refused at compile time.
 * - Errors as `$.path: message`, at most maxErrors, the innermost failures first.
 */
import { dereference, validate, type OutputUnit, type Schema, type SchemaDraft } from "@cfworker/json-schema";
import { kindOf, measureValue } from "./json.ts";
import { keySegment } from "./path.ts";

/** Bounds that keep validation of hostile bodies cheap. */
export interface SchemaLimits {
  /** Deepest value nesting validated (a deeper value is invalid). */
  maxDepth: number;
  /** Values per validated body (a larger body is invalid). */
  maxNodes: number;
  /** Errors reported per validation. */
  maxErrors: number;
}

export const DEFAULT_SCHEMA_LIMITS: SchemaLimits = { maxDepth: 64, maxNodes: 100_000, maxErrors: 5 };

/** Deepest nesting of a schema document itself (objects and arrays). */
const MAX_SCHEMA_DEPTH = 256;
/** Most values in a schema document. */
const MAX_SCHEMA_NODES = 100_000;
/** uniqueItems compares every pair of elements: longer arrays are refused rather than compared. */
export const MAX_UNIQUE_ITEMS = 2_000;

/** The drafts understood, by $schema URI (without scheme and trailing `#`). */
const DRAFTS: Readonly<Record<string, Draft>> = {
  "json-schema.org/draft-04/schema": "4",
  "json-schema.org/draft-06/schema": "6",
  "json-schema.org/draft-07/schema": "7",
  "json-schema.org/draft/2019-09/schema": "2019-09",
  "json-schema.org/draft/2020-12/schema": "2020-12",
};
type Draft = "4" | "6" | "7" | "2019-09" | "2020-12";
/** A schema without $schema is read as this draft. */
export const DEFAULT_DRAFT = "2020-12";

/** How a keyword's value is checked, and whether it holds subschemas to walk. */
type Shape =
  | "any"
  | "schema"
  | "schemas"
  | "schemaMap"
  | "patternMap"
  | "schemaOrSchemas"
  | "schemaOrStringsMap"
  | "types"
  | "array"
  | "number"
  | "positive"
  | "count"
  | "boolean"
  | "strings"
  | "stringsMap"
  | "pattern"
  | "format"
  | "string"
  | "ref"
  | "recursiveRef";

const ANNOTATIONS: Readonly<Record<string, Shape>> = { title: "any", description: "any", default: "any", examples: "any", $comment: "any", deprecated: "any", readOnly: "any", writeOnly: "any" };

const DRAFT4: Readonly<Record<string, Shape>> = {
  ...ANNOTATIONS,
  id: "string",
  $schema: "string",
  $ref: "ref",
  definitions: "schemaMap",
  type: "types",
  enum: "array",
  multipleOf: "positive",
  maximum: "number",
  exclusiveMaximum: "boolean",
  minimum: "number",
  exclusiveMinimum: "boolean",
  maxLength: "count",
  minLength: "count",
  pattern: "pattern",
  format: "format",
  items: "schemaOrSchemas",
  additionalItems: "schema",
  maxItems: "count",
  minItems: "count",
  uniqueItems: "boolean",
  maxProperties: "count",
  minProperties: "count",
  required: "strings",
  properties: "schemaMap",
  patternProperties: "patternMap",
  additionalProperties: "schema",
  dependencies: "schemaOrStringsMap",
  allOf: "schemas",
  anyOf: "schemas",
  oneOf: "schemas",
  not: "schema",
};

function without(base: Readonly<Record<string, Shape>>, ...keys: string[]): Record<string, Shape> {
  const out = { ...base };
  for (const k of keys) delete out[k];
  return out;
}

const DRAFT6 = { ...without(DRAFT4, "id"), $id: "string", exclusiveMaximum: "number", exclusiveMinimum: "number", const: "any", contains: "schema", propertyNames: "schema" } as const satisfies Record<string, Shape>;
const DRAFT7 = { ...DRAFT6, if: "schema", then: "schema", else: "schema" } as const satisfies Record<string, Shape>;
const DRAFT2019 = {
  ...without(DRAFT7, "dependencies"),
  $anchor: "string",
  $defs: "schemaMap",
  $recursiveRef: "recursiveRef",
  $recursiveAnchor: "boolean",
  dependentRequired: "stringsMap",
  dependentSchemas: "schemaMap",
  maxContains: "count",
  minContains: "count",
  unevaluatedItems: "schema",
  unevaluatedProperties: "schema",
} as const satisfies Record<string, Shape>;
const DRAFT2020 = { ...without(DRAFT2019, "$recursiveRef", "$recursiveAnchor", "additionalItems"), items: "schema", prefixItems: "schemas" } as const satisfies Record<string, Shape>;

const VOCABULARY: Readonly<Record<Draft, Readonly<Record<string, Shape>>>> = { "4": DRAFT4, "6": DRAFT6, "7": DRAFT7, "2019-09": DRAFT2019, "2020-12": DRAFT2020 };

/** Keywords of some draft that the validator does not enforce: named as such rather than "unknown". */
const NOT_ENFORCED: Readonly<Record<string, string>> = {
  $dynamicRef: "$dynamicRef is not supported by the validator",
  $dynamicAnchor: "$dynamicAnchor is not supported by the validator",
  $vocabulary: "$vocabulary (custom meta-schemas) is not supported",
  contentEncoding: "contentEncoding is an annotation the validator does not enforce",
  contentMediaType: "contentMediaType is an annotation the validator does not enforce",
  contentSchema: "contentSchema is an annotation the validator does not enforce",
};

/**
 * Formats the validator checks. `url` is left out on purpose: its matcher backtracks
 * exponentially on hostile strings (use `uri`).
 */
const FORMATS = new Set([
  "date",
  "time",
  "date-time",
  "duration",
  "uri",
  "uri-reference",
  "uri-template",
  "email",
  "hostname",
  "ipv4",
  "ipv6",
  "regex",
  "uuid",
  "json-pointer",
  "json-pointer-uri-fragment",
  "relative-json-pointer",
]);

const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);
/** Keywords that may stand next to $ref in drafts 4-7, where $ref makes its siblings ignored. */
const REF_SIBLINGS_OK = new Set([...Object.keys(ANNOTATIONS), "$schema", "$id", "id", "definitions", "$defs"]);

/** A compiled schema; validate() returns human readable errors, empty when the value is valid. */
export class CompiledSchema {
  /** Always empty: unsupported keywords are compile errors. Kept for callers that report them. */
  readonly unsupported: readonly string[] = [];
  readonly limits: SchemaLimits;
  /** The draft the schema was read as. */
  readonly draft: Draft;
  readonly #schema: Schema | boolean;
  readonly #lookup: Record<string, Schema | boolean>;
  readonly #engineDraft: SchemaDraft;
  readonly #uniqueItems: boolean;

  /** @internal Use compileJsonSchema. */
  constructor(c: { schema: Schema | boolean; lookup: Record<string, Schema | boolean>; draft: Draft; uniqueItems: boolean; limits: SchemaLimits }) {
    this.#schema = c.schema;
    this.#lookup = c.lookup;
    this.draft = c.draft;
    // The validator has no draft 6 mode; draft 7 is draft 6 plus if/then/else, which the
    // vocabulary check refuses in a draft 6 schema.
    this.#engineDraft = c.draft === "6" ? "7" : c.draft;
    this.#uniqueItems = c.uniqueItems;
    this.limits = c.limits;
  }

  /** Validates a value; returns at most limits.maxErrors messages such as `$.score: 1.2 is greater than 1.`. */
  validate(value: unknown): string[] {
    const size = measureValue(value, this.limits.maxDepth, this.limits.maxNodes);
    if (size === undefined) return [`$: nested deeper than ${this.limits.maxDepth} levels or more than ${this.limits.maxNodes} values: too large to validate`];
    if (this.#uniqueItems && size.longestArray > MAX_UNIQUE_ITEMS) return [`$: an array of ${size.longestArray} elements is too long to check uniqueItems (at most ${MAX_UNIQUE_ITEMS})`];
    let units: OutputUnit[];
    try {
      const r = validate(value, this.#schema, this.#engineDraft, this.#lookup, true);
      if (r.valid) return [];
      units = r.errors;
    } catch (err) {
      // Fail closed: a value the validator could not judge is not valid.
      return [`$: could not be validated: ${(err as Error).message.split("\n", 1)[0]}`];
    }
    return innermost(units)
      .slice(0, this.limits.maxErrors)
      .map((u) => `${jsonPath(value, u.instanceLocation)}: ${u.error}`);
  }
}

/**
 * Compiles a JSON Schema (a plain object or boolean from the rollout spec). Throws an Error whose
 * message names the schema location and what is wrong (`#/properties/a: unknown keyword "foo"`)
 * on anything the validator would not enforce as written.
 */
export function compileJsonSchema(schema: unknown, limits: Partial<SchemaLimits> = {}): CompiledSchema {
  const full: SchemaLimits = { ...DEFAULT_SCHEMA_LIMITS, ...limits };
  if (measureValue(schema, MAX_SCHEMA_DEPTH, MAX_SCHEMA_NODES) === undefined) throw new Error(`#: the schema is nested deeper than ${MAX_SCHEMA_DEPTH} levels or has more than ${MAX_SCHEMA_NODES} values`);
  // The validator annotates schema objects in place: work on a copy, never on the spec object.
  const copy = structuredClone(schema);
  const draft = draftOf(copy);
  const walk: SchemaWalk = { draft, vocabulary: VOCABULARY[draft], refs: [], uniqueItems: false };
  checkSchema(copy, "#", walk, true);
  let lookup: Record<string, Schema | boolean>;
  try {
    lookup = dereference(copy as Schema | boolean);
  } catch (err) {
    throw new Error(`#: ${(err as Error).message}`, { cause: err });
  }
  for (const r of walk.refs) {
    const target = (r.node as { __absolute_ref__?: string }).__absolute_ref__;
    if (target === undefined || lookup[target] === undefined) throw new Error(`${r.at}: $ref ${JSON.stringify(r.node.$ref)} does not resolve to a schema in this document`);
  }
  const compiled = new CompiledSchema({ schema: copy as Schema | boolean, lookup, draft, uniqueItems: walk.uniqueItems, limits: full });
  refuseEndlessRecursion(compiled);
  return compiled;
}

/** Convenience for one-off checks: compiles and validates. */
export function validateJsonSchema(schema: unknown, value: unknown): string[] {
  return compileJsonSchema(schema).validate(value);
}

function draftOf(schema: unknown): Draft {
  if (kindOf(schema) !== "object" || !Object.hasOwn(schema as object, "$schema")) return DEFAULT_DRAFT;
  const uri = (schema as { $schema: unknown }).$schema;
  const key = typeof uri === "string" ? uri.replace(/^https?:\/\//, "").replace(/#$/, "") : undefined;
  const draft = key === undefined ? undefined : DRAFTS[key];
  if (!draft) throw new Error(`#: $schema ${JSON.stringify(uri)} is not a known draft (use https://json-schema.org/draft/2020-12/schema, 2019-09, draft-07, draft-06 or draft-04)`);
  return draft;
}

interface SchemaWalk {
  draft: Draft;
  vocabulary: Readonly<Record<string, Shape>>;
  /** Schema objects with a $ref, checked once the document's references are known. */
  refs: { at: string; node: { $ref: string } }[];
  /** uniqueItems appears somewhere: bounds array lengths at validation. */
  uniqueItems: boolean;
}

function fail(at: string, message: string): never {
  throw new Error(`${at}: ${message}`);
}

/** JSON Pointer escaping of one schema location token. */
function token(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** Checks one (sub)schema against the draft's vocabulary and walks its subschemas. */
function checkSchema(schema: unknown, at: string, walk: SchemaWalk, root: boolean): void {
  if (typeof schema === "boolean") {
    if (walk.draft === "4") fail(at, "boolean schemas need draft 6 or later");
    return;
  }
  if (kindOf(schema) !== "object") fail(at, `a schema must be an object${walk.draft === "4" ? "" : " or a boolean"}, got ${kindOf(schema)}`);
  const s = schema as Readonly<Record<string, unknown>>;
  for (const key of Object.keys(s)) {
    const shape = walk.vocabulary[key];
    const where = `${at}/${token(key)}`;
    if (shape === undefined) {
      const why = NOT_ENFORCED[key] ?? `unknown keyword ${JSON.stringify(key)} in draft ${walk.draft}`;
      fail(at, `${why}; a keyword that is not enforced would make the schema weaker than written`);
    }
    if (!root && (key === "$schema" || key === "$id" || key === "id")) fail(where, `${key} is only supported at the schema's root`);
    checkValue(s[key], shape, key, where, walk);
  }
  if (Object.hasOwn(s, "$ref")) {
    walk.refs.push({ at: `${at}/$ref`, node: s as { $ref: string } });
    if (walk.draft === "4" || walk.draft === "6" || walk.draft === "7") {
      const ignored = Object.keys(s).filter((k) => k !== "$ref" && !REF_SIBLINGS_OK.has(k));
      if (ignored.length > 0) fail(at, `${ignored.join(", ")} next to $ref would be ignored in draft ${walk.draft}; put the $ref and them in an allOf`);
    }
  }
  if (s.uniqueItems === true) walk.uniqueItems = true;
  if (walk.draft === "4" && (typeof s.exclusiveMaximum === "boolean" || typeof s.exclusiveMinimum === "boolean")) {
    if (s.exclusiveMaximum === true && s.maximum === undefined) fail(at, "exclusiveMaximum needs maximum in draft 4");
    if (s.exclusiveMinimum === true && s.minimum === undefined) fail(at, "exclusiveMinimum needs minimum in draft 4");
  }
}

function isCount(v: unknown): boolean {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

function compilePattern(p: unknown, where: string): void {
  if (typeof p !== "string") fail(where, "must be a regular expression string");
  try {
    // Compiled as the validator does (Unicode mode); from configuration, never from a body.
    new RegExp(p, "u");
  } catch (err) {
    fail(where, `invalid pattern: ${(err as Error).message}`);
  }
}

/** Checks a keyword's value has the shape the draft requires; walks the subschemas it holds. */
function checkValue(v: unknown, shape: Shape, key: string, where: string, walk: SchemaWalk): void {
  const entries = (): [string, unknown][] => {
    if (kindOf(v) !== "object") fail(where, `${key} must be an object`);
    return Object.entries(v as Record<string, unknown>);
  };
  switch (shape) {
    case "any":
      return;
    case "schema":
      return checkSchema(v, where, walk, false);
    case "schemas":
      if (!Array.isArray(v) || v.length === 0) fail(where, `${key} must be a non-empty list of schemas`);
      v.forEach((s, i) => checkSchema(s, `${where}/${i}`, walk, false));
      return;
    case "schemaOrSchemas":
      if (Array.isArray(v)) v.forEach((s, i) => checkSchema(s, `${where}/${i}`, walk, false));
      else checkSchema(v, where, walk, false);
      return;
    case "schemaMap":
      for (const [k, s] of entries()) checkSchema(s, `${where}/${token(k)}`, walk, false);
      return;
    case "patternMap":
      for (const [k, s] of entries()) {
        compilePattern(k, `${where}/${token(k)}`);
        checkSchema(s, `${where}/${token(k)}`, walk, false);
      }
      return;
    case "schemaOrStringsMap":
      for (const [k, s] of entries()) {
        if (Array.isArray(s)) {
          if (!s.every((x) => typeof x === "string")) fail(`${where}/${token(k)}`, "must be a schema or a list of property names");
        } else checkSchema(s, `${where}/${token(k)}`, walk, false);
      }
      return;
    case "stringsMap":
      for (const [k, s] of entries()) if (!Array.isArray(s) || !s.every((x) => typeof x === "string")) fail(`${where}/${token(k)}`, "must be a list of property names");
      return;
    case "types": {
      const list = typeof v === "string" ? [v] : Array.isArray(v) ? v : undefined;
      if (!list || list.length === 0 || !list.every((t) => typeof t === "string" && TYPES.has(t))) fail(where, "type must be one of object, array, string, number, integer, boolean, null (or a list of them)");
      return;
    }
    case "array":
      if (!Array.isArray(v)) fail(where, `${key} must be a list`);
      return;
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) fail(where, `${key} must be a number`);
      return;
    case "positive":
      if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) fail(where, `${key} must be a number greater than 0`);
      return;
    case "count":
      if (!isCount(v)) fail(where, `${key} must be a non-negative integer`);
      return;
    case "boolean":
      if (typeof v !== "boolean") fail(where, `${key} must be true or false`);
      return;
    case "strings":
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) fail(where, `${key} must be a list of strings`);
      return;
    case "pattern":
      return compilePattern(v, where);
    case "format":
      if (typeof v !== "string" || !FORMATS.has(v)) fail(where, `format ${JSON.stringify(v)} is not checked by the validator (known: ${[...FORMATS].join(", ")})`);
      return;
    case "string":
      if (typeof v !== "string") fail(where, `${key} must be a string`);
      return;
    case "ref":
      if (typeof v !== "string") fail(where, "$ref must be a string");
      if (!v.startsWith("#")) fail(where, `$ref ${JSON.stringify(v)} is not a local reference: only #... references within this schema are supported (remote schemas are never fetched)`);
      return;
    case "recursiveRef":
      if (v !== "#") fail(where, '$recursiveRef must be "#"');
      return;
  }
}

/**
 * A reference cycle that never descends into the value (`{"$ref": "#"}`, an allOf back to the
 * root) would recurse until the stack overflows on every value. Validating one value of each
 * type exposes it once, at compile time.
 */
function refuseEndlessRecursion(c: CompiledSchema): void {
  for (const probe of [null, true, 0, "", [], {}]) {
    const errors = c.validate(probe);
    if (errors.some((e) => /call stack/i.test(e))) fail("#", "$ref cycle that never descends into the value: validation would recurse without end");
  }
}

/**
 * The failures worth showing: those no other failure lies beneath (the validator reports
 * "a subschema had errors" for each enclosing keyword as well).
 */
function innermost(units: readonly OutputUnit[]): OutputUnit[] {
  // A `false` subschema's failure carries no schema location of its own; the keyword that led to
  // it (properties, additionalProperties, items) already names the value.
  const located = units.length > 1 ? units.filter((u) => u.keyword !== "false") : units;
  return located.filter((u) => !located.some((o) => o !== u && o.keywordLocation.startsWith(`${u.keywordLocation}/`)));
}

/**
 * `$.items[1].score` for the validator's `#/items/1/score`. Tokens are matched against the value
 * itself, so an object key "1" is `["1"]`-style only where the value holds an object.
 */
function jsonPath(value: unknown, pointer: string): string {
  if (pointer === "#" || pointer === "") return "$";
  let out = "$";
  let v = value;
  for (const raw of pointer.replace(/^#\//, "").split("/")) {
    const tok = decodeToken(raw);
    if (Array.isArray(v) && /^\d+$/.test(tok)) {
      out += `[${tok}]`;
      v = v[Number(tok)];
    } else {
      out += keySegment(tok);
      v = kindOf(v) === "object" && Object.hasOwn(v as object, tok) ? (v as Record<string, unknown>)[tok] : undefined;
    }
  }
  return out;
}

function decodeToken(t: string): string {
  let s = t;
  try {
    s = decodeURIComponent(t);
  } catch {
    // Not percent-encoded after all: keep it as is.
  }
  return s.replace(/~1/g, "/").replace(/~0/g, "~");
}
