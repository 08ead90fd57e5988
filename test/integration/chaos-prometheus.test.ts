/**
 * Chaos drill: Prometheus stopped mid-analysis. Given a rollout measuring a healthy metric
 * through a real Prometheus, When Prometheus goes away, Then nothing is promoted or rolled back
 * on missing evidence: an outage within `consecutiveErrorLimit` measurements is absorbed and the
 * analysis goes on by itself once Prometheus is back; a longer one pauses the rollout
 * (`AnalysisError`, docs/adr/0004) at its weight until a human promotes or aborts. Both
 * recovery times are printed.
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { PrometheusProvider } from "../../controller/src/analysis/prometheus.ts";
import { startPrometheus, type TestPrometheus } from "../../controller/src/dev/prometheus.ts";
import { startExporter, type Exporter } from "../support/exporter.ts";
import { followStatus, secs } from "../support/chaos.ts";
import { CLI, ControllerProcess, NODE, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

const GAUGE = "airollout_chaos_error_ratio";
let ns: string;
let exporter: Exporter;
let prom: TestPrometheus;
let controller: ControllerProcess;

beforeAll(async () => {
  ns = createNamespace("promchaos");
  exporter = await startExporter();
  prom = await startPrometheus({ targets: [exporter.target], scrapeIntervalSeconds: 1 });
  controller = new ControllerProcess(`promchaos-${ns}`, ["--namespace", ns, "--lease-namespace", ns, "--environments", "none"]);
  await controller.waitForLog("leadership", (l) => l.msg === "became leader", 60_000);
});

afterAll(async () => {
  await controller?.stop();
  await prom?.dispose();
  await exporter?.close();
});

function apply(name: string, consecutiveErrorLimit: number, count: number): void {
  const spec = {
    stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" },
    candidate: { version: "v2", endpoint: "http://127.0.0.1:9/candidate" },
    strategy: { steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 100 }] },
    analysis: {
      prometheus: { address: prom.url, timeout: "1s" },
      interval: "1s",
      failureLimit: 2,
      consecutiveErrorLimit,
      metrics: [{ name: "error-ratio", query: `max(${GAUGE}{rollout="{{rollout}}"})`, successCondition: "result < 0.05", count }],
    },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec }));
}

async function get(name: string): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
}

const metricOf = (o: AIRollout | undefined) => o?.status?.analysis?.current?.metrics[0];

async function healthy(name: string): Promise<void> {
  exporter.setGauge(GAUGE, { rollout: name }, 0.001);
  const provider = new PrometheusProvider(prom.url);
  await waitFor(`Prometheus holds ${name}'s value`, async () => {
    const out = await provider.query(`max(${GAUGE}{rollout="${name}"})`, { timeoutMs: 2000 });
    return out.kind === "value";
  }, 30_000, 250);
}

describe("Prometheus stopped mid-analysis", () => {
  it("an outage shorter than consecutiveErrorLimit: errors are absorbed, the analysis goes on by itself once Prometheus is back, and the rollout Succeeds", async () => {
    await healthy("short");
    const h = followStatus(client, ns, "short", 200);
    apply("short", 20, 15);
    await waitFor("a successful measurement", async () => (metricOf(await get("short"))?.successful ?? 0) >= 1, 60_000);
    await prom.stop();
    const down = Date.now();
    let back = 0;
    try {
      await waitFor("an error measurement", async () => (metricOf(await get("short"))?.error ?? 0) >= 1, 30_000);
    } finally {
      await prom.start();
      back = Date.now();
    }
    const before = metricOf(await get("short"))!.successful;
    await waitFor("a successful measurement after the outage", async () => (metricOf(await get("short"))?.successful ?? 0) > before, 60_000, 100);
    const resumed = Date.now() - back;
    const done = await waitFor("short finished", async () => {
      const o = await get("short");
      return ["Succeeded", "RolledBack", "Paused"].includes(o.status?.phase ?? "") ? o : undefined;
    }, 120_000, 250);
    h.stop();
    console.log(`prometheus short outage (${secs(back - down)}): measurements resumed ${secs(resumed)} after it was back; the rollout went on by itself`);
    expect(done.status!.phase).toBe("Succeeded");
    expect(done.status!.analysis!.history!.at(-1)!.metrics[0]!.error).toBeGreaterThanOrEqual(1);
    expect(h.seen.some((s) => s.phase === "Paused" || s.phase === "RolledBack")).toBe(false);
  }, 240_000);

  it("an outage longer than consecutiveErrorLimit pauses (AnalysisError) at the weight, never rolls back; back, a human's promote finishes it", async () => {
    await healthy("long");
    apply("long", 2, 30);
    await waitFor("a successful measurement", async () => (metricOf(await get("long"))?.successful ?? 0) >= 1, 60_000);
    await prom.stop();
    const down = Date.now();
    let paused: AIRollout;
    try {
      paused = await waitFor("Paused on errors", async () => {
        const o = await get("long");
        return o.status?.phase === "Paused" || o.status?.phase === "RolledBack" ? o : undefined;
      }, 60_000, 100);
    } finally {
      await prom.start();
    }
    const detected = Date.now() - down;
    expect(paused.status!.phase).toBe("Paused");
    expect(paused.status!.pauseReason).toBe("AnalysisError");
    expect(paused.status!.canaryWeight).toBe(20);
    // Prometheus being back is not evidence by itself: the pause waits for a human.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await get("long")).status!.phase).toBe("Paused");
    const t0 = Date.now();
    const res = spawnSync(NODE, [CLI, "promote", "long", "-n", ns, "--kubeconfig", kubeconfig()], { encoding: "utf8" });
    expect(res.status, res.stderr).toBe(0);
    const done = await waitFor("Succeeded after promote", async () => {
      const o = await get("long");
      return o.status?.phase === "Succeeded" ? o : undefined;
    }, 60_000, 100);
    console.log(`prometheus long outage: Paused/AnalysisError ${secs(detected)} after it stopped (interval 1 s, consecutiveErrorLimit 2); Succeeded ${secs(Date.now() - t0)} after the promote`);
    expect(done.status!.canaryWeight).toBe(100);
  }, 240_000);
});
