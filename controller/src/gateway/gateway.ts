/**
 * The webhook gateway: receives webhooks at POST /hooks/<namespace>/<rollout>/<path>, applies
 * the rollout's guardrails, splits them between stable and candidate by status.canaryWeight,
 * answers with the primary's response, and afterwards (fire-and-forget, bounded, timed out)
 * mirrors a sample to the candidate's shadow and a second stable, diffing the answers.
 *
 * Everything it knows about a rollout comes from the watched AIRollout (spec + status).
 *
 * Request pipeline, in order: `#hook` runs one named stage per step over a per-request
 * HookContext; a stage either goes on or answers (a clear 4xx/5xx with a reason, counted) and
 * stops:
 *   unknown rollout 404 (503 before the first list) -> spec invalid 503 -> rate limit by header
 *   429 -> declared size 413 -> body read 413 -> signature 401 -> content encoding and type 415 ->
 *   UTF-8 400 ->
 *   JSON 400 (too deep, not JSON, duplicate key) -> payload schema 422 -> rate limit by JSON field
 *   429 -> idempotency (stored answer / wait / 409 / 422) -> split -> circuit breaker 503 ->
 *   forward 502/504 -> answer -> (after the answer) mirror, usage, idempotency store.
 * Refused payloads that a sender would not resend (413, 401, 415, 400, 422) are quarantined.
 * The backend gets exactly the bytes the gateway judged: a body the gateway would read otherwise
 * than a backend might (invalid UTF-8, a repeated key) is refused unless the rollout allows it.
 * A sender that sends `Expect: 100-continue` gets `100 Continue` only when its body is about to
 * be read, so a refusal before that reaches it before it uploads anything.
 * Mirrored copies are judged by a shadow runner (shadow.ts, on worker threads) and recorded in
 * the ShadowBook (shadow-book.ts: noise statistics, shadow metrics, samples).
 */
