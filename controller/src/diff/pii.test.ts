import { describe, expect, it } from "vitest";
import { compileMaskPatterns, luhnValid, maskPII } from "./pii.ts";

describe("maskPII", () => {
  it.each([
    { name: "email", text: "contact jane.doe+tag@example.co.uk now", masked: "contact [EMAIL] now" },
    { name: "email in JSON", text: '{"from":"a_b@mail.example.com"}', masked: '{"from":"[EMAIL]"}' },
    { name: "no domain dot is not an email", text: "user@localhost", masked: "user@localhost" },
    { name: "card, plain", text: "card 4111111111111111 ok", masked: "card [CARD] ok" },
    { name: "card, spaced", text: "4111 1111 1111 1111", masked: "[CARD]" },
    { name: "card, dashed", text: "4111-1111-1111-1111", masked: "[CARD]" },
    { name: "card, 15-digit amex", text: "378282246310005", masked: "[CARD]" },
    { name: "card number as JSON number", text: '{"pan":5555555555554444}', masked: '{"pan":[CARD]}' },
    { name: "Luhn failure is not a card", text: "4111111111111112", masked: "4111111111111112" },
    { name: "phone, NANP", text: "call 555-123-4567 today", masked: "call [PHONE] today" },
    { name: "phone, international", text: "tel: +44 20 7946 0958", masked: "tel: [PHONE]" },
    { name: "phone, area code", text: "+1 (555) 123-4567", masked: "[PHONE]" },
    { name: "phone, short with country code", text: "+49 30 123456", masked: "[PHONE]" },
    { name: "phone, dotted", text: "555.123.4567", masked: "[PHONE]" },
    { name: "small numbers survive", text: "order 12345 has 3 items", masked: "order 12345 has 3 items" },
    { name: "short digit groups survive", text: "room 12-34", masked: "room 12-34" },
    { name: "ISO dates survive", text: "on 2024-06-01 and 2024-06-01T12:30:00Z", masked: "on 2024-06-01 and 2024-06-01T12:30:00Z" },
    { name: "decimals survive", text: '{"confidence":0.912345678901}', masked: '{"confidence":0.912345678901}' },
    { name: "several kinds at once", text: "x@y.io, 4111111111111111, 555-123-4567", masked: "[EMAIL], [CARD], [PHONE]" },
    { name: "UUIDs survive (GitHub delivery ids, request ids)", text: "id 550e8400-e29b-41d4-a716-446655440000 ok", masked: "id 550e8400-e29b-41d4-a716-446655440000 ok" },
    { name: "all-digit UUIDs survive", text: "12345678-1234-1234-1234-555123456789", masked: "12345678-1234-1234-1234-555123456789" },
    { name: "digits inside a lettered identifier survive", text: "x-request-id: req-5551234567 and evt-4111111111111111", masked: "x-request-id: req-5551234567 and evt-4111111111111111" },
    { name: "a phone number beside an identifier is still masked", text: "req-1 555-123-4567", masked: "req-1 [PHONE]" },
  ])("$name", ({ text, masked }) => {
    expect(maskPII(text)).toBe(masked);
  });

  it.each([
    { name: "string pattern", patterns: ["ACCT-\\d{6}"], text: "id ACCT-123456 end", masked: "id [MASKED] end" },
    { name: "RegExp without g masks every match", patterns: [/secret-\w+/], text: "secret-a secret-b", masked: "[MASKED] [MASKED]" },
    { name: "custom patterns run before the built-ins", patterns: ["tenant:\\d+"], text: "tenant:5551234567", masked: "[MASKED]" },
    { name: "empty matches are not masked", patterns: ["x*"], text: "abc", masked: "abc" },
    { name: "non-Unicode escapes are accepted", patterns: ["key\\-\\d+"], text: "key-42 ok", masked: "[MASKED] ok" },
    { name: "repeated calls reuse the compiled pattern", patterns: ["ACCT-\\d{6}"], text: "ACCT-000001 ACCT-000002", masked: "[MASKED] [MASKED]" },
  ])("extra $name", ({ patterns, text, masked }) => {
    expect(maskPII(text, patterns)).toBe(masked);
  });

  it("throws on an invalid string pattern", () => {
    expect(() => maskPII("x", ["("])).toThrow();
  });

  it.each([
    { name: "letters", text: "a".repeat(200_000) },
    { name: "digits", text: "1".repeat(200_000) },
    { name: "spaced digits", text: "1 ".repeat(100_000) },
    { name: "at signs", text: "a@".repeat(100_000) },
    { name: "dotted local part", text: `${".a".repeat(100_000)}@x` },
    { name: "dashed digits", text: "12-".repeat(70_000) },
  ])("finishes on hostile $name (catastrophic backtracking would hit the test timeout; speed is in make bench)", ({ text }) => {
    expect(typeof maskPII(text)).toBe("string");
  });
});

describe("compileMaskPatterns", () => {
  it("compiles valid patterns and reports invalid ones", () => {
    const { patterns, errors } = compileMaskPatterns(["a+", "(", "b"]);
    expect(patterns.map((p) => p.source)).toEqual(["a+", "b"]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^mask pattern "\(": /);
    expect(maskPII("aa b c", patterns)).toBe("[MASKED] [MASKED] c");
  });
});

describe("luhnValid", () => {
  it.each([
    { digits: "4111111111111111", valid: true },
    { digits: "79927398713", valid: true },
    { digits: "79927398710", valid: false },
    { digits: "", valid: false },
    { digits: "12a4", valid: false },
  ])("$digits", ({ digits, valid }) => {
    expect(luhnValid(digits)).toBe(valid);
  });
});
