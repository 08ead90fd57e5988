/**
 * The chart's optional prometheus-operator objects: off by default; when on, a ServiceMonitor and
 * a PrometheusRule the real operator CRDs (its Go module at the pinned version) accept in a
 * server-side dry run and refuse when a field is wrong; the ServiceMonitor selects exactly this
 * release's controller and gateway metrics ports and keeps the metrics' own namespace label; the
 * alerts use only metric names and labels the controller's and the gateway's registries export,
 * pass `promtool check rules`, and fire (and stay quiet) as `promtool test rules` shows on series
 * shaped like the real ones, evaluated by Prometheus's own rule engine; and every alert's
 * expression returns its series from a real Prometheus scraping the real registries.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { prometheusBinary, startPrometheus } from "../../controller/src/dev/prometheus.ts";
import { systemBinary } from "../../controller/src/dev/tools.ts";
import { createGatewayMetrics } from "../../controller/src/gateway/metrics.ts";
import { createControllerMetrics } from "../../controller/src/telemetry/metrics.ts";
import { CHART, ensureHelm, helmRun, type K8sObject, parseObjects, sets } from "./chart-helm.ts";
import { installPrometheusOperatorCRDs } from "./chart-monitoring-crds.ts";
import { createNamespace, kubectl } from "./helpers.ts";

let helm: string;
let promtool: string;
let ns: string;
let work: string;

const ON = ["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.labels.release=kube-prometheus-stack", "metrics.prometheusRule.labels.role=alert-rules", "metrics.serviceMonitor.interval=15s"];

function render(set: readonly string[] = []): K8sObject[] {
  const r = helmRun(helm, ["template", "airollout", CHART, "--namespace", ns, ...sets(set)]);
  expect(r.code, r.stderr).toBe(0);
  return parseObjects(r.stdout);
}

const get = <T,>(o: unknown, path: string): T => path.split(".").reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], o) as T;
const one = (objs: K8sObject[], kind: string) => objs.find((o) => o.kind === kind)!;

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
const rulesOf = (rule: K8sObject) => get<{ name: string; rules: Rule[] }[]>(rule, "spec.groups").flatMap((g) => g.rules);

function dryRun(obj: K8sObject) {
  return kubectl(["apply", "--dry-run=server", "-f", "-"], JSON.stringify(obj));
}

beforeAll(async () => {
  helm = await ensureHelm();
  prometheusBinary(); // installs Debian's prometheus package, which ships promtool, when missing
  promtool = systemBinary("promtool", "PROMTOOL_BIN");
  ns = createNamespace("chart-monitoring");
  work = mkdtempSync(join(tmpdir(), "airollout-alerts-"));
  await installPrometheusOperatorCRDs();
}, 1_200_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the chart's ServiceMonitor and PrometheusRule", () => {
  it("are off by default", () => {
    expect(render().filter((o) => o.apiVersion.startsWith("monitoring.coreos.com/"))).toEqual([]);
  });

  it("are accepted by the real prometheus-operator CRDs, which refuse a malformed field", () => {
    const objs = render(ON);
    const sm = one(objs, "ServiceMonitor");
    const rule = one(objs, "PrometheusRule");
    expect(sm.metadata.labels).toMatchObject({ release: "kube-prometheus-stack", "app.kubernetes.io/instance": "airollout" });
    expect(rule.metadata.labels).toMatchObject({ role: "alert-rules", "app.kubernetes.io/instance": "airollout" });
    for (const o of [sm, rule]) {
      const r = dryRun(o);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`${o.kind.toLowerCase()}.monitoring.coreos.com/airollout created (server dry run)`);
    }
    // The CRDs' validation is live: the same objects with a wrong field are refused, naming it.
    const badSm = structuredClone(sm);
    get<Record<string, unknown>[]>(badSm, "spec.endpoints")[0]!.interval = "every 15 seconds";
    const smErr = dryRun(badSm);
    expect(smErr.code).not.toBe(0);
    expect(smErr.stderr).toContain("spec.endpoints[0].interval");
    const badRule = structuredClone(rule);
    get<{ rules: Record<string, unknown>[] }[]>(badRule, "spec.groups")[0]!.rules[1]!.for = "15 minutes";
    const ruleErr = dryRun(badRule);
    expect(ruleErr.code).not.toBe(0);
    expect(ruleErr.stderr).toContain("spec.groups[0].rules[1].for");
  });

  it("the ServiceMonitor scrapes exactly this release's controller and gateway metrics ports, keeping their namespace label", () => {
    const objs = render([...ON, "dashboard.enabled=true"]);
    const sm = one(objs, "ServiceMonitor");
    expect(get<string[]>(sm, "spec.namespaceSelector.matchNames")).toEqual([ns]);
    const endpoints = get<{ port: string; path: string; interval: string; honorLabels: boolean }[]>(sm, "spec.endpoints");
    expect(endpoints).toEqual([{ port: "metrics", path: "/metrics", interval: "15s", honorLabels: true }]);
    const selector = get<{ matchLabels: Record<string, string>; matchExpressions: { key: string; operator: string; values: string[] }[] }>(sm, "spec.selector");
    const selects = (labels: Record<string, string> = {}) => Object.entries(selector.matchLabels).every(([k, v]) => labels[k] === v) && selector.matchExpressions.every((e) => e.operator === "In" && e.values.includes(labels[e.key]!));
    const services = objs.filter((o) => o.kind === "Service" && selects(o.metadata.labels));
    expect(services.map((s) => s.metadata.name).sort()).toEqual(["airollout-controller-metrics", "airollout-gateway"]);
    // Each Service's "metrics" port leads to a container port of that name in the Pods it selects.
    for (const svc of services) {
      const port = get<{ name: string; targetPort: string }[]>(svc, "spec.ports").find((p) => p.name === "metrics");
      expect(port, svc.metadata.name).toBeDefined();
      const svcSelector = get<Record<string, string>>(svc, "spec.selector");
      const pods = objs.filter((o) => o.kind === "Deployment" && Object.entries(svcSelector).every(([k, v]) => get<Record<string, string>>(o, "spec.template.metadata.labels")[k] === v));
      expect(pods.length, svc.metadata.name).toBe(1);
      const containerPorts = get<{ ports: { name: string }[] }[]>(pods[0], "spec.template.spec.containers")[0]!.ports.map((p) => p.name);
      expect(containerPorts, svc.metadata.name).toContain(port!.targetPort);
    }
    // Another release's ServiceMonitor selects its own Services only.
    const other = parseObjects(helmRun(helm, ["template", "team-b", CHART, "-n", ns, ...sets(ON)]).stdout);
    expect(get<Record<string, string>>(one(other, "ServiceMonitor"), "spec.selector.matchLabels")["app.kubernetes.io/instance"]).toBe("team-b");
  });
});

describe("the alerts", () => {
  it("use only metric names and labels the controller and the gateway export", async () => {
    const exported = new Map<string, Set<string>>();
    for (const registry of [createControllerMetrics().registry, createGatewayMetrics().registry]) {
      for (const m of registry.getMetricsAsArray()) exported.set(m.name, new Set((m as unknown as { labelNames?: string[] }).labelNames ?? []));
    }
    const rules = rulesOf(one(render(ON), "PrometheusRule"));
    expect(rules.map((r) => r.alert).sort()).toEqual(["AIRolloutCircuitOpen", "AIRolloutPausedLong", "AIRolloutQuarantineFull", "AIRolloutQuarantineGrowing", "AIRolloutRolledBack", "AIRolloutStalled"]);
    const problems: string[] = [];
    for (const r of rules) {
      const uses = [...r.expr.matchAll(/\b(airollout_[a-z_]+)\b(\{[^}]*\})?/g)].map((m) => ({ name: m[1]!, matchers: [...(m[2] ?? "").matchAll(/(\w+)\s*=~?/g)].map((x) => x[1]!) }));
      if (uses.length === 0) problems.push(`${r.alert}: no airollout metric`);
      for (const [i, use] of uses.entries()) {
        const labels = exported.get(use.name);
        if (!labels) {
          problems.push(`${r.alert}: ${use.name} is not exported`);
          continue;
        }
        const used = [...use.matchers];
        // The first metric is the one alerted on: grouped by and named in the annotations. Others
        // (the leader, joined on the scrape target) need only exist.
        if (i === 0) {
          used.push(...[...r.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(",").map((x) => x.trim())));
          used.push(...Object.values(r.annotations).flatMap((a) => [...a.matchAll(/\$labels\.(\w+)/g)].map((x) => x[1]!)));
        }
        for (const l of new Set(used)) if (!labels.has(l)) problems.push(`${r.alert}: ${use.name} has no label ${l}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("pass promtool check rules and fire, or stay quiet, as promtool test rules shows", () => {
    const rule = one(render(ON), "PrometheusRule");
    const rulesFile = join(work, "rules.yaml");
    writeFileSync(rulesFile, stringify(rule.spec));
    const check = spawnSync(promtool, ["check", "rules", rulesFile], { encoding: "utf8" });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain("SUCCESS: 6 rules found");
    const testsFile = join(work, "tests.yaml");
    writeFileSync(testsFile, stringify({ rule_files: [rulesFile], evaluation_interval: "1m", tests: alertTests(rulesOf(rule)) }));
    const test = spawnSync(promtool, ["test", "rules", testsFile], { encoding: "utf8" });
    expect(test.status, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toContain("SUCCESS");
  });
});

describe("the alerts on a real Prometheus", () => {
  const servers: Server[] = [];
  let timer: NodeJS.Timeout | undefined;
  afterAll(async () => {
    clearInterval(timer);
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it("every alert's expression returns the series it alerts on, from the controller's and the gateway's registries as Prometheus scrapes them", async () => {
    // The real registries in the states the alerts look for, each its own scrape target: the
    // leader, a replica that lost the lease (still exporting a rollback), and the gateway.
    const controller = createControllerMetrics();
    const former = createControllerMetrics();
    const gateway = createGatewayMetrics();
    controller.leader.set(1);
    former.leader.set(0);
    former.rolloutPhase.set({ namespace: "team", name: "retried", phase: "RolledBack" }, 1);
    former.rolloutPhase.set({ namespace: "team", name: "retried", phase: "Degraded" }, 1);
    controller.rolloutPhase.set({ namespace: "team", name: "retried", phase: "Succeeded" }, 1);
    controller.rolloutPhase.set({ namespace: "team", name: "bot", phase: "RolledBack" }, 1);
    controller.rolloutPhase.set({ namespace: "team", name: "steady", phase: "Progressing" }, 1);
    controller.rolloutPhase.set({ namespace: "team", name: "broken", phase: "Degraded" }, 1);
    controller.rolloutPhase.set({ namespace: "team", name: "waiting", phase: "Paused" }, 1);
    gateway.circuitState.set({ namespace: "team", rollout: "bot", version: "v2" }, 2);
    gateway.circuitState.set({ namespace: "team", rollout: "bot", version: "v1" }, 0);
    timer = setInterval(() => {
      gateway.quarantined.inc({ namespace: "team", rollout: "bot", reason: "bad_signature" }, 50);
      gateway.quarantineSkipped.inc({ reason: "unknown_rollout" }, 1);
    }, 500);
    for (const registry of [controller.registry, former.registry, gateway.registry]) {
      const server = createServer((_req, res) => {
        void registry.metrics().then((text) => res.writeHead(200, { "content-type": registry.contentType }).end(text));
      });
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    }
    const prom = await startPrometheus({ targets: servers.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`), scrapeIntervalSeconds: 1 });
    try {
      const expected: Record<string, Record<string, string>[]> = {
        AIRolloutRolledBack: [{ namespace: "team", name: "bot", phase: "RolledBack" }],
        AIRolloutStalled: [{ namespace: "team", name: "broken" }],
        AIRolloutPausedLong: [{ namespace: "team", name: "waiting" }],
        AIRolloutQuarantineGrowing: [{ namespace: "team", rollout: "bot", reason: "bad_signature" }],
        AIRolloutQuarantineFull: [{ reason: "unknown_rollout" }],
        AIRolloutCircuitOpen: [{ namespace: "team", rollout: "bot", version: "v2" }],
      };
      const rules = rulesOf(one(render(ON), "PrometheusRule"));
      const query = async (expr: string) => {
        const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
        const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string> }[] } };
        expect(body.status, `${expr}: ${body.error}`).toBe("success");
        return body.data!.result.map((r) => r.metric);
      };
      const deadline = Date.now() + 90_000;
      // All three targets scraped before any expression is judged, so a missing join cannot pass by timing.
      while ((await query("count(up == 1) == 3")).length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 500));
      for (const r of rules) {
        let got: Record<string, string>[] = [];
        // Counters need two scrapes before increase() sees them.
        while ((got = await query(r.expr)).length < expected[r.alert]!.length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 1000));
        expect(got, r.alert).toEqual(expected[r.alert]);
      }
    } finally {
      await prom.dispose();
    }
  }, 180_000);
});

// ---------------------------------------------------------------------------------------------
// promtool test cases: series shaped as the registries export them (the label sets above).

interface Expected {
  labels: Record<string, string>;
  /** What `$value | humanize` prints. */
  value?: string;
}