import { isUtf8 } from "node:buffer";
import express, { type NextFunction, type Request, type Response } from "express";
import { createServer, STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { availableParallelism } from "node:os";
import type { Duplex } from "node:stream";
import { join } from "node:path";
import type { Logger } from "pino";
import type { AIRollout } from "../api/schema.ts";
import { maskPII, scanJsonStructure } from "../diff/index.ts";
import type { KubeClient } from "../kube/client.ts";
import { rolloutsPath } from "../api/paths.ts";
import { Informer, metadataOnly } from "../kube/informer.ts";
import { chooseRole, extractKey, type KeySource, type Role } from "./hash.ts";
import type { CircuitPermit } from "./circuit.ts";
import { SqliteIdempotencyStore, type ClaimResult, type IdempotencyStore, type StoredResponse } from "./idempotency.ts";
import { createGatewayMetrics, type GatewayMetrics } from "./metrics.ts";
import { fixtureEvents, FixtureStore, recordFixture, type FixtureLimits } from "./fixtures.ts";
import { FIXTURE_CHECKPOINT_MS } from "./fixtures-checkpoint.ts";
import { lazyChild } from "./lazy-log.ts";
import { acceptRequestId, extractUsage, fingerprint, headerValue, invalidUtf8Offset, isJsonContentType } from "./payload.ts";
import { recordJudgeSample } from "./judge-samples.ts";
import { QuarantineStore, type QuarantineReason } from "./quarantine.ts";
import { TokenBucket } from "./ratelimit.ts";
import { RedisIdempotencyStore, redactUrl } from "./redis-idempotency.ts";
import { parseHookUrl, type HookRoute } from "./route.ts";
import { compileRollout, DEFAULT_TRAFFIC, type CompileProblem, type Rollout, type Target, type Traffic } from "./rollouts.ts";
import { backendVerdict, InlineShadowRunner, type Outcome, type ShadowJob, type ShadowRunner } from "./shadow.ts";
import { ShadowBook, type MirroredRequest } from "./shadow-book.ts";
import { ShadowWorkerPool } from "./shadow-pool.ts";
import { SecretCache, SecretError } from "./secrets.ts";
import { DEFAULT_SIGNATURE_HEADER, STANDARD_ID_HEADER, STANDARD_TIMESTAMP_HEADER, standardWebhookKey, verifyGithub, verifyStandard, verifyStripe, type VerifyResult } from "./signature.ts";
import { slotLimits } from "./slot-limits.ts";
import { BackendSlots, createAgents, forward, HOP_BY_HOP, UpstreamError, type Agents, type Backend, type UpstreamFailure, type UpstreamResponse } from "./upstream.ts";
import type { EgressPolicy } from "../api/egress.ts";

export type { DiffSample } from "./shadow-book.ts";

export interface GatewayOptions {
  log: Logger;
  /** Directory of the SQLite files (quarantine.db, idempotency.db). */
  stateDir: string;
  /** Watches AIRollouts and reads signature Secrets; without it rollouts are fed with upsert(). */
  client?: KubeClient;
  /** Watch one namespace; all when undefined. */
  namespace?: string;
  metrics?: GatewayMetrics;
  /** Largest backend answer buffered (default 16 MiB). */
  maxResponseBytes?: number;
  /** Sockets per backend on the primary path (default 512); the shadow path has its own pool. */
  maxSockets?: number;
  /** Kept rows of the quarantine (default 100,000). */
  quarantineMaxRows?: number;
  /** Bounds of the masked fixtures kept per rollout (fixtures.ts; defaults DEFAULT_FIXTURE_LIMITS). */
  fixtures?: Partial<FixtureLimits>;
  /** Cache lifetime of signature secrets (default 30 s). */
  secretTtlMs?: number;
  /**
   * Worker threads for shadow work (exchanges with the shadow and noise backends, decoding,
   * diffing). Default: the cores beyond the first, 1 to 4. 0 runs it on the main thread.
   */
  shadowWorkers?: number;
  /** Nice steps the shadow worker threads run below the gateway on Linux (default 10; 0 = equal). */
  shadowNice?: number;
  /**
   * The cluster admin's egress policy: a rollout that would dial outside it is refused whole
   * (503 egress_denied), and every new connection's resolved address is checked against it.
   */
  egress?: EgressPolicy;
}

/** The default number of shadow workers: the cores beyond the one serving requests, 1 to 4. */
export function defaultShadowWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

/** A reason the gateway refused a request: the `error` field of its JSON answer and a metric label. */
type RejectReason =
  | "not_synced"
  | "unknown_rollout"
  | "spec_invalid"
  | "egress_denied"
  | "rate_limited"
  | "too_large"
  | "signature"
  | "signature_secret"
  | "content_type"
  | "content_encoding"
  | "invalid_utf8"
  | "too_deep"
  | "bad_json"
  | "duplicate_key"
  | "schema"
  | "schema_invalid"
  | "idempotency_key"
  | "idempotency_mismatch"
  | "idempotency_in_progress"
  | "idempotency_store"
  | "no_backend"
  | "circuit_open"
  | "overloaded"
  | "backend_timeout"
  | "backend_error"
  | "client_aborted";

/** The answer to a failed exchange: 504 on timeout, 503 for an address the egress policy refused at dial time, else 502. */
function failureAnswer(kind: UpstreamFailure): { status: number; reason: RejectReason } {
  if (kind === "timeout") return { status: 504, reason: "backend_timeout" };
  if (kind === "egress_denied") return { status: 503, reason: "egress_denied" };
  return { status: 502, reason: "backend_error" };
}

const QUARANTINED_BODY_HEAD = 64 * 1024;
/**
 * The body of a refused request that is still arriving is read and dropped up to these bounds,
 * then the connection is closed: closing while a sender is still uploading can make its network
 * stack drop the answer (a TCP reset), and reading without a bound would let a sender hold the
 * gateway busy with gigabytes it will never use.
 */
const DRAIN_BYTES = 8 * 1024 * 1024;
const DRAIN_MS = 10_000;
/** How long a refusal of a declared oversize body waits for its first bytes (kept for the quarantine). */
const HEAD_WAIT_MS = 2000;
const UNKNOWN = "(unknown)";
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
/** Webhooks to unknown rollouts quarantined: a burst, then this many per second. */
const UNKNOWN_QUARANTINE_BURST = 100;
const UNKNOWN_QUARANTINE_PER_SECOND = 5;

/** Metric labels of a rollout. */
type Labels = { rollout: string; namespace: string };
/** Labels of requests to rollouts this gateway does not watch: URL text never becomes a label. */
const UNKNOWN_LABELS: Labels = { rollout: UNKNOWN, namespace: UNKNOWN };
const EMPTY_BODY = Buffer.alloc(0);
const NO_HEADERS: OutgoingHttpHeaders = Object.freeze({});
/** The permit of a target without a circuit breaker. */
const ALWAYS_PERMIT: CircuitPermit = { allowed: true, probe: false, retryInMs: 0 };
/** The "permit" of a target without a backend: never allowed. */
const NO_BACKEND_PERMIT: CircuitPermit = { allowed: false, probe: false, retryInMs: 0 };

type Signature = NonNullable<Traffic["signature"]>;

/** An idempotency key this request holds until its answer is stored or the key released. */
interface Claim {
  store: IdempotencyStore;
  /** `<namespace>/<rollout>/<key>`: keys are scoped to the rollout. */
  key: string;
  /** Proves the claim is this request's when completing or releasing it. */
  token: string;
}

/** A webhook before its rollout is looked up: what a refusal and the quarantine need. */
interface HookRequest {
  /** The sender's request; its body is read by a stage (or drained on refusal). */
  req: IncomingMessage;
  /** The answer to the sender; x-request-id is set on it first thing. */
  res: ServerResponse;
  /** Namespace, rollout name and forwarded path (with query) from the URL. */
  route: HookRoute;
  /** `<namespace>/<name>` from the URL: the key of the watched rollouts. */
  key: string;
  /** Correlation id: the sender's x-request-id when acceptable, else a new UUID. */
  requestId: string;
  /** Logger with requestId, namespace, name and rollout on every line. */
  log: Logger;
  /** Metric labels: the rollout's, or UNKNOWN_LABELS. */
  labels: Labels;
  /** The compiled rollout; undefined when the URL names none this gateway watches. */
  rollout: Rollout | undefined;
}

/**
 * One webhook to a watched rollout as it moves through the stages of #hook. Fields below
 * `headers` start empty and are filled by the stage named in their comment.
 */
interface HookContext extends HookRequest {
  rollout: Rollout;
  /** Always POST: other methods on hook URLs are answered 405 by the express app. */
  method: string;
  /** The forwarded path: the URL's rest after the rollout, with the query as sent. */
  path: string;
  /** The sender's headers. */
  headers: IncomingHttpHeaders;
  /** The complete raw body (receiveBody); signatures are checked over these bytes. */
  body: Buffer;
  /** The body decoded as UTF-8 (decodeText), what the JSON stages read. */
  text: string;
  /** performance.now() when the body was complete (receiveBody): airollout_request_duration_seconds starts here. */
  started: number;
  /** The parsed JSON body (parseJson), for the schema, rate-limit and sticky keys. */
  payload: unknown;
  /** The idempotency key this request claimed (idempotency); completed or released at the end. */
  claim: Claim | undefined;
  /** The version that answers (split): the candidate by weight, or the stable as fallback. */
  target: Target;
  /** The target's circuit-breaker permit (split); never allowed for a target without backend. */
  permit: CircuitPermit;
  /** The target's metric labels (split). */
  versionLabels: Labels & { version: string };
  /** The headers sent to the backends (forward), reused for the shadow copies. */
  forwarded: OutgoingHttpHeaders;
}

/** One mirrored request, handed from the answered webhook to its shadow job (no request or response objects). */
interface ShadowCopy extends MirroredRequest {
  rollout: Rollout;
  method: string;
  /** The headers forwarded to the primary. */
  headers: OutgoingHttpHeaders;
  body: Buffer;
  /** The primary's answer, compared with the shadow's. */
  primary: UpstreamResponse;
}

/** A target's circuit permit: no backend, no permit; no breaker, always allowed. */
function permitFor(target: Target): CircuitPermit {
  if (!target.backend) return NO_BACKEND_PERMIT;
  return target.breaker?.allow(Date.now()) ?? ALWAYS_PERMIT;
}

/** Tells the shadow target's breaker what a copy's outcome says about its backend. */
function tellBreaker(target: Target, permit: CircuitPermit, outcome: Outcome): void {
  // The breaker hears about the backend only: a diff-side failure reports the answer's status.
  const verdict = backendVerdict(outcome);
  if (verdict === "failure") target.breaker?.onFailure(Date.now(), permit.probe);
  else if (verdict === "success") target.breaker?.onSuccess(permit.probe);
  else target.breaker?.release(permit.probe);
}

type BodyResult =
  | { kind: "ok"; body: Buffer }
  /** More than the limit arrived (or the wait ran out first): the first bytes and how many were read. */
  | { kind: "too_large"; head: Buffer; size: number }
  | { kind: "aborted" };

/**
 * Reads a request body up to `limit` bytes. Past the limit, or after `waitMs` when given, it stops
 * reading (the stream paused, its listeners removed, for discardBody to take over) and keeps the
 * first QUARANTINED_BODY_HEAD bytes for the quarantine.
 */
function readBody(req: IncomingMessage, limit: number, waitMs?: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = waitMs === undefined ? undefined : setTimeout(() => settle(tooLarge()), waitMs);
    const tooLarge = (): BodyResult => ({ kind: "too_large", head: Buffer.concat(chunks).subarray(0, QUARANTINED_BODY_HEAD), size });
    const onData = (c: Buffer) => {
      size += c.length;
      // Chunks past the quarantined head are not kept, not even until the limit check below.
      if (size - c.length < QUARANTINED_BODY_HEAD || size <= limit) chunks.push(c);
      if (size > limit) settle(tooLarge());
    };
    const onEnd = () => settle({ kind: "ok", body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
    const onError = () => settle({ kind: "aborted" });
    const onClose = () => {
      if (!req.complete) settle({ kind: "aborted" });
    };
    const settle = (r: BodyResult) => {
      clearTimeout(timer);
      req.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
      if (r.kind === "too_large") req.pause();
      resolve(r);
    };
    req.on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose);
  });
}

/**
 * Disposes of the unread rest of a refused request's body, so that the refusal reaches the
 * sender: the rest is read and dropped as it arrives (the connection stays usable), up to
 * DRAIN_BYTES or DRAIN_MS, past which the connection is closed. (A sender still waiting for
 * `100 Continue` has sent nothing: Gateway's #sendJson closes its connection after the answer.)
 */
function discardBody(req: IncomingMessage, awaitingContinue: boolean): void {
  if (awaitingContinue || req.complete || req.destroyed) return;
  let drained = 0;
  const stop = () => {
    clearTimeout(timer);
    req.off("data", onData).off("end", stop).off("close", stop);
  };
  const cut = () => {
    stop();
    req.socket.destroy();
  };
  const onData = (c: Buffer) => {
    drained += c.length;
    if (drained > DRAIN_BYTES) cut();
  };
  const timer = setTimeout(cut, DRAIN_MS);
  timer.unref();
  req.on("data", onData).once("end", stop).once("close", stop);
  req.resume();
}

/** Status, reason and message for a request Node's HTTP parser refused (its error code). */
function clientErrorAnswer(code: string | undefined): [number, string, string] {
  if (code === "HPE_HEADER_OVERFLOW") return [431, "headers_too_large", "the request's header section is larger than the server accepts"];
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") return [408, "request_timeout", "the request was not received in time"];
  return [400, "bad_request", `the request is not valid HTTP/1.1 (${code ?? "parse error"})`];
}

