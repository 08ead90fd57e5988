/**
 * One reconcile pass as every caller runs it (the controller, the simulated-clock tests, the
 * benchmark): decide in memory; when the decision needs measurements or environments, have them
 * carried out, then decide again at the same `now` with their outcomes. Decide in memory, act once.
 */
import type { AIRollout } from "../api/schema.ts";
import type { QueryOutcome } from "../analysis/provider.ts";
import type { EnsureRequest, EnvironmentOutcome, MeasureRequest, Plan, RolloutRole, World } from "./contract.ts";
import { reconcile } from "./reconcile.ts";

/** Carries out what the first half of a pass asked for. */
export interface PassIO {
  /** Runs the queries of plan.measure; outcomes keyed by request key (never rejects for a query failure). */
  measure(requests: readonly MeasureRequest[]): Promise<Record<string, QueryOutcome>>;
  /** Stands up the environments of plan.ensure; a failure is an outcome, not a rejection. */
  ensure(requests: readonly EnsureRequest[]): Promise<Partial<Record<RolloutRole, EnvironmentOutcome>>>;
}

/** Runs one pass over `object` and `world` at `now`; returns the plan to carry out. */
export async function runPass(object: AIRollout, world: World, now: Date, io: PassIO): Promise<Plan> {
  const first = reconcile({ object, world, now });
  if (!first.measure?.length && !first.ensure?.length) return first;
  const [measurements, environments] = await Promise.all([
    first.measure?.length ? io.measure(first.measure) : undefined,
    first.ensure?.length ? io.ensure(first.ensure) : undefined,
  ]);
  return reconcile({ object, world: { ...world, ...(measurements ? { measurements } : {}), ...(environments ? { environments } : {}) }, now });
}
