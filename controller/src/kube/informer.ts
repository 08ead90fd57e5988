/**
 * List+watch of one resource into an in-memory store, like client-go's reflector/informer:
 * - list, then watch from the list's resourceVersion with bookmarks;
 * - a closed watch resumes from the last seen resourceVersion;
 * - 410 Gone (resourceVersion too old, e.g. after etcd compaction) triggers a fresh list;
 * - errors (API server down) retry with capped backoff, forever, without crashing;
 * - a watch that goes silent longer than its timeout is torn down and restarted.
 */
import type { Logger } from "pino";
import { ApiError, type KubeClient } from "./client.ts";

export interface KubeObject {
  metadata: { name: string; namespace?: string; resourceVersion: string; uid?: string };
}

export interface InformerHandlers<T> {
  onUpsert(obj: T): void;
  onDelete(obj: T): void;
  /** Called after every successful (re)list. */
  onSync?(): void;
}

export interface InformerOptions<T> {
  /** Server-side watch timeout; the watch is renewed after it. */
  watchTimeoutSeconds?: number;
  maxBackoffMs?: number;
  onRestart?: (reason: "closed" | "error" | "gone") => void;
  /**
   * Turns each listed or watched object into what the store keeps, before handlers see it: a
   * cache of Secrets keeps metadata and digests, never the data (memory, and no secret values
   * lying around in the heap).
   */
  transform?: (obj: unknown) => T;
  /** Objects per list page (limit/continue), so a first list of thousands is not one huge body. */
  pageSize?: number;
  /**
   * What the store keeps of an object once the handlers have seen it whole. For a consumer that
   * never reads the store (the gateway compiles each object in onUpsert), the metadata the
   * informer itself needs (name, namespace, resourceVersion) is enough: a full copy of every
   * watched object would be memory spent per object for nothing. get() then returns only that.
   */
  storeOnly?: (obj: T) => T;
}

/** For InformerOptions.storeOnly: the identity and version of an object, nothing else. */
export function metadataOnly<T extends KubeObject>(obj: T): T {
  const { name, namespace, resourceVersion, uid } = obj.metadata;
  return { metadata: { name, namespace, resourceVersion, uid } } as T;
}

/** The read-only view of an informer's cache that consumers depend on. */
export interface ReadonlyStore<T> {
  /** Whether the first list has completed: before that, absence means nothing. */
  readonly hasSynced: boolean;
  /** The cached object under `namespace/name` (or `name` when cluster-scoped). */
  get(key: string): T | undefined;
}

/** The cache key of an object: namespace/name. */
export function keyOf(obj: KubeObject): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

/** kubectl's client-side apply record: a full copy of the object as last applied. */
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * Drops, in place, what no consumer of a cache reads and what costs the most memory per
 * object: `managedFields` (server-side apply bookkeeping, often as large as the spec) and
 * kubectl's last-applied-configuration annotation (a second copy of the spec). A write that
 * sends the cached metadata back is unaffected: a status update takes all metadata from the
 * stored object, and an update without `managedFields` keeps the stored ones.
 */
