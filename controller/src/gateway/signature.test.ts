import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { signGithub, signStandard, signStripe, standardWebhookKey, verifyGithub, verifyStandard, verifyStripe } from "./signature.ts";

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

describe("Standard Webhooks webhook-id / webhook-timestamp / webhook-signature", () => {
  // The example of the Standard Webhooks specification (its libraries test the same vector).
  const published = {
    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
    timestamp: "1614265330",
    body: Buffer.from('{"test": 2432232314}'),
    signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
  };
  const key = standardWebhookKey(published.secret);
  const now = Number(published.timestamp);
  const headers = (signature: string | undefined, id: string | undefined = published.id, timestamp: string | undefined = published.timestamp) => ({ id, timestamp, signature });

  it("accepts the specification's example, and a signature computed independently here", () => {
    expect(verifyStandard(published.body, headers(published.signature), key, 300, now + 10)).toEqual({ ok: true });
    expect(signStandard(published.body, published.secret, published.id, now)).toBe(published.signature);
    // Independently: the key is the base64 after whsec_, the content <id>.<timestamp>.<body>.
    const rawKey = Buffer.from(published.secret.slice("whsec_".length), "base64");
    const mine = createHmac("sha256", rawKey).update(`evt_42.${now}.${body.toString()}`).digest("base64");
    expect(verifyStandard(body, headers(`v1,${mine}`, "evt_42"), key, 300, now)).toEqual({ ok: true });
    // A secret without the prefix is the same key.
    expect(standardWebhookKey(published.secret.slice(6)).equals(rawKey)).toBe(true);
  });

  it("accepts when any of several space-separated signatures matches, skipping other versions", () => {
    const list = `v1a,${"A".repeat(86)}== v1,${"B".repeat(43)}= ${published.signature}`;
    expect(verifyStandard(published.body, headers(list), key, 300, now)).toEqual({ ok: true });
  });

  it.each([
    ["without webhook-id", headers(published.signature, ""), /webhook-id header missing/],
    ["with a webhook-id holding spaces", headers(published.signature, "a b"), /webhook-id must be/],
    ["without webhook-timestamp", { id: published.id, timestamp: undefined, signature: published.signature }, /webhook-timestamp must be unix seconds/],
    ["with a non-numeric timestamp", headers(published.signature, published.id, "soon"), /webhook-timestamp must be unix seconds/],
    ["without a signature", headers(undefined), /signature header missing/],
    ["with only other versions", headers(`v2,${published.signature.slice(3)}`), /v1,<base64>/],
    ["with another id (the id is signed)", headers(published.signature, "msg_other"), /does not match/],
    ["with a timestamp swapped after signing", headers(signStandard(published.body, published.secret, published.id, now - 10), published.id, published.timestamp), /does not match/],
    ["with the wrong secret", headers(signStandard(published.body, "whsec_b3RoZXIta2V5", published.id, now)), /does not match/],
    ["that is not base64 of 32 bytes", headers("v1,abc"), /does not match/],
  ])("refuses a delivery %s", (_n, h, reason) => {
    const r = verifyStandard(published.body, h, key, 300, now);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(reason);
  });

  it("refuses timestamps beyond the tolerance either way", () => {
    const old = verifyStandard(published.body, headers(published.signature), key, 300, now + 301);
    expect(!old.ok && old.reason).toMatch(/301s old, beyond the 300s tolerance/);
    const future = verifyStandard(published.body, headers(published.signature), key, 300, now - 301);
    expect(!future.ok && future.reason).toMatch(/in the future/);
  });

  it("refuses a secret that is not whsec_<base64>, without quoting it", () => {
    for (const bad of ["whsec_", "whsec_not base64!", "plain-text-key", ""]) expect(() => standardWebhookKey(bad)).toThrow(/^the secret must be whsec_<base64> \(Standard Webhooks\)$/);
  });
});
