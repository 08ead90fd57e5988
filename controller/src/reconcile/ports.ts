/** Ports that reconcile's actions need; adapters implement them (never the other way round). */
import type { AIRollout, Status, VersionSpec } from "../api/schema.ts";
import type { QueryOutcome } from "../analysis/assess.ts";
import type { MeasureRequest } from "./types.ts";

/** What status.environments holds for one environment (a Pulumi stack). */
export type EnvironmentStatus = NonNullable<NonNullable<Status["environments"]>["canary"]>;

/**
 * The role an environment plays in a rollout; one stack per rollout and role. canary and shadow
 * run the candidate, stable the stable version (a second copy for the noise baseline), and
 * preview-<id> an ephemeral environment that is collected when its TTL passes.
 */
export type EnvironmentRole = "canary" | "shadow" | "stable" | `preview-${string}`;

export interface EnsureOptions {
  /** The rollout revision deployed (status.revision); recorded on the pods and in the status. */
  revision?: string;
  /** Preview environments: when the garbage collector may destroy the environment. */
  expiresAt?: Date;
}

/**
 * Why an environment operation failed, as data reconcile can act on. transient failures (a
 * stack locked by an update in progress) requeue with backoff; the others set Degraded with
 * `message` and count towards spec.environments.pulumi.maxConsecutiveFailures (then Stalled).
 */
export interface EnvironmentFailure {
  /** true: retry with backoff, nothing is wrong with the spec; false: Degraded with message. */
  transient: boolean;
  /** No retry can clear it (the controller cannot stand environments up at all): Stalled at once. */
  permanent?: boolean;
  /** CamelCase reason for conditions and Events, e.g. StackLocked, InvalidEnvironment. */
  reason: string;
  /** What went wrong and what to fix, with Pulumi's own message where there is one. */
  message: string;
  /** The Pulumi stack (named stackName: Error already has a `stack`). */
  stackName: string;
  role: EnvironmentRole;
}

/** An environment stack as found in the backend (for garbage collection and deletion). */
export interface EnvironmentSummary {
  stack: string;
  role: EnvironmentRole;
  /** <namespace>/<name> of the owning AIRollout, when the stack recorded it. */
  rollout?: string;
  url?: string;
  expiresAt?: string;
  lastUpdate?: string;
  /** Whether an update holds the stack's lock right now. */
  updating: boolean;
}

/** Stands up and tears down a rollout's environments (canary, shadow, previews). */
export interface EnvironmentsPort {
  /** Destroys every environment of the rollout; resolves when nothing is left behind. */
  destroyAll(rollout: AIRollout, reason: string): Promise<void>;
  /**
   * Creates or updates the environment of `version` in `role` and resolves with its status
   * (phase Ready, url, serviceName). Updates of one stack never overlap; different stacks update
   * side by side. A version with an external endpoint resolves Ready at once, with no stack.
   * Rejects with an Error that is also an EnvironmentFailure.
   */
  ensure(rollout: AIRollout, role: EnvironmentRole, version: VersionSpec, opts?: EnsureOptions): Promise<EnvironmentStatus>;
  /** Destroys the environment in `role` and removes its stack; a missing stack is no error. */
  destroy(rollout: AIRollout, role: EnvironmentRole, reason: string): Promise<void>;
  /** The rollout's environments (all rollouts' when undefined). */
  list(rollout?: AIRollout): Promise<EnvironmentSummary[]>;
  /** Destroys preview environments whose expiresAt is before `now`; returns those collected. */
  collectExpired(now: Date): Promise<EnvironmentSummary[]>;
}

/** Whether a thrown value carries an EnvironmentFailure (what ensure/destroy reject with). */
export function isEnvironmentFailure(err: unknown): err is Error & EnvironmentFailure {
  return err instanceof Error && typeof (err as Partial<EnvironmentFailure>).transient === "boolean" && typeof (err as Partial<EnvironmentFailure>).reason === "string";
}

/** Takes measurements: runs the queries a pass asked for, never throwing for query failures. */
export interface MetricsPort {
  /** Outcomes keyed by request key; an unreachable server is an error outcome, not an exception. */
  measure(requests: readonly MeasureRequest[]): Promise<Record<string, QueryOutcome>>;
}
