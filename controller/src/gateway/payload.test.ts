import { isUtf8 } from "node:buffer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UnparsedBody } from "../diff/index.ts";
import { acceptRequestId, compileUsage, decodeBody, extractUsage, fingerprint, invalidUtf8Offset, isJsonContentType, MAX_DECODE_DEPTH } from "./payload.ts";

const json = { "content-type": "application/json" };

describe("payload helpers", () => {
  it.each([
    ["application/json", true],
    ["Application/JSON; charset=utf-8", true],
    ["application/vnd.github+json", true],
    ["text/plain", false],
    ["application/x-www-form-urlencoded", false],
    ["", false],
    [undefined, false],
  ])("content type %s is JSON: %s", (ct, want) => {
    expect(isJsonContentType(ct)).toBe(want);
  });

  it("accepts sane request ids and replaces others", () => {
    expect(acceptRequestId("abc-123")).toBe("abc-123");
    expect(acceptRequestId(["first", "second"])).toBe("first");
    for (const bad of [undefined, "", "has space", "x".repeat(129), "a\nb"]) expect(acceptRequestId(bad)).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("replaces an id the PII rules would mask (it would be logged raw) and keeps identifiers", () => {
    for (const pii of ["zqseed.alice@scan-example.org", "5551234567", "+44.20.7946.0958"]) expect(acceptRequestId(pii)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
    for (const id of ["550e8400-e29b-41d4-a716-446655440000", "req-5551234567", "trace:01HX.42", "gh@1"]) expect(acceptRequestId(id)).toBe(id);
  });

  it("decodes JSON bodies and keeps other text", () => {
    expect(decodeBody(Buffer.from('{"a":1}'), "application/json")).toEqual({ a: 1 });
    expect(decodeBody(Buffer.from("{broken"), "application/json")).toBe("{broken");
    expect(decodeBody(Buffer.from("hello"), "text/plain")).toBe("hello");
    expect(decodeBody(Buffer.from('[1,2]'), undefined)).toEqual([1, 2]);
  });

  it("leaves answers nested deeper than MAX_DECODE_DEPTH unparsed, measured outside strings", () => {
    const nest = (n: number, inner = "1") => `${'{"a":['.repeat(n)}${inner}${"]}".repeat(n)}`;
    // Each {"a":[ level is two containers.
    expect(decodeBody(Buffer.from(nest(MAX_DECODE_DEPTH / 2)), "application/json")).toBeTypeOf("object");
    const deep = decodeBody(Buffer.from(nest(MAX_DECODE_DEPTH / 2, "[1]")), "application/json");
    expect(deep).toBeInstanceOf(UnparsedBody);
    expect((deep as UnparsedBody).reason).toBe(`nested deeper than ${MAX_DECODE_DEPTH} levels`);
    for (const text of [`${"[".repeat(100_000)}${"]".repeat(100_000)}`, `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`]) {
      expect(decodeBody(Buffer.from(text), "application/json")).toBeInstanceOf(UnparsedBody);
      expect(decodeBody(Buffer.from(text), undefined)).toBeInstanceOf(UnparsedBody);
    }
    // Brackets inside strings (escaped quotes included) are text, not nesting.
    const text = JSON.stringify({ s: "[".repeat(5000) + '\\"{{{' });
    expect(decodeBody(Buffer.from(text), "application/json")).toEqual(JSON.parse(text));
  });

  it("reads usage from a 100,000-deep answer without recursing into it", () => {
    const body = `{"usage":{"total_tokens":5},"deep":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    expect(extractUsage(json, Buffer.from(body))).toEqual({ tokens: 5, cost: undefined });
    expect(extractUsage(json, Buffer.from(body), compileUsage({ tokensPath: "$.deep[*][*][*][*]" }))).toEqual({ tokens: undefined, cost: undefined });
  });

  it.each([
    ["headers", { "x-airollout-tokens": "120", "x-airollout-cost": "0.004" }, "{}", { tokens: 120, cost: 0.004 }],
    ["JSON usage", { "content-type": "application/json" }, '{"usage":{"total_tokens":508,"cost":0.0021}}', { tokens: 508, cost: 0.0021 }],
    ["headers win over the body", { "content-type": "application/json", "x-airollout-tokens": "7" }, '{"usage":{"total_tokens":508,"cost":1}}', { tokens: 7, cost: 1 }],
    ["nothing reported", { "content-type": "application/json" }, '{"intent":"refund"}', { tokens: undefined, cost: undefined }],
    ["negative and junk ignored", { "x-airollout-tokens": "-3", "x-airollout-cost": "abc" }, "", { tokens: undefined, cost: undefined }],
    ["non-JSON body not parsed", { "content-type": "text/plain" }, '{"usage":{"total_tokens":5}}', { tokens: undefined, cost: undefined }],
    ["usage not an object", { "content-type": "application/json" }, '{"usage":5}', { tokens: undefined, cost: undefined }],
    ["string numbers in JSON", { "content-type": "application/json" }, '{"usage":{"total_tokens":"12"}}', { tokens: 12, cost: undefined }],
  ])("extracts usage from %s", (_n, headers, body, want) => {
    expect(extractUsage(headers, Buffer.from(body))).toEqual(want);
  });

  it.each([
    ["custom headers", { tokensHeader: "X-Tokens", costHeader: "x-price" }, { "x-tokens": "9", "x-price": "0.5" }, "{}", { tokens: 9, cost: 0.5 }],
    ["custom paths", { tokensPath: "$.meta.tokens", costPath: "$.meta.billing.usd" }, json, '{"meta":{"tokens":40,"billing":{"usd":0.01}},"usage":{"total_tokens":1}}', { tokens: 40, cost: 0.01 }],
    ["[*] sums the matches", { tokensPath: "$.choices[*].usage.tokens" }, json, '{"choices":[{"usage":{"tokens":3}},{"usage":{"tokens":4}},{"x":1}]}', { tokens: 7, cost: undefined }],
    ["an index picks one", { tokensPath: "$.choices[1].tokens" }, json, '{"choices":[{"tokens":3},{"tokens":4}]}', { tokens: 4, cost: undefined }],
    ["a body without the first key is not parsed", { tokensPath: "$.meta.tokens" }, json, '{"usage":{"total_tokens":5}} not even JSON', { tokens: undefined, cost: undefined }],
  ])("reads usage where spec.traffic.usage says: %s", (_n, spec, headers, body, want) => {
    expect(extractUsage(headers, Buffer.from(body), compileUsage(spec))).toEqual(want);
  });

  it("rejects a usage path the schema would reject", () => {
    expect(() => compileUsage({ tokensPath: "usage.tokens" })).toThrow(/must start with \$/);
  });

  it("fingerprints method, path and body", () => {
    const a = fingerprint("POST", "/x", Buffer.from("{}"));
    expect(a).toBe(fingerprint("POST", "/x", Buffer.from("{}")));
    expect(a).not.toBe(fingerprint("POST", "/y", Buffer.from("{}")));
    expect(a).not.toBe(fingerprint("POST", "/x", Buffer.from("{ }")));
  });
});

describe("invalidUtf8Offset", () => {
  it.each([
    { name: "ASCII", bytes: [0x7b, 0x7d], at: -1 },
    { name: "two, three and four byte forms", bytes: [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], at: -1 },
    { name: "a lone continuation byte", bytes: [0x61, 0x80], at: 1 },
    { name: "an overlong slash", bytes: [0x22, 0xc0, 0xaf, 0x22], at: 1 },
    { name: "an overlong three-byte form", bytes: [0xe0, 0x80, 0xaf], at: 0 },
    { name: "a UTF-16 surrogate (CESU-8)", bytes: [0x61, 0xed, 0xa0, 0x80], at: 1 },
    { name: "past U+10FFFF", bytes: [0xf4, 0x90, 0x80, 0x80], at: 0 },
    { name: "a truncated sequence at the end", bytes: [0x61, 0x62, 0xe2, 0x82], at: 2 },
    { name: "0xFF", bytes: [0xff], at: 0 },
  ])("$name: $at", ({ bytes, at }) => {
    expect(invalidUtf8Offset(Uint8Array.from(bytes))).toBe(at);
  });

  it("agrees with node:buffer isUtf8 on random bytes, and the prefix before the offset is valid", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), (bytes) => {
        const at = invalidUtf8Offset(bytes);
        expect(at === -1).toBe(isUtf8(bytes));
        if (at >= 0) expect(isUtf8(bytes.subarray(0, at))).toBe(true);
      }),
      { seed: 16, numRuns: 2000 },
    );
  });
});
