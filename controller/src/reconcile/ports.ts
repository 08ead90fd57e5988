/** Ports that reconcile's actions need; adapters implement them (never the other way round). */
import type { AIRollout } from "../api/schema.ts";
import type { QueryOutcome } from "../analysis/assess.ts";
import type { MeasureRequest } from "./types.ts";

/** Stands up and tears down a rollout's environments (canary, shadow, previews). */
export interface EnvironmentsPort {
  /** Destroys every environment of the rollout; resolves when nothing is left behind. */
  destroyAll(rollout: AIRollout, reason: string): Promise<void>;
}

/** Takes measurements: runs the queries a pass asked for, never throwing for query failures. */
export interface MetricsPort {
  /** Outcomes keyed by request key; an unreachable server is an error outcome, not an exception. */
  measure(requests: readonly MeasureRequest[]): Promise<Record<string, QueryOutcome>>;
}
