/** `airollout controller`: wires the kube adapters, leader election, probes and the loop. */
import { loadKubeConfig, KubeClient } from "../kube/client.ts";
import { Controller } from "../kube/controller.ts";
import { PreviewController } from "../kube/preview-controller.ts";
import type { FixturesPort } from "../fixtures/port.ts";
import { GatewayFixtures } from "../fixtures/replay.ts";
import { rolloutsPath } from "../api/paths.ts";
import { LeaderElector } from "../kube/lease.ts";
import { existsSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import type { AIRollout, VersionSpec } from "../api/schema.ts";
import { NoopEnvironments } from "../environments/noop.ts";
import type { PulumiEnvironments } from "../environments/pulumi.ts";
import { ApiError } from "../kube/client.ts";
import type { EnsureOptions, EnvironmentRole, EnvironmentStatus, EnvironmentSummary, EnvironmentsPort } from "../reconcile/contract.ts";
import type { Logger } from "../telemetry/logger.ts";
import { PrometheusMeasurements } from "../analysis/measure.ts";
import { PrometheusProvider } from "../analysis/prometheus.ts";
import { createLogger } from "../telemetry/logger.ts";
import { createControllerMetrics } from "../telemetry/metrics.ts";
import { startHealthServer } from "../telemetry/http.ts";
import { CONTROLLER, parseFlags } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { HEARTBEAT_MS, publishBackend, publishedName, type PublishedBackend } from "./backend.ts";
import { parseDuration } from "../api/duration.ts";
import type { EgressPolicy } from "../api/egress.ts";
import { describeEgress, egressPolicyFromFlags } from "./egress.ts";

export interface ControllerFlags {
  kubeconfig?: string;
  namespace?: string;
  metricsPort: number;
  /** Address of /healthz, /readyz and /metrics. */
  bindAddress: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  environments: "pulumi" | "none";
  stateDir?: string;
  /** How often expired previews are collected (default one minute). */
  previewGcIntervalMs?: number;
  /** The egress policy a rollout's spec is checked against (none: no check). */
  egress?: EgressPolicy;
  /** The gateway's admin (metrics) port, where AIPreviews' fixtures are fetched (none: not available). */
  gatewayUrl?: string;
}

/**
 * The Pulumi adapter, built on first use: a controller whose rollouts use only endpoint
 * versions never needs the Pulumi toolchain (nor waits for its first build).
 */
class LazyPulumiEnvironments implements EnvironmentsPort {
  private inner?: Promise<PulumiEnvironments>;
  private readonly make: () => Promise<PulumiEnvironments>;
  /** The default backend's directory when it is a file backend (else undefined). */
  private readonly backendDir: string | undefined;
  constructor(make: () => Promise<PulumiEnvironments>, backendDir: string | undefined) {
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
    if (!this.inner && this.backendDir !== undefined && !existsSync(this.backendDir)) return [];
    return (await this.get()).collectExpired(now);
  }
}

/** The state directory and default Pulumi backend of a process with these flags. */
export function pulumiState(flags: { stateDir?: string; backendUrl?: string }, role: "controller" | "cli" = "controller"): { stateDir: string; backend: string } {
  const stateDir = flags.stateDir ?? join(process.env.AIROLLOUT_STATE_DIR ?? join(homedir(), ".local", "state", "airollout"), role);
  return { stateDir, backend: flags.backendUrl ?? process.env.PULUMI_BACKEND_URL ?? `file://${join(stateDir, "backend")}` };
}

/**
 * The environments port the controller uses; `airollout preview` and `stacks` share it, with
 * the backend the controller published (backendUrl) and a state directory of their own.
 */
export function environmentsPort(flags: Pick<ControllerFlags, "environments" | "stateDir" | "kubeconfig"> & { backendUrl?: string }, client: KubeClient, log: Logger): EnvironmentsPort {
  if (flags.environments === "none") return new NoopEnvironments();
  const { stateDir, backend } = pulumiState(flags);
  const kubeconfig = flags.kubeconfig ?? process.env.KUBECONFIG;
  return new LazyPulumiEnvironments(async () => {
    // Loaded on first use: the Pulumi adapter's modules are about 50 MB of the controller's
    // memory, which a controller whose rollouts use endpoint versions only never needs.
    const [{ PulumiEnvironments, kubeSecretReader }, { ensurePulumiToolchain }] = await Promise.all([import("../environments/pulumi.ts"), import("../dev/toolchain.ts")]);
    const toolchain = await ensurePulumiToolchain((line) => log.info({ build: line }, "building the Pulumi toolchain"));
    return new PulumiEnvironments({
      stateDir,
      backendUrl: backend,
      toolchain,
      readSecret: kubeSecretReader((path) => client.get(path), (err) => err instanceof ApiError && err.notFound),
      ...(kubeconfig ? { env: { KUBECONFIG: kubeconfig } } : {}),
      log: log.child({ port: "environments" }),
    });
  }, backend === `file://${join(stateDir, "backend")}` ? join(stateDir, "backend") : undefined);
}

/**
 * Where the probes and metrics listen unless --bind-address says: every interface in a Pod
 * (the kubelet probes the Pod IP; Prometheus scrapes it), loopback when run by hand, where
 * nothing else needs to reach them.
 */
export function defaultBindAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env.KUBERNETES_SERVICE_HOST ? "0.0.0.0" : "127.0.0.1";
}

