/**
 * The multi-replica idempotency store: a real Redis shared by every gateway replica. A claim is
 * `SET key <pending> PX ttl NX`, so exactly one replica wins a key; completing and releasing are
 * compare-and-set scripts that only act on the replica's own claim (a claim that expired and was
 * re-claimed by another replica is left alone).
 */
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { decodeRecord, encodeRecord, newToken, type ClaimResult, type IdempotencyStore, type StoredResponse } from "./idempotency.ts";

const PREFIX = "airollout:idem:";

const COMPLETE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) else return nil end`;
const RELEASE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

export class RedisIdempotencyStore implements IdempotencyStore {
  readonly url: string;
  #redis: Redis;
  // The pending value each of our claims wrote, needed for compare-and-set.
  #claims = new Map<string, string>();
  #everReady = false;

  constructor(url: string, log: Logger) {
    this.url = url;
    this.#redis = new Redis(url, {
      // Fail a command within seconds rather than queueing it for the life of an outage: the
      // request it belongs to is answered 503 and the sender retries.
      maxRetriesPerRequest: 1,
      commandTimeout: 2000,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
      // Never run a command later than its request was answered: a claim queued (or in flight)
      // during an outage and sent once Redis is back would be a ghost claim of a request already
      // answered 503, blocking the sender's retry of that key until the claim expires (the chaos
      // drill measured 32 s waits ending in 409). Without a connection a command fails at once.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
    });
    this.#redis.once("ready", () => (this.#everReady = true));
    let lastWarn = 0;
    this.#redis.on("error", (err: Error) => {
      // ioredis emits an error per reconnect attempt; one line per 10 s is enough.
      if (Date.now() - lastWarn < 10_000) return;
      lastWarn = Date.now();
      log.warn({ err: err.message, redis: redactUrl(url) }, "redis connection failed; idempotent requests answer 503 until it is back");
    });
  }

  async claim(key: string, fingerprint: string, pendingTtlMs: number): Promise<ClaimResult> {
    await this.#firstConnection();
    const token = newToken();
    const pending = encodeRecord(fingerprint, token);
    for (let attempt = 0; attempt < 2; attempt++) {
      const ok = await this.#redis.set(PREFIX + key, pending, "PX", Math.max(1, Math.round(pendingTtlMs)), "NX");
      if (ok === "OK") {
        this.#claims.set(`${key}\u0000${token}`, pending);
        return { state: "claimed", token };
      }
      const current = await this.#redis.get(PREFIX + key);
      // Gone between SET and GET (expired or released): claim again.
      if (current !== null) return decodeRecord(current, fingerprint);
    }
    return { state: "pending" };
  }

  async complete(key: string, token: string, response: StoredResponse, ttlMs: number): Promise<void> {
    const id = `${key}\u0000${token}`;
    const pending = this.#claims.get(id);
    this.#claims.delete(id);
    if (pending === undefined) return;
    const fingerprint = (JSON.parse(pending) as { f: string }).f;
    await this.#redis.eval(COMPLETE, 1, PREFIX + key, pending, encodeRecord(fingerprint, undefined, response), String(Math.max(1, Math.round(ttlMs))));
  }

  async release(key: string, token: string): Promise<void> {
    const id = `${key}\u0000${token}`;
    const pending = this.#claims.get(id);
    this.#claims.delete(id);
    if (pending === undefined) return;
    await this.#redis.eval(RELEASE, 1, PREFIX + key, pending);
  }

  /**
   * The first requests after the store is made wait for its first connection (up to the connect
   * timeout) instead of failing for want of an offline queue; during a later outage nothing waits.
   */
  async #firstConnection(): Promise<void> {
    if (this.#everReady || this.#redis.status === "ready") return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#redis.off("ready", done);
        resolve();
      };
      const timer = setTimeout(done, 2000);
      this.#redis.once("ready", done);
    });
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}

/** A Redis URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable redis URL)";
  }
}
