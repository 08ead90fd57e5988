/**
 * Kubernetes Events for rollouts (core/v1, shown by `kubectl describe` and `kubectl get events`).
 *
 * Each event has a deterministic name derived from the object's uid and the event's dedupe key
 * (generation, transition, step). The controller records events before it writes status, so a
 * controller killed between the two re-records the same names after restart and the API server
 * answers 409: nothing is duplicated and nothing is lost.
 */
import type { Logger } from "pino";
import { ApiError, type KubeClient } from "./client.ts";
import type { EventSpec } from "../reconcile/contract.ts";
import { shortHash } from "../api/hash.ts";

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string };
}

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly component: string;
  private readonly host: string;
  private readonly log: Logger;

  constructor(client: KubeClient, component: string, host: string, log: Logger) {
    this.client = client;
    this.component = component;
    this.host = host;
    this.log = log;
  }

  /** The Event name for one (object, dedupe key) pair. */
  static eventName(target: EventTarget, key: string): string {
    const h = shortHash(`${target.metadata.uid}/${key}`);
    return `${target.metadata.name.slice(0, 200)}.${h}`;
  }

  /** Records an event; returns false when it already existed (a replay after restart). */
  async record(target: EventTarget, ev: EventSpec): Promise<boolean> {
    const ns = target.metadata.namespace;
    const name = EventRecorder.eventName(target, ev.dedupeKey);
    const now = new Date().toISOString();
    const body = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace: ns, labels: { "app.kubernetes.io/managed-by": "airollout" } },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: target.metadata.name,
        namespace: ns,
        uid: target.metadata.uid,
        resourceVersion: target.metadata.resourceVersion,
      },
      reason: ev.reason,
      message: ev.message.slice(0, 1024),
      type: ev.type,
      source: { component: this.component, host: this.host },
      reportingComponent: this.component,
      reportingInstance: this.host,
      action: ev.action ?? ev.reason,
      firstTimestamp: now,
      lastTimestamp: now,
      eventTime: null,
      count: 1,
    };
    try {
      await this.client.create(`/api/v1/namespaces/${ns}/events`, body);
      this.log.info({ event: ev.reason, type: ev.type, message: ev.message }, "event recorded");
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.conflict) return false;
      throw new Error(`recording event ${ev.reason}`, { cause: err });
    }
  }
}
