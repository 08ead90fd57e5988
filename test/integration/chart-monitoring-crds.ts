/**
 * The prometheus-operator CRDs the chart's ServiceMonitor and PrometheusRule are checked against:
 * taken from the operator's Go module at the version pinned in hack/versions.env
 * (example/prometheus-operator-crd/), applied server-side to the test control plane.
 */
import { join } from "node:path";
import { pinnedGoModuleDir } from "../../controller/src/dev/go-module.ts";
import { kubectlOk } from "./helpers.ts";

export const MONITORING_CRDS = ["servicemonitors", "prometheusrules"] as const;

/** Applies the ServiceMonitor and PrometheusRule CRDs (idempotent) and waits until both are Established. */
export async function installPrometheusOperatorCRDs(): Promise<void> {
  const dir = join(await pinnedGoModuleDir("github.com/prometheus-operator/prometheus-operator", "PROMETHEUS_OPERATOR_VERSION"), "example", "prometheus-operator-crd");
  const files = MONITORING_CRDS.flatMap((c) => ["-f", join(dir, `monitoring.coreos.com_${c}.yaml`)]);
  kubectlOk(["apply", "--server-side", "--force-conflicts", ...files]);
  kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", ...MONITORING_CRDS.map((c) => `crd/${c}.monitoring.coreos.com`)]);
}
