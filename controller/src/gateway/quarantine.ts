/**
 * Durable quarantine of webhooks the gateway refused (bad JSON, wrong content type, oversize,
 * schema-invalid, bad signature, invalid UTF-8, duplicate keys, too deep): SQLite (node:sqlite),
 * synchronous=FULL because these are payloads a sender will not resend. Two files:
 * - `quarantine.db`, the view: headers and body with PII masked and credentials redacted, what
 *   `airollout quarantine list` shows;
 * - `quarantine-replay.db`, created with mode 0600 (its WAL files inherit it): the exact header
 *   values and body bytes a replay sends, so a replay carries the sender's own ids and signature.
 *   Credentials (authorization, cookies, API keys) are kept in neither.
 * Masking is for people reading rows; it never touches the bytes a replay sends.
 */
import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { maskPII } from "../diff/index.ts";
import { HOP_BY_HOP } from "./upstream.ts";

/** Why a payload was quarantined (the `reason` label of airollout_quarantined_total). */
export type QuarantineReason = "bad_json" | "content_type" | "content_encoding" | "too_large" | "schema" | "signature" | "unknown_rollout" | "invalid_utf8" | "duplicate_key" | "too_deep";

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
  /** The body as received: all of it, or the first bytes read of a refused oversize body. */
  body: Buffer;
  /** Content-Length the sender declared, if it declared one. */
  declaredSize?: number;
  /** Bytes the gateway had read when it refused (default: body.length); may exceed what is kept. */
  receivedBytes?: number;
  /** False when the sender's body went on past what was read (refused mid-body); default true. */
  complete?: boolean;
  requestId: string;
  /** The rollout's extra mask patterns (spec.shadow.maskPatterns) for the view. */
  masks?: readonly (string | RegExp)[];
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
  /** Headers for viewing: credentials redacted, PII masked. */
  headers: Record<string, string>;
  contentType: string;
  /** The kept body for viewing (PII masked in rows stored since masking; see viewMasked). */
  body: Buffer;
  /** The body's size as far as known: the declared Content-Length, else the bytes received (a lower bound when truncated). */
  bodySize: number;
  /** Content-Length the sender declared; undefined without one. */
  declaredSize: number | undefined;
  /** Bytes the gateway had read when it refused the request. */
  receivedBytes: number;
  /** Not all of the body was kept (refused mid-body, or kept only in part): the row cannot be replayed. */
  truncated: boolean;
  /** Whether headers and body are the masked view (the exact bytes live in the replay file). */
  viewMasked: boolean;
  requestId: string;
  replayedAt: string | undefined;
  replayStatus: number | undefined;
}

/** Headers whose values are credentials: stored as REDACTED and not replayed. */
export const REDACTED_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"]);
export const REDACTED = "[REDACTED]";

/** Headers for viewing: credentials redacted, PII masked, hop-by-hop headers dropped. */
export function maskHeaders(headers: Readonly<Record<string, string | string[] | undefined>>, masks: readonly (string | RegExp)[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headerEntries(headers)) {
    if (HOP_BY_HOP.has(name) && name !== "content-length") continue;
    out[name] = REDACTED_HEADERS.has(name) ? REDACTED : maskPII(value, masks);
  }
  return out;
}

/** Headers about the original exchange only: a replay makes its own (fetch refuses `expect`). */
const NOT_REPLAYED = new Set(["expect"]);

/** Headers a replay sends: the exact values, without credentials and hop-by-hop headers. */
export function replayHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headerEntries(headers)) {
    if (HOP_BY_HOP.has(name) || REDACTED_HEADERS.has(name) || NOT_REPLAYED.has(name)) continue;
    out[name] = value;
  }
  return out;
}

function headerEntries(headers: Readonly<Record<string, string | string[] | undefined>>): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, v] of Object.entries(headers)) {
    if (v !== undefined) out.push([name.toLowerCase(), Array.isArray(v) ? v.join(", ") : v]);
  }
  return out;
}

/** The view of a body: its text (U+FFFD for bytes that are not UTF-8) with PII masked. */
export function maskBody(body: Buffer, masks: readonly (string | RegExp)[] = []): Buffer {
  return Buffer.from(maskPII(body.toString("utf8"), masks), "utf8");
}

/** What a replay sends: the exact headers (no credentials) and body bytes. */
export interface ReplayCopy {
  headers: Record<string, string>;
  body: Buffer;
}

