/**
 * `make demo`: the whole story on the embedded local control plane, with real processes on
 * loopback (no Pods run here: there is no kubelet, so versions are endpoint URLs).
 *
 *   1. the local control plane (etcd, kube-apiserver, kube-controller-manager) and the CRD
 *   2. three stand-in triage services: stable v1, a second stable v1 (the noise baseline) and
 *      candidate v2 (a larger model)
 *   3. the gateway (watches the AIRollout), a real Prometheus scraping it, the controller
 *   4. webhook traffic; the rollout shadows, shifts weight, measures SLOs and promotes
 *   5. act two: a regressing candidate v3 is caught in shadow and rolled back
 *
 * Everything but the control plane stops when the demo ends (`make demo-down` stops that).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, closeSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { AIRollout } from "../controller/src/api/schema.ts";
import { defaultDevDir, freePort, installCRD, up } from "../controller/src/dev/controlplane.ts";
import { startPrometheus } from "../controller/src/dev/prometheus.ts";
import { PROJECT_ROOT } from "../controller/src/dev/tools.ts";
import { KubeClient, loadKubeConfig } from "../controller/src/kube/client.ts";
import { rolloutsPath } from "../controller/src/api/paths.ts";

const NODE = join(PROJECT_ROOT, "node_modules/.bin/node");
const CLI = join(PROJECT_ROOT, "controller/src/cli/main.ts");
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`\n${bold(`==> ${s}`)}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = defaultDevDir();
const logs = join(dir, "logs");
const children: ChildProcess[] = [];

function start(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  mkdirSync(logs, { recursive: true });
  const fd = openSync(join(logs, `demo-${name}.log`), "w");
  const child = spawn(NODE, args, { stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  children.push(child);
  return child;
}

async function stopAll(): Promise<void> {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await sleep(500);
}
process.on("SIGINT", () => void stopAll().then(() => process.exit(130)));

async function waitHttp(url: string, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      /* not up yet */
    }
    await sleep(200);
  }
  throw new Error(`${what} did not come up at ${url}; see ${logs}`);
}

/** The dashboard reports written so far, one per act. */
const reports: string[] = [];

/** One act frozen into a self-contained dashboard page (`airollout report`), diffs included while the gateway runs. */
function writeReport(act: string, env: NodeJS.ProcessEnv, gatewayPort: number): void {
  step(`airollout report triage-bot: the ${act.replace("-", " ")} frozen into one HTML page`);
  mkdirSync(join(dir, "reports"), { recursive: true });
  const file = join(dir, "reports", `triage-bot-${act}.html`);
  try {
    execFileSync(NODE, [CLI, "report", "triage-bot", "-n", "default", "--gateway", `http://127.0.0.1:${gatewayPort}`, "-o", file], { env, encoding: "utf8" });
    reports.push(file);
    say(`  report: ${file}`);
  } catch (err) {
    say(`  (could not write the ${act} report: ${(err as Error).message})`);
  }
}

/** The closing words: how to reach the control plane, the reports, and the live dashboard. */
function sayEnd(t0: number, cp: { kubeconfig: string; kubectl: string }): void {
  say(`\nDemo finished in ${((Date.now() - t0) / 1000).toFixed(0)}s. The control plane keeps running:`);
  say(`  export KUBECONFIG=${cp.kubeconfig}`);
  say(`  export PATH=${join(cp.kubectl, "..")}:$PATH; kubectl get air`);
  say("Reports (open in a browser, no network needed):");
  for (const r of reports) say(`  ${r}`);
  say("The live dashboard (your kubeconfig and RBAC), then open http://127.0.0.1:3100/:");
  say(`  KUBECONFIG=${cp.kubeconfig} bin/airollout dashboard -n default`);
  say("Stop it with: make demo-down");
}

