/**
 * The dashboard's HTTP server (API.md): the UI's files, a JSON API over the user's own
 * Kubernetes access, Server-Sent Events from a watch, the gateway's diffs proxied, and the human
 * controls (the CLI's requestControl, so a button writes exactly what `airollout promote` does).
 *
 * Safety, because the server acts with the user's credentials:
 * - bound to loopback, it answers only requests whose Host names loopback (a DNS-rebinding page
 *   cannot read through it);
 * - a POST needs the per-server token the page carries (x-airollout-csrf) and, when the browser
 *   sends one, an Origin equal to the server's own: another site can neither read the token nor
 *   send the header cross-origin without a preflight the server never grants;
 * - `--read-only` refuses every action whatever the user's RBAC allows.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Server } from "node:http";
import { join } from "node:path";
import express, { type NextFunction, type Request, type Response } from "express";
import type { Logger } from "pino";
import { ControlRefused, requestControl, type ControlVerb } from "../cli/control.ts";
import { UsageError } from "../cli/errors.ts";
import { ApiError } from "../kube/client.ts";
import type { DashboardKube } from "./kube.ts";
import { Live } from "./live.ts";
import { History, toDetail, toRow, type RolloutDetail, type RolloutRow } from "./model.ts";
import { vendorFile } from "./vendor.ts";

/** Where the UI's files live (engineer K's bundle). */
export const UI_DIR = join(import.meta.dirname, "ui");

/** Largest diffs answer taken from the gateway. */
const MAX_DIFFS_BYTES = 8 << 20;
const GATEWAY_TIMEOUT_MS = 10_000;
/** A Kubernetes object name or namespace (DNS subdomain). */
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export interface DashboardOptions {
  kube: DashboardKube;
  /** The namespace the list shows by default; undefined for all namespaces. */
  namespace: string | undefined;
  readOnly: boolean;
  /** The gateway's base URL, for the diffs view. */
  gateway?: string;
  /** Whether the listen address is loopback: then the Host header must name loopback too. */
  loopback: boolean;
  log: Logger;
  uiDir?: string;
  /** The fetch the diffs proxy uses (tests substitute it). */
  fetch?: typeof fetch;
}

/** The list answer (API.md). */
export interface ListAnswer {
  namespace: string | null;
  items: RolloutRow[];
}

/** An error answered as JSON: `{error, message, status}`. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The JSON an error is answered with: the API server's status and message pass through unchanged. */
export function errorAnswer(err: unknown): { status: number; body: { error: string; message: string; status: number } } {
  if (err instanceof HttpError) return { status: err.status, body: { error: err.code, message: err.message, status: err.status } };
  if (err instanceof ApiError) {
    const b = err.body as { message?: string; reason?: string } | undefined;
    const status = err.status >= 400 && err.status < 600 ? err.status : 502;
    return { status, body: { error: err.reason || "ApiError", message: b?.message ?? err.message, status } };
  }
  if (err instanceof ControlRefused) return { status: 409, body: { error: "conflict", message: err.message, status: 409 } };
  if (err instanceof UsageError) return { status: 400, body: { error: "bad_request", message: err.message, status: 400 } };
  return { status: 502, body: { error: "kube_error", message: (err as Error).message, status: 502 } };
}

function checkName(field: string, value: unknown): string {
  if (typeof value !== "string" || !NAME.test(value)) throw new HttpError(400, "bad_request", `${field}: ${JSON.stringify(value)} is not a Kubernetes name`);
  return value;
}

/** The verbs of the action URLs, and what each asks requestControl for. */
const ACTIONS: Record<string, { verb: ControlVerb; full: boolean }> = {
  promote: { verb: "promote", full: false },
  "promote-full": { verb: "promote", full: true },
  abort: { verb: "abort", full: false },
  retry: { verb: "retry", full: false },
};

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** The host name of a Host header (without its port), lower case. */
function hostName(host: string | undefined): string {
  if (!host) return "";
  const h = host.toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  return h.split(":")[0] ?? "";
}

