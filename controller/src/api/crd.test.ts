import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildCRD, renderCRD, toStructural } from "./crd.ts";
import { PROJECT_ROOT } from "../dev/tools.ts";

describe("CRD generation", () => {
  it("the committed crds/airollout.yaml matches the zod schemas (run `npm run gen:crd` after changing them)", () => {
    expect(readFileSync(join(PROJECT_ROOT, "crds", "airollout.yaml"), "utf8")).toBe(renderCRD());
  });
  it("the Helm chart's copy matches too", () => {
    expect(readFileSync(join(PROJECT_ROOT, "charts", "airollout", "crds", "airollout.yaml"), "utf8")).toBe(renderCRD());
  });

  it("gives every spec field a description (kubectl explain shows them)", () => {
    const missing: string[] = [];
    const walk = (node: Record<string, unknown>, path: string) => {
      if (!node.description) missing.push(path);
      const props = node.properties as Record<string, Record<string, unknown>> | undefined;
      for (const [k, v] of Object.entries(props ?? {})) walk(v, `${path}.${k}`);
      const items = node.items as Record<string, unknown> | undefined;
      if (items && (items.properties || items.type === "object")) walk(items, `${path}[]`);
    };
    const crd = buildCRD() as { spec: { versions: { schema: { openAPIV3Schema: { properties: Record<string, Record<string, unknown>> } } }[] } };
    const root = crd.spec.versions[0]!.schema.openAPIV3Schema.properties;
    walk(root.spec!, "spec");
    walk(root.status!, "status");
    expect(missing).toEqual([]);
  });

  it("is structural: no additionalProperties next to properties, free-form objects preserve fields", () => {
    const bad: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (!node || typeof node !== "object") return;
      const n = node as Record<string, unknown>;
      if (n.properties && n.additionalProperties !== undefined) bad.push(path);
      for (const [k, v] of Object.entries(n)) walk(v, `${path}/${k}`);
    };
    walk(buildCRD(), "");
    expect(bad).toEqual([]);
    expect(toStructural({ type: "object", properties: {}, additionalProperties: {} })).toEqual({ type: "object", "x-kubernetes-preserve-unknown-fields": true });
  });
});
