/**
 * Kubernetes Events for rollouts (core/v1, shown by `kubectl describe` and `kubectl get events`).
 *
 * Each event has a deterministic name derived from the object's uid and the event's dedupe key
 * (generation, transition, step). The controller records events before it writes status, so a
 * controller killed between the two re-records the same names after restart and the API server
 * answers 409: nothing is duplicated and nothing is lost.
 *
 * Like client-go's EventRecorder (its correlator), the recorder keeps the API traffic of Events
 * bounded per object, in memory and bounded itself:
 * - a name it recorded (or found recorded) is not sent again: a pass retried with backoff on the
 *   same problem costs no request, where each retry used to be a POST answered 409;
 * - a repeat (the same object, type, reason and message under another name, within
 *   SERIES_WINDOW_MS) raises the first Event's `count` and `lastTimestamp` instead of creating an
 *   object, as `kubectl describe` shows `(x3 over 2m)`;
 * - each object has a token bucket (EVENT_BURST Events, then one per EVENT_REFILL_MS): a hot loop
 *   cannot flood the API server; a refused Event is logged and counted, never an error of the pass.
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

/** Repeats within this window are one Event with a count (client-go: 10 minutes). */
export const SERIES_WINDOW_MS = 10 * 60_000;
/** Events an object may record at once before its bucket refills (client-go: 25). */
export const EVENT_BURST = 60;
/** One more Event per object every this many milliseconds (client-go: 5 minutes). */
export const EVENT_REFILL_MS = 10_000;
/** Entries per memory (names, series, buckets): a few per rollout for thousands of rollouts. */
export const RECORDER_MEMORY = 20_000;

/** A Map that forgets its oldest entries past `max` (insertion order; a write refreshes). */
class Bounded<V> {
  private readonly m = new Map<string, V>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  get(k: string): V | undefined {
    return this.m.get(k);
  }
  set(k: string, v: V): void {
    this.m.delete(k);
    this.m.set(k, v);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value!);
  }
  delete(k: string): void {
    this.m.delete(k);
  }
  get size(): number {
    return this.m.size;
  }
}

interface Series {
  name: string;
  count: number;
  firstAt: number;
}

/** What a record call did: created an Event, counted a repeat, or sent nothing. */
export type RecordOutcome = "created" | "counted" | "known" | "throttled";

export interface RecorderOptions {
  /** The clock (tests); Date.now by default. */
  now?: () => number;
  burst?: number;
  refillMs?: number;
  memory?: number;
}

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly component: string;
  private readonly host: string;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly burst: number;
  private readonly refillMs: number;
  /** Event names known to exist: recorded by us, or answered 409. */
  private readonly known: Bounded<true>;
  /** The Event a repeat is counted on, by object and what it says. */
  private readonly series: Bounded<Series>;
  private readonly buckets: Bounded<{ tokens: number; at: number }>;
  /** Events refused by the per-object budget since start (logged each time). */
  throttled = 0;

  constructor(client: KubeClient, component: string, host: string, log: Logger, opts: RecorderOptions = {}) {
    this.client = client;
    this.component = component;
    this.host = host;
    this.log = log;
    this.now = opts.now ?? Date.now;
    this.burst = opts.burst ?? EVENT_BURST;
    this.refillMs = opts.refillMs ?? EVENT_REFILL_MS;
    const memory = opts.memory ?? RECORDER_MEMORY;
    this.known = new Bounded(memory);
    this.series = new Bounded(memory);
    this.buckets = new Bounded(memory);
  }

  /** The Event name for one (object, dedupe key) pair. */
  static eventName(target: EventTarget, key: string): string {
    const h = shortHash(`${target.metadata.uid}/${key}`);
    return `${target.metadata.name.slice(0, 200)}.${h}`;
  }

  /**
   * Records an event; returns false when nothing new was created (a replay after restart, a
   * name already recorded, a repeat counted on its first Event, or the object's budget spent).
   */
  async record(target: EventTarget, ev: EventSpec): Promise<boolean> {
    return (await this.recordOutcome(target, ev)) === "created";
  }

  /** Records an event and says what it took (see the module comment). */
  async recordOutcome(target: EventTarget, ev: EventSpec): Promise<RecordOutcome> {
    const name = EventRecorder.eventName(target, ev.dedupeKey);
    if (this.known.get(name)) return "known";
    if (!this.take(target.metadata.uid)) {
      this.throttled++;
      this.log.warn({ event: ev.reason, type: ev.type, object: `${target.metadata.namespace}/${target.metadata.name}` }, "event not recorded: the object's event budget is spent");
      return "throttled";
    }
    const seriesKey = `${target.metadata.uid}/${ev.type}/${ev.reason}/${shortHash(ev.message)}`;
    const at = this.now();
    const s = this.series.get(seriesKey);
    if (s && at - s.firstAt <= SERIES_WINDOW_MS && (await this.count(target, s, at))) {
      this.known.set(name, true);
      return "counted";
    }
    const created = await this.create(target, ev, name, at);
    this.known.set(name, true);
    if (created) this.series.set(seriesKey, { name, count: 1, firstAt: at });
    return created ? "created" : "known";
  }

  /** A token from the object's bucket, refilled one per refillMs up to burst. */
  private take(uid: string): boolean {
    const t = this.now();
    const b = this.buckets.get(uid) ?? { tokens: this.burst, at: t };
    const refills = Math.floor((t - b.at) / this.refillMs);
    const tokens = Math.min(this.burst, b.tokens + Math.max(0, refills));
    const at = refills > 0 ? b.at + refills * this.refillMs : b.at;
    this.buckets.set(uid, { tokens: Math.max(0, tokens - 1), at });
    return tokens >= 1;
  }

  /**
   * Raises the count of a series' first Event; false when it is gone (expired) or patching Events
   * is not allowed (RBAC without `patch events`), to create anew.
   */
  private async count(target: EventTarget, s: Series, at: number): Promise<boolean> {
    try {
      await this.client.patch(`/api/v1/namespaces/${target.metadata.namespace}/events/${s.name}`, { count: s.count + 1, lastTimestamp: new Date(at).toISOString() });
      s.count++;
      return true;
    } catch (err) {
      if (err instanceof ApiError && (err.notFound || err.status === 403)) return false;
      throw new Error("counting a repeated event", { cause: err });
    }
  }

  private async create(target: EventTarget, ev: EventSpec, name: string, at: number): Promise<boolean> {
    const ns = target.metadata.namespace;
    const now = new Date(at).toISOString();
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
