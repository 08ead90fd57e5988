/**
 * The chart's Grafana dashboard (charts/airollout/files/grafana-dashboard.json) proven against
 * real metrics: every panel's query, interpolated as Grafana would ($namespace and $rollout from
 * their label_values queries, All selected; $__rate_interval from the scrape interval), runs as a
 * range query against a real Prometheus scraping the real gateway and controller processes
 * (test/support/loop.ts) while real traffic flows, and must return data. The situations some
 * panels need are driven for real: a candidate whose labels drift (field mismatches), a noise
 * baseline that differs on another field, a failing shadow candidate whose circuit opens (circuit
 * state, mirror drops), invalid payloads (quarantine, refusals), webhooks to unknown rollouts past
 * their quarantine budget, a judge metric (judge samples) and a rollout paused at 50 %.
 *
 * Also: every metric the dashboard selects is one the code's registries export, so a rename on
 * either side fails here, and the chart ships the dashboard as a ConfigMap with the sidecar label.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { cacheDir, PROJECT_ROOT, runBuild, toolVersions } from "../../controller/src/dev/tools.ts";
import { createGatewayMetrics } from "../../controller/src/gateway/metrics.ts";
import { createControllerMetrics } from "../../controller/src/telemetry/metrics.ts";
import { classifierResponder, type Responder } from "../support/backends.ts";
import { formatValues, interpolate, intervals, labelValuesQuery, panelTargets, selectedMetrics, unknownMetrics, type Dashboard, type PanelTarget, type Variable } from "../support/grafana.ts";
import { startLoop, type Loop } from "../support/loop.ts";
import { client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

const CHART = join(PROJECT_ROOT, "charts", "airollout");
const DASHBOARD_FILE = join(CHART, "files", "grafana-dashboard.json");
const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, "utf8")) as Dashboard;
const targets = panelTargets(dashboard);

/** Every metric the gateway's and the controller's registries export, with its type. */
async function exportedMetrics(): Promise<{ name: string; type: string }[]> {
  const regs = [createGatewayMetrics().registry, createControllerMetrics().registry];
  const all = await Promise.all(regs.map((r) => r.getMetricsAsJSON()));
  return all.flat().map((m) => ({ name: m.name, type: String(m.type) }));
}

