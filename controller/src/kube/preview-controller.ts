/**
 * The AIPreview loop: informer -> per-key queue -> one pass (reconcile/preview.ts decides; this
 * file carries the plans out: finalizer, Events, status, and the work through the environments
 * and fixtures ports). The AIRollout controller's conventions hold: only changes outside status
 * enqueue (ChangeFilter), failures back off per key, timers are bounded (the queue caps a wait at
 * an hour and the next pass asks again for the rest).
 *
 * A second, metadata-only informer watches AIRollouts: a rollout created, edited (its generation
 * moves: a preview without spec.version follows the candidate) or deleted wakes the previews
 * that refer to it at once, rather than on the next resync.
 *
 * The CRD may be missing (a controller upgraded before `kubectl apply -f crds/aipreview.yaml`:
 * Helm never upgrades CRDs): then previews are not reconciled, one warning says why, and the
 * AIRollout controller runs on. It looks again every minute.
 */
import type { Logger } from "pino";
import { API_VERSION, GROUP, VERSION, type AIRollout } from "../api/schema.ts";
import { rolloutPath, rolloutsPath } from "../api/paths.ts";
import { PREVIEW_FINALIZER, PREVIEW_KIND, PREVIEW_PLURAL, previewPath, previewsPath, type AIPreview, type PreviewStatus } from "../api/preview-schema.ts";
import { isEnvironmentFailure, type EnvironmentsPort } from "../reconcile/contract.ts";
import { runPreviewPass, type PreviewPlan, type PreviewWork, type PreviewWorkOutcome } from "../reconcile/preview.ts";
import type { FixturesPort } from "../fixtures/port.ts";
import { boundedDelay } from "../api/timer.ts";
import { ApiError, type KubeClient } from "./client.ts";
import { EventRecorder } from "./events.ts";
import { Informer, keyOf } from "./informer.ts";
import { WorkQueue, type WorkResult } from "./queue.ts";
import { ChangeFilter } from "./changes.ts";

export interface PreviewControllerOptions {
  client: KubeClient;
  log: Logger;
  environments: EnvironmentsPort;
  /** Replays recorded fixtures; undefined: previews that ask for fixtures are told they are not available. */
  fixtures?: FixturesPort;
  /** Watch one namespace; all namespaces when undefined. */
  namespace?: string;
  identity: string;
  resyncMs?: number;
  /** Passes at once: a stand-up holds its worker for as long as `pulumi up` takes. */
  concurrency?: number;
  /** How long a fixture replay may take before it is aborted (default 5 minutes). */
  replayTimeoutMs?: number;
  onWatchRestart?: (reason: "closed" | "error" | "gone") => void;
}

/** A pass woken for the ttl's end runs just after it, never just before. */
const EXPIRY_SLACK_MS = 500;
const CRD_RETRY_MS = 60_000;

/** What the rollout watch keeps of an AIRollout: its name and generation, never its spec. */
export interface RolloutMeta {
  metadata: { name: string; namespace?: string; resourceVersion: string; generation?: number };
}

/** Keeps only what RolloutMeta names, so the second cache costs a few strings per rollout. */
export function rolloutMeta(raw: unknown): RolloutMeta {
  const md = (raw as { metadata?: Record<string, unknown> } | undefined)?.metadata ?? {};
  const str = (v: unknown) => (typeof v === "string" ? v : "");
  return { metadata: { name: str(md.name), ...(typeof md.namespace === "string" ? { namespace: md.namespace } : {}), resourceVersion: str(md.resourceVersion), ...(typeof md.generation === "number" ? { generation: md.generation } : {}) } };
}

/**
 * Which rollout events are news to its previews: the first sight of a rollout (created, or
 * created again after a deletion), a new generation (a spec change; status writes leave it),
 * and a deletion. One entry per rollout the informer holds, removed with it.
 */
export class RolloutWakes {
  private readonly generations = new Map<string, number | undefined>();

