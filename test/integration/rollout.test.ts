/**
 * The whole decision loop against real servers: the controller process on the real API server
 * queries a real Prometheus (1 s scrape interval) scraping an exporter whose values the test
 * drives. Given a rollout, When the SLO values change, Then it promotes, pauses or rolls back.
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { PrometheusProvider } from "../../controller/src/analysis/prometheus.ts";
import { startExporter, type Exporter } from "../support/exporter.ts";
import { startPrometheus, type TestPrometheus } from "../../controller/src/dev/prometheus.ts";
import { CLI, ControllerProcess, NODE, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

const GAUGE = "airollout_test_error_ratio";

let ns: string;
let exporter: Exporter;
let prom: TestPrometheus;
let controller: ControllerProcess;

beforeAll(async () => {
  ns = createNamespace("slo");
  exporter = await startExporter();
  prom = await startPrometheus({ targets: [exporter.target], scrapeIntervalSeconds: 1 });
  controller = new ControllerProcess("slo", ["--namespace", ns, "--lease-namespace", ns]);
  await controller.waitForLog("leadership", (l) => l.msg === "became leader");
});

afterAll(async () => {
  await controller?.stop();
  await prom?.dispose();
  await exporter?.close();
});

interface Options {
  steps: unknown[];
  query?: string;
  background?: boolean;
  consecutiveErrorLimit?: number;
  interval?: string;
  count?: number;
}

function apply(name: string, o: Options): void {
  const spec = {
    stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" },
    candidate: { version: "v2", endpoint: "http://127.0.0.1:9/candidate" },
    strategy: { steps: o.steps },
    analysis: {
      prometheus: { address: prom.url, timeout: "2s" },
      interval: o.interval ?? "2s",
      failureLimit: 2,
      consecutiveErrorLimit: o.consecutiveErrorLimit ?? 4,
      metrics: [{ name: "error-ratio", query: o.query ?? `max(${GAUGE}{rollout="{{rollout}}",version="{{candidate}}"})`, successCondition: "result < 0.05", ...(o.count ? { count: o.count } : {}) }],
      ...(o.background ? { background: { startingStep: 0 } } : {}),
    },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec }));
}

async function get(name: string): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
}

async function phaseOf(name: string, phases: string[], timeoutMs = 60_000): Promise<AIRollout> {
  return waitFor(`${name} in ${phases.join("|")}`, async () => {
    const o = await get(name);
    return phases.includes(o.status?.phase ?? "") ? o : undefined;
  }, timeoutMs, 250);
}

function cli(args: string[]): string {
  const res = spawnSync(NODE, [CLI, ...args, "-n", ns, "--kubeconfig", kubeconfig()], { encoding: "utf8" });
  if (res.status !== 0) throw new Error(`airollout ${args.join(" ")}: ${res.stderr}`);
  return res.stdout;
}

const labels = (name: string) => ({ rollout: name, version: "v2" });

/** Waits until Prometheus itself answers the rollout's query with `value` (scraped and stored). */
async function scraped(name: string, value: number): Promise<void> {
  const provider = new PrometheusProvider(prom.url);
  await waitFor(`Prometheus to hold ${value} for ${name}`, async () => {
    const out = await provider.query(`max(${GAUGE}{rollout="${name}",version="v2"})`, { timeoutMs: 2000 });
    return out.kind === "value" && (Array.isArray(out.value) ? out.value[0] : out.value) === value;
  }, 30_000, 250);
}

