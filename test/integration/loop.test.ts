/**
 * The decision loop end to end, with no stand-in anywhere: the gateway process routes real
 * webhooks from a traffic generator to loopback backends, a real Prometheus scrapes the gateway's
 * /metrics every second, and the controller process promotes, pauses or rolls back from what
 * Prometheus returns (test/support/loop.ts). Given a candidate that behaves a certain way, When
 * real traffic flows, Then the rollout ends where the decision rules say.
 *
 * The scenarios run concurrently, one AIRollout each in one namespace, so the file takes about
 * as long as its slowest scenario. Every built-in analysis template is also evaluated against the
 * gateway's real series, so a metric renamed on one side of the contract fails here.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { renderMetricQuery, resolveMetric, type MetricSpec } from "../../controller/src/analysis/assess.ts";
import { shadowEvidenceQueries, TEMPLATE_NAMES, type TemplateName } from "../../controller/src/analysis/templates.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { classifierResponder, type TestBackend } from "../support/backends.ts";
import { startLoop, type Loop } from "../support/loop.ts";
import { client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let loop: Loop;
/** Status pollers still running (a failed test may not have stopped its own). */
const watchers = new Set<() => void>();

beforeAll(async () => {
  ns = createNamespace("loop");
  loop = await startLoop({ kubeconfig: kubeconfig(), namespace: ns, id: `loop-${ns}` });
});

afterAll(async () => {
  for (const stop of watchers) stop();
  await loop?.close();
});

// Analysis every 2 s over a 10 s window: rate() needs two samples in its window, so the window is
// at least four 1 s scrape intervals, and on a busy machine a few seconds without a request to
// the candidate (at 20 % of the traffic) must not leave the window empty (0/0 is Inconclusive).
const INTERVAL = "2s";
const WINDOW = "10s";
// A new candidate series appears only with the first request the gateway sends it; measuring
// before Prometheus holds a few samples of it would be Inconclusive (fail closed), not a pass.
const INITIAL_DELAY = "10s";
const errorRate: MetricSpec = { name: "error-rate", templateRef: "error-rate", initialDelay: INITIAL_DELAY };
const latency: MetricSpec = { name: "latency-p95", templateRef: "latency-p95", initialDelay: INITIAL_DELAY };
const STABLE = "v1";
const CANDIDATE = "v2";
const SHADOW_HEADER = "x-airollout-shadow";

interface Scenario {
  name: string;
  stable: TestBackend;
  candidate: TestBackend;
  /** The stable's second copy, for the noise baseline. */
  noise?: TestBackend;
  steps: unknown[];
  shadow?: Record<string, unknown>;
  metrics?: MetricSpec[];
  progressDeadline?: string;
  candidateConfig?: Record<string, unknown>;
}

function apply(s: Scenario): void {
  const shadow = s.noise ? { ...s.shadow, noiseBaseline: { enabled: true, endpoint: s.noise.url } } : s.shadow;
  const spec = {
    stable: { version: STABLE, endpoint: s.stable.url },
    candidate: { version: CANDIDATE, endpoint: s.candidate.url, ...(s.candidateConfig ? { config: s.candidateConfig } : {}) },
    ...(shadow ? { shadow } : {}),
    strategy: { steps: s.steps, ...(s.progressDeadline ? { progressDeadline: s.progressDeadline } : {}) },
    analysis: {
      prometheus: { address: loop.prometheus.url, timeout: "5s" },
      interval: INTERVAL,
      failureLimit: 1,
      consecutiveErrorLimit: 10,
      args: { window: WINDOW },
      metrics: s.metrics ?? [errorRate],
    },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: s.name, namespace: ns }, spec }));
}

async function get(name: string): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
}

async function phaseOf(name: string, phases: string[], timeoutMs: number): Promise<AIRollout> {
  return waitFor(`${name} in ${phases.join("|")}`, async () => {
    const o = await get(name);
    return phases.includes(o.status?.phase ?? "") ? o : undefined;
  }, timeoutMs, 300);
}

function condition(o: AIRollout, type: string) {
  return o.status?.conditions?.find((c) => c.type === type);
}

