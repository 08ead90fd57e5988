/**
 * One HTTP exchange with a backend, fully buffered (the gateway needs the whole answer to diff it,
 * to read usage and to store it for idempotency). Bounded in time (timeout over the whole
 * exchange) and in size (maxResponseBytes). Failures are classified, never thrown raw.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { boundedDelay } from "../api/timer.ts";
import type { EgressPolicy } from "../api/egress.ts";
import { EGRESS_DENIED, egressLookup } from "../api/egress-dial.ts";

/**
 * Why an exchange failed: decides the status answered (504 for timeout, 503 for an address the
 * egress policy refuses at dial time, 502 otherwise).
 */
export type UpstreamFailure = "timeout" | "connect" | "reset" | "too_large" | "egress_denied";

export class UpstreamError extends Error {
  readonly kind: UpstreamFailure;
  constructor(kind: UpstreamFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UpstreamError";
    this.kind = kind;
  }
}

/** A backend's parsed base URL. */
export interface Backend {
  /** As written in the spec or status. */
  url: string;
  https: boolean;
  hostname: string;
  port: number;
  /** Path prefix without a trailing slash ("" for none). */
  basePath: string;
  /** Host header value. */
  host: string;
}

/** Parses a backend URL; throws naming the URL when it is not http(s). */
export function parseBackend(url: string): Backend {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`backend URL ${JSON.stringify(url)} does not parse`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`backend URL ${JSON.stringify(url)} must be http:// or https://`);
  const https = u.protocol === "https:";
  return {
    url,
    https,
    hostname: u.hostname.replace(/^\[|\]$/g, ""),
    port: u.port ? Number(u.port) : https ? 443 : 80,
    basePath: u.pathname.replace(/\/+$/, ""),
    host: u.host,
  };
}

export interface UpstreamRequest {
  backend: Backend;
  method: string;
  /** Path below the backend's base path, starting with "/", query included. */
  path: string;
  headers: OutgoingHttpHeaders;
  body: Buffer;
  timeoutMs: number;
  maxResponseBytes: number;
  agents: Agents;
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  durationMs: number;
}

/** Keep-alive agents; the primary path and the shadow path get separate ones (see Gateway). */
export interface Agents {
  http: HttpAgent;
  https: HttpsAgent;
}

/**
 * Creates keep-alive agents with a socket cap per backend. With an egress policy every new
 * connection's name lookup goes through it: a name that resolves to an address the policy
 * refuses (a metadata or link-local address, loopback when denied) is never connected to, even
 * when the name itself was allowed when the rollout was compiled (DNS can change, or lie).
 */
export function createAgents(maxSockets: number, egress?: EgressPolicy): Agents {
  const lookup = egress ? { lookup: egressLookup(egress) } : {};
  return {
    http: new HttpAgent({ keepAlive: true, maxSockets, maxFreeSockets: Math.min(maxSockets, 256), scheduling: "lifo", ...lookup }),
    https: new HttpsAgent({ keepAlive: true, maxSockets, maxFreeSockets: Math.min(maxSockets, 256), scheduling: "lifo", ...lookup }),
  };
}

const RESET_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE", "HPE_INVALID_CONSTANT", "HPE_INVALID_CHUNK_SIZE"]);

function classify(err: NodeJS.ErrnoException, target: string): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const code = err.code ?? "";
  if (code === EGRESS_DENIED) return new UpstreamError("egress_denied", `${target}: ${err.message}`, { cause: err });
  if (RESET_CODES.has(code) || code.startsWith("HPE_")) return new UpstreamError("reset", `${target}: connection reset (${code || err.message})`, { cause: err });
  return new UpstreamError("connect", `${target}: ${code || err.message}`, { cause: err });
}

/** Sends one request and buffers the answer. Rejects only with UpstreamError. */
export function forward(r: UpstreamRequest): Promise<UpstreamResponse> {
  const b = r.backend;
  const path = b.basePath + r.path;
  const target = `${r.method} ${b.url}`;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err: UpstreamError | undefined, res?: UpstreamResponse) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(res!);
    };
    const headers: OutgoingHttpHeaders = { ...r.headers, host: b.host, "content-length": String(r.body.length) };
    const send = b.https ? httpsRequest : httpRequest;
    const req = send({ hostname: b.hostname, port: b.port, path, method: r.method, headers, agent: b.https ? r.agents.https : r.agents.http });
    // traffic.timeout comes from the spec: beyond 2^31-1 ms Node would fire the timer at once.
    const timer = setTimeout(() => {
      const e = new UpstreamError("timeout", `${target}: no complete answer within ${r.timeoutMs}ms`);
      finish(e);
      req.destroy(e);
    }, boundedDelay(r.timeoutMs));
    req.on("error", (err: NodeJS.ErrnoException) => finish(classify(err, target)));
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > r.maxResponseBytes) {
          const e = new UpstreamError("too_large", `${target}: answer larger than ${r.maxResponseBytes} bytes`);
          finish(e);
          res.destroy();
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      res.on("error", (err: NodeJS.ErrnoException) => finish(classify(err, target)));
      res.on("aborted", () => finish(new UpstreamError("reset", `${target}: answer cut off`)));
      res.on("end", () => {
        if (!res.complete) {
          finish(new UpstreamError("reset", `${target}: answer cut off`));
          return;
        }
        finish(undefined, { status: res.statusCode ?? 502, headers: res.headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), durationMs: performance.now() - started });
      });
    });
    req.end(r.body);
  });
}

