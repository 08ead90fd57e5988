/**
 * The AIRollout API (airollout.dev/v1alpha1), as zod schemas.
 *
 * This file is the single source of truth: TypeScript types are inferred from it, the controller
 * validates with it, and crds/airollout.yaml is generated from it (see crd.ts). Every field has a
 * description because `kubectl explain` shows them. Cross-field rules that the API server can
 * check are attached as CEL (`x-kubernetes-validations`) through `.meta()` and mirrored by zod
 * refinements so the controller and the API server agree.
 */
import { z } from "zod";
import { compileJsonSchema } from "../diff/json-schema.ts";

export const GROUP = "airollout.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "AIRollout";
export const PLURAL = "airollouts";
export const SINGULAR = "airollout";
export const SHORT_NAMES = ["air"];
export const FINALIZER = "airollout.dev/environments";

/**
 * Human controls, as annotations (what `airollout promote|abort|retry` sets). Each new value acts
 * once: promote `step[-<id>]` completes the current step, `full[-<id>]` skips to promotion;
 * abort rolls back; retry restarts a rolled-back rollout from step 0.
 */
export const ANNOTATIONS = {
  promote: "airollout.dev/promote",
  abort: "airollout.dev/abort",
  retry: "airollout.dev/retry",
} as const;

/** Go-style durations: 500ms, 30s, 5m, 1h30m. */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";

const cel = (rule: string, message: string, fieldPath?: string) => ({
  rule,
  message,
  ...(fieldPath ? { fieldPath } : {}),
});

const duration = (description: string) =>
  z
    .string()
    .max(32)
    .regex(new RegExp(DURATION_PATTERN), { message: "must be a duration such as 30s, 5m or 1h30m" })
    .describe(description);

/** A JSONPath-like field path in a JSON body: `$`, `$.a.b`, `$.items[*].label`, `$.items[0]`. */
export const FIELD_PATH_PATTERN = "^\\$(\\.[A-Za-z0-9_-]+|\\[(\\*|[0-9]+)\\])*$";
const fieldPath = (description: string) =>
  z
    .string()
    .max(256)
    .regex(new RegExp(FIELD_PATH_PATTERN), { message: "must be a field path such as $.intent or $.items[*].score" })
    .describe(description);

const secretKeyRef = (description: string) =>
  z
    .object({
      name: z.string().min(1).max(253).describe("Name of the Secret, in the AIRollout's namespace."),
      key: z.string().min(1).max(253).describe("Key within the Secret's data."),
    })
    .describe(description);

const freeForm = (description: string) =>
  z.looseObject({}).describe(description);

/**
 * A JSON Schema field: free-form in the CRD, compiled whenever the spec is read, so a schema the
 * validator would not enforce as written (unknown keyword, unknown format, remote $ref, bad
 * pattern) is an invalid spec naming the field, not a gateway log line. The refinement is
 * invisible to the CRD generator.
 */
const jsonSchemaField = (description: string) =>
  z
    .looseObject({})
    .superRefine((schema, ctx) => {
      try {
        compileJsonSchema(schema);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: `invalid JSON Schema: ${(err as Error).message}` });
      }
    })
    .describe(description);

// ---------------------------------------------------------------------------------------------
// Versions

export const ModelConfigSchema = z
  .object({
    model: z.string().max(253).optional().describe("Model name the version calls (for example gpt-small or llama-3-8b). A change starts a new rollout."),
    temperature: z.number().min(0).max(2).optional().describe("Sampling temperature passed to the service as AIROLLOUT_TEMPERATURE."),
    maxTokens: z.number().int().min(1).max(10_000_000).optional().describe("Maximum output tokens passed to the service as AIROLLOUT_MAX_TOKENS."),
    prompt: z.string().max(65_536).optional().describe("Inline prompt template. Use promptRef for long prompts."),
    promptRef: z
      .object({
        configMap: z.string().min(1).max(253).describe("ConfigMap holding the prompt, in the AIRollout's namespace."),
        key: z.string().min(1).max(253).describe("Key of the prompt in the ConfigMap."),
      })
      .optional()
      .describe("Prompt template stored in a ConfigMap. Its content is hashed into the rollout's revision, so editing it starts a new rollout."),
    extra: z
      .record(z.string(), z.string())
      .optional()
      .describe("Further named settings (for example top_p, retrieval index) passed to the service as environment variables AIROLLOUT_CONFIG_<KEY>."),
  })
  .describe("Model and prompt configuration of a version: the named, tracked dimensions of an AI rollout.");

const keyRef = (kind: "Secret" | "ConfigMap") =>
  z
    .object({
      name: z.string().min(1).max(253).describe(`Name of the ${kind}, in the AIRollout's namespace.`),
      key: z.string().min(1).max(253).describe(`Key within the ${kind}'s data.`),
    })
    .describe(`A key of a ${kind}. Its content is hashed into the revision, so editing it starts a new rollout.`);

/** An environment variable of a version's container: a literal value or a Secret/ConfigMap key, as in a Pod spec. */
export const EnvVarSchema = z
  .object({
    name: z.string().min(1).max(253).describe("Variable name."),
    value: z.string().max(32_768).optional().describe("Variable value. Exactly one of value and valueFrom is set."),
    valueFrom: z
      .object({
        secretKeyRef: keyRef("Secret").optional(),
        configMapKeyRef: keyRef("ConfigMap").optional(),
      })
      .describe("Where the value comes from: exactly one of secretKeyRef and configMapKeyRef.")
      .meta({ "x-kubernetes-validations": [cel("has(self.secretKeyRef) != has(self.configMapKeyRef)", "exactly one of secretKeyRef and configMapKeyRef must be set")] })
      .refine((f) => (f.secretKeyRef === undefined) !== (f.configMapKeyRef === undefined), { message: "exactly one of secretKeyRef and configMapKeyRef must be set" })
      .optional(),
  })
  .describe("An environment variable.")
  .meta({ "x-kubernetes-validations": [cel("has(self.value) != has(self.valueFrom)", "exactly one of value and valueFrom must be set")] })
  .refine((e) => (e.value === undefined) !== (e.valueFrom === undefined), { message: "exactly one of value and valueFrom must be set" });

