/** `airollout status NAME [-w]`: a rollout's phase, steps, golden suite, analysis and conditions, for humans; -w follows it (status-watch.ts). */
import type { AIRollout } from "../api/schema.ts";
import { formatDuration } from "../api/duration.ts";
import type { JudgeStatus } from "../analysis/judge-metric.ts";
import { rolloutPath } from "../api/paths.ts";
import type { KubeClient } from "../kube/client.ts";
import { UsageError } from "./errors.ts";
import { STATUS, parseFlags } from "./commands.ts";
import { connect } from "./kube.ts";
import { positiveDurationFlag } from "./text.ts";

/** A statistical judge metric's judgement: `High  p=1.2e-9  Cliff's delta 0.83  n=120 candidate / 118 baseline`. */
function judgeLine(j: JudgeStatus): string {
  const num = (x: number | undefined): string => (x === undefined ? "-" : Number(x.toPrecision(3)).toString());
  return `${j.classification}  p=${num(j.pValue)}  Cliff's delta ${num(j.effectSize)}  n=${j.candidateSamples ?? "-"} candidate / ${j.baselineSamples ?? "-"} baseline`;
}

/** Most failed cases printed: status keeps at most 10, already masked by the controller. */
const GOLDEN_FAILURES_SHOWN = 10;

/** status.golden: the suite (version, digest), the counts and the first failures. */
function goldenLines(g: NonNullable<AIRollout["status"]>["golden"]): string[] {
  if (!g) return [];
  const suite = `suite ${g.suiteVersion ?? "-"} (digest ${g.suiteDigest ?? "-"})`;
  const counts = `${g.passed ?? "-"}/${g.total ?? "-"} passed, ${g.failed ?? "-"} failed (at most ${g.maxFailures ?? "-"} accepted)`;
  const lines = [`Golden:      ${g.phase ?? "-"}  ${suite}  ${counts}${g.run ? `  run ${g.run}` : ""}`];
  if (g.message) lines.push(`  ${g.message}`);
  const failures = g.failures ?? [];
  for (const f of failures.slice(0, GOLDEN_FAILURES_SHOWN)) lines.push(`  failed ${f.name}: ${f.reason}`);
  const more = (g.failed ?? failures.length) - Math.min(failures.length, GOLDEN_FAILURES_SHOWN);
  if (more > 0) lines.push(`  ... and ${more} more failed case(s)`);
  return lines;
}

/** Renders the status block `airollout status` prints. */
export function renderStatus(obj: AIRollout): string {
  const s = obj.status ?? {};
  const lines = [
    `Name:        ${obj.metadata.namespace}/${obj.metadata.name}`,
    `Phase:       ${s.phase ?? "Pending"}${s.pauseReason ? ` [${s.pauseReason}]` : ""}${s.message ? `  (${s.message})` : ""}`,
    `Stable:      ${s.stableVersion ?? "-"}`,
    `Candidate:   ${s.candidateVersion ?? "-"}  revision ${s.revision ?? "-"}`,
    `Weight:      ${s.canaryWeight ?? 0}%`,
    `Step:        ${Math.min((s.currentStep ?? 0) + 1, s.stepCount ?? 0)}/${s.stepCount ?? "?"} (index ${s.currentStep ?? 0})`,
    `Generation:  observed ${s.observedGeneration ?? "-"} of ${obj.metadata.generation}`,
  ];
  if (s.steps?.length) {
    lines.push("Steps:");
    for (const st of s.steps) {
      const mark = st.index < (s.currentStep ?? 0) ? "done" : st.index === s.currentStep ? "=> " : "   ";
      const detail = st.type === "setWeight" ? `setWeight ${st.weight}` : st.durationSeconds !== undefined ? `${st.type} ${formatDuration(st.durationSeconds * 1000)}` : st.type;
      lines.push(`  ${mark.padEnd(4)} ${String(st.index).padStart(2)}  ${detail}`);
    }
  }
  lines.push(...goldenLines(s.golden));
  const runs = [s.analysis?.current, s.analysis?.background].filter((r) => r !== undefined);
  if (runs.length) {
    lines.push("Analysis:");
    for (const run of runs) {
      lines.push(`  ${run.id}: ${run.phase} (since ${run.startedAt})`);
      for (const m of run.metrics) {
        lines.push(`    ${m.name.padEnd(24)} ${m.phase.padEnd(12)} last ${m.lastValue ?? "-"}  (${m.successful} ok, ${m.failed} failed, ${m.inconclusive} inconclusive, ${m.error} errors)`);
        if (m.judge) lines.push(`      judge: ${judgeLine(m.judge)}`);
        if (m.query) lines.push(`      query: ${m.query}`);
        if (m.message && m.phase !== "Running") lines.push(`      ${m.message}`);
      }
    }
  }
  if (s.conditions?.length) {
    lines.push("Conditions:");
    for (const c of s.conditions) lines.push(`  ${c.type.padEnd(12)} ${c.status.padEnd(7)} ${c.reason}${c.message ? `: ${c.message}` : ""}`);
  }
  return lines.join("\n") + "\n";
}

/** `airollout status NAME [-w]`: prints the status once, or follows it (status-watch.ts). */
export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(STATUS, argv);
  const name = positionals[0];
  if (!name) throw new UsageError("status: give the AIRollout's name");
  if (positionals.length > 1) throw new UsageError(`status: one AIRollout name, got ${positionals.length}`);
  if (values.timeout !== undefined && !values.watch) throw new UsageError("--timeout applies to --watch only");
  const timeoutMs = values.timeout === undefined ? undefined : timeoutOf(values.timeout);
  const { client, namespace } = connect(values);
  if (values.watch) return follow(client, namespace, name, timeoutMs);
  const obj = await client.get<AIRollout>(rolloutPath(namespace, name));
  process.stdout.write(renderStatus(obj));
  return 0;
}

const timeoutOf = (text: string): number => positiveDurationFlag("--timeout", text);

/** `status -w`: follows through the client's watch until the rollout rests; Ctrl-C ends it cleanly. */
async function follow(client: KubeClient, namespace: string, name: string, timeoutMs: number | undefined): Promise<number> {
  const { followRollout } = await import("./status-watch.ts");
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.once("SIGINT", onSignal);
  try {
    return await followRollout({
      port: { get: (path) => client.get<AIRollout>(path), watch: (path, query, onEvent, onDone) => client.watcher().watch(path, query, onEvent, onDone) },
      namespace,
      name,
      write: (text) => process.stdout.write(text),
      signal: interrupt.signal,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    });
  } finally {
    process.removeListener("SIGINT", onSignal);
  }
}
