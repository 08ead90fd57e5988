/**
 * Generates the AIPreview CustomResourceDefinition from the zod schemas in preview-schema.ts,
 * with the same structural rewriting as the AIRollout CRD (crd.ts).
 */
import { stringify } from "yaml";
import { openAPI } from "./crd.ts";
import { GROUP, VERSION } from "./schema.ts";
import { PREVIEW_KIND, PREVIEW_PLURAL, PREVIEW_SHORT_NAMES, PREVIEW_SINGULAR, PreviewSpecSchema, PreviewStatusSchema } from "./preview-schema.ts";

type JSONSchema = Record<string, unknown>;

/** The AIPreview CRD object. */
export function buildPreviewCRD(): Record<string, unknown> {
  const status = openAPI(PreviewStatusSchema);
  const conditions = (status.properties as JSONSchema).conditions as JSONSchema;
  conditions["x-kubernetes-list-type"] = "map";
  conditions["x-kubernetes-list-map-keys"] = ["type"];
  // As for AIRollout: a new object reads observedGeneration 0 < generation 1, so kstatus sees
  // it InProgress until the controller has written a status.
  status.default = { observedGeneration: 0 };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${PREVIEW_PLURAL}.${GROUP}`, labels: { "app.kubernetes.io/part-of": "airollout" } },
    spec: {
      group: GROUP,
      names: { kind: PREVIEW_KIND, listKind: `${PREVIEW_KIND}List`, plural: PREVIEW_PLURAL, singular: PREVIEW_SINGULAR, shortNames: PREVIEW_SHORT_NAMES, categories: ["all", "airollout"] },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Rollout", type: "string", jsonPath: ".spec.rolloutRef.name", description: "The AIRollout the preview belongs to." },
            { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Where the preview is." },
            { name: "URL", type: "string", jsonPath: ".status.url", description: "Where the preview serves." },
            // A string, not a date: kubectl prints a date in the future as <invalid>.
            { name: "Expires", type: "string", jsonPath: ".status.expiresAt", description: "When the ttl passes and the stack is destroyed." },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: "AIPreview is an ephemeral preview environment of a version of an AIRollout's service: stood up through Pulumi (or an external endpoint), optionally replayed with recorded masked production webhooks, destroyed when its ttl passes or the object is deleted.",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string", description: "APIVersion defines the versioned schema of this representation of an object." },
                kind: { type: "string", description: "Kind is a string value representing the REST resource this object represents." },
                metadata: { type: "object" },
                spec: openAPI(PreviewSpecSchema),
                status,
              },
            },
          },
        },
      ],
    },
  };
}

/** The CRD as the YAML committed in crds/aipreview.yaml. */
export function renderPreviewCRD(): string {
  return "# Generated from controller/src/api/preview-schema.ts by `npm run gen:crd`. Do not edit.\n" + stringify(buildPreviewCRD(), { lineWidth: 0 });
}