async function events(name: string): Promise<{ type: string; reason: string; message: string }[]> {
  const list = await client().get<{ items: { type: string; reason: string; message: string }[] }>(`/api/v1/namespaces/${ns}/events`, { fieldSelector: `involvedObject.name=${name}` });
  return list.items;
}

interface Snapshot {
  phase: string | undefined;
  step: number | undefined;
  weight: number | undefined;
  revision: string | undefined;
}

/** Polls a rollout's status until stopped, keeping every distinct state seen (bounded). */
function follow(name: string): { seen: Snapshot[]; stop: () => void } {
  const seen: Snapshot[] = [];
  let on = true;
  void (async () => {
    while (on) {
      try {
        const s = (await get(name)).status;
        const snap = { phase: s?.phase, step: s?.currentStep, weight: s?.canaryWeight, revision: s?.revision };
        const last = seen.at(-1);
        if (!last || JSON.stringify(last) !== JSON.stringify(snap)) seen.push(snap);
        if (seen.length > 500) seen.shift();
      } catch {
        // the API server is busy: the next poll will tell
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const stop = (): void => {
    on = false;
    watchers.delete(stop);
  };
  watchers.add(stop);
  return { seen, stop };
}

/** Requests a backend received that were not shadow copies, i.e. real traffic routed to it. */
const primaryHits = (b: TestBackend): number => b.requests.filter((r) => r.headers[SHADOW_HEADER] === undefined).length;
const shadowHits = (b: TestBackend): number => b.requests.filter((r) => r.headers[SHADOW_HEADER] === "true").length;

/** Evaluates a built-in template for a rollout through the real Prometheus, as the controller would. */
async function template(name: TemplateName, rollout: string, window: string): Promise<{ query: string; value: number | undefined }> {
  const r = resolveMetric({ name, templateRef: name }, { interval: INTERVAL, args: { window } });
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join("; "));
  const query = renderMetricQuery(r.metric, { rollout, namespace: ns, stable: STABLE, candidate: CANDIDATE });
  return { query, value: await loop.value(query) };
}

/** Waits until a template's value is finite and within `tolerance` of `expected`; the error quotes the last value. */
async function templateNear(name: TemplateName, rollout: string, expected: number, tolerance: number, window = "20s"): Promise<number> {
  let last: { query: string; value: number | undefined } | undefined;
  try {
    return await waitFor(`${name} for ${rollout} near ${expected}`, async () => {
      last = await template(name, rollout, window);
      const v = last.value;
      return v !== undefined && Number.isFinite(v) && Math.abs(v - expected) <= tolerance ? v : undefined;
    }, 40_000, 1000);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last value ${last?.value} of ${last?.query}`, { cause: err });
  }
}

const id10 = (id: number): boolean => id % 10 === 0;

describe.concurrent("the real gateway -> Prometheus -> controller loop", () => {
  it("every built-in template reads the real gateway's series and returns what the traffic implies", async ({ expect }) => {
    // Paused at 50 %: both versions serve. Every 10th candidate answer and every 5th stable answer
    // is a 500; each answer reports its tokens and cost; the candidate answers after 150 ms.
    const split: Scenario = {
      name: "contract-split",
      stable: await loop.backend("contract-split-stable", classifierResponder({ failOn: (n) => n % 5 === 0, tokens: 800, cost: 0.001 })),
      candidate: await loop.backend("contract-split-candidate", classifierResponder({ failOn: (n) => n % 10 === 0, tokens: 1200, cost: 0.002, delayMs: 150 })),
      steps: [{ setWeight: 50 }, { pause: {} }],
    };
    // Shadowing for long: 1 in 10 answers has another intent, judged after 30 comparisons with a
    // limit just above it (12 %), so the sequential test (ADR 0011) reaches no decision either way
    // and the rollout keeps mirroring while the template is read (a far limit would pass early).
    const shadow: Scenario = {
      name: "contract-shadow",
      stable: await loop.backend("contract-shadow-stable", classifierResponder()),
      candidate: await loop.backend("contract-shadow-candidate", classifierResponder({ drift: id10 })),
      shadow: { minSamples: 30, maxMismatchRate: 0.12, compare: { labels: ["$.intent"] } },
      steps: [{ shadow: { duration: "10m" } }, { setWeight: 100 }],
    };
    apply(split);
    apply(shadow);
    await loop.gateway.knows(ns, split.name);
    await loop.gateway.knows(ns, shadow.name);
    const t1 = loop.traffic(split.name, { ratePerSecond: 10, maxRequests: 1500, maxDurationMs: 150_000 });
    const t2 = loop.traffic(shadow.name, { ratePerSecond: 10, maxRequests: 1500, maxDurationMs: 150_000 });
    await phaseOf(split.name, ["Paused"], 60_000);

    const seen = new Set<TemplateName>();
    const check = async (t: TemplateName, rollout: string, expected: number, tolerance: number): Promise<void> => {
      await templateNear(t, rollout, expected, tolerance);
      seen.add(t);
    };
    await check("error-rate", split.name, 0.1, 0.03);
    // 0.1 / 0.2: the stable's own error rate is above the template's floor of 0.01.
    await check("baseline-error-ratio", split.name, 0.5, 0.15);
    // Every answer carries the same usage, so the ratios are exact whatever the window.
    await check("tokens-per-request", split.name, 1200, 1e-6);
    await check("cost-per-request", split.name, 0.002, 1e-9);
    // 150 ms answers fall in the (0.1, 0.25] bucket; a loaded machine may push a few further.
    await check("latency-p95", split.name, 0.3, 0.2);

    // The controller's evidence queries read the gateway's per-revision gauges: judged after 30
    // comparisons, about 1 in 10 of them mismatched.
    const evidence = shadowEvidenceQueries({ name: shadow.name, namespace: ns }, (await get(shadow.name)).status!.revision!);
    await waitFor("contract-shadow judged", async () => (await loop.value(evidence["shadow/judged"])) === 1, 60_000, 1000);
    const compared = (await loop.value(evidence["shadow/compared"]))!;
    const mismatched = (await loop.value(evidence["shadow/mismatched"]))!;
    expect(compared).toBeGreaterThanOrEqual(30);
    expect(Math.abs(mismatched / compared - 0.1)).toBeLessThanOrEqual(0.05);
    await check("shadow-mismatch-rate", shadow.name, 0.1, 0.05);

    await Promise.all([t1.stop(), t2.stop()]);
    expect([...seen].sort()).toEqual([...TEMPLATE_NAMES].sort());
    // The rollout stayed in its shadow step: a 10 % rate is too near its 12 % limit to decide early.
    expect((await get(shadow.name)).status!.phase).toBe("ShadowTesting");
  }, 240_000);

  it("(a) a healthy candidate passes its shadow step and analysis and is promoted", async ({ expect }) => {
    const name = "healthy";
    const s: Scenario = {
      name,
      stable: await loop.backend(`${name}-stable`, classifierResponder()),
      noise: await loop.backend(`${name}-stable-copy`, classifierResponder()),
      candidate: await loop.backend(`${name}-candidate`, classifierResponder()),
      shadow: { minSamples: 20, maxMismatchRate: 0.05, compare: { labels: ["$.intent"] } },
      steps: [{ shadow: { duration: "5s" } }, { setWeight: 20 }, { analysis: {} }, { setWeight: 100 }],
      metrics: [errorRate, latency],
    };
    apply(s);
    await loop.gateway.knows(ns, name);
    const watch = follow(name);
    const traffic = loop.traffic(name, { ratePerSecond: 10, maxRequests: 1200, maxDurationMs: 120_000 });
    const done = await phaseOf(name, ["Succeeded", "RolledBack", "Paused"], 120_000).finally(() => watch.stop());
    await traffic.stop();

    expect(done.status!.phase, done.status!.message).toBe("Succeeded");
    expect(done.status!.canaryWeight).toBe(100);
    // It went through the shadow step, then the 20 % step, before promotion.
    expect(watch.seen.some((x) => x.phase === "ShadowTesting" && x.weight === 0)).toBe(true);
    expect(watch.seen.some((x) => x.weight === 20)).toBe(true);
    // Real traffic reached every backend the way the steps said.
    expect(shadowHits(s.candidate)).toBeGreaterThanOrEqual(20);
    expect(shadowHits(s.noise!)).toBeGreaterThanOrEqual(20);
    expect(primaryHits(s.candidate)).toBeGreaterThan(0);
    expect(traffic.report.statuses["200"]).toBe(traffic.report.sent);
    // The analysis step measured both metrics from the gateway's series and passed.
    const run = done.status!.analysis!.history!.find((h) => h.id.startsWith("step-2"));
    expect(run?.phase).toBe("Successful");
    expect(run!.metrics.map((m) => [m.name, m.phase])).toEqual([["error-rate", "Successful"], ["latency-p95", "Successful"]]);
    expect(run!.metrics[0]!.query).toContain(`rollout="${name}",namespace="${ns}",version="${CANDIDATE}"`);
    // The shadow step was judged against the noise baseline: both kinds of comparison counted, as
    // the controller read them from Prometheus when it decided (status.shadow). Read afterwards
    // from Prometheus they may already be gone: once promoted, the gateway's per-revision series
    // follow the new stable.
    expect(done.status!.shadow).toMatchObject({ judged: true, mismatched: 0 });
    expect(done.status!.shadow!.compared).toBeGreaterThanOrEqual(20);
    expect(done.status!.shadow!.noiseCompared).toBeGreaterThanOrEqual(20);
    expect(condition(done, "Ready")).toMatchObject({ status: "True" });
    expect.soft(condition(done, "Stalled")?.status ?? "False").toBe("False");
  }, 180_000);

  it("(b) a candidate whose labels drift on 10% of requests is rolled back in its shadow step", async ({ expect }) => {
    const name = "drift";
    const s: Scenario = {
      name,
      stable: await loop.backend(`${name}-stable`, classifierResponder()),
      noise: await loop.backend(`${name}-stable-copy`, classifierResponder()),
      candidate: await loop.backend(`${name}-candidate`, classifierResponder({ drift: id10 })),
      shadow: { minSamples: 40, maxMismatchRate: 0.05, compare: { labels: ["$.intent"] } },
      // Long enough that only the early-stop rule can end it in time (see below).
      steps: [{ shadow: { duration: "90s" } }, { setWeight: 20 }, { setWeight: 100 }],
    };
    apply(s);
    await loop.gateway.knows(ns, name);
    const watch = follow(name);
    const traffic = loop.traffic(name, { ratePerSecond: 10, maxRequests: 1200, maxDurationMs: 120_000 });
    const shadowing = await phaseOf(name, ["ShadowTesting"], 60_000);
    const done = await phaseOf(name, ["RolledBack", "Succeeded", "Paused"], 130_000).finally(() => watch.stop());
    await traffic.stop();

    expect(done.status!.phase, done.status!.message).toBe("RolledBack");
    const degraded = condition(done, "Degraded");
    expect(degraded).toMatchObject({ status: "True", reason: "ShadowMismatch" });
    expect((await events(name)).some((e) => e.type === "Warning" && e.reason === "ShadowMismatch")).toBe(true);
    // Never served a real request: weight 0 throughout, only shadow copies reached the candidate.
    expect(watch.seen.every((x) => (x.weight ?? 0) === 0)).toBe(true);
    expect(primaryHits(s.candidate)).toBe(0);
    expect(shadowHits(s.candidate)).toBeGreaterThanOrEqual(40);
    // Judged on real evidence, against the noise baseline.
    const sh = done.status!.shadow as Record<string, unknown> | undefined;
    expect(sh).toMatchObject({ judged: true, required: 40 });
    expect(sh!.compared as number).toBeGreaterThanOrEqual(40);
    expect(sh!.noiseCompared as number).toBeGreaterThanOrEqual(40);
    const rate = (sh!.mismatched as number) / (sh!.compared as number);
    expect(rate).toBeGreaterThan(0.05);
    expect(rate).toBeLessThan(0.2);
    // A 10 % drift against a 5 % limit is conclusive after about 110 comparisons (11 s of this
    // traffic): the rollback comes before the 90 s step would have ended. Controller timestamps.
    const elapsed = Date.parse(degraded!.lastTransitionTime) - Date.parse(shadowing.status!.stepStartedAt!);
    console.log(`drift: rolled back ${(elapsed / 1000).toFixed(1)}s into its 90s shadow step, after ${sh!.mismatched}/${sh!.compared} mismatched comparisons`);
    expect(elapsed).toBeLessThan(90_000);
    expect.soft(condition(done, "Ready")?.status).toBe("False");
    expect.soft(condition(done, "Stalled")).toMatchObject({ status: "True" });
  }, 180_000);

  it("(c) a candidate answering 5xx at weight 20% is rolled back by error-rate", async ({ expect }) => {
    const name = "errors";
    const s: Scenario = {
      name,
      stable: await loop.backend(`${name}-stable`, classifierResponder()),
      candidate: await loop.backend(`${name}-candidate`, classifierResponder({ failOn: () => true })),
      steps: [{ setWeight: 20 }, { analysis: { metrics: ["error-rate"] } }, { setWeight: 100 }],
    };
    apply(s);
    await loop.gateway.knows(ns, name);
    const watch = follow(name);
    const traffic = loop.traffic(name, { ratePerSecond: 10, maxRequests: 1200, maxDurationMs: 120_000 });
    const done = await phaseOf(name, ["RolledBack", "Succeeded", "Paused"], 120_000).finally(() => watch.stop());
    await traffic.stop();

    expect(done.status!.phase, done.status!.message).toBe("RolledBack");
    expect(done.status!.canaryWeight).toBe(0);
    expect(watch.seen.some((x) => x.weight === 20)).toBe(true);
    expect(watch.seen.some((x) => x.weight === 100)).toBe(false);
    // The 5xx were real answers the gateway routed to the candidate.
    expect(traffic.report.versions[CANDIDATE]).toBeGreaterThan(0);
    expect(traffic.report.statuses["500"]).toBeGreaterThan(0);
    const degraded = condition(done, "Degraded")!;
    expect(degraded).toMatchObject({ status: "True", reason: "AnalysisFailed" });
    expect(degraded.message).toContain('metric "error-rate"');
    expect(degraded.message).toContain(`rollout="${name}"`);
    const run = done.status!.analysis!.history!.find((h) => h.id.startsWith("step-1"))!;
    expect(run.phase).toBe("Failed");
    // Every candidate answer was a 500: the error rate Prometheus computed is 1.
    expect(run.metrics[0]!.lastValue).toBe("[1]");
    expect.soft(condition(done, "Ready")?.status).toBe("False");
    expect.soft(condition(done, "Stalled")).toMatchObject({ status: "True" });
  }, 180_000);

  it("(d) a low-traffic candidate never passes its shadow step: it keeps mirroring, then pauses for lack of evidence", async ({ expect }) => {
    const name = "quiet";
    const s: Scenario = {
      name,
      stable: await loop.backend(`${name}-stable`, classifierResponder()),
      candidate: await loop.backend(`${name}-candidate`, classifierResponder()),
      shadow: { minSamples: 50, maxMismatchRate: 0.05, compare: { labels: ["$.intent"] } },
      steps: [{ shadow: { duration: "5s" } }, { setWeight: 100 }],
      progressDeadline: "20s",
    };
    apply(s);
    await loop.gateway.knows(ns, name);
    const watch = follow(name);
    const shadowing = await phaseOf(name, ["ShadowTesting"], 60_000);
    await waitFor("the gateway mirrors", async () => (await loop.gateway.rollout(ns, name))?.shadowEnabled === true, 30_000);
    const report = await loop.traffic(name, { ratePerSecond: 2, maxRequests: 5, maxDurationMs: 30_000 }).done;
    expect(report.statuses["200"]).toBe(5);

    // Past the step's duration, with 5 of 50 comparisons: still mirroring, still at weight 0.
    // The controller runs on this machine's clock: wait until its 5 s step is well over.
    const durationEnd = Date.parse(shadowing.status!.stepStartedAt!) + 5000;
    await new Promise((r) => setTimeout(r, Math.max(0, durationEnd + 6000 - Date.now())));
    const holding = await get(name);
    expect(holding.status!.phase).toBe("ShadowTesting");
    expect(holding.status!.currentStep).toBe(0);
    expect(holding.status!.canaryWeight ?? 0).toBe(0);
    // Not judged is visible to PromQL, and the template reads it as no data, never as 0.
    // The controller's own evidence queries, against the gateway's real gauges.
    const evidence = shadowEvidenceQueries({ name, namespace: ns }, holding.status!.revision!);
    // Shadow work runs on low-priority worker threads: on a busy machine the count may lag the answers.
    await waitFor("5 comparisons in Prometheus", async () => (await loop.value(evidence["shadow/compared"])) === 5, 30_000, 500);
    expect(await loop.value(evidence["shadow/judged"])).toBe(0);
    expect((await template("shadow-mismatch-rate", name, WINDOW)).value).toBeUndefined();

    const paused = await phaseOf(name, ["Paused", "Succeeded", "RolledBack"], 90_000).finally(() => watch.stop());
    expect(paused.status!.phase, paused.status!.message).toBe("Paused");
    expect(paused.status!.pauseReason).toBe("InsufficientEvidence");
    // The message gives the counts: 5 comparisons of the 50 required.
    expect(paused.status!.message).toMatch(/\b5\b.*\b50\b/);
    const sh = paused.status!.shadow as Record<string, unknown> | undefined;
    expect(sh).toMatchObject({ judged: false, required: 50, compared: 5 });
    expect(watch.seen.every((x) => (x.weight ?? 0) === 0)).toBe(true);
    expect(primaryHits(s.candidate)).toBe(0);
    expect(shadowHits(s.candidate)).toBe(5);
    expect.soft(condition(paused, "Ready")?.status).toBe("False");
    expect.soft(condition(paused, "Stalled")).toMatchObject({ status: "True", reason: "InsufficientEvidence" });
  }, 180_000);

  it("(e) editing the candidate's prompt ConfigMap mid-rollout starts a new revision from step 1", async ({ expect }) => {
    const name = "prompt";
    const configMap = "prompt-e";
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: configMap, namespace: ns }, data: { prompt: "Classify the ticket. v1" } }));
    const s: Scenario = {
      name,
      stable: await loop.backend(`${name}-stable`, classifierResponder()),
      candidate: await loop.backend(`${name}-candidate`, classifierResponder()),
      candidateConfig: { model: "small", promptRef: { configMap, key: "prompt" } },
      // The first step lasts long enough to be seen after the restart.
      steps: [{ pause: { duration: "8s" } }, { setWeight: 20 }, { pause: {} }],
    };
    apply(s);
    await loop.gateway.knows(ns, name);
    const traffic = loop.traffic(name, { ratePerSecond: 4, maxRequests: 600, maxDurationMs: 120_000 });
    const before = await waitFor("paused at step 3", async () => {
      const o = await get(name);
      return o.status?.phase === "Paused" && o.status.currentStep === 2 ? o : undefined;
    }, 90_000, 300);
    const r1 = before.status!.revision!;
    expect(before.status!.canaryWeight).toBe(20);
    // The gateway follows the controller: real requests reach the candidate at 20 %.
    await waitFor("a real request at the candidate", () => primaryHits(s.candidate) > 0, 30_000);

    kubectlOk(["patch", "configmap", configMap, "-n", ns, "--type", "merge", "-p", JSON.stringify({ data: { prompt: "Classify the ticket, briefly. v2" } })]);
    const restarted = await waitFor("a new revision", async () => {
      const o = await get(name);
      return o.status?.revision && o.status.revision !== r1 ? o : undefined;
    }, 60_000, 250).catch(async (err: unknown) => {
      // Say what the controller had seen, for the post-mortem (its log names its informers' resourceVersions).
      const cm = kubectlOk(["get", "configmap", configMap, "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}"]);
      const st = (await get(name)).status;
      throw new Error(`${(err as Error).message}: ConfigMap ${configMap} is at resourceVersion ${cm}; status.revision ${st?.revision}, revisionInputs ${JSON.stringify(st?.revisionInputs)}; controller log ${loop.controller.id}`, { cause: err });
    });
    expect(restarted.status!.currentStep ?? 0).toBe(0);
    expect(restarted.status!.canaryWeight ?? 0).toBe(0);
    const ev = await waitFor("a NewRevision Event", async () => (await events(name)).find((e) => e.reason === "NewRevision"), 30_000);
    expect(ev.message).toContain("promptRef");
    // The new revision runs the steps again, to the same pause.
    const again = await waitFor("paused at step 3 again", async () => {
      const o = await get(name);
      return o.status?.phase === "Paused" && o.status.currentStep === 2 && o.status.revision !== r1 ? o : undefined;
    }, 90_000, 300);
    expect(again.status!.canaryWeight).toBe(20);
    await traffic.stop();
  }, 240_000);
});
