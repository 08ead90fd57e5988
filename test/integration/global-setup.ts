/**
 * Starts the real local control plane (etcd, kube-apiserver, kube-controller-manager built from
 * Go modules) once for the integration run, installs the CRD, and tears everything down at the
 * end. The control plane watches this process: if the run dies, it stops too.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { down, up } from "../../controller/src/dev/controlplane.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { KubeClient, loadKubeConfig } from "../../controller/src/kube/client.ts";

/**
 * Waits for the CRD's Established condition. Polled rather than `kubectl wait`, which fails
 * outright when it looks before the API server has written any condition.
 */
async function crdEstablished(kubeconfig: string): Promise<void> {
  const client = new KubeClient(loadKubeConfig(kubeconfig));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const crd = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/airollouts.airollout.dev");
    if (crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("the AIRollout CRD was not Established within 60s");
}

declare module "vitest" {
  export interface ProvidedContext {
    kubeconfig: string;
    kubectl: string;
    devDir: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), "airollout-it-"));
  const log = (line: string) => process.stderr.write(`[control plane] ${line}\n`);
  const state = await up({ dir, ownerPid: process.pid, log });
  execFileSync(state.kubectl, ["apply", "--server-side", "-f", join(PROJECT_ROOT, "crds", "airollout.yaml")], { env: { ...process.env, KUBECONFIG: state.kubeconfig }, stdio: "pipe" });
  await crdEstablished(state.kubeconfig);
  project.provide("kubeconfig", state.kubeconfig);
  project.provide("kubectl", state.kubectl);
  project.provide("devDir", dir);
  return async () => {
    await down({ dir, purge: !process.env.AIROLLOUT_KEEP_TEST_STATE, log });
  };
}
