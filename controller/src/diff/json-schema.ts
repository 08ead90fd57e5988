/**
 * A small JSON Schema validator for response bodies: the subset AI output contracts need, with no
 * dependency and no code generation (so nothing from a schema is ever evaluated).
 *
 * Supported keywords: type (string or list, with integer), properties, required,
 * additionalProperties (false or a schema), items (a schema), enum, const, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum (numbers), minLength, maxLength (code points), pattern,
 * minItems, maxItems, and boolean schemas. Other keywords are ignored, as JSON Schema itself
 * ignores unknown keywords, and listed in `unsupported` so the gateway can warn about them.
 */
import { canonicalJSON, kindOf } from "./json.ts";
import type { Budget } from "./json.ts";
import { keySegment } from "./path.ts";

/** Bounds that keep validation of hostile bodies cheap. */
export interface SchemaLimits {
  /** Deepest schema nesting accepted at compile time, and deepest value compared by enum/const. */
  maxDepth: number;
  /** Values visited per validation before giving up with an error. */
  maxNodes: number;
  /** Errors collected before validation stops. */
  maxErrors: number;
}

export const DEFAULT_SCHEMA_LIMITS: SchemaLimits = { maxDepth: 64, maxNodes: 100_000, maxErrors: 5 };

const KNOWN = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "enum",
  "const",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  // Annotations: no effect on validity.
  "$schema",
  "$id",
  "title",
  "description",
  "default",
  "examples",
  "$comment",
]);

const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);

interface Node {
  /** Boolean schema `false`: nothing is valid. */
  never: boolean;
  types: ReadonlySet<string> | undefined;
  properties: ReadonlyMap<string, Node> | undefined;
  required: readonly string[] | undefined;
  /** undefined: anything goes; false: no extra keys; Node: extra keys must match. */
  additional: false | Node | undefined;
  items: Node | undefined;
  enumValues: ReadonlySet<string> | undefined;
  constValue: string | undefined;
  minimum: number | undefined;
  maximum: number | undefined;
  exclusiveMinimum: number | undefined;
  exclusiveMaximum: number | undefined;
  minLength: number | undefined;
  maxLength: number | undefined;
  pattern: RegExp | undefined;
  patternSource: string | undefined;
  minItems: number | undefined;
  maxItems: number | undefined;
}

const ANY: Node = {
  never: false,
  types: undefined,
  properties: undefined,
  required: undefined,
  additional: undefined,
  items: undefined,
  enumValues: undefined,
  constValue: undefined,
  minimum: undefined,
  maximum: undefined,
  exclusiveMinimum: undefined,
  exclusiveMaximum: undefined,
  minLength: undefined,
  maxLength: undefined,
  pattern: undefined,
  patternSource: undefined,
  minItems: undefined,
  maxItems: undefined,
};
const NEVER: Node = { ...ANY, never: true };

/** A compiled schema; validate() returns human readable errors, empty when the value is valid. */
export class CompiledSchema {
  /** Keywords found in the schema that this validator ignores, as `#/pointer: keyword`. */
  readonly unsupported: readonly string[];
  readonly limits: SchemaLimits;
  readonly #root: Node;

  constructor(root: Node, unsupported: readonly string[], limits: SchemaLimits) {
    this.#root = root;
    this.unsupported = unsupported;
    this.limits = limits;
  }

