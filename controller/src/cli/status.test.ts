import { describe, expect, it } from "vitest";
import type { AIRollout } from "../api/schema.ts";
import { renderStatus } from "./status.ts";

describe("renderStatus", () => {
  it("airollout status NAME prints the running analyses' metrics (phase, last value, counters, query)", () => {
    const obj = {
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIRollout",
      metadata: { name: "bot", namespace: "ns", generation: 2 },
      spec: {},
      status: {
        phase: "Progressing",
        currentStep: 1,
        stepCount: 3,
        analysis: {
          current: {
            id: "step-1-a0",
            phase: "Running",
            startedAt: "2026-05-01T00:00:00Z",
            metrics: [{ name: "error-rate", phase: "Running", query: 'sum(rate(errors{rollout="bot"}[1m]))', lastValue: "0.004", successful: 2, failed: 1, inconclusive: 0, error: 3, consecutiveErrors: 0, measurements: [] }],
          },
        },
      },
    } as unknown as AIRollout;
    const out = renderStatus(obj);
    expect(out).toContain("Phase:       Progressing");
    expect(out).toMatch(/error-rate +Running +last 0\.004 +\(2 ok, 1 failed, 0 inconclusive, 3 errors\)/);
    expect(out).toContain('query: sum(rate(errors{rollout="bot"}[1m]))');
  });

  it("prints a statistical judge metric's classification, p-value, effect size and samples", () => {
    const judged = { name: "latency-judge", phase: "Failed", lastValue: "High", successful: 0, failed: 1, inconclusive: 0, error: 0, consecutiveError: 0, judge: { classification: "High", pValue: 1.234e-9, effectSize: 0.8312, candidateSamples: 120, baselineSamples: 118, weight: 1 } };
    const obj = { metadata: { name: "bot", namespace: "ns", generation: 1 }, spec: {}, status: { analysis: { current: { id: "step-1", phase: "Failed", startedAt: "2026-05-01T00:00:00Z", metrics: [judged] } } } } as unknown as AIRollout;
    expect(renderStatus(obj)).toContain("judge: High  p=1.23e-9  Cliff's delta 0.831  n=120 candidate / 118 baseline");
  });

  it("prints status.golden: phase, suite version and digest, counts, and the first failures (and how many more)", () => {
    const failures = Array.from({ length: 12 }, (_, i) => ({ name: `case-${i}`, reason: `$.intent: expected "refund", got "other" (${i})` }));
    const golden = { run: "r1-a0-s0", phase: "Failed", suiteVersion: "v7", suiteDigest: "3f2a9c01d4e5b6a7", total: 40, passed: 25, failed: 15, maxFailures: 2, failures, updatedAt: "2026-05-01T00:00:00Z" };
    const obj = { metadata: { name: "bot", namespace: "ns", generation: 1 }, spec: {}, status: { phase: "RolledBack", golden } } as unknown as AIRollout;
    const out = renderStatus(obj);
    expect(out).toContain("Golden:      Failed  suite v7 (digest 3f2a9c01d4e5b6a7)  25/40 passed, 15 failed (at most 2 accepted)  run r1-a0-s0\n");
    expect(out).toContain('  failed case-0: $.intent: expected "refund", got "other" (0)\n');
    expect(out).toContain("  failed case-9:");
    expect(out).not.toContain("case-10");
    expect(out).toContain("  ... and 5 more failed case(s)\n");
    // No evidence is said as such, with the controller's reason.
    const error = { metadata: { name: "bot", namespace: "ns", generation: 1 }, spec: {}, status: { golden: { phase: "Error", suiteDigest: "abc", message: "candidate unreachable: connect ECONNREFUSED" } } } as unknown as AIRollout;
    expect(renderStatus(error)).toMatch(/Golden: +Error {2}suite - \(digest abc\) {2}-\/- passed, - failed \(at most - accepted\)\n {2}candidate unreachable: connect ECONNREFUSED\n/);
    expect(renderStatus({ ...obj, status: {} } as AIRollout)).not.toContain("Golden:");
  });
});