export const VersionSchema = z
  .object({
    version: z.string().min(1).max(63).regex(/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/, { message: "must be a label-safe name such as v2 or 2024-06-01" }).describe("Version name, used as the `version` label on metrics, resources and stacks."),
    image: z.string().min(1).max(512).optional().describe("Container image of the version. airollout stands up its environment through Pulumi. Exactly one of image and endpoint is set."),
    endpoint: z.string().max(2048).regex(/^https?:\/\/.+/, { message: "must be an http:// or https:// URL" }).optional().describe("External endpoint URL of an already running version (no environment is created). Exactly one of image and endpoint is set."),
    port: z.number().int().min(1).max(65535).default(8080).describe("Container port the service listens on (image versions)."),
    replicas: z.number().int().min(0).max(1000).default(1).describe("Replicas of the version's Deployment (image versions)."),
    env: z
      .array(EnvVarSchema)
      .max(128)
      .optional()
      .describe("Extra environment variables of the version's container."),
    resources: freeForm("Container resources (requests/limits), as in a Pod spec.").optional(),
    config: ModelConfigSchema.optional(),
  })
  .describe("One version of the service: a container image or an external endpoint, plus its model/prompt configuration.")
  .meta({
    "x-kubernetes-validations": [
      cel("has(self.image) != has(self.endpoint)", "exactly one of image and endpoint must be set"),
    ],
  })
  .refine((v) => (v.image === undefined) !== (v.endpoint === undefined), {
    message: "exactly one of image and endpoint must be set",
  });

// ---------------------------------------------------------------------------------------------
// Traffic and webhook guardrails

export const TrafficSchema = z
  .object({
    stickyBy: z
      .string()
      .max(256)
      .regex(/^(header:[A-Za-z0-9-]+|json:\$(\.[A-Za-z0-9_-]+)+)$/, { message: "must be header:<name> or json:$.<path>" })
      .optional()
      .describe("Key that keeps one tenant on one version while the weight holds: header:<name> or json:$.<path>. Consistent hashing; without it requests are split at random."),
    payloadSchema: jsonSchemaField("JSON Schema every incoming webhook body must satisfy. Invalid payloads are answered 422 and quarantined.").optional(),
    maxBodyBytes: z.number().int().min(1).max(64 * 1024 * 1024).default(1_048_576).describe("Largest accepted webhook body in bytes; larger bodies are answered 413 and quarantined."),
    maxJsonDepth: z.number().int().min(1).max(1000).default(128).describe("Deepest nesting of JSON arrays and objects accepted in a webhook body ({} is 1); deeper bodies are answered 400 (too_deep) and quarantined."),
    allowDuplicateKeys: z.boolean().default(false).describe("Forward bodies with a key repeated in one JSON object. By default they are answered 400 (duplicate_key, naming the path) and quarantined: the gateway reads the last value, a backend may read the first."),
    allowInvalidUtf8: z.boolean().default(false).describe("Forward bodies that are not valid UTF-8 (the gateway's checks then read them with U+FFFD in place of the bad bytes, the backend gets the raw bytes). By default they are answered 400 (invalid_utf8) and quarantined."),
    timeout: duration("Timeout of a primary (stable or candidate) request.").default("30s"),
    signature: z
      .object({
        scheme: z.enum(["github", "stripe", "standard"]).describe("github: X-Hub-Signature-256 (sha256=<hex> HMAC of the raw body). stripe: `t=<unix>,v1=<hex>` HMAC of `<t>.<body>`. standard: Standard Webhooks, webhook-signature `v1,<base64>` (space-separated list) HMAC of `<webhook-id>.<webhook-timestamp>.<body>`, the key being the base64 after `whsec_` in the Secret."),
        header: z.string().max(128).optional().describe("Header carrying the signature; defaults to X-Hub-Signature-256 (github), Stripe-Signature (stripe) or webhook-signature (standard)."),
        secretRef: secretKeyRef("Secret holding the HMAC key."),
        tolerance: duration("Largest accepted age of a signed timestamp (stripe and standard schemes).").default("5m"),
      })
      .optional()
      .describe("HMAC signature verification of incoming webhooks over the raw body."),
    idempotency: z
      .object({
        header: z.string().max(128).optional().describe("Header carrying the idempotency key. Default: webhook-id with the standard signature scheme, else Idempotency-Key."),
        store: z.enum(["sqlite", "redis"]).default("sqlite").describe("sqlite for one gateway replica; redis when several replicas share keys."),
        redisUrl: z.string().max(2048).optional().describe("Redis URL (redis://host:port/db) when store is redis."),
        ttl: duration("How long a stored response answers repeats of its key.").default("24h"),
      })
      .optional()
      .describe("Idempotency keys: a repeated key returns the stored response without forwarding again."),
    rateLimit: z
      .object({
        key: z.string().max(256).default("header:x-tenant-id").describe("Tenant key: header:<name> or json:$.<path>."),
        requestsPerSecond: z.number().min(0.001).max(1_000_000).describe("Sustained requests per second per tenant (token bucket refill rate)."),
        burst: z.number().int().min(1).max(1_000_000).default(10).describe("Bucket size: requests a tenant may send at once."),
      })
      .optional()
      .describe("Per-tenant rate limit; excess requests are answered 429 with Retry-After."),
    usage: z
      .object({
        tokensHeader: z.string().max(128).regex(/^[A-Za-z0-9-]+$/, { message: "must be an HTTP header name" }).default("x-airollout-tokens").describe("Response header carrying the tokens a request used; wins over tokensPath."),
        costHeader: z.string().max(128).regex(/^[A-Za-z0-9-]+$/, { message: "must be an HTTP header name" }).default("x-airollout-cost").describe("Response header carrying the cost of a request; wins over costPath."),
        tokensPath: fieldPath("Field of a JSON answer holding the tokens used; [*] sums the matches (e.g. $.choices[*].usage.tokens).").default("$.usage.total_tokens"),
        costPath: fieldPath("Field of a JSON answer holding the cost; [*] sums the matches.").default("$.usage.cost"),
      })
      .optional()
      .describe("Where backends report tokens and cost per request (airollout_tokens_total, airollout_cost_total). Defaults: the x-airollout-tokens / x-airollout-cost headers, else $.usage.total_tokens / $.usage.cost."),
    circuitBreaker: z
      .object({
        consecutiveFailures: z.number().int().min(1).max(10_000).default(5).describe("Consecutive failures of a backend that open its circuit."),
        openDuration: duration("How long an open circuit rejects before a half-open probe.").default("30s"),
      })
      .optional()
      .describe("Circuit breaker per backend."),
    concurrency: z
      .object({
        maxInFlight: z.number().int().min(1).max(100_000).default(256).describe("Requests one gateway replica forwards to one backend (the stable or the candidate) at once."),
        maxQueued: z.number().int().min(0).max(100_000).default(512).describe("Requests waiting for a free slot beyond maxInFlight; more are answered 503 overloaded with Retry-After."),
        queueTimeout: duration("Longest wait for a free slot; a request still waiting is answered 503 overloaded with Retry-After.").default("5s"),
      })
      .optional()
      .describe("Per-backend concurrency caps of the primary path (defaults apply when absent): the excess of an overloaded backend is shed at once instead of queueing without bound."),
  })
  .describe("How the gateway receives webhooks and splits them between stable and candidate.")
  .meta({
    "x-kubernetes-validations": [
      cel("!has(self.idempotency) || self.idempotency.store != 'redis' || has(self.idempotency.redisUrl)", "idempotency.redisUrl is required when idempotency.store is redis", ".idempotency"),
    ],
  });

