/**
 * HMAC-SHA256 webhook signatures over the raw request body:
 * - github: header `X-Hub-Signature-256: sha256=<hex>`, HMAC of the body;
 * - stripe: header `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`, HMAC of
 *   `<t>.<body>`, accepted when some v1 matches and |now - t| <= tolerance (replay protection).
 * Comparison is constant-time (crypto.timingSafeEqual) over equal-length digests, so the time
 * taken does not reveal how many leading bytes of a forged signature were right.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Signature schemes of TrafficSchema.signature.scheme. */
export type SignatureScheme = "github" | "stripe";

/** The header each scheme uses by default (lower case, as Node presents them). */
export const DEFAULT_SIGNATURE_HEADER: Readonly<Record<SignatureScheme, string>> = {
  github: "x-hub-signature-256",
  stripe: "stripe-signature",
};

/** The outcome of a verification; `reason` names what was wrong, without secret material. */
export type VerifyResult = { ok: true } | { ok: false; reason: string };

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
// A header with thousands of v1 entries would make verification cost proportional to it.
const MAX_STRIPE_SIGNATURES = 8;

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
  const age = nowSeconds - Number(t);
  if (Math.abs(age) > toleranceSeconds) {
    return { ok: false, reason: age > 0 ? `signature timestamp is ${Math.round(age)}s old, beyond the ${toleranceSeconds}s tolerance` : `signature timestamp is ${Math.round(-age)}s in the future, beyond the ${toleranceSeconds}s tolerance` };
  }
  const expected = hmac(secret, t, ".", rawBody);
  // Check every candidate (no early exit) so timing does not reveal which entry matched.
  let ok = false;
  for (const hex of v1) ok = equalHex(expected, hex) || ok;
  return ok ? { ok: true } : { ok: false, reason: "signature does not match the body" };
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
