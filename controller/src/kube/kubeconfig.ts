/**
 * Which cluster, credentials and namespace a command uses, by kubectl's loading rules (client-go's
 * clientcmd), so `kubectl airollout ...` reaches the same place `kubectl ...` does:
 * - the file of --kubeconfig alone, which must exist;
 * - else every file of $KUBECONFIG (a list separated by ':', ';' on Windows), merged: the first
 *   file to name a cluster, user or context wins, the first current-context set wins, files that
 *   do not exist are skipped;
 * - else ~/.kube/config;
 * - else the Pod's service account (in-cluster), else a clear error (kubectl would dial
 *   localhost:8080 and fail there, less clearly);
 * then --context picks a context of the merged file (it must exist), and --namespace overrides
 * the context's namespace ("default" when neither names one).
 *
 * client-node's own loadFromDefault differs from kubectl in the merge (the last file's
 * current-context wins, a name defined twice throws, a missing file throws), hence these rules.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { KubeConfig, type Cluster, type Context, type User } from "@kubernetes/client-node";

/** Where the service account's token is mounted in a Pod. */
const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/** A namespace name: an RFC 1123 label, as the API server requires. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The kubectl flags that choose the cluster and namespace, as parsed from a command line. */
export interface KubeFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

/** What the environment contributes; tests pass their own, the CLI the process's. */
export interface KubeEnv {
  /** $KUBECONFIG. */
  KUBECONFIG?: string | undefined;
  /** The home directory whose .kube/config is the last file tried. */
  home?: string;
  /** Whether the Pod's service account is mounted (in-cluster configuration). */
  inCluster?: boolean;
}

/** The chosen configuration: a KubeConfig on the chosen context, its namespace, and where it came from. */
export interface KubeTarget {
  kc: KubeConfig;
  /** --namespace, else the context's namespace, else "default". */
  namespace: string;
  /** The context in use (the in-cluster configuration has its own). */
  context: string;
  /** The files read, in precedence order; empty in-cluster. */
  files: string[];
}

/** A kubeconfig that cannot be used as asked: a missing file, an unknown context, a bad namespace. */
export class KubeConfigError extends Error {
  override name = "KubeConfigError";
}

function processEnv(): KubeEnv {
  return { KUBECONFIG: process.env.KUBECONFIG, home: homedir(), inCluster: existsSync(SERVICE_ACCOUNT_TOKEN) };
}

/** The files to read, in precedence order: --kubeconfig, else $KUBECONFIG's existing files, else ~/.kube/config. */
export function kubeconfigFiles(explicit: string | undefined, env: KubeEnv = processEnv()): string[] {
  // An empty --kubeconfig is no --kubeconfig, as in kubectl (its flag's default is "").
  if (explicit) {
    if (!existsSync(explicit)) throw new KubeConfigError(`--kubeconfig: ${explicit} does not exist`);
    return [explicit];
  }
  if (env.KUBECONFIG) {
    const listed = [...new Set(env.KUBECONFIG.split(delimiter).filter((f) => f !== ""))];
    return listed.filter((f) => existsSync(f));
  }
  const home = env.home ? join(env.home, ".kube", "config") : undefined;
  return home && existsSync(home) ? [home] : [];
}

/** Reads one file; paths inside it (certificate files) are taken relative to its directory, as kubectl does. */
function readFile(file: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (err) {
    throw new KubeConfigError(`kubeconfig ${file}: ${(err as Error).message}`);
  }
  return kc;
}

/** Merges files by kubectl's rule: the first to define a name, or the current context, wins. */
function merge(files: string[]): KubeConfig {
  const clusters = new Map<string, Cluster>();
  const users = new Map<string, User>();
  const contexts = new Map<string, Context>();
  let currentContext = "";
  for (const file of files) {
    const kc = readFile(file);
    for (const c of kc.getClusters()) if (!clusters.has(c.name)) clusters.set(c.name, c);
    for (const u of kc.getUsers()) if (!users.has(u.name)) users.set(u.name, u);
    for (const c of kc.getContexts()) if (!contexts.has(c.name)) contexts.set(c.name, c);
    if (!currentContext && kc.getCurrentContext()) currentContext = kc.getCurrentContext();
  }
  const merged = new KubeConfig();
  merged.loadFromOptions({ clusters: [...clusters.values()], users: [...users.values()], contexts: [...contexts.values()], currentContext });
  return merged;
}

/** The merged files (or the in-cluster configuration) on the chosen context. */
function load(file: string | undefined, context: string | undefined, env: KubeEnv): { kc: KubeConfig; files: string[] } {
  const files = kubeconfigFiles(file, env);
  let kc: KubeConfig;
  if (files.length > 0) kc = merge(files);
  else if (env.inCluster ?? false) {
    kc = new KubeConfig();
    kc.loadFromCluster();
  } else {
    const listed = env.KUBECONFIG ? `none of $KUBECONFIG's files (${env.KUBECONFIG}) exists` : `$KUBECONFIG is not set and ${env.home ? join(env.home, ".kube", "config") : "~/.kube/config"} does not exist`;
    throw new KubeConfigError(`no kubeconfig: ${listed}, and this is not a Pod with a service account; give --kubeconfig`);
  }
  const where = files.join(delimiter) || "the in-cluster configuration";
  if (context !== undefined) {
    if (context === "") throw new KubeConfigError("--context: empty context name");
    if (!kc.getContextObject(context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new KubeConfigError(`--context: no context ${JSON.stringify(context)} in ${where} (contexts: ${known.join(", ") || "none"})`);
    }
    kc.setCurrentContext(context);
  } else if (!kc.getContextObject(kc.getCurrentContext())) {
    const current = kc.getCurrentContext();
    throw new KubeConfigError(current ? `current-context ${JSON.stringify(current)} is not a context of ${where}; give --context` : `no current-context in ${where}; give --context`);
  }
  return { kc, files };
}

/**
 * Loads the kubeconfig by kubectl's rules (see the module comment): `file` is --kubeconfig,
 * `context` is --context. The only kubeconfig loader of the project: the CLI, the controller,
 * the gateway, the tests and the benches all go through it.
 */
export function loadKubeConfig(file?: string, context?: string, env: KubeEnv = processEnv()): KubeConfig {
  return load(file, context, env).kc;
}

/**
 * The cluster and namespace of kubectl's flags: the kubeconfig by loadKubeConfig, the namespace
 * from --namespace, else the chosen context's, else "default".
 */
export function kubeTarget(flags: KubeFlags, env: KubeEnv = processEnv()): KubeTarget {
  if (flags.namespace !== undefined && !NAMESPACE.test(flags.namespace)) {
    throw new KubeConfigError(`--namespace: ${JSON.stringify(flags.namespace)} is not a namespace name (lowercase letters, digits and '-', at most 63)`);
  }
  const { kc, files } = load(flags.kubeconfig, flags.context, env);
  const context = kc.getCurrentContext();
  const ctxNamespace = kc.getContextObject(context)?.namespace;
  return { kc, namespace: flags.namespace ?? (ctxNamespace || "default"), context, files };
}
