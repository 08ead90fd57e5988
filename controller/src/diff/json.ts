/**
 * Small helpers over untrusted JSON values shared by the diff engine and the schema validator.
 *
 * Everything here must stay safe on hostile input: recursion is bounded by an explicit depth and a
 * node budget, and keys are only ever read (Object.keys / Object.hasOwn), never assigned into
 * plain objects, so `__proto__`, `constructor` and `prototype` behave like any other key.
 */

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
