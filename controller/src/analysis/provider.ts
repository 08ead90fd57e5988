/**
 * MetricsProvider: the one thing analysis needs from a metrics backend. One implementation per
 * backend (prometheus.ts), so the decision core (assess.ts) never sees HTTP. Not to be confused
 * with the reconcile pass's MeasurementsPort (reconcile/contract.ts), which analysis/measure.ts
 * implements by running a pass's queries through one MetricsProvider per address.
 */

/** The label set of one series as the backend returned it (`__name__` included when present). */
export type SeriesLabels = Readonly<Record<string, string>>;

/**
 * What a provider returns for one query. `permanent` marks an error in the spec (a PromQL
 * syntax error, a query that returns a range vector): retrying cannot fix it, so the controller
 * reports it in a condition instead of retrying hot. For a vector, `labels` holds each series'
 * label set in the order of `value`, so a judgement can say which series it judged.
 */
export type QueryOutcome =
  | { kind: "value"; value: number | readonly number[]; labels?: readonly SeriesLabels[] }
  | { kind: "empty" }
  | { kind: "error"; message: string; permanent?: boolean };

/** Per-query options. */
export interface QueryOptions {
  /** Upper bound for the whole query, connection included (the spec's prometheus.timeout). */
  timeoutMs: number;
  /** Cancels the query, e.g. when the reconcile pass is abandoned. */
  signal?: AbortSignal;
}

/**
 * Runs instant queries against one metrics backend.
 *
 * Contract: `query` resolves for every outcome the backend or the network can produce. An
 * empty result is `{ kind: "empty" }`, NaN stays NaN (assess decides what it means), and an
 * unreachable server, a timeout or a rejected query is `{ kind: "error" }` with a message that
 * names the server; `permanent: true` marks errors that only a spec change can fix. It rejects
 * only for programmer errors (such as a non-positive timeout).
 */
export interface MetricsProvider {
  query(promql: string, opts: QueryOptions): Promise<QueryOutcome>;
}
