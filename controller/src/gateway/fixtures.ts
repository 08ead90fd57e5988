/**
 * Masked production fixtures: per rollout, the most recent accepted webhooks (masked by
 * fixtures-mask.ts), kept in SQLite beside the quarantine (`fixtures.db`; ADR 0012) for
 * previews to replay. Bounded four ways, each configurable (gateway flags):
 * - a recording rate per rollout (a token bucket): a busy rollout writes a few rows a second,
 *   not one per webhook, and its ring spans more than the last instant;
 * - a cap per rollout (the oldest of that rollout go first) and a cap over all rollouts (the
 *   oldest of any rollout go first), so many rollouts cannot fill the disk;
 * - an age past which rows are deleted (every minute, on writes and on a timer, so a rollout
 *   without traffic loses them too; never read);
 * - a size per fixture (larger bodies are not kept).
 * Every eviction and skip is counted per rollout.
 * In the gateway the WAL checkpoints (the writes that wait for the disk) run on a shadow worker
 * thread (fixtures-checkpoint.ts), not inside an insert on the thread that answers webhooks.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { Request, Response } from "express";
import { FIXTURE_LIMITS, FIXTURES_FORMAT, type Fixture, type FixtureDocument } from "../fixtures/format.ts";
import type { Logger } from "pino";
import { maskFixture, type AcceptedWebhook, type MaskedFixture } from "./fixtures-mask.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { RateLimiter } from "./ratelimit.ts";
import type { Rollout } from "./rollouts.ts";
import { DEFAULT_SIGNATURE_HEADER } from "./signature.ts";

/** The store's bounds. */
export interface FixtureLimits {
  /** Fixtures kept per rollout. */
  perRollout: number;
  /** Fixtures kept over all rollouts. */
  total: number;
  /** Age after which a fixture is deleted, in ms. */
  maxAgeMs: number;
  /** Largest masked body kept, in bytes. */
  maxBytes: number;
  /** Fixtures recorded per second per rollout (sustained; bursts of 10x, at least 1). */
  perSecond: number;
}

export const DEFAULT_FIXTURE_LIMITS: Readonly<FixtureLimits> = Object.freeze({
  perRollout: 200,
  total: 10_000,
  maxAgeMs: 7 * 24 * 3600 * 1000,
  maxBytes: 64 * 1024,
  perSecond: 1,
});

/** Largest fixtures answer in bytes (bodies summed); a longer list is cut and marked truncated. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
/** How often the age bound is applied on writes (reads filter by age themselves). */
const AGE_SWEEP_MS = 60_000;

/** Why fixtures left the store (the `reason` label of airollout_fixtures_evicted_total). */
export type EvictReason = "rollout_cap" | "total_cap" | "age" | "rollout_deleted";

/** Told of every change, for the metrics. */
export interface FixtureEvents {
  stored(namespace: string, name: string): void;
  evicted(namespace: string, name: string, reason: EvictReason, n: number): void;
}

/** One fixture to store: the masked webhook and what answered it. */
export interface FixtureInput extends MaskedFixture {
  namespace: string;
  name: string;
  version: string;
  status: number;
}

interface Row {
  id: number | bigint;
  time: number | bigint;
  method: string;
  path: string;
  headers: string;
  body: string;
  version: string;
  status: number | bigint;
}

/** Checks a limits object, naming the bad field (the CLI's flags reach here). */
export function validateLimits(l: FixtureLimits): void {
  const positiveInt = (v: number, what: string) => {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`fixtures ${what} must be a positive integer, got ${v}`);
  };
  positiveInt(l.perRollout, "per-rollout cap");
  positiveInt(l.total, "total cap");
  positiveInt(l.maxAgeMs, "retention (ms)");
  positiveInt(l.maxBytes, "max bytes");
  if (!(Number.isFinite(l.perSecond) && l.perSecond > 0)) throw new Error(`fixtures per-second rate must be a positive number, got ${l.perSecond}`);
}

