/**
 * One reconcile pass as every caller runs it (the controller, the simulated-clock tests, the
 * benchmark): decide in memory; when the decision needs measurements or environments, have them
 * carried out, then decide again with their outcomes. Decide in memory, act once.
 *
 * The second decision is made at the pass's `now`, except after environments were stood up: a
 * `pulumi up` takes seconds to minutes, and what the second decision starts (the first step, its
 * clock) starts when the environments answered Ready, not when the pass began (PassIO.clock).
 */
import type { AIRollout, Status } from "../api/schema.ts";
import type { QueryOutcome } from "../analysis/provider.ts";
import type { EnsureRequest, EnvironmentOutcome, MeasureRequest, Plan, RolloutRole, World } from "./contract.ts";
import { reconcile } from "./reconcile.ts";

/** Carries out what the first half of a pass asked for. */
export interface PassIO {
  /** Runs the queries of plan.measure; outcomes keyed by request key (never rejects for a query failure). */
  measure(requests: readonly MeasureRequest[]): Promise<Record<string, QueryOutcome>>;
  /** Stands up the environments of plan.ensure; a failure is an outcome, not a rejection. */
  ensure(requests: readonly EnsureRequest[]): Promise<Partial<Record<RolloutRole, EnvironmentOutcome>>>;
  /**
   * Publishes the first decision's status before a stand-up runs, so that for its whole length
   * the status says which environments are being stood up (the final plan follows it).
   */
  announce?(status: Status): Promise<void>;
  /** The time after the stand-ups answered (the controller's wall clock); `now` without it. */
  clock?(): Date;
}

/** Runs one pass over `object` and `world` at `now`; returns the plan to carry out. */
export async function runPass(object: AIRollout, world: World, now: Date, io: PassIO): Promise<Plan> {
  const first = reconcile({ object, world, now });
  if (!first.measure?.length && !first.ensure?.length) return first;
  const standsUp = (first.ensure?.length ?? 0) > 0;
  if (standsUp && first.status && io.announce) await io.announce(first.status);
  const [measurements, environments] = await Promise.all([
    first.measure?.length ? io.measure(first.measure) : undefined,
    standsUp ? io.ensure(first.ensure!) : undefined,
  ]);
  // Never earlier than `now`: a clock stepped back must not restart what the pass decided.
  const decidedAt = standsUp && io.clock ? new Date(Math.max(now.getTime(), io.clock().getTime())) : now;
  return reconcile({ object, world: { ...world, ...(measurements ? { measurements } : {}), ...(environments ? { environments } : {}) }, now: decidedAt });
}