// ---------------------------------------------------------------------------------------------
// Shadow comparison

export const CompareRulesSchema = z
  .object({
    status: z.boolean().default(true).describe("Compare HTTP status codes."),
    headers: z.array(z.string().max(128)).max(32).optional().describe("Response headers to compare (case-insensitive names)."),
    ignore: z.array(fieldPath("Field path to ignore.")).max(128).optional().describe("Field paths never compared (ids, timestamps)."),
    tolerances: z
      .array(
        z
          .object({
            path: fieldPath("Numeric field path."),
            absolute: z.number().min(0).optional().describe("Largest accepted absolute difference."),
            relative: z.number().min(0).optional().describe("Largest accepted relative difference (0.03 = +-3%)."),
          })
          .describe("A numeric tolerance band.")
          .meta({ "x-kubernetes-validations": [cel("has(self.absolute) || has(self.relative)", "set absolute, relative or both")] })
          .refine((t) => t.absolute !== undefined || t.relative !== undefined, { message: "set absolute, relative or both" }),
      )
      .max(128)
      .optional()
      .describe("Numeric fields compared within a band; a value within either bound matches."),
    labels: z.array(fieldPath("Label field path.")).max(128).optional().describe("Label/enum fields that must be equal."),
    text: z
      .array(
        z
          .object({
            path: fieldPath("Text field path."),
            minSimilarity: z.number().min(0).max(1).describe("Smallest accepted similarity, 0..1."),
            method: z.enum(["jaccard", "levenshtein"]).default("jaccard").describe("jaccard: token set overlap; levenshtein: 1 - edit distance / longer length."),
          })
          .describe("A text similarity rule."),
      )
      .max(128)
      .optional()
      .describe("Free-text fields compared by similarity."),
    unorderedArrays: z.array(fieldPath("Array field path.")).max(128).optional().describe("Arrays compared as sets rather than in order."),
    outputSchema: jsonSchemaField("JSON Schema both response bodies must satisfy; a body failing it is a mismatch of field `$schema`.").optional(),
  })
  .describe("Rules that judge a candidate's answer against the stable's, field by field. Fields without a rule are compared for equality.");

export const ShadowSchema = z
  .object({
    sampleRate: z.number().min(0).max(1).default(1).describe("Fraction of requests mirrored to the shadow, 0..1."),
    minSamples: z.number().int().min(0).max(100_000_000).default(100).describe("Comparisons needed before the mismatch rate is judged."),
    maxMismatchRate: z.number().min(0).max(1).default(0.05).describe("Largest accepted share of compared requests with a flagged field, 0..1."),
    maxConcurrency: z.number().int().min(1).max(10_000).default(32).describe("Shadow requests in flight at once; more are queued."),
    queueSize: z.number().int().min(0).max(1_000_000).default(1000).describe("Queued shadow requests; beyond it copies are dropped and counted."),
    timeout: duration("Timeout of a shadow request.").default("10s"),
    markHeader: z.string().max(128).default("x-airollout-shadow").describe("Header set to `true` on shadow requests so services can stub side effects. Empty to disable."),
    methods: z.array(z.string().max(16)).max(16).default(["POST"]).describe("HTTP methods that are mirrored. Mirror non-idempotent methods only when services honour markHeader."),
    noiseBaseline: z
      .object({
        enabled: z.boolean().default(false).describe("Send each sampled request to a second stable backend and count stable-vs-stable disagreements as noise."),
        endpoint: z.string().max(2048).regex(/^https?:\/\/.+/, { message: "must be an http:// or https:// URL" }).optional().describe("URL of the second stable backend; without it airollout stands up a second stable environment."),
        relativeThreshold: z.number().min(0).default(0.2).describe("A field is flagged only when the candidate's mismatch rate exceeds the noise rate by this relative margin (Diffy's rule)."),
        absoluteThreshold: z.number().min(0).max(1).default(0.0003).describe("...and by this absolute margin of rates."),
      })
      .optional()
      .describe("Noise baseline: mismatches are judged against what two identical stable replicas produce."),
    compare: CompareRulesSchema.optional(),
    maskPatterns: z.array(z.string().max(512)).max(64).optional().describe("Extra regular expressions masked in stored diff samples (emails, phone and card numbers are always masked)."),
    maxSamples: z.number().int().min(0).max(10_000).default(100).describe("Recent mismatch samples kept per rollout."),
  })
  .describe("Shadow traffic: a sampled copy of live requests goes to the candidate; both answers are captured and diffed.");

