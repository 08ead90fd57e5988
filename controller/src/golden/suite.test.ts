import { describe, expect, it } from "vitest";
import { checkCase, parseSuite, summarize, verdict, SUITE_LIMITS, type GoldenCase } from "./suite.ts";

const yamlSuite = `
version: 3
cases:
  - name: refund
    request: { headers: { x-tenant-id: acme }, body: { text: "I want my money back" } }
    expect:
      schema: { type: object, required: [intent] }
      fields:
        $.intent: { label: refund }
        $.confidence: { tolerance: { value: 0.9, relative: 0.03 } }
        $.summary: { similarity: { text: "customer wants a refund", min: 0.5 } }
        $.tags[0]: { equals: money }
`;

function theCase(): GoldenCase {
  const p = parseSuite(yamlSuite);
  if (!p.ok) throw new Error(p.message);
  return p.suite.cases[0]!;
}

const good = { intent: "refund", confidence: 0.92, summary: "customer wants a refund now", tags: ["money"] };

describe("parseSuite", () => {
  it("reads YAML and JSON; the version is text", () => {
    const p = parseSuite(yamlSuite);
    expect(p.ok && p.suite.version).toBe("3");
    const j = parseSuite(JSON.stringify({ version: "a", cases: [{ name: "x", request: { body: {} }, expect: { status: 201, fields: { "$.ok": { equals: true } } } }] }));
    expect(j.ok && j.suite.cases[0]!.expect.status).toBe(201);
  });

  it.each([
    ["no cases", `{"version": 1, "cases": []}`, "cases: a suite with no case is no evidence"],
    ["no version", `{"cases": []}`, "version:"],
    ["a case that expects nothing", `{"version": 1, "cases": [{"name": "x", "request": {"body": 1}, "expect": {}}]}`, "cases[0].expect: expect nothing: set schema or fields"],
    ["two rules on a field", `{"version": 1, "cases": [{"name": "x", "request": {"body": 1}, "expect": {"fields": {"$.a": {"equals": 1, "label": "b"}}}}]}`, 'cases[0].expect.fields.$.a: set exactly one of equals, label, tolerance, similarity'],
    ["a bad path", `{"version": 1, "cases": [{"name": "x", "request": {"body": 1}, "expect": {"fields": {"a.b": {"equals": 1}}}}]}`, "cases[0].expect.fields.a.b"],
    ["a tolerance without band", `{"version": 1, "cases": [{"name": "x", "request": {"body": 1}, "expect": {"fields": {"$.a": {"tolerance": {"value": 1}}}}}]}`, "set absolute, relative or both"],
    ["an unknown field", `{"version": 1, "cases": [{"name": "x", "request": {"body": 1}, "expect": {"fields": {"$.a": {"equals": 1}}}}], "extra": 1}`, "Unrecognized key"],
    ["an invalid schema", `{"version": 1, "cases": [{"name": "x", "request": {"body": 1}, "expect": {"schema": {"type": 5}}}]}`, "cases[0].expect.schema: invalid JSON Schema"],
    ["not YAML", "cases: [", "suite is neither JSON nor YAML"],
  ])("refuses %s, naming the field", (_what, text, message) => {
    const p = parseSuite(text);
    expect(p.ok).toBe(false);
    if (!p.ok) expect(p.message).toContain(message);
  });

  it("is bounded: too many cases and too many bytes", () => {
    const many = { version: 1, cases: Array.from({ length: SUITE_LIMITS.maxCases + 1 }, (_, i) => ({ name: `c${i}`, request: { body: {} }, expect: { fields: { "$.a": { equals: 1 } } } })) };
    expect(parseSuite(JSON.stringify(many))).toMatchObject({ ok: false, message: expect.stringContaining("cases:") });
    expect(parseSuite(" ".repeat(SUITE_LIMITS.maxBytes + 1))).toMatchObject({ ok: false, message: `suite larger than ${SUITE_LIMITS.maxBytes} bytes` });
  });
});

describe("checkCase: the diff engine's rules per field", () => {
  it("passes an answer within every rule", () => {
    expect(checkCase(theCase(), { ok: true, status: 200, body: good })).toEqual({ name: "refund", pass: true, answered: true, reasons: [] });
  });

  it.each([
    ["a different label", { ...good, intent: "billing" }, "$.intent:"],
    ["a score outside the band", { ...good, confidence: 0.8 }, "$.confidence:"],
    ["dissimilar text", { ...good, summary: "the weather is nice" }, "$.summary:"],
    ["a different value", { ...good, tags: ["other"] }, "$.tags[0]:"],
    ["a missing field", { intent: "refund", summary: good.summary, tags: good.tags }, "$.confidence: missing"],
    ["a body failing the schema", { ...good, intent: undefined }, "schema:"],
  ])("fails %s", (_what, body, reason) => {
    const r = checkCase(theCase(), { ok: true, status: 200, body: JSON.parse(JSON.stringify(body)) });
    expect(r.pass).toBe(false);
    expect(r.reasons.join("; ")).toContain(reason);
  });

  it("fails a non-2xx status and an unanswered request", () => {
    expect(checkCase(theCase(), { ok: true, status: 500, body: good }).reasons).toEqual(["status 500, expected 2xx"]);
    expect(checkCase(theCase(), { ok: false, error: "ECONNREFUSED" })).toMatchObject({ pass: false, answered: false, reasons: ["no answer: ECONNREFUSED"] });
  });

  it("masks personal data in the reasons", () => {
    const r = checkCase(theCase(), { ok: true, status: 200, body: { ...good, intent: "mail jane.doe@example.com" } });
    expect(r.reasons.join()).toContain("[EMAIL]");
    expect(r.reasons.join()).not.toContain("jane.doe");
  });
});

describe("summarize and verdict (fail closed)", () => {
  it("counts, keeps the first 10 failures, and judges against maxFailures", () => {
    const results = Array.from({ length: 15 }, (_, i) => ({ name: `c${i}`, pass: i < 3, answered: true, reasons: ["bad"] }));
    const s = summarize(results);
    expect(s).toMatchObject({ total: 15, answered: 15, passed: 3, failed: 12 });
    expect(s.failures).toHaveLength(10);
    expect(verdict(s, 11)).toBe("Failed");
    expect(verdict(s, 12)).toBe("Passed");
  });

  it("no case run, or none answered, is Error, never a pass", () => {
    expect(verdict(summarize([]), 100)).toBe("Error");
    expect(verdict(summarize([{ name: "a", pass: false, answered: false, reasons: ["no answer"] }]), 100)).toBe("Error");
  });
});
