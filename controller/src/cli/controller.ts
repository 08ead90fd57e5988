/** `airollout controller`: wires the kube adapters, leader election, probes and the loop. */
import { loadKubeConfig, KubeClient } from "../kube/client.ts";
import { Controller } from "../kube/controller.ts";
import { LeaderElector } from "../kube/lease.ts";
import { NoopEnvironments } from "../environments/noop.ts";
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
}

/** Runs until SIGTERM/SIGINT (exit 0) or lost leadership (exit 1, to be restarted). */
export async function runController(flags: ControllerFlags): Promise<number> {
  const log = createLogger("controller");
  const metrics = createControllerMetrics();
  const client = new KubeClient(loadKubeConfig(flags.kubeconfig));
  const controller = new Controller({
    client,
    log,
    metrics,
    environments: new NoopEnvironments(),
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
