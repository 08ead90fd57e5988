import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { scanJsonStructure } from "./json.ts";

const STRICT = { maxDepth: 64, duplicateKeys: true };

describe("scanJsonStructure: duplicate keys", () => {
  it.each([
    { text: '{"a":1,"a":2}', path: "$.a", key: "a" },
    { text: '{"a":1,"\\u0061":2}', path: "$.a", key: "a" },
    { text: '{"x":{"y":[1,{"k":true,"k":false}]}}', path: "$.x.y[1].k", key: "k" },
    { text: '[0, "s", {"z": null}, [1, 2], {"q": 1, "q": 1}]', path: "$[4].q", key: "q" },
    { text: '{"a b":{"c":1},"a b":2}', path: '$["a b"]', key: "a b" },
    { text: '{"__proto__":1,"__proto__":2}', path: "$.__proto__", key: "__proto__" },
    { text: '{"s":"a \\" , \\"s\\": 1","s":2}', path: "$.s", key: "s" },
    { text: ' { "a" : 1 ,\n "b" : { } , "a" : [ ] } ', path: "$.a", key: "a" },
  ])("finds $path in $text", ({ text, path, key }) => {
    expect(scanJsonStructure(text, STRICT)).toEqual({ kind: "duplicate_key", path, key });
  });

  it.each([
    '{"a":1,"b":2}',
    '[{"a":1},{"a":2}]',
    '{"a":{"a":{"a":1}}}',
    '{"a":"\\"a\\":1"}',
    '{"ab":1,"a":2,"b":3}',
    '"just a string"',
    "42",
    "[]",
  ])("same key in different objects or inside strings is no duplicate: %s", (text) => {
    expect(scanJsonStructure(text, STRICT)).toBeUndefined();
  });

  it("ignores duplicates when they are allowed", () => {
    expect(scanJsonStructure('{"a":1,"a":2}', { maxDepth: 64, duplicateKeys: false })).toBeUndefined();
  });

  it("agrees with JSON.parse on generated documents: none reported in serialised values, the repeated key found once added", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.string({ maxLength: 8 }), (value, key) => {
        const text = JSON.stringify(value);
        expect(scanJsonStructure(text, { maxDepth: 100, duplicateKeys: true })).toBeUndefined();
        const doubled = `{${JSON.stringify(key)}:${text},${JSON.stringify(key)}:0}`;
        expect(scanJsonStructure(doubled, { maxDepth: 100, duplicateKeys: true })).toMatchObject({ kind: "duplicate_key", key });
      }),
      { seed: 16, numRuns: 300 },
    );
  });
});

describe("scanJsonStructure: depth", () => {
  it("allows exactly maxDepth levels and reports the first deeper container with its path", () => {
    expect(scanJsonStructure("[[[1]]]", { maxDepth: 3, duplicateKeys: true })).toBeUndefined();
    expect(scanJsonStructure("[[[[1]]]]", { maxDepth: 3, duplicateKeys: true })).toEqual({ kind: "too_deep", limit: 3, path: "$[0][0][0]" });
    expect(scanJsonStructure('{"a":[1,{"b":{}}]}', { maxDepth: 3, duplicateKeys: true })).toEqual({ kind: "too_deep", limit: 3, path: "$.a[1].b" });
  });

  it("stops at the limit on a 100,000-deep body (no recursion, no stack of its depth)", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    expect(scanJsonStructure(deep, { maxDepth: 128, duplicateKeys: true })).toMatchObject({ kind: "too_deep", limit: 128 });
    const deepObjects = '{"a":'.repeat(100_000) + "1" + "}".repeat(100_000);
    expect(scanJsonStructure(deepObjects, { maxDepth: 128, duplicateKeys: true })).toMatchObject({ kind: "too_deep", path: `$${".a".repeat(128)}` });
  });

  it("brackets inside strings do not count", () => {
    expect(scanJsonStructure('{"a":"[[[[[[{{{{\\"[["}', { maxDepth: 1, duplicateKeys: true })).toBeUndefined();
  });
});

describe("scanJsonStructure: malformed text", () => {
  it.each(['{"a":1', '{"a', "]]]", '{"a\\x":1,"a\\x":2}', '{"a":"unterminated'])("reports nothing for JSON.parse to refuse: %s", (text) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(scanJsonStructure(text, STRICT)).toBeUndefined();
  });
});
