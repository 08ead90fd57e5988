/**
 * The decision half's benchmark (part of `make bench`), printed as one JSON line:
 * - reconcile throughput of the pass runner (passes/s over whole rollouts), against a
 *   baseline measured in the same run: structuredClone of the object, the least a pass costs;
 * - time from an SLO breach to RolledBack at interval 5 s, end to end on the real local control
 *   plane, a real Prometheus (1 s scrape) and the controller process, against the configured
 *   detection bound interval x failureLimit.
 * Run: node_modules/.bin/node bench/decision.ts [--no-e2e]
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { FINALIZER, type AIRollout } from "../controller/src/api/schema.ts";
import { PrometheusProvider } from "../controller/src/analysis/prometheus.ts";
import type { QueryOutcome } from "../controller/src/analysis/provider.ts";
import { down, installCRD, up } from "../controller/src/dev/controlplane.ts";
import { PROJECT_ROOT } from "../controller/src/dev/tools.ts";
import { KubeClient, loadKubeConfig } from "../controller/src/kube/client.ts";
import { rolloutsPath } from "../controller/src/api/paths.ts";
import { runPass, type PassIO } from "../controller/src/reconcile/pass.ts";
import { startExporter } from "../test/support/exporter.ts";
import { startPrometheus } from "../controller/src/dev/prometheus.ts";

const log = (line: string) => process.stderr.write(`[bench decision] ${line}\n`);

const SPEC = {
  stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" },
  candidate: { version: "v2", endpoint: "http://127.0.0.1:9/candidate" },
  shadow: { maxMismatchRate: 0.05 },
  analysis: { prometheus: { address: "http://127.0.0.1:9090" }, interval: "5s", failureLimit: 2, metrics: [{ name: "error-rate", templateRef: "error-rate" }, { name: "latency-p95", templateRef: "latency-p95" }] },
  strategy: { steps: [{ shadow: { duration: "1m" } }, { setWeight: 5 }, { pause: { duration: "1m" } }, { analysis: {} }, { setWeight: 50 }, { analysis: {} }, { setWeight: 100 }] },
};

/** Runs one whole rollout through the controller's pass runner; returns the passes it took. */
async function rolloutPasses(): Promise<number> {
  let obj: AIRollout = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bench", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1", finalizers: [FINALIZER] },
    spec: SPEC,
  };
  let now = Date.parse("2026-01-01T00:00:00Z");
  const healthy: QueryOutcome = { kind: "value", value: [0.001] };
  // The shadow step reads the gateways' evidence: 500 comparisons, judged, 1% mismatched.
  const evidence: Record<string, QueryOutcome> = {
    "shadow/compared": { kind: "value", value: [500] },
    "shadow/noise": { kind: "value", value: [0] },
    "shadow/mismatched": { kind: "value", value: [5] },
    "shadow/judged": { kind: "value", value: [1] },
  };
  const io: PassIO = {
    measure: async (requests) => Object.fromEntries(requests.map((m) => [m.key, evidence[m.key] ?? healthy])),
    ensure: async () => ({}),
  };
  for (let passes = 1; passes < 10_000; passes++) {
    const plan = await runPass(obj, { references: {} }, new Date(now), io);
    obj = { ...obj, status: plan.status };
    if (obj.status?.phase === "Succeeded") return passes;
    now += Math.max(plan.requeueAfterMs ?? 1000, 1);
  }
  throw new Error(`rollout did not finish: ${obj.status?.phase} ${obj.status?.message}`);
}

async function throughput(): Promise<Record<string, number>> {
  const budgetMs = 2000;
  let passes = 0;
  let rollouts = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < budgetMs) {
    passes += await rolloutPasses();
    rollouts++;
  }
  const passSeconds = (performance.now() - t0) / 1000;
  // Baseline: cloning the object a pass reads, which every pass does at least once.
  const sample: AIRollout = { apiVersion: "a", kind: "k", metadata: { name: "bench", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1" }, spec: SPEC };
  let clones = 0;
  const t1 = performance.now();
  while (performance.now() - t1 < budgetMs) {
    for (let i = 0; i < 100; i++) structuredClone(sample);
    clones += 100;
  }
  const cloneSeconds = (performance.now() - t1) / 1000;
  const passesPerSec = passes / passSeconds;
  const clonesPerSec = clones / cloneSeconds;
  return {
    reconcile_passes_per_sec: Math.round(passesPerSec),
    rollouts_per_sec: Math.round(rollouts / passSeconds),
    passes_per_rollout: Math.round(passes / rollouts),
    baseline_structured_clone_per_sec: Math.round(clonesPerSec),
    ratio_passes_to_clone: Number((passesPerSec / clonesPerSec).toFixed(4)),
  };
}

async function breachToRollback(): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), "airollout-bench-"));
  const state = await up({ dir, ownerPid: process.pid, log });
  const env = { ...process.env, KUBECONFIG: state.kubeconfig };
  const exporter = await startExporter();
  const prom = await startPrometheus({ targets: [exporter.target], scrapeIntervalSeconds: 1 });
  const controller = spawn(join(PROJECT_ROOT, "node_modules/.bin/node"), [join(PROJECT_ROOT, "controller/src/cli/main.ts"), "controller", "--metrics-port", "0", "--leader-elect", "false"], { env: { ...env, LOG_LEVEL: "warn" }, stdio: "ignore" });
  try {
    await installCRD(state);
    const gauge = "airollout_bench_error_ratio";
    exporter.setGauge(gauge, { rollout: "bench" }, 0.001);
    const provider = new PrometheusProvider(prom.url);
    for (;;) {
      const o = await provider.query(`max(${gauge}{rollout="bench"})`, { timeoutMs: 2000 });
      if (o.kind === "value") break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const spec = {
      ...SPEC,
      analysis: { prometheus: { address: prom.url }, interval: "5s", failureLimit: 2, background: { startingStep: 0 }, metrics: [{ name: "error-ratio", query: `max(${gauge}{rollout="{{rollout}}"})`, successCondition: "result < 0.05" }] },
      strategy: { steps: [{ setWeight: 10 }, { pause: {} }] },
    };
    execFileSync(state.kubectl, ["apply", "-f", "-"], { env, input: stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bench", namespace: "default" }, spec }), stdio: ["pipe", "ignore", "ignore"] });
    const client = new KubeClient(loadKubeConfig(state.kubeconfig));
    const get = () => client.get<AIRollout>(`${rolloutsPath("default")}/bench`);
    const until = async (pred: (o: AIRollout) => boolean, what: string) => {
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        if (pred(await get())) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    await until((o) => (o.status?.analysis?.background?.metrics[0]?.successful ?? 0) >= 1, "a healthy background measurement");
    const t0 = Date.now();
    exporter.setGauge(gauge, { rollout: "bench" }, 0.5);
    await until((o) => o.status?.phase === "RolledBack", "RolledBack");
    const seconds = (Date.now() - t0) / 1000;
    const bound = 5 * 2;
    return { breach_to_rolledback_seconds: Number(seconds.toFixed(2)), detection_bound_seconds_interval_x_failureLimit: bound, ratio_to_bound: Number((seconds / bound).toFixed(3)), analysis_interval_seconds: 5, failure_limit: 2, scrape_interval_seconds: 1 };
  } finally {
    controller.kill("SIGTERM");
    await prom.dispose();
    await exporter.close();
    await down({ dir, purge: true });
  }
}

const result: Record<string, unknown> = { pure: await throughput() };
if (!process.argv.includes("--no-e2e")) result.e2e = await breachToRollback();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
