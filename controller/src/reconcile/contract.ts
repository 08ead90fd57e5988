/**
 * The reconcile contract, in one file: the shapes a pass reads (Observed, World) and returns
 * (Plan, actions, Events), and the ports its requests and actions need: EnvironmentsPort
 * (environments/) and MeasurementsPort (analysis/measure.ts). Adapters, and kube/controller.ts
 * which drives them, import this file, never the other way round.
 */
import type { AIRollout, Status, VersionSpec } from "../api/schema.ts";
import type { QueryOutcome } from "../analysis/provider.ts";
import type { EgressPolicy } from "../api/egress.ts";
import type { SuiteResult } from "../golden/suite.ts";
/** A reference from the spec to another object the controller needs to act. */
export interface Reference {
  kind: "Secret" | "ConfigMap";
  name: string;
  key: string;
  /** Spec field that holds the reference, e.g. spec.traffic.signature.secretRef. */
  field: string;
}

/** A referenced Secret or ConfigMap as observed: never its values, only their digests. */
export interface ObservedReference {
  exists: boolean;
  keys: string[];
  /**
   * Content digest of each key's value (16 hex digits of a sha256; for Secrets an HMAC keyed by
   * the Secret's uid, so a short secret cannot be guessed offline from status). Folded into the
   * revisions, so an edit of a referenced key starts a new rollout.
   */
  digests?: Record<string, string>;
}

/** What adapters observed about the world outside the AIRollout object. */
export interface World {
  /** Referenced objects, keyed `${kind}/${name}`: whether they exist, and the keys in them. */
  references: Record<string, ObservedReference>;
  /** Outcomes of the queries a first pass asked for (Plan.measure), keyed by request key. */
  measurements?: Record<string, QueryOutcome>;
  /** Outcomes of the environment updates a first pass asked for (Plan.ensure), by role. */
  environments?: Partial<Record<RolloutRole, EnvironmentOutcome>>;
  /** Outcomes of the golden runs a first pass asked for (Plan.golden), keyed by request key. */
  golden?: Record<string, GoldenOutcome>;
  /** The cluster admin's egress policy (controller flags): a spec that dials outside it is refused. */
  egress?: EgressPolicy;
}

export type EnvironmentOutcome = { ok: true; status: EnvironmentStatus } | { ok: false; failure: EnvironmentFailure };

/** An environment to create or update (pulumi up) before the pass can decide. */
export interface EnsureRequest {
  role: RolloutRole;
  /** Which version to deploy in that role. */
  version: "stable" | "candidate";
  /** Its spec, resolved by the pass: the stable may come from status.stable (ADR 0009). */
  deploy: VersionSpec;
  revision: string;
}

/** A query the pass needs answered before it can decide (run by the analysis adapter). */
export interface MeasureRequest {
  key: string;
  query: string;
  address: string;
  timeoutMs: number;
}

export interface Observed {
  object: AIRollout;
  world: World;
  now: Date;
}

/** A Kubernetes Event to record; dedupeKey makes replays after a restart idempotent. */
export interface EventSpec {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  dedupeKey: string;
  action?: string;
}

export type Action =
  | { type: "addFinalizer" }
  | { type: "removeFinalizer" }
  | { type: "destroyEnvironments"; reason: string; roles?: RolloutRole[] };

/** The outcome of one reconcile pass. */
export interface Plan {
  /** The status to write; undefined leaves status untouched (deletion). */
  status?: Status;
  events: EventSpec[];
  actions: Action[];
  /** Run again after this long (timed steps, periodic checks). */
  requeueAfterMs?: number;
  /** Run again with exponential backoff (a problem that may clear by itself). */
  backoff?: boolean;
  /** Queries due now: run them and reconcile again with their outcomes in world.measurements. */
  measure?: MeasureRequest[];
  /** Environments to stand up now: run them and reconcile again with world.environments. */
  ensure?: EnsureRequest[];
  /** Golden suites to run against the candidate now: reconcile again with world.golden. */
  golden?: GoldenRequest[];
}

/** What status.environments holds for one environment (a Pulumi stack). */
export type EnvironmentStatus = NonNullable<NonNullable<Status["environments"]>["canary"]>;

/**
 * The role an environment plays in a rollout; one stack per rollout and role. canary and shadow
 * run the candidate, stable the stable version (a second copy for the noise baseline), and
 * preview-<id> an ephemeral environment that is collected when its TTL passes.
 */
export type EnvironmentRole = RolloutRole | `preview-${string}`;

/** The roles a rollout's steps need, each with its own key in status.environments. */
export type RolloutRole = "canary" | "shadow" | "stable";

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

/** Takes a pass's measurements: runs the queries it asked for (each through a MetricsProvider), never throwing for query failures. */
export interface MeasurementsPort {
  /** Outcomes keyed by request key; an unreachable server is an error outcome, not an exception. */
  measure(requests: readonly MeasureRequest[]): Promise<Record<string, QueryOutcome>>;
}

/**
 * A golden suite to run against the candidate only: its ConfigMap key (read by the runner, whose
 * content must still have the digest the revision was computed from) and the candidate's URL.
 */
export interface GoldenRequest {
  key: string;
  namespace: string;
  configMapRef: { name: string; key: string };
  /** The spec field that names the suite, for messages (spec.golden.configMapRef or a step's). */
  field?: string;
  /** The suite's digest in the revision; a suite edited since is no evidence for this revision. */
  digest: string | undefined;
  /** The candidate's own URL (its environment or endpoint), never the gateway's split. */
  url: string;
  concurrency: number;
  timeoutMs: number;
  /** spec.shadow.maskPatterns: masked in the failures reported, with emails, phones and cards. */
  maskPatterns: string[];
}

/** A golden run's outcome: the counts, or why there is no evidence (never a pass). */
export type GoldenOutcome = { ok: true; suiteVersion: string; result: SuiteResult } | { ok: false; message: string };

/** Runs golden suites (golden/runner.ts); a failure is an outcome, never an exception. */
export interface GoldenPort {
  run(requests: readonly GoldenRequest[]): Promise<Record<string, GoldenOutcome>>;
}