describe("SLO analysis with a real Prometheus", () => {
  it("healthy values: every step passes and the rollout Succeeds", async () => {
    exporter.setGauge(GAUGE, labels("healthy"), 0.001);
    await scraped("healthy", 0.001);
    apply("healthy", { steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 60 }, { analysis: {} }, { setWeight: 100 }] });
    const done = await phaseOf("healthy", ["Succeeded", "RolledBack", "Paused"], 90_000);
    expect(done.status!.phase).toBe("Succeeded");
    expect(done.status!.canaryWeight).toBe(100);
    const runs = done.status!.analysis!.history!;
    expect(runs.map((r) => r.phase)).toEqual(["Successful", "Successful"]);
    expect(runs[0]!.metrics[0]!.query).toBe(`max(${GAUGE}{rollout="healthy",version="v2"})`);
    // A one-series vector, shown as Prometheus returns it.
    expect(runs[0]!.metrics[0]!.lastValue).toBe("[0.001]");
    expect(cli(["status", "healthy"])).toContain("Phase:       Succeeded");
  });

  it("an error breach rolls back within interval x failureLimit plus a few seconds, and says why", async () => {
    exporter.setGauge(GAUGE, labels("breach"), 0.001);
    await scraped("breach", 0.001);
    apply("breach", { background: true, steps: [{ setWeight: 20 }, { pause: {} }] });
    await phaseOf("breach", ["Paused"]);
    // Let background analysis take a healthy measurement first.
    await waitFor("a successful background measurement", async () => ((await get("breach")).status?.analysis?.background?.metrics[0]?.successful ?? 0) >= 1, 30_000);
    const t0 = Date.now();
    exporter.setGauge(GAUGE, labels("breach"), 0.4);
    const rolled = await phaseOf("breach", ["RolledBack"], 60_000);
    const seconds = (Date.now() - t0) / 1000;
    console.log(`breach -> RolledBack: ${seconds.toFixed(1)}s (interval 2s, failureLimit 2, scrape 1s)`);
    // As early as the evidence allows: at the first chance, failureLimit + 1 = 3 failed
    // measurements and not one more (a measurement count, not a wall-clock bound).
    const run = rolled.status!.analysis!.history!.find((r) => r.id.startsWith("background"))!;
    expect(run.metrics[0]).toMatchObject({ failed: 3 });
    expect(rolled.status!.canaryWeight).toBe(0);
    const degraded = rolled.status!.conditions!.find((c) => c.type === "Degraded")!;
    expect(degraded).toMatchObject({ status: "True", reason: "AnalysisFailed" });
    expect(degraded.message).toContain('metric "error-ratio"');
    expect(degraded.message).toContain("0.4");
    expect(degraded.message).toContain(`max(${GAUGE}{rollout="breach",version="v2"})`);
    const events = await client().get<{ items: { reason: string; message: string }[] }>(`/api/v1/namespaces/${ns}/events`, { fieldSelector: "involvedObject.name=breach" });
    expect(events.items.find((e) => e.reason === "AnalysisFailed")!.message).toContain("0.4");

    // Retry after a failure works without deleting anything.
    exporter.setGauge(GAUGE, labels("breach"), 0.001);
    await scraped("breach", 0.001);
    cli(["retry", "breach"]);
    const again = await phaseOf("breach", ["Paused"]);
    expect(again.status!.attempt).toBe(1);
    expect(again.status!.canaryWeight).toBe(20);
  });

  it.each([
    ["an empty result", "empty", (name: string) => exporter.remove(GAUGE, labels(name))],
    ["NaN", "nan", (name: string) => exporter.setGauge(GAUGE, labels(name), NaN)],
  ])("%s is Inconclusive: Paused, never promoted; promote by hand continues", async (_what, name, makeBad) => {
    makeBad(name);
    await exporter.waitForScrapes(2);
    apply(name, { steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 100 }] });
    const paused = await phaseOf(name, ["Paused", "Succeeded", "RolledBack"]);
    expect(paused.status!.phase).toBe("Paused");
    expect(paused.status!.pauseReason).toBe("AnalysisInconclusive");
    expect(paused.status!.canaryWeight).toBe(20);
    await new Promise((r) => setTimeout(r, 5000));
    expect((await get(name)).status!.phase).toBe("Paused");

    exporter.setGauge(GAUGE, labels(name), 0.001);
    cli(["promote", name]);
    const done = await phaseOf(name, ["Succeeded"]);
    expect(done.status!.canaryWeight).toBe(100);
  });

  it("Prometheus stopped mid-analysis: errors, no promotion; restarted: the analysis continues", async () => {
    exporter.setGauge(GAUGE, labels("outage"), 0.001);
    await scraped("outage", 0.001);
    // Ten measurements 2 s apart: the analysis outlasts the outage below.
    apply("outage", { consecutiveErrorLimit: 30, count: 10, steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 100 }] });
    await waitFor("analysis started", async () => ((await get("outage")).status?.analysis?.current?.metrics[0]?.successful ?? 0) >= 1, 30_000);
    await prom.stop();
    try {
    const erroring = await waitFor("an error measurement", async () => {
      const o = await get("outage");
      const m = o.status?.analysis?.current?.metrics[0];
      return m && m.error >= 1 ? o : undefined;
    }, 30_000);
    const m = erroring.status!.analysis!.current!.metrics[0]!;
    expect(m.measurements!.at(-1)!.message).toContain(prom.url);
    await new Promise((r) => setTimeout(r, 4000));
    const held = await get("outage");
    expect(["Progressing"]).toContain(held.status!.phase);
    expect(held.status!.currentStep).toBe(1);
    expect(held.status!.canaryWeight).toBe(20);
    } finally {
      await prom.start();
    }
    const done = await phaseOf("outage", ["Succeeded", "Paused", "RolledBack"], 90_000);
    expect(done.status!.phase).toBe("Succeeded");
  });

  it("a PromQL syntax error gives a Degraded condition quoting Prometheus' error, without a hot loop", async () => {
    apply("badquery", { steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 100 }], query: `sum(rate(${GAUGE}{rollout="{{rollout}}"}[1m]` });
    const o = await waitFor("InvalidQuery", async () => {
      const x = await get("badquery");
      return x.status?.conditions?.find((c) => c.type === "Degraded" && c.reason === "InvalidQuery") ? x : undefined;
    }, 30_000);
    const d = o.status!.conditions!.find((c) => c.type === "Degraded")!;
    expect(d.message).toContain("parse error");
    expect(o.status!.phase).toBe("Paused");
    const passes = () => controller.lines.filter((l) => l.rollout === `${ns}/badquery`).length;
    const before = passes();
    await new Promise((r) => setTimeout(r, 5000));
    expect(passes() - before).toBeLessThan(5);
    expect((await get("badquery")).status!.analysis!.current!.metrics[0]!.error).toBe(1);
  });
});
