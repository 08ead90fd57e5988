/**
 * The controller's Pulumi backend, published in the cluster so that `airollout preview` and
 * `airollout stacks` use the backend the controller collects from, without a flag to match.
 *
 * The leader writes a ConfigMap (<lease-name>-backend, labelled airollout.dev/published=
 * pulumi-backend) in its Lease's namespace each time it starts leading. The CLI finds it by
 * label (in --controller-namespace, else in every namespace) and keeps the controllers that
 * watch the rollout's namespace, and only those whose leader refreshed it recently: a controller
 * that stopped long ago (run by hand with another state directory, say) must not capture the
 * previews. The controller's service account may already write ConfigMaps (the environments'
 * own), so no new RBAC rule is needed.
 */
import { hostname } from "node:os";
import { ApiError, type KubeClient } from "../kube/client.ts";

export const PUBLISHED_LABEL = "airollout.dev/published";
export const PUBLISHED_VALUE = "pulumi-backend";
/** How often the leader rewrites its ConfigMap. */
export const HEARTBEAT_MS = 60_000;
/** A ConfigMap not rewritten for this long belongs to a controller that is gone. */
export const STALE_AFTER_MS = 5 * HEARTBEAT_MS;

/** What the controller publishes (the ConfigMap's data). */
export interface PublishedBackend {
  /** The backend of rollouts that name none (spec.environments.pulumi.backend overrides it). */
  backend: string;
  /** "pulumi", or "none" when the controller stands nothing up (and collects nothing). */
  environments: "pulumi" | "none";
  /** The namespace the controller watches; "" for all. */
  watchNamespace: string;
  /** The controller's host: a file:// backend is reachable on that host only. */
  host: string;
  /** The controller's identity, to tell several controllers apart in an error. */
  identity: string;
  /** When the leader last wrote it (RFC 3339). */
  heartbeat: string;
}

interface ConfigMap {
  apiVersion: "v1";
  kind: "ConfigMap";
  metadata: { name: string; namespace: string; labels?: Record<string, string>; resourceVersion?: string };
  data?: Record<string, string>;
}

/** The ConfigMap's name for a controller whose Lease is `leaseName`. */
export function publishedName(leaseName: string): string {
  return `${leaseName}-backend`;
}

/** Writes (creates or replaces) the controller's published backend. */
export async function publishBackend(client: KubeClient, where: { namespace: string; leaseName: string }, what: PublishedBackend): Promise<void> {
  const name = publishedName(where.leaseName);
  const base = `/api/v1/namespaces/${where.namespace}/configmaps`;
  const body: ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: where.namespace, labels: { [PUBLISHED_LABEL]: PUBLISHED_VALUE, "app.kubernetes.io/name": "airollout" } },
    data: { ...what },
  };
  try {
    const current = await client.get<ConfigMap>(`${base}/${name}`);
    await client.replace(`${base}/${name}`, { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata.resourceVersion } });
  } catch (err) {
    if (!(err instanceof ApiError && err.notFound)) throw new Error(`publishing the Pulumi backend in ConfigMap ${where.namespace}/${name}`, { cause: err });
    await client.create(base, body);
  }
}

/** Where the CLI found the backend, and the words to say so. */
export interface DiscoveredBackend {
  backend: string;
  source: string;
}

function parsePublished(cm: ConfigMap): PublishedBackend | undefined {
  const d = cm.data ?? {};
  if (d.environments !== "pulumi" && d.environments !== "none") return undefined;
  if (d.environments === "pulumi" && !d.backend) return undefined;
  return { backend: d.backend ?? "", environments: d.environments, watchNamespace: d.watchNamespace ?? "", host: d.host ?? "", identity: d.identity ?? "", heartbeat: d.heartbeat ?? "" };
}

/**
 * The backend of the controller that manages `rolloutNamespace`, as published in the cluster.
 * Fails with a message naming the fix when none is published, when the controllers that
 * qualify disagree, when the controller stands nothing up, or when its file backend lives on
 * another host (a preview written here would never be collected there).
 */
export async function discoverBackend(client: KubeClient, rolloutNamespace: string, controllerNamespace?: string, localHost = hostname(), now = Date.now()): Promise<DiscoveredBackend> {
  const path = controllerNamespace ? `/api/v1/namespaces/${controllerNamespace}/configmaps` : "/api/v1/configmaps";
  let items: ConfigMap[];
  try {
    items = (await client.get<{ items: ConfigMap[] }>(path, { labelSelector: `${PUBLISHED_LABEL}=${PUBLISHED_VALUE}` })).items;
  } catch (err) {
    if (err instanceof ApiError && err.status === 403 && !controllerNamespace) {
      throw new Error("cannot list ConfigMaps in every namespace to find the controller's Pulumi backend: give --controller-namespace NS (where the controller runs), or --backend URL", { cause: err });
    }
    throw new Error(`finding the controller's Pulumi backend in ${controllerNamespace ? `namespace ${controllerNamespace}` : "the cluster"}`, { cause: err });
  }
  const managing = items
    .map((cm) => ({ cm, p: parsePublished(cm) }))
    .filter((x): x is { cm: ConfigMap; p: PublishedBackend } => x.p !== undefined && (x.p.watchNamespace === "" || x.p.watchNamespace === rolloutNamespace));
  // An unparseable heartbeat is NaN: not live (fail closed).
  const found = managing.filter((x) => now - Date.parse(x.p.heartbeat) <= STALE_AFTER_MS);
  const where = controllerNamespace ? `in namespace ${controllerNamespace}` : "in any namespace";
  if (found.length === 0) {
    const stale = managing.map((x) => `${x.cm.metadata.namespace}/${x.cm.metadata.name} (last written ${x.p.heartbeat || "never"})`);
    throw new Error(
      `no running airollout controller managing namespace ${rolloutNamespace} has published its Pulumi backend ${where} (ConfigMap labelled ${PUBLISHED_LABEL}=${PUBLISHED_VALUE}, rewritten every minute by the leader)${stale.length ? `; only stale ones: ${stale.join(", ")}` : ""}: start the controller, or give --backend URL`,
    );
  }
  const backends = new Set(found.map((x) => `${x.p.environments}|${x.p.backend}|${x.p.host}`));
  const names = found.map((x) => `${x.cm.metadata.namespace}/${x.cm.metadata.name}`);
  if (backends.size > 1) {
    throw new Error(`several controllers manage namespace ${rolloutNamespace} with different Pulumi backends (${names.join(", ")}): give --controller-namespace NS or --backend URL`);
  }
  const { p } = found[0]!;
  const source = `published by controller ${p.identity || "(unnamed)"} in ConfigMap ${names[0]}`;
  if (p.environments === "none") throw new Error(`the controller managing namespace ${rolloutNamespace} runs with --environments none (${source}): it stands up no environments and collects no previews`);
  if (p.backend.startsWith("file://") && p.host !== localHost) {
    throw new Error(
      `the controller's Pulumi backend ${p.backend} is a directory on host ${JSON.stringify(p.host)}, not on this one (${JSON.stringify(localHost)}): a preview written here would never be collected. Give the controller a shared backend (Helm value pulumi.backendUrl, or spec.environments.pulumi.backend), or run this where the controller runs`,
    );
  }
  return { backend: p.backend, source };
}
