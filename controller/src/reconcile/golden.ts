/**
 * The golden step's rule (pure): a run's outcome -> status.golden. A suite passes when at most
 * maxFailures cases failed; an outcome without evidence (suite unreadable or edited since the
 * revision, the candidate unreachable, no case run) is phase Error, which is never a pass.
 */
import type { Status } from "../api/schema.ts";
import { verdict } from "../golden/suite.ts";
import type { GoldenOutcome, Reference } from "./contract.ts";

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

/** Most golden steps a rollout can have: 64 steps and the gate. */
const MAX_STEP_RESULTS = 65;

/**
 * status.golden after a run of step `step` (suite `suite`): the run's own fields, and in `steps`
 * the last result of every golden step of the same revision and attempt (one entry per step,
 * this one replaced), so steps that run different suites each keep their counts.
 */
export function withStepResult(prev: GoldenStatus | undefined, next: GoldenStatus, step: number, suite: Pick<Reference, "name" | "key">): GoldenStatus {
  const attempt = (run: string | undefined) => run?.replace(/\/s\d+$/, "");
  const entry = {
    step,
    suite: `ConfigMap ${suite.name} key ${suite.key}`,
    phase: next.phase ?? "Error",
    ...(next.suiteVersion !== undefined ? { suiteVersion: next.suiteVersion } : {}),
    ...(next.suiteDigest !== undefined ? { suiteDigest: next.suiteDigest } : {}),
    ...(next.total !== undefined ? { total: next.total, passed: next.passed, failed: next.failed } : {}),
    ...(next.updatedAt !== undefined ? { updatedAt: next.updatedAt } : {}),
  };
  const kept = attempt(prev?.run) === attempt(next.run) ? (prev?.steps ?? []).filter((e) => e.step !== step) : [];
  const steps = [...kept, entry].sort((a, b) => a.step - b.step).slice(0, MAX_STEP_RESULTS);
  return { ...next, steps };
}
