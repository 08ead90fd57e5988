/**
 * Starts the real local control plane (etcd, kube-apiserver, kube-controller-manager built from
 * Go modules) once for the integration run, installs the CRD, and tears everything down at the
 * end. The control plane watches this process: if the run dies, it stops too.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { down, installCRD, up } from "../../controller/src/dev/controlplane.ts";

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
  await installCRD(state);
  project.provide("kubeconfig", state.kubeconfig);
  project.provide("kubectl", state.kubectl);
  project.provide("devDir", dir);
  return async () => {
    await down({ dir, purge: !process.env.AIROLLOUT_KEEP_TEST_STATE, log });
  };
}