export class FixtureStore {
  readonly file: string;
  readonly limits: Readonly<FixtureLimits>;
  #db: DatabaseSync;
  #events: FixtureEvents | undefined;
  #now: () => number;
  #rate: RateLimiter;
  /** Rows per `<namespace>/<name>`, kept in step with the table (loaded at open). */
  #counts = new Map<string, number>();
  #total = 0;
  #lastSweep = -Infinity;
  #sweeper: NodeJS.Timeout;

  constructor(file: string, o: { limits?: Partial<FixtureLimits>; events?: FixtureEvents; now?: () => number } = {}) {
    this.file = file;
    this.limits = { ...DEFAULT_FIXTURE_LIMITS, ...o.limits };
    validateLimits(this.limits);
    this.#events = o.events;
    this.#now = o.now ?? Date.now;
    this.#rate = new RateLimiter(this.limits.perSecond, Math.max(1, Math.round(this.limits.perSecond * 10)), 100_000);
    mkdirSync(dirname(file), { recursive: true });
    this.#db = new DatabaseSync(file);
    // NORMAL, not FULL as in the quarantine: a fixture lost to a power cut is one sample fewer,
    // and the sender had its answer already.
    this.#db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;");
    this.#db.exec(`CREATE TABLE IF NOT EXISTS fixtures (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      time INTEGER NOT NULL,
      namespace TEXT NOT NULL,
      name TEXT NOT NULL,
      method TEXT NOT NULL,
      path TEXT NOT NULL,
      headers TEXT NOT NULL,
      body TEXT NOT NULL,
      version TEXT NOT NULL,
      status INTEGER NOT NULL
    )`);
    this.#db.exec("CREATE INDEX IF NOT EXISTS fixtures_rollout ON fixtures (namespace, name, id)");
    this.#db.exec("CREATE INDEX IF NOT EXISTS fixtures_time ON fixtures (time)");
    this.#loadCounts();
    this.sweep();
    this.#sweeper = setInterval(() => this.#sweepQuietly(), AGE_SWEEP_MS);
    this.#sweeper.unref();
  }

  /** The timer's sweep: a failure (a busy or closed file) waits for the next one. */
  #sweepQuietly(): void {
    try {
      if (this.#db.isOpen) this.sweep();
    } catch {
      // Retried a minute later; reads filter by age meanwhile.
    }
  }

  #loadCounts(): void {
    const rows = this.#db.prepare("SELECT namespace, name, COUNT(*) AS n FROM fixtures GROUP BY namespace, name").all() as { namespace: string; name: string; n: number | bigint }[];
    for (const r of rows) {
      this.#counts.set(`${r.namespace}/${r.name}`, Number(r.n));
      this.#total += Number(r.n);
    }
  }

  /** Whether the rollout's recording rate lets one more fixture in now (takes a token). */
  admit(namespace: string, name: string): boolean {
    return this.#rate.take(`${namespace}/${name}`, this.#now()).allowed;
  }

  /** Stores a fixture, then applies the bounds. Returns its id. */
  add(f: FixtureInput): number {
    const res = this.#db
      .prepare("INSERT INTO fixtures (time, namespace, name, method, path, headers, body, version, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .run(this.#now(), f.namespace, f.name, f.method, f.path, JSON.stringify(f.headers), f.body, f.version, f.status);
    const key = `${f.namespace}/${f.name}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    this.#total++;
    this.#events?.stored(f.namespace, f.name);
    this.#capRollout(f.namespace, f.name);
    this.#capTotal();
    if (this.#now() - this.#lastSweep >= AGE_SWEEP_MS) this.sweep();
    return Number(res.lastInsertRowid);
  }

