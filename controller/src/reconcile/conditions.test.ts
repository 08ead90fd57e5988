import { describe, expect, it } from "vitest";
import type { Status } from "../api/schema.ts";
import { deriveConditions, setCondition, type HealthFacts } from "./conditions.ts";

const t1 = new Date("2026-01-01T00:00:00Z");
const t2 = new Date("2026-01-01T00:05:00Z");

describe("setCondition", () => {
  it("adds a condition with the current time", () => {
    const out = setCondition([], { type: "Ready", status: "True", reason: "A", message: "m" }, t1, 3);
    expect(out).toEqual([{ type: "Ready", status: "True", reason: "A", message: "m", observedGeneration: 3, lastTransitionTime: "2026-01-01T00:00:00Z" }]);
  });
  it("keeps lastTransitionTime when the status does not flip, even if the reason changes", () => {
    const a = setCondition([], { type: "Ready", status: "True", reason: "A", message: "m" }, t1, 1);
    const b = setCondition(a, { type: "Ready", status: "True", reason: "B", message: "n" }, t2, 2);
    expect(b[0]).toMatchObject({ reason: "B", message: "n", observedGeneration: 2, lastTransitionTime: "2026-01-01T00:00:00Z" });
  });
  it("moves lastTransitionTime when the status flips, and leaves other types alone", () => {
    let c = setCondition([], { type: "Ready", status: "True", reason: "A", message: "" }, t1, 1);
    c = setCondition(c, { type: "Degraded", status: "False", reason: "A", message: "" }, t1, 1);
    c = setCondition(c, { type: "Ready", status: "False", reason: "B", message: "" }, t2, 1);
    expect(c.find((x) => x.type === "Ready")!.lastTransitionTime).toBe("2026-01-01T00:05:00Z");
    expect(c.find((x) => x.type === "Degraded")!.lastTransitionTime).toBe("2026-01-01T00:00:00Z");
    expect(c).toHaveLength(2);
  });
});

describe("deriveConditions: README's phase table (Health)", () => {
  const facts = { servingVersion: "v1" };
  const derive = (status: Status, extra: Partial<HealthFacts> = {}) => {
    const list = deriveConditions(status, { ...facts, ...extra }, t1, 1);
    const c = (type: string) => {
      const x = list.find((y) => y.type === type)!;
      return `${x.status}/${x.reason}`;
    };
    return [c("Ready"), c("Reconciling"), c("Stalled"), c("Progressing")];
  };

  it.each(["Initialized", "ShadowTesting", "Progressing", "Promoting", "RollingBack"] as const)("%s: Ready False and Reconciling True (reason = phase), not Stalled", (phase) => {
    expect(derive({ phase }).slice(0, 3)).toEqual([`False/${phase}`, `True/${phase}`, "False/AsExpected"]);
  });

  it.each<[string, Status, Partial<HealthFacts>, string[]]>([
    ["Paused: Stalled (reason = pauseReason), Progressing Unknown", { phase: "Paused", pauseReason: "PauseStep" }, {}, ["False/Paused", "False/PauseStep", "True/PauseStep", "Unknown/Paused"]],
    ["Succeeded: Ready True only once the candidate serves all traffic; Progressing False when done", { phase: "Succeeded" }, {}, ["True/Succeeded", "False/Succeeded", "False/AsExpected", "False/Succeeded"]],
    ["RolledBack: Stalled (RolledBack)", { phase: "RolledBack" }, {}, ["False/RolledBack", "False/RolledBack", "True/RolledBack", "False/RolledBack"]],
    ["RolledBack by abort: Stalled (Aborted)", { phase: "RolledBack", abort: true }, {}, ["False/RolledBack", "False/Aborted", "True/Aborted", "False/RolledBack"]],
    ["Degraded, invalid spec: Stalled (the reason)", { phase: "Degraded" }, { degraded: { reason: "InvalidSpec", message: "bad", needsPerson: true } }, ["False/InvalidSpec", "False/InvalidSpec", "True/InvalidSpec", "False/InvalidSpec"]],
    ["Degraded, missing reference (retried with backoff): Reconciling (Degraded), not Stalled", { phase: "Degraded" }, { degraded: { reason: "MissingReference", message: "gone", needsPerson: false } }, ["False/MissingReference", "True/Degraded", "False/AsExpected", "False/MissingReference"]],
    ["environments gave up: Stalled (EnvironmentFailed)", { phase: "Progressing" }, { environmentsStalled: "bad image" }, ["False/Progressing", "False/EnvironmentFailed", "True/EnvironmentFailed", "True/Progressing"]],
    ["a step past progressDeadline: Stalled (ProgressDeadlineExceeded), Progressing False", { phase: "Progressing" }, { deadlineExceeded: "too long" }, ["False/Progressing", "False/ProgressDeadlineExceeded", "True/ProgressDeadlineExceeded", "False/ProgressDeadlineExceeded"]],
  ])("%s", (_name, status, extra, expected) => {
    expect(derive(status, extra)).toEqual(expected);
  });
});
