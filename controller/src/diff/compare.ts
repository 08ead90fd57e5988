/**
 * The diff engine: judges a shadow (candidate) response against the primary (stable) one, field by
 * field, under a rollout's CompareRules. Pure and synchronous: no I/O, no clocks, no globals.
 *
 * Every compared leaf produces a result, matched or not, because the noise statistics need to know
 * which fields were compared as well as which differed. Results carry a normalised path (array
 * indices replaced by `[*]`) for aggregation and the concrete path for humans.
 */
import type { z } from "zod";
import type { CompareRulesSchema } from "../api/schema.ts";
import { CompiledSchema, compileJsonSchema } from "./json-schema.ts";
import { canonicalJSON, formatNumber, kindOf, preview, roundSignificant, UnparsedBody } from "./json.ts";
import type { Budget } from "./json.ts";
import { ROOT_PATH, keySegment, parseFieldPath } from "./path.ts";
import { jaccardSimilarity, levenshteinDistance, maxDistanceFor } from "./similarity.ts";

/** Rules as the API hands them over after zod parsing (defaults applied). */
export type CompareRules = z.output<typeof CompareRulesSchema>;
/** Rules as written by a user; defaults (status: true, method: jaccard) are applied here too. */
export type CompareRulesInput = z.input<typeof CompareRulesSchema>;

/** One captured HTTP response. `body` is parsed JSON, or the raw text when it was not JSON. */
export interface DiffResponse {
  status: number;
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  body: unknown;
}

/** Which rule decided a field. `limit` marks input the engine refused to walk (too deep, too big). */
export type FieldRule =
  | "equal"
  | "tolerance"
  | "label"
  | "text"
  | "set"
  | "schema"
  | "status"
  | "header"
  | "missing"
  | "type"
  | "limit";

/** The verdict on one field. */
export interface FieldResult {
  /** Normalised path: `$.items[*].score`; `$status`, `$headers.<name>` and `$schema` for non-body checks. */
  path: string;
  /** Concrete path: `$.items[3].score`. */
  concretePath: string;
  match: boolean;
  rule: FieldRule;
  /** Human readable, e.g. `0.91 vs 0.8 differs by 12.1% > 3%`. May contain response data: mask before storing. */
  reason: string;
}

export interface CompareSummary {
  /** True when no field mismatched. */
  matched: boolean;
  /** Number of mismatched field results. */
  mismatches: number;
  /** Distinct normalised paths that mismatched, in the order first seen. */
  mismatchedPaths: string[];
  /** Number of field results (compared fields). */
  fields: number;
}

export interface CompareResult {
  fields: FieldResult[];
  summary: CompareSummary;
}

/** Bounds that make hostile bodies cost a bounded amount of work and never overflow the stack. */
export interface CompareLimits {
  /** Deepest container nesting walked; deeper containers are a `limit` mismatch. */
  maxDepth: number;
  /** Longest array walked. */
  maxArrayLength: number;
  /** Most keys in one object walked. */
  maxObjectKeys: number;
  /** Values visited in one comparison (both bodies, sets and labels included). */
  maxNodes: number;
  /** Longest string compared by a text rule. */
  maxTextLength: number;
  /** Largest banded Levenshtein table (cells) computed for one field. */
  maxLevenshteinCells: number;
  /** Schema errors reported per body. */
  maxSchemaErrors: number;
}

export const DEFAULT_LIMITS: Readonly<CompareLimits> = Object.freeze({
  maxDepth: 64,
  maxArrayLength: 10_000,
  maxObjectKeys: 10_000,
  maxNodes: 200_000,
  maxTextLength: 100_000,
  maxLevenshteinCells: 4_000_000,
  maxSchemaErrors: 5,
});

interface ToleranceRule {
  absolute: number | undefined;
  relative: number | undefined;
  /** Reason of a match, fixed per rule: formatting numbers for every matching field is the engine's largest cost. */
  within: string;
}

interface TextRule {
  minSimilarity: number;
  method: "jaccard" | "levenshtein";
}

