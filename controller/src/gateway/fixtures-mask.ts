/**
 * What of an accepted webhook may be kept as a fixture. Personal data is masked by the rule of
 * diff samples (diff/pii.ts maskPII with the rollout's spec.shadow.maskPatterns: the same helper,
 * called the same way); secrets are dropped, never masked into something that could be reversed:
 * - headers: credentials (the quarantine's REDACTED_HEADERS), every scheme's signature header,
 *   the rollout's own signature header, any header whose name says it carries a secret, client
 *   addresses and hop-by-hop headers are left out; the rest is masked;
 * - body: values under keys whose name says secret become "[REDACTED]", then the text is masked;
 * - path: query parameters whose name says secret become "[REDACTED]", then the path is masked.
 * A body that masking cannot leave as valid JSON, or that stays too large, is not kept at all.
 */
import { maskPII } from "../diff/index.ts";
import { FIXTURE_LIMITS } from "../fixtures/format.ts";
import { REDACTED, REDACTED_HEADERS } from "./quarantine.ts";
import { DEFAULT_SIGNATURE_HEADER } from "./signature.ts";
import { HOP_BY_HOP } from "./upstream.ts";

/** A name that says its value is a secret (headers, JSON keys, query parameters). Over-matching only loses a detail. */
export const SECRET_NAME = /auth|token|secret|signature|passw|cookie|session|api[-_]?key|credential|private[-_]?key/i;

/** Signature headers of the schemes the gateway knows, plus GitHub's legacy SHA-1 one. */
const SIGNATURE_HEADERS = new Set([...Object.values(DEFAULT_SIGNATURE_HEADER), "x-hub-signature"]);

/** Who sent it and through which proxies: personal data a fixture does not need. */
const CLIENT_HEADERS = new Set(["x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-host", "x-client-ip", "true-client-ip", "cf-connecting-ip"]);

/** Set anew by whoever replays a fixture. */
const REPLAY_OWN = new Set(["x-request-id", "expect", "accept-encoding"]);

/** Deepest JSON the secret walk follows; a deeper body is not kept (the gateway's own limit is spec.traffic.maxJsonDepth). */
const MAX_WALK_DEPTH = 256;

/** A webhook the gateway accepted, as the recorder sees it. */
export interface AcceptedWebhook {
  method: string;
  /** The forwarded path, query included. */
  path: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The parsed JSON body. */
  payload: unknown;
}

/** What masking needs from the rollout. */
export interface FixtureMaskRules {
  /** spec.shadow.maskPatterns, compiled. */
  masks: readonly (string | RegExp)[];
  /** Header names (any case) the rollout marks secret: its signature header. */
  secretHeaders: readonly string[];
  /** Largest masked body kept, in bytes. */
  maxBytes: number;
}

/** A webhook ready to store: everything personal masked, nothing secret. */
export interface MaskedFixture {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** The body as JSON text. */
  body: string;
}

/** Why a webhook was not kept (the `reason` label of airollout_fixtures_skipped_total). */
export type FixtureSkip = "too_large" | "too_deep" | "unmaskable";

/** The fixture of an accepted webhook, or why none is kept. */
export function maskFixture(w: AcceptedWebhook, rules: FixtureMaskRules): MaskedFixture | { skip: FixtureSkip } {
  const redacted = redactSecrets(w.payload, 0);
  if (redacted === TOO_DEEP) return { skip: "too_deep" };
  const body = maskJsonText(JSON.stringify(redacted) ?? "null", rules.masks);
  if (body === undefined) return { skip: "unmaskable" };
  if (Buffer.byteLength(body, "utf8") > rules.maxBytes) return { skip: "too_large" };
  return { method: w.method, path: maskPath(w.path, rules.masks), headers: fixtureHeaders(w.headers, rules), body };
}

/** Headers kept: see the module comment. At most FIXTURE_LIMITS.maxHeaders, each bounded. */
export function fixtureHeaders(headers: AcceptedWebhook["headers"], rules: Pick<FixtureMaskRules, "masks" | "secretHeaders">): Record<string, string> {
  const secret = new Set(rules.secretHeaders.map((h) => h.toLowerCase()));
  const out: Record<string, string> = {};
  let kept = 0;
  for (const [raw, v] of Object.entries(headers)) {
    const name = raw.toLowerCase();
    if (v === undefined || !keepHeader(name, secret)) continue;
    const value = maskPII(Array.isArray(v) ? v.join(", ") : v, rules.masks);
    if (value.length > FIXTURE_LIMITS.maxHeaderValue || name.length > FIXTURE_LIMITS.maxHeaderName) continue;
    if (kept++ >= FIXTURE_LIMITS.maxHeaders) break;
    out[name] = value;
  }
  return out;
}