// ---------------------------------------------------------------------------------------------
// Analysis

export const JudgeMetricSchema = z
  .object({
    signal: z.enum(["latency", "tokens", "cost", "field"]).describe("The sample compared: request latency (seconds), tokens, cost, or a numeric answer field (set field)."),
    field: fieldPath("Numeric field of the JSON answer, for signal field, such as $.confidence.").optional(),
    baseline: z
      .enum(["stable", "noise"])
      .default("stable")
      .describe("The distribution the candidate's is compared with over the same window: the stable's answers (stable), or the noise baseline's second stable (noise), compared with the candidate's mirrored answers to the same requests. noise needs spec.shadow.noiseBaseline; an analysis step with such a metric keeps mirroring."),
    direction: z.enum(["increase", "decrease", "either"]).default("increase").describe("Which change is a regression: increase (High), decrease (Low) or either."),
    effectSize: z.number().min(0).max(1).default(0.2).describe("Smallest |Cliff's delta| (P(candidate > stable) - P(candidate < stable)) that counts as a change; a smaller significant shift passes."),
    alpha: z.number().gt(0).lt(1).default(0.01).describe("Significance level of the Mann-Whitney U test."),
    minSamples: z.number().int().min(1).max(1_000_000).default(50).describe("Samples each side needs in the window; fewer is NoData, never a pass."),
    weight: z.number().gt(0).max(1000).default(1).describe("Weight of this metric in the judge's score."),
  })
  .describe("Statistical judge (Kayenta-style): the candidate's distribution of a signal against the stable's, from the gateway's airollout_judge_sample histograms, by the Mann-Whitney U test and an effect-size bound. Pass / High / Low / NoData.")
  .meta({
    "x-kubernetes-validations": [cel("(self.signal == 'field') == has(self.field)", "field is set exactly when signal is field")],
  })
  .refine((j) => (j.signal === "field") === (j.field !== undefined), { message: "field is set exactly when signal is field", path: ["field"] });

export const MetricSchema = z
  .object({
    name: z.string().min(1).max(63).regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, { message: "must be a DNS label such as error-rate" }).describe("Metric name, unique within the rollout."),
    templateRef: z.string().max(63).optional().describe("Built-in template to use instead of query: error-rate, latency-p95, shadow-mismatch-rate, tokens-per-request, cost-per-request, baseline-error-ratio."),
    query: z.string().max(8192).optional().describe("PromQL query. Templated: {{rollout}}, {{namespace}}, {{stable}}, {{candidate}}, {{interval}}, {{args.<name>}}."),
    successCondition: z.string().max(1024).optional().describe("Expression over `result` that marks a measurement Successful, for example `result < 0.01`."),
    failureCondition: z.string().max(1024).optional().describe("Expression over `result` that marks a measurement Failed. Neither condition matching means Inconclusive."),
    min: z.number().optional().describe("Shorthand: a result below min fails."),
    max: z.number().optional().describe("Shorthand: a result above max fails."),
    interval: duration("Time between measurements; defaults to analysis.interval.").optional(),
    initialDelay: duration("Wait before the first measurement.").optional(),
    count: z.number().int().min(1).max(100_000).optional().describe("Measurements to take; without it the metric runs until its step ends (step analysis: 1)."),
    failureLimit: z.number().int().min(0).max(1000).optional().describe("Failed measurements tolerated before the metric fails; defaults to analysis.failureLimit."),
    inconclusiveLimit: z.number().int().min(0).max(1000).optional().describe("Inconclusive measurements tolerated before the metric is Inconclusive; defaults to analysis.inconclusiveLimit."),
    consecutiveErrorLimit: z.number().int().min(0).max(1000).optional().describe("Consecutive errors (measurement could not be taken) tolerated; defaults to analysis.consecutiveErrorLimit."),
    onEmpty: z.enum(["Inconclusive", "Failed", "Successful"]).default("Inconclusive").describe("What an empty or NaN result counts as. Never promoted on its own unless set to Successful."),
    nonFinite: z.enum(["Inconclusive", "Evaluate"]).default("Inconclusive").describe("What a +Inf or -Inf value (in a scalar or any series) counts as: Inconclusive (default; a ratio x/0 is missing evidence), or Evaluate to hand it, and NaN, to the conditions (NaN then no longer follows onEmpty; test it with isNaN(result))."),
    args: z.record(z.string(), z.string()).optional().describe("Values for {{args.<name>}} in the query."),
    judge: JudgeMetricSchema.optional(),
  })
  .describe("One SLO measured with PromQL.")
  .meta({
    "x-kubernetes-validations": [
      cel("[has(self.query), has(self.templateRef), has(self.judge)].filter(x, x).size() == 1", "exactly one of query, templateRef and judge must be set"),
    ],
  });

