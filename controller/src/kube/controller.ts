/**
 * The AIRollout controller loop: informer -> per-key queue -> observe world -> one pass
 * (reconcile/pass.ts: decide, run the measurements and environment stand-ups it asks for, decide
 * again) -> carry out the plan: finalizer, Events, environment teardown, then status once per pass.
 */
import type { Logger } from "pino";
import { API_VERSION, FINALIZER, KIND, PLURAL, type AIRollout, type Status } from "../api/schema.ts";
import { rolloutPath, rolloutsPath } from "../api/paths.ts";
import { forRollout } from "../telemetry/logger.ts";
import { forgetRollout, type ControllerMetrics } from "../telemetry/metrics.ts";
import type { EgressPolicy } from "../api/egress.ts";
import { references, validateSpec } from "../reconcile/reconcile.ts";
import { runPass } from "../reconcile/pass.ts";
import { isEnvironmentFailure, type EnvironmentRole, type EnvironmentsPort, type GoldenPort, type MeasurementsPort } from "../reconcile/contract.ts";
import { GoldenRunner } from "../golden/runner.ts";
import type { EnsureRequest, EnvironmentOutcome, Plan, RolloutRole, World } from "../reconcile/contract.ts";
import { ApiError, countRequests, type KubeClient } from "./client.ts";
import { EventRecorder } from "./events.ts";
import { Informer, keyOf } from "./informer.ts";
import { ReferenceIndex, ReferenceInformers, fetchReference, observeReferences, type ReferenceCache } from "./references.ts";
import { WorkQueue, type WorkResult } from "./queue.ts";
import { ChangeFilter } from "./changes.ts";
import { boundedDelay } from "../api/timer.ts";

export interface ControllerOptions {
  client: KubeClient;
  log: Logger;
  metrics: ControllerMetrics;
  environments: EnvironmentsPort;
  measurements: MeasurementsPort;
  /** Runs golden suites against candidates; default: golden/runner.ts reading suites with `client`. */
  golden?: GoldenPort;
  /** Watch one namespace; all namespaces when undefined. */
  namespace?: string;
  identity: string;
  resyncMs?: number;
  /** Passes run at once (different keys); default DEFAULT_CONCURRENCY. */
  concurrency?: number;
  /** The cluster admin's egress policy: a rollout whose spec dials outside it is refused (EgressDenied). */
  egress?: EgressPolicy;
  /** Test failpoints (AIROLLOUT_FAILPOINT), e.g. `after-events=3000` sleeps between events and status. */
  failpoint?: string;
}

/**
 * Whether two statuses say the same, whatever the order of their keys: the API server answers
 * with keys sorted, a pass builds them in its own order, and comparing the texts as they are
 * rewrote every status on every resync (one needless write per rollout per resync).
 */
export function statusEqual(a: Status | undefined, b: Status | undefined): boolean {
  return canonicalJson(a ?? {}) === canonicalJson(b ?? {});
}

/** JSON with every object's keys sorted (arrays keep their order: it means something). */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  );
}

/**
 * A pass spends most of its time waiting on the API server (finalizer, Events, status), so a
 * start on thousands of rollouts is bound by requests in flight, not by CPU: with 4 workers the
 * controller sat idle 40% of a 1,000-rollout start (bench/scale.ts, CPU profile).
 */
