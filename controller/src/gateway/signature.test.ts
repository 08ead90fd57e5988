import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { signGithub, signStripe, verifyGithub, verifyStripe } from "./signature.ts";

const secret = "whsec_test";
const body = Buffer.from('{"action":"opened","number":1}');

describe("GitHub X-Hub-Signature-256", () => {
  it("accepts a correct signature (computed independently)", () => {
    const hex = createHmac("sha256", secret).update(body).digest("hex");
    expect(verifyGithub(body, `sha256=${hex}`, secret)).toEqual({ ok: true });
    expect(verifyGithub(body, `sha256=${hex.toUpperCase()}`, secret)).toEqual({ ok: true });
    expect(signGithub(body, secret)).toBe(`sha256=${hex}`);
  });

  it.each([
    ["missing", undefined, /missing/],
    ["empty", "", /missing/],
    ["wrong prefix", `sha1=${"a".repeat(40)}`, /sha256=<hex>/],
    ["short hex", "sha256=abcd", /64 hex digits/],
    ["not hex", `sha256=${"z".repeat(64)}`, /64 hex digits/],
    ["wrong secret", signGithub(body, "other"), /does not match/],
    ["other body", signGithub(Buffer.from('{"action":"closed","number":1}'), secret), /does not match/],
  ])("refuses a %s signature", (_n, header, reason) => {
    const r = verifyGithub(body, header, secret);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(reason);
  });

  it("verifies the raw bytes: re-serialised JSON with other spacing does not match", () => {
    const sig = signGithub(body, secret);
    const reformatted = Buffer.from(JSON.stringify(JSON.parse(body.toString()), null, 2));
    expect(verifyGithub(reformatted, sig, secret).ok).toBe(false);
  });
});

describe("Stripe-style t=,v1=", () => {
  const now = 1_700_000_000;

  it("accepts a correct signature (computed independently) within the tolerance", () => {
    const hex = createHmac("sha256", secret).update(`${now}.${body.toString()}`).digest("hex");
    expect(verifyStripe(body, `t=${now},v1=${hex}`, secret, 300, now + 299)).toEqual({ ok: true });
    expect(signStripe(body, secret, now)).toBe(`t=${now},v1=${hex}`);
  });

  it("accepts when any of several v1 signatures matches (secret rotation) and ignores other schemes", () => {
    const good = signStripe(body, secret, now).split(",")[1]!;
    expect(verifyStripe(body, `t=${now},v0=abc,v1=${"0".repeat(64)},${good}`, secret, 300, now)).toEqual({ ok: true });
  });

  it.each([
    ["missing", undefined, /missing/],
    ["without t", `v1=${"0".repeat(64)}`, /t=<unix seconds>/],
    ["with a non-numeric t", `t=abc,v1=${"0".repeat(64)}`, /t=<unix seconds>/],
    ["without v1", `t=${now}`, /v1=<hex>/],
    ["expired", signStripe(body, secret, now - 301), /301s old, beyond the 300s tolerance/],
    ["from the future", signStripe(body, secret, now + 600), /in the future/],
    ["with the wrong secret", signStripe(body, "other", now), /does not match/],
    ["over another body", signStripe(Buffer.from("{}"), secret, now), /does not match/],
    ["with a timestamp swapped after signing", signStripe(body, secret, now - 10).replace(`t=${now - 10}`, `t=${now}`), /does not match/],
  ])("refuses a signature %s", (_n, header, reason) => {
    const r = verifyStripe(body, header, secret, 300, now);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(reason);
  });
});
