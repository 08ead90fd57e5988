/**
 * Entry point of a shadow worker thread (see shadow.ts and ShadowWorkerPool). Messages in:
 * batches of `{ id, job, rules? }` (rules only the first time a rules key is used on this
 * worker); out: batches of `{ id, result }`, one post per event-loop turn. Each worker has its
 * own keep-alive socket pools.
 */
import { readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import type { CompareRulesInput } from "../diff/index.ts";
import { RulesCache, runnerFailed, runShadowJob, type ShadowJob, type ShadowResult } from "./shadow.ts";
import { createAgents } from "./upstream.ts";
import type { EgressPolicy } from "../api/egress.ts";
import { startCheckpoints, type CheckpointTask } from "./fixtures-checkpoint.ts";

export interface WorkerRequest {
  id: number;
  job: ShadowJob;
  rules: CompareRulesInput | undefined;
}

export interface WorkerReply {
  id: number;
  result: ShadowResult;
}

const port = parentPort;
if (!port) throw new Error("shadow-worker.ts runs as a worker thread of the gateway");

/**
 * Shadow work is best effort: on Linux this thread lowers its own CPU priority by `nice` steps, so when
 * the machine is busy the scheduler serves the thread answering webhooks first and shadow jobs
 * queue up and are dropped (counted), rather than the primary's latency paying for them.
 */
function lowerPriority(nice: number): void {
  if (nice <= 0 || process.platform !== "linux") return;
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    // setpriority(2) with a thread id applies to that thread only; the thread started with the
    // nice value of the one that created it, and goes `nice` steps below it.
    if (tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + nice));
  } catch {
    // Without /proc or permission the worker runs at normal priority.
  }
}
lowerPriority(Number((workerData as { nice?: number } | undefined)?.nice ?? 0));
const agents = createAgents(256, (workerData as { egress?: EgressPolicy } | undefined)?.egress);
// The first worker also checkpoints the gateway's fixtures.db (fixtures-checkpoint.ts).
const checkpoint = (workerData as { checkpoint?: CheckpointTask } | undefined)?.checkpoint;
if (checkpoint) startCheckpoints(checkpoint);
const rules = new RulesCache();

let replies: WorkerReply[] = [];

function reply(r: WorkerReply): void {
  replies.push(r);
  if (replies.length === 1) {
    setImmediate(() => {
      const out = replies;
      replies = [];
      port!.postMessage(out);
    });
  }
}


port.on("message", (batch: WorkerRequest[]) => {
  for (const m of batch) {
    let compiled;
    try {
      compiled = rules.get(m.job.rulesKey, m.rules);
    } catch (err) {
      reply({ id: m.id, result: runnerFailed("rules_invalid", `spec.shadow.compare does not compile: ${(err as Error).message}`) });
      continue;
    }
    // The pool sends rules with the first job of a key; a missing entry is a pool bug, reported, not hidden.
    if (!compiled) reply({ id: m.id, result: runnerFailed("worker_error", `shadow worker has no rules for key ${m.job.rulesKey.slice(0, 80)}`) });
    // runShadowJob never rejects; the catch is a last guard so a job is always answered, never left pending.
    else void runShadowJob(m.job, compiled, agents).then(
      (result) => reply({ id: m.id, result }),
      (err: unknown) => reply({ id: m.id, result: runnerFailed("worker_error", `shadow job failed: ${String(err)}`) }),
    );
  }
});
