/**
 * A node simulator for the local control plane, so environments' Deployments become Available
 * without a kubelet: KWOK (sigs.k8s.io/kwok) keeps one fake Node Ready and moves every Pod bound
 * to it through its "fast" stages (Running, Ready, with a pod IP), and kube-scheduler, which the
 * local control plane otherwise lacks, binds Pods to that node. The endpoint controllers in
 * kube-controller-manager then fill the Services' endpoints, so Pulumi's readiness checks run
 * for real instead of being skipped.
 *
 * Nothing runs: an image that does not exist still becomes "Ready". That is why the program
 * checks image references itself (infra/environment.ts).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { alive, startProcess, stopPid, tailFile } from "./controlplane.ts";
import { cacheDir, runBuild, toolVersions } from "./tools.ts";
import { ApiError, KubeClient, loadKubeConfig } from "../kube/client.ts";

/** The annotation KWOK selects its nodes by (--manage-nodes-with-annotation-selector). */
export const KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node";

export interface KwokBinaries {
  dir: string;
  kwok: string;
  kubeScheduler: string;
  stages: string;
}

/** Where hack/build-tool.sh kwok puts its output. */
export function kwokDir(): string {
  const v = toolVersions();
  return join(cacheDir(), "bin", `kwok-${v.KWOK_VERSION}-kube-${v.KUBE_VERSION}`);
}

/** The built binaries, or undefined when `hack/build-tool.sh kwok` has not run yet. */
export function locateKwok(): KwokBinaries | undefined {
  const dir = kwokDir();
  const b = { dir, kwok: join(dir, "kwok"), kubeScheduler: join(dir, "kube-scheduler"), stages: join(dir, "stages.yaml") };
  return existsSync(b.kwok) && existsSync(b.kubeScheduler) && existsSync(b.stages) ? b : undefined;
}

/** Returns the binaries, building them once (5-15 min cold on 2 cores) when missing. */
export async function ensureKwok(log: (line: string) => void = () => {}): Promise<KwokBinaries> {
  const found = locateKwok();
  if (found) return found;
  log(`kwok and kube-scheduler are not built yet: building them from the Go module proxy into ${cacheDir()} (once)`);
  await runBuild("kwok", log);
  const built = locateKwok();
  if (!built) throw new Error(`kwok is still missing in ${kwokDir()} after building it`);
  return built;
}

export interface NodeSimulatorOptions {
  kubeconfig: string;
  /** Logs go here (kwok.log, kube-scheduler.log). */
  dir: string;
  nodeName?: string;
  /** Stop the simulator when this process dies (a test run), as the control plane does. */
  ownerPid?: number;
  log?: (line: string) => void;
}

export interface NodeSimulator {
  nodeName: string;
  pids: { kwok: number; kubeScheduler: number };
  /** Stops both processes and deletes the fake node. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Own process group: stop() and the watchdog signal the whole group. */
const start = (command: string, args: string[], logFile: string): number => startProcess(command, args, logFile).pid;



/**
 * Starts kube-scheduler and KWOK against the cluster of `kubeconfig`, registers one fake node
 * and resolves once that node is Ready.
 */
export async function startNodeSimulator(o: NodeSimulatorOptions): Promise<NodeSimulator> {
  const log = o.log ?? (() => {});
  const bins = await ensureKwok(log);
  mkdirSync(o.dir, { recursive: true });
  const nodeName = o.nodeName ?? "kwok-node-0";
  const k = o.kubeconfig;
  const client = new KubeClient(loadKubeConfig(k));
  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}`;
  // A lease left by an earlier simulator (same etcd, `dev down`/`up`) would make this KWOK wait
  // for it to expire (40 s) before it takes the node over and moves its pods.
  await client.delete(leasePath).catch(() => undefined);
  const schedulerLog = join(o.dir, "kube-scheduler.log");
  const kwokLog = join(o.dir, "kwok.log");
  const kubeScheduler = start(
    bins.kubeScheduler,
    [`--kubeconfig=${k}`, `--authentication-kubeconfig=${k}`, `--authorization-kubeconfig=${k}`, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0"],
    schedulerLog,
  );
  const kwok = start(
    bins.kwok,
    [
      `--kubeconfig=${k}`,
      `--config=${bins.stages}`,
      "--manage-all-nodes=false",
      `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
      "--node-lease-duration-seconds=40",
      // Pod IPs apart from the control plane's service range (10.0.0.0/24).
      "--cidr=10.244.0.0/16",
      "--node-ip=10.244.255.1",
    ],
    kwokLog,
  );
  let watchdog: number | undefined;
  if (o.ownerPid) {
    const script = `while kill -0 ${o.ownerPid} 2>/dev/null; do sleep 1; done; kill -TERM -${kwok} -${kubeScheduler} 2>/dev/null; sleep 5; kill -KILL -${kwok} -${kubeScheduler} 2>/dev/null; exit 0`;
    const w = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" });
    w.unref();
    watchdog = w.pid;
  }
  const stop = async () => {
    if (watchdog) await stopPid(watchdog);
    await Promise.all([stopPid(kwok), stopPid(kubeScheduler)]);
    await client.delete(`/api/v1/nodes/${nodeName}`).catch(() => undefined);
    await client.delete(leasePath).catch(() => undefined);
  };
  try {
    await client
      .create("/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: nodeName,
          annotations: { [KWOK_NODE_ANNOTATION]: "fake", "node.alpha.kubernetes.io/ttl": "0" },
          labels: { "kubernetes.io/hostname": nodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", type: "kwok" },
        },
      })
      .catch((err) => {
        if (!(err instanceof ApiError && err.conflict)) throw err;
      });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!alive(kwok)) throw new Error(`kwok exited; its log:\n${tailFile(kwokLog)}`);
      if (!alive(kubeScheduler)) throw new Error(`kube-scheduler exited; its log:\n${tailFile(schedulerLog)}`);
      const node = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${nodeName}`);
      if (node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) {
        // The API server's TaintNodesByCondition admission gives every new node the
        // node.kubernetes.io/not-ready:NoSchedule taint; the node lifecycle controller that would
        // lift it once the node is Ready is off on the local control plane, so lift it here.
        await client.patch(`/api/v1/nodes/${nodeName}`, { spec: { taints: null } });
        break;
      }
      if (Date.now() > deadline) throw new Error(`node ${nodeName} did not become Ready within 60s; kwok log:\n${tailFile(kwokLog)}`);
      await sleep(250);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  log(`node simulator up: kwok pid ${kwok}, kube-scheduler pid ${kubeScheduler}, node ${nodeName}`);
  return { nodeName, pids: { kwok, kubeScheduler }, stop };
}