/** The Content-Length a request declared; undefined without one (chunked). */
function declaredLength(headers: IncomingHttpHeaders): number | undefined {
  const v = headerValue(headers, "content-length");
  const n = v === undefined ? NaN : Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** The idempotency key header: spec.traffic.idempotency.header, else the signature scheme's message id. */
function idempotencyHeader(traffic: Traffic): string {
  return traffic.idempotency?.header ?? (traffic.signature?.scheme === "standard" ? STANDARD_ID_HEADER : "Idempotency-Key");
}

/** The headers forwarded to a backend: the sender's, without hop-by-hop ones, plus the correlation id. */
function forwardHeaders(req: IncomingMessage, requestId: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    out[k] = v;
  }
  out["x-request-id"] = requestId;
  // Answers are diffed and read for usage: ask for them uncompressed.
  out["accept-encoding"] = "identity";
  const ip = req.socket.remoteAddress;
  if (ip) {
    const prior = headerValue(req.headers, "x-forwarded-for");
    out["x-forwarded-for"] = prior ? `${prior}, ${ip}` : ip;
  }
  return out;
}

/** The answer's headers as sent to the webhook sender and stored for idempotent repeats. */
function answerHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

export class Gateway {
  readonly app: express.Express;
  readonly metrics: GatewayMetrics;
  readonly quarantine: QuarantineStore;
  /** Masked samples of accepted webhooks per rollout, for previews to replay (fixtures.db). */
  readonly fixtures: FixtureStore;
  readonly log: Logger;
  #o: GatewayOptions;
  /** Shadow results: noise statistics, shadow metrics, samples. */
  #book: ShadowBook;
  #maxResponseBytes: number;
  #rollouts = new Map<string, Rollout>();
  #informer: Informer<AIRollout> | undefined;
  #secrets: SecretCache | undefined;
  #primaryAgents: Agents;
  /** Per-backend concurrency caps of the primary path (spec.traffic.concurrency). */
  #slots = new BackendSlots();
  #shadowRunner: ShadowRunner;
  #sqliteIdempotency: SqliteIdempotencyStore | undefined;
  #redisIdempotency = new Map<string, RedisIdempotencyStore>();
  #problemsReported = new Map<string, string>();
  /** Quarantine budget for webhooks to rollouts this gateway does not know. */
  #unknownBudget = new TokenBucket(UNKNOWN_QUARANTINE_PER_SECOND, UNKNOWN_QUARANTINE_BURST, Date.now());
  #synced: boolean;
  #servers: Server[] = [];
  #stopping = false;
  /** Requests that sent `Expect: 100-continue` and have not been told to go on yet. */
  #awaitingContinue = new WeakSet<IncomingMessage>();

  constructor(o: GatewayOptions) {
    this.#o = o;
    this.log = o.log;
    // Read at scrape time only, when the book exists.
    this.metrics = o.metrics ?? createGatewayMetrics(() => [...this.#rollouts.values()].map((r) => this.#book.stats(r)), () => this.fixtures.counts());
    this.#book = new ShadowBook(this.metrics);
    this.#maxResponseBytes = o.maxResponseBytes ?? 16 * 1024 * 1024;
    this.quarantine = new QuarantineStore(join(o.stateDir, "quarantine.db"), { maxRows: o.quarantineMaxRows });
    this.fixtures = new FixtureStore(join(o.stateDir, "fixtures.db"), { limits: o.fixtures, events: fixtureEvents(this.metrics) });
    this.#primaryAgents = createAgents(o.maxSockets ?? 512, o.egress);
    // Shadow exchanges have socket pools of their own (per worker): a hung shadow must not take
    // sockets the primary path needs.
    const workers = o.shadowWorkers ?? defaultShadowWorkers();
    this.#shadowRunner = workers === 0 ? new InlineShadowRunner(createAgents(256, o.egress)) : new ShadowWorkerPool(workers, o.log.child({ component: "shadow-workers" }), { nice: o.shadowNice, egress: o.egress, checkpoint: { file: this.fixtures.file, intervalMs: FIXTURE_CHECKPOINT_MS } });
    this.#secrets = o.client ? new SecretCache(o.client, { ttlMs: o.secretTtlMs }) : undefined;
    this.#synced = !o.client;
    if (o.client) {
      this.#informer = new Informer<AIRollout>(
        o.client,
        rolloutsPath(o.namespace),
        { onUpsert: (obj) => this.upsert(obj), onDelete: (obj) => this.remove(obj.metadata.namespace, obj.metadata.name), onSync: () => (this.#synced = true) },
        o.log.child({ informer: "airollouts" }),
        // Each object is compiled in upsert and the store is never read: it keeps the metadata only.
        { storeOnly: metadataOnly },
      );
    }
    this.app = this.#buildApp();
  }

  /**
   * The server's request listener: webhooks (POST /hooks/...) go straight to the hook pipeline,
   * everything else to the express app. A rejected pipeline answers 500 and is logged, never
   * crashes the process.
   */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? "/";
    const route = req.method === "POST" ? parseHookUrl(url) : undefined;
    if (route === undefined) {
      this.app(req, res);
      return;
    }
    if ("error" in route) {
      this.#refuse(req, res, 400, "bad_request", route.error);
      return;
    }
    this.#hook(req, res, route).catch((err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      this.log.error({ err: e.message, stack: e.stack, path: url }, "unexpected error while handling a webhook");
      if (res.headersSent) res.destroy();
      else this.#refuse(req, res, 500, "internal", "internal error; see the gateway log");
    });
  };

