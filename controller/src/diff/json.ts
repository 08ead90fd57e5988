/**
 * Small helpers over untrusted JSON values shared by the diff engine and the schema validator.
 *
 * Everything here must stay safe on hostile input: recursion is bounded by an explicit depth and a
 * node budget, and keys are only ever read (Object.keys / Object.hasOwn), never assigned into
 * plain objects, so `__proto__`, `constructor` and `prototype` behave like any other key.
 */
import { keySegment } from "./path.ts";

/** The JSON type of a value as the diff engine reports it. */
export type JsonKind = "null" | "array" | "object" | "string" | "number" | "boolean" | "undefined" | "other";

/** Returns the JSON kind of a value; arrays and null are told apart from objects. */
export function kindOf(value: unknown): JsonKind {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return "string";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "undefined":
      return "undefined";
    case "object":
      return Array.isArray(value) ? "array" : "object";
    default:
      // bigint, symbol, function: never produced by JSON.parse, compared by identity.
      return "other";
  }
}

/** A mutable countdown shared by one traversal so total work stays bounded across helpers. */
export interface Budget {
  nodes: number;
}

/**
 * Canonical JSON text of a value with object keys sorted, for order-insensitive equality and
 * hashing. Returns undefined when the value is nested deeper than maxDepth or the budget runs out,
 * so callers can report a limit instead of overflowing the stack.
 */
export function canonicalJSON(value: unknown, maxDepth: number, budget: Budget): string | undefined {
  return canon(value, 0, maxDepth, budget);
}

function canon(value: unknown, depth: number, maxDepth: number, budget: Budget): string | undefined {
  if (--budget.nodes < 0) return undefined;
  switch (kindOf(value)) {
    case "null":
      return "null";
    case "string":
      return JSON.stringify(value);
    case "number":
    case "boolean":
      return String(value);
    case "undefined":
      return "undefined";
    case "array": {
      if (depth >= maxDepth) return undefined;
      const arr = value as readonly unknown[];
      const parts: string[] = [];
      for (let i = 0; i < arr.length; i++) {
        const c = canon(arr[i], depth + 1, maxDepth, budget);
        if (c === undefined) return undefined;
        parts.push(c);
      }
      return `[${parts.join(",")}]`;
    }
    case "object": {
      if (depth >= maxDepth) return undefined;
      const obj = value as Readonly<Record<string, unknown>>;
      const keys = Object.keys(obj).sort();
      const parts: string[] = [];
      for (const k of keys) {
        const c = canon(obj[k], depth + 1, maxDepth, budget);
        if (c === undefined) return undefined;
        parts.push(`${JSON.stringify(k)}:${c}`);
      }
      return `{${parts.join(",")}}`;
    }
    default:
      return String(value);
  }
}

const PREVIEW_CHARS = 60;

/**
 * A short human readable rendering of a value for mismatch reasons. Containers are summarised
 * rather than serialised because reasons are built on the hot path and may hold hostile data.
 */
export function preview(value: unknown): string {
  switch (kindOf(value)) {
    case "string": {
      const s = value as string;
      return JSON.stringify(s.length > PREVIEW_CHARS ? `${s.slice(0, PREVIEW_CHARS)}…` : s);
    }
    case "number":
      return formatNumber(value as number);
    case "array":
      return `array(${(value as readonly unknown[]).length})`;
    case "object":
      return `object(${Object.keys(value as object).length} keys)`;
    default:
      return String(value);
  }
}

/** Formats a number with six significant digits (integer digits kept), the precision reasons need. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n) || Number.isInteger(n)) return String(n);
  return String(roundSignificant(n, 6));
}

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

/**
 * Rounds to `digits` significant digits, except that integer digits are never dropped (123456789.5
 * becomes 123456790): reasons should not print a big count as 123457000. Reasons are built for every tolerance field on the hot
 * path, and Number.prototype.toPrecision is several times slower than this arithmetic.
 */
export function roundSignificant(n: number, digits: number): number {
  const a = Math.abs(n);
  if (a === 0 || !Number.isFinite(a)) return n;
  const decimals = digits - 1 - Math.floor(Math.log10(a));
  if (decimals <= 0) return Math.round(n);
  const f = POW10[decimals];
  return f === undefined ? Number(n.toPrecision(digits)) : Math.round(n * f) / f;
}

/**
 * The deepest nesting of arrays and objects in JSON text, found by scanning characters (brackets
 * outside strings count) without parsing or recursion. Stops at the first container deeper than
 * `limit` and returns limit + 1, so measuring a hostile body costs one pass at most. Malformed text
 * is measured as far as it goes; JSON.parse judges it afterwards.
 */
export function jsonNestingDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return limit + 1;
      }
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

