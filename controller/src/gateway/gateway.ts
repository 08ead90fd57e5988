/**
 * The webhook gateway: receives webhooks at POST /hooks/<namespace>/<rollout>/<path>, applies
 * the rollout's guardrails, splits them between stable and candidate by status.canaryWeight,
 * answers with the primary's response, and afterwards (fire-and-forget, bounded, timed out)
 * mirrors a sample to the candidate's shadow and a second stable, diffing the answers.
 *
 * Everything it knows about a rollout comes from the watched AIRollout (spec + status).
 *
 * Request pipeline, in order (each step answers a clear 4xx/5xx with a reason and counts it):
 *   unknown rollout 404 -> rate limit by header 429 -> declared size 413 -> body read 413 ->
 *   signature 401 -> content type 415 -> JSON 400 -> payload schema 422 -> rate limit by JSON
 *   field 429 -> idempotency (stored answer / wait / 409 / 422) -> split -> circuit breaker ->
 *   forward -> answer -> (after the answer) mirror.
 * Refused payloads that a sender would not resend (413, 401, 415, 400, 422) are quarantined.
 */
import express, { type NextFunction, type Request, type Response } from "express";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import type { AIRollout } from "../api/schema.ts";
import { maskPII, SampleStore } from "../diff/index.ts";
import type { KubeClient } from "../kube/client.ts";
import { rolloutsPath } from "../api/paths.ts";
import { Informer } from "../kube/informer.ts";
import { chooseRole, extractKey, type KeySource, type Role } from "./hash.ts";
import { SqliteIdempotencyStore, type IdempotencyStore, type StoredResponse } from "./idempotency.ts";
import { createGatewayMetrics, type GatewayMetrics, type RolloutStats } from "./metrics.ts";
import { acceptRequestId, extractUsage, fingerprint, headerValue, isJsonContentType } from "./payload.ts";
import { QuarantineStore, type QuarantineReason } from "./quarantine.ts";
import { TokenBucket } from "./ratelimit.ts";
import { RedisIdempotencyStore, redactUrl } from "./redis-idempotency.ts";
import { parseHookUrl, type HookRoute } from "./route.ts";
import { compileRollout, DEFAULT_TRAFFIC, type CompileProblem, type Rollout, type Target } from "./rollouts.ts";
import { backendVerdict, InlineShadowRunner, type Mismatch, type ShadowRunner } from "./shadow.ts";
import { ShadowWorkerPool } from "./shadow-pool.ts";
import { SecretCache, SecretError } from "./secrets.ts";
import { DEFAULT_SIGNATURE_HEADER, verifyGithub, verifyStripe } from "./signature.ts";
import { createAgents, forward, HOP_BY_HOP, UpstreamError, type Agents, type UpstreamResponse } from "./upstream.ts";

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
  /** Cache lifetime of signature secrets (default 30 s). */
  secretTtlMs?: number;
  /**
   * Worker threads for shadow work (exchanges with the shadow and noise backends, decoding,
   * diffing). Default: the cores beyond the first, 1 to 4. 0 runs it on the main thread.
   */
  shadowWorkers?: number;
  /** Nice steps the shadow worker threads run below the gateway on Linux (default 10; 0 = equal). */
  shadowNice?: number;
}

/** The default number of shadow workers: the cores beyond the one serving requests, 1 to 4. */
export function defaultShadowWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

/** A stored diff sample: every value that came from a request or answer is masked text. */
export interface DiffSample {
  time: string;
  requestId: string;
  path: string;
  stable: { version: string; status: number; body: string };
  candidate: { version: string; status: number; body: string };
  mismatches: { path: string; concretePath: string; rule: string; reason: string }[];
}

/** A reason the gateway refused a request: the `error` field of its JSON answer and a metric label. */
type RejectReason =
  | "not_synced"
  | "unknown_rollout"
  | "spec_invalid"
  | "rate_limited"
  | "too_large"
  | "signature"
  | "signature_secret"
  | "content_type"
  | "bad_json"
  | "schema"
  | "schema_invalid"
  | "idempotency_key"
  | "idempotency_mismatch"
  | "idempotency_in_progress"
  | "idempotency_store"
  | "no_backend"
  | "circuit_open"
  | "backend_timeout"
  | "backend_error"
  | "client_aborted";

