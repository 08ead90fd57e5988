/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does:
 * the holder renews every renewPeriod; others may take the lease once renewTime is older than
 * leaseDurationSeconds. Updates carry the resourceVersion, so two candidates can never both win.
 * A leader that cannot renew before its deadline, or finds another holder, steps down
 * (onStoppedLeading) instead of acting on a lease it may have lost, and then campaigns again
 * like any candidate: run by hand, nothing would restart a process that exited, and an API
 * server that comes back should find the controller waiting, not gone.
 */
import type { Logger } from "pino";
import { ApiError, type KubeClient } from "./client.ts";

export interface LeaseOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
}

interface Lease {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

/** What one attempt found: the lease is ours now, another live holder has it, or it failed. */
type Attempt = "held" | "other" | "failed";

/** MicroTime as the API expects it (RFC 3339 with microseconds). */
function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly opts: Required<LeaseOptions>;
  private readonly log: Logger;
  private leading = false;
  private lastRenew = 0;
  private stopped = false;
  private timer?: NodeJS.Timeout;

  constructor(client: KubeClient, opts: LeaseOptions, log: Logger) {
    this.client = client;
    this.opts = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2, ...opts };
    this.log = log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases/${this.opts.name}`;
  }

  /**
   * Campaigns until stopped. onStartedLeading runs each time the lease is won; onStoppedLeading
   * each time it is lost (the caller stops acting at once), after which this keeps campaigning
   * and may call onStartedLeading again.
   */
  run(onStartedLeading: () => void, onStoppedLeading: () => void): void {
    const tick = async () => {
      if (this.stopped) return;
      let attempt: Attempt = "failed";
      try {
        attempt = (await this.tryAcquireOrRenew()) ? "held" : "other";
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "lease update failed");
      }
      if (this.stopped) return;
      if (attempt === "held") this.lastRenew = Date.now();
      if (attempt === "held" && !this.leading) {
        this.leading = true;
        this.log.info("became leader");
        onStartedLeading();
      } else if (this.leading && attempt !== "held") {
        const missedDeadline = Date.now() - this.lastRenew > this.opts.renewDeadlineSeconds * 1000;
        // Another holder (or a lost update race) is proof enough; a failed call is not, until the deadline.
        if (attempt === "other" || missedDeadline) {
          this.leading = false;
          this.log.warn({ why: attempt === "other" ? "another holder has the lease" : "could not renew before the deadline" }, "lost leadership; campaigning again");
          onStoppedLeading();
        }
      }
      this.timer = setTimeout(tick, this.opts.retryPeriodSeconds * 1000);
    };
    void tick();
  }

  /**
   * One API call of the election, with a timeout shorter than the renew deadline: a call that
   * hangs (an unreachable server that drops packets) must not keep a leader acting past it.
   */
  private call<T>(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<T> {
    const timeoutMs = Math.max(1000, (this.opts.renewDeadlineSeconds * 1000) / 2);
    return this.client.request<T>(method, path, { timeoutMs, ...(body !== undefined ? { body } : {}) });
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    let lease: Lease | undefined;
    try {
      lease = await this.call<Lease>("GET", this.path);
    } catch (err) {
      if (!(err instanceof ApiError && err.notFound)) throw err;
    }
    if (!lease) {
      try {
        await this.call("POST", `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases`, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec: { holderIdentity: this.opts.identity, leaseDurationSeconds: this.opts.leaseDurationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      } catch (err) {
        if (err instanceof ApiError && err.conflict) return false;
        throw err;
      }
    }
    const spec = lease.spec;
    const holder = spec.holderIdentity ?? "";
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const duration = (spec.leaseDurationSeconds ?? this.opts.leaseDurationSeconds) * 1000;
    const expired = holder === "" || renewed + duration < now.getTime();
    if (holder !== this.opts.identity && !expired) return false;
    const takeover = holder !== this.opts.identity;
    const next: Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: this.opts.identity,
        leaseDurationSeconds: this.opts.leaseDurationSeconds,
        renewTime: microTime(now),
        acquireTime: takeover ? microTime(now) : (spec.acquireTime ?? microTime(now)),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takeover ? 1 : 0),
      },
    };
    try {
      await this.call("PUT", this.path, next);
      if (takeover) this.log.info({ previousHolder: holder || null }, "acquired lease");
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.conflict) return false;
      throw err;
    }
  }

  /** Stops campaigning and, when leading, releases the lease so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.client.get<Lease>(this.path);
      if (lease.spec.holderIdentity !== this.opts.identity) return;
      await this.client.replace(this.path, { ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(new Date()) } });
      this.log.info("released lease");
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not release lease");
    }
  }
}
