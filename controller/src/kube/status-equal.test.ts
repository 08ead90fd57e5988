import { describe, expect, it } from "vitest";
import type { Status } from "../api/schema.ts";
import { statusEqual } from "./controller.ts";

const ready = { type: "Ready", status: "False", reason: "Paused", message: "paused until promoted", observedGeneration: 1, lastTransitionTime: "2026-11-29T17:03:04Z" };
/** The same condition as the API server answers it: keys sorted. */
const readyFromServer = { lastTransitionTime: "2026-11-29T17:03:04Z", message: "paused until promoted", observedGeneration: 1, reason: "Paused", status: "False", type: "Ready" };
const stalled = { type: "Stalled", status: "True", reason: "PauseStep", message: "", observedGeneration: 1, lastTransitionTime: "2026-11-29T17:03:04Z" };

describe("statusEqual", () => {
  it("is true for the same status with keys in the API server's order (no write on a resync)", () => {
    const pass = { phase: "Paused", canaryWeight: 10, conditions: [ready, stalled] } as unknown as Status;
    const stored = { canaryWeight: 10, conditions: [readyFromServer, { ...stalled }], phase: "Paused" } as unknown as Status;
    expect(statusEqual(stored, pass)).toBe(true);
  });

  it("is false when a value, a key or the order of conditions differs", () => {
    const base = { phase: "Paused", conditions: [ready, stalled] } as unknown as Status;
    expect(statusEqual(base, { phase: "Paused", conditions: [{ ...ready, message: "other" }, stalled] } as unknown as Status)).toBe(false);
    expect(statusEqual(base, { phase: "Paused", conditions: [stalled, ready] } as unknown as Status)).toBe(false);
    expect(statusEqual(base, { phase: "Paused", conditions: [ready, stalled], canaryWeight: 0 } as unknown as Status)).toBe(false);
    expect(statusEqual(undefined, {} as Status)).toBe(true);
  });
});
