/**
 * One version's environment: a ConfigMap with its model/prompt configuration, a Deployment
 * running its image with that configuration in the environment, and a Service in front of it.
 *
 * The same function backs the hand-run program (index.ts, configured with `pulumi config`) and
 * the controller's Automation API stacks (controller/src/environments/pulumi.ts), so a preview
 * environment for a pull request and the canary in production come from the same code.
 */
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import type { VersionSpec } from "../controller/src/api/schema.ts";
import { shortHash } from "../controller/src/api/hash.ts";

/** Labels every resource of an environment carries; the gateway and `kubectl -l` select by them. */
export const LABELS = {
  rollout: "airollout.dev/rollout",
  version: "airollout.dev/version",
  role: "airollout.dev/role",
} as const;

/** Pod template annotation holding a hash of the configuration (also the ConfigMap name's suffix). */
export const CONFIG_HASH_ANNOTATION = "airollout.dev/config-hash";
/** The provider's annotation naming the server-side apply field manager, and ours. */
export const FIELD_MANAGER_ANNOTATION = "pulumi.com/patchFieldManager";
export const FIELD_MANAGER = "airollout-environments";

/** Pod template annotation holding the rollout revision that was deployed. */
export const REVISION_ANNOTATION = "airollout.dev/revision";

/**
 * The parts of a version an environment is built from: spec.candidate, or the stable (spec.stable,
 * or status.stable.spec, the version last promoted: docs/adr/0009-one-commit-per-release.md).
 */
export type EnvironmentVersion = Pick<VersionSpec, "version" | "image" | "env" | "resources" | "config"> &
  Partial<Pick<VersionSpec, "port" | "replicas">>;

export interface EnvironmentArgs {
  /** Name of the AIRollout (or, run by hand, any name grouping environments). */
  rollout: string;
  /** Namespace the resources are created in; it must exist. */
  namespace: string;
  /** canary, shadow, stable or preview-<id>. */
  role: string;
  version: EnvironmentVersion;
  /**
   * Wait for the Deployment to become Available and the Service to get endpoints. False adds
   * `pulumi.com/skipAwait`, for clusters where no Pod ever runs (no kubelet and no KWOK).
   */
  waitForReady?: boolean;
  /** How long Pulumi waits for readiness before failing the update, in seconds. */
  timeoutSeconds?: number;
  /** The rollout revision deployed; recorded on the pod template. */
  revision?: string;
  /** HTTP path of the readiness/liveness probes; without it the probes open a TCP connection. */
  healthPath?: string;
}