export const AnalysisSchema = z
  .object({
    prometheus: z
      .object({
        address: z.string().max(2048).regex(/^https?:\/\/.+/, { message: "must be an http:// or https:// URL" }).describe("Prometheus base URL, for example http://prometheus:9090."),
        timeout: duration("Query timeout.").default("10s"),
      })
      .describe("The Prometheus server queried."),
    interval: duration("Default time between measurements.").default("30s"),
    failureLimit: z.number().int().min(0).max(1000).default(0).describe("Default failed measurements tolerated per metric."),
    inconclusiveLimit: z.number().int().min(0).max(1000).default(0).describe("Default inconclusive measurements tolerated per metric."),
    consecutiveErrorLimit: z.number().int().min(0).max(1000).default(4).describe("Default consecutive errors tolerated per metric."),
    args: z.record(z.string(), z.string()).optional().describe("Default values for {{args.<name>}}."),
    metrics: z.array(MetricSchema).min(1).max(32).describe("The SLOs measured."),
    background: z
      .object({
        startingStep: z.number().int().min(0).max(63).default(0).describe("Step index from which background analysis runs."),
        metrics: z.array(z.string().max(63)).max(32).optional().describe("Metric names run in the background; all metrics when empty."),
      })
      .optional()
      .describe("Background analysis runs through all steps from startingStep and rolls back on failure."),
    historyLimit: z.number().int().min(1).max(100).default(10).describe("Finished analysis runs kept in status."),
    judge: z
      .object({
        passScore: z.number().min(0).max(100).default(95).describe("Score (weighted share of judge metrics that Pass, in percent) at or above which the judge passes, if no metric is NoData."),
        marginalScore: z.number().min(0).max(100).default(75).describe("Score at or above which a non-passing judge is Marginal (Inconclusive: the rollout pauses); below it the judge fails (rollback)."),
      })
      .refine((j) => j.marginalScore <= j.passScore, { message: "marginalScore must not exceed passScore", path: ["marginalScore"] })
      .optional()
      .describe("Thresholds of the statistical judge's combined score over the run's judge metrics (defaults 95 / 75)."),
  })
  .describe("SLO analysis against Prometheus. A rollout never advances without a successful measurement (fail closed).");

// ---------------------------------------------------------------------------------------------
// Golden suites

export const GoldenSchema = z
  .object({
    configMapRef: keyRef("ConfigMap").describe("ConfigMap key holding the golden suite (JSON or YAML: {version, cases}). Its digest is part of the revision, so editing the suite starts a new rollout."),
    gate: z.boolean().default(false).describe("Run the suite before the first step, as an extra first step, so a failing suite rolls back before any traffic or mirroring."),
    maxFailures: z.number().int().min(0).max(10_000).default(0).describe("Failed cases accepted; more roll back. A golden step may set its own."),
    concurrency: z.number().int().min(1).max(64).default(4).describe("Golden requests in flight at once."),
    timeout: duration("Timeout of one golden request.").default("10s"),
  })
  .describe("A versioned suite of inputs with expected outputs, sent to the candidate only (never to production) and checked with the diff engine's rules.");

// ---------------------------------------------------------------------------------------------
// Strategy

export const StepSchema = z
  .object({
    shadow: z
      .object({ duration: duration("How long to mirror and compare; the step also waits for shadow.minSamples.").optional() })
      .optional()
      .describe("Mirror traffic to the candidate and judge the diff before any user sees it."),
    setWeight: z.number().int().min(0).max(100).optional().describe("Percent of requests (0..100) sent to the candidate."),
    pause: z
      .object({ duration: duration("Pause length; without it the rollout waits for `kubectl airollout promote`.").optional() })
      .optional()
      .describe("Pause for a time or, without duration, until promoted by a human."),
    analysis: z
      .object({
        metrics: z.array(z.string().max(63)).max(32).optional().describe("Metric names measured in this step; all metrics when empty."),
      })
      .optional()
      .describe("Measure SLOs; the step blocks until the analysis succeeds."),
    golden: z
      .object({
        maxFailures: z.number().int().min(0).max(10_000).optional().describe("Failed cases accepted; defaults to spec.golden.maxFailures."),
        configMapRef: keyRef("ConfigMap").optional().describe("This step's own suite (a ConfigMap key, JSON or YAML: {version, cases}), instead of spec.golden.configMapRef's. Its digest is part of the revision too; spec.golden's concurrency and timeout apply."),
      })
      .optional()
      .describe("Run a golden suite (the step's own, else spec.golden's) against the candidate only; more failures than maxFailures roll back."),
  })
  .describe("One canary step: exactly one of shadow, setWeight, pause, analysis, golden.")
  .meta({
    "x-kubernetes-validations": [
      cel("[has(self.shadow), has(self.setWeight), has(self.pause), has(self.analysis), has(self.golden)].filter(x, x).size() == 1", "a step sets exactly one of shadow, setWeight, pause, analysis, golden"),
    ],
  })
  .refine((s) => [s.shadow, s.setWeight, s.pause, s.analysis, s.golden].filter((x) => x !== undefined).length === 1, {
    message: "a step sets exactly one of shadow, setWeight, pause, analysis, golden",
  });

export const StrategySchema = z
  .object({
    steps: z.array(StepSchema).min(1).max(64).describe("Canary steps, run in order. After the last one the candidate is promoted."),
    progressDeadline: duration("Longest time a step may take beyond its own duration (pauses without duration excepted) before it is marked Progressing=False/ProgressDeadlineExceeded and Stalled=True; the rollout is not aborted.").default("10m"),
  })
  .describe("How the candidate is rolled out.");

// ---------------------------------------------------------------------------------------------
// Environments

export const EnvironmentsSchema = z
  .object({
    namespace: z.string().max(63).optional().describe("Namespace the environments are created in; defaults to the AIRollout's."),
    waitForReady: z.boolean().default(true).describe("Wait for Deployments to become Available. Without a kubelet (the local control plane) nothing becomes Available; see the README."),
    pulumi: z
      .object({
        backend: z.string().max(2048).optional().describe("Pulumi backend URL (file://, s3://, https://api.pulumi.com). Defaults to the controller's local file backend."),
        passphraseSecretRef: secretKeyRef("Secret holding PULUMI_CONFIG_PASSPHRASE for the stacks' secrets.").optional(),
        stackPrefix: z.string().max(63).optional().describe("Prefix of stack names; defaults to <namespace>-<name>."),
        maxConsecutiveFailures: z.number().int().min(1).max(100).default(3).describe("Failed updates in a row after which the rollout is Stalled and stops retrying."),
        config: z.record(z.string(), z.string()).optional().describe("Extra Pulumi config set on every stack."),
      })
      .default({ maxConsecutiveFailures: 3 })
      .describe("Pulumi settings for the canary, shadow and preview stacks."),
  })
  .describe("Where and how the candidate's environments are stood up.");