function keepHeader(name: string, secret: ReadonlySet<string>): boolean {
  if (REDACTED_HEADERS.has(name) || SIGNATURE_HEADERS.has(name) || secret.has(name) || SECRET_NAME.test(name)) return false;
  return !HOP_BY_HOP.has(name) && !CLIENT_HEADERS.has(name) && !REPLAY_OWN.has(name);
}

const TOO_DEEP = Symbol("too deep");

/** A copy of a JSON value with the values under secret-named keys replaced by "[REDACTED]". */
function redactSecrets(v: unknown, depth: number): unknown {
  if (v === null || typeof v !== "object") return v;
  if (depth >= MAX_WALK_DEPTH) return TOO_DEEP;
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    for (const item of v) {
      const r = redactSecrets(item, depth + 1);
      if (r === TOO_DEEP) return TOO_DEEP;
      out.push(r);
    }
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, child] of Object.entries(v)) {
    const r = SECRET_NAME.test(k) ? REDACTED : redactSecrets(child, depth + 1);
    if (r === TOO_DEEP) return TOO_DEEP;
    // defineProperty: a key "__proto__" stays a plain key of the copy.
    Object.defineProperty(out, k, { value: r, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * The diff samples' masking over the body's JSON text. Masking can break the JSON (a card number
 * that is a JSON number becomes `[CARD]`): then every string, number and key is masked on its
 * own, and the result is kept only if masking its text again changes nothing, so a pattern that
 * spans values is never let through.
 */
export function maskJsonText(text: string, masks: readonly (string | RegExp)[]): string | undefined {
  const masked = maskPII(text, masks);
  if (masked === text || parses(masked)) return masked;
  const leafwise = JSON.stringify(maskLeaves(JSON.parse(text), masks));
  return maskPII(leafwise, masks) === leafwise ? leafwise : undefined;
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Masks each leaf and key; a number that masking changes becomes the masked string. Depth was bounded by redactSecrets. */
function maskLeaves(v: unknown, masks: readonly (string | RegExp)[]): unknown {
  if (typeof v === "string") return maskPII(v, masks);
  if (typeof v === "number") {
    const s = String(v);
    const m = maskPII(s, masks);
    return m === s ? v : m;
  }
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map((x) => maskLeaves(x, masks));
  const out: Record<string, unknown> = {};
  for (const [k, child] of Object.entries(v)) Object.defineProperty(out, maskPII(k, masks), { value: maskLeaves(child, masks), enumerable: true, writable: true, configurable: true });
  return out;
}

/**
 * The path with secret-named query parameters redacted and every segment, parameter name and value
 * masked after %-decoding (an email sent as `a%40b.example` is masked too); a part masking does not
 * change keeps its original spelling.
 */
export function maskPath(path: string, masks: readonly (string | RegExp)[]): string {
  const q = path.indexOf("?");
  const pathname = (q < 0 ? path : path.slice(0, q)).split("/").map((seg) => maskPart(seg, masks)).join("/");
  if (q < 0) return pathname;
  const params = path
    .slice(q + 1)
    .split("&")
    .map((p) => {
      const eq = p.indexOf("=");
      if (eq < 0) return maskPart(p, masks);
      const name = p.slice(0, eq);
      if (SECRET_NAME.test(decoded(name))) return `${name}=${encodeURIComponent(REDACTED)}`;
      return `${maskPart(name, masks)}=${maskPart(p.slice(eq + 1), masks)}`;
    });
  return `${pathname}?${params.join("&")}`;
}

function decoded(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, " "));
  } catch {
    // A malformed escape: judged by its raw text.
    return part;
  }
}

function maskPart(part: string, masks: readonly (string | RegExp)[]): string {
  const text = decoded(part);
  const masked = maskPII(text, masks);
  return masked === text ? maskPII(part, masks) : encodeURIComponent(masked);
}
