/**
 * HMAC secrets read from Kubernetes Secrets through the KubeClient, cached briefly: a rotated
 * secret is picked up within the TTL, and a flood of (possibly forged) webhooks costs the API
 * server one GET per TTL and Secret. Concurrent misses share one GET. When the API server is
 * unreachable a previously read value keeps serving for a grace period.
 */
import { ApiError, type KubeClient } from "../kube/client.ts";

/** A secret that could not be read; `missing` means the Secret or key does not exist (a spec problem). */
export class SecretError extends Error {
  readonly missing: boolean;
  constructor(message: string, missing: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SecretError";
    this.missing = missing;
  }
}

interface Entry {
  data: Record<string, string> | undefined;
  error: SecretError | undefined;
  fetchedAt: number;
  /** When `data` was last read successfully. */
  goodAt: number;
}

export interface SecretCacheOptions {
  ttlMs?: number;
  /** How long a stale value serves while the API server cannot be reached. */
  staleGraceMs?: number;
  now?: () => number;
}

export class SecretCache {
  readonly ttlMs: number;
  readonly staleGraceMs: number;
  #client: KubeClient;
  #now: () => number;
  #entries = new Map<string, Entry>();
  #inflight = new Map<string, Promise<Entry>>();

  constructor(client: KubeClient, o: SecretCacheOptions = {}) {
    this.#client = client;
    this.ttlMs = o.ttlMs ?? 30_000;
    this.staleGraceMs = o.staleGraceMs ?? 5 * 60_000;
    this.#now = o.now ?? Date.now;
  }

  /** The decoded value of `key` in Secret `namespace/name`; throws SecretError. */
  async get(namespace: string, name: string, key: string): Promise<Buffer> {
    const id = `${namespace}/${name}`;
    let entry = this.#entries.get(id);
    if (!entry || this.#now() - entry.fetchedAt >= this.ttlMs) entry = await this.#refresh(id, namespace, name, entry);
    if (entry.error) throw entry.error;
    const v = entry.data?.[key];
    if (v === undefined) throw new SecretError(`Secret ${id} has no key ${JSON.stringify(key)}`, true);
    return Buffer.from(v, "base64");
  }

  /** Forgets cached values (tests, or a Secret known to have changed). */
  clear(): void {
    this.#entries.clear();
  }

  #refresh(id: string, namespace: string, name: string, previous: Entry | undefined): Promise<Entry> {
    let p = this.#inflight.get(id);
    if (!p) {
      p = this.#fetch(namespace, name, previous).finally(() => this.#inflight.delete(id));
      this.#inflight.set(id, p);
    }
    return p;
  }

  async #fetch(namespace: string, name: string, previous: Entry | undefined): Promise<Entry> {
    const id = `${namespace}/${name}`;
    let entry: Entry;
    try {
      const s = await this.#client.request<{ data?: Record<string, string> }>("GET", `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`, { timeoutMs: 5000 });
      entry = { data: s.data ?? {}, error: undefined, fetchedAt: this.#now(), goodAt: this.#now() };
    } catch (err) {
      if (err instanceof ApiError && err.notFound) {
        entry = { data: undefined, error: new SecretError(`Secret ${id} not found`, true), fetchedAt: this.#now(), goodAt: 0 };
      } else if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        entry = { data: undefined, error: new SecretError(`not allowed to read Secret ${id} (${err.status})`, true, { cause: err }), fetchedAt: this.#now(), goodAt: 0 };
      } else if (previous?.data && this.#now() - previous.goodAt < this.staleGraceMs) {
        // Transient: keep the last good value, and retry after a short pause rather than per request.
        entry = { ...previous, fetchedAt: this.#now() - this.ttlMs + 1000 };
      } else {
        // Cache the failure for a second so a burst of requests does not become a burst of GETs.
        entry = { data: undefined, error: new SecretError(`reading Secret ${id}: ${(err as Error).message}`, false, { cause: err }), fetchedAt: this.#now() - this.ttlMs + 1000, goodAt: 0 };
      }
    }
    this.#entries.set(id, entry);
    return entry;
  }
}