export const PreviewSchema = z
  .object({
    ttl: duration("Lifetime of a preview environment; collected after it.").default("24h"),
  })
  .describe("Ephemeral preview environments (one Pulumi stack each).");

// ---------------------------------------------------------------------------------------------
// Spec

export const SpecSchema = z
  .object({
    stable: VersionSchema.optional().describe("The version serving production now, when you want to name it. Optional: without it the stable is the version last promoted (status.stable), so changing spec.candidate alone starts the next rollout; the first candidate ever applied is adopted as the stable without steps. Set, it is the stable until a promotion; after a promotion the promoted version is the stable until spec.stable is edited."),
    candidate: VersionSchema.describe("The version being rolled out: the desired version. A change starts a rollout from the stable."),
    paused: z.boolean().default(false).describe("Pause the rollout where it is (like a pause step without duration)."),
    traffic: TrafficSchema.optional(),
    shadow: ShadowSchema.optional(),
    strategy: StrategySchema,
    analysis: AnalysisSchema.optional(),
    golden: GoldenSchema.optional(),
    environments: EnvironmentsSchema.optional(),
    preview: PreviewSchema.optional(),
  })
  .describe("Desired rollout of a candidate version of an AI-backed webhook service.")
  .meta({
    "x-kubernetes-validations": [
      cel("!self.strategy.steps.exists(s, has(s.analysis)) || has(self.analysis)", "steps with analysis need spec.analysis", ".strategy.steps"),
      cel("!self.strategy.steps.exists(s, has(s.golden)) || has(self.golden)", "golden steps need spec.golden", ".strategy.steps"),
      cel("!has(self.stable) || self.stable.version != self.candidate.version", "candidate.version must differ from stable.version", ".candidate.version"),
    ],
  })
  .superRefine((spec, ctx) => {
    if (spec.strategy.steps.some((s) => s.analysis !== undefined) && spec.analysis === undefined) {
      ctx.addIssue({ code: "custom", path: ["strategy", "steps"], message: "steps with analysis need spec.analysis" });
    }
    if (spec.strategy.steps.some((s) => s.golden !== undefined) && spec.golden === undefined) {
      ctx.addIssue({ code: "custom", path: ["strategy", "steps"], message: "golden steps need spec.golden" });
    }
    if (spec.stable !== undefined && spec.stable.version === spec.candidate.version) {
      ctx.addIssue({ code: "custom", path: ["candidate", "version"], message: "candidate.version must differ from stable.version" });
    }
  });

// ---------------------------------------------------------------------------------------------
// Status

export const PHASES = [
  "Pending",
  "Initialized",
  "ShadowTesting",
  "Progressing",
  "Paused",
  "Promoting",
  "Succeeded",
  "RollingBack",
  "RolledBack",
  "Degraded",
] as const;
export const PhaseSchema = z.enum(PHASES).describe("Where the rollout is.");

export const ConditionSchema = z
  .object({
    type: z.string().max(316).describe("Condition type: Ready, Progressing, Degraded, Stalled."),
    status: z.enum(["True", "False", "Unknown"]).describe("True, False or Unknown."),
    observedGeneration: z.number().int().min(0).optional().describe("Generation the condition was computed for."),
    lastTransitionTime: z.string().describe("When status last changed (RFC 3339)."),
    reason: z.string().max(1024).describe("CamelCase machine reason."),
    message: z.string().max(32_768).describe("Human readable detail."),
  })
  .describe("A metav1.Condition.");

export const ResolvedStepSchema = z
  .object({
    index: z.number().int().describe("Step index."),
    type: z.enum(["shadow", "setWeight", "pause", "analysis", "golden"]).describe("Step kind."),
    weight: z.number().int().optional().describe("Candidate weight in effect during the step."),
    durationSeconds: z.number().optional().describe("Step duration in seconds, when timed."),
    metrics: z.array(z.string()).optional().describe("Metrics measured by an analysis step."),
    maxFailures: z.number().int().optional().describe("Failed cases a golden step accepts."),
  })
  .describe("A step as the controller resolved it.");

export const JudgeResultSchema = z
  .object({
    classification: z.enum(["Pass", "High", "Low", "NoData"]).describe("Pass, High / Low (the candidate is significantly and materially above / below the baseline), or NoData (too few or unusable samples; never a pass)."),
    pValue: z.number().optional().describe("P-value of the Mann-Whitney U test for the metric's direction (absent for NoData)."),
    effectSize: z.number().optional().describe("Cliff's delta of candidate against baseline, -1..1 (absent for NoData)."),
    candidateSamples: z.number().optional().describe("Candidate samples in the window."),
    baselineSamples: z.number().optional().describe("Baseline samples in the window."),
    weight: z.number().optional().describe("The metric's weight in the score."),
    conclusive: z.boolean().optional().describe("True for a Pass whose confidence bound of Cliff's delta lies inside the effect-size bound on the regression side: the step may pass on it before its count (early pass)."),
    deltaBound: z.number().optional().describe("The one-sided confidence bound of Cliff's delta on the regression side, at the metric's alpha spent over its count."),
  })
  .describe("A statistical judge metric's latest judgement.");

