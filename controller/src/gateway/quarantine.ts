/**
 * Durable quarantine of webhooks the gateway refused (bad JSON, wrong content type, oversize,
 * schema-invalid, bad signature): a SQLite file (node:sqlite), synchronous=FULL because these are
 * payloads a sender will not resend. Rows keep the raw body (for replay) and headers with
 * credentials redacted and PII masked. `airollout quarantine list|replay` read the same file.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { maskPII } from "../diff/index.ts";
import { HOP_BY_HOP } from "./upstream.ts";

/** Why a payload was quarantined (the `reason` label of airollout_quarantined_total). */
export type QuarantineReason = "bad_json" | "content_type" | "too_large" | "schema" | "signature" | "unknown_rollout";

/** A refused webhook, as handed to add(). */
export interface QuarantineInput {
  namespace: string;
  name: string;
  reason: QuarantineReason;
  /** Human readable detail (masked before storing). */
  detail: string;
  method: string;
  /** Path below /hooks/<ns>/<name>, query included. */
  path: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: Buffer;
  /** Size the sender declared or sent, when the stored body is truncated. */
  bodySize?: number;
  requestId: string;
}

/** A stored row. */
export interface QuarantineRow {
  id: number;
  time: string;
  namespace: string;
  name: string;
  reason: QuarantineReason;
  detail: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  contentType: string;
  body: Buffer;
  bodySize: number;
  truncated: boolean;
  requestId: string;
  replayedAt: string | undefined;
  replayStatus: number | undefined;
}

/** Headers whose values are credentials: stored as REDACTED and not replayed. */
export const REDACTED_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"]);
export const REDACTED = "[REDACTED]";

/** Stored headers: credentials redacted, PII masked, hop-by-hop headers dropped. */
export function maskHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) && lower !== "content-length") continue;
    const value = Array.isArray(v) ? v.join(", ") : v;
    out[lower] = REDACTED_HEADERS.has(lower) ? REDACTED : maskPII(value);
  }
  return out;
}

interface DbRow {
  id: number;
  time: string;
  namespace: string;
  name: string;
  reason: string;
  detail: string;
  method: string;
  path: string;
  headers: string;
  content_type: string;
  body: Uint8Array;
  body_size: number;
  truncated: number;
  request_id: string;
  replayed_at: string | null;
  replay_status: number | null;
}

function toRow(r: DbRow): QuarantineRow {
  return {
    id: r.id,
    time: r.time,
    namespace: r.namespace,
    name: r.name,
    reason: r.reason as QuarantineReason,
    detail: r.detail,
    method: r.method,
    path: r.path,
    headers: JSON.parse(r.headers) as Record<string, string>,
    contentType: r.content_type,
    body: Buffer.from(r.body),
    bodySize: r.body_size,
    truncated: r.truncated === 1,
    requestId: r.request_id,
    replayedAt: r.replayed_at ?? undefined,
    replayStatus: r.replay_status ?? undefined,
  };
}

export interface QuarantineOptions {
  /** Rows kept; the oldest are deleted beyond it so a flood of bad payloads cannot fill the disk. */
  maxRows?: number;
  now?: () => Date;
}

export class QuarantineStore {
  readonly file: string;
  readonly maxRows: number;
  #db: DatabaseSync;
  #now: () => Date;
  #inserted = 0;