  /**
   * The server's `checkContinue` listener (a request with `Expect: 100-continue`): handled like
   * any request, but `100 Continue` is sent only when a stage is about to read the body, so a
   * refusal before that (unknown rollout, rate limit, declared size) reaches the sender before it
   * uploads anything.
   */
  readonly handleCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    this.#awaitingContinue.add(req);
    this.handle(req, res);
  };

  /**
   * The server's `clientError` listener: a request Node's HTTP parser refused before the gateway
   * saw it (a malformed request line, an unknown method, headers over the size limit, a header
   * timeout) gets a JSON refusal with a reason and a new request id like every other refusal,
   * is counted, and its connection closed. Nothing is written into a response already under way.
   */
  readonly handleClientError = (err: Error & { code?: string }, socket: Duplex): void => {
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
    if (err.code !== "ECONNRESET" && socket.writable && !inFlight?.headersSent) {
      const [status, reason, message] = clientErrorAnswer(err.code);
      const requestId = acceptRequestId(undefined);
      const body = JSON.stringify({ error: reason, message, requestId });
      this.metrics.rejected.inc({ rollout: UNKNOWN, namespace: UNKNOWN, reason, code: String(status) });
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`);
    }
    socket.destroy();
  };

  /** Tells a sender waiting for `100 Continue` to send its body (once); others need nothing. */
  #continue(req: IncomingMessage, res: ServerResponse): void {
    if (!this.#awaitingContinue.delete(req)) return;
    res.writeContinue();
  }

  /** Whether the AIRollouts have been listed once (requests before that answer 503). */
  get synced(): boolean {
    return this.#synced;
  }

  /** Starts watching AIRollouts. */
  start(): void {
    this.#informer?.start();
  }

  /** Adds or updates a rollout (from the watch, or directly in tests). */
  upsert(obj: AIRollout): void {
    const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
    const problems: CompileProblem[] = [];
    const r = compileRollout(obj, this.#rollouts.get(key), this.metrics, problems, this.#o.egress);
    this.#rollouts.set(key, r);
    // Report each distinct set of spec problems once, not on every status update.
    const text = problems.map((p) => `${p.field}: ${p.message}`).join("; ");
    if (text !== (this.#problemsReported.get(key) ?? "")) {
      this.#problemsReported.set(key, text);
      if (text) this.log.warn({ namespace: r.namespace, name: r.name, rollout: key, problems }, "AIRollout spec problems affect the gateway");
    }
    this.log.debug({ namespace: r.namespace, name: r.name, rollout: key, weight: r.weight, shadow: r.shadowOn, phase: r.phase }, "rollout updated");
  }

  /** Forgets a deleted rollout and its samples. */
  remove(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    this.#rollouts.delete(key);
    this.#problemsReported.delete(key);
    this.#book.forget(key);
    this.fixtures.forget(namespace, name);
    this.log.info({ namespace, name, rollout: key }, "rollout removed");
  }

  /** The compiled rollout (tests, diagnostics). */
  rollout(namespace: string, name: string): Rollout | undefined {
    return this.#rollouts.get(`${namespace}/${name}`);
  }

  /** Starts serving on a port (0 = any); resolves with the bound port. */
  listen(port: number, host = "0.0.0.0"): Promise<{ server: Server; port: number }> {
    return new Promise((resolve, reject) => {
      const server = createServer(this.handle);
      server.on("checkContinue", this.handleCheckContinue);
      server.on("clientError", this.handleClientError);
      server.listen(port, host, () => {
        const addr = server.address();
        resolve({ server, port: typeof addr === "object" && addr ? addr.port : port });
      });
      server.once("error", reject);
      // Webhook senders keep connections; a generous keep-alive avoids reconnect storms.
      server.keepAliveTimeout = 65_000;
      server.headersTimeout = 66_000;
      this.#servers.push(server);
    });
  }

  /** Resolves when no shadow work is running or queued (tests). */
  async mirrorIdle(): Promise<void> {
    await Promise.all([...this.#rollouts.values()].map((r) => r.state.mirrorIdle()));
  }

  /** Stops serving, lets shadow work finish (bounded), closes the stores. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    await this.#informer?.stop();
    await Promise.all(
      this.#servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeIdleConnections();
            setTimeout(() => (s.closeAllConnections(), resolve()), 5000).unref();
          }),
      ),
    );
    await Promise.race([this.mirrorIdle(), new Promise((r) => setTimeout(r, 5000).unref())]);
    this.#primaryAgents.http.destroy();
    this.#primaryAgents.https.destroy();
    await this.#shadowRunner.close();
    await this.#sqliteIdempotency?.close();
    await Promise.all([...this.#redisIdempotency.values()].map((s) => s.close()));
    this.quarantine.close();
    this.fixtures.close();
  }

  #buildApp(): express.Express {
    const app = express();
    app.disable("x-powered-by");
    app.disable("etag");
    app.set("query parser", false);
    app.get("/healthz", (_req, res) => {
      res.type("text/plain").send("ok");
    });
    app.get("/readyz", (_req, res) => {
      res.status(this.#synced ? 200 : 503).type("text/plain").send(this.#synced ? "ok" : "AIRollouts not listed yet");
    });
    app.get("/metrics", async (_req, res) => {
      res.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics());
    });
    app.get("/api/rollouts/:namespace/:name/diffs", (req, res) => this.#diffs(req, res));
    // POST /hooks/... is dispatched before express (see handle); other methods end here.
    app.all("/hooks/:namespace/:name{/*path}", (req, res) => {
      this.#refuse(req, res, 405, "method_not_allowed", `webhooks are POSTed; ${req.method} is not accepted`, { allow: "POST" });
    });
    app.use((req: Request, res: Response) => {
      this.#refuse(req, res, 404, "not_found", `no route for ${req.method} ${req.path}; webhooks go to POST /hooks/<namespace>/<rollout>/<path>`);
    });
    // Express answers its own parse errors (a malformed %-escape in the path) through here.
    app.use((err: Error & { status?: number; statusCode?: number }, req: Request, res: Response, _next: NextFunction) => {
      const status = err.status ?? err.statusCode ?? 500;
      if (status >= 500) this.log.error({ err: err.message, stack: err.stack, path: req.path }, "unexpected error while handling a request");
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (status >= 400 && status < 500) this.#refuse(req, res, status, "bad_request", err.message);
      else this.#refuse(req, res, 500, "internal", "internal error; see the gateway log");
    });
    return app;
  }

  /** Sends a JSON answer; a sender still waiting for `100 Continue` sent no body, so its connection closes after it. */
  #sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent) return;
    const text = JSON.stringify(body);
    const close: Record<string, string> = this.#awaitingContinue.has(res.req) ? { connection: "close" } : {};
    res.writeHead(status, { ...headers, ...close, "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(text)) });
    res.end(text);
  }

  /**
   * A refusal outside the hook pipeline (a malformed URL, another method, no route, an internal
   * error): counted, with the request's correlation id in the answer and its x-request-id like
   * every refusal; an unread body is drained within bounds, as after any refusal.
   */
  #refuse(req: IncomingMessage, res: ServerResponse, status: number, reason: string, message: string, headers: Record<string, string> = {}): void {
    discardBody(req, this.#awaitingContinue.has(req));
    const given = res.getHeader("x-request-id");
    const requestId = typeof given === "string" ? given : acceptRequestId(req.headers["x-request-id"]);
    this.metrics.rejected.inc({ rollout: UNKNOWN, namespace: UNKNOWN, reason, code: String(status) });
    this.#sendJson(res, status, { error: reason, message, requestId }, { ...headers, "x-request-id": requestId });
  }

  #diffs(req: Request, res: Response): void {
    const namespace = String(req.params.namespace);
    const name = String(req.params.name);
    const r = this.#rollouts.get(`${namespace}/${name}`);
    if (!r) {
      this.#refuse(req, res, 404, "unknown_rollout", `no AIRollout ${namespace}/${name} is watched by this gateway`);
      return;
    }
    const limitParam = new URL(req.originalUrl, "http://x").searchParams.get("limit");
    const limit = limitParam === null ? undefined : Number(limitParam);
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      this.#refuse(req, res, 400, "bad_request", `limit=${JSON.stringify(limitParam)} is not a non-negative integer`);
      return;
    }
    const { summary, samples, evicted } = this.#book.view(r, limit);
    this.#sendJson(res, 200, {
      namespace,
      name,
      stable: r.stable.version,
      candidate: r.candidate.version,
      shadowEnabled: r.shadowOn,
      canaryWeight: r.weight,
      summary,
      samples,
      evicted,
    });
  }

  /** Answers a refusal: counted, logged (masked), JSON with the reason. False, so a stage can `return` it. */
  #reject(c: HookRequest, status: number, reason: RejectReason, message: string, headers: Record<string, string> = {}): false {
    this.metrics.rejected.inc({ ...c.labels, reason, code: String(status) });
    // Messages can quote the payload (schema errors): the log gets the masked text.
    c.log.info({ status, reason, detail: maskPII(message, c.rollout?.masks ?? []) }, "request refused");
    this.#sendJson(c.res, status, { error: reason, message, requestId: c.requestId }, headers);
    return false;
  }

  /**
   * Stores a refused webhook under the rollout the URL named, with the request's metric labels
   * ("(unknown)" for rollouts not watched: URL text never becomes a label). True when stored.
   */
  #quarantine(c: HookRequest, reason: QuarantineReason, detail: string, body: Buffer, sizes: { declaredSize?: number; receivedBytes?: number; complete?: boolean } = {}): boolean {
    const { req, route, log } = c;
    try {
      const id = this.quarantine.add({ namespace: route.namespace, name: route.name, reason, detail, method: req.method ?? "POST", path: route.path, headers: req.headers, body, ...sizes, requestId: c.requestId, masks: c.rollout?.masks });
      this.metrics.quarantined.inc({ ...c.labels, reason });
      log.info({ quarantineId: id, reason }, "payload quarantined");
      return true;
    } catch (err) {
      // The sender still gets its 4xx; the loss is loud, not silent.
      log.error({ err: (err as Error).message, reason }, "could not store a refused payload in the quarantine");
      return false;
    }
  }

  /**
   * One webhook, stage by stage in the order of the module comment. Each stage either returns
   * true (go on) or answers the request itself (a refusal, a stored answer) and returns false.
   */
  async #hook(req: IncomingMessage, res: ServerResponse, route: HookRoute): Promise<void> {
    const request = this.#identify(req, res, route);
    const c = this.#withRollout(request);
    if (!c) return this.#unknownRollout(request);
    if (!this.#specValid(c)) return;
    if (!this.#rateLimitByHeader(c)) return;
    if (!(await this.#declaredSize(c))) return;
    if (!(await this.#receiveBody(c))) return;
    if (!(await this.#verifySignature(c))) return;
    if (!this.#contentEncoding(c)) return;
    if (!this.#contentType(c)) return;
    if (!this.#decodeText(c)) return;
    if (!this.#parseJson(c)) return;
    if (!this.#payloadSchema(c)) return;
    if (!this.#rateLimitByField(c)) return;
    if (!(await this.#idempotency(c))) return;
    this.#split(c);
    if (!(await this.#circuitBreaker(c))) return;
    const answer = await this.#forward(c);
    if (!answer) return;
    const sent = this.#answer(c, answer);
    this.#mirrorAfterAnswer(c, answer);
    this.#keepFixture(c, answer);
    this.#countUsage(c, answer);
    await this.#settleIdempotency(c, answer, sent);
    if (c.log.isLevelEnabled("debug")) c.log.debug({ version: c.target.version, status: answer.status, ms: Math.round(performance.now() - c.started) }, "request answered");
  }

  /** The request id (the sender's when acceptable), echoed at once, and the request's logger. */
  #identify(req: IncomingMessage, res: ServerResponse, route: HookRoute): HookRequest {
    const requestId = acceptRequestId(req.headers["x-request-id"]);
    res.setHeader("x-request-id", requestId);
    const key = `${route.namespace}/${route.name}`;
    // Made on first use: a webhook that is simply answered writes no line at the default level.
    const log = lazyChild(this.log, { requestId, namespace: route.namespace, name: route.name, rollout: key });
    return { req, res, route, key, requestId, log, labels: UNKNOWN_LABELS, rollout: undefined };
  }

  /** The per-request context once the URL names a watched rollout; undefined when it names none. */
  #withRollout(q: HookRequest): HookContext | undefined {
    const r = this.#rollouts.get(q.key);
    if (!r) return undefined;
    return {
      ...q,
      rollout: r,
      labels: { rollout: r.name, namespace: r.namespace },
      method: "POST",
      path: q.route.path,
      headers: q.req.headers,
      body: EMPTY_BODY,
      text: "",
      started: 0,
      payload: undefined,
      claim: undefined,
      target: r.stable,
      permit: NO_BACKEND_PERMIT,
      versionLabels: { rollout: r.name, namespace: r.namespace, version: r.stable.version },
      forwarded: NO_HEADERS,
    };
  }

  /**
   * A URL naming no watched rollout: 503 before the first list, else 404 with the payload
   * quarantined for replay, within a budget.
   */
  async #unknownRollout(q: HookRequest): Promise<void> {
    const { req, res } = q;
    if (!this.#synced) {
      this.#discardBody(req);
      this.#reject(q, 503, "not_synced", "the gateway has not listed AIRollouts yet; retry shortly", { "retry-after": "1" });
      return;
    }
    const message = `no AIRollout ${q.key} is watched by this gateway`;
    // Most senders do not resend after a 4xx: the webhook (sent before its AIRollout was
    // created, or to a renamed one) is kept for replay, within a budget so that a flood of
    // made-up URLs cannot evict the payloads of real rollouts.
    if (!this.#unknownBudget.take(Date.now()).allowed) {
      this.#discardBody(req);
      this.metrics.quarantineSkipped.inc({ reason: "unknown_rollout" });
      this.#reject(q, 404, "unknown_rollout", message);
      return;
    }
    // An unknown rollout has no spec: the body limit is spec.traffic.maxBodyBytes's default.
    this.#continue(req, res);
    const read = await readBody(req, DEFAULT_TRAFFIC.maxBodyBytes);
    if (read.kind === "aborted") return;
    if (read.kind === "too_large") this.#discardBody(req);
    const stored = read.kind === "ok" ? this.#quarantine(q, "unknown_rollout", message, read.body) : this.#quarantine(q, "unknown_rollout", message, read.head, { declaredSize: declaredLength(req.headers), receivedBytes: read.size, complete: false });
    this.#reject(q, 404, "unknown_rollout", stored ? `${message}; the payload was quarantined for replay (airollout quarantine list)` : message);
  }

  /** A spec the gateway cannot use answers 503 with its problem (the controller reports it too). */
  #specValid(c: HookContext): boolean {
    if (!c.rollout.error) return true;
    this.#discardBody(c.req);
    return this.#reject(c, 503, c.rollout.egressDenied ? "egress_denied" : "spec_invalid", c.rollout.error, { "retry-after": "30" });
  }

  /** Rate limit by header first: refusing before reading the body is the cheap path under a flood. */
  #rateLimitByHeader(c: HookContext): boolean {
    const source = c.rollout.rateKey;
    if (source?.kind !== "header") return true;
    // Before the answer: a refused sender's body is drained (or its connection closed) as the answer goes out.
    return this.#allowRate(c, source, () => this.#discardBody(c.req));
  }

  /**
   * A declared Content-Length beyond maxBodyBytes is refused without reading the body: a sender
   * waiting for `100 Continue` is refused before it uploads; from one already uploading the
   * first bytes (up to QUARANTINED_BODY_HEAD, for HEAD_WAIT_MS at most) are kept for the
   * quarantine beside the declared size, and the rest is drained while the 413 goes out.
   */
  async #declaredSize(c: HookContext): Promise<boolean> {
    const max = c.rollout.traffic.maxBodyBytes;
    const declared = declaredLength(c.headers);
    if (declared === undefined || declared <= max) return true;
    let read: BodyResult = { kind: "too_large", head: EMPTY_BODY, size: 0 };
    if (!this.#awaitingContinue.has(c.req)) {
      read = await readBody(c.req, QUARANTINED_BODY_HEAD, HEAD_WAIT_MS);
      if (read.kind === "aborted") return this.#aborted(c);
      this.#discardBody(c.req);
    }
    const sizes = read.kind === "ok" ? { declaredSize: declared, receivedBytes: read.body.length, complete: true } : { declaredSize: declared, receivedBytes: read.size, complete: false };
    this.#quarantine(c, "too_large", `declared body of ${declared} bytes exceeds maxBodyBytes ${max}`, read.kind === "ok" ? read.body : read.head, sizes);
    return this.#reject(c, 413, "too_large", `body of ${declared} bytes exceeds the limit of ${max} bytes (spec.traffic.maxBodyBytes)`);
  }

  /** The rest of a refused request's body: drained, or (waiting for 100 Continue) never asked for. */
  #discardBody(req: IncomingMessage): void {
    discardBody(req, this.#awaitingContinue.has(req));
  }

  /** A sender that hung up before its body was complete: counted, nothing forwarded, no answer. */
  #aborted(c: HookContext): false {
    this.metrics.rejected.inc({ ...c.labels, reason: "client_aborted", code: "0" });
    c.log.info({ reason: "client_aborted" }, "sender closed the connection before the body was complete; nothing forwarded");
    return false;
  }

  /**
   * Reads the body up to maxBodyBytes (beyond it 413, the head quarantined); a sender that hangs
   * up gets nothing forwarded. The request's duration counts from the complete body.
   */
  async #receiveBody(c: HookContext): Promise<boolean> {
    const max = c.rollout.traffic.maxBodyBytes;
    this.#continue(c.req, c.res);
    const read = await readBody(c.req, max);
    if (read.kind === "aborted") return this.#aborted(c);
    if (read.kind === "too_large") {
      this.#discardBody(c.req);
      this.#quarantine(c, "too_large", `body exceeds maxBodyBytes ${max} (${read.size} bytes read when refused)`, read.head, { receivedBytes: read.size, complete: false });
      return this.#reject(c, 413, "too_large", `body exceeds the limit of ${max} bytes (spec.traffic.maxBodyBytes)`);
    }
    c.body = read.body;
    c.started = performance.now();
    return true;
  }

  /** spec.traffic.signature: the HMAC over the raw body must match, else 401 (quarantined). */
  async #verifySignature(c: HookContext): Promise<boolean> {
    const sig = c.rollout.traffic.signature;
    if (!sig) return true;
    const secret = await this.#signatureSecret(c, sig);
    if (!secret) return false;
    const headerName = (sig.header ?? DEFAULT_SIGNATURE_HEADER[sig.scheme]).toLowerCase();
    const given = headerValue(c.headers, headerName);
    const v = this.#verify(c, sig, secret, given);
    if (v === undefined) return false;
    if (v.ok) return true;
    this.#quarantine(c, "signature", `${headerName}: ${v.reason}`, c.body);
    return this.#reject(c, 401, "signature", `${headerName}: ${v.reason}`);
  }

  /** Checks the signature by the rollout's scheme; undefined after answering 503 for a Secret the scheme cannot use. */
  #verify(c: HookContext, sig: Signature, secret: Buffer, given: string | undefined): VerifyResult | undefined {
    const now = Date.now() / 1000;
    const tolerance = c.rollout.signatureToleranceSeconds;
    if (sig.scheme === "github") return verifyGithub(c.body, given, secret);
    if (sig.scheme === "stripe") return verifyStripe(c.body, given, secret, tolerance, now);
    let key: Buffer;
    try {
      key = standardWebhookKey(secret);
    } catch (err) {
      this.#reject(c, 503, "signature_secret", `cannot verify signatures: ${(err as Error).message} (spec.traffic.signature.secretRef ${sig.secretRef.name}/${sig.secretRef.key})`, { "retry-after": "10" });
      return undefined;
    }
    const headers = { id: headerValue(c.headers, STANDARD_ID_HEADER), timestamp: headerValue(c.headers, STANDARD_TIMESTAMP_HEADER), signature: given };
    return verifyStandard(c.body, headers, key, tolerance, now);
  }

  /** The signature Secret's key; undefined after answering 503 when it cannot be read. */
  async #signatureSecret(c: HookContext, sig: Signature): Promise<Buffer | undefined> {
    try {
      if (!this.#secrets) throw new SecretError("the gateway runs without a Kubernetes client and cannot read signature secrets", true);
      return await this.#secrets.get(c.rollout.namespace, sig.secretRef.name, sig.secretRef.key);
    } catch (err) {
      const message = err instanceof SecretError ? err.message : `reading the signature secret: ${(err as Error).message}`;
      // A configuration or API server problem, not the sender's: 503 makes it retry later.
      this.#reject(c, 503, "signature_secret", `cannot verify signatures: ${message} (spec.traffic.signature.secretRef)`, { "retry-after": "10" });
      return undefined;
    }
  }

  /**
   * Only bodies sent as they are (no Content-Encoding, or identity) are accepted (415,
   * quarantined): the gateway checks the bytes it received, while a backend that honours
   * Content-Encoding would read them decoded (or fail on them).
   */
  #contentEncoding(c: HookContext): boolean {
    const encoding = headerValue(c.headers, "content-encoding")?.trim().toLowerCase();
    if (encoding === undefined || encoding === "" || encoding === "identity") return true;
    const detail = `content-encoding ${JSON.stringify(encoding.slice(0, 64))} is not accepted`;
    this.#quarantine(c, "content_encoding", detail, c.body);
    return this.#reject(c, 415, "content_encoding", `${detail}: the gateway checks the body as sent and a backend would read it decoded; send it without Content-Encoding`);
  }

  /** Only JSON bodies are accepted (415, quarantined). */
  #contentType(c: HookContext): boolean {
    const contentType = headerValue(c.headers, "content-type");
    if (isJsonContentType(contentType)) return true;
    this.#quarantine(c, "content_type", `content-type ${JSON.stringify(contentType ?? "")} is not JSON`, c.body);
    return this.#reject(c, 415, "content_type", `content-type must be application/json (or application/*+json), got ${JSON.stringify(contentType ?? "(none)")}`);
  }

  /**
   * The body as text. Bytes that are not UTF-8 would be read by the gateway's checks as U+FFFD
   * while the backend gets the bytes themselves: 400 (quarantined) unless
   * spec.traffic.allowInvalidUtf8. Checked natively; the offset is found only for a refusal.
   */
  #decodeText(c: HookContext): boolean {
    if (isUtf8(c.body) || c.rollout.traffic.allowInvalidUtf8) {
      c.text = c.body.toString("utf8");
      return true;
    }
    const detail = `body is not valid UTF-8 (first bad byte at offset ${invalidUtf8Offset(c.body)})`;
    this.#quarantine(c, "invalid_utf8", detail, c.body);
    return this.#reject(c, 400, "invalid_utf8", `${detail}; spec.traffic.allowInvalidUtf8 lets such bodies through`);
  }

  /**
   * Parses the body into `payload`, after one bounded scan of its structure: nested deeper than
   * spec.traffic.maxJsonDepth (400 too_deep), not JSON (400 bad_json), or a key repeated in one
   * object (400 duplicate_key naming the path, unless spec.traffic.allowDuplicateKeys: JSON.parse
   * keeps the last value, a backend may keep the first). Each refusal is quarantined.
   */
  #parseJson(c: HookContext): boolean {
    const t = c.rollout.traffic;
    const problem = scanJsonStructure(c.text, { maxDepth: t.maxJsonDepth, duplicateKeys: !t.allowDuplicateKeys });
    if (problem?.kind === "too_deep") {
      const detail = `JSON nested deeper than ${problem.limit} levels at ${problem.path}`;
      this.#quarantine(c, "too_deep", detail, c.body);
      return this.#reject(c, 400, "too_deep", `${detail} (spec.traffic.maxJsonDepth)`);
    }
    try {
      c.payload = JSON.parse(c.text);
    } catch (err) {
      const detail = c.body.length === 0 ? "empty body" : (err as Error).message;
      this.#quarantine(c, "bad_json", detail, c.body);
      return this.#reject(c, 400, "bad_json", `body is not valid JSON: ${detail}`);
    }
    if (problem?.kind !== "duplicate_key") return true;
    const detail = `key ${JSON.stringify(problem.key)} appears more than once at ${problem.path}`;
    this.#quarantine(c, "duplicate_key", detail, c.body);
    return this.#reject(c, 400, "duplicate_key", `${detail}; a backend may read another value than the gateway checked (spec.traffic.allowDuplicateKeys lets such bodies through)`);
  }

  /** spec.traffic.payloadSchema: 422 (quarantined) naming the failing paths; 503 while the schema does not compile. */
  #payloadSchema(c: HookContext): boolean {
    const r = c.rollout;
    if (r.payloadSchemaError) return this.#reject(c, 503, "schema_invalid", r.payloadSchemaError, { "retry-after": "30" });
    if (!r.payloadSchema) return true;
    const errors = r.payloadSchema.validate(c.payload);
    if (errors.length === 0) return true;
    const detail = errors.join("; ");
    this.#quarantine(c, "schema", detail, c.body);
    return this.#reject(c, 422, "schema", `payload does not match spec.traffic.payloadSchema: ${detail}`);
  }

  /** Rate limit by a JSON field of the payload. */
  #rateLimitByField(c: HookContext): boolean {
    const source = c.rollout.rateKey;
    return source?.kind !== "json" || this.#allowRate(c, source);
  }

  /** Takes a token from the tenant's bucket; false after answering 429 (`beforeRefusal` runs first). */
  #allowRate(c: HookContext, source: KeySource, beforeRefusal?: () => void): boolean {
    const limiter = c.rollout.state.limiter;
    if (!limiter) return true;
    // Requests without the tenant key share one bucket: anonymous traffic is limited too.
    const tenant = extractKey(source, c.headers, c.payload) ?? "";
    const d = limiter.take(tenant, Date.now());
    if (d.allowed) return true;
    beforeRefusal?.();
    return this.#reject(c, 429, "rate_limited", `tenant ${JSON.stringify(tenant)} exceeded ${limiter.ratePerSecond} requests/s (burst ${limiter.burst}); retry after ${d.retryAfterSeconds}s`, { "retry-after": String(d.retryAfterSeconds) });
  }

  /**
   * spec.traffic.idempotency: a repeated key is answered from the store (409 while its first
   * request is in flight past the wait, 422 with another payload); the first one claims the key
   * and goes on.
   */
  async #idempotency(c: HookContext): Promise<boolean> {
    const idem = c.rollout.traffic.idempotency;
    const header = idempotencyHeader(c.rollout.traffic);
    const idemKey = idem ? headerValue(c.headers, header.toLowerCase()) : undefined;
    if (!idem || idemKey === undefined) return true;
    if (!IDEMPOTENCY_KEY.test(idemKey)) return this.#reject(c, 400, "idempotency_key", `${header} must be 1-255 printable ASCII characters without spaces`);
    const store = this.#idempotencyStore(c.rollout);
    if (typeof store === "string") return this.#reject(c, 503, "idempotency_store", store, { "retry-after": "10" });
    const key = `${c.rollout.key}/${idemKey}`;
    const outcome = await this.#claim(c, store, key);
    if (outcome.state === "error") return this.#reject(c, 503, "idempotency_store", `idempotency store unavailable: ${outcome.message}`, { "retry-after": "2" });
    if (outcome.state === "mismatch") return this.#reject(c, 422, "idempotency_mismatch", `${header} ${JSON.stringify(idemKey)} was already used with a different payload`);
    if (outcome.state === "pending") return this.#reject(c, 409, "idempotency_in_progress", `a request with ${header} ${JSON.stringify(idemKey)} is still in progress`, { "retry-after": "1" });
    if (outcome.state === "done") return this.#replay(c, outcome.response);
    c.claim = { store, key, token: outcome.token };
    return true;
  }

  /** A repeat of an answered idempotency key: the stored answer, marked as a replay. */
  #replay(c: HookContext, stored: StoredResponse): false {
    this.metrics.idempotentReplays.inc(c.labels);
    c.log.info({ status: stored.status }, "repeated idempotency key answered from the store");
    const h = { ...stored.headers, "x-request-id": c.requestId, "x-airollout-idempotent-replay": "true", "content-length": String(stored.body.length) };
    c.res.writeHead(stored.status, h);
    c.res.end(stored.body);
    return false;
  }

  /**
   * Split by weight (sticky by key), with the target's circuit permit: an unavailable or open
   * candidate falls back to the stable.
   */
  #split(c: HookContext): void {
    const r = c.rollout;
    const stickyKey = r.sticky ? extractKey(r.sticky, c.headers, c.payload) : undefined;
    const chosen: Role = chooseRole(r.weight, r.seed, stickyKey);
    c.target = chosen === "candidate" ? r.candidate : r.stable;
    c.permit = permitFor(c.target);
    if (chosen === "candidate" && !c.permit.allowed) {
      c.log.info({ candidate: c.target.version, reason: c.target.backend ? "circuit open" : c.target.unavailable }, "candidate unavailable; answering from the stable");
      c.target = r.stable;
      c.permit = permitFor(c.target);
    }
    c.versionLabels = { ...c.labels, version: c.target.version };
  }

  /** The chosen version needs a backend (else 503 no_backend) and a permit (else 503 circuit_open). */
  async #circuitBreaker(c: HookContext): Promise<boolean> {
    const { target, permit } = c;
    if (target.backend && permit.allowed) return true;
    await this.#release(c);
    if (!target.backend) return this.#reject(c, 503, "no_backend", target.unavailable ?? `no backend for version ${target.version}`, { "retry-after": "10" });
    this.metrics.requests.inc({ ...c.versionLabels, code: "503" });
    const retryIn = Math.ceil(permit.retryInMs / 1000);
    return this.#reject(c, 503, "circuit_open", `circuit breaker of version ${target.version} is open after consecutive failures; next probe in ${retryIn}s`, { "retry-after": String(Math.max(1, retryIn)) });
  }

  /**
   * Forwards to the chosen version and tells its circuit breaker how it went; a failed exchange
   * answers 502 (504 on timeout) and releases the idempotency key.
   */
  async #forward(c: HookContext): Promise<UpstreamResponse | undefined> {
    const { target, permit } = c;
    c.forwarded = forwardHeaders(c.req, c.requestId);
    const slot = await this.#slots.acquire(`${c.rollout.key}/${target.version}/${target.backend!.url}`, slotLimits(c.rollout.traffic));
    if (!slot.ok) {
      // Shed, not failed: the backend was never asked, so its circuit breaker hears nothing.
      target.breaker?.release(permit.probe);
      await this.#release(c);
      this.metrics.requests.inc({ ...c.versionLabels, code: "503" });
      this.#reject(c, 503, "overloaded", `version ${target.version}: ${slot.message} (spec.traffic.concurrency)`, { "retry-after": "1" });
      return undefined;
    }
    let answer: UpstreamResponse;
    try {
      // The circuit-breaker stage answered every target without a backend.
      answer = await forward({ backend: target.backend!, method: c.method, path: c.path, headers: c.forwarded, body: c.body, timeoutMs: c.rollout.timeoutMs, maxResponseBytes: this.#maxResponseBytes, agents: this.#primaryAgents });
    } catch (err) {
      slot.release();
      const e = err instanceof UpstreamError ? err : new UpstreamError("connect", String(err));
      // An address the egress policy refused is the admin's decision, not the backend failing.
      if (e.kind === "egress_denied") target.breaker?.release(permit.probe);
      else target.breaker?.onFailure(Date.now(), permit.probe);
      await this.#release(c);
      const { status, reason } = failureAnswer(e.kind);
      this.metrics.requests.inc({ ...c.versionLabels, code: String(status) });
      this.metrics.duration.observe(c.versionLabels, (performance.now() - c.started) / 1000);
      c.log.warn({ version: target.version, kind: e.kind, err: e.message }, "backend failed");
      this.#reject(c, status, reason, `version ${target.version}: ${e.message}`);
      return undefined;
    }
    slot.release();
    if (answer.status >= 500) target.breaker?.onFailure(Date.now(), permit.probe);
    else target.breaker?.onSuccess(permit.probe);
    return answer;
  }

  /** Sends the version's answer to the sender and counts it; returns the headers sent. */
  #answer(c: HookContext, answer: UpstreamResponse): Record<string, string> {
    const headers = answerHeaders(answer.headers);
    headers["x-request-id"] = c.requestId;
    headers["x-airollout-version"] = c.target.version;
    headers["content-length"] = String(answer.body.length);
    c.res.writeHead(answer.status, headers);
    c.res.end(answer.body);
    this.metrics.requests.inc({ ...c.versionLabels, code: String(answer.status) });
    this.metrics.duration.observe(c.versionLabels, (performance.now() - c.started) / 1000);
    return headers;
  }

  /** Requests the stable answered are mirrored while shadowing is on; the copy starts only once the answer is out. */
  #mirrorAfterAnswer(c: HookContext, answer: UpstreamResponse): void {
    if (!c.rollout.shadowOn || c.target.role !== "stable") return;
    // A compact copy: the shadow job must not keep the request and response objects alive.
    const copy: ShadowCopy = { rollout: c.rollout, method: c.method, path: c.path, headers: c.forwarded, body: c.body, primary: answer, primaryStatus: answer.status, requestId: c.requestId, log: c.log };
    const mirror = () => this.#afterAnswer(copy);
    if (c.res.writableFinished) mirror();
    else c.res.once("finish", mirror);
  }

  /** An accepted webhook may become a masked fixture (fixtures.ts); stored once the answer is out. */
  #keepFixture(c: HookContext, answer: UpstreamResponse): void {
    const w = { rollout: c.rollout, method: c.method, path: c.path, headers: c.headers, payload: c.payload, version: c.target.version, status: answer.status };
    const keep = () => recordFixture(this.fixtures, this.metrics, w, c.log);
    if (c.res.writableFinished) keep();
    else c.res.once("finish", keep);
  }

  /** Tokens and cost of the answer, where spec.traffic.usage says the backend reports them. */
  #countUsage(c: HookContext, answer: UpstreamResponse): void {
    const usage = extractUsage(answer.headers, answer.body, c.rollout.usage);
    if (usage.tokens !== undefined) this.metrics.tokens.inc(c.versionLabels, usage.tokens);
    if (usage.cost !== undefined) this.metrics.cost.inc(c.versionLabels, usage.cost);
    const signals = c.rollout.judge;
    // The latency is read just after the answer went out, as #answer's duration histogram does.
    if (signals) recordJudgeSample(this.metrics.judgeSample, signals, { labels: c.versionLabels, seconds: (performance.now() - c.started) / 1000, usage, headers: answer.headers, body: answer.body });
  }

  /** An answer below 500 is stored for the key's repeats; a 5xx releases the key so a retry is forwarded again. */
  async #settleIdempotency(c: HookContext, answer: UpstreamResponse, headers: Record<string, string>): Promise<void> {
    const claim = c.claim;
    if (!claim) return;
    if (answer.status >= 500) return this.#release(c);
    const stored: StoredResponse = { status: answer.status, headers, body: answer.body };
    await claim.store.complete(claim.key, claim.token, stored, c.rollout.idempotencyTtlMs).catch((err: unknown) => c.log.warn({ err: (err as Error).message }, "could not store the answer of an idempotency key; a repeat will be forwarded again"));
  }

  #idempotencyStore(r: Rollout): IdempotencyStore | string {
    const idem = r.traffic.idempotency!;
    if (idem.store === "sqlite") {
      this.#sqliteIdempotency ??= new SqliteIdempotencyStore(join(this.#o.stateDir, "idempotency.db"));
      return this.#sqliteIdempotency;
    }
    if (!idem.redisUrl) return "spec.traffic.idempotency.redisUrl is required when store is redis";
    let s = this.#redisIdempotency.get(idem.redisUrl);
    if (!s) {
      s = new RedisIdempotencyStore(idem.redisUrl, this.log.child({ redis: redactUrl(idem.redisUrl) }));
      this.#redisIdempotency.set(idem.redisUrl, s);
    }
    return s;
  }

  /**
   * Claims an idempotency key for this request's payload; while another request (or replica)
   * holds it, polls until it is answered, released (then this request forwards) or
   * traffic.timeout + 2 s pass. A claim lives traffic.timeout + 5 s if this gateway dies.
   */
  async #claim(c: HookContext, store: IdempotencyStore, key: string): Promise<ClaimResult | { state: "error"; message: string }> {
    const fp = fingerprint(c.method, c.path, c.body);
    const pendingTtlMs = c.rollout.timeoutMs + 5000;
    const deadline = Date.now() + c.rollout.timeoutMs + 2000;
    let delay = 10;
    for (;;) {
      let res;
      try {
        res = await store.claim(key, fp, pendingTtlMs);
      } catch (err) {
        c.log.warn({ err: (err as Error).message }, "idempotency store failed");
        return { state: "error", message: (err as Error).message };
      }
      if (res.state !== "pending" || Date.now() >= deadline) return res;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 100);
    }
  }

  /** Gives up this request's idempotency key, if it holds one. */
  async #release(c: HookContext): Promise<void> {
    const claim = c.claim;
    if (!claim) return;
    await claim.store.release(claim.key, claim.token).catch((err: unknown) => c.log.warn({ err: (err as Error).message }, "could not release an idempotency key; it expires on its own"));
  }

  /** Decides whether to mirror this request and queues the shadow job. Never throws. */
  #afterAnswer(s: ShadowCopy): void {
    const r = s.rollout;
    try {
      if (!r.shadow.methods.includes(s.method)) return;
      if (r.shadow.sampleRate < 1 && Math.random() >= r.shadow.sampleRate) return;
      this.#book.sampled(r);
      const labels = { rollout: r.name, namespace: r.namespace };
      if (r.rulesError) {
        this.metrics.mirrorDropped.inc({ ...labels, reason: "rules_invalid" });
        return;
      }
      const accepted = r.state.mirror.submit(() => this.#shadowJob(s));
      if (!accepted) {
        this.metrics.mirrorDropped.inc({ ...labels, reason: "queue_full" });
        s.log.debug({ reason: "queue_full" }, "shadow copy dropped");
      }
    } catch (err) {
      s.log.error({ err: (err as Error).message }, "mirroring failed");
    }
  }

  /**
   * One mirrored request: the shadow's circuit permit here, the exchanges and the diff on a
   * shadow worker (shadow.ts), the breaker told how the shadow answered, then the result
   * recorded in the shadow book (statistics, metrics, samples).
   */
  async #shadowJob(s: ShadowCopy): Promise<void> {
    const r = s.rollout;
    const permit = this.#shadowPermit(s);
    const shadowBackend = permit?.allowed ? r.shadowTarget.backend : undefined;
    if (!shadowBackend && !r.noise) return;
    const result = await this.#shadowRunner.run(this.#shadowJobOf(s, shadowBackend), r.shadow.compare ?? {});
    if (result.shadow && permit) tellBreaker(r.shadowTarget, permit, result.shadow);
    this.#book.record(r, s, result);
  }

  /** The shadow target's permit; undefined without a backend. Copies not sent are counted as drops. */
  #shadowPermit(s: ShadowCopy): CircuitPermit | undefined {
    const target = s.rollout.shadowTarget;
    if (!target.backend) {
      this.#book.dropped(s.rollout, "shadow", "no_backend", s.log);
      return undefined;
    }
    const permit = target.breaker?.allow(Date.now()) ?? ALWAYS_PERMIT;
    if (!permit.allowed) this.#book.dropped(s.rollout, "shadow", "circuit_open", s.log);
    return permit;
  }

  /** The job handed to a shadow runner: copies of the bodies, the shadow mark on the headers. */
  #shadowJobOf(s: ShadowCopy, shadowBackend: Backend | undefined): ShadowJob {
    const r = s.rollout;
    const headers: OutgoingHttpHeaders = { ...s.headers };
    if (r.shadow.markHeader) headers[r.shadow.markHeader.toLowerCase()] = "true";
    return {
      rulesKey: r.rulesKey,
      method: s.method,
      path: s.path,
      headers,
      // Exact-size copies: they are moved to the worker, and a pooled Buffer's slab must not be.
      body: new Uint8Array(s.body),
      timeoutMs: r.shadowTimeoutMs,
      maxResponseBytes: this.#maxResponseBytes,
      primary: { status: s.primary.status, headers: s.primary.headers, body: new Uint8Array(s.primary.body) },
      shadow: shadowBackend,
      noise: r.noise,
      answers: r.judge?.mirrored === true,
    };
  }
}
