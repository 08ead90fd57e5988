/**
 * The AIPreview API (airollout.dev/v1alpha1): an ephemeral preview environment of a rollout's
 * service, declared as an object so GitOps tools (an Argo CD ApplicationSet pull-request
 * generator, a Flux Kustomization per branch) can create one per pull request.
 *
 * Like schema.ts, this file is the single source: types are inferred from it, the controller
 * validates with it, and crds/aipreview.yaml is generated from it (preview-crd.ts). CEL rules
 * the API server checks are mirrored by zod refinements, so both refuse the same objects.
 */
import { z } from "zod";
import { ConditionSchema, DURATION_PATTERN, GROUP, VERSION, VersionSchema, type ObjectMeta } from "./schema.ts";
import { parseDuration } from "./duration.ts";

export const PREVIEW_KIND = "AIPreview";
export const PREVIEW_PLURAL = "aipreviews";
export const PREVIEW_SINGULAR = "aipreview";
export const PREVIEW_SHORT_NAMES = ["aipv"];
/** Held while the preview may have a stack: deletion destroys it first. */
export const PREVIEW_FINALIZER = "airollout.dev/preview-environment";
/** A preview's lifetime when neither it nor its rollout's spec.preview.ttl names one. */
export const DEFAULT_PREVIEW_TTL = "24h";
/** Fixtures replayed when spec.fixtures.count is not given. */
export const DEFAULT_FIXTURE_COUNT = 50;

/** Object names as Kubernetes writes them (a DNS subdomain). */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

const cel = (rule: string, message: string, messageExpression?: string) => ({ rule, message, ...(messageExpression ? { messageExpression } : {}) });

const objectName = (description: string) =>
  z.string().min(1).max(253).regex(OBJECT_NAME, { message: "must be a Kubernetes object name (lowercase letters, digits, '-' and '.')" }).describe(description);

/** Whether a duration text is a positive duration (what the CEL rule on ttl checks). */
function positiveDuration(text: string): boolean {
  try {
    return parseDuration(text) > 0;
  } catch {
    return false;
  }
}

export const PreviewFixturesSchema = z
  .object({
    fromRollout: objectName("AIRollout (in the preview's namespace) whose recorded, masked webhooks are replayed to the preview and to the stable."),
    count: z.number().int().min(1).max(1000).default(DEFAULT_FIXTURE_COUNT).describe("How many recorded fixtures to replay, 1 to 1000 (default 50)."),
  })
  .describe("Replay recorded, masked production webhooks to the preview and to the stable once it is Ready, and report the diff in status.fixtures.");

export const PreviewSpecSchema = z
  .object({
    rolloutRef: z
      .object({ name: objectName("Name of the AIRollout, in the preview's namespace.") })
      .describe("The AIRollout the preview belongs to: its environments and Pulumi settings are used, its candidate is the default version and its stable the baseline of a fixture replay. Immutable: the stack is named after it.")
      .meta({ "x-kubernetes-validations": [cel("self == oldSelf", "rolloutRef is immutable: delete the preview and create another")] }),
    version: VersionSchema.optional().describe("The version to preview: a container image (stood up through Pulumi) or an external endpoint (its URL is the preview's). Defaults to the rollout's spec.candidate."),
    ttl: z
      .string()
      .max(32)
      .regex(new RegExp(DURATION_PATTERN), { message: "must be a duration such as 30m, 24h or 1h30m" })
      .refine(positiveDuration, { message: "must be a positive duration" })
      .describe("Lifetime of the preview, counted from the object's creation; then its stack is destroyed and the object kept with phase Expired. Defaults to the rollout's spec.preview.ttl, else 24h.")
      .meta({ "x-kubernetes-validations": [cel("duration(self) > duration('0s')", "ttl must be a positive duration")] })
      .optional(),
    fixtures: PreviewFixturesSchema.optional(),
  })
  .describe("An ephemeral preview environment of a version of an AIRollout's service.");

export const PREVIEW_PHASES = ["Pending", "Provisioning", "Ready", "Failed", "Expired", "Terminating"] as const;

export const PreviewFixturesStatusSchema = z
  .object({
    observedGeneration: z.number().int().optional().describe("The preview generation the replay ran for: fixtures are replayed once per generation."),
    replayed: z.number().int().optional().describe("Fixtures answered by both the preview and the stable."),
    mismatched: z.number().int().optional().describe("Replayed fixtures whose answers differ beyond the rollout's diff and noise rules."),
    errors: z.number().int().optional().describe("Fixtures that could not be compared (transport error, timeout, oversized answer)."),
    topFields: z
      .array(z.object({ path: z.string().describe("Field path."), mismatches: z.number().int().describe("Replayed fixtures in which it differed.") }).describe("A field that differed."))
      .optional()
      .describe("The fields that differed most often, most first."),
    source: z.string().optional().describe("Where the fixtures came from."),
    at: z.string().optional().describe("When the replay finished (RFC 3339)."),
    message: z.string().optional().describe("Why there is no (complete) evidence: fixtures not available, no stable URL, the replay failed."),
  })
  .describe("The last fixture replay against the preview and the stable.");

export const PreviewStatusSchema = z
  .object({
    observedGeneration: z.number().int().optional().describe("The spec generation this status describes."),
    phase: z.enum(PREVIEW_PHASES).optional().describe("Pending, Provisioning (the stack is being stood up), Ready (serving at url), Failed, Expired (ttl passed, stack destroyed, object kept), Terminating (deleted, stack being destroyed)."),
    url: z.string().optional().describe("Where the preview serves: its in-cluster Service URL, or the version's endpoint."),
    stack: z.string().optional().describe("The Pulumi stack of an image preview."),
    version: z.string().optional().describe("Version name deployed."),
    expiresAt: z.string().optional().describe("When the ttl passes (RFC 3339): the stack is destroyed then."),
    message: z.string().optional().describe("Human readable summary of the phase."),
    consecutiveFailures: z.number().int().optional().describe("Failed stand-ups in a row of this generation."),
    conditions: z.array(ConditionSchema).optional().describe("Ready, Reconciling, Stalled (kstatus conventions) and FixturesReplayed."),
    fixtures: PreviewFixturesStatusSchema.optional(),
  })
  .describe("Observed state of the preview, written by the controller only.");

export type PreviewSpec = z.output<typeof PreviewSpecSchema>;
export type PreviewStatus = z.output<typeof PreviewStatusSchema>;
export type PreviewPhase = (typeof PREVIEW_PHASES)[number];

/** The object as read from the API server. */
export interface AIPreview {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: unknown;
  status?: PreviewStatus;
}

/** Base path of AIPreviews in a namespace, or cluster-wide when namespace is undefined. */
export function previewsPath(namespace?: string): string {
  return namespace ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PREVIEW_PLURAL}` : `/apis/${GROUP}/${VERSION}/${PREVIEW_PLURAL}`;
}

/** Path of one AIPreview. */
export function previewPath(namespace: string, name: string): string {
  return `${previewsPath(namespace)}/${name}`;
}
