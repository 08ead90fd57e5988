/**
 * Small pure helpers for requests and answers: content types, correlation ids, usage reporting,
 * payload fingerprints.
 */
import { createHash, randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

/** application/json, or a structured +json type (application/vnd.github+json), any parameters. */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const type = value.split(";", 1)[0]!.trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

const REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/**
 * The correlation id of a request: the sender's x-request-id when it is a sane token, otherwise
 * a new UUID (an id with spaces or 10 KB of text would pollute every log line and backend).
 */
export function acceptRequestId(header: string | string[] | undefined): string {
  const v = Array.isArray(header) ? header[0] : header;
  return v !== undefined && REQUEST_ID.test(v) ? v : randomUUID();
}

/** A backend's answer body for diffing: parsed JSON when it is JSON, its text otherwise. */
export function decodeBody(body: Buffer, contentType: string | undefined): unknown {
  const text = body.toString("utf8");
  if (isJsonContentType(contentType) || (contentType === undefined && /^\s*[[{]/.test(text))) {
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

function nonNegative(v: unknown): number | undefined {
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) && n >= 0 ? n : undefined;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Usage of one answer: the `x-airollout-tokens` / `x-airollout-cost` response headers win; else
 * `$.usage.total_tokens` / `$.usage.cost` of a JSON body. `parsed` is the decoded body when the
 * caller already has it. Negative, non-numeric and non-finite values are ignored.
 */
export function extractUsage(headers: IncomingHttpHeaders, body: Buffer, parsed?: unknown): Usage {
  let tokens = nonNegative(header(headers, "x-airollout-tokens"));
  let cost = nonNegative(header(headers, "x-airollout-cost"));
  if (tokens !== undefined && cost !== undefined) return { tokens, cost };
  let value = parsed;
  if (value === undefined) {
    // Parsing every answer to look for usage would double the JSON work; only bodies that
    // mention it are parsed.
    if (!isJsonContentType(header(headers, "content-type")) || body.indexOf('"usage"') < 0) return { tokens, cost };
    try {
      value = JSON.parse(body.toString("utf8"));
    } catch {
      return { tokens, cost };
    }
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.hasOwn(value, "usage")) {
    const usage = (value as { usage: unknown }).usage;
    if (usage !== null && typeof usage === "object") {
      if (tokens === undefined && Object.hasOwn(usage, "total_tokens")) tokens = nonNegative((usage as { total_tokens: unknown }).total_tokens);
      if (cost === undefined && Object.hasOwn(usage, "cost")) cost = nonNegative((usage as { cost: unknown }).cost);
    }
  }
  return { tokens, cost };
}

/** Identifies a payload for idempotency: a key reused with a different payload is refused. */
export function fingerprint(method: string, path: string, body: Buffer): string {
  return createHash("sha256").update(method).update("\u0000").update(path).update("\u0000").update(body).digest("hex");
}