/** The replay file beside a quarantine file: `quarantine.db` -> `quarantine-replay.db`. */
export function replayFileOf(file: string): string {
  return file.endsWith(".db") ? `${file.slice(0, -3)}-replay.db` : `${file}-replay`;
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
  declared_size: number | null;
  received_bytes: number | null;
  truncated: number;
  view_masked: number;
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
    declaredSize: r.declared_size ?? undefined,
    receivedBytes: r.received_bytes ?? r.body.length,
    truncated: r.truncated === 1,
    viewMasked: r.view_masked === 1,
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
  /** The access-controlled file of exact replay bytes (mode 0600). */
  readonly replayFile: string;
  readonly maxRows: number;
  #db: DatabaseSync;
  /** Opened on first need: listing rows does not need read access to the exact bytes. */
  #replayDb: DatabaseSync | undefined;
  #now: () => Date;
  #inserted = 0;

  constructor(file: string, o: QuarantineOptions = {}) {
    this.file = file;
    this.replayFile = replayFileOf(file);
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
    this.#migrate();
  }

  /** Columns added since the first release; rows stored before them read as unmasked, sizes unknown. */
  #migrate(): void {
    const have = new Set((this.#db.prepare("PRAGMA table_info(quarantine)").all() as { name: string }[]).map((c) => c.name));
    if (!have.has("declared_size")) this.#db.exec("ALTER TABLE quarantine ADD COLUMN declared_size INTEGER");
    if (!have.has("received_bytes")) this.#db.exec("ALTER TABLE quarantine ADD COLUMN received_bytes INTEGER");
    if (!have.has("view_masked")) this.#db.exec("ALTER TABLE quarantine ADD COLUMN view_masked INTEGER NOT NULL DEFAULT 0");
  }

  /** The replay file, created 0600 before SQLite opens it (SQLite gives its WAL files the same mode). */
  #replay(): DatabaseSync {
    if (this.#replayDb) return this.#replayDb;
    closeSync(openSync(this.replayFile, "a", 0o600));
    chmodSync(this.replayFile, 0o600);
    const db = new DatabaseSync(this.replayFile);
    db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;");
    db.exec("CREATE TABLE IF NOT EXISTS replay (id INTEGER PRIMARY KEY, headers TEXT NOT NULL, body BLOB NOT NULL)");
    this.#replayDb = db;
    return db;
  }

  /**
   * Stores a refused webhook: the masked view in the quarantine file, the exact bytes in the
   * replay file under the same id. Returns the id.
   */
  add(q: QuarantineInput): number {
    const masks = q.masks ?? [];
    const headers = maskHeaders(q.headers, masks);
    const received = q.receivedBytes ?? q.body.length;
    const size = q.declaredSize ?? received;
    const res = this.#db
      .prepare(
        `INSERT INTO quarantine (time, namespace, name, reason, detail, method, path, headers, content_type, body, body_size, declared_size, received_bytes, truncated, view_masked, request_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`,
      )
      .run(this.#now().toISOString(), q.namespace, q.name, q.reason, maskPII(q.detail, masks), q.method, q.path, JSON.stringify(headers), headers["content-type"] ?? "", maskBody(q.body, masks), size, q.declaredSize ?? null, received, q.complete === false || size > q.body.length ? 1 : 0, q.requestId);
    const id = Number(res.lastInsertRowid);
    this.#replay().prepare("INSERT OR REPLACE INTO replay (id, headers, body) VALUES (?, ?, ?)").run(id, JSON.stringify(replayHeaders(q.headers)), q.body);
    if (++this.#inserted % 100 === 0) this.#prune();
    return id;
  }

  #prune(): void {
    const max = (this.#db.prepare("SELECT MAX(id) AS m FROM quarantine").get() as { m: number | bigint | null }).m;
    if (max === null) return;
    const cut = Number(max) - this.maxRows;
    this.#db.prepare("DELETE FROM quarantine WHERE id <= ?").run(cut);
    this.#replay().prepare("DELETE FROM replay WHERE id <= ?").run(cut);
  }

  /**
   * The exact headers and body a replay of row `id` sends; undefined when there is no such row.
   * Rows stored before the replay file existed hold their exact body in the view.
   */
  replayCopy(id: number): ReplayCopy | undefined {
    const row = this.get(id);
    if (!row) return undefined;
    if (!row.viewMasked) return { headers: Object.fromEntries(Object.entries(row.headers).filter(([, v]) => v !== REDACTED)), body: row.body };
    const r = this.#replay().prepare("SELECT headers, body FROM replay WHERE id = ?").get(id) as { headers: string; body: Uint8Array } | undefined;
    if (!r) throw new Error(`quarantine row ${id} has no exact copy in ${this.replayFile}; it cannot be replayed`);
    return { headers: JSON.parse(r.headers) as Record<string, string>, body: Buffer.from(r.body) };
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
    if (this.#replayDb?.isOpen) this.#replayDb.close();
  }
}

/** The result of replaying a quarantined payload. */
export interface ReplayResult {
  status: number;
  body: string;
  url: string;
}

/**
 * Re-sends a stored payload through a gateway (`gatewayUrl` is its base URL) with the exact
 * header values and body bytes the sender sent (credentials excepted), and records the outcome on
 * the row. The payload goes through every guardrail again: a schema fixed in the AIRollout lets a
 * once-invalid payload through.
 */
export async function replay(store: QuarantineStore, id: number, gatewayUrl: string, timeoutMs = 30_000): Promise<ReplayResult> {
  const row = store.get(id);
  if (!row) throw new Error(`quarantine row ${id} does not exist`);
  if (row.truncated) throw new Error(`quarantine row ${id} holds only the first ${row.body.length} of ${row.bodySize} bytes (reason ${row.reason}); it cannot be replayed`);
  const exact = store.replayCopy(id)!;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(exact.headers)) {
    if (!HOP_BY_HOP.has(k)) headers[k] = v;
  }
  headers["x-airollout-replay-of"] = String(id);
  const base = gatewayUrl.replace(/\/+$/, "");
  const url = `${base}/hooks/${encodeURIComponent(row.namespace)}/${encodeURIComponent(row.name)}${row.path}`;
  const res = await fetch(url, { method: row.method, headers, body: exact.body, signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  store.markReplayed(id, res.status);
  return { status: res.status, body, url };
}