/** A node of the rule trie; one per distinct rule-path prefix. */
interface RuleNode {
  keys: Map<string, RuleNode> | undefined;
  indices: Map<number, RuleNode> | undefined;
  any: RuleNode | undefined;
  ignore: boolean;
  tolerance: ToleranceRule | undefined;
  label: boolean;
  text: TextRule | undefined;
  unordered: boolean;
}

const NO_NODES: readonly RuleNode[] = [];

function newNode(): RuleNode {
  return { keys: undefined, indices: undefined, any: undefined, ignore: false, tolerance: undefined, label: false, text: undefined, unordered: false };
}

/**
 * Rules compiled once per rollout: paths parsed into a trie (so per-field lookup costs nothing
 * when no rule is near), header names lower-cased, the output schema compiled.
 */
export class CompiledRules {
  readonly status: boolean;
  readonly headers: readonly string[];
  readonly schema: CompiledSchema | undefined;
  readonly limits: Readonly<CompareLimits>;
  /** @internal */
  readonly root: RuleNode;

  constructor(rules: CompareRulesInput, limits: Partial<CompareLimits>) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.status = rules.status ?? true;
    this.headers = [...new Set((rules.headers ?? []).map((h) => h.toLowerCase()))];
    this.root = newNode();
    for (const p of rules.ignore ?? []) this.#at(p).ignore = true;
    for (const t of rules.tolerances ?? []) {
      // Neither bound set (the CRD's CEL rule forbids it, zod does not) means no difference is accepted.
      const absolute = t.absolute === undefined && t.relative === undefined ? 0 : t.absolute;
      const bounds: string[] = [];
      if (absolute !== undefined) bounds.push(formatNumber(absolute));
      if (t.relative !== undefined) bounds.push(pct(t.relative));
      this.#at(t.path).tolerance = { absolute, relative: t.relative, within: `within ${bounds.join(" or ")}` };
    }
    for (const p of rules.labels ?? []) this.#at(p).label = true;
    for (const t of rules.text ?? []) this.#at(t.path).text = { minSimilarity: t.minSimilarity, method: t.method ?? "jaccard" };
    for (const p of rules.unorderedArrays ?? []) this.#at(p).unordered = true;
    this.schema = rules.outputSchema ? compileOutputSchema(rules.outputSchema, this.limits) : undefined;
  }

  #at(path: string): RuleNode {
    let node = this.root;
    for (const seg of parseFieldPath(path)) {
      if (seg.kind === "key") {
        node.keys ??= new Map();
        let next = node.keys.get(seg.key);
        if (!next) node.keys.set(seg.key, (next = newNode()));
        node = next;
      } else if (seg.kind === "index") {
        node.indices ??= new Map();
        let next = node.indices.get(seg.index);
        if (!next) node.indices.set(seg.index, (next = newNode()));
        node = next;
      } else {
        node = node.any ??= newNode();
      }
    }
    return node;
  }
}

