/** metav1.Condition handling: one helper, so lastTransitionTime only moves when status flips. */
import type { Condition, Status } from "../api/schema.ts";
import { ConditionType, Reason } from "./reasons.ts";

export interface ConditionInput {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

/**
 * Returns conditions with `input` set. lastTransitionTime is kept when the status does not
 * change, even if reason or message do (the metav1.Condition contract).
 */
export function setCondition(conditions: readonly Condition[] | undefined, input: ConditionInput, now: Date, generation: number): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === input.type);
  const prev = i >= 0 ? list[i] : undefined;
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message,
    observedGeneration: generation,
    lastTransitionTime: prev && prev.status === input.status ? prev.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/** The condition of a type, if present. */
export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** What the health conditions need to know beyond the status itself. */
export interface HealthFacts {
  /** The version serving the stable share of traffic (the candidate once Succeeded). */
  servingVersion: string;
  /** The current step overran spec.strategy.progressDeadline: why. */
  deadlineExceeded?: string;
  /** An environment failed maxConsecutiveFailures times in a row: why. */
  environmentsStalled?: string;
  /** Some environment's last update failed. */
  environmentFailed?: boolean;
  /** The spec or its references are unusable (phase Degraded): why, and whether only a person can fix it. */
  degraded?: { reason: string; message: string; needsPerson: boolean };
}

/** Phases that move on by themselves. */
const MOVING = new Set(["Pending", "Initialized", "ShadowTesting", "Progressing", "Promoting", "RollingBack"]);

/**
 * The health conditions, derived from the phase (README "Health" has the table), following the
 * kstatus conventions that kubectl wait, Flux and Argo CD read:
 * - Ready=True only when the candidate serves all traffic (Succeeded);
 * - Reconciling=True while the rollout moves on by itself (reason = phase);
 * - Stalled=True when it cannot go on without a person: rolled back, paused for a human, an
 *   invalid spec, environments that gave up, a step past its progress deadline;
 * - Progressing and Degraded as Argo Rollouts users read them.
 */
export function deriveConditions(s: Status, f: HealthFacts, now: Date, generation: number): Condition[] {
  const stalled = stalledBy(s, f);
  const inputs = [ready(s, f), reconciling(s, f, stalled), stalledCondition(stalled), progressing(s.phase ?? "Pending", s.message ?? "", f), degraded(s, f)];
  let list = [...(s.conditions ?? [])];
  for (const input of inputs) if (input) list = setCondition(list, input, now, generation);
  return list;
}

/** True only when the candidate serves all traffic. */
function ready(s: Status, f: HealthFacts): ConditionInput {
  if (s.phase === "Succeeded") return { type: ConditionType.Ready, status: "True", reason: Reason.Succeeded, message: `${f.servingVersion} serves all traffic` };
  const why = f.degraded?.message ?? s.message ?? "";
  return { type: ConditionType.Ready, status: "False", reason: f.degraded?.reason ?? s.phase ?? "Pending", message: `${f.servingVersion} serves ${100 - (s.canaryWeight ?? 0)}% of traffic; ${why}` };
}

/** True while the rollout moves on by itself, with the phase as the reason. */
function reconciling(s: Status, f: HealthFacts, stalled: { reason: string } | undefined): ConditionInput {
  const phase = s.phase ?? "Pending";
  const moving = !stalled && (MOVING.has(phase) || (phase === "Degraded" && !f.degraded?.needsPerson));
  if (!moving) return { type: ConditionType.Reconciling, status: "False", reason: stalled?.reason ?? phase, message: "" };
  return { type: ConditionType.Reconciling, status: "True", reason: phase, message: f.degraded?.message ?? s.message ?? "" };
}

function stalledCondition(stalled: { reason: string; message: string } | undefined): ConditionInput {
  return stalled ? { type: ConditionType.Stalled, status: "True", reason: stalled.reason, message: stalled.message } : { type: ConditionType.Stalled, status: "False", reason: Reason.AsExpected, message: "" };
}

/** True for an unusable spec; cleared once healthy again (rollback and environment failures set it where they happen). */
function degraded(s: Status, f: HealthFacts): ConditionInput | undefined {
  if (f.degraded) return { type: ConditionType.Degraded, status: "True", reason: f.degraded.reason, message: f.degraded.message };
  const phase = s.phase;
  if (phase === "RollingBack" || phase === "RolledBack" || phase === "Paused" || f.environmentFailed) return undefined;
  return { type: ConditionType.Degraded, status: "False", reason: Reason.AsExpected, message: "" };
}

/** Why only a person can move the rollout on, or undefined. */
function stalledBy(s: Status, f: HealthFacts): { reason: string; message: string } | undefined {
  const message = s.message ?? "";
  if (s.phase === "RolledBack") return { reason: s.abort ? Reason.Aborted : Reason.RolledBack, message };
  if (s.phase === "Paused") return { reason: s.pauseReason ?? Reason.Paused, message };
  if (f.degraded?.needsPerson) return { reason: f.degraded.reason, message: f.degraded.message };
  if (f.environmentsStalled) return { reason: Reason.EnvironmentFailed, message: f.environmentsStalled };
  if (f.deadlineExceeded) return { reason: Reason.ProgressDeadlineExceeded, message: f.deadlineExceeded };
  return undefined;
}

/** Progressing, as a Deployment's: False when done or past its deadline, Unknown while paused. */
function progressing(phase: string, message: string, f: HealthFacts): ConditionInput {
  if (phase === "Succeeded" || phase === "RolledBack") return { type: ConditionType.Progressing, status: "False", reason: phase, message };
  if (phase === "Paused") return { type: ConditionType.Progressing, status: "Unknown", reason: Reason.Paused, message };
  if (f.degraded) return { type: ConditionType.Progressing, status: "False", reason: f.degraded.reason, message: "waiting for the spec or its references to be fixed" };
  if (f.deadlineExceeded) return { type: ConditionType.Progressing, status: "False", reason: Reason.ProgressDeadlineExceeded, message: f.deadlineExceeded };
  return { type: ConditionType.Progressing, status: "True", reason: phase, message };
}