  /** Whether an added or updated rollout moves its previews. */
  upsert(r: RolloutMeta): boolean {
    const key = keyOf(r);
    const known = this.generations.has(key);
    const before = this.generations.get(key);
    this.generations.set(key, r.metadata.generation);
    return !known || before !== r.metadata.generation;
  }

  /** A deleted rollout always moves its previews (to RolloutNotFound). */
  delete(r: RolloutMeta): boolean {
    this.generations.delete(keyOf(r));
    return true;
  }

  get size(): number {
    return this.generations.size;
  }
}

/** The keys of the previews in `previews` whose spec.rolloutRef names namespace/name. */
export function previewsOf(previews: Iterable<AIPreview>, namespace: string | undefined, name: string): string[] {
  const out: string[] = [];
  for (const p of previews) {
    const ref = (p.spec as { rolloutRef?: { name?: unknown } } | undefined)?.rolloutRef?.name;
    if (p.metadata.namespace === namespace && ref === name) out.push(keyOf(p));
  }
  return out;
}

export class PreviewController {
  private readonly o: PreviewControllerOptions;
  private readonly informer: Informer<AIPreview>;
  private readonly rollouts: Informer<RolloutMeta>;
  private readonly wakes = new RolloutWakes();
  private readonly queue: WorkQueue;
  private readonly changes = new ChangeFilter();
  private readonly events: EventRecorder;
  private resyncTimer?: NodeJS.Timeout;
  private crdTimer?: NodeJS.Timeout;
  private running = false;
  private informerStarted = false;

  constructor(o: PreviewControllerOptions) {
    this.o = o;
    this.events = new EventRecorder(o.client, "airollout-controller", o.identity, o.log);
    this.queue = new WorkQueue((key) => this.reconcileKey(key), {
      concurrency: o.concurrency ?? 4,
      onError: (key, err, retryInMs) => {
        const [namespace, name] = key.split("/");
        o.log.warn({ namespace, preview: name, err: (err as Error).message, cause: ((err as Error).cause as Error | undefined)?.message, retryInMs }, "preview reconcile failed; retrying with backoff");
      },
    });
    this.informer = new Informer<AIPreview>(
      o.client,
      previewsPath(o.namespace),
      {
        onUpsert: (obj) => {
          if (this.changes.changed(keyOf(obj), obj)) this.queue.add(keyOf(obj));
        },
        onDelete: (obj) => {
          this.changes.forget(keyOf(obj));
          this.queue.forget(keyOf(obj));
        },
      },
      o.log.child({ informer: PREVIEW_PLURAL }),
      o.onWatchRestart ? { onRestart: o.onWatchRestart } : {},
    );
    this.rollouts = new Informer<RolloutMeta>(
      o.client,
      rolloutsPath(o.namespace),
      {
        onUpsert: (r) => {
          if (this.wakes.upsert(r)) this.wakePreviewsOf(r);
        },
        onDelete: (r) => {
          if (this.wakes.delete(r)) this.wakePreviewsOf(r);
        },
      },
      o.log.child({ informer: "airollouts (for previews)" }),
      { transform: rolloutMeta, ...(o.onWatchRestart ? { onRestart: o.onWatchRestart } : {}) },
    );
  }

  /** Queues the previews that refer to a rollout (the queue holds a key once, however often it is added). */
  private wakePreviewsOf(r: RolloutMeta): void {
    const previews = this.informer.keys().map((k) => this.informer.get(k)).filter((p): p is AIPreview => p !== undefined);
    for (const key of previewsOf(previews, r.metadata.namespace, r.metadata.name)) this.queue.add(key);
  }

