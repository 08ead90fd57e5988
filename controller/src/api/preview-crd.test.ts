import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../dev/tools.ts";
import { buildPreviewCRD, renderPreviewCRD } from "./preview-crd.ts";
import { PreviewSpecSchema } from "./preview-schema.ts";

type Node = Record<string, unknown>;

describe("AIPreview CRD generation", () => {
  it("the committed crds/aipreview.yaml and the chart's copy match the zod schemas (run `npm run gen:crd` after changing them)", () => {
    expect(readFileSync(join(PROJECT_ROOT, "crds", "aipreview.yaml"), "utf8")).toBe(renderPreviewCRD());
    expect(readFileSync(join(PROJECT_ROOT, "charts", "airollout", "crds", "aipreview.yaml"), "utf8")).toBe(renderPreviewCRD());
  });

  it("gives every spec and status field a description, and defaults status.observedGeneration to 0", () => {
    const missing: string[] = [];
    const walk = (node: Node, path: string) => {
      if (!node.description) missing.push(path);
      for (const [k, v] of Object.entries((node.properties as Record<string, Node> | undefined) ?? {})) walk(v, `${path}.${k}`);
      const items = node.items as Node | undefined;
      if (items && (items.properties || items.type === "object")) walk(items, `${path}[]`);
    };
    const crd = buildPreviewCRD() as { spec: { versions: { schema: { openAPIV3Schema: { properties: Record<string, Node> } } }[] } };
    const root = crd.spec.versions[0]!.schema.openAPIV3Schema.properties;
    walk(root.spec!, "spec");
    walk(root.status!, "status");
    expect(missing).toEqual([]);
    expect(root.status!.default).toEqual({ observedGeneration: 0 });
  });
});

describe("AIPreview spec (zod, mirrored by the CRD's CEL rules)", () => {
  const parse = (spec: unknown) => PreviewSpecSchema.safeParse(spec);
  it("needs rolloutRef; version, ttl and fixtures are optional; fixtures.count defaults to 50", () => {
    expect(parse({}).success).toBe(false);
    const ok = parse({ rolloutRef: { name: "support-bot" }, fixtures: { fromRollout: "support-bot" } });
    expect(ok.success).toBe(true);
    expect(ok.data!.fixtures!.count).toBe(50);
  });
  it.each([["0s"], ["0h0m"], ["5"], ["-1h"], [""]])("refuses ttl %j", (ttl) => {
    expect(parse({ rolloutRef: { name: "bot" }, ttl }).success).toBe(false);
  });
  it.each([[0], [1001], [2.5]])("refuses fixtures.count %j", (count) => {
    expect(parse({ rolloutRef: { name: "bot" }, fixtures: { fromRollout: "bot", count } }).success).toBe(false);
  });
  it("refuses a version with both image and endpoint, as AIRollout does", () => {
    expect(parse({ rolloutRef: { name: "bot" }, version: { version: "v3", image: "r/x:3", endpoint: "http://x" } }).success).toBe(false);
  });
});
