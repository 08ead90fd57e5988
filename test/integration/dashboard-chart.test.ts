/**
 * The chart's optional in-cluster dashboard (dashboard.enabled): off by default; when on, a
 * Deployment the API server accepts, running `airollout dashboard` with arguments the CLI parses,
 * read-only unless dashboard.actions, on its own ServiceAccount that may read AIRollouts and
 * Events and patch AIRollouts only with actions (checked with `kubectl auth can-i` on the RBAC
 * applied for real).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { DASHBOARD, parseFlags } from "../../controller/src/cli/commands.ts";
import { cacheDir, PROJECT_ROOT, runBuild, toolVersions } from "../../controller/src/dev/tools.ts";
import { createNamespace, kubeconfig, kubectl, kubectlOk } from "./helpers.ts";

const CHART = join(PROJECT_ROOT, "charts", "airollout");
let helm: string;
let ns: string;

interface Obj {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { template?: { spec?: { serviceAccountName?: string; containers: { args?: string[]; securityContext?: { readOnlyRootFilesystem?: boolean } }[] } } };
}

function render(set: string[] = []): Obj[] {
  const home = (d: string) => join(cacheDir(), "helm-home", d);
  const r = spawnSync(helm, ["template", "airollout", CHART, "--namespace", ns, ...set.flatMap((s) => ["--set", s])], {
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG: kubeconfig(), HELM_CACHE_HOME: home("cache"), HELM_CONFIG_HOME: home("config"), HELM_DATA_HOME: home("data") },
    timeout: 120_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJSON() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

// The ClusterRole and its binding carry the release namespace in their names: the component label finds them all.
const isDashboard = (o: Obj) => o.metadata.labels?.["app.kubernetes.io/component"] === "dashboard";
const RBAC = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

/** What the dashboard's ServiceAccount may do, by `kubectl auth can-i` on the applied RBAC. */
function can(verb: string, resource: string, namespace = "team-x"): string {
  return kubectl(["auth", "can-i", verb, resource, "--as", `system:serviceaccount:${ns}:airollout-dashboard`, "-n", namespace]).stdout.trim();
}

beforeAll(async () => {
  const dir = join(cacheDir(), "bin", `helm-${toolVersions().HELM_VERSION}`);
  if (!existsSync(join(dir, "helm"))) await runBuild("helm", (l) => process.stderr.write(`${l}\n`));
  helm = join(dir, "helm");
  ns = createNamespace("dashboard-chart");
}, 1_200_000);

describe("the chart's dashboard", () => {
  it("is off by default", () => {
    expect(render().filter(isDashboard)).toEqual([]);
  });

  it("when enabled: a read-only Deployment the API server accepts, its arguments parsed by the CLI's flag table", () => {
    const objs = render(["dashboard.enabled=true"]);
    expect(objs.filter(isDashboard).map((o) => o.kind).sort()).toEqual(["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]);
    const pod = objs.find((o) => o.kind === "Deployment" && isDashboard(o))!.spec!.template!.spec!;
    expect(pod.serviceAccountName).toBe("airollout-dashboard");
    const args = pod.containers[0]!.args!;
    expect(args[0]).toBe("dashboard");
    const { values } = parseFlags(DASHBOARD, args.slice(1));
    expect(values).toMatchObject({ "read-only": true, "all-namespaces": true, address: "0.0.0.0", gateway: `http://airollout-gateway.${ns}.svc` });
    expect(pod.containers[0]!.securityContext?.readOnlyRootFilesystem).toBe(true);
    const withActions = parseFlags(DASHBOARD, render(["dashboard.enabled=true", "dashboard.actions=true", "watchNamespace=team-a"]).find((o) => o.kind === "Deployment" && isDashboard(o))!.spec!.template!.spec!.containers[0]!.args!.slice(1)).values;
    expect(withActions).toMatchObject({ "read-only": false, "all-namespaces": false, namespace: "team-a" });
    const r = kubectl(["apply", "--dry-run=server", "-n", ns, "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objs.filter(isDashboard) }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("deployment.apps/airollout-dashboard created (server dry run)");
  });

  it("its ServiceAccount reads AIRollouts and Events; patches AIRollouts only with dashboard.actions", () => {
    const apply = (set: string[]) => kubectlOk(["apply", "-n", ns, "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: render(set).filter((o) => isDashboard(o) && RBAC.includes(o.kind)) }));
    apply(["dashboard.enabled=true"]);
    for (const verb of ["get", "list", "watch"]) expect(can(verb, "airollouts.airollout.dev"), verb).toBe("yes");
    expect(can("list", "events")).toBe("yes");
    for (const [verb, resource] of [["patch", "airollouts.airollout.dev"], ["update", "airollouts.airollout.dev"], ["delete", "airollouts.airollout.dev"], ["get", "secrets"], ["list", "configmaps"], ["create", "events"]] as const) {
      expect(can(verb, resource), `${verb} ${resource}`).toBe("no");
    }
    apply(["dashboard.enabled=true", "dashboard.actions=true"]);
    expect(can("patch", "airollouts.airollout.dev")).toBe("yes");
    expect(can("delete", "airollouts.airollout.dev")).toBe("no");
    expect(can("get", "secrets")).toBe("no");
  });
});
