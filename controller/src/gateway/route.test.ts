import { describe, expect, it } from "vitest";
import { parseHookUrl } from "./route.ts";

describe("parseHookUrl", () => {
  it.each([
    ["/hooks/ns/bot", { namespace: "ns", name: "bot", path: "/" }],
    ["/hooks/ns/bot/", { namespace: "ns", name: "bot", path: "/" }],
    ["/hooks/ns/bot/v1/triage", { namespace: "ns", name: "bot", path: "/v1/triage" }],
    ["/hooks/ns/bot/a/b?x=1&y=%20", { namespace: "ns", name: "bot", path: "/a/b?x=1&y=%20" }],
    ["/hooks/ns/bot?x=1", { namespace: "ns", name: "bot", path: "/?x=1" }],
    // Segments are normalised: an escaped slash stays inside its segment, spaces are escaped.
    ["/hooks/ns/bot/a%2Fb/c d", { namespace: "ns", name: "bot", path: "/a%2Fb/c%20d" }],
    ["/hooks/n%73/bot/x", { namespace: "ns", name: "bot", path: "/x" }],
  ])("%s", (url, want) => {
    expect(parseHookUrl(url)).toEqual(want);
  });

  it.each(["/", "/hooks", "/hooks/", "/hooks/ns", "/hooks/ns/", "/hooks//bot", "/api/rollouts/ns/bot/diffs", "/hooksx/ns/bot"])("%s is not a webhook URL", (url) => {
    expect(parseHookUrl(url)).toBeUndefined();
  });

  it("names a malformed escape instead of throwing", () => {
    expect(parseHookUrl("/hooks/ns/bot/%E0%A4%A")).toEqual({ error: expect.stringContaining("malformed %-escape") });
    expect(parseHookUrl("/hooks/%zz/bot")).toEqual({ error: expect.stringContaining("/hooks/%zz/bot") });
  });
});
