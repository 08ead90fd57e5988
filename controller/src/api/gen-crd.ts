/** Writes crds/airollout.yaml, crds/aipreview.yaml and the Helm chart's copies from the zod schemas. */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderCRD } from "./crd.ts";
import { renderPreviewCRD } from "./preview-crd.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
for (const [name, yaml] of [["airollout.yaml", renderCRD()], ["aipreview.yaml", renderPreviewCRD()]] as const) {
  for (const file of [`crds/${name}`, `charts/airollout/crds/${name}`]) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), yaml);
    console.log(`wrote ${file}`);
  }
}
