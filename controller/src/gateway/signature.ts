/**
 * HMAC-SHA256 webhook signatures over the raw request body:
 * - github: header `X-Hub-Signature-256: sha256=<hex>`, HMAC of the body;
 * - stripe: header `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`, HMAC of
 *   `<t>.<body>`, accepted when some v1 matches and |now - t| <= tolerance (replay protection);
 * - standard (Standard Webhooks, https://www.standardwebhooks.com): headers `webhook-id`,
 *   `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64> [v1,<base64>...]`,
 *   HMAC of `<id>.<timestamp>.<body>` keyed by the base64 secret after its `whsec_` prefix,
 *   with the same timestamp tolerance.
 * Comparison is constant-time (crypto.timingSafeEqual) over equal-length digests, so the time
 * taken does not reveal how many leading bytes of a forged signature were right.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Signature schemes of TrafficSchema.signature.scheme. */
export type SignatureScheme = "github" | "stripe" | "standard";

/** The header each scheme uses by default (lower case, as Node presents them). */
export const DEFAULT_SIGNATURE_HEADER: Readonly<Record<SignatureScheme, string>> = {
  github: "x-hub-signature-256",
  stripe: "stripe-signature",
  standard: "webhook-signature",
};

/** The Standard Webhooks headers besides the signature: the message id and its timestamp. */
export const STANDARD_ID_HEADER = "webhook-id";
export const STANDARD_TIMESTAMP_HEADER = "webhook-timestamp";

/** The outcome of a verification; `reason` names what was wrong, without secret material. */
export type VerifyResult = { ok: true } | { ok: false; reason: string };

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
/** Base64 of a 32-byte digest: 43 characters and one padding `=`. */
const BASE64_SHA256 = /^[A-Za-z0-9+/]{43}=$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** A Standard Webhooks message id: printable ASCII without spaces, bounded. */
const STANDARD_ID = /^[\x21-\x7e]{1,255}$/;
// A header with thousands of v1 entries would make verification cost proportional to it.
const MAX_STRIPE_SIGNATURES = 8;
const MAX_STANDARD_SIGNATURES = 8;

