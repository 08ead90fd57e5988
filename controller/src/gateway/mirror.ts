/**
 * The shadow work queue of one rollout: at most maxConcurrency jobs run, at most queueSize wait,
 * and anything beyond is refused at once (the caller counts the drop). Nothing here waits on the
 * primary path: submit() never blocks and a job's failure is contained.
 */

/** A unit of shadow work; it must bound its own duration (the shadow timeout). */
export type MirrorJob = () => Promise<void>;

export class MirrorQueue {
  #maxConcurrency: number;
  #queueSize: number;
  #running = 0;
  #queue: MirrorJob[] = [];
  #head = 0;
  #onError: (err: unknown) => void;
  #idle: (() => void)[] = [];

  constructor(maxConcurrency: number, queueSize: number, onError: (err: unknown) => void = () => {}) {
    this.#maxConcurrency = Math.max(1, maxConcurrency);
    this.#queueSize = Math.max(0, queueSize);
    this.#onError = onError;
  }

  /** Applies new limits (a spec change); jobs already queued beyond a smaller queue still run. */
  setLimits(maxConcurrency: number, queueSize: number): void {
    this.#maxConcurrency = Math.max(1, maxConcurrency);
    this.#queueSize = Math.max(0, queueSize);
    this.#pump();
  }

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Starts or queues a job; false when both the slots and the queue are full (a drop). */
  submit(job: MirrorJob): boolean {
    if (this.#running < this.#maxConcurrency) {
      this.#start(job);
      return true;
    }
    if (this.queued >= this.#queueSize) return false;
    this.#queue.push(job);
    return true;
  }

  /** Resolves when nothing runs or waits (tests and graceful shutdown). */
  idle(): Promise<void> {
    if (this.#running === 0 && this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #start(job: MirrorJob): void {
    this.#running++;
    let p: Promise<void>;
    try {
      p = job();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.catch(this.#onError).finally(() => {
      this.#running--;
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#running < this.#maxConcurrency && this.queued > 0) {
      const job = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as unknown as MirrorJob;
      // Compact now and then so the array does not grow without bound under steady load.
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      this.#start(job);
    }
    if (this.#running === 0 && this.queued === 0 && this.#idle.length > 0) {
      const waiters = this.#idle;
      this.#idle = [];
      for (const w of waiters) w();
    }
  }
}
