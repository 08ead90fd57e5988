/**
 * A small REST client over @kubernetes/client-node's KubeConfig (which handles kubeconfig
 * files, in-cluster service accounts and auth plugins). Requests are plain JSON over HTTPS so
 * every call can choose its patch type, subresource and preconditions explicitly.
 */
import { KubeConfig, Watch } from "@kubernetes/client-node";
import { Agent as HttpAgent, request as httpRequest, type RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions as HttpsRequestOptions } from "node:https";
import { Counter, type Registry } from "prom-client";

/** An error answered by the API server, classified for retry decisions. */
export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly body: unknown;
  constructor(method: string, path: string, status: number, body: unknown) {
    const b = body as { message?: string; reason?: string } | undefined;
    super(`${method} ${path}: ${status} ${b?.reason ?? ""} ${b?.message ?? (typeof body === "string" ? body : "")}`.trim());
    this.name = "ApiError";
    this.status = status;
    this.reason = b?.reason ?? "";
    this.body = body;
  }
  get notFound(): boolean {
    return this.status === 404;
  }
  get conflict(): boolean {
    return this.status === 409;
  }
  get gone(): boolean {
    return this.status === 410;
  }
}

/** Loads the kubeconfig by kubectl's rules (--kubeconfig, $KUBECONFIG merged, ~/.kube/config, in-cluster): kubeconfig.ts. */
export { loadKubeConfig } from "./kubeconfig.ts";

export type PatchType = "merge" | "json" | "strategic" | "apply";
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  // Server-side apply (JSON is YAML); needs the fieldManager query parameter.
  apply: "application/apply-patch+yaml",
};

export interface RequestOpts {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  patch?: PatchType;
  timeoutMs?: number;
}

/** The TLS material an agent's connections are made with; a change (rotated files) needs a new agent. */
type TlsMaterial = Pick<HttpsRequestOptions, "ca" | "cert" | "key" | "pfx" | "passphrase" | "rejectUnauthorized" | "servername">;
const TLS_KEYS = ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"] as const;

function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  return TLS_KEYS.every((k) => {
    const [x, y] = [a[k], b[k]];
    if (Buffer.isBuffer(x) && Buffer.isBuffer(y)) return x.equals(y);
    return x === y || JSON.stringify(x) === JSON.stringify(y);
  });
}

/** Connections kept open per client: enough for the controller's workers and its Events. */
const MAX_SOCKETS = 32;

/**
 * The resource a request path names, as the API server's `apiserver_request_total` labels it:
 * `airollouts`, `airollouts/status`, `events`, `namespaces`; `other` for paths outside the
 * resource API (/metrics, /version). Bounded: only the plural and the subresource are kept.
 */
export function resourceOf(path: string): string {
  const parts = path.split("?")[0]!.split("/").filter(Boolean);
  // /api/v1/... or /apis/<group>/<version>/...
  const rest = parts[0] === "api" ? parts.slice(2) : parts[0] === "apis" ? parts.slice(3) : undefined;
  if (rest === undefined || rest.length === 0) return "other";
  // namespaces/<ns>/<plural>[/<name>[/<sub>]], or a cluster-scoped <plural>[/<name>[/<sub>]]
  const scoped = rest[0] === "namespaces" && rest.length >= 3 ? rest.slice(2) : rest;
  const [plural, , sub] = scoped;
  return sub ? `${plural}/${sub}` : plural!;
}

/** JSON REST calls against the API server named by a KubeConfig. */
export class KubeClient {
  readonly kc: KubeConfig;
  readonly server: string;
  /**
   * One keep-alive agent for every request. client-node's agent for a config does not keep
   * connections alive, so each request under load paid a TCP and TLS handshake on both sides
   * (most of a write's cost on a small control plane).
   */
  private agent?: { material: TlsMaterial; agent: HttpAgent };
  /**
   * Called once per request sent (answered or not), with its verb and resource: how the
   * controller counts its own API traffic (countRequests). Watches are client-node's, not counted.
   */
  onRequest?: (verb: string, resource: string) => void;
  constructor(kc: KubeConfig) {
    this.kc = kc;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    this.server = cluster.server.replace(/\/$/, "");
  }