/** One alert_rule_test entry, the expected annotations expanded from the rule's own templates. */
function expect_(rules: Rule[], alertname: string, evalTime: string, alerts: Expected[]) {
  const rule = rules.find((r) => r.alert === alertname)!;
  const expand = (text: string, e: Expected) => text.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_m, l: string) => e.labels[l] ?? "").replace(/\{\{ \$value \| humanize \}\}/g, e.value ?? "");
  return {
    eval_time: evalTime,
    alertname,
    exp_alerts: alerts.map((e) => ({
      exp_labels: { ...rule.labels, ...e.labels },
      exp_annotations: Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, expand(v, e)])),
    })),
  };
}

const phase = (namespace: string, name: string, p: string, instance: string, values: string) => ({ series: `airollout_controller_rollout_phase{namespace="${namespace}",name="${name}",phase="${p}",instance="${instance}"}`, values });
const leader = (instance: string, values: string) => ({ series: `airollout_controller_leader{instance="${instance}"}`, values });

function alertTests(rules: Rule[]) {
  const bot = { namespace: "team", name: "bot" };
  const rollouts = {
    interval: "1m",
    input_series: [
      // Two controller replicas: controller-0 holds the lease; controller-1 lost it and still
      // exports what it last wrote (a rollback the new leader has since moved past, a pause).
      leader("controller-0", "1x180"),
      leader("controller-1", "0x180"),
      phase("team", "bot", "RolledBack", "controller-0", "1x30"),
      phase("team", "steady", "Progressing", "controller-0", "1x30"),
      phase("team", "broken", "Degraded", "controller-0", "1x30"),
      phase("team", "waiting", "Paused", "controller-0", "1x180"),
      phase("team", "retried", "Succeeded", "controller-0", "1x180"),
      phase("team", "retried", "RolledBack", "controller-1", "1x180"),
      phase("team", "retried", "Degraded", "controller-1", "1x180"),
      phase("team", "retried", "Paused", "controller-1", "1x180"),
    ],
    alert_rule_test: [
      expect_(rules, "AIRolloutRolledBack", "5m", [{ labels: { ...bot, phase: "RolledBack" } }]),
      expect_(rules, "AIRolloutStalled", "10m", []),
      expect_(rules, "AIRolloutStalled", "20m", [{ labels: { namespace: "team", name: "broken" } }]),
      expect_(rules, "AIRolloutPausedLong", "60m", []),
      expect_(rules, "AIRolloutPausedLong", "150m", [{ labels: { namespace: "team", name: "waiting" } }]),
    ],
  };
  const gateway = {
    interval: "1m",
    input_series: [
      { series: 'airollout_quarantined_total{namespace="team",rollout="bot",reason="bad_signature"}', values: "0+2x40" },
      { series: 'airollout_quarantined_total{namespace="team",rollout="quiet",reason="bad_signature"}', values: "0+1x40" },
      { series: 'airollout_quarantine_skipped_total{reason="unknown_rollout"}', values: "0+1x40" },
      { series: 'airollout_quarantine_skipped_total{reason="bad_signature"}', values: "5x40" },
      // Open and half-open in turn (a failed probe opens it again); one replica open, one closed.
      { series: 'airollout_circuit_state{namespace="team",rollout="bot",version="v2",pod="gateway-0"}', values: "2 1 2 1 2 1 2 1 2 1 2 1" },
      { series: 'airollout_circuit_state{namespace="team",rollout="bot",version="v2",pod="gateway-1"}', values: "0x11" },
      { series: 'airollout_circuit_state{namespace="team",rollout="bot",version="v1",pod="gateway-0"}', values: "0x11" },
      { series: 'airollout_circuit_state{namespace="team",rollout="probing",version="v3",pod="gateway-0"}', values: "1x11" },
    ],
    alert_rule_test: [
      expect_(rules, "AIRolloutQuarantineGrowing", "20m", [{ labels: { namespace: "team", rollout: "bot", reason: "bad_signature" }, value: "30" }]),
      expect_(rules, "AIRolloutQuarantineFull", "20m", [{ labels: { reason: "unknown_rollout" }, value: "15" }]),
      expect_(rules, "AIRolloutCircuitOpen", "2m", []),
      expect_(rules, "AIRolloutCircuitOpen", "6m", [{ labels: { namespace: "team", rollout: "bot", version: "v2" } }]),
    ],
  };
  return [rollouts, gateway];
}