/** The bootstrap object injected into the page (API.md). */
export interface Bootstrap {
  csrfToken: string | null;
  readOnly: boolean;
  namespace: string | null;
  allNamespaces: boolean;
  gateway: boolean;
  report: null | { generatedAt: string; rollout: string; data: { list: ListAnswer; detail: RolloutDetail; diffs: unknown; diffsError: string | null } };
}

/** A script element that sets window.AIROLLOUT; `<` escaped so no value can close the element. */
export function bootstrapScript(b: Bootstrap, nonce?: string): string {
  const json = JSON.stringify(b).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
  return `<script${nonce ? ` nonce="${nonce}"` : ""}>window.AIROLLOUT = ${json};</script>`;
}

/** index.html with the bootstrap injected before </head> (or at the start when it has none). */
export function injectBootstrap(html: string, script: string): string {
  const at = html.search(/<\/head>/i);
  return at < 0 ? script + html : html.slice(0, at) + script + html.slice(at);
}

const PLACEHOLDER = `<!doctype html><html><head><meta charset="utf-8"><title>airollout</title></head><body><p>The dashboard's UI files are missing (controller/src/dashboard/ui/index.html); the JSON API is under /api/.</p></body></html>`;

/** Reads index.html of the UI (the placeholder when absent). */
export async function readIndex(uiDir: string): Promise<string> {
  try {
    return await readFile(join(uiDir, "index.html"), "utf8");
  } catch {
    return PLACEHOLDER;
  }
}

/** The dashboard: an express app over the port, the live watches, and its CSRF token. */
export class Dashboard {
  readonly app: express.Express;
  readonly csrfToken = randomBytes(32).toString("hex");
  readonly history = new History();
  readonly live: Live;
  readonly #o: DashboardOptions;
  readonly #uiDir: string;

  constructor(o: DashboardOptions) {
    this.#o = o;
    this.#uiDir = o.uiDir ?? UI_DIR;
    this.live = new Live(o.kube, this.history, o.namespace);
    this.app = this.#routes();
  }

  /** Starts the watch and listens; resolves with the bound port. */
  async listen(port: number, address: string): Promise<{ server: Server; port: number }> {
    this.live.start();
    const server = await new Promise<Server>((resolve, reject) => {
      const s = this.app.listen(port, address, (err?: Error) => (err ? reject(err) : resolve(s)));
    });
    const bound = server.address();
    return { server, port: typeof bound === "object" && bound ? bound.port : port };
  }

