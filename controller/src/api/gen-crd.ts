/** Writes crds/airollout.yaml and the Helm chart's copy from the zod schemas. */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderCRD } from "./crd.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const yaml = renderCRD();
for (const file of ["crds/airollout.yaml", "charts/airollout/crds/airollout.yaml"]) {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), yaml);
  console.log(`wrote ${file}`);
}