  /** Starts watching once the AIPreview CRD is served (call when leading). */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.startWhenServed(true);
  }

  /** Stops taking work and waits for passes in progress. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.crdTimer) clearTimeout(this.crdTimer);
    await this.queue.shutdown();
    if (this.informerStarted) await Promise.all([this.informer.stop(), this.rollouts.stop()]);
  }

  private async startWhenServed(first: boolean): Promise<void> {
    if (!this.running) return;
    let served = false;
    try {
      const res = await this.o.client.get<{ resources?: { name: string }[] }>(`/apis/${GROUP}/${VERSION}`);
      served = (res.resources ?? []).some((r) => r.name === PREVIEW_PLURAL);
      if (!served && first) this.o.log.warn(`the ${PREVIEW_KIND} CRD is not installed: previews are not reconciled until it is (kubectl apply -f crds/aipreview.yaml)`);
    } catch (err) {
      if (first) this.o.log.warn({ err: (err as Error).message }, `could not tell whether the ${PREVIEW_KIND} CRD is installed; looking again in a minute`);
    }
    if (!this.running) return;
    if (!served) {
      this.crdTimer = setTimeout(() => void this.startWhenServed(false), CRD_RETRY_MS);
      this.crdTimer.unref();
      return;
    }
    this.informerStarted = true;
    this.informer.start();
    this.rollouts.start();
    const resync = Math.max(1000, boundedDelay(this.o.resyncMs ?? 5 * 60_000));
    this.resyncTimer = setInterval(() => {
      for (const key of this.informer.keys()) this.queue.add(key);
    }, resync);
    this.resyncTimer.unref();
    this.o.log.info({ namespace: this.o.namespace ?? "(all)" }, "watching previews");
  }

  private async reconcileKey(key: string): Promise<WorkResult> {
    const obj = this.informer.get(key);
    if (!obj) return {};
    const log = this.o.log.child({ namespace: obj.metadata.namespace, preview: obj.metadata.name });
    try {
      const rollout = await this.rolloutOf(obj);
      const res = await runPreviewPass(obj, rollout, this.o.fixtures !== undefined, {
        apply: (current, plan) => this.apply(current, plan, log),
        work: (w) => this.work(obj, rollout, w, log),
        clock: () => new Date(),
      });
      if (res.backoff) return { backoff: true };
      return res.requeueAfterMs !== undefined ? { requeueAfterMs: res.requeueAfterMs + EXPIRY_SLACK_MS } : {};
    } catch (err) {
      if (err instanceof ApiError && err.conflict) {
        log.debug({ err: err.message }, "conflict; will retry on the newer version");
        return { requeueAfterMs: 200 };
      }
      throw err;
    }
  }

  /** The AIRollout spec.rolloutRef names (undefined when it does not exist, or the spec names none). */
  private async rolloutOf(obj: AIPreview): Promise<AIRollout | undefined> {
    const name = (obj.spec as { rolloutRef?: { name?: unknown } } | undefined)?.rolloutRef?.name;
    if (typeof name !== "string" || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) return undefined;
    try {
      return await this.o.client.get<AIRollout>(rolloutPath(obj.metadata.namespace, name));
    } catch (err) {
      if (err instanceof ApiError && err.notFound) return undefined;
      throw new Error(`reading AIRollout ${obj.metadata.namespace}/${name}`, { cause: err });
    }
  }

  /**
   * A rollout to destroy a stack with when the rollout is gone: the default backend and stack
   * name. (Deleting a rollout destroys its previews' stacks with its own, so usually nothing is left.)
   */
  private static orphanRollout(obj: AIPreview): AIRollout {
    const name = (obj.spec as { rolloutRef?: { name?: string } } | undefined)?.rolloutRef?.name ?? obj.metadata.name;
    return { apiVersion: API_VERSION, kind: "AIRollout", metadata: { name, namespace: obj.metadata.namespace, uid: "", generation: 0, resourceVersion: "" }, spec: {} };
  }

  /** Does one piece of work; failures of the ports become outcomes. */
  private async work(obj: AIPreview, rollout: AIRollout | undefined, w: PreviewWork, log: Logger): Promise<PreviewWorkOutcome> {
    const t0 = Date.now();
    switch (w.type) {
      case "ensure":
        try {
          const status = await this.o.environments.ensure(rollout!, w.role, w.version, { expiresAt: w.expiresAt });
          log.info({ stack: status.stack, url: status.url, seconds: (Date.now() - t0) / 1000 }, "preview environment ready");
          return { type: "ensure", ok: true, status };
        } catch (err) {
          if (!isEnvironmentFailure(err)) throw new Error(`standing up preview ${obj.metadata.name}`, { cause: err });
          log.warn({ reason: err.reason, transient: err.transient, err: err.message }, "preview environment failed");
          return { type: "ensure", ok: false, failure: { transient: err.transient, ...(err.permanent ? { permanent: true } : {}), reason: err.reason, message: err.message } };
        }
      case "destroy":
        try {
          await this.o.environments.destroy(rollout ?? PreviewController.orphanRollout(obj), w.role, w.reason);
          log.info({ role: w.role, reason: w.reason, seconds: (Date.now() - t0) / 1000 }, "preview environment destroyed");
          return { type: "destroy", ok: true };
        } catch (err) {
          log.warn({ role: w.role, err: (err as Error).message }, "destroying a preview environment failed");
          return { type: "destroy", ok: false, message: (err as Error).message };
        }
      case "replay":
        try {
          const summary = await this.o.fixtures!.replay({ ...w.request, signal: AbortSignal.timeout(this.o.replayTimeoutMs ?? 5 * 60_000) });
          log.info({ replayed: summary.replayed, mismatched: summary.mismatched, errors: summary.errors }, "fixtures replayed");
          return { type: "replay", ok: true, summary };
        } catch (err) {
          log.warn({ err: (err as Error).message }, "replaying fixtures failed");
          return { type: "replay", ok: false, message: (err as Error).message };
        }
    }
  }

  /** Finalizer, then Events (named by dedupe key: a replay records nothing twice), then status once; then the finalizer's removal. */
  private async apply(obj: AIPreview, plan: PreviewPlan, log: Logger): Promise<AIPreview | undefined> {
    let current = plan.addFinalizer ? await this.patchFinalizers(obj, [...(obj.metadata.finalizers ?? []), PREVIEW_FINALIZER]) : obj;
    const target = { apiVersion: API_VERSION, kind: PREVIEW_KIND, metadata: current.metadata };
    for (const ev of plan.events) await this.events.record(target, ev);
    if (plan.status && !sameJson(current.status, plan.status)) current = await this.writeStatus(current, plan.status, log);
    if (plan.removeFinalizer) {
      try {
        await this.patchFinalizers(current, (current.metadata.finalizers ?? []).filter((f) => f !== PREVIEW_FINALIZER));
        log.info("finalizer removed; preview deleted");
      } catch (err) {
        if (!(err instanceof ApiError && err.notFound)) throw err;
      }
      return undefined;
    }
    return current;
  }

  private async patchFinalizers(obj: AIPreview, finalizers: string[]): Promise<AIPreview> {
    const written = await this.o.client.patch<AIPreview>(previewPath(obj.metadata.namespace, obj.metadata.name), { metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers } });
    this.informer.observe(written);
    // Our own write: its watch event must not start another pass.
    this.changes.observe(keyOf(written), written);
    return written;
  }

  private async writeStatus(obj: AIPreview, status: PreviewStatus, log: Logger): Promise<AIPreview> {
    const body = { apiVersion: API_VERSION, kind: PREVIEW_KIND, metadata: obj.metadata, spec: obj.spec, status };
    const written = await this.o.client.replace<AIPreview>(`${previewPath(obj.metadata.namespace, obj.metadata.name)}/status`, body);
    this.informer.observe(written);
    if (status.phase !== obj.status?.phase) log.info({ from: obj.status?.phase ?? "Pending", to: status.phase, message: status.message }, "preview phase changed");
    return written;
  }
}

/** Whether two values say the same, whatever the order of their keys (the API server sorts them). */
function sameJson(a: unknown, b: unknown): boolean {
  const canonical = (v: unknown): string =>
    JSON.stringify(v ?? {}, (_k, x: unknown) => (x !== null && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0))) : x));
  return canonical(a) === canonical(b);
}