export const MeasurementSchema = z
  .object({
    time: z.string().describe("When it was taken."),
    value: z.string().optional().describe("The result, as text (NaN and empty included)."),
    phase: z.enum(["Successful", "Failed", "Inconclusive", "Error"]).describe("How it was judged."),
    message: z.string().optional().describe("Error or judgement detail."),
    judge: JudgeResultSchema.optional(),
  })
  .describe("One measurement of a metric.");

export const MetricStatusSchema = z
  .object({
    name: z.string().describe("Metric name."),
    query: z.string().optional().describe("The resolved PromQL that was sent."),
    phase: z.enum(["Pending", "Running", "Successful", "Failed", "Inconclusive", "Error"]).describe("Metric phase."),
    lastValue: z.string().optional().describe("The latest result."),
    successful: z.number().int().default(0).describe("Successful measurements."),
    failed: z.number().int().default(0).describe("Failed measurements."),
    inconclusive: z.number().int().default(0).describe("Inconclusive measurements."),
    error: z.number().int().default(0).describe("Errors."),
    consecutiveError: z.number().int().default(0).describe("Errors in a row."),
    message: z.string().optional().describe("Why the metric is in its phase."),
    judge: JudgeResultSchema.optional(),
    measurements: z.array(MeasurementSchema).optional().describe("The latest measurements (bounded)."),
  })
  .describe("State of one metric in an analysis run.");

export const AnalysisRunStatusSchema = z
  .object({
    id: z.string().describe("Run id (step or background)."),
    step: z.number().int().optional().describe("Step index of a step analysis."),
    phase: z.enum(["Pending", "Running", "Successful", "Failed", "Inconclusive", "Error"]).describe("The run's phase: the worst metric's."),
    startedAt: z.string().describe("When the run started."),
    finishedAt: z.string().optional().describe("When it finished."),
    metrics: z.array(MetricStatusSchema).describe("Per metric state."),
  })
  .describe("An analysis run.");

export const EnvironmentStatusSchema = z
  .object({
    stack: z.string().describe("Pulumi stack name."),
    phase: z.enum(["Pending", "Updating", "Ready", "Failed", "Destroying", "Destroyed"]).describe("Environment phase."),
    url: z.string().optional().describe("In-cluster URL of the version's service, or its external endpoint."),
    serviceName: z.string().optional().describe("Kubernetes Service name."),
    version: z.string().optional().describe("Version deployed."),
    revision: z.string().optional().describe("Spec revision deployed."),
    lastUpdateTime: z.string().optional().describe("When the stack was last updated."),
    consecutiveFailures: z.number().int().optional().describe("Failed updates in a row."),
    message: z.string().optional().describe("Last error or result."),
    expiresAt: z.string().optional().describe("Preview environments: when they are collected."),
  })
  .describe("One environment (Pulumi stack) of the rollout.");

export const StableRecordSchema = z
  .object({
    version: z.string().describe("Version name of the stable."),
    spec: VersionSchema.describe("The stable's version spec as it was promoted (a copy of spec.candidate then): what the stable environment and the gateway serve while spec.stable is absent or unchanged."),
    revision: z.string().describe("The candidate revision that was promoted (status.revision then): a candidate with this revision is the stable, nothing to roll out."),
    promotedAt: z.string().describe("When it was promoted or adopted (RFC 3339)."),
    adopted: z.boolean().optional().describe("True when the version was adopted without steps: the first candidate of a rollout that had no stable."),
    specStableDigest: z.string().optional().describe("Digest of spec.stable when this version was promoted; absent when spec.stable was not set. While spec.stable keeps that value this record is the stable; an edit of spec.stable makes spec.stable the stable again."),
  })
  .describe("The version last promoted (or adopted): the stable of the next rollout, written only at promotion, unchanged by a rollback.");

