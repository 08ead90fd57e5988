/**
 * The dashboard's port to Kubernetes, and its implementation over KubeClient with the user's own
 * kubeconfig: every read and write is the user's, so the API server's RBAC decides what the page
 * shows and which buttons work. The server's handlers depend on the port only (tests use a fake).
 */
import type { Logger } from "pino";
import type { AIRollout } from "../api/schema.ts";
import { rolloutPath, rolloutsPath } from "../api/paths.ts";
import type { ControlClient } from "../cli/control.ts";
import { type KubeClient } from "../kube/client.ts";
import { dropBookkeeping, Informer } from "../kube/informer.ts";
import type { KubeEvent } from "./model.ts";

export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

/** A running watch; stop() ends it. */
export interface WatchHandle {
  stop(): Promise<void>;
}

/** What the dashboard reads and writes. Errors are the API server's (ApiError), passed on. */
export interface DashboardKube {
  /** AIRollouts of a namespace, or of all namespaces when undefined. */
  list(namespace: string | undefined): Promise<AIRollout[]>;
  get(namespace: string, name: string): Promise<AIRollout>;
  /** The Events whose involved object is this AIRollout. */
  events(namespace: string, name: string): Promise<KubeEvent[]>;
  /** Watches AIRollouts of a namespace (all when undefined) until stopped. */
  watch(namespace: string | undefined, onChange: (type: ChangeType, obj: AIRollout) => void): WatchHandle;
  /** What requestControl (cli/control.ts) writes through. */
  readonly control: ControlClient;
}

/** Most AIRollouts or Events one list returns: the page shows no more, and a body stays bounded. */
const LIST_LIMIT = 500;

/** The port over a KubeClient built from the user's kubeconfig. */
export class KubeDashboard implements DashboardKube {
  readonly #client: KubeClient;
  readonly #log: Logger;
  readonly control: ControlClient;

  constructor(client: KubeClient, log: Logger) {
    this.#client = client;
    this.#log = log;
    this.control = client;
  }

  async list(namespace: string | undefined): Promise<AIRollout[]> {
    const body = await this.#client.get<{ items?: AIRollout[] }>(rolloutsPath(namespace), { limit: LIST_LIMIT });
    return (body.items ?? []).map((o) => dropBookkeeping(o) as AIRollout);
  }

  async get(namespace: string, name: string): Promise<AIRollout> {
    return dropBookkeeping(await this.#client.get<AIRollout>(rolloutPath(namespace, name))) as AIRollout;
  }

  async events(namespace: string, name: string): Promise<KubeEvent[]> {
    const body = await this.#client.get<{ items?: KubeEvent[] }>(`/api/v1/namespaces/${namespace}/events`, {
      fieldSelector: `involvedObject.kind=AIRollout,involvedObject.name=${name}`,
      limit: LIST_LIMIT,
    });
    return body.items ?? [];
  }

  watch(namespace: string | undefined, onChange: (type: ChangeType, obj: AIRollout) => void): WatchHandle {
    const seen = new Set<string>();
    const key = (o: AIRollout) => `${o.metadata.namespace}/${o.metadata.name}`;
    const informer = new Informer<AIRollout>(
      this.#client,
      rolloutsPath(namespace),
      {
        onUpsert: (o) => {
          const k = key(o);
          onChange(seen.has(k) ? "MODIFIED" : "ADDED", o);
          seen.add(k);
        },
        onDelete: (o) => {
          seen.delete(key(o));
          onChange("DELETED", o);
        },
      },
      this.#log,
      { transform: (o) => dropBookkeeping(o) as AIRollout },
    );
    informer.start();
    return { stop: () => informer.stop() };
  }
}