/** The size of a parsed value, as measured by measureValue. */
export interface ValueSize {
  /** Nesting of containers: a scalar is 0, `[]` and `{"a": 1}` are 1. */
  depth: number;
  /** Values, containers included. */
  nodes: number;
  /** Elements of the longest array. */
  longestArray: number;
}

/**
 * Measures a parsed value with an explicit stack rather than recursion. Returns undefined when the
 * value is deeper than `maxDepth` or has more than `maxNodes` values, so a caller can refuse it
 * before handing it to a recursive routine.
 */
export function measureValue(value: unknown, maxDepth: number, maxNodes: number): ValueSize | undefined {
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 0 }];
  const size: ValueSize = { depth: 0, nodes: 0, longestArray: 0 };
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (++size.nodes > maxNodes) return undefined;
    if (v === null || typeof v !== "object") continue;
    const depth = d + 1;
    if (depth > maxDepth) return undefined;
    if (depth > size.depth) size.depth = depth;
    const children = Array.isArray(v) ? v : Object.values(v as object);
    if (Array.isArray(v) && v.length > size.longestArray) size.longestArray = v.length;
    // More children than the node budget allows can only end in refusal: no need to push them.
    if (size.nodes + stack.length + children.length > maxNodes) return undefined;
    for (const c of children) stack.push({ v: c, d: depth });
  }
  return size;
}

/** Bounds of boundedJSON. */
export interface SerializeLimits {
  /** Containers nested deeper than this are written as `[…]` or `{…}`. */
  maxDepth: number;
  /** Characters written before the text is cut (the result may run a few characters over). */
  maxChars: number;
}

/**
 * JSON text of a value for humans (diff samples), in the value's own key order, bounded in depth
 * and length: JSON.stringify recurses without limit and overflows the stack on a deeply nested
 * answer, and serialises megabytes only to have them cut. `truncated` tells whether anything was
 * left out (containers past maxDepth, or text past maxChars).
 */
export function boundedJSON(value: unknown, limits: SerializeLimits): { text: string; truncated: boolean } {
  const out: string[] = [];
  // `cut`: the length ran out and writing stopped; `elided`: deep containers were summarised.
  const state = { chars: 0, cut: false, elided: false };
  const write = (s: string): boolean => {
    out.push(s);
    state.chars += s.length;
    if (state.chars > limits.maxChars) state.cut = true;
    return !state.cut;
  };
  const walk = (v: unknown, depth: number): boolean => {
    switch (kindOf(v)) {
      case "string": {
        // Only the part that can fit is escaped: a 10 MB string costs no more than a short one.
        const str = v as string;
        return write(JSON.stringify(str.length > limits.maxChars ? str.slice(0, limits.maxChars + 1) : str));
      }
      case "number":
        return write(Number.isFinite(v) ? String(v) : "null");
      case "boolean":
      case "null":
        return write(String(v));
      case "array": {
        if (depth >= limits.maxDepth) {
          state.elided = true;
          return write("[…]");
        }
        const arr = v as readonly unknown[];
        if (!write("[")) return false;
        for (let i = 0; i < arr.length; i++) {
          if (i > 0 && !write(",")) return false;
          if (!walk(arr[i], depth + 1)) return false;
        }
        return write("]");
      }
      case "object": {
        if (depth >= limits.maxDepth) {
          state.elided = true;
          return write("{…}");
        }
        const obj = v as Readonly<Record<string, unknown>>;
        if (!write("{")) return false;
        let first = true;
        for (const k of Object.keys(obj)) {
          if (obj[k] === undefined) continue;
          if (!first && !write(",")) return false;
          first = false;
          if (!write(`${JSON.stringify(k)}:`) || !walk(obj[k], depth + 1)) return false;
        }
        return write("}");
      }
      default:
        // undefined, functions, symbols, bigints: never produced by JSON.parse.
        return write("null");
    }
  };
  walk(value, 0);
  const text = out.join("");
  return { text: text.length > limits.maxChars ? text.slice(0, limits.maxChars) : text, truncated: state.cut || state.elided };
}

/**
 * A JSON body that was deliberately not parsed because it is nested deeper than any routine here
 * may walk. The diff engine compares it as a `limit` mismatch (never a match, never a crash) and
 * samples show its text.
 */
export class UnparsedBody {
  /** Why it was not parsed, e.g. `nested deeper than 1000 levels`. */
  readonly reason: string;
  /** The raw text, for samples. */
  readonly text: string;

  constructor(reason: string, text: string) {
    this.reason = reason;
    this.text = text;
  }
}

/** The first structural problem scanJsonStructure found in a JSON text. */
export type JsonStructureProblem =
  /** A container nested deeper than the limit; `path` is where it starts. */
  | { kind: "too_deep"; limit: number; path: string }
  /** An object key that appears twice in one object; `path` is the repeated member's. */
  | { kind: "duplicate_key"; path: string; key: string };

