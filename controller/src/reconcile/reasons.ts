/** Condition types and reasons, in one place so status, Events and docs agree. */

export const ConditionType = {
  Ready: "Ready",
  Progressing: "Progressing",
  Degraded: "Degraded",
  Stalled: "Stalled",
  Reconciling: "Reconciling",
} as const;

export const Reason = {
  Initialized: "Initialized",
  NewRevision: "NewRevision",
  InvalidSpec: "InvalidSpec",
  /** A spec field points where the egress policy does not allow (api/egress.ts): a person must act. */
  EgressDenied: "EgressDenied",
  /**
   * A Secret or ConfigMap the spec refers to, or its key, is missing: any reference, the Pulumi
   * passphrase Secret included. It may be created later, so it retries with backoff.
   */
  MissingReference: "MissingReference",
  AsExpected: "AsExpected",
  Deleting: "Deleting",
  ReconcileError: "ReconcileError",
  InvalidAnalysis: "InvalidAnalysis",
  InvalidQuery: "InvalidQuery",
  StepStarted: "StepStarted",
  PauseStep: "PauseStep",
  SpecPaused: "SpecPaused",
  Resumed: "Resumed",
  Paused: "Paused",
  Promoted: "Promoted",
  Promoting: "Promoting",
  Succeeded: "Succeeded",
  AnalysisFailed: "AnalysisFailed",
  AnalysisInconclusive: "AnalysisInconclusive",
  AnalysisError: "AnalysisError",
  Aborted: "Aborted",
  RolledBack: "RolledBack",
  Retry: "Retry",
  ProgressDeadlineExceeded: "ProgressDeadlineExceeded",
  EnvironmentsPending: "EnvironmentsPending",
  EnvironmentFailed: "EnvironmentFailed",
  // Environment failures (environments/errors.ts), as Degraded reasons and Warning Events.
  /** A stack locked by an update in progress (transient: backoff only). */
  StackLocked: "StackLocked",
  /** The Pulumi program refused the input (no stack is created). */
  InvalidEnvironment: "InvalidEnvironment",
  /**
   * A backend that needs a secrets passphrase has none configured, or the passphrase given does
   * not open the stack. A passphrase Secret or key that is missing is MissingReference.
   */
  MissingPassphrase: "MissingPassphrase",
  /** A file backend that cannot be written. */
  BackendUnavailable: "BackendUnavailable",
  EnvironmentUpdateFailed: "EnvironmentUpdateFailed",
  EnvironmentDestroyFailed: "EnvironmentDestroyFailed",
  /** Image versions with the controller's environments turned off (`--environments none`). */
  EnvironmentsDisabled: "EnvironmentsDisabled",
  Stalled: "Stalled",
  /** A shadow step whose judged mismatch rate is above the limit (fail fast or at its end). */
  ShadowMismatch: "ShadowMismatch",
  /** A shadow step still without enough comparisons progressDeadline after its duration. */
  InsufficientEvidence: "InsufficientEvidence",
  /** A golden suite whose failed cases exceed maxFailures: rolled back. */
  GoldenSuiteFailed: "GoldenSuiteFailed",
  /** A golden suite whose cases passed (at most maxFailures failed). */
  GoldenSuitePassed: "GoldenSuitePassed",
  /** A Degraded rollout whose problem cleared, going on where it was. */
  Recovered: "Recovered",
  /** No stable yet (no spec.stable, no status.stable): the candidate becomes the stable without steps. */
  Adopted: "Adopted",
  /** The candidate is the version last promoted (status.stable): nothing to roll out. */
  CandidateIsStable: "CandidateIsStable",
  /** A candidate that differs from the stable under the stable's own version name. */
  VersionNameTaken: "VersionNameTaken",
  /** status.stable does not parse: the stable is unknown, nothing is rolled out. */
  InvalidStableRecord: "InvalidStableRecord",
} as const;