/** `airollout controller [flags]`: validates the flags, then runs the controller. */
export async function controllerCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(CONTROLLER, args);
  const port = Number(values["metrics-port"]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--metrics-port: ${values["metrics-port"]} is not a port number`);
  if (values["bind-address"] !== undefined && values["bind-address"].trim() === "") throw new UsageError("--bind-address: empty; give an address such as 127.0.0.1 or 0.0.0.0");
  if (!["true", "false"].includes(values["leader-elect"])) throw new UsageError(`--leader-elect: ${values["leader-elect"]} is not true or false`);
  if (values.environments !== "pulumi" && values.environments !== "none") throw new UsageError(`--environments: ${values.environments} is not pulumi or none`);
  return runController({
    kubeconfig: values.kubeconfig,
    namespace: values.namespace,
    metricsPort: port,
    bindAddress: values["bind-address"] ?? defaultBindAddress(),
    leaderElect: values["leader-elect"] === "true",
    leaseNamespace: values["lease-namespace"] ?? process.env.POD_NAMESPACE ?? "default",
    leaseName: values["lease-name"],
    identity: values.id ?? `${hostname()}_${process.pid}`,
    environments: values.environments,
    stateDir: values["state-dir"],
    previewGcIntervalMs: gcInterval(values["preview-gc-interval"]),
    egress: egressPolicyFromFlags(values),
    ...(values["gateway-url"] ? { gatewayUrl: gatewayUrlFlag(values["gateway-url"]) } : {}),
  });
}

function gcInterval(text: string): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new UsageError(`--preview-gc-interval: ${(err as Error).message}`);
  }
  // Bounded both ways: 0 would spin, more than 2^31-1 ms would fire at once.
  if (!(ms >= 1000 && ms <= 24 * 3_600_000)) throw new UsageError(`--preview-gc-interval: ${text} is not between 1s and 24h`);
  return ms;
}

/** --gateway-url: an http(s) URL. */
function gatewayUrlFlag(text: string): string {
  if (!/^https?:\/\/[^/]+/.test(text)) throw new UsageError(`--gateway-url: ${JSON.stringify(text)} is not an http:// or https:// URL`);
  return text;
}

/** What one leadership term runs: the AIRollout controller and the AIPreview controller. */
interface Reconciler {
  readonly synced: boolean;
  start(): void;
  stop(): Promise<void>;
}

/**
 * Both loops of a term. Readiness is the AIRollout controller's alone: a cluster whose AIPreview
 * CRD is not installed yet still rolls out.
 */
class Reconcilers implements Reconciler {
  private readonly rollouts: Controller;
  private readonly previews: PreviewController;
  constructor(rollouts: Controller, previews: PreviewController) {
    this.rollouts = rollouts;
    this.previews = previews;
  }
  get synced(): boolean {
    return this.rollouts.synced;
  }
  start(): void {
    this.rollouts.start();
    this.previews.start();
  }
  async stop(): Promise<void> {
    await Promise.all([this.rollouts.stop(), this.previews.stop()]);
  }
}

/**
 * One leadership term's reconciler: fresh controllers (informers, queues) each time the lease
 * is won, stopped when it is lost, so a replica that is no longer leader acts on nothing and a
 * new term starts from a fresh list rather than from caches that missed events.
 */
class Terms {
  private current?: Reconciler;
  /** Start and stop in the order called: a term never starts before the last one stopped. */
  private chain: Promise<void> = Promise.resolve();
  private readonly make: () => Reconciler;
  constructor(make: () => Reconciler) {
    this.make = make;
  }
  get synced(): boolean {
    return this.current?.synced ?? false;
  }
  begin(onStarted: () => void): void {
    this.chain = this.chain.then(() => {
      this.current ??= this.make();
      this.current.start();
      onStarted();
    });
  }
  end(): Promise<void> {
    this.chain = this.chain.then(async () => {
      const c = this.current;
      this.current = undefined;
      await c?.stop();
    });
    return this.chain;
  }
}