export interface EnvironmentOutputs {
  serviceName: pulumi.Output<string>;
  /** http://<service>.<namespace>.svc.cluster.local:<port> */
  url: pulumi.Output<string>;
  namespace: pulumi.Output<string>;
  deploymentName: pulumi.Output<string>;
  configMapName: pulumi.Output<string>;
}

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// The grammar of github.com/distribution/reference: [domain[:port]/]path[:tag][@digest].
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const IMAGE_REFERENCE = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::${TAG})?(?:@${DIGEST})?$`);

/** Why an image reference is unusable, or undefined when it is a valid reference. */
export function imageReferenceProblem(image: string): string | undefined {
  if (image.trim() !== image || image === "") return "must not be empty or have surrounding spaces";
  const name = image.split("@")[0]!.replace(/:[\w][\w.-]{0,127}$/, "");
  if (name.length > 255) return "repository name must not be longer than 255 characters";
  if (!IMAGE_REFERENCE.test(image)) {
    return "is not an image reference of the form [registry[:port]/]repository[:tag][@sha256:<digest>] (repository in lower case, tag of letters, digits, '.', '_' or '-')";
  }
  return undefined;
}

/**
 * A DNS-1035 label (what Service names must be) built from `parts`: lower-cased, runs of other
 * characters turned into '-', and shortened with a hash suffix past 63 characters so distinct
 * inputs keep distinct names.
 */
export function resourceName(...parts: string[]): string {
  const raw = parts.join("-");
  let name = raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "");
  if (name === "") name = "env";
  if (name.length > 63) name = `${name.slice(0, 54).replace(/-+$/, "")}-${shortHash(raw, 8)}`;
  return name;
}

/** A label value (at most 63 characters), shortened with a hash suffix when longer. */
export function labelValue(v: string): string {
  const clean = v.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  if (clean.length <= 63 && clean === v) return clean;
  return `${clean.slice(0, 54).replace(/[^A-Za-z0-9]+$/, "")}-${shortHash(v, 8)}`;
}

/** The environment variable a key of config.extra is passed as: AIROLLOUT_CONFIG_<KEY>. */
export function extraConfigVariable(key: string): string {
  return `AIROLLOUT_CONFIG_${key.toUpperCase().replace(/[^A-Z0-9]+/g, "_").replace(/^_+|_+$/g, "")}`;
}

/**
 * The ConfigMap data of a version: the model/prompt configuration as the environment variables
 * the service reads. A prompt kept in a ConfigMap (promptRef) is referenced, not copied.
 */
export function configData(version: EnvironmentVersion): Record<string, string> {
  const c = version.config ?? {};
  const data: Record<string, string> = {};
  if (c.model !== undefined) data.AIROLLOUT_MODEL = c.model;
  if (c.prompt !== undefined) data.AIROLLOUT_PROMPT = c.prompt;
  if (c.temperature !== undefined) data.AIROLLOUT_TEMPERATURE = String(c.temperature);
  if (c.maxTokens !== undefined) data.AIROLLOUT_MAX_TOKENS = String(c.maxTokens);
  const seen = new Map<string, string>();
  for (const [key, value] of Object.entries(c.extra ?? {})) {
    const name = extraConfigVariable(key);
    if (name === "AIROLLOUT_CONFIG_") throw new pulumi.RunError(`config.extra key "${key}" has no letters or digits; it cannot name an environment variable`);
    const other = seen.get(name);
    if (other !== undefined) throw new pulumi.RunError(`config.extra keys "${other}" and "${key}" both become ${name}; rename one`);
    seen.set(name, key);
    data[name] = value;
  }
  return data;
}

/**
 * What is wrong with the arguments, each problem naming the value and what to fix; empty when
 * they make a working environment. The controller checks this before it creates a stack.
 */
export function environmentProblems(args: EnvironmentArgs): string[] {
  const problems: string[] = [];
  const v = args.version;
  if (!v.image) problems.push(`version ${v.version} has no image: an environment runs a container image (versions with an endpoint need none)`);
  else {
    const p = imageReferenceProblem(v.image);
    if (p) problems.push(`image "${v.image}" ${p}`);
  }
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(v.version) || v.version.length > 63) problems.push(`version "${v.version}" must be a label-safe name such as v2 (letters, digits, '.', '_', '-'; at most 63)`);
  if (!DNS_LABEL.test(args.namespace) || args.namespace.length > 63) problems.push(`namespace "${args.namespace}" is not a valid namespace name`);
  if (args.rollout.trim() === "") problems.push("rollout name must not be empty");
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(args.role)) problems.push(`role "${args.role}" must be canary, shadow, stable or preview-<id> (lower case letters, digits, '-')`);
  const port = v.port ?? 8080;
  if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`port ${port} must be an integer 1..65535`);
  const replicas = v.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 0) problems.push(`replicas ${replicas} must be an integer >= 0`);
  const t = v.config?.temperature;
  if (t !== undefined && !(t >= 0 && t <= 2)) problems.push(`temperature ${t} must be between 0 and 2`);
  const m = v.config?.maxTokens;
  if (m !== undefined && !(Number.isInteger(m) && m >= 1)) problems.push(`maxTokens ${m} must be a positive integer`);
  for (const e of v.env ?? []) {
    if (!/^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(e.name)) problems.push(`env name "${e.name}" is not a valid environment variable name`);
    const p = envEntryProblem(e);
    if (p) problems.push(`env ${e.name}: ${p}`);
  }
  try {
    configData(v);
  } catch (err) {
    problems.push((err as Error).message);
  }
  return problems;
}

type EnvEntry = NonNullable<EnvironmentVersion["env"]>[number];

/** What is wrong with an env entry (the hand-run program gets no schema check), or undefined. */
function envEntryProblem(e: EnvEntry): string | undefined {
  if ((e.value === undefined) === (e.valueFrom === undefined)) return "exactly one of value and valueFrom must be set";
  if (!e.valueFrom) return undefined;
  const refs = [e.valueFrom.secretKeyRef, e.valueFrom.configMapKeyRef].filter((r) => r !== undefined);
  if (refs.length !== 1) return "valueFrom needs exactly one of secretKeyRef and configMapKeyRef";
  const r = refs[0]!;
  if (!DNS_SUBDOMAIN.test(r.name ?? "")) return `valueFrom name "${r.name ?? ""}" is not a valid object name`;
  if (!/^[-._a-zA-Z0-9]+$/.test(r.key ?? "")) return `valueFrom key "${r.key ?? ""}" is not a valid key`;
  return undefined;
}

/** The Pod spec's EnvVarSource of an env entry's valueFrom. */
function envSource(from: NonNullable<EnvEntry["valueFrom"]>): k8s.types.input.core.v1.EnvVarSource {
  if (from.secretKeyRef) return { secretKeyRef: { name: from.secretKeyRef.name, key: from.secretKeyRef.key } };
  return { configMapKeyRef: { name: from.configMapKeyRef!.name, key: from.configMapKeyRef!.key } };
}

function validate(args: EnvironmentArgs): void {
  const problems = environmentProblems(args);
  if (problems.length > 0) throw new pulumi.RunError(`invalid environment ${args.rollout}/${args.role}: ${problems.join("; ")}`);
}

/** Default requests keep a forgotten `resources` from scheduling an unbounded container. */
const DEFAULT_RESOURCES = { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "512Mi" } };

/**
 * The environment as a component resource: `pulumi stack` shows the ConfigMap, Deployment and
 * Service grouped under it.
 */
export class Environment extends pulumi.ComponentResource {
  readonly serviceName: pulumi.Output<string>;
  readonly url: pulumi.Output<string>;
  readonly namespace: pulumi.Output<string>;
  readonly deploymentName: pulumi.Output<string>;
  readonly configMapName: pulumi.Output<string>;

  constructor(name: string, args: EnvironmentArgs, opts?: pulumi.ComponentResourceOptions) {
    // Reject bad input before anything is registered, so a failed update leaves nothing behind.
    validate(args);
    super("airollout:index:Environment", name, {}, opts);
    const v = args.version;
    const port = v.port ?? 8080;
    const base = resourceName(args.rollout, args.role);
    const labels = {
      [LABELS.rollout]: labelValue(args.rollout),
      [LABELS.version]: labelValue(v.version),
      [LABELS.role]: labelValue(args.role),
    };
    // The selector leaves the version out: a Deployment's selector is immutable, and a new
    // version in the same role is an update of the same Deployment, not a replacement.
    const selector = { [LABELS.rollout]: labels[LABELS.rollout], [LABELS.role]: labels[LABELS.role] };
    // One server-side apply field manager for every update of the environment: the provider
    // otherwise draws a random one per create, and a create whose update was killed (so never
    // recorded) would leave fields owned by a manager the retry conflicts with.
    const owner = { [FIELD_MANAGER_ANNOTATION]: FIELD_MANAGER };
    const awaitAnnotations: Record<string, string> = { ...owner };
    if (args.waitForReady === false) awaitAnnotations["pulumi.com/skipAwait"] = "true";
    else if (args.timeoutSeconds !== undefined) awaitAnnotations["pulumi.com/timeoutSeconds"] = String(args.timeoutSeconds);

    const data = configData(v);
    const configHash = shortHash(JSON.stringify(data), 16);
    // The name carries the content hash: the Kubernetes provider replaces a ConfigMap whose data
    // changes, and a new name lets it create the new one first, roll the Deployment over to it
    // (old pods keep the old configuration) and delete the old one last. The Deployment refers
    // to the name as a plain string: an unknown Output there during the replacement made the
    // provider replace the Deployment too, all pods at once.
    const configMapName = `${base}-config-${configHash.slice(0, 8)}`;
    const configMap = new k8s.core.v1.ConfigMap(
      "config",
      { metadata: { name: configMapName, namespace: args.namespace, labels, annotations: owner }, data },
      { parent: this },
    );

    const promptRef = v.config?.promptRef;
    const env: k8s.types.input.core.v1.EnvVar[] = [
      { name: "AIROLLOUT_ROLLOUT", value: args.rollout },
      { name: "AIROLLOUT_ROLE", value: args.role },
      { name: "AIROLLOUT_VERSION", value: v.version },
    ];
    if (promptRef) env.push({ name: "AIROLLOUT_PROMPT", valueFrom: { configMapKeyRef: { name: promptRef.configMap, key: promptRef.key } } });
    // valueFrom stays a reference: the Secret's value never passes through the program or its
    // state, and the rollout's revision (on the pod template) carries the content's digest.
    for (const e of v.env ?? []) env.push(e.valueFrom ? { name: e.name, valueFrom: envSource(e.valueFrom) } : { name: e.name, value: e.value ?? "" });

    const probe = (initialDelaySeconds: number, periodSeconds: number): k8s.types.input.core.v1.Probe => ({
      ...(args.healthPath ? { httpGet: { path: args.healthPath, port: "http" } } : { tcpSocket: { port: "http" } }),
      initialDelaySeconds,
      periodSeconds,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });

    const templateAnnotations: Record<string, string> = { [CONFIG_HASH_ANNOTATION]: configHash };
    if (args.revision) templateAnnotations[REVISION_ANNOTATION] = args.revision;

    const deployment = new k8s.apps.v1.Deployment(
      "deployment",
      {
        metadata: { name: base, namespace: args.namespace, labels, annotations: awaitAnnotations },
        spec: {
          replicas: v.replicas ?? 1,
          selector: { matchLabels: selector },
          template: {
            metadata: { labels, annotations: templateAnnotations },
            spec: {
              containers: [
                {
                  name: "app",
                  image: v.image!,
                  ports: [{ name: "http", containerPort: port }],
                  envFrom: [{ configMapRef: { name: configMapName } }],
                  env,
                  resources: (v.resources as k8s.types.input.core.v1.ResourceRequirements | undefined) ?? DEFAULT_RESOURCES,
                  readinessProbe: probe(0, 5),
                  livenessProbe: probe(10, 10),
                },
              ],
            },
          },
        },
      },
      { parent: this, dependsOn: [configMap] },
    );

    const service = new k8s.core.v1.Service(
      "service",
      {
        metadata: { name: base, namespace: args.namespace, labels, annotations: awaitAnnotations },
        spec: { type: "ClusterIP", selector, ports: [{ name: "http", port, targetPort: "http", protocol: "TCP" }] },
      },
      // The Service waits for endpoints of ready pods; those exist only once the Deployment is up.
      { parent: this, dependsOn: [deployment] },
    );

    this.serviceName = service.metadata.name;
    this.namespace = service.metadata.namespace;
    this.url = pulumi.interpolate`http://${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local:${port}`;
    this.deploymentName = deployment.metadata.name;
    this.configMapName = configMap.metadata.name;
    this.registerOutputs({ serviceName: this.serviceName, url: this.url });
  }
}

/**
 * Stands up one version's environment and returns its outputs. Throws a RunError naming what to
 * fix when the arguments cannot make a working environment (an invalid image reference, say).
 */
export function environment(args: EnvironmentArgs, opts?: pulumi.ComponentResourceOptions): EnvironmentOutputs {
  const env = new Environment(resourceName(args.rollout, args.role), args, opts);
  return { serviceName: env.serviceName, url: env.url, namespace: env.namespace, deploymentName: env.deploymentName, configMapName: env.configMapName };
}