  constructor(file: string, o: QuarantineOptions = {}) {
    this.file = file;
    this.maxRows = o.maxRows ?? 100_000;
    this.#now = o.now ?? (() => new Date());
    mkdirSync(dirname(file), { recursive: true });
    this.#db = new DatabaseSync(file);
    this.#db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;");
    this.#db.exec(`CREATE TABLE IF NOT EXISTS quarantine (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      time TEXT NOT NULL,
      namespace TEXT NOT NULL,
      name TEXT NOT NULL,
      reason TEXT NOT NULL,
      detail TEXT NOT NULL,
      method TEXT NOT NULL,
      path TEXT NOT NULL,
      headers TEXT NOT NULL,
      content_type TEXT NOT NULL,
      body BLOB NOT NULL,
      body_size INTEGER NOT NULL,
      truncated INTEGER NOT NULL,
      request_id TEXT NOT NULL,
      replayed_at TEXT,
      replay_status INTEGER
    )`);
    this.#db.exec("CREATE INDEX IF NOT EXISTS quarantine_rollout ON quarantine (namespace, name, id)");
  }

  /** Stores a refused webhook; returns its id. */
  add(q: QuarantineInput): number {
    const headers = maskHeaders(q.headers);
    const size = q.bodySize ?? q.body.length;
    const res = this.#db
      .prepare(
        `INSERT INTO quarantine (time, namespace, name, reason, detail, method, path, headers, content_type, body, body_size, truncated, request_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(this.#now().toISOString(), q.namespace, q.name, q.reason, maskPII(q.detail), q.method, q.path, JSON.stringify(headers), headers["content-type"] ?? "", q.body, size, size > q.body.length ? 1 : 0, q.requestId);
    if (++this.#inserted % 100 === 0) this.#prune();
    return Number(res.lastInsertRowid);
  }

  #prune(): void {
    this.#db.prepare("DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?").run(this.maxRows);
  }

  /** Rows newest first, optionally of one rollout. */
  list(o: { namespace?: string; name?: string; limit?: number } = {}): QuarantineRow[] {
    const limit = o.limit ?? 100;
    const rows =
      o.namespace !== undefined && o.name !== undefined
        ? this.#db.prepare("SELECT * FROM quarantine WHERE namespace = ? AND name = ? ORDER BY id DESC LIMIT ?").all(o.namespace, o.name, limit)
        : o.namespace !== undefined
          ? this.#db.prepare("SELECT * FROM quarantine WHERE namespace = ? ORDER BY id DESC LIMIT ?").all(o.namespace, limit)
          : this.#db.prepare("SELECT * FROM quarantine ORDER BY id DESC LIMIT ?").all(limit);
    return (rows as unknown as DbRow[]).map(toRow);
  }

  get(id: number): QuarantineRow | undefined {
    const r = this.#db.prepare("SELECT * FROM quarantine WHERE id = ?").get(id) as unknown as DbRow | undefined;
    return r ? toRow(r) : undefined;
  }

  count(): number {
    return Number((this.#db.prepare("SELECT COUNT(*) AS n FROM quarantine").get() as { n: number | bigint }).n);
  }

  /** Records the outcome of a replay. */
  markReplayed(id: number, status: number): void {
    this.#db.prepare("UPDATE quarantine SET replayed_at = ?, replay_status = ? WHERE id = ?").run(this.#now().toISOString(), status, id);
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

/** The result of replaying a quarantined payload. */
export interface ReplayResult {
  status: number;
  body: string;
  url: string;
}

/**
 * Re-sends a stored payload through a gateway (`gatewayUrl` is its base URL), with the stored
 * headers minus redacted credentials, and records the outcome on the row. The payload goes through
 * every guardrail again: a schema fixed in the AIRollout lets a once-invalid payload through.
 */
export async function replay(store: QuarantineStore, id: number, gatewayUrl: string, timeoutMs = 30_000): Promise<ReplayResult> {
  const row = store.get(id);
  if (!row) throw new Error(`quarantine row ${id} does not exist`);
  if (row.truncated) throw new Error(`quarantine row ${id} holds only the first ${row.body.length} of ${row.bodySize} bytes (reason ${row.reason}); it cannot be replayed`);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(row.headers)) {
    if (v === REDACTED || HOP_BY_HOP.has(k)) continue;
    headers[k] = v;
  }
  headers["x-airollout-replay-of"] = String(id);
  const base = gatewayUrl.replace(/\/+$/, "");
  const url = `${base}/hooks/${encodeURIComponent(row.namespace)}/${encodeURIComponent(row.name)}${row.path}`;
  const res = await fetch(url, { method: row.method, headers, body: row.body, signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  store.markReplayed(id, res.status);
  return { status: res.status, body, url };
}