/** Compiles the output schema under the comparison's bounds; errors name the field. */
function compileOutputSchema(schema: unknown, limits: Readonly<CompareLimits>): CompiledSchema {
  try {
    return compileJsonSchema(schema, { maxDepth: limits.maxDepth, maxNodes: limits.maxNodes, maxErrors: limits.maxSchemaErrors });
  } catch (err) {
    throw new Error(`outputSchema ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Compiles rules for repeated use. Throws on malformed rules (a bad field path, an invalid schema
 * pattern) so the caller can report a spec error once.
 */
export function compileRules(rules: CompareRulesInput = {}, limits: Partial<CompareLimits> = {}): CompiledRules {
  return new CompiledRules(rules, limits);
}

// Rules objects are treated as immutable, so compiling once per object is enough for callers that
// pass the same plain object every time (tests, the benchmark). The gateway does not rely on this:
// its rules reach the shadow workers as copies, so it compiles them once per key itself
// (RulesCache in gateway/shadow.ts) and passes CompiledRules.
const compiledCache = new WeakMap<object, CompiledRules>();

function compiled(rules: CompareRulesInput | CompiledRules | undefined): CompiledRules {
  if (rules instanceof CompiledRules) return rules;
  if (rules === undefined) return DEFAULT_RULES;
  let c = compiledCache.get(rules);
  if (!c) {
    c = new CompiledRules(rules, {});
    compiledCache.set(rules, c);
  }
  return c;
}

const DEFAULT_RULES = new CompiledRules({}, {});

/**
 * Compares the primary's response with the shadow's under the rules. Fields without a rule are
 * compared for equality; objects by key, arrays in order unless listed in unorderedArrays.
 * Never throws on any body; throws only if raw (uncompiled) rules are malformed.
 */
export function compare(primary: DiffResponse, shadow: DiffResponse, rules?: CompareRulesInput | CompiledRules): CompareResult {
  const r = compiled(rules);
  const w = new Walker(r);
  if (r.status) {
    const same = primary.status === shadow.status;
    w.push("$status", "$status", same, "status", same ? `both ${primary.status}` : `${primary.status} vs ${shadow.status}`);
  }
  if (r.headers.length > 0) compareHeaders(w, r.headers, primary.headers, shadow.headers);
  // A body the decoder refused (too deep to walk) cannot be judged: one limit mismatch, never a match.
  const unparsed = [primary.body instanceof UnparsedBody ? `primary answer ${primary.body.reason}` : "", shadow.body instanceof UnparsedBody ? `shadow answer ${shadow.body.reason}` : ""].filter((s) => s !== "");
  if (unparsed.length > 0) {
    w.push(ROOT_PATH, ROOT_PATH, false, "limit", unparsed.join("; "));
    return { fields: w.out, summary: w.summary() };
  }
  w.node(primary.body, shadow.body, ROOT_PATH, ROOT_PATH, [r.root], 0);
  if (r.schema) compareSchema(w, r.schema, primary.body, shadow.body);
  return { fields: w.out, summary: w.summary() };
}

/** All values of a header joined as HTTP combines them (a comparison sees every value, not the first). */
function joinedHeaderValue(v: string | readonly string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === "string" ? v : v.join(", ");
}

function pickHeaders(headers: DiffResponse["headers"], wanted: ReadonlySet<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (!wanted.has(lower)) continue;
    const v = joinedHeaderValue(headers[name]);
    if (v === undefined) continue;
    // Two spellings of one header (Content-Type and content-type) are combined as HTTP would.
    const prev = out.get(lower);
    out.set(lower, prev === undefined ? v : `${prev}, ${v}`);
  }
  return out;
}

function compareHeaders(w: Walker, names: readonly string[], a: DiffResponse["headers"], b: DiffResponse["headers"]): void {
  const wanted = new Set(names);
  const ha = pickHeaders(a, wanted);
  const hb = pickHeaders(b, wanted);
  for (const name of names) {
    const path = `$headers${keySegment(name)}`;
    const va = ha.get(name);
    const vb = hb.get(name);
    if (va === vb) {
      w.push(path, path, true, "header", va === undefined ? "absent in both" : "equal");
    } else if (va === undefined || vb === undefined) {
      w.push(path, path, false, "header", va === undefined ? "missing in primary" : "missing in shadow");
    } else {
      w.push(path, path, false, "header", `${preview(va)} vs ${preview(vb)}`);
    }
  }
}

function compareSchema(w: Walker, schema: CompiledSchema, a: unknown, b: unknown): void {
  const ea = schema.validate(a);
  const eb = schema.validate(b);
  const parts: string[] = [];
  if (ea.length > 0) parts.push(`primary invalid: ${ea.join("; ")}`);
  if (eb.length > 0) parts.push(`shadow invalid: ${eb.join("; ")}`);
  w.push("$schema", "$schema", parts.length === 0, "schema", parts.length === 0 ? "both valid" : parts.join(" | "));
}

function childByKey(active: readonly RuleNode[], key: string): readonly RuleNode[] {
  if (active.length === 0) return NO_NODES;
  let out: RuleNode[] | undefined;
  for (const n of active) {
    const c = n.keys?.get(key);
    if (c) (out ??= []).push(c);
  }
  return out ?? NO_NODES;
}

function childByIndex(active: readonly RuleNode[], index: number): readonly RuleNode[] {
  if (active.length === 0) return NO_NODES;
  let out: RuleNode[] | undefined;
  for (const n of active) {
    const c = n.indices?.get(index);
    if (c) (out ??= []).push(c);
    if (n.any) (out ??= []).push(n.any);
  }
  return out ?? NO_NODES;
}

function isIgnored(active: readonly RuleNode[]): boolean {
  for (const n of active) if (n.ignore) return true;
  return false;
}

function pct(x: number): string {
  if (!Number.isFinite(x)) return "∞%";
  return `${roundSignificant(x * 100, 3)}%`;
}

// Bounds are compared with a little slack so 1 vs 1.03 at 3% is not lost to float rounding.
function within(value: number, bound: number): boolean {
  return value <= bound * (1 + 1e-9) + 1e-12;
}

class Walker {
  readonly out: FieldResult[] = [];
  readonly limits: Readonly<CompareLimits>;
  readonly budget: Budget;
  aborted = false;
  mismatches = 0;

  constructor(rules: CompiledRules) {
    this.limits = rules.limits;
    this.budget = { nodes: rules.limits.maxNodes };
  }

  push(path: string, concretePath: string, match: boolean, rule: FieldRule, reason: string): void {
    if (!match) this.mismatches++;
    this.out.push({ path, concretePath, match, rule, reason });
  }

  summary(): CompareSummary {
    const seen = new Set<string>();
    const paths: string[] = [];
    if (this.mismatches > 0) {
      for (const f of this.out) {
        if (!f.match && !seen.has(f.path)) {
          seen.add(f.path);
          paths.push(f.path);
        }
      }
    }
    return { matched: this.mismatches === 0, mismatches: this.mismatches, mismatchedPaths: paths, fields: this.out.length };
  }

  /** Records a limit once and stops the walk; a cut-short comparison must never read as a match. */
  exhausted(norm: string, path: string): boolean {
    if (this.budget.nodes >= 0) return false;
    if (!this.aborted) {
      this.aborted = true;
      this.push(norm, path, false, "limit", `more than ${this.limits.maxNodes} values to compare`);
    }
    return true;
  }

  node(a: unknown, b: unknown, path: string, norm: string, active: readonly RuleNode[], depth: number): void {
    if (this.aborted) return;
    this.budget.nodes--;
    if (this.exhausted(norm, path)) return;

    let unordered = false;
    let label = false;
    if (active.length > 0) {
      let tolerance: ToleranceRule | undefined;
      let text: TextRule | undefined;
      for (const n of active) {
        if (n.ignore) return;
        tolerance ??= n.tolerance;
        text ??= n.text;
        label ||= n.label;
        unordered ||= n.unordered;
      }
      if (tolerance) return this.tolerance(a, b, path, norm, tolerance, depth);
      if (text) return this.text(a, b, path, norm, text, depth);
    }

    const ka = kindOf(a);
    const kb = kindOf(b);
    if (ka !== kb) {
      this.push(norm, path, false, label ? "label" : "type", `${ka} ${preview(a)} vs ${kb} ${preview(b)}`);
      return;
    }
    if (ka === "array" && unordered) return this.set(a as readonly unknown[], b as readonly unknown[], path, norm, active, depth);
    if (label) return this.label(a, b, path, norm, depth);
    if (ka === "object") return this.object(a as Readonly<Record<string, unknown>>, b as Readonly<Record<string, unknown>>, path, norm, active, depth);
    if (ka === "array") return this.array(a as readonly unknown[], b as readonly unknown[], path, norm, active, depth);
    // Same kind, a primitive: numbers, strings, booleans, null.
    if (a === b || (ka === "other" && Object.is(a, b))) {
      this.push(norm, path, true, "equal", "equal");
    } else {
      this.push(norm, path, false, "equal", `${preview(a)} vs ${preview(b)}`);
    }
  }

  object(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>, path: string, norm: string, active: readonly RuleNode[], depth: number): void {
    if (depth >= this.limits.maxDepth) {
      this.push(norm, path, false, "limit", `nested deeper than ${this.limits.maxDepth} levels`);
      return;
    }
    const keysA = Object.keys(a);
    const keysB = Object.keys(b);
    if (keysA.length > this.limits.maxObjectKeys || keysB.length > this.limits.maxObjectKeys) {
      this.push(norm, path, false, "limit", `object has ${Math.max(keysA.length, keysB.length)} keys > ${this.limits.maxObjectKeys}`);
      return;
    }
    let shared = 0;
    for (const k of keysA) {
      if (this.aborted) return;
      const seg = keySegment(k);
      const childActive = childByKey(active, k);
      // hasOwn, never `k in b` or b[k] alone: "__proto__" or "constructor" missing from b would
      // otherwise find Object.prototype members.
      if (Object.hasOwn(b, k)) {
        shared++;
        this.node(a[k], b[k], path + seg, norm + seg, childActive, depth + 1);
      } else if (!isIgnored(childActive)) {
        this.missing(path + seg, norm + seg, "missing in shadow");
      }
    }
    // Every key of b was seen above: the usual case, and the second pass can be skipped.
    if (shared === keysB.length) return;
    for (const k of keysB) {
      if (this.aborted) return;
      if (Object.hasOwn(a, k)) continue;
      const seg = keySegment(k);
      if (!isIgnored(childByKey(active, k))) this.missing(path + seg, norm + seg, "missing in primary");
    }
  }

  array(a: readonly unknown[], b: readonly unknown[], path: string, norm: string, active: readonly RuleNode[], depth: number): void {
    if (depth >= this.limits.maxDepth) {
      this.push(norm, path, false, "limit", `nested deeper than ${this.limits.maxDepth} levels`);
      return;
    }
    if (a.length > this.limits.maxArrayLength || b.length > this.limits.maxArrayLength) {
      this.push(norm, path, false, "limit", `array has ${Math.max(a.length, b.length)} elements > ${this.limits.maxArrayLength}`);
      return;
    }
    const childNorm = `${norm}[*]`;
    const common = Math.min(a.length, b.length);
    for (let i = 0; i < common; i++) {
      if (this.aborted) return;
      this.node(a[i], b[i], `${path}[${i}]`, childNorm, childByIndex(active, i), depth + 1);
    }
    const longer = a.length > b.length ? a : b;
    const reason = a.length > b.length ? "missing in shadow" : "missing in primary";
    for (let i = common; i < longer.length; i++) {
      if (this.aborted) return;
      if (!isIgnored(childByIndex(active, i))) this.missing(`${path}[${i}]`, childNorm, reason);
    }
  }

  missing(path: string, norm: string, reason: string): void {
    this.budget.nodes--;
    if (this.exhausted(norm, path)) return;
    this.push(norm, path, false, "missing", reason);
  }

  tolerance(a: unknown, b: unknown, path: string, norm: string, t: ToleranceRule, depth: number): void {
    if (typeof a !== "number" || typeof b !== "number") {
      if (this.sameValue(a, b, path, norm, depth)) return;
      this.push(norm, path, false, "type", `tolerance needs numbers: ${kindOf(a)} ${preview(a)} vs ${kindOf(b)} ${preview(b)}`);
      return;
    }
    const diff = Math.abs(a - b);
    // Relative to the primary's value: the stable answer is the reference the candidate is judged by.
    const rel = diff === 0 ? 0 : a === 0 ? Infinity : diff / Math.abs(a);
    const absOk = t.absolute !== undefined && within(diff, t.absolute);
    const relOk = t.relative !== undefined && within(rel, t.relative);
    if (diff === 0) {
      this.push(norm, path, true, "tolerance", "equal");
    } else if (absOk || relOk) {
      this.push(norm, path, true, "tolerance", t.within);
    } else {
      // A mismatch exceeds every bound; spell them all out with the measured difference.
      const bounds: string[] = [];
      if (t.absolute !== undefined) bounds.push(`${formatNumber(diff)} > ${formatNumber(t.absolute)}`);
      if (t.relative !== undefined) bounds.push(`${pct(rel)} > ${pct(t.relative)}`);
      this.push(norm, path, false, "tolerance", `${formatNumber(a)} vs ${formatNumber(b)} differs by ${bounds.join(" and ")}`);
    }
  }

  text(a: unknown, b: unknown, path: string, norm: string, t: TextRule, depth: number): void {
    if (typeof a !== "string" || typeof b !== "string") {
      if (this.sameValue(a, b, path, norm, depth)) return;
      this.push(norm, path, false, "type", `text rule needs strings: ${kindOf(a)} ${preview(a)} vs ${kindOf(b)} ${preview(b)}`);
      return;
    }
    if (a === b) {
      this.push(norm, path, true, "text", "equal");
      return;
    }
    const max = this.limits.maxTextLength;
    if (a.length > max || b.length > max) {
      this.push(norm, path, false, "limit", `text longer than ${max} characters`);
      return;
    }
    const min = t.minSimilarity;
    const minText = min.toFixed(2);
    if (t.method === "jaccard") {
      const sim = jaccardSimilarity(a, b);
      const ok = sim >= min;
      this.push(norm, path, ok, "text", `jaccard similarity ${sim.toFixed(2)} ${ok ? ">=" : "<"} ${minText}`);
      return;
    }
    const longest = Math.max(a.length, b.length);
    const k = maxDistanceFor(min, longest);
    // The banded table is about (2k + 1) cells per row of the shorter text.
    if ((2 * k + 1) * Math.min(a.length, b.length) > this.limits.maxLevenshteinCells) {
      this.push(norm, path, false, "limit", `text too long for levenshtein at minSimilarity ${minText}`);
      return;
    }
    const d = levenshteinDistance(a, b, k);
    if (d <= k) {
      this.push(norm, path, true, "text", `levenshtein similarity ${(1 - d / longest).toFixed(2)} >= ${minText}`);
    } else {
      this.push(norm, path, false, "text", `levenshtein similarity < ${minText} (more than ${k} edits)`);
    }
  }

  /**
   * For a tolerance or text rule meeting values it cannot judge (null, objects): equal values on
   * both sides are a match, since the candidate answered exactly as the stable did. Returns true
   * when it recorded a result (a match, or a limit for values too deep or too big to compare).
   */
  sameValue(a: unknown, b: unknown, path: string, norm: string, depth: number): boolean {
    if (kindOf(a) !== kindOf(b)) return false;
    const ca = canonicalJSON(a, this.limits.maxDepth - depth, this.budget);
    const cb = ca === undefined ? undefined : canonicalJSON(b, this.limits.maxDepth - depth, this.budget);
    if (ca === undefined || cb === undefined) {
      if (!this.exhausted(norm, path)) this.push(norm, path, false, "limit", `nested deeper than ${this.limits.maxDepth} levels`);
      return true;
    }
    if (ca !== cb) return false;
    this.push(norm, path, true, "equal", "equal");
    return true;
  }

  label(a: unknown, b: unknown, path: string, norm: string, depth: number): void {
    if (a === b) {
      this.push(norm, path, true, "label", "equal");
      return;
    }
    const k = kindOf(a);
    if (k !== "object" && k !== "array") {
      this.push(norm, path, false, "label", `${preview(a)} vs ${preview(b)}`);
      return;
    }
    const ca = canonicalJSON(a, this.limits.maxDepth - depth, this.budget);
    const cb = ca === undefined ? undefined : canonicalJSON(b, this.limits.maxDepth - depth, this.budget);
    if (ca === undefined || cb === undefined) {
      if (!this.exhausted(norm, path)) this.push(norm, path, false, "limit", `nested deeper than ${this.limits.maxDepth} levels`);
      return;
    }
    this.push(norm, path, ca === cb, "label", ca === cb ? "equal" : `${preview(a)} vs ${preview(b)} differ`);
  }

  set(a: readonly unknown[], b: readonly unknown[], path: string, norm: string, active: readonly RuleNode[], depth: number): void {
    if (a.length > this.limits.maxArrayLength || b.length > this.limits.maxArrayLength) {
      this.push(norm, path, false, "limit", `array has ${Math.max(a.length, b.length)} elements > ${this.limits.maxArrayLength}`);
      return;
    }
    const counts = new Map<string, number>();
    const firstA = new Map<string, unknown>();
    for (let i = 0; i < a.length; i++) {
      const c = this.elementKey(a[i], childByIndex(active, i), depth + 1);
      if (c === undefined) return this.canonFailed(norm, path);
      counts.set(c, (counts.get(c) ?? 0) + 1);
      if (!firstA.has(c)) firstA.set(c, a[i]);
    }
    let onlyB = 0;
    let exampleB: unknown;
    for (let i = 0; i < b.length; i++) {
      const c = this.elementKey(b[i], childByIndex(active, i), depth + 1);
      if (c === undefined) return this.canonFailed(norm, path);
      const n = counts.get(c) ?? 0;
      if (n > 0) {
        counts.set(c, n - 1);
      } else {
        if (onlyB === 0) exampleB = b[i];
        onlyB++;
      }
    }
    let onlyA = 0;
    let exampleA: unknown;
    for (const [c, n] of counts) {
      if (n > 0 && onlyA === 0) exampleA = firstA.get(c);
      onlyA += n;
    }
    if (onlyA === 0 && onlyB === 0) {
      this.push(norm, path, true, "set", `same ${a.length} elements`);
      return;
    }
    const parts: string[] = [];
    if (onlyA > 0) parts.push(`${onlyA} only in primary (e.g. ${preview(exampleA)})`);
    if (onlyB > 0) parts.push(`${onlyB} only in shadow (e.g. ${preview(exampleB)})`);
    this.push(norm, path, false, "set", parts.join(", "));
  }

  canonFailed(norm: string, path: string): void {
    if (!this.exhausted(norm, path)) this.push(norm, path, false, "limit", `set elements nested deeper than ${this.limits.maxDepth} levels`);
  }

  /**
   * Canonical text of a set element that honours ignore paths and nested unordered arrays inside
   * it. Tolerance and text rules do not apply inside sets: elements are matched exactly.
   */
  /** The multiset key of one set element. */
  elementKey(v: unknown, active: readonly RuleNode[], depth: number): string | undefined {
    // Sets of plain strings (tags, labels) are the common case. No canonical text starts with a
    // quote mark, so the raw string behind one is an unambiguous key without escaping. Only at the
    // top of an element: nested inside an array's canonical text it would be ambiguous.
    if (typeof v === "string" && active.length === 0) {
      this.budget.nodes--;
      return `'${v}`;
    }
    return this.canon(v, active, depth);
  }

  canon(v: unknown, active: readonly RuleNode[], depth: number): string | undefined {
    if (active.length === 0) return canonicalJSON(v, this.limits.maxDepth - depth, this.budget);
    if (isIgnored(active)) return "~";
    if (--this.budget.nodes < 0) return undefined;
    const k = kindOf(v);
    if (k === "object") {
      if (depth >= this.limits.maxDepth) return undefined;
      const o = v as Readonly<Record<string, unknown>>;
      const parts: string[] = [];
      for (const key of Object.keys(o).sort()) {
        const childActive = childByKey(active, key);
        if (isIgnored(childActive)) continue;
        const c = this.canon(o[key], childActive, depth + 1);
        if (c === undefined) return undefined;
        parts.push(`${JSON.stringify(key)}:${c}`);
      }
      return `{${parts.join(",")}}`;
    }
    if (k === "array") {
      if (depth >= this.limits.maxDepth) return undefined;
      const arr = v as readonly unknown[];
      const parts: string[] = [];
      for (let i = 0; i < arr.length; i++) {
        const c = this.canon(arr[i], childByIndex(active, i), depth + 1);
        if (c === undefined) return undefined;
        parts.push(c);
      }
      if (active.some((n) => n.unordered)) parts.sort();
      return `[${parts.join(",")}]`;
    }
    return canonicalJSON(v, 1, this.budget);
  }
}
