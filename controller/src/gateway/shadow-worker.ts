/**
 * Entry point of a shadow worker thread (see shadow.ts and ShadowWorkerPool). Messages in:
 * batches of `{ id, job, rules? }` (rules only the first time a rules key is used on this
 * worker); out: batches of `{ id, result }`, one post per event-loop turn. Each worker has its
 * own keep-alive socket pools.
 */
import { parentPort } from "node:worker_threads";
import type { CompareRulesInput } from "../diff/index.ts";
import { RulesCache, runShadowJob, type ShadowJob, type ShadowResult } from "./shadow.ts";
import { createAgents } from "./upstream.ts";

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
const agents = createAgents(256);
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

function failed(id: number, detail: string): WorkerReply {
  return { id, result: { shadow: { ok: false, reason: "error", detail }, noise: undefined, primaryText: undefined } };
}

port.on("message", (batch: WorkerRequest[]) => {
  for (const m of batch) {
    let compiled;
    try {
      compiled = rules.get(m.job.rulesKey, m.rules);
    } catch (err) {
      reply(failed(m.id, `spec.shadow.compare does not compile: ${(err as Error).message}`));
      continue;
    }
    // The pool sends rules with the first job of a key; a missing entry is a pool bug, reported, not hidden.
    if (!compiled) reply(failed(m.id, `shadow worker has no rules for key ${m.job.rulesKey.slice(0, 80)}`));
    else void runShadowJob(m.job, compiled, agents).then((result) => reply({ id: m.id, result }));
  }
});
