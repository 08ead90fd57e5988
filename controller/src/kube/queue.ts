/**
 * A per-key serialized work queue, like client-go's workqueue: a key is never processed by two
 * workers at once; a key added while it is being processed runs once more afterwards; failures
 * back off exponentially per key; delayed adds coalesce to the earliest time.
 *
 * Delays are bounded (maxWaitMs, default 1 h): a key due in 30 days runs after an hour, and
 * that pass asks again for the time still left. Node would fire a longer timer at once.
 */
import { boundedDelay } from "../api/timer.ts";

/** What a worker asks for after a pass. */
export interface WorkResult {
  /** Run again after this many milliseconds (periodic checks, timed steps). */
  requeueAfterMs?: number;
  /** Run again with this key's exponential backoff (a condition that may clear by itself). */
  backoff?: boolean;
}

export interface QueueOptions {
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** The longest a delayed add waits before the key runs (and is requeued for the rest). */
  maxWaitMs?: number;
  onError?: (key: string, err: unknown, retryInMs: number) => void;
}

export class WorkQueue {
  private readonly worker: (key: string) => Promise<WorkResult | void>;
  private readonly concurrency: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxWaitMs: number;
  private readonly onError: QueueOptions["onError"];
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(worker: (key: string) => Promise<WorkResult | void>, opts: QueueOptions = {}) {
    this.worker = worker;
    this.concurrency = opts.concurrency ?? 4;
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.maxDelayMs = opts.maxDelayMs ?? 5 * 60_000;
    this.maxWaitMs = boundedDelay(opts.maxWaitMs ?? 60 * 60_000);
    this.onError = opts.onError;
  }

  /** Keys waiting (not counting those in progress). */
  get depth(): number {
    return this.queue.length;
  }

  /** Enqueue a key now. */
  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /**
   * Enqueue a key after a delay, at most maxWaitMs (a NaN or infinite delay waits maxWaitMs);
   * an earlier pending delay wins.
   */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const delay = boundedDelay(delayMs, this.maxWaitMs);
    if (delay <= 0) return this.add(key);
    const at = Date.now() + delay;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delay);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** The backoff delay the next failure of key would get. */
  backoffFor(key: string): number {
    const n = this.failures.get(key) ?? 0;
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** n);
  }

  /** Forget a key's failure count (it succeeded or was deleted). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  private pump(): void {
    while (!this.stopped && this.running < this.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.processing.add(key);
      this.running++;
      void this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    try {
      const res = await this.worker(key);
      if (res?.backoff) {
        const delay = this.backoffFor(key);
        this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
        this.addAfter(key, delay);
      } else {
        this.failures.delete(key);
        if (res?.requeueAfterMs !== undefined) this.addAfter(key, res.requeueAfterMs);
      }
    } catch (err) {
      const delay = this.backoffFor(key);
      this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
      this.onError?.(key, err, delay);
      this.addAfter(key, delay);
    } finally {
      this.processing.delete(key);
      this.running--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      if (this.running === 0 && this.queue.length === 0) {
        for (const w of this.idleWaiters.splice(0)) w();
      }
    }
  }

  /** Stops taking work and waits for passes in progress to finish. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    if (this.running > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }
}
