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
import type { EnsureRequest, EnvironmentOutcome, GoldenOutcome, GoldenRequest, MeasureRequest, Plan, RolloutRole, World } from "./contract.ts";
import { reconcile } from "./reconcile.ts";

/** Carries out what the first half of a pass asked for. */
export interface PassIO {
  /** Runs the queries of plan.measure; outcomes keyed by request key (never rejects for a query failure). */
  measure(requests: readonly MeasureRequest[]): Promise<Record<string, QueryOutcome>>;
  /** Stands up the environments of plan.ensure; a failure is an outcome, not a rejection. */
  ensure(requests: readonly EnsureRequest[]): Promise<Partial<Record<RolloutRole, EnvironmentOutcome>>>;
  /** Runs the golden suites of plan.golden against the candidate; without it, each is an error outcome. */
  golden?(requests: readonly GoldenRequest[]): Promise<Record<string, GoldenOutcome>>;
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
  const first = chainFirstSight(object, world, now, reconcile({ object, world, now }));
  if (!carriesOut(first)) return first;
  // Environments outlive the object: the finalizer that tears them down goes on before any stand-up.
  if (first.ensure?.length && first.actions.some((a) => a.type === "addFinalizer")) return { events: [], actions: [{ type: "addFinalizer" }], requeueAfterMs: 0 };
  const standsUp = (first.ensure?.length ?? 0) > 0;
  if (standsUp && first.status && io.announce) await io.announce(first.status);
  const outcomes = await carryOut(first, io);
  // Never earlier than `now`: a clock stepped back must not restart what the pass decided.
  const decidedAt = standsUp && io.clock ? new Date(Math.max(now.getTime(), io.clock().getTime())) : now;
  return reconcile({ object, world: { ...world, ...outcomes }, now: decidedAt });
}

/** Whether a decision asks for I/O before it can be final. */
function carriesOut(plan: Plan): boolean {
  return (plan.measure?.length ?? 0) > 0 || (plan.ensure?.length ?? 0) > 0 || (plan.golden?.length ?? 0) > 0;
}

/**
 * A rollout seen for the first time is Initialized, and its steps start on the next pass at once
 * (requeueAfterMs 0). When that next decision needs nothing carried out (no stand-up, query or
 * golden run), it is made here on the Initialized status in memory, and the two become one plan:
 * one status write instead of two for a new rollout, with the Initialized Event still recorded.
 * Only on first sight: a new revision of a rollout under way shows Initialized in its status on
 * its own, as `kubectl get -w` and tools waiting for it expect.
 */
function chainFirstSight(object: AIRollout, world: World, now: Date, first: Plan): Plan {
  const firstSight = object.status?.revision === undefined && first.status?.phase === "Initialized" && first.requeueAfterMs === 0;
  if (!firstSight || carriesOut(first) || first.actions.some((a) => a.type !== "addFinalizer")) return first;
  const next = reconcile({ object: { ...object, status: first.status }, world, now });
  if (carriesOut(next)) return first;
  const finalizer = first.actions.length > 0;
  return { ...next, events: [...first.events, ...next.events], actions: [...first.actions, ...next.actions.filter((a) => !(finalizer && a.type === "addFinalizer"))] };
}

/** Runs what the first decision asked for, side by side; the world fields it answers. */
async function carryOut(first: Plan, io: PassIO): Promise<Pick<World, "measurements" | "environments" | "golden">> {
  const [measurements, environments, golden] = await Promise.all([
    first.measure?.length ? io.measure(first.measure) : undefined,
    first.ensure?.length ? io.ensure(first.ensure) : undefined,
    first.golden?.length ? runGolden(io, first.golden) : undefined,
  ]);
  return { ...(measurements ? { measurements } : {}), ...(environments ? { environments } : {}), ...(golden ? { golden } : {}) };
}

/** Golden runs through io.golden; a caller without a runner gets an error outcome (never a pass). */
function runGolden(io: PassIO, requests: readonly GoldenRequest[]): Promise<Record<string, GoldenOutcome>> {
  if (io.golden) return io.golden(requests);
  return Promise.resolve(Object.fromEntries(requests.map((r) => [r.key, { ok: false, message: "no golden runner in this process" }])));
}
