/**
 * The controller as the README's quick start runs it, by hand with nothing to restart it: a lost
 * lease (the API server unreachable past the renew deadline, or the Lease taken by another
 * holder) stops reconciling but not the process, which campaigns again and resumes leading.
 * Also where its probes listen: loopback by hand unless --bind-address says otherwise.
 *
 * The API server is made unreachable for this controller only, through a TCP relay between it
 * and the shared API server that the test closes and reopens.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { CONTROLLER, parseFlags } from "../../controller/src/cli/commands.ts";
import { cacheDir, PROJECT_ROOT, runBuild, toolVersions } from "../../controller/src/dev/tools.ts";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { ControllerProcess, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

/** A TCP relay to the API server that can be cut (connections refused) and restored on the same port. */
class Relay {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;
  private readonly target: { host: string; port: number };
  constructor(target: { host: string; port: number }) {
    this.target = target;
  }
  async open(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(this.target.port, this.target.host);
      this.sockets.add(inbound).add(outbound);
      const drop = () => {
        inbound.destroy();
        outbound.destroy();
        this.sockets.delete(inbound);
        this.sockets.delete(outbound);
      };
      inbound.on("error", drop).on("close", drop);
      outbound.on("error", drop).on("close", drop);
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(this.port, "127.0.0.1", () => resolve()));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }
  /** Refuses new connections and cuts the open ones: the API server is unreachable. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

const ROLLOUT_SPEC = {
  stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" },
  candidate: { version: "v2", endpoint: "http://127.0.0.1:9/candidate" },
  strategy: { steps: [{ pause: {} }] },
};

function applyRollout(ns: string, name: string): void {
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec: ROLLOUT_SPEC }));
}

async function observed(ns: string, name: string): Promise<boolean> {
  const o = await client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
  return (o.status?.observedGeneration ?? 0) >= 1;
}

interface Lease {
  metadata: { resourceVersion: string };
  spec: { holderIdentity?: string | null; renewTime?: string; leaseDurationSeconds?: number };
}

const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
const processes: ControllerProcess[] = [];
let relay: Relay;
let relayedKubeconfig: string;

beforeAll(async () => {
  const kc = parse(readFileSync(kubeconfig(), "utf8")) as { clusters: { cluster: { server: string } }[] };
  const server = new URL(kc.clusters[0]!.cluster.server);
  relay = new Relay({ host: server.hostname, port: Number(server.port) });
  await relay.open();
  for (const c of kc.clusters) c.cluster.server = `https://127.0.0.1:${relay.port}`;
  relayedKubeconfig = join(mkdtempSync(join(tmpdir(), "airollout-leader-")), "kubeconfig");
  writeFileSync(relayedKubeconfig, stringify(kc));
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await relay?.cut();
});

describe("leader election run by hand", () => {
  it("an unreachable API server past the renew deadline stops reconciling, not the process; when it is back the controller leads and reconciles again", async () => {
    const ns = createNamespace("leader");
    const c = new ControllerProcess("leader-relay", ["--kubeconfig", relayedKubeconfig, "--namespace", ns, "--lease-namespace", ns, "--environments", "none"]);
    processes.push(c);
    await c.waitForLog("leadership", (l) => l.msg === "became leader", 60_000);
    applyRollout(ns, "before");
    await waitFor("the rollout reconciled while leading", () => observed(ns, "before"), 60_000, 250);

    await relay.cut();
    const lost = await c.waitForLog("lost leadership", (l) => l.msg === "lost leadership; campaigning again", 60_000);
    expect(lost.why).toBe("could not renew before the deadline");
    await c.waitForLog("reconciling stopped", (l) => l.msg === "stopped reconciling until the lease is won again", 60_000);
    expect(c.exited).toBe(false);

    await relay.open();
    await waitFor("leading again", () => c.lines.filter((l) => l.msg === "became leader").length >= 2, 60_000, 100);
    applyRollout(ns, "after");
    await waitFor("a rollout created after the outage is reconciled", () => observed(ns, "after"), 60_000, 250);
    expect(c.exited).toBe(false);
  }, 180_000);

  it("a Lease taken by another holder stops reconciling at once; the controller takes the lease back when it expires and resumes", async () => {
    const ns = createNamespace("leader");
    const c = new ControllerProcess("leader-taken", ["--namespace", ns, "--lease-namespace", ns, "--environments", "none"]);
    processes.push(c);
    await c.waitForLog("leadership", (l) => l.msg === "became leader", 60_000);
    const path = `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/airollout-controller`;

    // Another holder takes the lease and keeps renewing it for a while (a 4 s lease).
    let intruding = true;
    const intrude = async () => {
      while (intruding) {
        const lease = await client().get<Lease>(path);
        const spec = { ...lease.spec, holderIdentity: "intruder", leaseDurationSeconds: 4, renewTime: microTime(new Date()) };
        await client()
          .replace(path, { ...lease, spec })
          .catch(() => undefined);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    const intruder = intrude();
    try {
      const lost = await c.waitForLog("lost leadership", (l) => l.msg === "lost leadership; campaigning again", 30_000);
      expect(lost.why).toBe("another holder has the lease");
      await c.waitForLog("reconciling stopped", (l) => l.msg === "stopped reconciling until the lease is won again", 30_000);
      applyRollout(ns, "while-not-leading");
      // A leader reconciles a new rollout within a second or two; a candidate must not touch it.
      await new Promise((r) => setTimeout(r, 5000));
      expect(await observed(ns, "while-not-leading")).toBe(false);
      expect(c.exited).toBe(false);
    } finally {
      intruding = false;
      await intruder;
    }
    await waitFor("leading again once the intruder's lease expired", () => c.lines.filter((l) => l.msg === "became leader").length >= 2, 60_000, 100);
    await waitFor("the rollout reconciled after the lease was won back", () => observed(ns, "while-not-leading"), 60_000, 250);
    const lease = await client().get<Lease>(path);
    expect(lease.spec.holderIdentity).toBe("leader-taken");
  }, 180_000);
});

describe("controller listen address", () => {
  const get = (host: string, port: number) =>
    fetch(`http://${host}:${port}/healthz`).then(
      (r) => r.status,
      (err: unknown) => ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? "error",
    );

  it("run by hand, /healthz and /metrics listen on loopback only; --bind-address 0.0.0.0 (the chart's) listens on every address", async () => {
    const ns = createNamespace("bind");
    const byHand = new ControllerProcess("bind-default", ["--namespace", ns, "--leader-elect", "false", "--environments", "none"], { KUBERNETES_SERVICE_HOST: "" });
    const everywhere = new ControllerProcess("bind-all", ["--namespace", ns, "--leader-elect", "false", "--environments", "none", "--bind-address", "0.0.0.0"], { KUBERNETES_SERVICE_HOST: "" });
    processes.push(byHand, everywhere);
    const a = await byHand.waitForLog("started", (l) => l.msg === "controller started", 60_000);
    const b = await everywhere.waitForLog("started", (l) => l.msg === "controller started", 60_000);
    expect(a.address).toBe("127.0.0.1");
    expect(b.address).toBe("0.0.0.0");
    // 127.0.0.2 is this host too, but not the address a loopback-bound server listens on.
    expect(await get("127.0.0.1", a.port as number)).toBe(200);
    expect(await get("127.0.0.2", a.port as number)).toBe("ECONNREFUSED");
    expect(await get("127.0.0.2", b.port as number)).toBe(200);
    const metrics = await fetch(`http://127.0.0.1:${a.port as number}/metrics`);
    expect(metrics.status).toBe(200);
  }, 120_000);

  it("the chart passes --bind-address=0.0.0.0 (the kubelet probes the Pod IP), and every controller argument it renders parses", async () => {
    const helmDir = join(cacheDir(), "bin", `helm-${toolVersions().HELM_VERSION}`);
    if (!existsSync(join(helmDir, "helm"))) await runBuild("helm", (l) => process.stderr.write(`${l}\n`));
    const r = spawnSync(join(helmDir, "helm"), ["template", "airollout", join(PROJECT_ROOT, "charts", "airollout"), "--namespace", "airollout-system"], {
      encoding: "utf8",
      env: { ...process.env, HELM_CACHE_HOME: join(cacheDir(), "helm-home", "cache"), HELM_CONFIG_HOME: join(cacheDir(), "helm-home", "config"), HELM_DATA_HOME: join(cacheDir(), "helm-home", "data") },
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    type Deployment = { kind: string; metadata: { name: string }; spec: { template: { spec: { containers: { name: string; args: string[]; livenessProbe?: { httpGet?: { port: string } } }[] } } } };
    const deployment = parseAllDocuments(r.stdout)
      .map((d) => d.toJSON() as Deployment | null)
      .find((o) => o?.kind === "Deployment" && o.metadata.name === "airollout-controller")!;
    const container = deployment.spec.template.spec.containers.find((c) => c.name === "controller")!;
    expect(container.args[0]).toBe("controller");
    const { values } = parseFlags(CONTROLLER, container.args.slice(1));
    expect(values["bind-address"]).toBe("0.0.0.0");
    expect(container.livenessProbe?.httpGet?.port).toBe("metrics");
  }, 1_200_000);
});