function hmac(secret: string | Buffer, ...parts: (string | Buffer)[]): Buffer {
  const h = createHmac("sha256", secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

function equalHex(expected: Buffer, hex: string): boolean {
  if (!HEX_SHA256.test(hex)) return false;
  return timingSafeEqual(expected, Buffer.from(hex, "hex"));
}

/** Verifies a GitHub-style `sha256=<hex>` signature of the raw body. */
export function verifyGithub(rawBody: Buffer, header: string | undefined, secret: string | Buffer): VerifyResult {
  if (header === undefined || header === "") return { ok: false, reason: "signature header missing" };
  const value = header.trim();
  if (!value.startsWith("sha256=")) return { ok: false, reason: "signature must be sha256=<hex>" };
  const hex = value.slice("sha256=".length);
  if (!HEX_SHA256.test(hex)) return { ok: false, reason: "signature must be sha256= followed by 64 hex digits" };
  return equalHex(hmac(secret, rawBody), hex) ? { ok: true } : { ok: false, reason: "signature does not match the body" };
}

/**
 * Verifies a Stripe-style `t=<unix>,v1=<hex>` signature of `<t>.<body>`. nowSeconds and the
 * tolerance are in seconds; a timestamp too far in the past or the future is rejected.
 */
export function verifyStripe(rawBody: Buffer, header: string | undefined, secret: string | Buffer, toleranceSeconds: number, nowSeconds: number): VerifyResult {
  if (header === undefined || header === "") return { ok: false, reason: "signature header missing" };
  let t: string | undefined;
  const v1: string[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === "t" && t === undefined) t = v;
    else if (k === "v1" && v1.length < MAX_STRIPE_SIGNATURES) v1.push(v);
  }
  if (t === undefined || !/^[0-9]{1,12}$/.test(t)) return { ok: false, reason: "signature needs t=<unix seconds>" };
  if (v1.length === 0) return { ok: false, reason: "signature needs v1=<hex>" };
  const stale = timestampProblem(Number(t), toleranceSeconds, nowSeconds);
  if (stale) return { ok: false, reason: stale };
  const expected = hmac(secret, t, ".", rawBody);
  // Check every candidate (no early exit) so timing does not reveal which entry matched.
  let ok = false;
  for (const hex of v1) ok = equalHex(expected, hex) || ok;
  return ok ? { ok: true } : { ok: false, reason: "signature does not match the body" };
}

/** Why a signed timestamp is refused (too old or too far in the future), or undefined. */
function timestampProblem(t: number, toleranceSeconds: number, nowSeconds: number): string | undefined {
  const age = nowSeconds - t;
  if (Math.abs(age) <= toleranceSeconds) return undefined;
  return age > 0 ? `signature timestamp is ${Math.round(age)}s old, beyond the ${toleranceSeconds}s tolerance` : `signature timestamp is ${Math.round(-age)}s in the future, beyond the ${toleranceSeconds}s tolerance`;
}

/**
 * The HMAC key of a Standard Webhooks secret: the base64 after an optional `whsec_` prefix,
 * decoded. Throws when it is not base64 or decodes to nothing, naming the expected form (never
 * the secret).
 */
export function standardWebhookKey(secret: string | Buffer): Buffer {
  const text = (typeof secret === "string" ? secret : secret.toString("utf8")).trim();
  const b64 = text.startsWith("whsec_") ? text.slice("whsec_".length) : text;
  if (b64 === "" || !BASE64.test(b64)) throw new Error("the secret must be whsec_<base64> (Standard Webhooks)");
  return Buffer.from(b64, "base64");
}

/** The three headers of a Standard Webhooks delivery, as received. */
export interface StandardWebhookHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

/**
 * Verifies a Standard Webhooks signature: `webhook-signature` holds space-separated
 * `<version>,<base64>` entries, and some `v1` entry must be the HMAC-SHA256 (keyed by
 * standardWebhookKey) of `<webhook-id>.<webhook-timestamp>.<body>`, with the timestamp within the
 * tolerance. Other versions (v1a, asymmetric) are skipped.
 */
export function verifyStandard(rawBody: Buffer, h: StandardWebhookHeaders, key: Buffer, toleranceSeconds: number, nowSeconds: number): VerifyResult {
  if (h.id === undefined || h.id === "") return { ok: false, reason: `${STANDARD_ID_HEADER} header missing` };
  if (!STANDARD_ID.test(h.id)) return { ok: false, reason: `${STANDARD_ID_HEADER} must be 1-255 printable ASCII characters without spaces` };
  if (h.timestamp === undefined || !/^[0-9]{1,12}$/.test(h.timestamp)) return { ok: false, reason: `${STANDARD_TIMESTAMP_HEADER} must be unix seconds` };
  if (h.signature === undefined || h.signature.trim() === "") return { ok: false, reason: "signature header missing" };
  const v1: string[] = [];
  for (const entry of h.signature.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1" || v1.length >= MAX_STANDARD_SIGNATURES) continue;
    v1.push(entry.slice(comma + 1));
  }
  if (v1.length === 0) return { ok: false, reason: "signature needs a v1,<base64> entry" };
  const stale = timestampProblem(Number(h.timestamp), toleranceSeconds, nowSeconds);
  if (stale) return { ok: false, reason: stale };
  const expected = hmac(key, h.id, ".", h.timestamp, ".", rawBody);
  // Every entry is checked (no early exit): timing does not reveal which one matched.
  let ok = false;
  for (const b64 of v1) ok = equalBase64(expected, b64) || ok;
  return ok ? { ok: true } : { ok: false, reason: "signature does not match the body" };
}

function equalBase64(expected: Buffer, b64: string): boolean {
  if (!BASE64_SHA256.test(b64)) return false;
  return timingSafeEqual(expected, Buffer.from(b64, "base64"));
}

/** Signs a body the GitHub way (for tests, replays and senders). */
export function signGithub(rawBody: Buffer | string, secret: string | Buffer): string {
  return `sha256=${hmac(secret, rawBody).toString("hex")}`;
}

/** Signs a body the Stripe way at a timestamp in seconds (for tests and senders). */
export function signStripe(rawBody: Buffer | string, secret: string | Buffer, timestampSeconds: number): string {
  const t = String(Math.floor(timestampSeconds));
  return `t=${t},v1=${hmac(secret, t, ".", rawBody).toString("hex")}`;
}

/**
 * Signs a body the Standard Webhooks way (for tests and senders): the `webhook-signature` value
 * `v1,<base64>` for a message id and a timestamp in seconds; `secret` is `whsec_<base64>`.
 */
export function signStandard(rawBody: Buffer | string, secret: string, id: string, timestampSeconds: number): string {
  const t = String(Math.floor(timestampSeconds));
  return `v1,${hmac(standardWebhookKey(secret), id, ".", t, ".", rawBody).toString("base64")}`;
}
