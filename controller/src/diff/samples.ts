/**
 * Bounded storage of recent mismatch samples: a ring buffer per rollout, so memory is fixed by
 * configuration however long a rollout runs or however often its candidate disagrees.
 */

/** A fixed-capacity FIFO that overwrites its oldest entry when full. */
export class RingBuffer<T> {
  readonly capacity: number;
  #items: (T | undefined)[];
  #start = 0;
  #size = 0;
  #evicted = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new Error(`ring buffer capacity must be a non-negative integer, got ${capacity}`);
    this.capacity = capacity;
    this.#items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** Entries overwritten (or refused at capacity 0) since creation. */
  get evicted(): number {
    return this.#evicted;
  }

  /** Appends an item, evicting the oldest when full. */
  push(item: T): void {
    if (this.capacity === 0) {
      this.#evicted++;
      return;
    }
    if (this.#size < this.capacity) {
      this.#items[(this.#start + this.#size) % this.capacity] = item;
      this.#size++;
      return;
    }
    this.#items[this.#start] = item;
    this.#start = (this.#start + 1) % this.capacity;
    this.#evicted++;
  }

  /** Items oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.#size; i++) out.push(this.#items[(this.#start + i) % this.capacity] as T);
    return out;
  }

  /** Items newest first, at most `limit`. */
  newest(limit = this.#size): T[] {
    const out: T[] = [];
    const n = Math.min(limit, this.#size);
    for (let i = 0; i < n; i++) out.push(this.#items[(this.#start + this.#size - 1 - i) % this.capacity] as T);
    return out;
  }

  clear(): void {
    this.#items = new Array<T | undefined>(this.capacity);
    this.#start = 0;
    this.#size = 0;
  }
}

export interface SampleStoreOptions {
  /** Samples kept per key (ShadowSchema.maxSamples). */
  capacity: number;
  /** Keys (rollouts) kept; the least recently written is dropped beyond it. Default 10,000. */
  maxKeys?: number;
}

/**
 * Recent mismatch samples per key (a rollout's namespace/name). Samples should be masked with
 * maskPII before they are added: the store keeps whatever it is given.
 */
export class SampleStore<T> {
  readonly capacity: number;
  readonly maxKeys: number;
  // A Map keeps insertion order, which doubles as recency order when written keys are re-inserted.
  #buffers = new Map<string, RingBuffer<T>>();

  constructor(options: SampleStoreOptions) {
    this.capacity = options.capacity;
    this.maxKeys = options.maxKeys ?? 10_000;
    if (!Number.isInteger(this.maxKeys) || this.maxKeys < 1) throw new Error(`maxKeys must be a positive integer, got ${this.maxKeys}`);
    if (!Number.isInteger(this.capacity) || this.capacity < 0) throw new Error(`capacity must be a non-negative integer, got ${this.capacity}`);
  }

  /** Adds a sample under a key, evicting that key's oldest sample when full. */
  add(key: string, sample: T, capacity = this.capacity): void {
    let buf = this.#buffers.get(key);
    if (buf && buf.capacity !== capacity) {
      // Capacity changed with the spec: keep the newest samples that still fit.
      const resized = new RingBuffer<T>(capacity);
      for (const s of buf.toArray()) resized.push(s);
      buf = resized;
    }
    if (buf) {
      this.#buffers.delete(key);
    } else {
      buf = new RingBuffer<T>(capacity);
      if (this.#buffers.size >= this.maxKeys) {
        const oldest = this.#buffers.keys().next();
        if (!oldest.done) this.#buffers.delete(oldest.value);
      }
    }
    this.#buffers.set(key, buf);
    buf.push(sample);
  }

  /** Samples of a key, newest first, at most `limit`. */
  list(key: string, limit?: number): T[] {
    return this.#buffers.get(key)?.newest(limit) ?? [];
  }

  /** Samples evicted from a key's buffer so far. */
  evicted(key: string): number {
    return this.#buffers.get(key)?.evicted ?? 0;
  }

  /** Drops a key's samples (rollout deleted or restarted). */
  delete(key: string): boolean {
    return this.#buffers.delete(key);
  }

  keys(): string[] {
    return [...this.#buffers.keys()];
  }
}