/** What scanJsonStructure looks for. */
export interface JsonStructureLimits {
  /** Deepest nesting of containers allowed: `{}` and `[]` are depth 1. */
  maxDepth: number;
  /** Whether a key repeated within one object is a problem. */
  duplicateKeys: boolean;
}

/** One open container while scanning: an object (with its keys so far) or an array. */
interface ScanFrame {
  object: boolean;
  /** Keys seen in this object (decoded); undefined for arrays and when duplicates are allowed. */
  keys: Set<string> | undefined;
  /** The key of the member being read (objects). */
  key: string;
  /** Index of the element being read (arrays); -1 before the first. */
  index: number;
  /** Objects: the next string is a key. Arrays: the next value starts a new element. */
  expectKey: boolean;
}

const WS_SPACE = 0x20;
const WS_TAB = 0x09;
const WS_LF = 0x0a;
const WS_CR = 0x0d;

/**
 * One pass over JSON text, without recursion, that finds what JSON.parse hides: containers nested
 * deeper than `maxDepth` (the scan stops there, so a 100,000-deep body costs maxDepth frames) and
 * keys repeated within one object (JSON.parse keeps the last, other parsers the first, so a
 * backend could act on a value nobody validated). Keys are compared decoded: `"a"` and
 * `"\u0061"` are the same key. Malformed text is scanned as far as it goes and judged by
 * JSON.parse afterwards; a duplicate found in it means nothing then.
 */
export function scanJsonStructure(text: string, limits: JsonStructureLimits): JsonStructureProblem | undefined {
  const stack: ScanFrame[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === WS_SPACE || c === WS_LF || c === WS_CR || c === WS_TAB || c === 0x3a /* : */) {
      i++;
    } else if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      if (end < 0) return undefined;
      const top = stack.at(-1);
      if (top?.object && top.expectKey) {
        const problem = readKey(stack, top, text.slice(i + 1, end));
        if (problem !== undefined) return problem === "malformed" ? undefined : problem;
      } else if (top) {
        beginValue(top);
      }
      i = end + 1;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const top = stack.at(-1);
      if (top) beginValue(top);
      if (stack.length + 1 > limits.maxDepth) return { kind: "too_deep", limit: limits.maxDepth, path: scanPath(stack) };
      const object = c === 0x7b;
      stack.push({ object, keys: object && limits.duplicateKeys ? new Set() : undefined, key: "", index: -1, expectKey: true });
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (stack.pop() === undefined) return undefined;
      i++;
    } else if (c === 0x2c /* , */) {
      const top = stack.at(-1);
      if (top) top.expectKey = true;
      i++;
    } else {
      // A number, true, false or null (or junk for JSON.parse to refuse): one element.
      const top = stack.at(-1);
      if (top) beginValue(top);
      i = scalarEnd(text, i);
    }
  }
  return undefined;
}

/** The index of the quote closing the string that opens at `start`; -1 when it never closes. */
function stringEnd(text: string, start: number): number {
  let j = start;
  for (;;) {
    j = text.indexOf('"', j + 1);
    if (j < 0) return -1;
    // Escaped when preceded by an odd number of backslashes.
    let backslashes = 0;
    for (let k = j - 1; k > start && text.charCodeAt(k) === 0x5c; k--) backslashes++;
    if (backslashes % 2 === 0) return j;
  }
}

/** The index just past a scalar token (up to the next structural character or whitespace). */
function scalarEnd(text: string, start: number): number {
  let j = start + 1;
  for (; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x2c || c === 0x7d || c === 0x5d || c === 0x3a || c === 0x22 || c === 0x7b || c === 0x5b || c === WS_SPACE || c === WS_LF || c === WS_CR || c === WS_TAB) break;
  }
  return j;
}

/** A value starts in `frame`: in an array it is the next element. */
function beginValue(frame: ScanFrame): void {
  if (!frame.object && frame.expectKey) {
    frame.index++;
    frame.expectKey = false;
  }
}

/** Records an object key (raw text between the quotes); a repeat is a problem, a bad escape malformed. */
function readKey(stack: readonly ScanFrame[], frame: ScanFrame, raw: string): JsonStructureProblem | "malformed" | undefined {
  let key = raw;
  if (raw.includes("\\")) {
    try {
      key = JSON.parse(`"${raw}"`) as string;
    } catch {
      return "malformed";
    }
  }
  frame.key = key;
  frame.expectKey = false;
  if (!frame.keys) return undefined;
  if (frame.keys.has(key)) return { kind: "duplicate_key", key, path: scanPath(stack) };
  frame.keys.add(key);
  return undefined;
}

/** The path of the value being read in the innermost open container, as `$.a[2]["b c"]`. */
function scanPath(stack: readonly ScanFrame[]): string {
  let path = "$";
  for (const f of stack) path += f.object ? keySegment(f.key) : `[${Math.max(0, f.index)}]`;
  return path;
}
