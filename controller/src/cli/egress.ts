/** The egress policy from the controller's or the gateway's flags (commands.ts EGRESS). */
import { existsSync, readFileSync } from "node:fs";
import { parseEgressPolicy, type EgressPolicy } from "../api/egress.ts";
import { UsageError } from "./errors.ts";

/** The flag values the policy reads. */
export interface EgressFlagValues {
  "egress-allow-hosts"?: string;
  "egress-allow-cidrs"?: string;
  "egress-allow-namespaces"?: string;
  "egress-deny-loopback"?: boolean;
  "egress-default"?: string;
}

const SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/**
 * The namespace this process runs in when it runs in a Pod (POD_NAMESPACE, else the mounted
 * service account's): there, short names resolve through the cluster's search path, and the
 * policy reads them as service names. Undefined outside a cluster.
 */
function podNamespace(env: NodeJS.ProcessEnv): string | undefined {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  if (!env.KUBERNETES_SERVICE_HOST || !existsSync(SERVICE_ACCOUNT_NAMESPACE)) return undefined;
  return readFileSync(SERVICE_ACCOUNT_NAMESPACE, "utf8").trim() || undefined;
}

/** Builds the policy; a bad entry is a UsageError naming its flag. */
export function egressPolicyFromFlags(values: EgressFlagValues, env: NodeJS.ProcessEnv = process.env): EgressPolicy {
  const list = (v: string | undefined) => (v === undefined ? [] : [v]);
  try {
    return parseEgressPolicy({
      allowHosts: list(values["egress-allow-hosts"]),
      allowCidrs: list(values["egress-allow-cidrs"]),
      allowNamespaces: list(values["egress-allow-namespaces"]),
      denyLoopback: values["egress-deny-loopback"] === true,
      ...(values["egress-default"] !== undefined ? { defaultAction: values["egress-default"] } : {}),
      ownNamespace: podNamespace(env),
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The policy as a log line shows it at start (what an admin checks first when a rollout is refused). */
export function describeEgress(p: EgressPolicy): Record<string, unknown> {
  return { allowHosts: p.allowHosts, allowCidrs: p.allowCidrs.map((c) => c.text), allowNamespaces: p.allowNamespaces, denyLoopback: p.denyLoopback, default: p.defaultAction, ownNamespace: p.ownNamespace ?? "(outside a cluster)" };
}
