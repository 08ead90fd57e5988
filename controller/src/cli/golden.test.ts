import { describe, expect, it } from "vitest";
import { parseSuite } from "../golden/suite.ts";
import { expectationsOf, junitXml } from "./golden.ts";

describe("golden record: expectations from the stable's answer", () => {
  it("numbers get a relative band, strings label equality, booleans equality; strings with personal data are left out", () => {
    const fields = expectationsOf({ score: 0.8, intent: "refund", urgent: true, contact: "write to jane.doe@example.com", nested: { lang: "en" }, list: [1] }, 0.03);
    expect(fields).toEqual({
      "$.score": { tolerance: { value: 0.8, relative: 0.03 } },
      "$.intent": { label: "refund" },
      "$.urgent": { equals: true },
      "$.nested.lang": { label: "en" },
    });
  });
});

describe("golden run: JUnit XML", () => {
  it("escapes names and reasons, and counts unanswered cases as errors", () => {
    const p = parseSuite(JSON.stringify({ version: "v<1>", cases: [{ name: "a&b", request: { body: {} }, expect: { fields: { "$.a": { equals: 1 } } } }] }));
    if (!p.ok) throw new Error(p.message);
    const xml = junitXml(p.suite, [
      { name: "a&b", pass: false, answered: true, reasons: ['$.a: "x" vs <y>'] },
      { name: "c", pass: false, answered: false, reasons: ["no answer: ECONNREFUSED"] },
    ], 1.5);
    expect(xml).toContain('<testsuites tests="2" failures="1" errors="1" time="1.500">');
    expect(xml).toContain('name="a&amp;b"');
    expect(xml).toContain('classname="golden v&lt;1&gt;"');
    expect(xml).toContain("&quot;x&quot; vs &lt;y&gt;");
    expect(xml).toContain('<error message="no answer: ECONNREFUSED">');
  });
});
