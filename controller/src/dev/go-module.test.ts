import { describe, expect, it } from "vitest";
import { goModuleDir, pinnedGoModuleDir } from "./go-module.ts";

// Only the refusals that need no network: the downloads themselves are exercised by
// test/integration/gitops-examples.test.ts against the real module proxy.
describe("goModuleDir", () => {
  it.each([
    ["not a module path", "argo-cd", "v3.5.7", /module "argo-cd" is not a Go module path/],
    ["a query instead of a version", "github.com/fluxcd/source-controller", "latest", /version "latest" of github.com\/fluxcd\/source-controller is not a pinned semantic version/],
    ["a version without its v", "github.com/fluxcd/source-controller", "1.9.6", /not a pinned semantic version/],
    ["a flag smuggled in as a version", "github.com/fluxcd/source-controller", "-json", /not a pinned semantic version/],
  ])("refuses %s", async (_what, module, version, message) => {
    await expect(goModuleDir(module, version)).rejects.toThrow(message);
  });

  it("names the missing key of hack/versions.env", async () => {
    await expect(pinnedGoModuleDir("github.com/fluxcd/source-controller", "NO_SUCH_VERSION")).rejects.toThrow(/hack\/versions.env has no NO_SUCH_VERSION/);
  });
});
