/**
 * Small pure helpers for requests and answers: content types, correlation ids, usage reporting,
 * payload fingerprints.
 */
import { createHash, randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { jsonNestingDepth, maskPII, parseFieldPath, UnparsedBody, type PathSegment } from "../diff/index.ts";

/** application/json, or a structured +json type (application/vnd.github+json), any parameters. */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const type = value.split(";", 1)[0]!.trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

const REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/**
 * The correlation id of a request: the sender's x-request-id when it is a sane token, otherwise
 * a new UUID (an id with spaces or 10 KB of text would pollute every log line and backend). The
 * id lands unmasked on every log line, quarantine row and answer, so one that the PII rules
 * would mask (an email address, a phone number) is replaced too.
 */
export function acceptRequestId(header: string | string[] | undefined): string {
  const v = Array.isArray(header) ? header[0] : header;
  return v !== undefined && REQUEST_ID.test(v) && maskPII(v) === v ? v : randomUUID();
}

/**
 * Deepest JSON nesting decoded for diffing. JSON.parse itself copes with any depth, but everything
 * that walks the result (diff, schema, samples) recurses; past this depth the body stays text. Far
 * above any real answer's nesting and far below what overflows a thread's stack.
 */
export const MAX_DECODE_DEPTH = 1000;

/**
 * A backend's answer body for diffing: parsed JSON when it is JSON, its text otherwise, and an
 * UnparsedBody (compared as a limit mismatch) when it nests deeper than MAX_DECODE_DEPTH.
 */
export function decodeBody(body: Buffer, contentType: string | undefined): unknown {
  const text = body.toString("utf8");
  if (isJsonContentType(contentType) || (contentType === undefined && /^\s*[[{]/.test(text))) {
    // Measured before parsing, by a scan without recursion: a parsed 100,000-deep value is already
    // a trap for the first recursive walker that meets it.
    if (jsonNestingDepth(text, MAX_DECODE_DEPTH) > MAX_DECODE_DEPTH) return new UnparsedBody(`nested deeper than ${MAX_DECODE_DEPTH} levels`, text);
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** Usage a backend reported for one request. */
export interface Usage {
  tokens: number | undefined;
  cost: number | undefined;
}

/** Where usage is read from (spec.traffic.usage), compiled once per rollout. */
export interface UsageSource {
  tokensHeader: string;
  costHeader: string;
  tokensPath: PathSegment[];
  costPath: PathSegment[];
  /** `"<first key>"` of each path: a body mentioning neither is not parsed. */
  needles: string[];
}

/** Compiles spec.traffic.usage (defaults when absent). Throws naming a bad path. */
export function compileUsage(u: { tokensHeader?: string; costHeader?: string; tokensPath?: string; costPath?: string } = {}): UsageSource {
  const tokensPath = parseFieldPath(u.tokensPath ?? "$.usage.total_tokens");
  const costPath = parseFieldPath(u.costPath ?? "$.usage.cost");
  const needles = new Set<string>();
  for (const p of [tokensPath, costPath]) {
    const first = p.find((s) => s.kind === "key");
    if (first?.kind === "key") needles.add(JSON.stringify(first.key));
  }
  return { tokensHeader: (u.tokensHeader ?? "x-airollout-tokens").toLowerCase(), costHeader: (u.costHeader ?? "x-airollout-cost").toLowerCase(), tokensPath, costPath, needles: [...needles] };
}

export const DEFAULT_USAGE: UsageSource = compileUsage();

function nonNegative(v: unknown): number | undefined {
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** The first value of a header (names lower-case, as Node gives them). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Most values a `[*]` usage path sums (a hostile answer cannot make this walk unbounded). */
const MAX_USAGE_VALUES = 10_000;

/** The number at a path, or the sum of the numbers a `[*]` path matches; undefined when none. */
/** The number at a field path of a parsed JSON answer ([*] sums the matches); negatives and non-numbers are ignored. */
export function numberAt(value: unknown, path: readonly PathSegment[]): number | undefined {
  let sum: number | undefined;
  let visited = 0;
  const walk = (v: unknown, i: number): void => {
    if (visited++ > MAX_USAGE_VALUES) return;
    if (i === path.length) {
      const n = nonNegative(v);
      if (n !== undefined) sum = (sum ?? 0) + n;
      return;
    }
    const seg = path[i]!;
    if (seg.kind === "key") {
      if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.hasOwn(v, seg.key)) walk((v as Record<string, unknown>)[seg.key], i + 1);
    } else if (Array.isArray(v)) {
      if (seg.kind === "index") {
        if (seg.index < v.length) walk(v[seg.index], i + 1);
      } else {
        for (const item of v) walk(item, i + 1);
      }
    }
  };
  walk(value, 0);
  return sum;
}

/**
 * Usage of one answer: the tokens/cost response headers win; else the configured paths of a JSON
 * body. Negative, non-numeric and non-finite values are ignored.
 */
export function extractUsage(headers: IncomingHttpHeaders, body: Buffer, source: UsageSource = DEFAULT_USAGE): Usage {
  let tokens = nonNegative(headerValue(headers, source.tokensHeader));
  let cost = nonNegative(headerValue(headers, source.costHeader));
  if (tokens !== undefined && cost !== undefined) return { tokens, cost };
  // Parsing every answer to look for usage would double the JSON work; only bodies that mention a
  // path's first key are parsed.
  if (!isJsonContentType(headerValue(headers, "content-type")) || !source.needles.some((n) => body.indexOf(n) >= 0)) return { tokens, cost };
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return { tokens, cost };
  }
  tokens ??= numberAt(value, source.tokensPath);
  cost ??= numberAt(value, source.costPath);
  return { tokens, cost };
}

/** Identifies a payload for idempotency: a key reused with a different payload is refused. */
export function fingerprint(method: string, path: string, body: Buffer): string {
  return createHash("sha256").update(method).update("\u0000").update(path).update("\u0000").update(body).digest("hex");
}

/**
 * The offset of the first byte that does not start a well-formed UTF-8 sequence (overlong forms,
 * surrogates and code points past U+10FFFF included), or -1 when all of it is UTF-8. Only used to
 * name where a body node:buffer's isUtf8 refused goes wrong.
 */
export function invalidUtf8Offset(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const x = b[i]!;
    if (x < 0x80) {
      i++;
      continue;
    }
    const more = x >= 0xc2 && x <= 0xdf ? 1 : x >= 0xe0 && x <= 0xef ? 2 : x >= 0xf0 && x <= 0xf4 ? 3 : 0;
    if (more === 0) return i;
    // The second byte's range excludes overlong forms (E0, F0), surrogates (ED) and > U+10FFFF (F4).
    const lo = x === 0xe0 ? 0xa0 : x === 0xf0 ? 0x90 : 0x80;
    const hi = x === 0xed ? 0x9f : x === 0xf4 ? 0x8f : 0xbf;
    const second = b[i + 1];
    if (second === undefined || second < lo || second > hi) return i;
    for (let k = 2; k <= more; k++) {
      const next = b[i + k];
      if (next === undefined || (next & 0xc0) !== 0x80) return i;
    }
    i += more + 1;
  }
  return -1;
}