const QUARANTINED_BODY_HEAD = 64 * 1024;
const MAX_FIELD_LABELS = 100;
const OTHER_FIELD = "$(other)";
const UNKNOWN = "(unknown)";
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
/** Webhooks to unknown rollouts quarantined: a burst, then this many per second. */
const UNKNOWN_QUARANTINE_BURST = 100;
const UNKNOWN_QUARANTINE_PER_SECOND = 5;

type BodyResult = { kind: "ok"; body: Buffer } | { kind: "too_large"; head: Buffer; size: number } | { kind: "aborted" };

/** Reads a request body up to `limit` bytes; beyond it keeps a head for the quarantine and drains the rest. */
function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (r: BodyResult) => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (settled) return;
      if (size > limit) {
        const head = Buffer.concat(chunks).subarray(0, QUARANTINED_BODY_HEAD);
        chunks.length = 0;
        settle({ kind: "too_large", head, size });
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => settle({ kind: "ok", body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }));
    req.on("error", () => settle({ kind: "aborted" }));
    req.on("close", () => {
      if (!req.complete) settle({ kind: "aborted" });
    });
  });
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

/** What /metrics reports of one rollout at scrape time: shadow queue and shadow evidence. */
function rolloutStats(r: Rollout): RolloutStats {
  const t = r.state.tracker.summary(0);
  return {
    rollout: r.name,
    namespace: r.namespace,
    running: r.state.mirror.running,
    queued: r.state.mirror.queued,
    shadow: { revision: r.revision, compared: t.compared, noiseCompared: t.noiseCompared, mismatched: t.mismatched, judged: t.ready },
  };
}

export class Gateway {
  readonly app: express.Express;
  readonly metrics: GatewayMetrics;
  readonly quarantine: QuarantineStore;
  readonly log: Logger;
  readonly samples = new SampleStore<DiffSample>({ capacity: 100 });
  #o: GatewayOptions;
  #rollouts = new Map<string, Rollout>();
  #informer: Informer<AIRollout> | undefined;
  #secrets: SecretCache | undefined;
  #primaryAgents: Agents;
  #shadowRunner: ShadowRunner;
  #sqliteIdempotency: SqliteIdempotencyStore | undefined;
  #redisIdempotency = new Map<string, RedisIdempotencyStore>();
  #problemsReported = new Map<string, string>();
  /** Quarantine budget for webhooks to rollouts this gateway does not know. */
  #unknownBudget = new TokenBucket(UNKNOWN_QUARANTINE_PER_SECOND, UNKNOWN_QUARANTINE_BURST, Date.now());
  #synced: boolean;
  #servers: Server[] = [];
  #stopping = false;