  /** The oldest of one rollout beyond its cap. */
  #capRollout(namespace: string, name: string): void {
    const over = (this.#counts.get(`${namespace}/${name}`) ?? 0) - this.limits.perRollout;
    if (over <= 0) return;
    const cut = this.#db.prepare("SELECT id FROM fixtures WHERE namespace = ? AND name = ? ORDER BY id LIMIT 1 OFFSET ?").get(namespace, name, over - 1) as { id: number | bigint };
    this.#db.prepare("DELETE FROM fixtures WHERE namespace = ? AND name = ? AND id <= ?").run(namespace, name, cut.id);
    this.#removed(namespace, name, over, "rollout_cap");
  }

  /** The oldest of any rollout beyond the total cap, counted against their own rollouts. */
  #capTotal(): void {
    const over = this.#total - this.limits.total;
    if (over <= 0) return;
    const gone = this.#db.prepare("SELECT namespace, name, COUNT(*) AS n, MAX(id) AS last FROM (SELECT id, namespace, name FROM fixtures ORDER BY id LIMIT ?) GROUP BY namespace, name").all(over) as { namespace: string; name: string; n: number | bigint; last: number | bigint }[];
    const last = gone.reduce((m, g) => Math.max(m, Number(g.last)), 0);
    this.#db.prepare("DELETE FROM fixtures WHERE id <= ?").run(last);
    for (const g of gone) this.#removed(g.namespace, g.name, Number(g.n), "total_cap");
  }

  /** Deletes fixtures older than the retention. */
  sweep(): void {
    this.#lastSweep = this.#now();
    const cutoff = this.#now() - this.limits.maxAgeMs;
    const gone = this.#db.prepare("SELECT namespace, name, COUNT(*) AS n FROM fixtures WHERE time < ? GROUP BY namespace, name").all(cutoff) as { namespace: string; name: string; n: number | bigint }[];
    if (gone.length === 0) return;
    this.#db.prepare("DELETE FROM fixtures WHERE time < ?").run(cutoff);
    for (const g of gone) this.#removed(g.namespace, g.name, Number(g.n), "age");
  }

  /** Deletes a deleted rollout's fixtures: they were kept for it alone. */
  forget(namespace: string, name: string): void {
    const n = this.#counts.get(`${namespace}/${name}`) ?? 0;
    if (n === 0) return;
    this.#db.prepare("DELETE FROM fixtures WHERE namespace = ? AND name = ?").run(namespace, name);
    this.#removed(namespace, name, n, "rollout_deleted");
  }

  #removed(namespace: string, name: string, n: number, reason: EvictReason): void {
    const key = `${namespace}/${name}`;
    const left = (this.#counts.get(key) ?? 0) - n;
    if (left > 0) this.#counts.set(key, left);
    else this.#counts.delete(key);
    this.#total -= n;
    this.#events?.evicted(namespace, name, reason, n);
  }

  /** Fixtures kept per rollout (the airollout_fixtures gauge). */
  counts(): ReadonlyMap<string, number> {
    return this.#counts;
  }

  /** Fixtures kept over all rollouts. */
  get total(): number {
    return this.#total;
  }

  /**
   * The newest `count` fixtures of a rollout within the retention, newest first, as the versioned
   * document; cut short (truncated) past MAX_ANSWER_BYTES of bodies.
   */
  document(namespace: string, name: string, count: number, watched: boolean): FixtureDocument {
    const cutoff = this.#now() - this.limits.maxAgeMs;
    const rows = this.#db.prepare("SELECT id, time, method, path, headers, body, version, status FROM fixtures WHERE namespace = ? AND name = ? AND time >= ? ORDER BY id DESC LIMIT ?").all(namespace, name, cutoff, count) as unknown as Row[];
    const requests: Fixture[] = [];
    let bytes = 0;
    let truncated = false;
    for (const r of rows) {
      bytes += r.body.length + r.headers.length + r.path.length;
      if (bytes > MAX_ANSWER_BYTES) {
        truncated = true;
        break;
      }
      requests.push(toFixture(r));
    }
    return { format: FIXTURES_FORMAT, namespace, rollout: name, generatedAt: new Date(this.#now()).toISOString(), watched, truncated, requests };
  }

  close(): void {
    clearInterval(this.#sweeper);
    if (this.#db.isOpen) this.#db.close();
  }
}

function toFixture(r: Row): Fixture {
  return {
    name: `fixture-${Number(r.id)}`,
    method: r.method,
    path: r.path,
    headers: JSON.parse(r.headers) as Record<string, string>,
    body: JSON.parse(r.body) as unknown,
    recordedAt: new Date(Number(r.time)).toISOString(),
    version: r.version,
    status: Number(r.status),
  };
}

/** One answered webhook offered to the fixtures: what the gateway's hook context holds after the answer. */
export interface AnsweredWebhook extends AcceptedWebhook {
  rollout: Rollout;
  /** The version that answered, and its status. */
  version: string;
  status: number;
}

/**
 * Keeps an answered webhook as a fixture when the backend accepted it (2xx) and the rollout's
 * recording rate allows: masked, then stored; every webhook not kept is counted by reason.
 * Never throws: the sender has its answer, and a fixture is never worth a failed request.
 */
export function recordFixture(store: FixtureStore, metrics: GatewayMetrics, w: AnsweredWebhook, log: Logger): void {
  if (w.status < 200 || w.status > 299) return;
  const r = w.rollout;
  const labels = { rollout: r.name, namespace: r.namespace };
  try {
    if (!store.admit(r.namespace, r.name)) {
      metrics.fixturesSkipped.inc({ ...labels, reason: "rate" });
      return;
    }
    const signature = r.traffic.signature;
    const secretHeaders = signature ? [signature.header ?? DEFAULT_SIGNATURE_HEADER[signature.scheme]] : [];
    const masked = maskFixture(w, { masks: r.masks, secretHeaders, maxBytes: store.limits.maxBytes });
    if ("skip" in masked) {
      metrics.fixturesSkipped.inc({ ...labels, reason: masked.skip });
      return;
    }
    store.add({ ...masked, namespace: r.namespace, name: r.name, version: w.version, status: w.status });
  } catch (err) {
    metrics.fixturesSkipped.inc({ ...labels, reason: "error" });
    log.warn({ err: (err as Error).message }, "could not store a fixture");
  }
}

/** The store's events as the gateway's metrics. */
export function fixtureEvents(metrics: GatewayMetrics): FixtureEvents {
  return {
    stored: (namespace, name) => metrics.fixturesStored.inc({ rollout: name, namespace }),
    evicted: (namespace, name, reason, n) => metrics.fixturesEvicted.inc({ rollout: name, namespace, reason }, n),
  };
}

/** The fixtures read endpoint's path, served on the metrics/admin port only (never the webhook port). */
export const FIXTURES_ROUTE = "/api/rollouts/:namespace/:name/fixtures";
/** Fixtures answered when the request names no count. */
export const DEFAULT_FIXTURES_COUNT = 50;

/**
 * GET <FIXTURES_ROUTE>[?count=N]: the newest N (1 to FIXTURE_LIMITS.maxCount, default 50) masked
 * fixtures of a rollout as the versioned document. A bad count is 400 naming it.
 */
export function fixturesHandler(store: FixtureStore, watched: (namespace: string, name: string) => boolean): (req: Request, res: Response) => void {
  return (req, res) => {
    const namespace = String(req.params.namespace);
    const name = String(req.params.name);
    const raw = new URL(req.originalUrl, "http://x").searchParams.get("count");
    const count = raw === null ? DEFAULT_FIXTURES_COUNT : Number(raw);
    if (!Number.isInteger(count) || count < 1 || count > FIXTURE_LIMITS.maxCount) {
      res.status(400).json({ error: "bad_request", message: `count=${JSON.stringify(raw)} must be an integer from 1 to ${FIXTURE_LIMITS.maxCount}` });
      return;
    }
    res.status(200).json(store.document(namespace, name, count, watched(namespace, name)));
  };
}
