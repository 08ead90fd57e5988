/** The shapes reconcile reads and returns. Adapters (kube/, environments/) carry out actions. */
import type { AIRollout, Status } from "../api/schema.ts";
import type { QueryOutcome } from "../analysis/assess.ts";
import type { EnvironmentFailure, EnvironmentRole, EnvironmentStatus } from "./ports.ts";

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
  environments?: Partial<Record<EnvironmentRole, EnvironmentOutcome>>;
}

export type EnvironmentOutcome = { ok: true; status: EnvironmentStatus } | { ok: false; failure: EnvironmentFailure };

/** An environment to create or update (pulumi up) before the pass can decide. */
export interface EnsureRequest {
  role: EnvironmentRole;
  /** Which spec version to deploy in that role. */
  version: "stable" | "candidate";
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
  | { type: "destroyEnvironments"; reason: string; roles?: EnvironmentRole[] };

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
}
