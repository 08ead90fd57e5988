/**
 * helm for the chart tests: the cached binary (built from the Go module proxy by
 * hack/build-tool.sh helm when missing), run against the test control plane with its own
 * configuration directories, and the rendered manifests parsed into objects.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { cacheDir, PROJECT_ROOT, runBuild, toolVersions } from "../../controller/src/dev/tools.ts";
import { kubeconfig } from "./helpers.ts";

export const CHART = join(PROJECT_ROOT, "charts", "airollout");

/** A rendered Kubernetes object, loosely typed: the tests read what they check. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

/** The helm binary, building it once (about 3 minutes cold) when the cache lacks it. */
export async function ensureHelm(): Promise<string> {
  const dir = join(cacheDir(), "bin", `helm-${toolVersions().HELM_VERSION}`);
  if (!existsSync(join(dir, "helm"))) await runBuild("helm", (l) => process.stderr.write(`${l}\n`));
  return join(dir, "helm");
}

/** Runs helm against the test cluster; never throws. */
export function helmRun(helm: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const home = (d: string) => join(cacheDir(), "helm-home", d);
  const r = spawnSync(helm, args, {
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG: kubeconfig(), HELM_CACHE_HOME: home("cache"), HELM_CONFIG_HOME: home("config"), HELM_DATA_HOME: home("data") },
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** `--set` flags from "key=value" strings. */
export const sets = (set: readonly string[]): string[] => set.flatMap((s) => ["--set", s]);

/** The objects in a multi-document YAML text. */
export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}
