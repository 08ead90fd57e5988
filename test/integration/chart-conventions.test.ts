/**
 * The chart follows Helm's conventions, checked with the real helm and the real API server:
 * values.schema.json covers every value and makes helm lint, template and install refuse a wrong
 * type, an unknown key or a value outside an enum, naming it; every object carries helm.sh/chart
 * and the app.kubernetes.io labels; names come from the fullname helper; three releases (the same
 * release name in two namespaces, a second release in one of them) render without a name in
 * common and with no selector reaching another release's Pods, and the API server accepts all of
 * them in one server-side dry run, and helm installs all three for real and uninstalls them;
 * pull secrets, annotations, priority class and scheduling constraints reach every Pod; PodDisruptionBudgets follow the replicas; NOTES.txt says what
 * was installed and how to reach the gateway and the dashboard; both CRDs ship in crds/.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { CONTROLLER, DASHBOARD, GATEWAY, parseFlags } from "../../controller/src/cli/commands.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { CHART, ensureHelm, helmRun, type K8sObject, parseObjects, sets } from "./chart-helm.ts";
import { installPrometheusOperatorCRDs } from "./chart-monitoring-crds.ts";
import { createNamespace, kubectl } from "./helpers.ts";

let helm: string;
let nsA: string;
let nsB: string;
/** Where every release of the multi-release tests sends its Grafana dashboard (one sidecar namespace). */
let nsMon: string;

/** Every optional object of the chart switched on. */
const ALL_ON = ["dashboard.enabled=true", "metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "grafana.dashboard.enabled=true"];

function render(release: string, namespace: string, set: readonly string[] = []): K8sObject[] {
  const r = helmRun(helm, ["template", release, CHART, "--namespace", namespace, ...sets(set)]);
  expect(r.code, r.stderr).toBe(0);
  return parseObjects(r.stdout);
}

const chart = parseYaml(readFileSync(join(CHART, "Chart.yaml"), "utf8")) as { name: string; version: string; appVersion: string };

beforeAll(async () => {
  helm = await ensureHelm();
  nsA = createNamespace("chart-a");
  nsB = createNamespace("chart-b");
  nsMon = createNamespace("chart-mon");
  await installPrometheusOperatorCRDs();
}, 1_200_000);

// ---------------------------------------------------------------------------------------------
// values.schema.json

type Schema = { $ref?: string; type?: string | string[]; properties?: Record<string, Schema>; additionalProperties?: boolean | Schema; definitions?: Record<string, Schema> };
const schema = JSON.parse(readFileSync(join(CHART, "values.schema.json"), "utf8")) as Schema;
const values = parseYaml(readFileSync(join(CHART, "values.yaml"), "utf8")) as Record<string, unknown>;

/** A schema node with its $ref followed. */
function resolve(node: Schema): Schema {
  return node.$ref ? resolve(schema.definitions![node.$ref.replace("#/definitions/", "")]!) : node;
}

/** The schema node that describes `key` under `node`, or undefined when it has none. */
function child(node: Schema, key: string): Schema | undefined {
  const n = resolve(node);
  if (n.properties?.[key]) return n.properties[key];
  return typeof n.additionalProperties === "object" ? n.additionalProperties : undefined;
}

/** Every path in values.yaml with no schema node describing it. */
function undescribed(value: unknown, node: Schema | undefined, path: string): string[] {
  if (!node) return [path];
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => undescribed(v, child(node, k), `${path}.${k}`));
}

/** Every property the schema names that values.yaml does not have (global aside). */
function unknownToValues(node: Schema, value: unknown, path: string): string[] {
  const n = resolve(node);
  if (!n.properties) return [];
  const v = (value ?? {}) as Record<string, unknown>;
  return Object.entries(n.properties).flatMap(([k, s]) => (k === "global" && path === "" ? [] : k in v ? unknownToValues(s, v[k], `${path}.${k}`) : [`${path}.${k}`]));
}

/** Paths of object nodes with named properties that still accept any other key. */
function openObjects(node: Schema, path: string): string[] {
  const n = resolve(node);
  if (!n.properties) return [];
  const here = n.additionalProperties === false ? [] : [path || "(root)"];
  return [...here, ...Object.entries(n.properties).flatMap(([k, s]) => openObjects(s, `${path}.${k}`))];
}