  constructor(o: GatewayOptions) {
    this.#o = o;
    this.log = o.log;
    this.metrics = o.metrics ?? createGatewayMetrics(() => [...this.#rollouts.values()].map(rolloutStats));
    this.quarantine = new QuarantineStore(join(o.stateDir, "quarantine.db"), { maxRows: o.quarantineMaxRows });
    this.#primaryAgents = createAgents(o.maxSockets ?? 512);
    // Shadow exchanges have socket pools of their own (per worker): a hung shadow must not take
    // sockets the primary path needs.
    const workers = o.shadowWorkers ?? defaultShadowWorkers();
    this.#shadowRunner = workers === 0 ? new InlineShadowRunner(createAgents(256)) : new ShadowWorkerPool(workers, o.log.child({ component: "shadow-workers" }), { nice: o.shadowNice });
    this.#secrets = o.client ? new SecretCache(o.client, { ttlMs: o.secretTtlMs }) : undefined;
    this.#synced = !o.client;
    if (o.client) {
      this.#informer = new Informer<AIRollout>(
        o.client,
        rolloutsPath(o.namespace),
        { onUpsert: (obj) => this.upsert(obj), onDelete: (obj) => this.remove(obj.metadata.namespace, obj.metadata.name), onSync: () => (this.#synced = true) },
        o.log.child({ informer: "airollouts" }),
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
      req.resume();
      this.metrics.rejected.inc({ rollout: UNKNOWN, namespace: UNKNOWN, reason: "bad_request", code: "400" });
      this.#sendJson(res, 400, { error: "bad_request", message: route.error });
      return;
    }
    this.#hook(req, res, route).catch((err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      this.metrics.rejected.inc({ rollout: UNKNOWN, namespace: UNKNOWN, reason: "internal", code: "500" });
      this.log.error({ err: e.message, stack: e.stack, path: url }, "unexpected error while handling a webhook");
      if (res.headersSent) res.destroy();
      else this.#sendJson(res, 500, { error: "internal", message: "internal error; see the gateway log" });
    });
  };

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
    const r = compileRollout(obj, this.#rollouts.get(key), this.metrics, problems);
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
    this.samples.delete(key);
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
    await Promise.all([...this.#rollouts.values()].map((r) => r.state.mirror.idle()));
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
      res.setHeader("allow", "POST");
      this.#sendJson(res, 405, { error: "method_not_allowed", message: `webhooks are POSTed; ${req.method} is not accepted` });
    });
    app.use((req: Request, res: Response) => {
      this.#sendJson(res, 404, { error: "not_found", message: `no route for ${req.method} ${req.path}; webhooks go to POST /hooks/<namespace>/<rollout>/<path>` });
    });
    // Express answers its own parse errors (a malformed %-escape in the path) through here.
    app.use((err: Error & { status?: number; statusCode?: number }, req: Request, res: Response, _next: NextFunction) => {
      const status = err.status ?? err.statusCode ?? 500;
      this.metrics.rejected.inc({ rollout: UNKNOWN, namespace: UNKNOWN, reason: status < 500 ? "bad_request" : "internal", code: String(status) });
      if (status >= 500) this.log.error({ err: err.message, stack: err.stack, path: req.path }, "unexpected error while handling a request");
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.#sendJson(res, status >= 400 && status < 500 ? status : 500, { error: status < 500 ? "bad_request" : "internal", message: status < 500 ? err.message : "internal error; see the gateway log" });
    });
    return app;
  }

  #sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { ...headers, "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(text)) });
    res.end(text);
  }

  #diffs(req: Request, res: Response): void {
    const namespace = String(req.params.namespace);
    const name = String(req.params.name);
    const r = this.#rollouts.get(`${namespace}/${name}`);
    if (!r) {
      this.#sendJson(res, 404, { error: "unknown_rollout", message: `no AIRollout ${namespace}/${name} is watched by this gateway` });
      return;
    }
    const limitParam = new URL(req.originalUrl, "http://x").searchParams.get("limit");
    const limit = limitParam === null ? undefined : Number(limitParam);
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      this.#sendJson(res, 400, { error: "bad_request", message: `limit=${JSON.stringify(limitParam)} is not a non-negative integer` });
      return;
    }
    const summary = r.state.tracker.summary(20);
    this.#sendJson(res, 200, {
      namespace,
      name,
      stable: r.stable.version,
      candidate: r.candidate.version,
      shadowEnabled: r.shadowOn,
      canaryWeight: r.weight,
      summary,
      samples: this.samples.list(r.key, limit),
      evicted: this.samples.evicted(r.key),
    });
  }

  #reject(res: ServerResponse, r: Rollout | undefined, labels: { rollout: string; namespace: string }, log: Logger, status: number, reason: RejectReason, message: string, headers: Record<string, string> = {}): void {
    this.metrics.rejected.inc({ ...labels, reason, code: String(status) });
    // Messages can quote the payload (schema errors): the log gets the masked text.
    log.info({ status, reason, detail: maskPII(message, r?.masks ?? []) }, "request refused");
    const requestId = String(res.getHeader("x-request-id") ?? "");
    this.#sendJson(res, status, { error: reason, message, requestId }, headers);
  }

  /**
   * Stores a refused webhook. `target` is the rollout the URL named; `labels` its metric labels
   * ("(unknown)" for rollouts not watched: URL text never becomes a label). True when stored.
   */
  #quarantine(target: { namespace: string; name: string }, labels: { rollout: string; namespace: string }, req: IncomingMessage, log: Logger, reason: QuarantineReason, detail: string, path: string, body: Buffer, bodySize: number, requestId: string): boolean {
    try {
      const id = this.quarantine.add({ namespace: target.namespace, name: target.name, reason, detail, method: req.method ?? "POST", path, headers: req.headers, body, bodySize, requestId });
      this.metrics.quarantined.inc({ ...labels, reason });
      log.info({ quarantineId: id, reason }, "payload quarantined");
      return true;
    } catch (err) {
      // The sender still gets its 4xx; the loss is loud, not silent.
      log.error({ err: (err as Error).message, reason }, "could not store a refused payload in the quarantine");
      return false;
    }
  }

  async #hook(req: IncomingMessage, res: ServerResponse, route: HookRoute): Promise<void> {
    const requestId = acceptRequestId(req.headers["x-request-id"]);
    res.setHeader("x-request-id", requestId);
    const { namespace, name, path } = route;
    const method = "POST";
    const key = `${namespace}/${name}`;
    const log = this.log.child({ requestId, namespace, name, rollout: key });

    const r = this.#rollouts.get(key);
    if (!r) {
      const unknown = { rollout: UNKNOWN, namespace: UNKNOWN };
      if (!this.#synced) {
        req.resume();
        return this.#reject(res, undefined, unknown, log, 503, "not_synced", "the gateway has not listed AIRollouts yet; retry shortly", { "retry-after": "1" });
      }
      const message = `no AIRollout ${key} is watched by this gateway`;
      // Most senders do not resend after a 4xx: the webhook (sent before its AIRollout was
      // created, or to a renamed one) is kept for replay, within a budget so that a flood of
      // made-up URLs cannot evict the payloads of real rollouts.
      if (!this.#unknownBudget.take(Date.now()).allowed) {
        req.resume();
        this.metrics.quarantineSkipped.inc({ reason: "unknown_rollout" });
        return this.#reject(res, undefined, unknown, log, 404, "unknown_rollout", message);
      }
      // An unknown rollout has no spec: the body limit is spec.traffic.maxBodyBytes's default.
      const read = await readBody(req, DEFAULT_TRAFFIC.maxBodyBytes);
      if (read.kind === "aborted") return;
      if (read.kind === "too_large") {
        res.setHeader("connection", "close");
        req.resume();
      }
      const stored = this.#quarantine({ namespace, name }, unknown, req, log, "unknown_rollout", message, path, read.kind === "ok" ? read.body : read.head, read.kind === "ok" ? read.body.length : read.size, requestId);
      return this.#reject(res, undefined, unknown, log, 404, "unknown_rollout", stored ? `${message}; the payload was quarantined for replay (airollout quarantine list)` : message);
    }
    const labels = { rollout: r.name, namespace: r.namespace };
    if (r.error) {
      req.resume();
      return this.#reject(res, r, labels, log, 503, "spec_invalid", r.error, { "retry-after": "30" });
    }
    const t = r.traffic;

    // Rate limit by header first: refusing before reading the body is the cheap path under a flood.
    if (r.rateKey?.kind === "header" && !this.#allowRate(res, r, r.rateKey, req.headers, undefined, labels, log)) {
      req.resume();
      return;
    }

    const declared = Number(headerValue(req.headers, "content-length") ?? "0");
    if (Number.isFinite(declared) && declared > t.maxBodyBytes) {
      res.setHeader("connection", "close");
      req.resume();
      this.#quarantine(r, labels, req, log, "too_large", `declared body of ${declared} bytes exceeds maxBodyBytes ${t.maxBodyBytes}`, path, Buffer.alloc(0), declared, requestId);
      return this.#reject(res, r, labels, log, 413, "too_large", `body of ${declared} bytes exceeds the limit of ${t.maxBodyBytes} bytes (spec.traffic.maxBodyBytes)`);
    }
    const read = await readBody(req, t.maxBodyBytes);
    if (read.kind === "aborted") {
      this.metrics.rejected.inc({ ...labels, reason: "client_aborted", code: "0" });
      log.info({ reason: "client_aborted" }, "sender closed the connection before the body was complete; nothing forwarded");
      return;
    }
    if (read.kind === "too_large") {
      res.setHeader("connection", "close");
      req.resume();
      this.#quarantine(r, labels, req, log, "too_large", `body exceeds maxBodyBytes ${t.maxBodyBytes}`, path, read.head, read.size, requestId);
      return this.#reject(res, r, labels, log, 413, "too_large", `body exceeds the limit of ${t.maxBodyBytes} bytes (spec.traffic.maxBodyBytes)`);
    }
    const body = read.body;
    const started = performance.now();

    const sig = t.signature;
    if (sig) {
      let secret: Buffer;
      try {
        if (!this.#secrets) throw new SecretError("the gateway runs without a Kubernetes client and cannot read signature secrets", true);
        secret = await this.#secrets.get(r.namespace, sig.secretRef.name, sig.secretRef.key);
      } catch (err) {
        const message = err instanceof SecretError ? err.message : `reading the signature secret: ${(err as Error).message}`;
        // A configuration or API server problem, not the sender's: 503 makes it retry later.
        return this.#reject(res, r, labels, log, 503, "signature_secret", `cannot verify signatures: ${message} (spec.traffic.signature.secretRef)`, { "retry-after": "10" });
      }
      const headerName = (sig.header ?? DEFAULT_SIGNATURE_HEADER[sig.scheme]).toLowerCase();
      const given = headerValue(req.headers, headerName);
      const v = sig.scheme === "github" ? verifyGithub(body, given, secret) : verifyStripe(body, given, secret, r.signatureToleranceSeconds, Date.now() / 1000);
      if (!v.ok) {
        this.#quarantine(r, labels, req, log, "signature", `${headerName}: ${v.reason}`, path, body, body.length, requestId);
        return this.#reject(res, r, labels, log, 401, "signature", `${headerName}: ${v.reason}`);
      }
    }

    const contentType = headerValue(req.headers, "content-type");
    if (!isJsonContentType(contentType)) {
      this.#quarantine(r, labels, req, log, "content_type", `content-type ${JSON.stringify(contentType ?? "")} is not JSON`, path, body, body.length, requestId);
      return this.#reject(res, r, labels, log, 415, "content_type", `content-type must be application/json (or application/*+json), got ${JSON.stringify(contentType ?? "(none)")}`);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(body.toString("utf8"));
    } catch (err) {
      const detail = body.length === 0 ? "empty body" : (err as Error).message;
      this.#quarantine(r, labels, req, log, "bad_json", detail, path, body, body.length, requestId);
      return this.#reject(res, r, labels, log, 400, "bad_json", `body is not valid JSON: ${detail}`);
    }
    if (r.payloadSchemaError) return this.#reject(res, r, labels, log, 503, "schema_invalid", r.payloadSchemaError, { "retry-after": "30" });
    if (r.payloadSchema) {
      const errors = r.payloadSchema.validate(payload);
      if (errors.length > 0) {
        const detail = errors.join("; ");
        this.#quarantine(r, labels, req, log, "schema", detail, path, body, body.length, requestId);
        return this.#reject(res, r, labels, log, 422, "schema", `payload does not match spec.traffic.payloadSchema: ${detail}`);
      }
    }
    if (r.rateKey?.kind === "json" && !this.#allowRate(res, r, r.rateKey, req.headers, payload, labels, log)) return;

    // Idempotency: a repeated key is answered from the store; the first one forwards.
    const idem = t.idempotency;
    let claim: { store: IdempotencyStore; key: string; token: string } | undefined;
    if (idem) {
      const idemKey = headerValue(req.headers, idem.header.toLowerCase());
      if (idemKey !== undefined) {
        if (!IDEMPOTENCY_KEY.test(idemKey)) return this.#reject(res, r, labels, log, 400, "idempotency_key", `${idem.header} must be 1-255 printable ASCII characters without spaces`);
        const store = this.#idempotencyStore(r);
        if (typeof store === "string") return this.#reject(res, r, labels, log, 503, "idempotency_store", store, { "retry-after": "10" });
        const outcome = await this.#claim(store, `${r.key}/${idemKey}`, fingerprint(method, path, body), r.timeoutMs + 5000, r.timeoutMs + 2000, log);
        if (outcome.state === "error") return this.#reject(res, r, labels, log, 503, "idempotency_store", `idempotency store unavailable: ${outcome.message}`, { "retry-after": "2" });
        if (outcome.state === "mismatch") return this.#reject(res, r, labels, log, 422, "idempotency_mismatch", `${idem.header} ${JSON.stringify(idemKey)} was already used with a different payload`);
        if (outcome.state === "pending") return this.#reject(res, r, labels, log, 409, "idempotency_in_progress", `a request with ${idem.header} ${JSON.stringify(idemKey)} is still in progress`, { "retry-after": "1" });
        if (outcome.state === "done") {
          this.metrics.idempotentReplays.inc(labels);
          log.info({ status: outcome.response.status }, "repeated idempotency key answered from the store");
          const h = { ...outcome.response.headers, "x-request-id": requestId, "x-airollout-idempotent-replay": "true", "content-length": String(outcome.response.body.length) };
          res.writeHead(outcome.response.status, h);
          res.end(outcome.response.body);
          return;
        }
        claim = { store, key: `${r.key}/${idemKey}`, token: outcome.token };
      }
    }

    // Split, then the circuit breaker: an unavailable or open candidate falls back to the stable.
    const stickyKey = r.sticky ? extractKey(r.sticky, req.headers, payload) : undefined;
    const chosen: Role = chooseRole(r.weight, r.seed, stickyKey);
    let target: Target = chosen === "candidate" ? r.candidate : r.stable;
    let permit = target.backend ? (target.breaker?.allow(Date.now()) ?? { allowed: true, probe: false, retryInMs: 0 }) : undefined;
    if (chosen === "candidate" && (!target.backend || !permit?.allowed)) {
      log.info({ candidate: target.version, reason: target.backend ? "circuit open" : target.unavailable }, "candidate unavailable; answering from the stable");
      target = r.stable;
      permit = target.backend ? (target.breaker?.allow(Date.now()) ?? { allowed: true, probe: false, retryInMs: 0 }) : undefined;
    }
    const vlabels = { ...labels, version: target.version };
    if (!target.backend || !permit) {
      await this.#release(claim, log);
      return this.#reject(res, r, labels, log, 503, "no_backend", target.unavailable ?? `no backend for version ${target.version}`, { "retry-after": "10" });
    }
    if (!permit.allowed) {
      await this.#release(claim, log);
      this.metrics.requests.inc({ ...vlabels, code: "503" });
      return this.#reject(res, r, labels, log, 503, "circuit_open", `circuit breaker of version ${target.version} is open after consecutive failures; next probe in ${Math.ceil(permit.retryInMs / 1000)}s`, { "retry-after": String(Math.max(1, Math.ceil(permit.retryInMs / 1000))) });
    }

    const headers = forwardHeaders(req, requestId);
    let answer: UpstreamResponse;
    try {
      answer = await forward({ backend: target.backend, method, path, headers, body, timeoutMs: r.timeoutMs, maxResponseBytes: this.#o.maxResponseBytes ?? 16 * 1024 * 1024, agents: this.#primaryAgents });
    } catch (err) {
      target.breaker?.onFailure(Date.now(), permit.probe);
      await this.#release(claim, log);
      const e = err instanceof UpstreamError ? err : new UpstreamError("connect", String(err));
      const status = e.kind === "timeout" ? 504 : 502;
      this.metrics.requests.inc({ ...vlabels, code: String(status) });
      this.metrics.duration.observe(vlabels, (performance.now() - started) / 1000);
      log.warn({ version: target.version, kind: e.kind, err: e.message }, "backend failed");
      return this.#reject(res, r, labels, log, status, e.kind === "timeout" ? "backend_timeout" : "backend_error", `version ${target.version}: ${e.message}`);
    }
    if (answer.status >= 500) target.breaker?.onFailure(Date.now(), permit.probe);
    else target.breaker?.onSuccess(permit.probe);

    const outHeaders = answerHeaders(answer.headers);
    outHeaders["x-request-id"] = requestId;
    outHeaders["x-airollout-version"] = target.version;
    outHeaders["content-length"] = String(answer.body.length);
    res.writeHead(answer.status, outHeaders);
    res.end(answer.body);

    this.metrics.requests.inc({ ...vlabels, code: String(answer.status) });
    this.metrics.duration.observe(vlabels, (performance.now() - started) / 1000);
    const mirrored = r.shadowOn && target.role === "stable";
    if (mirrored) {
      // The shadow starts only once the primary's answer is out (see the module comment).
      const mirror = () => this.#afterAnswer(r, method, path, headers, body, answer, requestId, log);
      if (res.writableFinished) mirror();
      else res.once("finish", mirror);
    }
    const usage = extractUsage(answer.headers, answer.body, r.usage);
    if (usage.tokens !== undefined) this.metrics.tokens.inc(vlabels, usage.tokens);
    if (usage.cost !== undefined) this.metrics.cost.inc(vlabels, usage.cost);
    if (claim) {
      if (answer.status < 500) {
        const stored: StoredResponse = { status: answer.status, headers: outHeaders, body: answer.body };
        await claim.store.complete(claim.key, claim.token, stored, r.idempotencyTtlMs).catch((err: unknown) => log.warn({ err: (err as Error).message }, "could not store the answer of an idempotency key; a repeat will be forwarded again"));
      } else {
        await this.#release(claim, log);
      }
    }
    if (log.isLevelEnabled("debug")) log.debug({ version: target.version, status: answer.status, ms: Math.round(performance.now() - started) }, "request answered");
  }

  #allowRate(res: ServerResponse, r: Rollout, source: KeySource, headers: IncomingHttpHeaders, payload: unknown, labels: { rollout: string; namespace: string }, log: Logger): boolean {
    const limiter = r.state.limiter;
    if (!limiter) return true;
    // Requests without the tenant key share one bucket: anonymous traffic is limited too.
    const tenant = extractKey(source, headers, payload) ?? "";
    const d = limiter.take(tenant, Date.now());
    if (d.allowed) return true;
    this.#reject(res, r, labels, log, 429, "rate_limited", `tenant ${JSON.stringify(tenant)} exceeded ${limiter.ratePerSecond} requests/s (burst ${limiter.burst}); retry after ${d.retryAfterSeconds}s`, { "retry-after": String(d.retryAfterSeconds) });
    return false;
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
   * Claims an idempotency key; while another request (or replica) holds it, polls until it is
   * answered, released (then this request forwards) or waitMs passes.
   */
  async #claim(
    store: IdempotencyStore,
    key: string,
    fp: string,
    pendingTtlMs: number,
    waitMs: number,
    log: Logger,
  ): Promise<{ state: "claimed"; token: string } | { state: "done"; response: StoredResponse } | { state: "pending" } | { state: "mismatch" } | { state: "error"; message: string }> {
    const deadline = Date.now() + waitMs;
    let delay = 10;
    for (;;) {
      let res;
      try {
        res = await store.claim(key, fp, pendingTtlMs);
      } catch (err) {
        log.warn({ err: (err as Error).message }, "idempotency store failed");
        return { state: "error", message: (err as Error).message };
      }
      if (res.state !== "pending" || Date.now() >= deadline) return res;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 100);
    }
  }

  async #release(claim: { store: IdempotencyStore; key: string; token: string } | undefined, log: Logger): Promise<void> {
    if (!claim) return;
    await claim.store.release(claim.key, claim.token).catch((err: unknown) => log.warn({ err: (err as Error).message }, "could not release an idempotency key; it expires on its own"));
  }

  /** Decides whether to mirror this request and queues the shadow job. Never throws. */
  #afterAnswer(r: Rollout, method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer, primary: UpstreamResponse, requestId: string, log: Logger): void {
    try {
      if (!r.shadow.methods.includes(method)) return;
      if (r.shadow.sampleRate < 1 && Math.random() >= r.shadow.sampleRate) return;
      const labels = { rollout: r.name, namespace: r.namespace };
      if (r.rulesError) {
        this.metrics.mirrorDropped.inc({ ...labels, reason: "rules_invalid" });
        return;
      }
      const accepted = r.state.mirror.submit(() => this.#shadowJob(r, method, path, headers, body, primary, requestId, log));
      if (!accepted) {
        this.metrics.mirrorDropped.inc({ ...labels, reason: "queue_full" });
        log.debug({ reason: "queue_full" }, "shadow copy dropped");
      }
    } catch (err) {
      log.error({ err: (err as Error).message }, "mirroring failed");
    }
  }

  /**
   * One mirrored request: circuit permits here, the exchanges and the diff on a shadow worker
   * (shadow.ts), then statistics, metrics and samples here.
   */
  async #shadowJob(r: Rollout, method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer, primary: UpstreamResponse, requestId: string, log: Logger): Promise<void> {
    const labels = { rollout: r.name, namespace: r.namespace };
    const drop = (kind: "shadow" | "noise", reason: string) => {
      this.metrics.mirrorDropped.inc({ ...labels, reason: kind === "noise" ? `noise_${reason}` : reason });
      log.debug({ kind, reason }, "shadow copy dropped");
    };
    const target = r.shadowTarget;
    let permit: { allowed: boolean; probe: boolean } | undefined;
    if (!target.backend) drop("shadow", "no_backend");
    else {
      permit = target.breaker?.allow(Date.now()) ?? { allowed: true, probe: false };
      if (!permit.allowed) drop("shadow", "circuit_open");
    }
    const shadowBackend = permit?.allowed ? target.backend : undefined;
    if (!shadowBackend && !r.noise) return;
    const shadowHeaders: OutgoingHttpHeaders = { ...headers };
    if (r.shadow.markHeader) shadowHeaders[r.shadow.markHeader.toLowerCase()] = "true";
    const result = await this.#shadowRunner.run(
      {
        rulesKey: r.rulesKey,
        method,
        path,
        headers: shadowHeaders,
        // Exact-size copies: they are moved to the worker, and a pooled Buffer's slab must not be.
        body: new Uint8Array(body),
        timeoutMs: r.shadowTimeoutMs,
        maxResponseBytes: this.#o.maxResponseBytes ?? 16 * 1024 * 1024,
        primary: { status: primary.status, headers: primary.headers, body: new Uint8Array(primary.body) },
        shadow: shadowBackend,
        noise: r.noise,
      },
      r.shadow.compare ?? {},
    );
    const { shadow, noise } = result;
    if (shadow && permit) {
      // The breaker hears about the backend only: a diff-side failure reports the answer's status.
      const verdict = backendVerdict(shadow);
      if (verdict === "failure") target.breaker?.onFailure(Date.now(), permit.probe);
      else if (verdict === "success") target.breaker?.onSuccess(permit.probe);
      else target.breaker?.release(permit.probe);
    }
    const tracker = r.state.tracker;
    if (noise) {
      if (!noise.ok) drop("noise", noise.reason);
      else {
        tracker.recordPaths("noise", noise.judged.compared, noise.judged.mismatched);
        this.metrics.noiseComparisons.inc(labels);
        if (!noise.judged.matched) this.metrics.noiseMismatches.inc(labels);
      }
    }
    if (!shadow) return;
    if (!shadow.ok) {
      drop("shadow", shadow.reason);
      if (log.isLevelEnabled("debug")) log.debug({ detail: shadow.detail }, "shadow exchange failed");
      return;
    }
    const j = shadow.judged;
    tracker.recordPaths("candidate", j.compared, j.mismatched);
    this.metrics.shadowComparisons.inc(labels);
    if (j.matched) return;
    for (const p of j.mismatched) this.metrics.shadowFieldMismatches.inc({ ...labels, field: this.#fieldLabel(r, p) });
    if (j.mismatched.some((p) => tracker.isFlagged(p))) this.metrics.shadowMismatches.inc(labels);
    // Masking costs more than the diff; under load a steady trickle of samples is plenty.
    if (r.state.sampleBudget.take(Date.now()).allowed) this.samples.add(r.key, this.#sample(r, requestId, path, primary.status, result.primaryText ?? "", shadow.status, shadow.text ?? "", j.mismatches), r.shadow.maxSamples);
  }

  /** A bounded label for a field path: beyond MAX_FIELD_LABELS distinct paths they pool. */
  #fieldLabel(r: Rollout, path: string): string {
    const seen = r.state.fieldLabels;
    if (seen.has(path)) return path;
    if (seen.size >= MAX_FIELD_LABELS) return OTHER_FIELD;
    seen.add(path);
    return path;
  }

  #sample(r: Rollout, requestId: string, path: string, stableStatus: number, stableText: string, candidateStatus: number, candidateText: string, mismatches: readonly Mismatch[]): DiffSample {
    // Bodies arrive as text (shadow.ts sampleText): a card number that is a JSON number is masked
    // too, and masked text stays valid inside a JSON string.
    const m = (s: string) => maskPII(s, r.masks);
    return {
      time: new Date().toISOString(),
      requestId,
      path: m(path),
      stable: { version: r.stable.version, status: stableStatus, body: m(stableText) },
      candidate: { version: r.candidate.version, status: candidateStatus, body: m(candidateText) },
      mismatches: mismatches.map((f) => ({ path: m(f.path), concretePath: m(f.concretePath), rule: f.rule, reason: m(f.reason) })),
    };
  }

}
