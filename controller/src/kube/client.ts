/**
 * A small REST client over @kubernetes/client-node's KubeConfig (which handles kubeconfig
 * files, in-cluster service accounts and auth plugins). Requests are plain JSON over HTTPS so
 * every call can choose its patch type, subresource and preconditions explicitly.
 */
import { KubeConfig, Watch } from "@kubernetes/client-node";
import { request as httpRequest, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";

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

/** Loads KUBECONFIG (or ~/.kube/config), or the in-cluster service account when running in a Pod. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

export type PatchType = "merge" | "json" | "strategic";
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
};

export interface RequestOpts {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  patch?: PatchType;
  timeoutMs?: number;
}

/** JSON REST calls against the API server named by a KubeConfig. */
export class KubeClient {
  readonly kc: KubeConfig;
  readonly server: string;
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
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      options.headers["content-type"] = opts.patch ? PATCH_CONTENT_TYPE[opts.patch] : "application/json";
      options.headers["content-length"] = String(Buffer.byteLength(payload));
    }
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
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

/** Whether an error is worth retrying soon (network trouble, throttling, server errors, conflicts). */
export function isTransient(err: unknown): boolean {
  if (err instanceof ApiError) return err.status === 409 || err.status === 429 || err.status >= 500;
  return true;
}