describe("the Grafana dashboard's queries (no cluster)", () => {
  it("finds every panel's queries, including those inside a collapsed row", () => {
    const rows = dashboard.panels.filter((p) => p.type === "row");
    expect(rows.some((r) => (r.panels ?? []).length > 0)).toBe(true);
    const nested = rows.flatMap((r) => (r.panels ?? []).map((p) => `${r.title} / ${p.title}`));
    for (const n of nested) expect(targets.map((t) => t.panel)).toContain(n);
    expect(targets.length).toBeGreaterThanOrEqual(20);
  });

  it("selects only metrics the gateway and the controller export (a renamed metric fails here)", async () => {
    const exported = await exportedMetrics();
    const vars = dashboard.templating.list.filter((v) => v.type === "query").map((v) => labelValuesQuery(v).selector);
    const names = [...targets.map((t) => t.expr), ...vars].flatMap(selectedMetrics);
    expect(names.length).toBeGreaterThan(0);
    expect(unknownMetrics(names, exported)).toEqual([]);
    // README: the judge's verdicts and the quarantine's current size are not metrics, so the
    // dashboard shows neither; once one is exported this fails, and it belongs on the dashboard.
    expect(exported.map((m) => m.name).filter((n) => /verdict|judge_(score|result)|quarantine_(size|rows|stored)/.test(n))).toEqual([]);
    // The check itself can fail: a name no registry has, and a histogram's parts, are told apart.
    expect(unknownMetrics(["airollout_request_total", "airollout_request_duration_seconds_bucket"], exported)).toEqual(["airollout_request_total"]);
  });

  it("covers what issue 11 asks of it", () => {
    const used = new Set(targets.flatMap((t) => selectedMetrics(t.expr)));
    for (const m of [
      "airollout_controller_rollout_phase",
      "airollout_controller_rollout_canary_weight",
      "airollout_shadow_field_mismatches_total",
      "airollout_noise_mismatches_total",
      "airollout_requests_total",
      "airollout_request_duration_seconds_bucket",
      "airollout_tokens_total",
      "airollout_cost_total",
      "airollout_quarantined_total",
      "airollout_mirror_dropped_total",
      "airollout_circuit_state",
      "airollout_shadow_coverage_ratio",
      "airollout_judge_sample_count",
    ]) expect(used, m).toContain(m);
    const latency = targets.filter((t) => t.expr.includes("airollout_request_duration_seconds_bucket")).map((t) => /histogram_quantile\(([\d.]+)/.exec(t.expr)?.[1]);
    expect(latency.sort()).toEqual(["0.5", "0.95", "0.99"]);
  });

  it("has a Prometheus data source variable that every panel and query variable uses, and $namespace/$rollout from label_values", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    const vars = dashboard.templating.list;
    expect(vars.find((v) => v.name === "datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const name of ["namespace", "rollout"]) expect(vars.find((v) => v.name === name), name).toMatchObject({ type: "query", multi: true, includeAll: true, datasource: { uid: "${datasource}" } });
    const text = readFileSync(DASHBOARD_FILE, "utf8");
    const uids = [...text.matchAll(/"uid": "([^"]*)"/g)].map((m) => m[1]).filter((u) => u !== "airollout-overview" && u !== "-- Grafana --");
    expect(new Set(uids)).toEqual(new Set(["${datasource}"]));
  });

  it("interpolates variables as Grafana does, failing on one it does not know", () => {
    const v: Variable = { name: "rollout", type: "query", multi: true, includeAll: true };
    expect(formatValues(v, "All", ["a.b", "c"])).toBe("(a\\\\.b|c)");
    expect(formatValues(v, ["bot"], ["bot", "x"])).toBe("bot");
    expect(() => formatValues(v, "All", [])).toThrow(/found nothing/);
    const iv = intervals(300, 30);
    expect(iv).toEqual({ interval: 30, rateInterval: 120 });
    expect(interpolate('rate(x{rollout=~"$rollout"}[$__rate_interval])', { rollout: "(a|b)" }, iv)).toBe('rate(x{rollout=~"(a|b)"}[120s])');
    expect(() => interpolate("x{a=\"$other\"}", {}, iv)).toThrow(/no value for variable other/);
  });
});

describe("the chart's dashboard ConfigMap", () => {
  let helm: string;
  beforeAll(async () => {
    const dir = join(cacheDir(), "bin", `helm-${toolVersions().HELM_VERSION}`);
    if (!existsSync(join(dir, "helm"))) await runBuild("helm", (l) => process.stderr.write(`${l}\n`));
    helm = join(dir, "helm");
  }, 1_200_000);

  interface ConfigMap {
    kind: string;
    metadata: { name: string; namespace: string; labels: Record<string, string> };
    data: Record<string, string>;
  }
  const render = (set: string[]): ConfigMap[] => {
    const home = (d: string) => join(cacheDir(), "helm-home", d);
    const r = spawnSync(helm, ["template", "rel", CHART, "--namespace", "ops", ...set.flatMap((s) => ["--set", s])], {
      encoding: "utf8",
      env: { ...process.env, HELM_CACHE_HOME: home("cache"), HELM_CONFIG_HOME: home("config"), HELM_DATA_HOME: home("data") },
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    return parseAllDocuments(r.stdout)
      .map((d) => d.toJSON() as ConfigMap | null)
      .filter((o): o is ConfigMap => o?.kind === "ConfigMap" && o.metadata.name.endsWith("grafana-dashboard"));
  };

  it("is not rendered by default", () => {
    expect(render([])).toEqual([]);
  });

  it("when enabled: a ConfigMap with the sidecar's label holding the dashboard file as it is", () => {
    const [cm, ...rest] = render(["grafana.dashboard.enabled=true"]);
    expect(rest).toEqual([]);
    expect(cm!.metadata.namespace).toBe("ops");
    expect(cm!.metadata.labels).toMatchObject({ grafana_dashboard: "1", "app.kubernetes.io/instance": "rel" });
    expect(JSON.parse(cm!.data["airollout.json"]!)).toEqual(dashboard);
  });

  it("takes the sidecar's labels and namespace from values", () => {
    const [cm] = render(["grafana.dashboard.enabled=true", "grafana.dashboard.namespace=monitoring", "grafana.dashboard.labels.team=sre"]);
    expect(cm!.metadata.namespace).toBe("monitoring");
    expect(cm!.metadata.labels).toMatchObject({ grafana_dashboard: "1", team: "sre" });
    // Named after the release namespace too there: another namespace's release of the same name
    // sends its dashboard to the same place (chart-conventions.test.ts installs three of them).
    expect(cm!.metadata.name).toBe("ops-rel-airollout-grafana-dashboard");
    const [own] = render(["grafana.dashboard.enabled=true", "grafana.dashboard.namespace=ops"]);
    expect(own!.metadata).toMatchObject({ namespace: "ops", name: "rel-airollout-grafana-dashboard" });
  });
});

// ------------------------------------------------------------------------------------------
// End to end: every panel returns data from the real loop.

const SCRAPE_SECONDS = 1;
const STABLE = "v1";
const CANDIDATE = "v2";
const SHADOW = "dash-shadow";
const CANARY = "dash-canary";
const BROKEN = "dash-broken";

let ns: string;
let loop: Loop;
const started = Date.now();

/** The stable's second copy: identical but for the summary of every tenth ticket (noise). */
function noisyCopy(): Responder {
  const inner = classifierResponder({ tokens: 800, cost: 0.001 });
  return async (req, n) => {
    const r = await inner(req, n);
    const id = (req.json as { id?: number } | undefined)?.id ?? -1;
    return id % 10 === 3 ? { ...r, body: { ...(r.body as object), summary: `ticket ${id} (reworded)` } } : r;
  };
}

function apply(name: string, spec: Record<string, unknown>): void {
  const analysis = { prometheus: { address: loop.prometheus.url, timeout: "5s" }, interval: "2s", metrics: [{ name: "error-rate", templateRef: "error-rate" }] };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec: { analysis, ...spec } }));
}

async function phaseOf(name: string, phase: string): Promise<AIRollout> {
  return waitFor(`${name} ${phase}`, async () => {
    const o = await client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
    return o.status?.phase === phase ? o : undefined;
  }, 90_000, 300);
}

/** POSTs `count` webhooks, `concurrency` at a time; returns the statuses seen. */
async function post(url: (i: number) => string, body: (i: number) => unknown, count: number, concurrency = 8): Promise<Record<number, number>> {
  const seen: Record<number, number> = {};
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const res = await fetch(url(i), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body(i)), signal: AbortSignal.timeout(30_000) });
      await res.arrayBuffer();
      seen[res.status] = (seen[res.status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return seen;
}

/**
 * Sends webhooks to undeclared rollouts until the gateway refuses to store one (its budget: 100,
 * then 5 a second), read from its own /metrics; at most 1,500, all answered 404.
 */
async function unknownPastBudget(): Promise<void> {
  const skipped = async (): Promise<boolean> => {
    const res = await fetch(`${loop.gateway.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    return /^airollout_quarantine_skipped_total\{reason="unknown_rollout"\} [1-9]/m.test(await res.text());
  };
  let sent = 0;
  while (!(await skipped())) {
    if (sent >= 1500) throw new Error(`${sent} webhooks to unknown rollouts and none refused storage`);
    const seen = await post((i) => loop.gateway.hookUrl(ns, `nobody-${(sent + i) % 7}`), (i) => ({ id: sent + i }), 150, 16);
    expect(seen).toEqual({ 404: 150 });
    sent += 150;
  }
}

interface Series {
  metric: Record<string, string>;
  values: [number, string][];
}

/** A Grafana-style range query from the start of the run to now, one point per $__interval. */
async function rangeQuery(query: string, stepSeconds: number): Promise<Series[]> {
  const params = new URLSearchParams({ query, start: String(started / 1000), end: String(Date.now() / 1000), step: `${stepSeconds}s` });
  const res = await fetch(`${loop.prometheus.url}/api/v1/query_range?${params}`, { signal: AbortSignal.timeout(15_000) });
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Series[] } };
  if (body.status !== "success") throw new Error(`Prometheus refused ${query}: ${body.error}`);
  return body.data!.result;
}

/** The values of a label_values variable, as Grafana asks Prometheus for them (match[] over the range). */
async function labelValues(v: Variable, values: Readonly<Record<string, string>>): Promise<string[]> {
  const { selector, label } = labelValuesQuery(v);
  const params = new URLSearchParams({ "match[]": interpolate(selector, values, intervals(1, SCRAPE_SECONDS)), start: String(started / 1000), end: String(Date.now() / 1000) });
  const res = await fetch(`${loop.prometheus.url}/api/v1/label/${label}/values?${params}`, { signal: AbortSignal.timeout(15_000) });
  const body = (await res.json()) as { status: string; error?: string; data?: string[] };
  if (body.status !== "success") throw new Error(`Prometheus refused the values of ${v.name}: ${body.error}`);
  return body.data!;
}

/** The variables in dashboard order, each selecting `choice(name)` ("All" by default). */
async function resolveVariables(choice: (name: string) => string[] | "All" = () => "All"): Promise<{ values: Record<string, string>; options: Record<string, string[]> }> {
  const values: Record<string, string> = {};
  const options: Record<string, string[]> = {};
  for (const v of dashboard.templating.list) {
    if (v.type === "datasource") continue;
    const all = await labelValues(v, values);
    options[v.name] = all;
    values[v.name] = formatValues(v, choice(v.name), all);
  }
  return { values, options };
}

/** Series with at least one finite point: NaN from 0/0 everywhere is no data. */
const withData = (s: Series[]): Series[] => s.filter((x) => x.values.some(([, v]) => Number.isFinite(Number(v))));

async function runPanel(t: PanelTarget, values: Record<string, string>): Promise<Series[]> {
  const iv = intervals((Date.now() - started) / 1000, SCRAPE_SECONDS);
  return withData(await rangeQuery(interpolate(t.expr, values, iv), iv.interval));
}

const lastValue = (s: Series): number => Number(s.values.at(-1)![1]);

/** The middle of the values over the run (a loaded machine's stalls make single points jump); NaN for none. */
function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

describe("every panel against the real gateway and controller", () => {
  beforeAll(async () => {
    ns = createNamespace("grafana");
    loop = await startLoop({ kubeconfig: kubeconfig(), namespace: ns, id: `grafana-${ns}`, scrapeIntervalSeconds: SCRAPE_SECONDS });
  }, 180_000);

  afterAll(async () => {
    await loop?.close();
  });

  it("returns data for every query of every panel", async () => {
    // Shadowing: the candidate's intent differs on every tenth ticket, the noise copy's summary on
    // another tenth; limits close to the drift keep it mirroring for the whole test. Webhooks
    // without an id are refused by the payload schema and quarantined.
    const shadowStable = await loop.backend(`${SHADOW}-stable`, classifierResponder({ tokens: 800, cost: 0.001 }));
    const noise = await loop.backend(`${SHADOW}-noise`, noisyCopy());
    const shadowCandidate = await loop.backend(`${SHADOW}-candidate`, classifierResponder({ drift: (id) => id % 10 === 0, tokens: 900, cost: 0.0012 }));
    apply(SHADOW, {
      stable: { version: STABLE, endpoint: shadowStable.url },
      candidate: { version: CANDIDATE, endpoint: shadowCandidate.url },
      traffic: { payloadSchema: { type: "object", required: ["id"] } },
      shadow: { minSamples: 30, maxMismatchRate: 0.12, compare: { labels: ["$.intent"] }, noiseBaseline: { enabled: true, endpoint: noise.url } },
      strategy: { steps: [{ shadow: { duration: "10m" } }, { setWeight: 100 }] },
    });
    // Paused at 50 %: both versions answer, with errors, usage and a slower candidate; a judge
    // metric makes the gateway record judge samples (no analysis step runs it).
    const canaryStable = await loop.backend(`${CANARY}-stable`, classifierResponder({ failOn: (n) => n % 5 === 0, tokens: 800, cost: 0.001 }));
    const canaryCandidate = await loop.backend(`${CANARY}-candidate`, classifierResponder({ failOn: (n) => n % 10 === 0, tokens: 1200, cost: 0.002, delayMs: 150 }));
    apply(CANARY, {
      stable: { version: STABLE, endpoint: canaryStable.url },
      candidate: { version: CANDIDATE, endpoint: canaryCandidate.url },
      traffic: { circuitBreaker: { consecutiveFailures: 5 } },
      strategy: { steps: [{ setWeight: 50 }, { pause: {} }] },
      analysis: { prometheus: { address: loop.prometheus.url, timeout: "5s" }, interval: "2s", metrics: [{ name: "latency-judge", judge: { signal: "latency" } }] },
    });
    // A shadow candidate that answers only 500: its circuit opens after 3 and stays open, so the
    // copies that follow are dropped (circuit_open); 3 comparisons never make evidence.
    const brokenStable = await loop.backend(`${BROKEN}-stable`, classifierResponder({ tokens: 500, cost: 0.0005 }));
    const brokenCandidate = await loop.backend(`${BROKEN}-candidate`, classifierResponder({ failOn: () => true }));
    apply(BROKEN, {
      stable: { version: STABLE, endpoint: brokenStable.url },
      candidate: { version: CANDIDATE, endpoint: brokenCandidate.url },
      traffic: { circuitBreaker: { consecutiveFailures: 3, openDuration: "10m" } },
      shadow: { minSamples: 30, maxMismatchRate: 0.12 },
      strategy: { steps: [{ shadow: { duration: "10m" } }, { setWeight: 100 }] },
    });
    for (const name of [SHADOW, CANARY, BROKEN]) await loop.gateway.knows(ns, name);
    const runs = [SHADOW, CANARY, BROKEN].map((name) => loop.traffic(name, { ratePerSecond: 8, maxRequests: 2000, maxDurationMs: 240_000 }));

    await phaseOf(CANARY, "Paused");
    await phaseOf(SHADOW, "ShadowTesting");
    await phaseOf(BROKEN, "ShadowTesting");
    // Refused by the schema (422) and quarantined, and webhooks to rollouts nobody declared:
    // past the unknown-rollout budget of 100 they are refused without being stored.
    const refused = await post(() => loop.gateway.hookUrl(ns, SHADOW), (i) => ({ text: `no id ${i}` }), 10);
    expect(refused).toEqual({ 422: 10 });
    await unknownPastBudget();

    let empty: string[] = [];
    try {
      await waitFor("every panel query returning data", async () => {
        const { values } = await resolveVariables();
        empty = [];
        for (const t of targets) if ((await runPanel(t, values)).length === 0) empty.push(`${t.panel} [${t.refId}]`);
        return empty.length === 0;
      }, 150_000, 3000);
    } catch (err) {
      throw new Error(`${(err as Error).message}; still without data: ${empty.join("; ")}`, { cause: err });
    } finally {
      await Promise.all(runs.map((r) => r.stop()));
    }
    console.log(`grafana dashboard: ${targets.length} queries of ${new Set(targets.map((t) => t.panel)).size} panels returned data`);
  }, 420_000);

  it("shows each rollout's own state when one rollout is selected", async () => {
    const { options } = await resolveVariables();
    expect(options.namespace).toContain(ns);
    expect(options.rollout).toEqual(expect.arrayContaining([SHADOW, CANARY, BROKEN]));
    const panel = (title: string, refId = "A") => targets.find((t) => t.panel.endsWith(`/ ${title}`) && t.refId === refId)!;
    const only = async (rollout: string) => (await resolveVariables((n) => (n === "namespace" ? [ns] : n === "rollout" ? [rollout] : "All"))).values;

    const canary = await only(CANARY);
    const weight = await runPanel(panel("Canary weight"), canary);
    expect(weight.map((s) => [s.metric.name, lastValue(s)])).toEqual([[CANARY, 50]]);
    const phases = (await runPanel(panel("Phase"), canary)).map((s) => s.metric.phase);
    expect(phases).toContain("Paused");
    expect(phases.every((p) => p !== "ShadowTesting")).toBe(true);
    // 150 ms answers: the candidate's p95 is above the stable's.
    const p95 = await runPanel(panel("Latency p50 / p95 / p99 by version", "B"), canary);
    const p95Of = (v: string) => median(p95.filter((s) => s.metric.version === v).flatMap((s) => s.values.map(([, x]) => Number(x)).filter(Number.isFinite)));
    expect(p95Of(CANDIDATE)).toBeGreaterThan(0.1);
    expect(p95Of(CANDIDATE)).toBeGreaterThan(p95Of(STABLE));
    // Every candidate answer reports 1200 tokens. A point can be off when a scrape falls between
    // an answer's two counters over a window of a few requests; the middle of the run is not.
    const tokens = await runPanel(panel("Tokens per request by version"), canary);
    expect(median(tokens.filter((s) => s.metric.version === CANDIDATE).flatMap((s) => s.values.map(([, v]) => Number(v)).filter(Number.isFinite)))).toBeCloseTo(1200, -2);

    const broken = await only(BROKEN);
    const circuit = await runPanel(panel("Circuit state"), broken);
    expect(circuit.map((s) => [s.metric.rollout, s.metric.version, lastValue(s)]).sort()).toEqual([[BROKEN, STABLE, 0], [BROKEN, CANDIDATE, 2]]);
    const drops = await runPanel(panel("Mirror drops and shadow queue"), broken);
    expect(drops.map((s) => s.metric.reason)).toContain("circuit_open");

    const shadow = await only(SHADOW);
    const fields = await runPanel(panel("Shadow mismatch rate by field, against the noise rate"), shadow);
    expect(fields.map((s) => s.metric.field)).toContain("$.intent");
    const noiseRate = await runPanel(panel("Shadow mismatch rate by field, against the noise rate", "C"), shadow);
    expect(noiseRate.map((s) => s.metric.rollout)).toEqual([SHADOW]);
    const quarantined = await runPanel(panel("Quarantined since the gateways started"), shadow);
    expect(quarantined.map((s) => [s.metric.rollout, lastValue(s)])).toEqual([[SHADOW, 10]]);
  }, 120_000);
});
