/**
 * Built-in metric templates, referenced from a Metric by `templateRef`.
 *
 * They query the gateway's metrics. Every query is written so that a window without traffic
 * yields an empty result or NaN (judged by the metric's onEmpty, Inconclusive by default) and
 * never a 0 that would pass:
 * - ratios divide by the request (or comparison) rate itself, so no series gives an empty
 *   result and no requests in the window gives 0/0 = NaN;
 * - numerators that only exist after the first error or mismatch get `or vector(0)`, otherwise
 *   a healthy service that never failed would have no numerator series and stay empty forever;
 * - histogram_quantile over all-zero buckets is NaN.
 *
 * The range window is `{{args.window}}`, which defaults to the metric's interval (see
 * resolveMetric in assess.ts); set `args.window` to at least four scrape intervals when the
 * measurement interval is short, or rate() sees fewer than two samples and returns nothing.
 *
 * The default conditions are starting points: users set `max` (or their own conditions) for
 * their service, and any criterion they set replaces all of the template's criteria.
 */

/** A built-in template: a query plus defaults that a user's Metric fields override. */
export interface MetricTemplate {
  readonly name: TemplateName;
  readonly description: string;
  readonly query: string;
  readonly successCondition?: string;
  readonly failureCondition?: string;
  /** Default values for `{{args.<name>}}`. */
  readonly args?: Readonly<Record<string, string>>;
}

/** Names accepted by `templateRef`. */
export const TEMPLATE_NAMES = [
  "error-rate",
  "latency-p95",
  "shadow-mismatch-rate",
  "tokens-per-request",
  "cost-per-request",
  "baseline-error-ratio",
] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

const W = "[{{args.window}}]";
const rollout = `rollout="{{rollout}}",namespace="{{namespace}}"`;
const candidate = `${rollout},version="{{candidate}}"`;
const stable = `${rollout},version="{{stable}}"`;

/** Share of 5xx answers among a version's requests. */
const errorRate = (sel: string): string =>
  `(sum(rate(airollout_requests_total{${sel},code=~"5.."}${W})) or vector(0))` +
  ` / sum(rate(airollout_requests_total{${sel}}${W}))`;

/** A per-request average of a counter. */
const perRequest = (counter: string): string =>
  `sum(rate(${counter}{${candidate}}${W})) / sum(rate(airollout_requests_total{${candidate}}${W}))`;

const TEMPLATES: Readonly<Record<TemplateName, MetricTemplate>> = {
  "error-rate": {
    name: "error-rate",
    description: "Share of the candidate's requests answered with a 5xx status, 0..1.",
    query: errorRate(candidate),
    successCondition: "result <= 0.01",
  },
  "latency-p95": {
    name: "latency-p95",
    description: "95th percentile of the candidate's request duration, in seconds.",
    query: `histogram_quantile(0.95, sum by (le) (rate(airollout_request_duration_seconds_bucket{${candidate}}${W})))`,
    successCondition: "result <= 2",
  },
  "shadow-mismatch-rate": {
    name: "shadow-mismatch-rate",
    description:
      "Share of shadow comparisons with a flagged field, 0..1. Empty (so Inconclusive) until every gateway replica has judged " +
      "the current revision (airollout_shadow_judged): before minSamples comparisons nothing can be flagged, and that 0 is not evidence.",
    query:
      `((sum(rate(airollout_shadow_mismatches_total{${rollout}}${W})) or vector(0))` +
      ` / sum(rate(airollout_shadow_comparisons_total{${rollout}}${W})))` +
      ` and on() (min(airollout_shadow_judged{${rollout}}) == 1)`,
    successCondition: "result <= 0.05",
  },
  "tokens-per-request": {
    name: "tokens-per-request",
    description: "Tokens the candidate uses per request. Set max for your service.",
    query: perRequest("airollout_tokens_total"),
    successCondition: "result <= 4000",
  },
  "cost-per-request": {
    name: "cost-per-request",
    description: "Cost of the candidate per request, in the gateway's currency units. Set max for your service.",
    query: perRequest("airollout_cost_total"),
    successCondition: "result <= 0.05",
  },
  "baseline-error-ratio": {
    name: "baseline-error-ratio",
    description:
      "Candidate error rate divided by the stable's in the same window. The stable's rate counts as at least args.floor " +
      "(default 0.01), so a single error against a clean stable does not produce a huge ratio; no stable traffic is NaN.",
    // clamp_min keeps NaN (Go's math.Max), so a stable without traffic stays inconclusive.
    query: `(${errorRate(candidate)}) / clamp_min(${errorRate(stable)}, {{args.floor}})`,
    successCondition: "result <= 1.5",
    args: { floor: "0.01" },
  },
};

/** Every built-in template, by name. */
export const BUILTIN_TEMPLATES: Readonly<Record<TemplateName, MetricTemplate>> = TEMPLATES;

/** Looks up a built-in template; undefined for an unknown name (including `constructor`). */
export function getTemplate(name: string): MetricTemplate | undefined {
  return Object.hasOwn(TEMPLATES, name) ? TEMPLATES[name as TemplateName] : undefined;
}

/**
 * The queries that read a shadow step's evidence (reconcile/shadow-evidence.ts), keyed as the
 * controller asks for them: the gateways' per-revision gauges, summed over replicas, and whether
 * every replica has judged the revision. Kept here, with the other queries over the gateway's
 * metric names (gateway/metrics.ts), so the contract between the two lives in one file.
 */
export function shadowEvidenceQueries(rollout: { name: string; namespace: string }, revision: string): Record<"shadow/compared" | "shadow/noise" | "shadow/mismatched" | "shadow/judged" | "shadow/sampled", string> {
  const sel = `rollout="${rollout.name}",namespace="${rollout.namespace}",revision="${revision}"`;
  return {
    "shadow/compared": `sum(airollout_shadow_revision_comparisons{${sel},kind="candidate"})`,
    "shadow/noise": `sum(airollout_shadow_revision_comparisons{${sel},kind="noise"})`,
    "shadow/mismatched": `sum(airollout_shadow_revision_mismatches{${sel}})`,
    "shadow/judged": `min(airollout_shadow_judged{${sel}})`,
    // The coverage's denominator: requests chosen for mirroring (compared / sampled).
    "shadow/sampled": `sum(airollout_shadow_revision_sampled{${sel}})`,
  };
}
