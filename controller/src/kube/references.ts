/**
 * The ConfigMaps and Secrets AIRollouts refer to (prompts, env valueFrom, signature and
 * passphrase Secrets), cached by list+watch so that:
 * - an edit of a referenced object enqueues every rollout that refers to it (ReferenceIndex);
 * - a pass reads them from memory instead of one GET per reference per pass;
 * - the cache keeps metadata and a digest per key, never a value: Secrets stay out of the heap,
 *   the status and the logs, and a cluster's ConfigMaps cost a few bytes each.
 */
import { createHash, createHmac } from "node:crypto";
import type { Logger } from "pino";
import type { ObservedReference, Reference, World } from "../reconcile/contract.ts";
import { referenceKey } from "../reconcile/references.ts";
import { ApiError, type KubeClient } from "./client.ts";
import { Informer, type KubeObject, type ReadonlyStore } from "./informer.ts";

export type ReferenceKind = Reference["kind"];

/** What the cache keeps of a ConfigMap or Secret. */
export interface ReferencedObject extends KubeObject {
  /** Content digest per key (see digestsOf). */
  digests: Record<string, string>;
}

/** The read-only view observeWorld depends on. */
export interface ReferenceCache {
  /** The object as observed; undefined when the cache cannot tell yet (not synced). */
  lookup(namespace: string, kind: ReferenceKind, name: string): ObservedReference | undefined;
}

interface RawObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string };
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

/**
 * Digest of each key's value, 16 hex digits. ConfigMaps: sha256 of the value. Secrets: an
 * HMAC-SHA256 keyed by the Secret's uid, so a short secret (a PIN, a word) cannot be recovered
 * offline from the digest in status by someone who may read AIRollouts but not Secrets. A
 * Secret deleted and created again with the same value therefore counts as changed.
 */
export function digestsOf(kind: ReferenceKind, obj: RawObject): Record<string, string> {
  const out: Record<string, string> = {};
  const uid = obj.metadata?.uid ?? "";
  const hash = (bytes: Buffer) =>
    (kind === "Secret" ? createHmac("sha256", `airollout/${uid}`) : createHash("sha256")).update(bytes).digest("hex").slice(0, 16);
  if (kind === "Secret") {
    for (const [k, v] of Object.entries(obj.data ?? {})) out[k] = hash(Buffer.from(v, "base64"));
  } else {
    for (const [k, v] of Object.entries(obj.data ?? {})) out[k] = hash(Buffer.from(v, "utf8"));
    for (const [k, v] of Object.entries(obj.binaryData ?? {})) out[k] = hash(Buffer.from(v, "base64"));
  }
  return out;
}

/** The cache's form of a listed, watched or fetched object: metadata and digests only. */
export function summarize(kind: ReferenceKind, raw: unknown): ReferencedObject {
  const obj = (raw ?? {}) as RawObject;
  const m = obj.metadata ?? {};
  return {
    metadata: { name: m.name ?? "", resourceVersion: m.resourceVersion ?? "", ...(m.namespace ? { namespace: m.namespace } : {}), ...(m.uid ? { uid: m.uid } : {}) },
    digests: digestsOf(kind, obj),
  };
}

/** ObservedReference of a summarized object, or of an absent one. */
export function observed(obj: ReferencedObject | undefined): ObservedReference {
  if (!obj) return { exists: false, keys: [] };
  return { exists: true, keys: Object.keys(obj.digests), digests: { ...obj.digests } };
}

function objectKey(namespace: string, kind: ReferenceKind, name: string): string {
  return `${namespace}/${kind}/${name}`;
}

/**
 * Which rollouts refer to which objects: namespace/kind/name -> rollout keys, rebuilt for a
 * rollout each time it changes, so an edit of an object enqueues exactly its rollouts.
 */
export class ReferenceIndex {
  private readonly byObject = new Map<string, Set<string>>();
  private readonly byRollout = new Map<string, string[]>();

  /** Records the objects rollout `key` (namespace/name) refers to, replacing earlier ones. */
  set(key: string, namespace: string, refs: readonly Pick<Reference, "kind" | "name">[]): void {
    this.remove(key);
    const objects = [...new Set(refs.map((r) => objectKey(namespace, r.kind, r.name)))];
    if (objects.length === 0) return;
    this.byRollout.set(key, objects);
    for (const o of objects) {
      let set = this.byObject.get(o);
      if (!set) this.byObject.set(o, (set = new Set()));
      set.add(key);
    }
  }

