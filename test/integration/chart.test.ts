/**
 * The Helm chart against the real API server: `helm lint`, the rendered manifests accepted by a
 * server-side dry run (default and optional values), the chart's RBAC allowing every API call
 * the controller (AIRollouts and AIPreviews) and the gateway make, each on its own service
 * account (and not more than asked), the egress policy passed to both, and writable places for a
 * controller whose root filesystem is read-only. helm is built from the Go module proxy like the
 * other tools (hack/build-tool.sh helm).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { cacheDir, PROJECT_ROOT, runBuild, toolVersions } from "../../controller/src/dev/tools.ts";
import { createNamespace, kubeconfig, kubectl, kubectlOk } from "./helpers.ts";

const CHART = join(PROJECT_ROOT, "charts", "airollout");
let helm: string;
let ns: string;

function run(cmd: string, args: string[], input?: string) {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", env: { ...process.env, KUBECONFIG: kubeconfig(), HELM_CACHE_HOME: join(cacheDir(), "helm-home", "cache"), HELM_CONFIG_HOME: join(cacheDir(), "helm-home", "config"), HELM_DATA_HOME: join(cacheDir(), "helm-home", "data") }, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function render(set: string[] = []): string {
  const r = run(helm, ["template", "airollout", CHART, "--namespace", ns, ...set.flatMap((s) => ["--set", s])]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

interface Obj {
  kind: string;
  metadata: { name: string };
  spec?: { template?: { spec?: PodSpec } };
}
interface PodSpec {
  containers: { name: string; args?: string[]; env?: { name: string; value?: string }[]; volumeMounts?: { name: string; mountPath: string }[]; securityContext?: { readOnlyRootFilesystem?: boolean } }[];
  volumes?: { name: string; emptyDir?: object; persistentVolumeClaim?: { claimName: string } }[];
}

/** The rendered objects. */
function objects(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJSON() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

beforeAll(async () => {
  const dir = join(cacheDir(), "bin", `helm-${toolVersions().HELM_VERSION}`);
  if (!existsSync(join(dir, "helm"))) await runBuild("helm", (l) => process.stderr.write(`${l}\n`));
  helm = join(dir, "helm");
  ns = createNamespace("chart");
}, 1_200_000);

describe("the Helm chart", () => {
  it("passes helm lint (strict)", () => {
    const r = run(helm, ["lint", "--strict", CHART]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("0 chart(s) failed");
  });

  it.each([
    ["default values", []],
    ["one namespace, claims, a Pulumi backend, no gateway", ["watchNamespace=team-a", "persistence.claimName=airollout-state", "pulumi.backendUrl=s3://bucket/airollout", "gateway.enabled=false"]],
    ["a gateway claim", ["gateway.persistence.claimName=gw-state", "replicas=1"]],
  ])("renders manifests the API server accepts (server-side dry run): %s", (_name, set) => {
    const r = kubectl(["apply", "--dry-run=server", "-n", ns, "-f", "-"], render(set));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("deployment.apps/airollout-controller created (server dry run)");
  });

  it("gives the controller writable state and /tmp under a read-only root filesystem, and passes the Pulumi backend", () => {
    const withBackend = objects(render(["pulumi.backendUrl=s3://bucket/airollout", "persistence.claimName=airollout-state"]));
    const deployment = withBackend.find((o) => o.kind === "Deployment" && o.metadata.name === "airollout-controller")!;
    const pod = deployment.spec!.template!.spec!;
    const c = pod.containers.find((x) => x.name === "controller")!;
    expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
    const stateArg = c.args!.find((a) => a.startsWith("--state-dir="))!;
    const mounts = new Map(c.volumeMounts!.map((m) => [m.mountPath, m.name]));
    expect(mounts.get(stateArg.slice("--state-dir=".length))).toBe("state");
    expect(mounts.has("/tmp")).toBe(true);
    expect(pod.volumes!.find((v) => v.name === "state")!.persistentVolumeClaim?.claimName).toBe("airollout-state");
    expect(c.env!.find((e) => e.name === "PULUMI_BACKEND_URL")?.value).toBe("s3://bucket/airollout");
    const plain = objects(render()).find((o) => o.kind === "Deployment" && o.metadata.name === "airollout-controller")!;
    expect(plain.spec!.template!.spec!.volumes!.find((v) => v.name === "state")!.emptyDir).toBeDefined();
    expect(plain.spec!.template!.spec!.containers[0]!.env!.some((e) => e.name === "PULUMI_BACKEND_URL")).toBe(false);
  });

  it("grants the controller's service account every API call the controller makes, and not secrets writes or pod creation", () => {
    // The RBAC objects for real (the workloads would never run here: no kubelet).
    const rbac = objects(render()).filter((o) => ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"].includes(o.kind));
    kubectlOk(["apply", "-n", ns, "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: rbac }));
    const as = `system:serviceaccount:${ns}:airollout-controller`;
    const can = (verb: string, resource: string, namespace: string | undefined = ns) => {
      const [type, sub] = resource.split("/");
      const r = kubectl(["auth", "can-i", verb, type!, ...(sub ? ["--subresource", sub] : []), "--as", as, ...(namespace ? ["-n", namespace] : ["--all-namespaces"])]);
      return r.stdout.trim();
    };
    const needed: [string, string, string | undefined][] = [
      // informer, status writes, finalizer and annotation patches
      ["list", "airollouts.airollout.dev", undefined],
      ["watch", "airollouts.airollout.dev", undefined],
      ["get", "airollouts.airollout.dev", "team-x"],
      ["patch", "airollouts.airollout.dev", "team-x"],
      ["update", "airollouts.airollout.dev/status", "team-x"],
      // AIPreviews: their informer, finalizer and status
      ["list", "aipreviews.airollout.dev", undefined],
      ["watch", "aipreviews.airollout.dev", undefined],
      ["patch", "aipreviews.airollout.dev", "team-x"],
      ["update", "aipreviews.airollout.dev/status", "team-x"],
      ["update", "aipreviews.airollout.dev/finalizers", "team-x"],
      // Events with deterministic names
      ["create", "events", "team-x"],
      // prompts (promptRef), env valueFrom, signature and passphrase Secrets; their informers
      // watch cluster-wide, or one namespace with watchNamespace
      ["get", "configmaps", "team-x"],
      ["get", "secrets", "team-x"],
      ["list", "configmaps", undefined],
      ["watch", "configmaps", undefined],
      ["list", "secrets", undefined],
      ["watch", "secrets", undefined],
      ["list", "secrets", "team-x"],
      ["watch", "configmaps", "team-x"],
      // leader election in the release namespace
      ["get", "leases.coordination.k8s.io", ns],
      ["create", "leases.coordination.k8s.io", ns],
      ["update", "leases.coordination.k8s.io", ns],
      // environments through Pulumi, and its readiness checks
      ["create", "deployments.apps", "team-x"],
      ["delete", "deployments.apps", "team-x"],
      ["patch", "services", "team-x"],
      ["create", "configmaps", "team-x"],
      ["watch", "replicasets.apps", "team-x"],
      ["watch", "pods", "team-x"],
      ["list", "endpoints", "team-x"],
      ["list", "endpointslices.discovery.k8s.io", "team-x"],
    ];
    const refused = needed.filter(([verb, resource, namespace]) => can(verb, resource, namespace) !== "yes");
    expect(refused).toEqual([]);
    for (const [verb, resource] of [["create", "secrets"], ["delete", "secrets"], ["create", "pods"], ["create", "clusterrolebindings.rbac.authorization.k8s.io"]]) {
      expect(can(verb!, resource!, "team-x"), `${verb} ${resource}`).toBe("no");
    }
  });

  it("runs the gateway on its own service account, allowed only the calls it makes: list and watch AIRollouts, get Secrets", () => {
    const rendered = objects(render());
    const gatewayPod = rendered.find((o) => o.kind === "Deployment" && o.metadata.name === "airollout-gateway")!.spec!.template!.spec! as PodSpec & { serviceAccountName?: string };
    expect(gatewayPod.serviceAccountName).toBe("airollout-gateway");
    const rbac = rendered.filter((o) => ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"].includes(o.kind));
    kubectlOk(["apply", "-n", ns, "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: rbac }));
    const as = `system:serviceaccount:${ns}:airollout-gateway`;
    const can = (verb: string, resource: string, namespace: string | undefined) => {
      const [type, sub] = resource.split("/");
      return kubectl(["auth", "can-i", verb, type!, ...(sub ? ["--subresource", sub] : []), "--as", as, ...(namespace ? ["-n", namespace] : ["--all-namespaces"])]).stdout.trim();
    };
    // The AIRollout informer (cluster-wide, or one namespace with watchNamespace) and the signature Secrets.
    const needed: [string, string, string | undefined][] = [
      ["list", "airollouts.airollout.dev", undefined],
      ["watch", "airollouts.airollout.dev", undefined],
      ["list", "airollouts.airollout.dev", "team-x"],
      ["watch", "airollouts.airollout.dev", "team-x"],
      ["get", "secrets", "team-x"],
    ];
    expect(needed.filter(([verb, resource, namespace]) => can(verb, resource, namespace) !== "yes")).toEqual([]);
    const notNeeded: [string, string][] = [
      ["patch", "airollouts.airollout.dev"],
      ["update", "airollouts.airollout.dev/status"],
      ["delete", "airollouts.airollout.dev"],
      ["list", "aipreviews.airollout.dev"],
      ["list", "secrets"],
      ["watch", "secrets"],
      ["create", "secrets"],
      ["get", "configmaps"],
      ["create", "events"],
      ["get", "leases.coordination.k8s.io"],
      ["create", "deployments.apps"],
      ["create", "pods"],
      ["get", "pods"],
    ];
    expect(notNeeded.filter(([verb, resource]) => can(verb, resource, "team-x") !== "no")).toEqual([]);
    expect(can("get", "leases.coordination.k8s.io", ns)).toBe("no");
  });

  it("passes the egress policy to the controller and the gateway: deny by default with loopback refused, the lists from values", () => {
    const egressArgs = (set: string[] = []) => {
      const deployments = objects(render(set)).filter((o) => o.kind === "Deployment");
      const byName = new Map(deployments.map((d) => [d.metadata.name, d.spec!.template!.spec!.containers[0]!]));
      const controller = byName.get("airollout-controller")!.args!.filter((a) => a.startsWith("--egress"));
      const gateway = byName.get("airollout-gateway")!.args!.filter((a) => a.startsWith("--egress"));
      expect(gateway).toEqual(controller);
      expect(byName.get("airollout-gateway")!.env!.some((e) => e.name === "POD_NAMESPACE")).toBe(true);
      return controller;
    };
    expect(egressArgs()).toEqual(["--egress-default=deny", "--egress-deny-loopback"]);
    expect(egressArgs(["egress.allowHosts={prometheus.monitoring,*.vendor.example}", "egress.allowCidrs={10.20.0.0/16}", "egress.allowNamespaces={shared}"])).toEqual([
      "--egress-default=deny",
      "--egress-deny-loopback",
      "--egress-allow-hosts=prometheus.monitoring,*.vendor.example",
      "--egress-allow-cidrs=10.20.0.0/16",
      "--egress-allow-namespaces=shared",
    ]);
    expect(egressArgs(["egress.defaultAction=allow", "egress.denyLoopback=false"])).toEqual(["--egress-default=allow"]);
  });

  it("says in its notes where rollouts may dial", () => {
    const notes = (set: string[] = []) => {
      // The earlier tests applied the RBAC objects for real: a dry run must not trip over them.
      const r = run(helm, ["install", "notes", CHART, "--namespace", ns, "--dry-run=client", "--take-ownership", ...set.flatMap((x) => ["--set", x])]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.slice(r.stdout.indexOf("NOTES:"));
    };
    expect(notes()).toContain("Egress: rollouts may dial services in their own namespace (never loopback); never link-local or cloud metadata addresses.");
    expect(notes(["egress.allowNamespaces={monitoring}", "egress.allowHosts={*.vendor.example}", "egress.defaultAction=allow", "egress.denyLoopback=false"])).toContain(
      "Egress: rollouts may dial services in their own namespace, in monitoring, the hosts *.vendor.example, and any other host or address; never link-local or cloud metadata addresses.",
    );
  });
});
