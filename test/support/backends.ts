/**
 * Small real HTTP backends on loopback for gateway tests and benchmarks: each answers JSON through
 * a replaceable responder and records what it received. Modes simulate trouble: `fail` answers
 * 500, `hang` accepts the request and never answers (until close), `slow` answers after a delay.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { Socket } from "node:net";
import { freePort } from "../../controller/src/dev/controlplane.ts";

/** What a backend received. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json: unknown;
}

/** What a responder answers. `body` is sent as JSON unless it is a string or Buffer. */
export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export type Responder = (req: ReceivedRequest, n: number) => Reply | Promise<Reply>;

export type BackendMode = "ok" | "fail" | "hang" | "slow";

export interface TestBackend {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** Requests received since start or the last reset(). */
  readonly hits: number;
  /** The most recent requests (at most 2,000). */
  readonly requests: readonly ReceivedRequest[];
  mode: BackendMode;
  /** Delay of `slow` mode in milliseconds. */
  slowMs: number;
  respond: Responder;
  reset(): void;
  close(): Promise<void>;
}

/** Answers `{ backend: <name>, n, echo: <request JSON> }`. */
export function echoResponder(name: string): Responder {
  return (req, n) => ({ body: { backend: name, n, echo: req.json } });
}

/** Starts a backend on a free loopback port, or on `port` (to bring a closed backend back where it was). */
export async function startBackend(name: string, respond: Responder = echoResponder(name), port = 0): Promise<TestBackend> {
  const sockets = new Set<Socket>();
  const requests: ReceivedRequest[] = [];
  let hits = 0;
  const state = { mode: "ok" as BackendMode, slowMs: 200, respond };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let json: unknown;
      try {
        json = body.length ? JSON.parse(body.toString("utf8")) : undefined;
      } catch {
        json = undefined;
      }
      const r: ReceivedRequest = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, json };
      const n = ++hits;
      requests.push(r);
      if (requests.length > 2000) requests.shift();
      if (state.mode === "hang") return;
      if (state.mode === "fail") {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: `${name} failing` }));
        return;
      }
      const answer = async () => {
        if (state.mode === "slow") await new Promise((resolve) => setTimeout(resolve, state.slowMs));
        const reply = await state.respond(r, n);
        const payload = typeof reply.body === "string" || Buffer.isBuffer(reply.body) ? reply.body : JSON.stringify(reply.body ?? {});
        res.writeHead(reply.status ?? 200, { "content-type": "application/json", ...reply.headers });
        res.end(payload);
      };
      answer().catch((err: unknown) => {
        res.writeHead(599);
        res.end(String(err));
      });
    });
  });
  server.keepAliveTimeout = 65_000;
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const bound = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? addr.port : 0);
    });
  });
  return {
    name,
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    get hits() {
      return hits;
    },
    get requests() {
      return requests;
    },
    get mode() {
      return state.mode;
    },
    set mode(m: BackendMode) {
      state.mode = m;
    },
    get slowMs() {
      return state.slowMs;
    },
    set slowMs(ms: number) {
      state.slowMs = ms;
    },
    get respond() {
      return state.respond;
    },
    set respond(fn: Responder) {
      state.respond = fn;
    },
    reset() {
      hits = 0;
      requests.length = 0;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}

/** A loopback URL on which nothing listens: connections are refused. */
export async function refusingUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

/** The intents a {@link classifierResponder} answers, chosen by the request's `id`. */
export const INTENTS = ["billing", "bug", "question"] as const;

/** How a {@link classifierResponder} behaves; every choice depends only on the request body or its arrival number. */
export interface ClassifierOptions {
  /** Request ids (the body's numeric `id`) this version labels `other` instead of the usual intent. */
  drift?: (id: number) => boolean;
  /** Answers 500 to the n-th request this backend received (1-based) when true. */
  failOn?: (n: number) => boolean;
  /** Tokens reported per answer in the x-airollout-tokens header. */
  tokens?: number;
  /** Cost reported per answer in the x-airollout-cost header. */
  cost?: number;
  /** Answers after this many milliseconds. */
  delayMs?: number;
}

/**
 * A stand-in for an AI classifier: the answer depends only on the request body's `id` (intent,
 * confidence, summary), so two copies of the same version give identical answers and a version
 * that drifts differs on exactly the ids `drift` names. Usage is reported in the gateway's default
 * headers, so airollout_tokens_total and airollout_cost_total grow by known amounts per answer.
 */
export function classifierResponder(o: ClassifierOptions = {}): Responder {
  return async (req, n) => {
    if (o.delayMs) await new Promise((resolve) => setTimeout(resolve, o.delayMs));
    const headers: Record<string, string> = {};
    if (o.tokens !== undefined) headers["x-airollout-tokens"] = String(o.tokens);
    if (o.cost !== undefined) headers["x-airollout-cost"] = String(o.cost);
    if (o.failOn?.(n)) return { status: 500, headers, body: { error: "model unavailable" } };
    const raw = (req.json as { id?: unknown } | undefined)?.id;
    const id = typeof raw === "number" && Number.isInteger(raw) && raw >= 0 ? raw : -1;
    if (id < 0) return { status: 400, body: { error: "the body needs a whole-number id" } };
    const intent = o.drift?.(id) ? "other" : INTENTS[id % INTENTS.length];
    return { headers, body: { intent, confidence: 0.5 + (id % 5) / 10, summary: `ticket ${id}` } };
  };
}

/** What a {@link capacityBackend} saw. */
export interface CapacityStats {
  /** Requests answered. */
  served: number;
  /** Most requests outstanding at once (being served or waiting for a worker). */
  maxOutstanding: number;
  /** From arrival to answer of the most recent requests (at most 10,000): the backend's own latency. */
  serviceMs: number[];
}

/**
 * A responder with a known capacity, like a model server with a fixed worker pool: at most
 * `concurrency` requests are served at once, each taking `latencyMs`; more wait in its own queue
 * (unbounded, as a real server's accept queue is to its callers). Capacity is therefore
 * concurrency x 1000 / latencyMs requests per second, and its own latency is latencyMs.
 */
export function capacityResponder(o: { concurrency: number; latencyMs: number }, inner: Responder = (_req, n) => ({ body: { n } })): { respond: Responder; stats: CapacityStats } {
  const stats: CapacityStats = { served: 0, maxOutstanding: 0, serviceMs: [] };
  let busy = 0;
  let outstanding = 0;
  const waiting: (() => void)[] = [];
  const respond: Responder = async (req, n) => {
    const arrived = performance.now();
    outstanding++;
    stats.maxOutstanding = Math.max(stats.maxOutstanding, outstanding);
    if (busy >= o.concurrency) await new Promise<void>((resolve) => waiting.push(resolve));
    else busy++;
    try {
      await new Promise((resolve) => setTimeout(resolve, o.latencyMs));
      stats.served++;
      stats.serviceMs.push(performance.now() - arrived);
      if (stats.serviceMs.length > 10_000) stats.serviceMs.shift();
      return await inner(req, n);
    } finally {
      outstanding--;
      // The worker goes straight to the next waiter (busy stays counted), else it is freed.
      const next = waiting.shift();
      if (next) next();
      else busy--;
    }
  };
  return { respond, stats };
}
