import { describe, expect, it } from "vitest";
import { FIELD_PATH_PATTERN } from "../api/schema.ts";
import { keySegment, parseFieldPath } from "./path.ts";

describe("parseFieldPath", () => {
  it.each([
    { path: "$", segments: [] },
    { path: "$.a", segments: [{ kind: "key", key: "a" }] },
    { path: "$.a.b_c-d", segments: [{ kind: "key", key: "a" }, { kind: "key", key: "b_c-d" }] },
    { path: "$.items[*].score", segments: [{ kind: "key", key: "items" }, { kind: "any" }, { kind: "key", key: "score" }] },
    { path: "$[0][12]", segments: [{ kind: "index", index: 0 }, { kind: "index", index: 12 }] },
    { path: "$.__proto__", segments: [{ kind: "key", key: "__proto__" }] },
  ])("$path", ({ path, segments }) => {
    expect(new RegExp(FIELD_PATH_PATTERN).test(path)).toBe(true);
    expect(parseFieldPath(path)).toEqual(segments);
  });

  it.each(["", "a", "$.", "$..a", "$.a.", "$[a]", "$[-1]", "$[1.5]", "$[]", "$[*", "$.a b", "$.a[0]x", "$['a']"])("rejects %j like FIELD_PATH_PATTERN", (path) => {
    expect(new RegExp(FIELD_PATH_PATTERN).test(path)).toBe(false);
    expect(() => parseFieldPath(path)).toThrow(/invalid field path/);
  });
});

describe("keySegment", () => {
  it.each([
    { key: "abc", seg: ".abc" },
    { key: "a_b-1", seg: ".a_b-1" },
    { key: "", seg: '[""]' },
    { key: "a.b", seg: '["a.b"]' },
    { key: 'q"uote', seg: '["q\\"uote"]' },
    { key: "[0]", seg: '["[0]"]' },
  ])("$key -> $seg", ({ key, seg }) => {
    expect(keySegment(key)).toBe(seg);
  });
});