/** Headers that describe one connection (RFC 9110 7.6.1) and are never forwarded. */
export const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"]);

/** The caps of one backend's pool (spec.traffic.concurrency), per gateway replica. */
export interface SlotLimits {
  /** Exchanges with the backend at once. */
  maxInFlight: number;
  /** Requests waiting for a slot beyond maxInFlight. */
  maxQueued: number;
  /** Longest wait for a slot. */
  queueTimeoutMs: number;
}

/** A slot (release it exactly once when the exchange is over), or why none was given. */
export type SlotGrant = { ok: true; release: () => void } | { ok: false; reason: "queue_full" | "queue_timeout"; message: string };

interface Waiter {
  grant: (g: SlotGrant) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Pool {
  inFlight: number;
  /** FIFO by insertion order; a Set so that a waiter that times out leaves in O(1). */
  waiting: Set<Waiter>;
}

/**
 * Worker-pool caps for the primary path, one pool per backend key: at most maxInFlight
 * exchanges at once, at most maxQueued requests waiting in arrival order, none waiting longer
 * than queueTimeoutMs. Without them an overloaded backend makes the socket agent's own queue
 * grow without bound (memory) and every admitted request wait behind it (latency); with them
 * the excess is refused at once with a clear reason while the admitted ones keep the backend's
 * own latency. A pool is dropped when idle, so the map holds only busy backends.
 */
export class BackendSlots {
  readonly #pools = new Map<string, Pool>();

  /** Takes a slot of the backend `key` now, or waits in its queue; never throws. */
  acquire(key: string, limits: SlotLimits): SlotGrant | Promise<SlotGrant> {
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = { inFlight: 0, waiting: new Set() };
      this.#pools.set(key, pool);
    }
    if (pool.inFlight < limits.maxInFlight && pool.waiting.size === 0) return this.#take(key, pool);
    if (pool.waiting.size >= limits.maxQueued) {
      return { ok: false, reason: "queue_full", message: `backend at its cap: ${pool.inFlight} requests in flight (maxInFlight ${limits.maxInFlight}) and ${pool.waiting.size} waiting (maxQueued ${limits.maxQueued})` };
    }
    const p = pool;
    return new Promise<SlotGrant>((resolve) => {
      const w: Waiter = {
        grant: resolve,
        // spec.traffic.concurrency.queueTimeout: bounded like every input-derived timer.
        timer: setTimeout(() => {
          p.waiting.delete(w);
          this.#dropIfIdle(key, p);
          resolve({ ok: false, reason: "queue_timeout", message: `no free slot of the backend within ${limits.queueTimeoutMs}ms (maxInFlight ${limits.maxInFlight})` });
        }, boundedDelay(limits.queueTimeoutMs)),
      };
      p.waiting.add(w);
    });
  }

  /** Requests in flight and waiting for the backend `key` (0 and 0 when idle). */
  usage(key: string): { inFlight: number; waiting: number } {
    const pool = this.#pools.get(key);
    return { inFlight: pool?.inFlight ?? 0, waiting: pool?.waiting.size ?? 0 };
  }

  #take(key: string, pool: Pool): SlotGrant {
    pool.inFlight++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        pool.inFlight--;
        this.#next(key, pool);
      },
    };
  }

  /** Hands a freed slot to the longest waiter. */
  #next(key: string, pool: Pool): void {
    const first = pool.waiting.values().next();
    if (first.done) {
      this.#dropIfIdle(key, pool);
      return;
    }
    const w = first.value;
    pool.waiting.delete(w);
    clearTimeout(w.timer);
    w.grant(this.#take(key, pool));
  }

  #dropIfIdle(key: string, pool: Pool): void {
    if (pool.inFlight === 0 && pool.waiting.size === 0 && this.#pools.get(key) === pool) this.#pools.delete(key);
  }
}