/** Publishes the default backend for `airollout preview` and `stacks`; a failure is logged, not fatal. */
function publish(client: KubeClient, flags: ControllerFlags, log: Logger, level: "info" | "debug" = "info"): void {
  const what: PublishedBackend = {
    backend: flags.environments === "pulumi" ? pulumiState(flags).backend : "",
    environments: flags.environments,
    watchNamespace: flags.namespace ?? "",
    host: hostname(),
    identity: flags.identity,
    heartbeat: new Date().toISOString(),
  };
  publishBackend(client, { namespace: flags.leaseNamespace, leaseName: flags.leaseName }, what).then(
    () => log[level]({ configMap: `${flags.leaseNamespace}/${publishedName(flags.leaseName)}`, backend: what.backend }, "published the Pulumi backend"),
    (err: unknown) => log.warn({ err: (err as Error).message, cause: ((err as Error).cause as Error | undefined)?.message }, "could not publish the Pulumi backend; previews need --backend"),
  );
}

/** Runs until SIGTERM/SIGINT (exit 0); a lost lease stops reconciling until it is won again. */
export async function runController(flags: ControllerFlags): Promise<number> {
  const log = createLogger("controller");
  const metrics = createControllerMetrics();
  const client = new KubeClient(loadKubeConfig(flags.kubeconfig));
  const environments = environmentsPort(flags, client, log);
  // Without --gateway-url, previews that ask for fixtures say they are not available.
  const fixtures: FixturesPort | undefined = flags.gatewayUrl
    ? new GatewayFixtures({ gatewayUrl: flags.gatewayUrl, readRollout: (ns, name) => client.get<AIRollout>(`${rolloutsPath(ns)}/${name}`), log: log.child({ component: "fixtures" }), ...(flags.egress ? { egress: flags.egress } : {}) })
    : undefined;
  const terms = new Terms(
    () =>
      new Reconcilers(
        new Controller({
          client,
          log,
          metrics,
          environments,
          // Prometheus addresses come from specs: their resolved addresses go through the policy too.
          measurements: new PrometheusMeasurements((address) => new PrometheusProvider(address, { egress: flags.egress })),
          namespace: flags.namespace,
          identity: flags.identity,
          failpoint: process.env.AIROLLOUT_FAILPOINT,
          ...(flags.egress ? { egress: flags.egress } : {}),
        }),
        new PreviewController({
          client,
          log: log.child({ loop: "previews" }),
          environments,
          ...(fixtures ? { fixtures } : {}),
          ...(flags.namespace ? { namespace: flags.namespace } : {}),
          identity: flags.identity,
          onWatchRestart: (reason) => metrics.watchRestarts.inc({ reason }),
        }),
      ),
  );
  const elector = flags.leaderElect ? new LeaderElector(client, { namespace: flags.leaseNamespace, name: flags.leaseName, identity: flags.identity }, log) : undefined;
  const { server, port } = await startHealthServer(metrics.registry, { live: () => true, ready: () => !elector?.isLeader || terms.synced }, flags.metricsPort, flags.bindAddress);
  log.info({ port, address: flags.bindAddress, identity: flags.identity, namespace: flags.namespace ?? "(all)", server: client.server, leaderElect: flags.leaderElect, ...(flags.egress ? { egress: describeEgress(flags.egress) } : {}) }, "controller started");
  const lead = () =>
    terms.begin(() => {
      metrics.leader.set(1);
      publish(client, flags, log);
      collect();
    });
  // Preview environments are collected when their TTL passes (only the leader acts).
  let collecting = false;
  const collect = () => {
    if (flags.environments === "none" || (elector && !elector.isLeader) || collecting) return;
    collecting = true;
    environments
      .collectExpired(new Date())
      .then(
        (gone) => gone.length && log.info({ stacks: gone.map((g) => g.stack) }, "expired preview environments destroyed"),
        (err: unknown) => log.warn({ err: (err as Error).message }, "preview garbage collection failed"),
      )
      .finally(() => (collecting = false));
  };

  return new Promise<number>((resolve) => {
    let stopping = false;
    const gc = setInterval(collect, flags.previewGcIntervalMs ?? 60_000);
    gc.unref();
    // The published backend's heartbeat: the CLI ignores a ConfigMap its leader stopped writing.
    const heartbeat = setInterval(() => {
      if (!elector || elector.isLeader) publish(client, flags, log, "debug");
    }, HEARTBEAT_MS);
    heartbeat.unref();
    const shutdown = async (code: number, why: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(gc);
      clearInterval(heartbeat);
      log.info({ reason: why }, "shutting down");
      await terms.end();
      await elector?.release();
      metrics.leader.set(0);
      server.close();
      log.info("stopped");
      resolve(code);
    };
    process.once("SIGTERM", () => void shutdown(0, "SIGTERM"));
    process.once("SIGINT", () => void shutdown(0, "SIGINT"));
    if (!elector) {
      lead();
      return;
    }
    log.info({ lease: `${flags.leaseNamespace}/${flags.leaseName}` }, "waiting for leadership");
    elector.run(lead, () => {
      metrics.leader.set(0);
      void terms.end().then(() => log.info("stopped reconciling until the lease is won again"));
    });
  });
}
