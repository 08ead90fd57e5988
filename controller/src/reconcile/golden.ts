/**
 * The golden step's rule (pure): a run's outcome -> status.golden. A suite passes when at most
 * maxFailures cases failed; an outcome without evidence (suite unreadable or edited since the
 * revision, the candidate unreachable, no case run) is phase Error, which is never a pass.
 */
import type { Status } from "../api/schema.ts";
import { verdict } from "../golden/suite.ts";
import type { GoldenOutcome } from "./contract.ts";

/** How long after a run without evidence the step asks for the next one. */
export const GOLDEN_RETRY_MS = 15_000;

export type GoldenStatus = NonNullable<Status["golden"]>;

/** The run's key, one per revision, attempt and step: a new revision or a retry runs the suite again. */
export function goldenRunKey(revision: string, attempt: number, step: number): string {
  return `${revision}/a${attempt}/s${step}`;
}

/** status.golden from a run's outcome. */
export function goldenStatus(run: string, outcome: GoldenOutcome, maxFailures: number, digest: string | undefined, now: Date): GoldenStatus {
  const common = { run, maxFailures, ...(digest !== undefined ? { suiteDigest: digest } : {}), updatedAt: now.toISOString() };
  if (!outcome.ok) return { ...common, phase: "Error", message: outcome.message };
  const r = outcome.result;
  const phase = verdict(r, maxFailures);
  return {
    ...common,
    phase,
    suiteVersion: outcome.suiteVersion,
    total: r.total,
    passed: r.passed,
    failed: r.failed,
    failures: r.failures,
    ...(phase === "Error" ? { message: r.total === 0 ? "no case was run" : `the candidate answered none of the ${r.total} cases: ${r.failures[0]?.reason ?? ""}` } : {}),
  };
}

/** One line for the Event and status.message: counts, and the first failures (already masked). */
export function goldenMessage(g: GoldenStatus): string {
  if (g.phase === "Error") return `golden suite gave no evidence: ${g.message ?? "unknown"}`;
  const head = `golden suite ${g.suiteVersion ?? ""}: ${g.passed}/${g.total} cases passed, ${g.failed} failed (maxFailures ${g.maxFailures})`;
  const first = (g.failures ?? []).slice(0, 3).map((f) => `${f.name}: ${f.reason}`);
  return first.length ? `${head}; first failures: ${first.join(" | ")}` : head;
}
