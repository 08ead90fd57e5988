/** Condition types and reasons, in one place so status, Events and docs agree. */

export const ConditionType = {
  Ready: "Ready",
  Progressing: "Progressing",
  Degraded: "Degraded",
  Stalled: "Stalled",
} as const;

export const Reason = {
  Initialized: "Initialized",
  NewRevision: "NewRevision",
  InvalidSpec: "InvalidSpec",
  MissingReference: "MissingReference",
  AsExpected: "AsExpected",
  Deleting: "Deleting",
  ReconcileError: "ReconcileError",
} as const;