  /** Validates a value; returns at most limits.maxErrors messages such as `$.score: 1.2 > maximum 1`. */
  validate(value: unknown): string[] {
    const ctx: ValidationContext = { errors: [], exhausted: false, budget: { nodes: this.limits.maxNodes }, limits: this.limits, stack: [] };
    check(this.#root, value, ctx);
    return ctx.errors;
  }
}

/**
 * Compiles a JSON Schema (a plain object from the rollout spec). Throws with the schema location on
 * a malformed keyword (for example an invalid pattern), so a bad spec is reported once instead of
 * failing every comparison.
 */
export function compileJsonSchema(schema: unknown, limits: Partial<SchemaLimits> = {}): CompiledSchema {
  const full: SchemaLimits = { ...DEFAULT_SCHEMA_LIMITS, ...limits };
  const unsupported: string[] = [];
  const root = compileNode(schema, "#", 0, full, unsupported);
  return new CompiledSchema(root, unsupported, full);
}

/** Convenience for one-off checks: compiles and validates. */
export function validateJsonSchema(schema: unknown, value: unknown): string[] {
  return compileJsonSchema(schema).validate(value);
}

function fail(at: string, message: string): never {
  throw new Error(`outputSchema ${at}: ${message}`);
}

function optNumber(obj: Readonly<Record<string, unknown>>, key: string, at: string): number | undefined {
  if (!Object.hasOwn(obj, key)) return undefined;
  const v = obj[key];
  if (typeof v !== "number" || !Number.isFinite(v)) fail(at, `${key} must be a number`);
  return v;
}

function optCount(obj: Readonly<Record<string, unknown>>, key: string, at: string): number | undefined {
  const v = optNumber(obj, key, at);
  if (v !== undefined && (!Number.isInteger(v) || v < 0)) fail(at, `${key} must be a non-negative integer`);
  return v;
}

function canonicalConfig(value: unknown, at: string, limits: SchemaLimits): string {
  const c = canonicalJSON(value, limits.maxDepth, { nodes: limits.maxNodes });
  if (c === undefined) fail(at, "enum/const value too large or too deep");
  return c;
}

function compileNode(schema: unknown, at: string, depth: number, limits: SchemaLimits, unsupported: string[]): Node {
  if (schema === true) return ANY;
  if (schema === false) return NEVER;
  if (kindOf(schema) !== "object") fail(at, "a schema must be an object or a boolean");
  if (depth > limits.maxDepth) fail(at, `nested deeper than ${limits.maxDepth} levels`);
  const s = schema as Readonly<Record<string, unknown>>;
  for (const key of Object.keys(s)) if (!KNOWN.has(key)) unsupported.push(`${at}: ${key}`);
  const node: Node = { ...ANY };

  if (Object.hasOwn(s, "type")) {
    const t = s.type;
    const list = typeof t === "string" ? [t] : Array.isArray(t) ? t : undefined;
    if (!list || list.length === 0 || !list.every((x) => typeof x === "string" && TYPES.has(x))) {
      fail(at, "type must be one of object, array, string, number, integer, boolean, null (or a list)");
    }
    node.types = new Set(list as string[]);
  }
  if (Object.hasOwn(s, "properties")) {
    const p = s.properties;
    if (kindOf(p) !== "object") fail(at, "properties must be an object");
    const props = new Map<string, Node>();
    const pobj = p as Readonly<Record<string, unknown>>;
    for (const k of Object.keys(pobj)) {
      props.set(k, compileNode(pobj[k], `${at}/properties/${k}`, depth + 1, limits, unsupported));
    }
    node.properties = props;
  }
  if (Object.hasOwn(s, "required")) {
    const r = s.required;
    if (!Array.isArray(r) || !r.every((x) => typeof x === "string")) fail(at, "required must be a list of strings");
    node.required = r as string[];
  }
  if (Object.hasOwn(s, "additionalProperties")) {
    const a = s.additionalProperties;
    node.additional = a === false ? false : a === true ? undefined : compileNode(a, `${at}/additionalProperties`, depth + 1, limits, unsupported);
  }
  if (Object.hasOwn(s, "items")) {
    if (Array.isArray(s.items)) {
      unsupported.push(`${at}: items (tuple form)`);
    } else {
      node.items = compileNode(s.items, `${at}/items`, depth + 1, limits, unsupported);
    }
  }
  if (Object.hasOwn(s, "enum")) {
    if (!Array.isArray(s.enum)) fail(at, "enum must be a list");
    node.enumValues = new Set((s.enum as unknown[]).map((v) => canonicalConfig(v, at, limits)));
  }
  if (Object.hasOwn(s, "const")) node.constValue = canonicalConfig(s.const, at, limits);
  node.minimum = optNumber(s, "minimum", at);
  node.maximum = optNumber(s, "maximum", at);
  // Draft 4's boolean exclusiveMinimum/Maximum is not supported; only the numeric (draft 6+) form.
  if (typeof s.exclusiveMinimum === "boolean" || typeof s.exclusiveMaximum === "boolean") {
    unsupported.push(`${at}: boolean exclusiveMinimum/exclusiveMaximum (draft 4)`);
  } else {
    node.exclusiveMinimum = optNumber(s, "exclusiveMinimum", at);
    node.exclusiveMaximum = optNumber(s, "exclusiveMaximum", at);
  }
  node.minLength = optCount(s, "minLength", at);
  node.maxLength = optCount(s, "maxLength", at);
  node.minItems = optCount(s, "minItems", at);
  node.maxItems = optCount(s, "maxItems", at);
  if (Object.hasOwn(s, "pattern")) {
    if (typeof s.pattern !== "string") fail(at, "pattern must be a string");
    try {
      // The pattern comes from the rollout spec (configuration), never from a response body.
      node.pattern = new RegExp(s.pattern, "u");
    } catch (err) {
      fail(at, `invalid pattern: ${(err as Error).message}`);
    }
    node.patternSource = s.pattern;
  }
  return node;
}

interface ValidationContext {
  errors: string[];
  exhausted: boolean;
  budget: Budget;
  limits: SchemaLimits;
  /** Keys and indices from the root to the value being checked; turned into a path only for an error. */
  stack: (string | number)[];
}

function here(ctx: ValidationContext): string {
  let out = "$";
  for (const seg of ctx.stack) out += typeof seg === "number" ? `[${seg}]` : keySegment(seg);
  return out;
}

function typeMatches(types: ReadonlySet<string>, value: unknown): boolean {
  const k = kindOf(value);
  if (k === "number") return types.has("number") || (types.has("integer") && Number.isInteger(value));
  return types.has(k);
}

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

function addError(ctx: ValidationContext, message: string): boolean {
  if (ctx.errors.length < ctx.limits.maxErrors) ctx.errors.push(message);
  return ctx.errors.length < ctx.limits.maxErrors;
}

/** Returns false when validation should stop (error cap or budget reached). */
function check(node: Node, value: unknown, ctx: ValidationContext): boolean {
  if (--ctx.budget.nodes < 0) {
    // Report once: a body cut short must never look valid.
    if (!ctx.exhausted) addError(ctx, `${here(ctx)}: body too large to validate (more than ${ctx.limits.maxNodes} values)`);
    ctx.exhausted = true;
    return false;
  }
  if (node === ANY) return true;
  if (node.never) return addError(ctx, `${here(ctx)}: not allowed by the schema`);
  if (node.types && !typeMatches(node.types, value)) {
    return addError(ctx, `${here(ctx)}: expected ${[...node.types].join(" or ")}, got ${kindOf(value)}`);
  }
  if (node.enumValues || node.constValue !== undefined) {
    const c = canonicalJSON(value, ctx.limits.maxDepth, ctx.budget);
    if (c === undefined) return addError(ctx, `${here(ctx)}: value too large or too deep to compare with enum/const`);
    const shown = c.length > 60 ? `${c.slice(0, 60)}…` : c;
    if (node.enumValues && !node.enumValues.has(c) && !addError(ctx, `${here(ctx)}: ${shown} is not one of the allowed values`)) return false;
    if (node.constValue !== undefined && c !== node.constValue && !addError(ctx, `${here(ctx)}: ${shown} is not the required constant`)) return false;
  }
  switch (kindOf(value)) {
    case "number":
      return checkNumber(node, value as number, ctx);
    case "string":
      return checkString(node, value as string, ctx);
    case "array":
      return checkArray(node, value as readonly unknown[], ctx);
    case "object":
      return checkObject(node, value as Readonly<Record<string, unknown>>, ctx);
    default:
      return true;
  }
}

function checkNumber(node: Node, v: number, ctx: ValidationContext): boolean {
  if (node.minimum !== undefined && v < node.minimum && !addError(ctx, `${here(ctx)}: ${v} < minimum ${node.minimum}`)) return false;
  if (node.maximum !== undefined && v > node.maximum && !addError(ctx, `${here(ctx)}: ${v} > maximum ${node.maximum}`)) return false;
  if (node.exclusiveMinimum !== undefined && v <= node.exclusiveMinimum && !addError(ctx, `${here(ctx)}: ${v} <= exclusiveMinimum ${node.exclusiveMinimum}`)) return false;
  if (node.exclusiveMaximum !== undefined && v >= node.exclusiveMaximum && !addError(ctx, `${here(ctx)}: ${v} >= exclusiveMaximum ${node.exclusiveMaximum}`)) return false;
  return true;
}

function checkString(node: Node, v: string, ctx: ValidationContext): boolean {
  // A string has between length / 2 and length code points: count only when that range straddles a bound.
  const undecided =
    (node.minLength !== undefined && Math.ceil(v.length / 2) < node.minLength) || (node.maxLength !== undefined && v.length > node.maxLength);
  if (undecided) {
    const len = codePoints(v);
    if (node.minLength !== undefined && len < node.minLength && !addError(ctx, `${here(ctx)}: length ${len} < minLength ${node.minLength}`)) return false;
    if (node.maxLength !== undefined && len > node.maxLength && !addError(ctx, `${here(ctx)}: length ${len} > maxLength ${node.maxLength}`)) return false;
  }
  if (node.pattern && !node.pattern.test(v) && !addError(ctx, `${here(ctx)}: does not match pattern ${JSON.stringify(node.patternSource)}`)) return false;
  return true;
}

function checkArray(node: Node, v: readonly unknown[], ctx: ValidationContext): boolean {
  if (node.minItems !== undefined && v.length < node.minItems && !addError(ctx, `${here(ctx)}: ${v.length} items < minItems ${node.minItems}`)) return false;
  if (node.maxItems !== undefined && v.length > node.maxItems && !addError(ctx, `${here(ctx)}: ${v.length} items > maxItems ${node.maxItems}`)) return false;
  if (node.items && node.items !== ANY) {
    for (let i = 0; i < v.length; i++) {
      ctx.stack.push(i);
      const go = check(node.items, v[i], ctx);
      ctx.stack.pop();
      if (!go) return false;
    }
  }
  return true;
}

function checkObject(node: Node, v: Readonly<Record<string, unknown>>, ctx: ValidationContext): boolean {
  if (node.required) {
    for (const k of node.required) {
      if (Object.hasOwn(v, k)) continue;
      ctx.stack.push(k);
      const go = addError(ctx, `${here(ctx)}: required property is missing`);
      ctx.stack.pop();
      if (!go) return false;
    }
  }
  if (node.additional === undefined) {
    // No constraint on other keys: walking the schema's properties is cheaper than the body's keys.
    if (node.properties) {
      for (const [k, sub] of node.properties) {
        if (!Object.hasOwn(v, k)) continue;
        ctx.stack.push(k);
        const go = check(sub, v[k], ctx);
        ctx.stack.pop();
        if (!go) return false;
      }
    }
  } else {
    for (const k of Object.keys(v)) {
      // Map lookup, not properties[k]: a body key like "constructor" must not find Object.prototype members.
      const sub = node.properties?.get(k) ?? node.additional;
      ctx.stack.push(k);
      const go = sub === false ? addError(ctx, `${here(ctx)}: additional property not allowed`) : check(sub, v[k], ctx);
      ctx.stack.pop();
      if (!go) return false;
    }
  }
  return true;
}
