/**
 * Live updates for the dashboard: watches of AIRollouts (one per namespace scope, shared by every
 * page) feed the history and push each change to the pages as Server-Sent Events. Bounded: at
 * most MAX_CLIENTS pages, MAX_SCOPES watches, and a page whose unsent data passes MAX_BUFFERED
 * bytes (a stalled reader) is dropped; its EventSource reconnects and refetches.
 */
import type { ServerResponse } from "node:http";
import type { AIRollout } from "../api/schema.ts";
import type { ChangeType, DashboardKube, WatchHandle } from "./kube.ts";
import { type History, toRow } from "./model.ts";

export const MAX_CLIENTS = 32;
export const MAX_SCOPES = 8;
/** Unsent bytes a page may have queued before it is dropped. */
export const MAX_BUFFERED = 1 << 20;
/** Keep-alive comment period: proxies close idle streams. */
const PING_MS = 15_000;

/** What a page listens to: a namespace (undefined: all the server's) and optionally one rollout. */
export interface Subscription {
  namespace: string | undefined;
  rollout?: { namespace: string; name: string };
}

interface Client {
  res: ServerResponse;
  sub: Subscription;
  /** The watch scope it holds (released on close). */
  scope: string;
}

/** A scope's key: the namespace watched, `*` for all. */
const scopeKey = (namespace: string | undefined) => namespace ?? "*";

/** Writes one SSE frame. */
export function sseFrame(event: string, data: unknown): string {
  // JSON.stringify never emits a raw newline, so one data line carries the whole value.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The pages connected and the watches that feed them. */
export class Live {
  readonly #kube: DashboardKube;
  readonly #history: History;
  /** The server's own scope: watched from start to stop, whether or not a page is open. */
  readonly #home: string | undefined;
  readonly #clients = new Set<Client>();
  readonly #scopes = new Map<string, { handle: WatchHandle; users: number }>();
  #ping?: NodeJS.Timeout;

  constructor(kube: DashboardKube, history: History, home: string | undefined) {
    this.#kube = kube;
    this.#history = history;
    this.#home = home;
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Starts the home watch (it feeds the history) and the keep-alive pings. */
  start(): void {
    this.#acquire(this.#home);
    this.#ping = setInterval(() => this.#broadcastRaw(": ping\n\n", () => true), PING_MS);
    this.#ping.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#ping);
    for (const c of this.#clients) c.res.end();
    this.#clients.clear();
    const handles = [...this.#scopes.values()].map((s) => s.handle);
    this.#scopes.clear();
    await Promise.all(handles.map((h) => h.stop()));
  }

  /**
   * Adds a page. False (and nothing sent) when the page limit or the watch limit is reached;
   * the caller answers 503.
   */
  add(res: ServerResponse, sub: Subscription): boolean {
    if (this.#clients.size >= MAX_CLIENTS) return false;
    const scope = this.#scopeFor(sub.namespace);
    if (!this.#scopes.has(scope) && this.#scopes.size >= MAX_SCOPES) return false;
    this.#acquire(scope === "*" ? undefined : scope);
    const client: Client = { res, sub, scope };
    this.#clients.add(client);
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" });
    res.write(sseFrame("hello", { namespace: sub.namespace ?? null, rollout: sub.rollout ? `${sub.rollout.namespace}/${sub.rollout.name}` : null }));
    res.on("close", () => this.#remove(client));
    return true;
  }

  /** The watch scope serving a namespace: the home one when it covers it. */
  #scopeFor(namespace: string | undefined): string {
    if (this.#home === undefined) return "*";
    return scopeKey(namespace ?? this.#home);
  }

  #acquire(namespace: string | undefined): void {
    const key = scopeKey(namespace);
    const s = this.#scopes.get(key);
    if (s) {
      s.users++;
      return;
    }
    const handle = this.#kube.watch(namespace, (type, obj) => this.changed(type, obj, key));
    this.#scopes.set(key, { handle, users: 1 });
  }

  #release(key: string): void {
    const s = this.#scopes.get(key);
    if (!s) return;
    s.users--;
    // The home scope keeps its start() reference, so it never drops to zero while running.
    if (s.users > 0) return;
    this.#scopes.delete(key);
    void s.handle.stop();
  }

  #remove(client: Client): void {
    if (!this.#clients.delete(client)) return;
    this.#release(client.scope);
  }

  /** A watch saw a change: remembered (home scope) and pushed to the pages that show it. */
  changed(type: ChangeType, obj: AIRollout, scope = scopeKey(this.#home)): void {
    if (scope === scopeKey(this.#home)) {
      if (type === "DELETED") this.#history.forget(obj.metadata.namespace, obj.metadata.name);
      else this.#history.observe(obj);
    }
    const frame = sseFrame("rollout", { type, row: toRow(obj) });
    this.#broadcastRaw(frame, (c) => c.scope === scope && matches(c.sub, obj));
  }

  #broadcastRaw(frame: string, want: (c: Client) => boolean): void {
    for (const c of [...this.#clients]) {
      if (!want(c)) continue;
      if (c.res.writableLength > MAX_BUFFERED) {
        // A page that does not read: drop it rather than buffer without bound.
        c.res.destroy();
        this.#remove(c);
        continue;
      }
      c.res.write(frame);
    }
  }
}

function matches(sub: Subscription, obj: AIRollout): boolean {
  if (sub.namespace !== undefined && obj.metadata.namespace !== sub.namespace) return false;
  if (sub.rollout && (sub.rollout.namespace !== obj.metadata.namespace || sub.rollout.name !== obj.metadata.name)) return false;
  return true;
}