export const DEFAULT_CONCURRENCY = 16;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Controller {
  private readonly o: ControllerOptions;
  private readonly informer: Informer<AIRollout>;
  /** ConfigMaps and Secrets, metadata and digests only; observeWorld reads them through `cache`. */
  private readonly referenceInformers: ReferenceInformers;
  private readonly cache: ReferenceCache;
  private readonly index = new ReferenceIndex();
  private readonly queue: WorkQueue;
  /** Our own status writes come back through the watch: they must not cut the backoff short. */
  private readonly changes = new ChangeFilter();
  private readonly events: EventRecorder;
  private readonly golden: GoldenPort;
  private resyncTimer?: NodeJS.Timeout;
  private running = false;

  constructor(o: ControllerOptions) {
    this.o = o;
    this.golden = o.golden ?? new GoldenRunner(o.client);
    this.events = new EventRecorder(o.client, "airollout-controller", o.identity, o.log);
    countRequests(o.client, o.metrics.registry);
    this.queue = new WorkQueue((key) => this.reconcileKey(key), {
      concurrency: o.concurrency ?? DEFAULT_CONCURRENCY,
      onError: (key, err, retryInMs) => {
        const [namespace, name] = key.split("/");
        o.log.warn({ namespace, name, rollout: key, err: (err as Error).message, cause: ((err as Error).cause as Error | undefined)?.message, retryInMs }, "reconcile failed; retrying with backoff");
      },
    });
    this.informer = new Informer<AIRollout>(
      o.client,
      rolloutsPath(o.namespace),
      {
        onUpsert: (obj) => {
          this.indexReferences(obj);
          if (this.changes.changed(keyOf(obj), obj)) this.queue.add(keyOf(obj));
        },
        onDelete: (obj) => {
          this.index.remove(keyOf(obj));
          this.changes.forget(keyOf(obj));
          this.queue.forget(keyOf(obj));
          // Gone from the API server (after finalization, or deleted without our finalizer):
          // its series go too, so no alert fires on a rollout that no longer exists.
          forgetRollout(o.metrics, obj.metadata.namespace, obj.metadata.name);
        },
      },
      o.log.child({ informer: PLURAL }),
      { onRestart: (reason) => o.metrics.watchRestarts.inc({ reason }) },
    );
    // An edit of a referenced ConfigMap or Secret (a prompt, an env value) reconciles the
    // rollouts that refer to it: their revision may have changed.
    this.referenceInformers = new ReferenceInformers({
      client: o.client,
      ...(o.namespace ? { namespace: o.namespace } : {}),
      onChange: (namespace, kind, name) => {
        for (const key of this.index.rolloutsFor(namespace, kind, name)) this.queue.add(key);
      },
      log: o.log,
      onRestart: (reason) => o.metrics.watchRestarts.inc({ reason }),
    });
    this.cache = this.referenceInformers;
  }

  /** Rebuilds the index entry of a rollout: the objects its (valid) spec refers to. */
  private indexReferences(obj: AIRollout): void {
    const parsed = validateSpec(obj.spec);
    this.index.set(keyOf(obj), obj.metadata.namespace, parsed.ok ? references(parsed.spec, obj.status) : []);
  }

  get synced(): boolean {
    return this.informer.hasSynced;
  }

  /** Starts watching and reconciling (call when leading). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.referenceInformers.start();
    this.informer.start();
    // Bounded both ways: a 0 interval would spin, one past 2^31-1 ms would fire every 1 ms.
    const resync = Math.max(1000, boundedDelay(this.o.resyncMs ?? 5 * 60_000));
    this.resyncTimer = setInterval(() => {
      for (const key of this.informer.keys()) this.queue.add(key);
    }, resync);
    this.resyncTimer.unref();
  }

  /** Stops taking work and waits for passes in progress (graceful shutdown). */
  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.queue.shutdown();
    await Promise.all([this.informer.stop(), this.referenceInformers.stop()]);
  }

  private async observeWorld(obj: AIRollout): Promise<World> {
    const world: World = { references: {}, ...(this.o.egress ? { egress: this.o.egress } : {}) };
    const parsed = validateSpec(obj.spec);
    if (!parsed.ok) return world;
    const ns = obj.metadata.namespace;
    // From the caches once they have synced; until then (or without list/watch rights) one GET
    // per reference, as the same summary: the revision must not depend on where it was read.
    world.references = await observeReferences(references(parsed.spec, obj.status), ns, this.cache, (r) => fetchReference(this.o.client, ns, r));
    return world;
  }

  private async reconcileKey(key: string): Promise<WorkResult> {
    const obj = this.informer.get(key);
    if (!obj) return {};
    const log = forRollout(this.o.log, obj.metadata.namespace, obj.metadata.name);
    const end = this.o.metrics.reconcileDuration.startTimer();
    try {
      const world = await this.observeWorld(obj);
      const now = new Date();
      // The version the plan is applied to: a status announced before a stand-up replaces it.
      let current = obj;
      const plan = await runPass(obj, world, now, {
        measure: (requests) => this.o.measurements.measure(requests),
        golden: (requests) => this.golden.run(requests),
        ensure: (requests) => this.ensureEnvironments(obj, requests, log),
        announce: async (status) => {
          if (!statusEqual(current.status, status)) current = await this.writeStatus(obj, current, status, log);
        },
        // The steps a stand-up lets start are timed from when it answered, not from `now`.
        clock: () => new Date(),
      });
      const result = await this.apply(current, plan, log);
      end({ result: result.backoff ? "requeue" : "ok" });
      this.o.metrics.reconcileTotal.inc({ result: result.backoff ? "requeue" : "ok" });
      return result;
    } catch (err) {
      end({ result: "error" });
      this.o.metrics.reconcileTotal.inc({ result: "error" });
      if (err instanceof ApiError && err.conflict) {
        // Someone (often our own previous pass) changed the object; the watch brings the new
        // version, and the pass runs again on it.
        log.debug({ err: err.message }, "conflict; will retry on the newer version");
        return { requeueAfterMs: 200 };
      }
      throw err;
    } finally {
      this.o.metrics.queueDepth.set(this.queue.depth);
    }
  }

  /** Runs `pulumi up` (through the port) for each requested role; failures become outcomes. */
  private async ensureEnvironments(obj: AIRollout, requests: readonly EnsureRequest[], log: Logger): Promise<Partial<Record<EnvironmentRole, EnvironmentOutcome>>> {
    const parsed = validateSpec(obj.spec);
    if (!parsed.ok) return {};
    const out: Partial<Record<EnvironmentRole, EnvironmentOutcome>> = {};
    await Promise.all(
      requests.map(async (r) => {
        const t0 = Date.now();
        try {
          const status = await this.o.environments.ensure(obj, r.role, r.deploy, { revision: r.revision });
          log.info({ role: r.role, stack: status.stack, url: status.url, seconds: (Date.now() - t0) / 1000 }, "environment ready");
          out[r.role] = { ok: true, status };
        } catch (err) {
          if (!isEnvironmentFailure(err)) throw new Error(`standing up the ${r.role} environment`, { cause: err });
          log.warn({ role: r.role, reason: err.reason, transient: err.transient, err: err.message }, "environment update failed");
          out[r.role] = { ok: false, failure: { transient: err.transient, ...(err.permanent ? { permanent: true } : {}), reason: err.reason, message: err.message, stackName: err.stackName, role: err.role } };
        }
      }),
    );
    return out;
  }

  private objectPath(obj: AIRollout): string {
    return rolloutPath(obj.metadata.namespace, obj.metadata.name);
  }

  /**
   * Carries the plan out in an order that survives a crash at any point: the finalizer, then
   * the Events (named by dedupe key, so a replay records nothing twice), then the environment
   * actions, then the status, written once.
   */
  private async apply(obj: AIRollout, plan: Plan, log: Logger): Promise<WorkResult> {
    const current = plan.actions.some((a) => a.type === "addFinalizer") ? await this.addFinalizer(obj, log) : obj;
    for (const ev of plan.events) await this.events.record(current, ev);
    await this.failpointAfterEvents(plan, log);
    for (const action of plan.actions) {
      if (action.type === "destroyEnvironments") await this.destroyEnvironments(current, action.reason, action.roles);
      if (action.type === "removeFinalizer") {
        await this.removeFinalizer(current, log);
        return {};
      }
    }
    if (plan.status && !statusEqual(current.status, plan.status)) await this.writeStatus(obj, current, plan.status, log);
    return { ...(plan.backoff ? { backoff: true } : {}), ...(plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : {}) };
  }

  private async addFinalizer(obj: AIRollout, log: Logger): Promise<AIRollout> {
    const current = await this.o.client.patch<AIRollout>(this.objectPath(obj), {
      metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: [...(obj.metadata.finalizers ?? []), FINALIZER] },
    });
    this.informer.observe(current);
    // Our own write, like a status write: its watch event must not start a pass that cuts the
    // backoff of a failure in the next pass short.
    this.changes.observe(keyOf(current), current);
    log.debug("finalizer added");
    return current;
  }

  /** Test failpoint (AIROLLOUT_FAILPOINT=after-events=MS): a crash window between Events and status. */
  private async failpointAfterEvents(plan: Plan, log: Logger): Promise<void> {
    const fp = this.o.failpoint?.match(/^after-events=(\d+)$/);
    if (!fp || plan.events.length === 0) return;
    log.warn({ failpoint: "after-events" }, "failpoint after-events reached");
    await sleep(Number(fp[1]));
  }

  private async destroyEnvironments(obj: AIRollout, reason: string, roles: readonly RolloutRole[] | undefined): Promise<void> {
    if (!roles) return this.o.environments.destroyAll(obj, reason);
    for (const role of roles) await this.o.environments.destroy(obj, role, reason);
  }

  private async removeFinalizer(obj: AIRollout, log: Logger): Promise<void> {
    try {
      await this.o.client.patch(this.objectPath(obj), {
        metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) },
      });
      log.info("finalizer removed; rollout deleted");
    } catch (err) {
      if (!(err instanceof ApiError && err.notFound)) throw err;
    }
  }

  /** Replaces status through the status subresource; logs and counts a phase change; returns the object written. */
  private async writeStatus(before: AIRollout, current: AIRollout, status: Status, log: Logger): Promise<AIRollout> {
    const body = { apiVersion: API_VERSION, kind: KIND, metadata: current.metadata, spec: current.spec, status };
    const written = await this.o.client.replace<AIRollout>(`${this.objectPath(current)}/status`, body);
    this.informer.observe(written);
    const { namespace, name } = before.metadata;
    const from = before.status?.phase;
    if (status.phase !== from) {
      log.info({ from: from ?? "Pending", to: status.phase, message: status.message }, "phase changed");
      if (from) this.o.metrics.rolloutPhase.remove({ namespace, name, phase: from });
    }
    if (status.phase) this.o.metrics.rolloutPhase.set({ namespace, name, phase: status.phase }, 1);
    this.o.metrics.rolloutCanaryWeight.set({ namespace, name }, status.canaryWeight ?? 0);
    return written;
  }
}
