import { describe, expect, it } from "vitest";
import { setCondition } from "./conditions.ts";

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
