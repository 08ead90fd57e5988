/** `airollout status NAME`: a rollout's phase, steps and conditions, for humans. */
import type { AIRollout } from "../api/schema.ts";
import { formatDuration } from "../api/duration.ts";
import type { JudgeStatus } from "../analysis/judge-metric.ts";
import { rolloutsPath } from "../api/paths.ts";
import { UsageError } from "./errors.ts";
import { STATUS, parseFlags } from "./commands.ts";
import { connect } from "./kube.ts";

/** A statistical judge metric's judgement: `High  p=1.2e-9  Cliff's delta 0.83  n=120 candidate / 118 baseline`. */
function judgeLine(j: JudgeStatus): string {
  const num = (x: number | undefined): string => (x === undefined ? "-" : Number(x.toPrecision(3)).toString());
  return `${j.classification}  p=${num(j.pValue)}  Cliff's delta ${num(j.effectSize)}  n=${j.candidateSamples ?? "-"} candidate / ${j.baselineSamples ?? "-"} baseline`;
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

export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(STATUS, argv);
  const name = positionals[0];
  if (!name) throw new UsageError("status: give the AIRollout's name");
  const { client, namespace: ns } = connect(values);
  const obj = await client.get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
  process.stdout.write(renderStatus(obj));
  return 0;
}
