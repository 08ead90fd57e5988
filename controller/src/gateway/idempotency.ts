/**
 * Idempotency keys: the first request with a key claims it (a short-lived `pending` record), is
 * forwarded once, and its answer is stored for the key's TTL; repeats get the stored answer
 * without reaching a backend. A repeat that arrives while the first is still in flight waits for
 * it (see Gateway). The claim is atomic in every store (one SQLite transaction; Redis SET NX), so
 * two gateway replicas sharing Redis forward a key exactly once.
 *
 * Only answers below 500 are stored: a 5xx or a failed exchange releases the claim so the
 * sender's retry is forwarded again instead of replaying the failure for a day.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";

/** An answer kept for repeats of its key. */
export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** What a key's first look finds. */
export type ClaimResult =
  | { state: "claimed"; token: string }
  | { state: "done"; response: StoredResponse }
  | { state: "pending" }
  | { state: "mismatch" };

/** A store shared by the requests (and, for Redis, the replicas) that may repeat a key. */
export interface IdempotencyStore {
  /**
   * Claims a key for `pendingTtlMs`, or reports its state. `fingerprint` identifies the payload:
   * a key reused with another payload is a `mismatch`, not a repeat.
   */
  claim(key: string, fingerprint: string, pendingTtlMs: number): Promise<ClaimResult>;
  /** Stores the answer of a claimed key for ttlMs. */
  complete(key: string, token: string, response: StoredResponse, ttlMs: number): Promise<void>;
  /** Releases a claim without an answer (the exchange failed). */
  release(key: string, token: string): Promise<void>;
  close(): Promise<void>;
}

/** The serialised form of a record, shared by the stores. */
interface Record_ {
  /** `pending` claim token, absent once done. */
  p?: string;
  /** Payload fingerprint. */
  f: string;
  s?: number;
  h?: Record<string, string>;
  /** Body, base64. */
  b?: string;
}

/** Encodes a record (exported for the Redis store). */
export function encodeRecord(fingerprint: string, token: string | undefined, response?: StoredResponse): string {
  const r: Record_ = { f: fingerprint };
  if (token !== undefined) r.p = token;
  if (response) {
    r.s = response.status;
    r.h = response.headers;
    r.b = response.body.toString("base64");
  }
  return JSON.stringify(r);
}

/** Interprets a stored record for a claim attempt with `fingerprint`. */
export function decodeRecord(text: string, fingerprint: string): ClaimResult {
  let r: Record_;
  try {
    r = JSON.parse(text) as Record_;
  } catch {
    // A record we cannot read is treated as in flight; its TTL will clear it.
    return { state: "pending" };
  }
  if (r.f !== fingerprint) return { state: "mismatch" };
  if (r.p !== undefined || r.s === undefined) return { state: "pending" };
  return { state: "done", response: { status: r.s, headers: r.h ?? {}, body: Buffer.from(r.b ?? "", "base64") } };
}

/** A fresh claim token. */
export function newToken(): string {
  return randomUUID();
}

/**
 * The single-replica store: a SQLite file (node:sqlite). Writes are synchronous and small; WAL
 * with synchronous=NORMAL survives a process crash, which is what a gateway restart needs.
 */
export class SqliteIdempotencyStore implements IdempotencyStore {
  readonly file: string;
  #db: DatabaseSync;
  #now: () => number;
  #sweeper: NodeJS.Timeout;
  #stmt: {
    expire: ReturnType<DatabaseSync["prepare"]>;
    insert: ReturnType<DatabaseSync["prepare"]>;
    get: ReturnType<DatabaseSync["prepare"]>;
    complete: ReturnType<DatabaseSync["prepare"]>;
    release: ReturnType<DatabaseSync["prepare"]>;
    sweep: ReturnType<DatabaseSync["prepare"]>;
  };

  constructor(file: string, now: () => number = Date.now) {
    this.file = file;
    this.#now = now;
    mkdirSync(dirname(file), { recursive: true });
    this.#db = new DatabaseSync(file);
    this.#db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=2000;");
    this.#db.exec(`CREATE TABLE IF NOT EXISTS idempotency (
      key TEXT PRIMARY KEY,
      token TEXT,
      record TEXT NOT NULL,
      expires_at INTEGER NOT NULL
    )`);
    this.#db.exec("CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires_at)");
    this.#stmt = {
      expire: this.#db.prepare("DELETE FROM idempotency WHERE key = ? AND expires_at <= ?"),
      insert: this.#db.prepare("INSERT INTO idempotency (key, token, record, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO NOTHING"),
      get: this.#db.prepare("SELECT record FROM idempotency WHERE key = ?"),
      complete: this.#db.prepare("UPDATE idempotency SET token = NULL, record = ?, expires_at = ? WHERE key = ? AND token = ?"),
      release: this.#db.prepare("DELETE FROM idempotency WHERE key = ? AND token = ?"),
      sweep: this.#db.prepare("DELETE FROM idempotency WHERE expires_at <= ?"),
    };
    this.#sweeper = setInterval(() => {
      try {
        this.#stmt.sweep.run(this.#now());
      } catch {
        /* a busy database is swept next time */
      }
    }, 60_000);
    this.#sweeper.unref();
  }

  async claim(key: string, fingerprint: string, pendingTtlMs: number): Promise<ClaimResult> {
    const now = this.#now();
    const token = newToken();
    // One process owns the file and these statements run synchronously: no interleaving.
    this.#stmt.expire.run(key, now);
    const res = this.#stmt.insert.run(key, token, encodeRecord(fingerprint, token), now + pendingTtlMs);
    if (Number(res.changes) === 1) return { state: "claimed", token };
    const row = this.#stmt.get.get(key) as { record: string } | undefined;
    if (!row) return { state: "pending" };
    return decodeRecord(row.record, fingerprint);
  }

  async complete(key: string, token: string, response: StoredResponse, ttlMs: number): Promise<void> {
    const row = this.#stmt.get.get(key) as { record: string } | undefined;
    const fingerprint = row ? (JSON.parse(row.record) as Record_).f : "";
    this.#stmt.complete.run(encodeRecord(fingerprint, undefined, response), this.#now() + ttlMs, key, token);
  }

  async release(key: string, token: string): Promise<void> {
    this.#stmt.release.run(key, token);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    if (this.#db.isOpen) this.#db.close();
  }
}