  /** The namespace of the kubeconfig's current context. */
  get defaultNamespace(): string {
    const ctx = this.kc.getContextObject(this.kc.getCurrentContext());
    return ctx?.namespace ?? "default";
  }

  /** A client-node Watch bound to the same config. */
  watcher(): Watch {
    return new Watch(this.kc);
  }

  async request<T = unknown>(method: string, path: string, opts: RequestOpts = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const options: RequestOptions & { headers: Record<string, string> } = { method, headers: { accept: "application/json" } };
    await this.kc.applyToHTTPSOptions(options);
    // A proxy keeps client-node's agent (it speaks the proxy protocol); otherwise ours.
    if (!this.kc.getCurrentCluster()?.proxyUrl) options.agent = this.keepAliveAgent(url.protocol, options as TlsMaterial);
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      options.headers["content-type"] = opts.patch ? PATCH_CONTENT_TYPE[opts.patch] : "application/json";
      options.headers["content-length"] = String(Buffer.byteLength(payload));
    }
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    this.onRequest?.(method, resourceOf(path));
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          // Node's TLS session listener keeps the first request of a kept-alive socket reachable,
          // and with it this closure: emptied, a list page's raw bytes are not held for its life.
          chunks.length = 0;
          resolve({ status: res.statusCode ?? 0, text });
        });
        res.on("error", reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs}ms`)));
      req.on("error", (err) => reject(new Error(`${method} ${path}: ${err.message}`, { cause: err })));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON: keep the text for the error */
    }
    if (status < 200 || status >= 300) throw new ApiError(method, path, status, parsed);
    return parsed as T;
  }

  /** The keep-alive agent for this TLS material, made anew when the material changed (rotated credentials). */
  private keepAliveAgent(protocol: string, options: TlsMaterial): HttpAgent {
    const material: TlsMaterial = {};
    for (const k of TLS_KEYS) if (options[k] !== undefined) (material as Record<string, unknown>)[k] = options[k];
    if (this.agent && sameMaterial(this.agent.material, material)) return this.agent.agent;
    // The old agent's requests in flight (30 s timeout by default) finish first; then its sockets close.
    const old = this.agent?.agent;
    if (old) setTimeout(() => old.destroy(), 60_000).unref();
    const common = { keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_SOCKETS, scheduling: "lifo" as const };
    const agent = protocol === "https:" ? new HttpsAgent({ ...common, ...material }) : new HttpAgent(common);
    this.agent = { material, agent };
    return agent;
  }

  get<T = unknown>(path: string, query?: RequestOpts["query"]): Promise<T> {
    return this.request<T>("GET", path, { query });
  }
  create<T = unknown>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, { body });
  }
  replace<T = unknown>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PUT", path, { body });
  }
  patch<T = unknown>(path: string, body: unknown, patch: PatchType = "merge"): Promise<T> {
    return this.request<T>("PATCH", path, { body, patch });
  }
  delete<T = unknown>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }
}

/** The counter of a registry's API requests: one per registry, whichever controller term asks. */
const REQUESTS_METRIC = "airollout_controller_api_requests_total";

/**
 * Counts every request `client` sends in `registry` as airollout_controller_api_requests_total
 * {verb, resource}: the API cost of the controller's work, measured where it is spent (the
 * scale benchmark reads it per rollout). Safe to call again for a new controller term.
 */
export function countRequests(client: KubeClient, registry: Registry): void {
  const existing = registry.getSingleMetric(REQUESTS_METRIC) as Counter<"verb" | "resource"> | undefined;
  const counter = existing ?? new Counter({ name: REQUESTS_METRIC, help: "API server requests sent by the controller, by verb and resource (watches not counted).", labelNames: ["verb", "resource"], registers: [registry] });
  client.onRequest = (verb, resource) => counter.inc({ verb, resource });
}

/** Whether an error is worth retrying soon (network trouble, throttling, server errors, conflicts). */
export function isTransient(err: unknown): boolean {
  if (err instanceof ApiError) return err.status === 409 || err.status === 429 || err.status >= 500;
  return true;
}