  async stop(server?: Server): Promise<void> {
    await this.live.stop();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** GET /api/rollouts: the rows of a namespace (the server's by default; `*` for all). */
  async list(namespaceParam: unknown): Promise<ListAnswer> {
    const ns = this.#namespaceOf(namespaceParam);
    const items = (await this.#o.kube.list(ns)).map((o) => toRow(o));
    items.sort((a, b) => (a.namespace === b.namespace ? a.name.localeCompare(b.name) : a.namespace.localeCompare(b.namespace)));
    return { namespace: ns ?? null, items };
  }

  /** GET /api/rollouts/:ns/:name: the rollout's page. Events the user may not list are left out, not an error. */
  async detail(nsParam: unknown, nameParam: unknown): Promise<RolloutDetail> {
    const ns = checkName("namespace", nsParam);
    const name = checkName("name", nameParam);
    const obj = await this.#o.kube.get(ns, name);
    this.history.observe(obj);
    const events = await this.#o.kube.events(ns, name).catch((err: unknown) => {
      if (err instanceof ApiError && err.status === 403) return [];
      throw err;
    });
    return toDetail(obj, this.history, events);
  }

  /** GET /api/rollouts/:ns/:name/diffs: the gateway's answer as it is (masked by the gateway). */
  async diffs(nsParam: unknown, nameParam: unknown, limitParam: unknown): Promise<{ status: number; body: unknown }> {
    const ns = checkName("namespace", nsParam);
    const name = checkName("name", nameParam);
    if (!this.#o.gateway) throw new HttpError(404, "no_gateway", "the dashboard was started without --gateway: no diffs to show");
    let limit = "";
    if (limitParam !== undefined) {
      const n = Number(limitParam);
      if (typeof limitParam !== "string" || !Number.isInteger(n) || n < 0 || n > 1000) throw new HttpError(400, "bad_request", `limit: ${JSON.stringify(limitParam)} is not an integer from 0 to 1000`);
      limit = `?limit=${n}`;
    }
    const url = `${this.#o.gateway.replace(/\/$/, "")}/api/rollouts/${ns}/${name}/diffs${limit}`;
    return fetchGatewayJson(this.#o.fetch ?? fetch, url);
  }

  /** POST …/actions/:action: the CLI's control request with the user's rights. */
  async action(nsParam: unknown, nameParam: unknown, actionParam: unknown) {
    const ns = checkName("namespace", nsParam);
    const name = checkName("name", nameParam);
    const a = typeof actionParam === "string" && Object.hasOwn(ACTIONS, actionParam) ? ACTIONS[actionParam] : undefined;
    if (!a) throw new HttpError(404, "not_found", `action: ${JSON.stringify(actionParam)} is not one of ${Object.keys(ACTIONS).join(", ")}`);
    if (this.#o.readOnly) throw new HttpError(403, "read_only", "the dashboard is read-only (--read-only): actions are refused");
    const result = await requestControl(this.#o.kube.control, { namespace: ns, name, verb: a.verb, full: a.full });
    return { action: actionParam as string, ...result };
  }

  /** The bootstrap of a live page. */
  bootstrap(): Bootstrap {
    return { csrfToken: this.csrfToken, readOnly: this.#o.readOnly, namespace: this.#o.namespace ?? null, allNamespaces: this.#o.namespace === undefined, gateway: Boolean(this.#o.gateway), report: null };
  }

  #namespaceOf(param: unknown): string | undefined {
    if (param === undefined || param === "") return this.#o.namespace;
    if (param === "*") return undefined;
    return checkName("namespace", param);
  }

  #routes(): express.Express {
    const app = express();
    app.disable("x-powered-by");
    app.set("etag", false);
    app.use((req, res, next) => this.#guard(req, res, next));
    const json = (fn: (req: Request) => Promise<unknown>) => (req: Request, res: Response) => {
      fn(req).then(
        (body) => res.status(200).json(body),
        (err: unknown) => this.#fail(res, err),
      );
    };
    // Liveness for a Pod: the process answers (the API server's health is not the dashboard's).
    app.get("/healthz", (_req, res) => void res.type("text").send("ok\n"));
    app.get("/api/rollouts", json((req) => this.list(req.query.namespace)));
    app.get("/api/rollouts/:ns/:name", json((req) => this.detail(req.params.ns, req.params.name)));
    app.get("/api/rollouts/:ns/:name/diffs", (req, res) => {
      this.diffs(req.params.ns, req.params.name, req.query.limit).then(
        ({ status, body }) => res.status(status).json(body),
        (err: unknown) => this.#fail(res, err),
      );
    });
    app.post("/api/rollouts/:ns/:name/actions/:action", json((req) => this.action(req.params.ns, req.params.name, req.params.action)));
    app.get("/api/events", (req, res) => void this.#events(req, res));
    app.get(["/", "/index.html"], (_req, res) => void this.#index(res));
    app.get("/ui/vendor/:file", (req, res) => {
      const file = vendorFile(String(req.params.file));
      if (!file) return this.#fail(res, new HttpError(404, "not_found", "no such file"));
      res.sendFile(file, { maxAge: 0 }, (err) => err && this.#fail(res, err));
    });
    app.use("/ui", express.static(this.#uiDir, { index: false, fallthrough: false, dotfiles: "deny" }));
    app.use((_req, res) => this.#fail(res, new HttpError(404, "not_found", "no such page")));
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => this.#fail(res, err instanceof Error && "status" in err && (err as { status: number }).status === 404 ? new HttpError(404, "not_found", "no such file") : err));
    return app;
  }

  /** Host (DNS rebinding), then for POSTs the CSRF token and Origin. */
  #guard(req: Request, res: Response, next: NextFunction): void {
    res.setHeader("x-content-type-options", "nosniff");
    res.setHeader("referrer-policy", "no-referrer");
    res.setHeader("x-frame-options", "DENY");
    if (this.#o.loopback && !LOOPBACK_HOSTS.has(hostName(req.headers.host))) {
      this.#fail(res, new HttpError(403, "bad_host", `Host ${JSON.stringify(req.headers.host ?? "")} is not this loopback dashboard`));
      return;
    }
    if (req.method === "GET" || req.method === "HEAD") return next();
    if (req.method !== "POST") return this.#fail(res, new HttpError(405, "method_not_allowed", `${req.method} is not allowed`));
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`) {
      return this.#fail(res, new HttpError(403, "csrf", `Origin ${origin} is not this dashboard`));
    }
    const given = Buffer.from(String(req.headers["x-airollout-csrf"] ?? ""));
    const want = Buffer.from(this.csrfToken);
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      return this.#fail(res, new HttpError(403, "csrf", "missing or wrong x-airollout-csrf header: reload the page"));
    }
    next();
  }

  async #index(res: Response): Promise<void> {
    const nonce = randomBytes(16).toString("base64");
    const html = injectBootstrap(await readIndex(this.#uiDir), bootstrapScript(this.bootstrap(), nonce));
    res.setHeader("content-security-policy", `default-src 'self'; script-src 'self' 'nonce-${nonce}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`);
    res.setHeader("cache-control", "no-store");
    res.type("html").send(html);
  }

  /** GET /api/events: first a list with the user's rights (a refusal answers its error), then the stream. */
  async #events(req: Request, res: Response): Promise<void> {
    try {
      const rolloutParam = req.query.rollout;
      let rollout: { namespace: string; name: string } | undefined;
      if (rolloutParam !== undefined) {
        const [ns, name, ...rest] = String(rolloutParam).split("/");
        if (rest.length) throw new HttpError(400, "bad_request", `rollout: ${JSON.stringify(rolloutParam)} is not NAMESPACE/NAME`);
        rollout = { namespace: checkName("rollout namespace", ns), name: checkName("rollout name", name) };
      }
      const namespace = rollout?.namespace ?? this.#namespaceOf(req.query.namespace);
      await this.#o.kube.list(namespace);
      if (!this.live.add(res, { namespace, rollout })) throw new HttpError(503, "too_many_clients", "too many open dashboard pages or namespaces watched; close some");
    } catch (err) {
      this.#fail(res, err);
    }
  }

  #fail(res: Response, err: unknown): void {
    const { status, body } = errorAnswer(err);
    if (status >= 500) this.#o.log.warn({ err: (err as Error).message }, "dashboard request failed");
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(status).json(body);
  }
}

/** GETs a JSON answer of the gateway, bounded in time and size; its own 4xx pass through. */
export async function fetchGatewayJson(doFetch: typeof fetch, url: string): Promise<{ status: number; body: unknown }> {
  let res: globalThis.Response;
  try {
    res = await doFetch(url, { signal: AbortSignal.timeout(GATEWAY_TIMEOUT_MS), redirect: "error" });
  } catch (err) {
    throw new HttpError(502, "gateway_error", `gateway ${url}: ${(err as Error).message}`);
  }
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_DIFFS_BYTES) throw new HttpError(502, "gateway_error", `gateway answer of ${declared} bytes is over ${MAX_DIFFS_BYTES}`);
  const text = await readBounded(res, MAX_DIFFS_BYTES);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(502, "gateway_error", `gateway ${url} answered ${res.status} without JSON`);
  }
  if (res.status >= 200 && res.status < 300) return { status: 200, body };
  if (res.status >= 400 && res.status < 500) return { status: res.status, body };
  throw new HttpError(502, "gateway_error", `gateway ${url} answered ${res.status}`);
}

async function readBounded(res: globalThis.Response, max: number): Promise<string> {
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) throw new HttpError(502, "gateway_error", `gateway answer over ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}