  remove(key: string): void {
    for (const o of this.byRollout.get(key) ?? []) {
      const set = this.byObject.get(o);
      set?.delete(key);
      if (set?.size === 0) this.byObject.delete(o);
    }
    this.byRollout.delete(key);
  }

  /** Keys of the rollouts that refer to the object. */
  rolloutsFor(namespace: string, kind: ReferenceKind, name: string): string[] {
    return [...(this.byObject.get(objectKey(namespace, kind, name)) ?? [])];
  }
}

export interface ReferenceInformersOptions {
  client: KubeClient;
  /** One namespace, or all when undefined (as the rollout informer). */
  namespace?: string;
  /** Called on every add, edit and delete of a ConfigMap or Secret. */
  onChange(namespace: string, kind: ReferenceKind, name: string): void;
  log: Logger;
  onRestart?: (reason: "closed" | "error" | "gone") => void;
}

/** The ConfigMap and Secret informers, summarized, behind the ReferenceCache view. */
export class ReferenceInformers implements ReferenceCache {
  private readonly informers: Record<ReferenceKind, Informer<ReferencedObject>>;

  constructor(o: ReferenceInformersOptions) {
    const make = (kind: ReferenceKind, resource: string) =>
      new Informer<ReferencedObject>(
        o.client,
        o.namespace ? `/api/v1/namespaces/${o.namespace}/${resource}` : `/api/v1/${resource}`,
        {
          onUpsert: (obj) => o.onChange(obj.metadata.namespace ?? "", kind, obj.metadata.name),
          onDelete: (obj) => o.onChange(obj.metadata.namespace ?? "", kind, obj.metadata.name),
        },
        o.log.child({ informer: resource }),
        // Secrets in small pages: a Helm release Secret can weigh a megabyte, and a page is held
        // whole in memory until it is summarized.
        { transform: (raw) => summarize(kind, raw), pageSize: kind === "Secret" ? 50 : 500, ...(o.onRestart ? { onRestart: o.onRestart } : {}) },
      );
    this.informers = { ConfigMap: make("ConfigMap", "configmaps"), Secret: make("Secret", "secrets") };
  }

  /** Whether both caches completed their first list. */
  get synced(): boolean {
    return this.informers.ConfigMap.hasSynced && this.informers.Secret.hasSynced;
  }

  start(): void {
    this.informers.ConfigMap.start();
    this.informers.Secret.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.informers.ConfigMap.stop(), this.informers.Secret.stop()]);
  }

  lookup(namespace: string, kind: ReferenceKind, name: string): ObservedReference | undefined {
    return lookupIn(this.informers[kind], namespace, name);
  }
}

/** A lookup in one synced store; undefined before its first list completes. */
export function lookupIn(store: ReadonlyStore<ReferencedObject>, namespace: string, name: string): ObservedReference | undefined {
  if (!store.hasSynced) return undefined;
  return observed(store.get(`${namespace}/${name}`));
}

/**
 * Reads one reference from the API server: the fallback before the caches have synced (or
 * when they cannot, for want of list/watch rights).
 */
export async function fetchReference(client: KubeClient, namespace: string, r: Reference): Promise<ObservedReference> {
  const path = `/api/v1/namespaces/${namespace}/${r.kind === "Secret" ? "secrets" : "configmaps"}/${r.name}`;
  try {
    return observed(summarize(r.kind, await client.get(path)));
  } catch (err) {
    if (err instanceof ApiError && err.notFound) return observed(undefined);
    throw new Error(`reading ${r.kind} ${r.name} for ${r.field}`, { cause: err });
  }
}

/** World.references for a rollout's references: from the cache, else read one by one. */
export async function observeReferences(
  refs: readonly Reference[],
  namespace: string,
  cache: ReferenceCache,
  read: (r: Reference) => Promise<ObservedReference>,
): Promise<World["references"]> {
  const out: World["references"] = {};
  for (const r of refs) {
    const key = referenceKey(r);
    if (out[key]) continue;
    out[key] = cache.lookup(namespace, r.kind, r.name) ?? (await read(r));
  }
  return out;
}
