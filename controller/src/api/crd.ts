/**
 * Generates the AIRollout CustomResourceDefinition from the zod schemas in schema.ts.
 * The output is a structural OpenAPI v3 schema (what the API server requires), so pruning,
 * defaulting, CEL validation and `kubectl explain` all work from one source.
 */
import { z } from "zod";
import { stringify } from "yaml";
import { GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, SpecSchema, StatusSchema, VERSION } from "./schema.ts";

type JSONSchema = Record<string, unknown>;

const SAFE_INT = Number.MAX_SAFE_INTEGER - 1;

/** Rewrites zod's JSON Schema output into the structural subset Kubernetes accepts. */
export function toStructural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toStructural);
  if (node === null || typeof node !== "object") return node;
  const src = node as JSONSchema;
  const out: JSONSchema = {};
  for (const [key, value] of Object.entries(src)) {
    if (key === "$schema") continue;
    if (key === "additionalProperties" && value === false) continue;
    if ((key === "minimum" || key === "maximum") && typeof value === "number" && Math.abs(value) > SAFE_INT) continue;
    if (key === "properties" || key === "patternProperties") {
      out[key] = Object.fromEntries(Object.entries(value as JSONSchema).map(([k, v]) => [k, toStructural(v)]));
      continue;
    }
    out[key] = toStructural(value);
  }
  // z.looseObject({}) is a free-form object: keep what users put in it.
  const props = out.properties as JSONSchema | undefined;
  const addl = out.additionalProperties;
  if (out.type === "object" && props && Object.keys(props).length === 0 && addl !== undefined && typeof addl === "object" && Object.keys(addl as object).length === 0) {
    delete out.properties;
    delete out.additionalProperties;
    out["x-kubernetes-preserve-unknown-fields"] = true;
  }
  return out;
}

/** A zod schema as a structural OpenAPI v3 schema (AIPreview's CRD uses it too). */
export function openAPI(schema: z.ZodType): JSONSchema {
  return toStructural(z.toJSONSchema(schema, { target: "openapi-3.0", io: "input", unrepresentable: "any" })) as JSONSchema;
}

/** What sets one of the project's kinds apart in its CRD; the rest is common (kindCRD). */
export interface KindCRDInput {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  /**
   * kubectl categories. Only AIRollout may be in "airollout": the category shares the name of
   * its singular, and a category naming two kinds makes `kubectl get airollout NAME` ambiguous.
   */
  categories: string[];
  /** The object's description, for `kubectl explain`. */
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: Record<string, unknown>[];
}

/**
 * A namespaced CRD of the airollout.dev group with a status subresource whose conditions are a
 * map keyed by type (server-side apply merges them per type), for AIRollout and AIPreview alike.
 */
export function kindCRD(k: KindCRDInput): Record<string, unknown> {
  const status = openAPI(k.status);
  const conditions = (status.properties as JSONSchema).conditions as JSONSchema;
  conditions["x-kubernetes-list-type"] = "map";
  conditions["x-kubernetes-list-map-keys"] = ["type"];
  // A new object reads status.observedGeneration 0 < generation 1, so kstatus (Flux, kubectl
  // wait tools) sees it InProgress until the controller has written a status, never Current.
  status.default = { observedGeneration: 0 };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${k.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/part-of": "airollout" },
    },
    spec: {
      group: GROUP,
      names: { kind: k.kind, listKind: `${k.kind}List`, plural: k.plural, singular: k.singular, shortNames: k.shortNames, categories: k.categories },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: k.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string", description: "APIVersion defines the versioned schema of this representation of an object." },
                kind: { type: "string", description: "Kind is a string value representing the REST resource this object represents." },
                metadata: { type: "object" },
                spec: openAPI(k.spec),
                status,
              },
            },
          },
        },
      ],
    },
  };
}

/** The CRD object. */
export function buildCRD(): Record<string, unknown> {
  return kindCRD({
    kind: KIND,
    plural: PLURAL,
    singular: SINGULAR,
    shortNames: SHORT_NAMES,
    categories: ["all", "airollout"],
    description: "AIRollout rolls a new version (image, model, prompt) of an AI-backed webhook service out safely: shadow traffic with structured diffs, canary steps, SLO analysis against Prometheus, automatic promotion or rollback, with environments stood up through Pulumi.",
    spec: SpecSchema,
    status: StatusSchema,
    printerColumns: [
      { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Where the rollout is." },
      { name: "Weight", type: "integer", jsonPath: ".status.canaryWeight", description: "Percent of requests sent to the candidate." },
      { name: "Step", type: "integer", jsonPath: ".status.currentStep", description: "Index of the step in progress." },
      { name: "Shadow mismatch", type: "string", jsonPath: ".status.shadow.mismatchRate", description: "Share of shadow comparisons with a flagged field." },
      { name: "Stable", type: "string", jsonPath: ".status.stableVersion", priority: 1, description: "Stable version." },
      { name: "Candidate", type: "string", jsonPath: ".status.candidateVersion", priority: 1, description: "Candidate version." },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
  });
}

/** The CRD as the YAML committed in crds/airollout.yaml. */
export function renderCRD(): string {
  return "# Generated from controller/src/api/schema.ts by `npm run gen:crd`. Do not edit.\n" + stringify(buildCRD(), { lineWidth: 0 });
}