export const StatusSchema = z
  .object({
    phase: PhaseSchema.optional(),
    message: z.string().optional().describe("Human readable summary of the phase."),
    observedGeneration: z.number().int().optional().describe("The spec generation this status describes."),
    revision: z.string().optional().describe("Hash of the candidate (image/endpoint, model, prompt, config, env, and the content of the ConfigMap/Secret keys it refers to): a change restarts the rollout."),
    revisionInputs: z
      .record(z.string(), z.string())
      .optional()
      .describe("Digest (sha256, 16 hex) of each input of the revision, by spec field, e.g. spec.candidate.config.promptRef for the prompt's content; a new revision's Event names the inputs that changed. Secret values are never shown, only a keyed digest."),
    currentStep: z.number().int().optional().describe("Index of the step in progress; equals the number of steps when all are done."),
    stepCount: z.number().int().optional().describe("Number of steps."),
    steps: z.array(ResolvedStepSchema).optional().describe("Steps as resolved from the spec."),
    stepStartedAt: z.string().optional().describe("When the current step started."),
    pauseStartedAt: z.string().optional().describe("When the rollout paused."),
    pauseReason: z.string().optional().describe("Why the rollout is Paused: PauseStep, SpecPaused, AnalysisInconclusive, AnalysisError, InsufficientEvidence."),
    interruptedPhase: z.string().optional().describe("The phase a rollout had when it became Degraded mid-rollout; it resumes there once the problem clears."),
    canaryWeight: z.number().int().optional().describe("Percent of requests the gateway sends to the candidate."),
    shadowEnabled: z.boolean().optional().describe("Whether the gateway mirrors traffic to the shadow now."),
    stableVersion: z.string().optional().describe("Version name serving as stable."),
    stable: StableRecordSchema.optional(),
    candidateVersion: z.string().optional().describe("Version name being rolled out."),
    abort: z.boolean().optional().describe("Whether the rollout was aborted."),
    attempt: z.number().int().optional().describe("Retries of this revision: 0 for the first attempt, +1 per `airollout retry`."),
    handled: z
      .object({
        promote: z.string().optional().describe("Value of the last airollout.dev/promote annotation acted on."),
        abort: z.string().optional().describe("Value of the last airollout.dev/abort annotation acted on."),
        retry: z.string().optional().describe("Value of the last airollout.dev/retry annotation acted on."),
      })
      .optional()
      .describe("Human requests already carried out, so each annotation value acts exactly once."),
    conditions: z.array(ConditionSchema).optional().describe("Ready, Progressing, Degraded (and Stalled) conditions."),
    shadow: z
      .object({
        compared: z.number().int().optional().describe("Shadow comparisons of the current revision (summed over gateway replicas)."),
        required: z.number().int().optional().describe("Comparisons required before the mismatch rate is judged (spec.shadow.minSamples)."),
        judged: z.boolean().optional().describe("Whether the evidence is enough to judge: minSamples comparisons (and noise comparisons with a baseline) on every gateway replica."),
        verdict: z.string().optional().describe("The shadow rule's last verdict: what it waits for, or which rule passed or stopped the step."),
        mismatched: z.number().int().optional().describe("Comparisons with a flagged field."),
        mismatchRate: z.string().optional().describe("mismatched / compared, as text for display."),
        sampled: z.number().int().optional().describe("Requests the gateways chose for mirroring for the current revision (spec.shadow.sampleRate of the stable's answers); compared counts only those actually compared."),
        coverage: z.string().optional().describe("compared / sampled, as text: below 100% the diff saw less than configured (copies dropped: queue full, circuit open, timeouts)."),
        updatedAt: z.string().optional().describe("When these counts were last read from Prometheus."),
        noiseCompared: z.number().int().optional().describe("Stable-vs-stable comparisons."),
        noiseMismatched: z.number().int().optional().describe("Stable-vs-stable disagreements."),
        topFields: z
          .array(z.object({ path: z.string().describe("Field path."), rate: z.string().describe("Candidate mismatch rate."), noiseRate: z.string().optional().describe("Noise mismatch rate."), flagged: z.boolean().describe("Whether it counts.") }).describe("A field's mismatch rates."))
          .optional()
          .describe("Fields that differ most."),
      })
      .optional()
      .describe("Shadow comparison summary."),
    analysis: z
      .object({
        current: AnalysisRunStatusSchema.optional().describe("The run in progress (step analysis)."),
        background: AnalysisRunStatusSchema.optional().describe("The background run."),
        history: z.array(AnalysisRunStatusSchema).optional().describe("Finished runs, newest first (bounded)."),
      })
      .optional()
      .describe("Analysis state."),
    golden: z
      .object({
        run: z.string().optional().describe("Which run this is: revision, attempt and step."),
        phase: z.enum(["Running", "Passed", "Failed", "Error"]).optional().describe("Passed: at most maxFailures cases failed; Failed: more did (rolled back); Error: no evidence (suite unreadable, candidate unreachable, no case run), retried and never a pass."),
        suiteVersion: z.string().optional().describe("The suite's own version field."),
        suiteDigest: z.string().optional().describe("Digest of the suite's ConfigMap key (part of the revision)."),
        total: z.number().int().optional().describe("Cases in the suite."),
        passed: z.number().int().optional().describe("Cases whose answer met every expectation."),
        failed: z.number().int().optional().describe("Cases that failed (an unanswered request fails its case)."),
        maxFailures: z.number().int().optional().describe("Failed cases accepted."),
        failures: z
          .array(z.object({ name: z.string().describe("Case name."), reason: z.string().describe("What failed, with personal data masked.") }).describe("A failed case."))
          .optional()
          .describe("The first failed cases (at most 10)."),
        message: z.string().optional().describe("Why the run gave no evidence (phase Error)."),
        updatedAt: z.string().optional().describe("When the run finished."),
        steps: z
          .array(
            z
              .object({
                step: z.number().int().describe("Index of the golden step (status.steps)."),
                suite: z.string().describe("The suite's source: the ConfigMap and key."),
                phase: z.enum(["Running", "Passed", "Failed", "Error"]).describe("As status.golden.phase, for this step's run."),
                suiteVersion: z.string().optional().describe("The suite's own version field."),
                suiteDigest: z.string().optional().describe("Digest of the suite's ConfigMap key (part of the revision)."),
                total: z.number().int().optional().describe("Cases in the suite."),
                passed: z.number().int().optional().describe("Cases that passed."),
                failed: z.number().int().optional().describe("Cases that failed."),
                updatedAt: z.string().optional().describe("When the run finished."),
              })
              .describe("The last run of one golden step."),
          )
          .max(65)
          .optional()
          .describe("The last run of each golden step of this revision and attempt, by step: steps may run different suites."),
      })
      .optional()
      .describe("The golden suite's last run against the candidate (the fields above), and each golden step's last result (steps)."),
    environments: z
      .object({
        canary: EnvironmentStatusSchema.optional().describe("The candidate's canary environment."),
        shadow: EnvironmentStatusSchema.optional().describe("The candidate's shadow environment."),
        stable: EnvironmentStatusSchema.optional().describe("The stable environment."),
        previews: z.array(EnvironmentStatusSchema).optional().describe("Preview environments."),
      })
      .optional()
      .describe("Environments stood up for the rollout."),
  })
  .describe("Observed state of the rollout, written by the controller only.");

export type Spec = z.output<typeof SpecSchema>;
export type SpecInput = z.input<typeof SpecSchema>;
export type Status = z.output<typeof StatusSchema>;
export type Step = z.output<typeof StepSchema>;
export type Phase = (typeof PHASES)[number];
export type Condition = z.output<typeof ConditionSchema>;
export type ResolvedStep = z.output<typeof ResolvedStepSchema>;
export type VersionSpec = z.output<typeof VersionSchema>;
export type StableRecord = z.output<typeof StableRecordSchema>;

/** The metadata of one of the project's namespaced objects as read from the API server (AIRollout, AIPreview). */
export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation: number;
  resourceVersion: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}

/** The object as read from the API server. Status is parsed leniently: it is ours to rewrite. */
export interface AIRollout {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: unknown;
  status?: Status;
}