async function main(): Promise<void> {
  const t0 = Date.now();
  step("Local control plane (first run builds Kubernetes from Go modules: 15-20 min on 2 cores; later runs start in seconds)");
  const cp = await up({ dir, log: (l) => say(`  ${l}`) });
  const env = { ...process.env, KUBECONFIG: cp.kubeconfig };
  const kubectl = (args: string[], input?: string) => execFileSync(cp.kubectl, args, { env, input, encoding: "utf8" });
  await installCRD(cp);
  say(`  export KUBECONFIG=${cp.kubeconfig}`);

  step("Stand-in triage services on loopback: stable v1, a second stable v1 (noise baseline), candidate v2");
  const ports = { stable: await freePort(), stable2: await freePort(), candidate: await freePort(), regress: await freePort(), gateway: await freePort(), gatewayMetrics: await freePort(), controller: await freePort() };
  const svc = (name: string, port: number, version: string, model: string, extra: string[] = []) => start(name, [join(PROJECT_ROOT, "examples/triage-service.ts"), "--port", String(port), "--version", version, "--model", model, ...extra]);
  svc("stable", ports.stable, "v1", "small");
  svc("stable2", ports.stable2, "v1", "small");
  svc("candidate", ports.candidate, "v2", "large");
  svc("regress", ports.regress, "v3", "large", ["--regress", "0.3"]);
  for (const p of [ports.stable, ports.stable2, ports.candidate, ports.regress]) await waitHttp(`http://127.0.0.1:${p}/`, "triage service");
  say(`  v1 :${ports.stable}, v1 replica :${ports.stable2}, v2 :${ports.candidate}, v3 (regressing) :${ports.regress}`);

  step("Gateway, Prometheus (1 s scrape) and the controller");
  start("gateway", [CLI, "gateway", "--namespace", "default", "--port", String(ports.gateway), "--host", "127.0.0.1", "--metrics-port", String(ports.gatewayMetrics), "--state-dir", join(dir, "gateway")], { KUBECONFIG: cp.kubeconfig, LOG_LEVEL: "warn" });
  await waitHttp(`http://127.0.0.1:${ports.gatewayMetrics}/metrics`, "gateway");
  const prom = await startPrometheus({ targets: [`127.0.0.1:${ports.gatewayMetrics}`], scrapeIntervalSeconds: 1 });
  start("controller", [CLI, "controller", "--metrics-port", String(ports.controller), "--lease-namespace", "kube-system"], { KUBECONFIG: cp.kubeconfig });
  await waitHttp(`http://127.0.0.1:${ports.controller}/healthz`, "controller");
  // The previous demo's rollout is kept for inspection (etcd data survives `dev down`/`up`). It
  // carries the controller's finalizer, so it is deleted only now that a controller runs to
  // finalize it; a controller that cannot within a minute leaves it to be released by hand.
  try {
    kubectl(["delete", "air", "triage-bot", "--ignore-not-found", "--wait=true", "--timeout=60s"]);
  } catch {
    say("  the previous demo's AIRollout was not finalized within 60 s; releasing its finalizer");
    kubectl(["patch", "air", "triage-bot", "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
    kubectl(["delete", "air", "triage-bot", "--ignore-not-found", "--wait=true", "--timeout=30s"]);
  }
  say(`  gateway http://127.0.0.1:${ports.gateway}/hooks/default/triage-bot/  metrics :${ports.gatewayMetrics}`);
  say(`  prometheus ${prom.url}   controller metrics :${ports.controller}   logs ${logs}/demo-*.log`);

  const rollout = (candidatePort: number, version: string) => ({
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "triage-bot", namespace: "default" },
    spec: {
      stable: { version: "v1", endpoint: `http://127.0.0.1:${ports.stable}/`, config: { model: "small" } },
      candidate: { version, endpoint: `http://127.0.0.1:${candidatePort}/`, config: { model: "large" } },
      traffic: { stickyBy: "header:x-tenant-id" },
      shadow: {
        sampleRate: 1,
        maxMismatchRate: 0.1,
        noiseBaseline: { enabled: true, endpoint: `http://127.0.0.1:${ports.stable2}/` },
        compare: { ignore: ["$.id", "$.created", "$.model", "$.usage"], tolerances: [{ path: "$.confidence", relative: 0.03 }], labels: ["$.intent", "$.urgency"], text: [{ path: "$.summary", minSimilarity: 0.5 }] },
      },
      strategy: { steps: [{ shadow: { duration: "20s" } }, { setWeight: 20 }, { pause: { duration: "10s" } }, { analysis: {} }, { setWeight: 60 }, { analysis: {} }, { setWeight: 100 }] },
      analysis: {
        prometheus: { address: prom.url },
        interval: "5s",
        failureLimit: 1,
        metrics: [
          { name: "error-rate", templateRef: "error-rate" },
          { name: "latency-p95", templateRef: "latency-p95", max: 0.5 },
          { name: "cost-per-request", templateRef: "cost-per-request", max: 0.002 },
        ],
      },
    },
  });

  // Webhook traffic: 25 tickets/s from 40 tenants, until the demo ends.
  let sending = true;
  const tickets = ["My invoice was charged twice, please refund ASAP", "The app crashes when I upload a file", "I cannot login, password reset is broken", "Would love a dark mode feature", "Where is my order?"];
  const traffic = (async () => {
    let n = 0;
    while (sending) {
      const text = tickets[n % tickets.length]!;
      void fetch(`http://127.0.0.1:${ports.gateway}/hooks/default/triage-bot/classify`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-tenant-id": `tenant-${n % 40}` },
        body: JSON.stringify({ ticket: { id: n, text, from: `user${n}@example.com` } }),
      }).catch(() => {});
      n++;
      await sleep(40);
    }
  })();

  const client = new KubeClient(loadKubeConfig(cp.kubeconfig));
  const watch = async (until: string[], timeoutMs: number): Promise<AIRollout> => {
    let last = "";
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const o = await client.get<AIRollout>(`${rolloutsPath("default")}/triage-bot`);
      const s = o.status ?? {};
      const line = `${s.phase ?? "Pending"} step ${Math.min((s.currentStep ?? 0) + 1, s.stepCount ?? 0)}/${s.stepCount ?? "?"} weight ${s.canaryWeight ?? 0}% shadow mismatch ${s.shadow?.mismatchRate ?? "-"}  ${s.message ?? ""}`;
      if (line !== last) say(`  [${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${line}`);
      last = line;
      // Only a status written for the latest spec counts: right after an apply, the phase is
      // still the previous revision's until the controller has seen the change.
      if (until.includes(s.phase ?? "") && s.observedGeneration === o.metadata.generation) return o;
      if (Date.now() > deadline) throw new Error(`the rollout did not reach ${until.join("|")} in ${timeoutMs / 1000}s; see ${logs}`);
      await sleep(1000);
    }
  };

  step("kubectl apply: roll v2 (model large) out: shadow 20s, 20%, analysis, 60%, analysis, 100%");
  kubectl(["apply", "-f", "-"], stringify(rollout(ports.candidate, "v2")));
  const done = await watch(["Succeeded", "RolledBack", "Paused"], 300_000);

  step("kubectl get air -o wide");
  say(kubectl(["get", "air", "-o", "wide"]).trimEnd());
  step("airollout status triage-bot");
  say(execFileSync(NODE, [CLI, "status", "triage-bot"], { env, encoding: "utf8" }).trimEnd());
  step("Shadow diff samples (PII masked): GET /api/rollouts/default/triage-bot/diffs");
  try {
    const diffs = (await (await fetch(`http://127.0.0.1:${ports.gateway}/api/rollouts/default/triage-bot/diffs`)).json()) as Record<string, unknown>;
    say(JSON.stringify(diffs, null, 2).split("\n").slice(0, 40).join("\n"));
  } catch (err) {
    say(`  (could not read diffs: ${(err as Error).message})`);
  }

  writeReport("act-one", env, ports.gateway);

  if (done.status?.phase === "Succeeded") {
    step("kubectl wait --for=condition=Ready air/triage-bot: Ready is True only once the candidate serves all traffic");
    say(kubectl(["wait", "--for=condition=Ready", "air/triage-bot", "--timeout=10s"]).trimEnd());
    step("Act two, one change: candidate v3 answers the wrong intent 30% of the time; the shadow step catches it");
    // spec.stable still says v1, but the stable is v2, promoted in act one (status.stable, ADR 0009).
    const actTwo = rollout(ports.regress, "v3");
    kubectl(["apply", "-f", "-"], stringify({ ...actTwo, spec: { ...actTwo.spec, shadow: { ...actTwo.spec.shadow, noiseBaseline: { enabled: false } } } }));
    await watch(["RolledBack", "Succeeded", "Paused"], 180_000);
    writeReport("act-two", env, ports.gateway);
  }
  step("kubectl get events");
  // This run's object only: a previous demo's rollout had the same name.
  const uid = kubectl(["get", "air", "triage-bot", "-o", "jsonpath={.metadata.uid}"]).trim();
  say(kubectl(["get", "events", "--field-selector", `involvedObject.kind=AIRollout,involvedObject.uid=${uid}`, "--sort-by=.lastTimestamp"]).trimEnd());

  sending = false;
  await traffic;
  await stopAll();
  await prom.dispose();
  sayEnd(t0, cp);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  await stopAll();
  process.exit(1);
});