describe("values.schema.json", () => {
  it("is draft-07, describes every value in values.yaml and nothing values.yaml lacks, and refuses unknown keys in every object it names", () => {
    expect((schema as { $schema?: string }).$schema).toBe("http://json-schema.org/draft-07/schema#");
    expect(undescribed(values, schema, "")).toEqual([]);
    expect(unknownToValues(schema, values, "")).toEqual([]);
    // global is how an umbrella chart passes values down: it must stay open.
    expect(openObjects(schema, "").filter((p) => p !== ".global")).toEqual([]);
    // The keys other parts of the chart read.
    for (const path of ["grafana.dashboard.enabled", "grafana.dashboard.labels", "grafana.dashboard.namespace", "metrics.serviceMonitor.interval", "metrics.serviceMonitor.labels", "metrics.prometheusRule.labels", "nameOverride", "fullnameOverride"]) {
      expect(path.split(".").reduce<Schema | undefined>((n, k) => (n ? child(n, k) : undefined), schema), path).toBeDefined();
    }
    expect(values).toMatchObject({ grafana: { dashboard: { enabled: false, labels: { grafana_dashboard: "1" } } } });
  });

  const bad: [string, string[], string[]][] = [
    ["a wrong type", ["replicas=two"], ["at '/replicas'", "got string, want integer"]],
    ["an unknown key", ["gateway.replcas=3"], ["at '/gateway'", "additional properties 'replcas' not allowed"]],
    ["an unknown top-level key", ["replica=3"], ["additional properties 'replica' not allowed"]],
    ["a value outside its enum", ["logLevel=verbose"], ["at '/logLevel'", "value must be one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'"]],
    ["a nested enum", ["egress.defaultAction=maybe"], ["at '/egress/defaultAction'", "value must be one of 'deny', 'allow'"]],
    ["a PodDisruptionBudget that would block drains", ["podDisruptionBudget.maxUnavailable=0"], ["at '/podDisruptionBudget/maxUnavailable'"]],
    ["a malformed scrape interval", ["metrics.serviceMonitor.interval=soon"], ["at '/metrics/serviceMonitor/interval'"]],
    ["a Grafana label that is not a string", ["grafana.dashboard.labels.grafana_dashboard=1"], ["at '/grafana/dashboard/labels/grafana_dashboard'", "got number, want string"]],
  ];

  it.each(bad)("refuses %s in helm lint, helm template and helm install, naming the value", (_what, set, messages) => {
    const runs = {
      lint: helmRun(helm, ["lint", "--strict", CHART, ...sets(set)]),
      template: helmRun(helm, ["template", "airollout", CHART, "-n", nsA, ...sets(set)]),
      install: helmRun(helm, ["install", "bad-values", CHART, "-n", nsA, "--dry-run=server", ...sets(set)]),
    };
    for (const [cmd, r] of Object.entries(runs)) {
      expect(r.code, `helm ${cmd} ${set.join(" ")}`).not.toBe(0);
      const out = r.stdout + r.stderr;
      expect(out, `helm ${cmd}`).toContain("values don't meet the specifications of the schema");
      for (const m of messages) expect(out, `helm ${cmd}`).toContain(m);
    }
  });

  it("accepts the defaults and every optional value written as values.yaml documents it", () => {
    const ok = ["podDisruptionBudget.maxUnavailable=50%", "metrics.serviceMonitor.labels.release=kube-prometheus-stack", "metrics.prometheusRule.labels.role=alert-rules", "grafana.dashboard.namespace=monitoring", "nameOverride=hooks", "resources.limits.cpu=2"];
    expect(helmRun(helm, ["lint", "--strict", CHART]).code).toBe(0);
    const r = helmRun(helm, ["lint", "--strict", CHART, ...sets([...ALL_ON, ...ok])]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Names, labels and selectors

type Selector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };

function matches(sel: Selector, labels: Record<string, string> = {}): boolean {
  const byLabels = Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpr = (sel.matchExpressions ?? []).every((e) => (e.operator === "In" ? e.values!.includes(labels[e.key]!) : e.operator === "Exists" ? e.key in labels : false));
  return byLabels && byExpr && (Object.keys(sel.matchLabels ?? {}).length > 0 || (sel.matchExpressions ?? []).length > 0);
}

const get = <T,>(o: unknown, path: string): T => path.split(".").reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], o) as T;
const podLabels = (d: K8sObject) => get<Record<string, string>>(d, "spec.template.metadata.labels");

/** What selects Pods in an object: Deployments and PodDisruptionBudgets (spec.selector), Services (spec.selector, a plain map). */
function podSelector(o: K8sObject): Selector | undefined {
  if (o.kind === "Deployment" || o.kind === "PodDisruptionBudget") return get<Selector>(o, "spec.selector");
  if (o.kind === "Service") return { matchLabels: get<Record<string, string>>(o, "spec.selector") };
  return undefined;
}

const CLUSTER_SCOPED = new Set(["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"]);
const key = (o: K8sObject) => `${o.kind}/${CLUSTER_SCOPED.has(o.kind) ? "" : (o.metadata.namespace ?? "?")}/${o.metadata.name}`;

describe("names, labels and selectors", () => {
  it("puts helm.sh/chart and the app.kubernetes.io labels on every object", () => {
    const objs = render("team-b", nsA, ALL_ON);
    expect(objs.map((o) => o.kind)).toEqual(expect.arrayContaining(["Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"]));
    const expected = {
      "helm.sh/chart": `${chart.name}-${chart.version}`,
      "app.kubernetes.io/name": "airollout",
      "app.kubernetes.io/instance": "team-b",
      "app.kubernetes.io/version": chart.appVersion,
      "app.kubernetes.io/managed-by": "Helm",
    };
    const missing = objs.filter((o) => !Object.entries(expected).every(([k, v]) => o.metadata.labels?.[k] === v)).map(key);
    expect(missing).toEqual([]);
    // Namespaced objects name their namespace, so one List can hold several releases.
    expect(objs.filter((o) => !CLUSTER_SCOPED.has(o.kind) && o.metadata.namespace !== nsA).map(key)).toEqual([]);
  });

  it("names objects from the fullname helper: the release name, nameOverride, fullnameOverride", () => {
    const names = (release: string, set: string[] = []) => render(release, nsA, ["dashboard.enabled=true", ...set]).filter((o) => o.kind === "Deployment").map((o) => o.metadata.name).sort();
    expect(names("airollout")).toEqual(["airollout-controller", "airollout-dashboard", "airollout-gateway"]);
    expect(names("team-b")).toEqual(["team-b-airollout-controller", "team-b-airollout-dashboard", "team-b-airollout-gateway"]);
    expect(names("team-b", ["nameOverride=hooks"])).toEqual(["team-b-hooks-controller", "team-b-hooks-dashboard", "team-b-hooks-gateway"]);
    expect(names("team-b", ["fullnameOverride=edge"])).toEqual(["edge-controller", "edge-dashboard", "edge-gateway"]);
    // nameOverride is also the name label every selector uses.
    const hooks = render("team-b", nsA, ["nameOverride=hooks"]).find((o) => o.kind === "Deployment")!;
    expect(get<Record<string, string>>(hooks, "spec.selector.matchLabels")["app.kubernetes.io/name"]).toBe("hooks");
    // The dashboard reaches the gateway through the Service the helper named.
    const edge = render("team-b", nsA, ["dashboard.enabled=true", "fullnameOverride=edge"]);
    const dash = edge.find((o) => o.kind === "Deployment" && o.metadata.name === "edge-dashboard")!;
    const { values: flags } = parseFlags(DASHBOARD, get<{ args: string[] }[]>(dash, "spec.template.spec.containers")[0]!.args.slice(1));
    expect(flags.gateway).toBe(`http://edge-gateway.${nsA}.svc`);
    expect(edge.some((o) => o.kind === "Service" && o.metadata.name === "edge-gateway")).toBe(true);
  });

  it("lets three releases coexist: the same name in two namespaces and a second one in the first; no name in common, no selector reaching another release's Pods, all accepted in one server-side dry run", () => {
    const releases = [
      { release: "airollout", namespace: nsA, set: ["watchNamespace=team-a"] },
      { release: "airollout", namespace: nsB, set: ["watchNamespace=team-c"] },
      { release: "team-b", namespace: nsA, set: ["watchNamespace=team-b"] },
    ];
    // All three dashboards go to one sidecar namespace, where the two releases named airollout
    // would otherwise render one ConfigMap name.
    const rendered = releases.map((r) => ({ ...r, objects: render(r.release, r.namespace, [...ALL_ON, ...r.set, `grafana.dashboard.namespace=${nsMon}`]) }));
    const all = rendered.flatMap((r) => r.objects);
    // No two objects share a kind, namespace and name (cluster-scoped ones carry the namespace in their names).
    const keys = all.map(key);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
    const dashboards = all.filter((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-grafana-dashboard"));
    expect(dashboards.map((o) => `${o.metadata.namespace}/${o.metadata.name}`).sort()).toEqual([`${nsMon}/${nsA}-airollout-grafana-dashboard`, `${nsMon}/${nsA}-team-b-airollout-grafana-dashboard`, `${nsMon}/${nsB}-airollout-grafana-dashboard`].sort());
    expect(all.filter((o) => o.kind === "ClusterRole").length).toBe(3 * 3);
    // Every selector picks exactly its own release's Deployment of its component.
    const deployments = all.filter((o) => o.kind === "Deployment");
    for (const r of rendered) {
      for (const o of r.objects) {
        const sel = podSelector(o);
        if (!sel) continue;
        expect(sel.matchLabels?.["app.kubernetes.io/instance"], key(o)).toBe(r.release);
        const selected = deployments.filter((d) => d.metadata.namespace === o.metadata.namespace && matches(sel, podLabels(d))).map(key);
        const own = r.objects.filter((d) => d.kind === "Deployment" && d.metadata.labels?.["app.kubernetes.io/component"] === o.metadata.labels?.["app.kubernetes.io/component"]).map(key);
        expect(selected, key(o)).toEqual(own);
      }
      // Bindings name their own release's ServiceAccounts and roles.
      for (const b of r.objects.filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding")) {
        const subject = get<{ name: string; namespace: string }[]>(b, "subjects")[0]!;
        expect(subject.namespace, key(b)).toBe(r.namespace);
        expect(r.objects.some((o) => o.kind === "ServiceAccount" && o.metadata.name === subject.name), key(b)).toBe(true);
        expect(r.objects.some((o) => o.kind === get<string>(b, "roleRef.kind") && o.metadata.name === get<string>(b, "roleRef.name")), key(b)).toBe(true);
      }
    }
    // The two controllers in one namespace elect their leaders through different Leases; every
    // argument the chart passes parses with the CLI's flag tables.
    const leases = rendered.map((r) => {
      const pods = r.objects.filter((o) => o.kind === "Deployment").map((d) => ({ name: d.metadata.name, args: get<{ args: string[] }[]>(d, "spec.template.spec.containers")[0]!.args }));
      const controller = parseFlags(CONTROLLER, pods.find((p) => p.name.endsWith("-controller"))!.args.slice(1)).values;
      parseFlags(GATEWAY, pods.find((p) => p.name.endsWith("-gateway"))!.args.slice(1));
      // AIPreview fixtures come from this release's gateway Service, on its metrics port.
      const gatewaySvc = r.objects.find((o) => o.kind === "Service" && o.metadata.labels?.["app.kubernetes.io/component"] === "gateway")!;
      const metricsPort = get<{ name: string; port: number }[]>(gatewaySvc, "spec.ports").find((p) => p.name === "metrics")!.port;
      expect(controller["gateway-url"]).toBe(`http://${gatewaySvc.metadata.name}.${r.namespace}.svc:${metricsPort}`);
      return `${r.namespace}/${controller["lease-name"]}`;
    });
    expect(new Set(leases).size).toBe(3);
    // The API server accepts all of them together.
    const res = kubectl(["apply", "--dry-run=server", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: all }));
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.split("\n").filter((l) => l.endsWith("created (server dry run)")).length).toBe(all.length);
  });
});

describe("Pod settings", () => {
  it("passes pull secrets, annotations, a priority class and scheduling constraints to every Pod, and the API server accepts them", () => {
    const set = ["dashboard.enabled=true", "imagePullSecrets[0].name=regcred", "podAnnotations.team=hooks", "priorityClassName=webhooks", "nodeSelector.pool=ai", "tolerations[0].key=dedicated", "tolerations[0].operator=Exists", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists"];
    const deployments = render("airollout", nsA, set).filter((o) => o.kind === "Deployment");
    expect(deployments.length).toBe(3);
    for (const d of deployments) {
      const pod = get<Record<string, unknown>>(d, "spec.template.spec");
      expect(pod, d.metadata.name).toMatchObject({ imagePullSecrets: [{ name: "regcred" }], priorityClassName: "webhooks", nodeSelector: { pool: "ai" }, tolerations: [{ key: "dedicated", operator: "Exists" }] });
      expect(get<string>(pod, "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0.matchExpressions.0.key"), d.metadata.name).toBe("zone");
      expect(get<Record<string, string>>(d, "spec.template.metadata.annotations"), d.metadata.name).toEqual({ team: "hooks" });
    }
    const res = kubectl(["apply", "--dry-run=server", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: deployments }));
    expect(res.code, res.stderr).toBe(0);
    // Without them, none of these keys appear.
    for (const d of render("airollout", nsA, ["dashboard.enabled=true"]).filter((o) => o.kind === "Deployment")) {
      const pod = get<Record<string, unknown>>(d, "spec.template.spec");
      expect(Object.keys(pod).filter((k) => ["imagePullSecrets", "priorityClassName", "nodeSelector", "tolerations", "affinity"].includes(k)), d.metadata.name).toEqual([]);
    }
  });
});

describe("installed for real", () => {
  it("three releases install side by side (helm refuses an object another release owns) and uninstall without a trace", () => {
    const releases = [
      { release: "coexist", namespace: nsA, set: ["watchNamespace=team-a"] },
      { release: "coexist", namespace: nsB, set: ["watchNamespace=team-c"] },
      { release: "coexist-2", namespace: nsA, set: ["watchNamespace=team-b"] },
    ];
    try {
      for (const r of releases) {
        const res = helmRun(helm, ["install", r.release, CHART, "-n", r.namespace, ...sets([...ALL_ON, ...r.set, `grafana.dashboard.namespace=${nsMon}`])]);
        expect(res.code, `${r.namespace}/${r.release}: ${res.stderr}`).toBe(0);
        expect(res.stdout).toContain("STATUS: deployed");
      }
      // The cluster-scoped objects of all three, by their release's labels.
      const clusterRoles = kubectl(["get", "clusterroles", "-l", "app.kubernetes.io/name=airollout,app.kubernetes.io/instance in (coexist,coexist-2)", "-o", "name"]).stdout.trim().split("\n");
      expect(clusterRoles.length).toBe(9);
      // Three dashboards in the one sidecar namespace (helm refused the second before their names carried the release namespace).
      const dashboards = kubectl(["get", "configmaps", "-n", nsMon, "-l", "app.kubernetes.io/instance in (coexist,coexist-2)", "-o", "name"]).stdout.trim().split("\n").sort();
      expect(dashboards).toEqual([`configmap/${nsA}-coexist-2-airollout-grafana-dashboard`, `configmap/${nsA}-coexist-airollout-grafana-dashboard`, `configmap/${nsB}-coexist-airollout-grafana-dashboard`]);
    } finally {
      for (const r of releases) helmRun(helm, ["uninstall", r.release, "-n", r.namespace, "--wait"]);
    }
    const left = kubectl(["get", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/instance in (coexist,coexist-2)", "-o", "name"]);
    expect(left.stdout.trim()).toBe("");
    expect(kubectl(["get", "configmaps", "-n", nsMon, "-l", "app.kubernetes.io/instance in (coexist,coexist-2)", "-o", "name"]).stdout.trim()).toBe("");
  });
});

// ---------------------------------------------------------------------------------------------
// PodDisruptionBudgets, NOTES.txt, CRDs

describe("PodDisruptionBudgets", () => {
  const pdbs = (set: string[] = []) =>
    render("airollout", nsA, set)
      .filter((o) => o.kind === "PodDisruptionBudget")
      .map((o) => ({ name: o.metadata.name, maxUnavailable: get<number | string>(o, "spec.maxUnavailable"), minAvailable: get<unknown>(o, "spec.minAvailable") }));

  it("protect both Deployments at their default two replicas, one Pod down at a time", () => {
    expect(pdbs()).toEqual([
      { name: "airollout-controller", maxUnavailable: 1, minAvailable: undefined },
      { name: "airollout-gateway", maxUnavailable: 1, minAvailable: undefined },
    ]);
    expect(pdbs(["gateway.replicas=4", "gateway.podDisruptionBudget.maxUnavailable=50%"])).toContainEqual({ name: "airollout-gateway", maxUnavailable: "50%", minAvailable: undefined });
  });

  it("are left out with one replica, when disabled, and with the gateway off", () => {
    expect(pdbs(["replicas=1", "gateway.replicas=1"])).toEqual([]);
    expect(pdbs(["podDisruptionBudget.enabled=false"]).map((p) => p.name)).toEqual(["airollout-gateway"]);
    expect(pdbs(["gateway.enabled=false"]).map((p) => p.name)).toEqual(["airollout-controller"]);
  });
});

describe("NOTES.txt and CRDs", () => {
  const notes = (release: string, set: string[]) => {
    const r = helmRun(helm, ["install", release, CHART, "--namespace", nsB, "--dry-run=client", ...sets(set)]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.slice(r.stdout.indexOf("NOTES:"));
  };

  it("say what was installed and how to reach the gateway and the dashboard", () => {
    const text = notes("team-b", ["dashboard.enabled=true", "metrics.prometheusRule.enabled=true", "watchNamespace=team-b"]);
    expect(text).toContain(`airollout ${chart.appVersion} is installed in ${nsB} as release team-b:`);
    expect(text).toContain("Deployment team-b-airollout-controller (2 replicas, one leader through Lease team-b-airollout-controller), watching namespace team-b");
    expect(text).toContain("Deployment team-b-airollout-gateway (2 replicas)");
    expect(text).toContain("Deployment team-b-airollout-dashboard (read-only)");
    expect(text).toContain(`http://team-b-airollout-gateway.${nsB}.svc/hooks/<namespace>/<rollout>/<path>`);
    expect(text).toContain(`kubectl port-forward -n ${nsB} svc/team-b-airollout-gateway 8080:80`);
    expect(text).toContain("port\n9090 (metrics) also serves the recorded fixtures and stays inside the cluster");
    expect(text).toContain(`kubectl port-forward -n ${nsB} svc/team-b-airollout-dashboard 3100:80`);
    expect(text).toContain("PrometheusRule team-b-airollout (alerts: AIRolloutRolledBack");
    expect(text).not.toContain("another release of this chart in the cluster must not");
    // What the notes name exists under that name.
    const objs = render("team-b", nsB, ["dashboard.enabled=true", "metrics.prometheusRule.enabled=true"]);
    for (const k of ["Deployment/team-b-airollout-controller", "Service/team-b-airollout-gateway", "Service/team-b-airollout-dashboard", "PrometheusRule/team-b-airollout"]) {
      expect(objs.some((o) => `${o.kind}/${o.metadata.name}` === k), k).toBe(true);
    }
    const plain = notes("plain", ["gateway.enabled=false"]);
    expect(plain).not.toContain("webhook gateway");
    expect(plain).not.toContain("port-forward");
    expect(plain).toContain("This release watches all namespaces: another release of this chart in the cluster must not");
  });

  it("ship the AIRollout and AIPreview CRDs in crds/, the same as the generated ones", () => {
    const r = helmRun(helm, ["template", "airollout", CHART, "-n", nsA, "--include-crds"]);
    expect(r.code, r.stderr).toBe(0);
    const crds = parseObjects(r.stdout).filter((o) => o.kind === "CustomResourceDefinition").map((o) => o.metadata.name).sort();
    expect(crds).toEqual(["aipreviews.airollout.dev", "airollouts.airollout.dev"]);
    for (const file of ["airollout.yaml", "aipreview.yaml"]) {
      expect(readFileSync(join(CHART, "crds", file), "utf8"), file).toBe(readFileSync(join(PROJECT_ROOT, "crds", file), "utf8"));
    }
  });
});
