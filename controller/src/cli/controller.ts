/** `airollout controller`: wires the kube adapters, leader election, probes and the loop. */
import { loadKubeConfig, KubeClient } from "../kube/client.ts";
import { Controller } from "../kube/controller.ts";
import { LeaderElector } from "../kube/lease.ts";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { AIRollout, VersionSpec } from "../api/schema.ts";
import { NoopEnvironments } from "../environments/noop.ts";
import { PulumiEnvironments, kubeSecretReader } from "../environments/pulumi.ts";
import { ensurePulumiToolchain } from "../dev/toolchain.ts";
import { ApiError } from "../kube/client.ts";
import type { EnsureOptions, EnvironmentRole, EnvironmentStatus, EnvironmentSummary, EnvironmentsPort } from "../reconcile/contract.ts";
import type { Logger } from "../telemetry/logger.ts";
import { PrometheusMeasurements } from "../analysis/measure.ts";
import { createLogger } from "../telemetry/logger.ts";
import { createControllerMetrics } from "../telemetry/metrics.ts";
import { startHealthServer } from "../telemetry/http.ts";

export interface ControllerFlags {
  kubeconfig?: string;
  namespace?: string;
  metricsPort: number;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  environments: "pulumi" | "none";
  stateDir?: string;
}

/**
 * The Pulumi adapter, built on first use: a controller whose rollouts use only endpoint
 * versions never needs the Pulumi toolchain (nor waits for its first build).
 */
class LazyPulumiEnvironments implements EnvironmentsPort {
  private inner?: Promise<PulumiEnvironments>;
  private readonly make: () => Promise<PulumiEnvironments>;
  private readonly backendDir: string;
  constructor(make: () => Promise<PulumiEnvironments>, backendDir: string) {
    this.make = make;
    this.backendDir = backendDir;
  }
  private get(): Promise<PulumiEnvironments> {
    this.inner ??= this.make().catch((err: unknown) => {
      this.inner = undefined;
      throw err;
    });
    return this.inner;
  }
  async destroyAll(rollout: AIRollout, reason: string): Promise<void> {
    return (await this.get()).destroyAll(rollout, reason);
  }
  async ensure(rollout: AIRollout, role: EnvironmentRole, version: VersionSpec, opts?: EnsureOptions): Promise<EnvironmentStatus> {
    return (await this.get()).ensure(rollout, role, version, opts);
  }
  async destroy(rollout: AIRollout, role: EnvironmentRole, reason: string): Promise<void> {
    return (await this.get()).destroy(rollout, role, reason);
  }
  async list(rollout?: AIRollout): Promise<EnvironmentSummary[]> {
    return (await this.get()).list(rollout);
  }
  async collectExpired(now: Date): Promise<EnvironmentSummary[]> {
    // No stack was ever made here: nothing to collect, and no reason to build the toolchain.
    if (!this.inner && !process.env.PULUMI_BACKEND_URL && !existsSync(this.backendDir)) return [];
    return (await this.get()).collectExpired(now);
  }
}

/** The environments port the controller uses; `airollout preview` shares it (same state dir). */
export function environmentsPort(flags: Pick<ControllerFlags, "environments" | "stateDir" | "kubeconfig">, client: KubeClient, log: Logger): EnvironmentsPort {
  if (flags.environments === "none") return new NoopEnvironments();
  const stateDir = flags.stateDir ?? join(process.env.AIROLLOUT_STATE_DIR ?? join(homedir(), ".local", "state", "airollout"), "controller");
  const kubeconfig = flags.kubeconfig ?? process.env.KUBECONFIG;
  return new LazyPulumiEnvironments(async () => {
    const toolchain = await ensurePulumiToolchain((line) => log.info({ build: line }, "building the Pulumi toolchain"));
    return new PulumiEnvironments({
      stateDir,
      toolchain,
      readSecret: kubeSecretReader((path) => client.get(path), (err) => err instanceof ApiError && err.notFound),
      ...(kubeconfig ? { env: { KUBECONFIG: kubeconfig } } : {}),
      log: log.child({ port: "environments" }),
    });
  }, join(stateDir, "backend"));
}

/** Runs until SIGTERM/SIGINT (exit 0) or lost leadership (exit 1, to be restarted). */
export async function runController(flags: ControllerFlags): Promise<number> {
  const log = createLogger("controller");
  const metrics = createControllerMetrics();
  const client = new KubeClient(loadKubeConfig(flags.kubeconfig));
  const environments = environmentsPort(flags, client, log);
  const controller = new Controller({
    client,
    log,
    metrics,
    environments,
    measurements: new PrometheusMeasurements(),
    namespace: flags.namespace,
    identity: flags.identity,
    failpoint: process.env.AIROLLOUT_FAILPOINT,
  });
  const elector = flags.leaderElect ? new LeaderElector(client, { namespace: flags.leaseNamespace, name: flags.leaseName, identity: flags.identity }, log) : undefined;
  const { server, port } = await startHealthServer(metrics.registry, { live: () => true, ready: () => !elector?.isLeader || controller.synced }, flags.metricsPort);
  log.info({ port, identity: flags.identity, namespace: flags.namespace ?? "(all)", server: client.server, leaderElect: flags.leaderElect }, "controller started");

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = async (code: number, why: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ reason: why }, "shutting down");
      await controller.stop();
      await elector?.release();
      metrics.leader.set(0);
      server.close();
      log.info("stopped");
      resolve(code);
    };
    process.once("SIGTERM", () => void shutdown(0, "SIGTERM"));
    process.once("SIGINT", () => void shutdown(0, "SIGINT"));
    // Preview environments are collected when their TTL passes (only the leader acts).
    const gc = setInterval(() => {
      if (flags.environments === "none" || (elector && !elector.isLeader)) return;
      environments.collectExpired(new Date()).then(
        (gone) => gone.length && log.info({ stacks: gone.map((g) => g.stack) }, "expired preview environments destroyed"),
        (err: unknown) => log.warn({ err: (err as Error).message }, "preview garbage collection failed"),
      );
    }, 60_000);
    gc.unref();
    if (!elector) {
      metrics.leader.set(1);
      controller.start();
      return;
    }
    log.info({ lease: `${flags.leaseNamespace}/${flags.leaseName}` }, "waiting for leadership");
    elector.run(
      () => {
        metrics.leader.set(1);
        controller.start();
      },
      () => void shutdown(1, "lost leadership"),
    );
  });
}
