/**
 * Generates the AIPreview CustomResourceDefinition from the zod schemas in preview-schema.ts,
 * through the same builder as the AIRollout CRD (crd.ts kindCRD).
 */
import { stringify } from "yaml";
import { kindCRD } from "./crd.ts";
import { PREVIEW_KIND, PREVIEW_PLURAL, PREVIEW_SHORT_NAMES, PREVIEW_SINGULAR, PreviewSpecSchema, PreviewStatusSchema } from "./preview-schema.ts";

/** The AIPreview CRD object. */
export function buildPreviewCRD(): Record<string, unknown> {
  return kindCRD({
    kind: PREVIEW_KIND,
    plural: PREVIEW_PLURAL,
    singular: PREVIEW_SINGULAR,
    shortNames: PREVIEW_SHORT_NAMES,
    // Not "airollout": that category is AIRollout's singular, and sharing it broke `kubectl get airollout NAME`.
    categories: ["all"],
    description: "AIPreview is an ephemeral preview environment of a version of an AIRollout's service: stood up through Pulumi (or an external endpoint), optionally replayed with recorded masked production webhooks, destroyed when its ttl passes or the object is deleted.",
    spec: PreviewSpecSchema,
    status: PreviewStatusSchema,
    printerColumns: [
      { name: "Rollout", type: "string", jsonPath: ".spec.rolloutRef.name", description: "The AIRollout the preview belongs to." },
      { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Where the preview is." },
      { name: "URL", type: "string", jsonPath: ".status.url", description: "Where the preview serves." },
      // A string, not a date: kubectl prints a date in the future as <invalid>.
      { name: "Expires", type: "string", jsonPath: ".status.expiresAt", description: "When the ttl passes and the stack is destroyed." },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
  });
}

/** The CRD as the YAML committed in crds/aipreview.yaml. */
export function renderPreviewCRD(): string {
  return "# Generated from controller/src/api/preview-schema.ts by `npm run gen:crd`. Do not edit.\n" + stringify(buildPreviewCRD(), { lineWidth: 0 });
}
