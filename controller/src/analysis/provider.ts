/**
 * The metrics port: the one thing analysis needs from a metrics backend. One implementation per
 * backend (prometheus.ts), so the decision core (assess.ts) never sees HTTP.
 */
import type { QueryOutcome } from "./assess.ts";

export type { QueryOutcome };

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
