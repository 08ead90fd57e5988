/**
 * Worker threads for shadow work (shadow-worker.ts). Jobs go round-robin; a worker that dies
 * answers its pending jobs with an error outcome (counted as drops by the gateway) and is
 * replaced, so a crash in one diff never takes the gateway or other jobs down.
 */
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import type { CompareRulesInput } from "../diff/index.ts";
import type { EgressPolicy } from "../api/egress.ts";
import type { CheckpointTask } from "./fixtures-checkpoint.ts";
import { runnerFailed, type ShadowJob, type ShadowResult, type ShadowRunner } from "./shadow.ts";
import type { WorkerReply, WorkerRequest } from "./shadow-worker.ts";

const WORKER_URL = new URL("./shadow-worker.ts", import.meta.url);
/** Shadow threads run at this nice value on Linux: below the thread that answers webhooks. */
export const DEFAULT_SHADOW_NICE = 10;
/** Rules keys remembered per worker as sent; at most half the worker's cache, so never evicted there first. */
const SENT_KEYS = 32;

interface Slot {
  worker: Worker;
  pending: Map<number, (r: ShadowResult) => void>;
  sent: Set<string>;
  /** Jobs not posted yet: posted together once per event-loop turn (one wake-up per batch). */
  batch: WorkerRequest[];
  transfer: ArrayBuffer[];
  flushing: boolean;
}

/** A job the pool could not see through: nothing is known about the backend (see Outcome). */
function failed(detail: string): ShadowResult {
  return runnerFailed("worker_error", detail);
}

export class ShadowWorkerPool implements ShadowRunner {
  readonly size: number;
  #slots: Slot[] = [];
  #next = 0;
  #seq = 0;
  #closed = false;
  #log: Logger;

  /** Nice steps the worker threads go below the gateway's own priority (Linux); 0 leaves them equal. */
  readonly nice: number;
  /** The egress policy each worker's connections resolve through (plain data: it crosses to the threads). */
  readonly #egress: EgressPolicy | undefined;
  /** The fixtures' WAL checkpoints, run by the first worker (and its replacement): no thread of their own. */
  readonly #checkpoint: CheckpointTask | undefined;

  constructor(size: number, log: Logger, options: { nice?: number; egress?: EgressPolicy; checkpoint?: CheckpointTask } = {}) {
    if (!(Number.isInteger(size) && size >= 1)) throw new Error(`shadow worker count must be a positive integer, got ${size}`);
    this.size = size;
    this.nice = options.nice ?? DEFAULT_SHADOW_NICE;
    this.#egress = options.egress;
    this.#checkpoint = options.checkpoint;
    this.#log = log;
    for (let i = 0; i < size; i++) this.#slots.push(this.#spawn(i));
  }

  #spawn(index: number): Slot {
    // Workers run the .ts sources by type stripping, like the main thread; no loader flags needed.
    // Only the CPU profiler's flags carry over, so that `node --cpu-prof` profiles the workers too.
    const worker = new Worker(WORKER_URL, { name: `airollout-shadow-${index}`, execArgv: profilerFlags(process.execArgv), workerData: { nice: this.nice, egress: this.#egress, checkpoint: index === 0 ? this.#checkpoint : undefined } });
    worker.unref();
    const slot: Slot = { worker, pending: new Map(), sent: new Set(), batch: [], transfer: [], flushing: false };
    worker.on("message", (replies: WorkerReply[]) => {
      for (const m of replies) {
        const done = slot.pending.get(m.id);
        if (!done) continue;
        slot.pending.delete(m.id);
        done(m.result);
      }
    });
    const fail = (why: string) => {
      for (const done of slot.pending.values()) done(failed(why));
      slot.pending.clear();
      if (!this.#closed && this.#slots[index] === slot) {
        this.#log.error({ worker: index, reason: why }, "shadow worker stopped; starting a new one");
        this.#slots[index] = this.#spawn(index);
      }
    };
    worker.on("error", (err) => fail(`shadow worker failed: ${err.message}`));
    worker.on("exit", (code) => fail(`shadow worker exited with code ${code}`));
    return slot;
  }

  run(job: ShadowJob, rules: CompareRulesInput): Promise<ShadowResult> {
    if (this.#closed) return Promise.resolve(failed("the gateway is stopping"));
    const slot = this.#slots[this.#next]!;
    this.#next = (this.#next + 1) % this.#slots.length;
    const id = ++this.#seq;
    let sendRules: CompareRulesInput | undefined;
    if (!slot.sent.has(job.rulesKey)) {
      if (slot.sent.size >= SENT_KEYS) slot.sent.delete(slot.sent.values().next().value!);
      slot.sent.add(job.rulesKey);
      sendRules = rules;
    }
    return new Promise((resolve) => {
      slot.pending.set(id, resolve);
      slot.batch.push({ id, job, rules: sendRules });
      // Byte arrays are moved, not copied; the caller hands over exact-size copies.
      for (const b of [job.body.buffer, job.primary.body.buffer]) if (b instanceof ArrayBuffer && !slot.transfer.includes(b)) slot.transfer.push(b);
      if (!slot.flushing) {
        slot.flushing = true;
        setImmediate(() => this.#flush(slot));
      }
    });
  }

  #flush(slot: Slot): void {
    const batch = slot.batch;
    const transfer = slot.transfer;
    slot.batch = [];
    slot.transfer = [];
    slot.flushing = false;
    if (batch.length === 0) return;
    try {
      slot.worker.postMessage(batch, transfer);
    } catch (err) {
      for (const m of batch) {
        const done = slot.pending.get(m.id);
        slot.pending.delete(m.id);
        slot.sent.delete(m.job.rulesKey);
        done?.(failed(`could not hand the job to a shadow worker: ${(err as Error).message}`));
      }
    }
  }

  /** Stops one worker as a crash would (tests, diagnostics): its jobs fail, a new one starts. */
  async terminateWorker(index: number): Promise<void> {
    await this.#slots[index]?.worker.terminate();
  }

  /** Stops the workers; pending jobs are answered with an error outcome. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}

/** The `--cpu-prof` flags of the gateway's own command line (as `--flag` or `--flag=value`), for its worker threads. */
export function profilerFlags(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    if (a === "--cpu-prof") out.push(a);
    else if (a.startsWith("--cpu-prof-dir=") || a.startsWith("--cpu-prof-interval=")) out.push(a);
    else if ((a === "--cpu-prof-dir" || a === "--cpu-prof-interval") && execArgv[i + 1] !== undefined) out.push(`${a}=${execArgv[++i]}`);
  }
  return out;
}
