/**
 * The one way a command reaches the cluster as the user: kubectl's flags (commands.ts
 * KUBE_FLAGS) through kube/kubeconfig.ts's kubeTarget, so `--kubeconfig`, `--context` and `-n`
 * mean on every command what they mean to kubectl.
 */
import { KubeClient } from "../kube/client.ts";
import { kubeTarget, type KubeFlags } from "../kube/kubeconfig.ts";
import { UsageError } from "./errors.ts";

/** A client on the flags' cluster and context, and the namespace the command acts in. */
export interface Connection {
  client: KubeClient;
  /** -n, else the context's namespace, else default. */
  namespace: string;
}

/** Connects by kubectl's flags; `-A` (allNamespaces) leaves the namespace to the caller and refuses -n beside it. */
export function connect(flags: KubeFlags & { "all-namespaces"?: boolean | undefined }): Connection {
  if (flags["all-namespaces"] && flags.namespace !== undefined) throw new UsageError("give --namespace or --all-namespaces, not both");
  const target = kubeTarget(flags);
  return { client: new KubeClient(target.kc), namespace: target.namespace };
}