export function dropBookkeeping(raw: unknown): unknown {
  const md = (raw as { metadata?: { managedFields?: unknown; annotations?: Record<string, string> } } | undefined)?.metadata;
  if (md === undefined || md === null || typeof md !== "object") return raw;
  delete md.managedFields;
  if (md.annotations && LAST_APPLIED in md.annotations) {
    delete md.annotations[LAST_APPLIED];
    if (Object.keys(md.annotations).length === 0) delete md.annotations;
  }
  return raw;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

class GoneError extends Error {}

/** Whether resourceVersion a is newer than b. They are opaque, but etcd's are integers. */
function newer(a: string, b: string): boolean {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return a !== b;
}

export class Informer<T extends KubeObject> implements ReadonlyStore<T> {
  private readonly client: KubeClient;
  private readonly path: string;
  private readonly handlers: InformerHandlers<T>;
  private readonly log: Logger;
  private readonly opts: Required<Pick<InformerOptions<T>, "watchTimeoutSeconds" | "maxBackoffMs" | "pageSize">> & Pick<InformerOptions<T>, "onRestart" | "transform" | "storeOnly">;
  private readonly store = new Map<string, T>();
  private resourceVersion = "";
  private synced = false;
  private lastActivity = Date.now();
  private readonly abort = new AbortController();
  private loop?: Promise<void>;

  constructor(client: KubeClient, path: string, handlers: InformerHandlers<T>, log: Logger, opts: InformerOptions<T> = {}) {
    this.client = client;
    this.path = path;
    this.handlers = handlers;
    this.log = log;
    this.opts = { watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 240, maxBackoffMs: opts.maxBackoffMs ?? 5000, pageSize: opts.pageSize ?? 500, onRestart: opts.onRestart, transform: opts.transform, storeOnly: opts.storeOnly };
  }

  /** Whether the first list has completed. */
  get hasSynced(): boolean {
    return this.synced;
  }

  /** Milliseconds since the last list, watch event or bookmark. */
  get idleMs(): number {
    return Date.now() - this.lastActivity;
  }

  /**
   * Records an object this process just wrote, so a pass that runs before the watch delivers
   * the write sees it (a stale read would redo work, such as a `pulumi up`, only to conflict).
   * An older version never replaces a newer one.
   */
  observe(obj: T): void {
    const key = keyOf(obj);
    const cur = this.store.get(key);
    if (cur && !newer(obj.metadata.resourceVersion, cur.metadata.resourceVersion)) return;
    this.store.set(key, this.kept(dropBookkeeping(obj) as T));
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  /** Starts the list+watch loop in the background. */
  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    let backoff = 200;
    let needList = true;
    while (!this.abort.signal.aborted) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        const reason = await this.watchOnce();
        backoff = 200;
        this.opts.onRestart?.(reason);
        this.log.debug({ reason, resourceVersion: this.resourceVersion }, "watch ended; resuming");
      } catch (err) {
        if (this.abort.signal.aborted) break;
        if ((err as Error).name === "TimeoutError") {
          // client-node aborts a watch idle for 30s; resuming from the last version is routine.
          this.opts.onRestart?.("closed");
          continue;
        }
        if (err instanceof GoneError || (err instanceof ApiError && err.gone) || (err as { statusCode?: number }).statusCode === 410) {
          this.log.info({ resourceVersion: this.resourceVersion }, "watch resourceVersion expired (410 Gone); relisting");
          this.opts.onRestart?.("gone");
          needList = true;
          continue;
        }
        this.opts.onRestart?.("error");
        this.log.warn({ err: (err as Error).message, retryInMs: backoff }, "list/watch failed; retrying");
        await sleep(backoff, this.abort.signal);
        backoff = Math.min(this.opts.maxBackoffMs, backoff * 2);
      }
    }
  }

  private async list(): Promise<void> {
    const seen = new Set<string>();
    let res: { metadata: { resourceVersion: string; continue?: string }; items: unknown[] };
    let token: string | undefined;
    // Page by page: every page is read at the first page's snapshot, and an expired continue
    // token is a 410 that starts the list over (run()).
    do {
      res = await this.client.get(this.path, { limit: this.opts.pageSize, ...(token ? { continue: token } : {}) });
      for (const raw of res.items) {
        const item = this.shape(raw);
        const key = keyOf(item);
        seen.add(key);
        this.store.set(key, this.kept(item));
        this.handlers.onUpsert(item);
      }
      token = res.metadata.continue || undefined;
    } while (token && !this.abort.signal.aborted);
    if (token) return; // stopped half way: a partial list must not delete the rest
    for (const [key, old] of this.store) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.handlers.onDelete(old);
      }
    }
    this.resourceVersion = res.metadata.resourceVersion;
    this.lastActivity = Date.now();
    this.synced = true;
    this.handlers.onSync?.();
  }

  /** One watch connection; resolves when it ends normally, rejects on errors and 410. */
  private watchOnce(): Promise<"closed"> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let controller: AbortController | undefined;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        clearInterval(watchdog);
        this.abort.signal.removeEventListener("abort", onAbort);
        controller?.abort();
        if (err) reject(err);
        else resolve("closed");
      };
      const onAbort = () => finish();
      this.abort.signal.addEventListener("abort", onAbort, { once: true });
      // A healthy watch is never silent for long: client-node ends one idle for 30 s itself and
      // the loop resumes it from the last version. Silence past a minute means a watch that
      // never got going (a connection the API server accepted but never answered) or a dead
      // one; events after it would be missed until the next relist, so start again now.
      const silentLimitMs = Math.min(this.opts.watchTimeoutSeconds + 30, 60) * 1000;
      const startedAt = Date.now();
      const watchdog = setInterval(() => {
        // Silence on this connection: a new watch in a quiet cluster starts with a full budget.
        const silentMs = Date.now() - Math.max(this.lastActivity, startedAt);
        if (silentMs > silentLimitMs) finish(new Error(`watch silent for ${Math.round(silentMs / 1000)}s`));
      }, 5000);
      watchdog.unref();
      // Stopped between the list and this watch: the abort event has fired already.
      if (this.abort.signal.aborted) return finish();
      this.client
        .watcher()
        .watch(
          this.path,
          { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: this.opts.watchTimeoutSeconds },
          (type: string, obj: unknown) => {
            if (settled) return;
            this.lastActivity = Date.now();
            try {
              this.onEvent(type, obj);
            } catch (err) {
              finish(err);
            }
          },
          (err: unknown) => finish(err ?? undefined),
        )
        .then((c) => {
          controller = c;
          if (settled) c.abort();
        })
        .catch((err: unknown) => finish(err));
    });
  }

  /** What the store keeps of an object (options.storeOnly). */
  private kept(obj: T): T {
    return this.opts.storeOnly ? this.opts.storeOnly(obj) : obj;
  }

  private shape(raw: unknown): T {
    dropBookkeeping(raw);
    return this.opts.transform ? this.opts.transform(raw) : (raw as T);
  }

  private onEvent(type: string, obj: unknown): void {
    if (type === "ERROR") {
      const status = obj as { code?: number; message?: string };
      if (status.code === 410) throw new GoneError(status.message ?? "gone");
      throw new Error(`watch error: ${status.code ?? ""} ${status.message ?? JSON.stringify(obj)}`);
    }
    const rv = (obj as KubeObject | undefined)?.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (type === "BOOKMARK") return;
    const o = this.shape(obj);
    const key = keyOf(o);
    if (type === "DELETED") {
      this.store.delete(key);
      this.handlers.onDelete(o);
    } else {
      // Our own write may already be in the store (observe): an event of an older version,
      // still in flight, must not roll it back.
      const cur = this.store.get(key);
      if (cur && cur.metadata.resourceVersion !== o.metadata.resourceVersion && !newer(o.metadata.resourceVersion, cur.metadata.resourceVersion)) return;
      this.store.set(key, this.kept(o));
      this.handlers.onUpsert(o);
    }
  }
}
