/**
 * `airollout preview up|destroy|list`: a thin client of AIPreview objects (the controller stands
 * their stacks up, writes their URLs and destroys them on expiry or deletion), and
 * `airollout stacks`: the controller's Pulumi stacks, read from the backend it publishes in the
 * cluster (backend.ts); --backend or --state-dir override it.
 */
import { SpecSchema, API_VERSION, type AIRollout } from "../api/schema.ts";
import { PREVIEW_KIND, previewPath, previewsPath, type AIPreview } from "../api/preview-schema.ts";
import { formatDuration } from "../api/duration.ts";
import { ApiError, type KubeClient } from "../kube/client.ts";
import { rolloutsPath } from "../api/paths.ts";
import type { EnvironmentsPort } from "../reconcile/contract.ts";
import { createLogger } from "../telemetry/logger.ts";
import { environmentsPort, pulumiState } from "./controller.ts";
import { discoverBackend } from "./backend.ts";
import { PREVIEW, STACKS, parseFlags } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { connect } from "./kube.ts";
import { positiveDurationFlag, table } from "./text.ts";

/** The field manager of `preview up`'s server-side apply. */
const FIELD_MANAGER = "airollout-cli";

const ID = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

/** The flags both commands share to reach the controller's backend. */
interface BackendFlags {
  kubeconfig?: string;
  backend?: string;
  "state-dir"?: string;
  "controller-namespace"?: string;
}

/**
 * The environments port on the controller's default backend: --backend, else --state-dir (a
 * controller's state directory, its file backend), else the backend the controller published.
 * A rollout that names its own backend needs none of them (the adapter uses the rollout's).
 */
async function controllerEnvironments(client: KubeClient, values: BackendFlags, namespace: string, rollout?: AIRollout): Promise<{ envs: EnvironmentsPort; source: string }> {
  const log = createLogger("preview", process.env.LOG_LEVEL ?? "warn");
  const port = (stateDir: string | undefined, backendUrl: string | undefined) =>
    environmentsPort({ environments: "pulumi", stateDir, kubeconfig: values.kubeconfig, ...(backendUrl ? { backendUrl } : {}) }, client, log);
  const cliStateDir = pulumiState({}, "cli").stateDir;
  if (values.backend !== undefined) {
    if (values.backend.trim() === "") throw new UsageError("--backend: empty; give a Pulumi backend URL (file://, s3://, https://...)");
    return { envs: port(cliStateDir, values.backend), source: `${values.backend} (--backend)` };
  }
  if (values["state-dir"] !== undefined) return { envs: port(values["state-dir"], undefined), source: `${pulumiState({ stateDir: values["state-dir"] }).backend} (--state-dir)` };
  const own = rollout && SpecSchema.safeParse(rollout.spec).data?.environments?.pulumi.backend;
  if (own) return { envs: port(cliStateDir, undefined), source: `${own} (the rollout's spec.environments.pulumi.backend)` };
  const found = await discoverBackend(client, namespace, values["controller-namespace"]);
  return { envs: port(cliStateDir, found.backend), source: `${found.backend} (${found.source})` };
}

/** What `preview up` applies: the fields this client owns (server-side apply, field manager airollout-cli). */
function previewObject(id: string, ns: string, values: { rollout?: string; ttl?: string; image?: string; fixtures?: string }): Record<string, unknown> {
  const spec: Record<string, unknown> = { rolloutRef: { name: values.rollout } };
  if (values.ttl !== undefined) spec.ttl = values.ttl;
  // The preview's id names the version: an image preview's pods and metrics carry it.
  if (values.image !== undefined) spec.version = { version: id, image: values.image };
  if (values.fixtures !== undefined) {
    const count = Number(values.fixtures);
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new UsageError(`--fixtures: ${values.fixtures} is not a whole number from 1 to 1000`);
    spec.fixtures = { fromRollout: values.rollout, count };
  }
  return { apiVersion: API_VERSION, kind: PREVIEW_KIND, metadata: { name: id, namespace: ns }, spec };
}

/** The API server's own words for a refused object (its CEL and schema messages name the field). */
function refusal(err: unknown): string | undefined {
  if (!(err instanceof ApiError) || (err.status !== 422 && err.status !== 400)) return undefined;
  return (err.body as { message?: string } | undefined)?.message ?? err.message;
}

const timeoutMs = (text: string): number => positiveDurationFlag("--timeout", text);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls the preview until the controller has answered this generation with Ready (0), or with
 * a phase it will not leave by itself (1), or the timeout passes (1).
 */
async function waitReady(client: KubeClient, ns: string, id: string, generation: number, limitMs: number): Promise<number> {
  const deadline = Date.now() + limitMs;
  let last = "";
  while (Date.now() < deadline) {
    const p = await client.get<AIPreview>(previewPath(ns, id));
    const s = p.status ?? {};
    const current = (s.observedGeneration ?? 0) >= generation;
    const stalled = s.conditions?.some((c) => c.type === "Stalled" && c.status === "True");
    if (current && s.phase === "Ready" && s.url) {
      process.stdout.write(`preview ${id}: Ready at ${s.url}; expires ${s.expiresAt ?? "never"}\n`);
      return 0;
    }
    if (current && (stalled || s.phase === "Expired")) {
      process.stderr.write(`preview ${id}: ${s.phase}: ${s.message ?? ""}\n`);
      return 1;
    }
    last = `${s.phase ?? "Pending"}${s.message ? `: ${s.message}` : ""}`;
    await sleep(1000);
  }
  process.stderr.write(`preview ${id}: not Ready after ${formatDuration(limitMs)} (last: ${last || "no status yet"})\n`);
  return 1;
}

/** Polls until the object is gone (its stack destroyed and the finalizer removed). */
async function waitGone(client: KubeClient, ns: string, id: string, limitMs: number): Promise<number> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    try {
      await client.get(previewPath(ns, id));
    } catch (err) {
      if (err instanceof ApiError && err.notFound) return 0;
      throw err;
    }
    await sleep(1000);
  }
  process.stderr.write(`preview ${id}: still there after ${formatDuration(limitMs)} (kubectl describe aipreview ${id} -n ${ns} says why)\n`);
  return 1;
}

async function previewUp(client: KubeClient, ns: string, id: string, values: PreviewFlags): Promise<number> {
  if (!values.rollout) throw new UsageError("preview up: --rollout NAME is required");
  const body = previewObject(id, ns, values);
  let applied: AIPreview;
  try {
    applied = await client.request<AIPreview>("PATCH", previewPath(ns, id), { body, patch: "apply", query: { fieldManager: FIELD_MANAGER, force: true } });
  } catch (err) {
    const why = refusal(err);
    if (why === undefined) throw err;
    process.stderr.write(`preview ${id}: refused by the API server: ${why}\n`);
    return 1;
  }
  if (!values.wait) {
    process.stdout.write(`preview ${id}: applied (generation ${applied.metadata.generation}); follow it with kubectl get aipreview ${id} -n ${ns} -w\n`);
    return 0;
  }
  return waitReady(client, ns, id, applied.metadata.generation, timeoutMs(values.timeout));
}

async function previewDestroy(client: KubeClient, ns: string, id: string, values: PreviewFlags): Promise<number> {
  try {
    await client.delete(previewPath(ns, id));
  } catch (err) {
    if (!(err instanceof ApiError && err.notFound)) throw err;
    process.stderr.write(`preview ${id}: no such preview in namespace ${ns}\n`);
    return 1;
  }
  if (!values.wait) {
    process.stdout.write(`preview ${id}: deleted; the controller destroys its stack, then the object goes\n`);
    return 0;
  }
  const code = await waitGone(client, ns, id, timeoutMs(values.timeout));
  if (code === 0) process.stdout.write(`preview ${id}: destroyed\n`);
  return code;
}

/** `preview list`: one namespace's previews, or every namespace's (ns undefined, -A) with a NAMESPACE column as kubectl prints it. */
async function previewList(client: KubeClient, ns: string | undefined, rollout: string | undefined): Promise<number> {
  const list = await client.get<{ items: AIPreview[] }>(previewsPath(ns));
  const items = list.items.filter((p) => rollout === undefined || (p.spec as { rolloutRef?: { name?: string } } | undefined)?.rolloutRef?.name === rollout);
  if (items.length === 0) {
    process.stdout.write("no previews\n");
    return 0;
  }
  const all = ns === undefined;
  const rows = [[...(all ? ["NAMESPACE"] : []), "NAME", "ROLLOUT", "PHASE", "URL", "EXPIRES"]];
  for (const p of items) {
    const s = p.status ?? {};
    rows.push([...(all ? [p.metadata.namespace ?? "-"] : []), p.metadata.name, (p.spec as { rolloutRef?: { name?: string } } | undefined)?.rolloutRef?.name ?? "-", s.phase ?? "Pending", s.url ?? "-", s.expiresAt ?? "-"]);
  }
  process.stdout.write(table(rows));
  return 0;
}

interface PreviewFlags {
  rollout?: string;
  ttl?: string;
  image?: string;
  fixtures?: string;
  wait: boolean;
  timeout: string;
}

/**
 * `airollout preview up|destroy|list`: a thin client of AIPreview objects. up applies one
 * (server-side apply: a second up with other flags updates it), list reads their status,
 * destroy deletes one; the controller does the rest (stack, URL, expiry, teardown).
 */
export async function previewCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseFlags(PREVIEW, rest);
  if (!["up", "destroy", "list"].includes(sub ?? "")) throw new UsageError(`preview: expected up, destroy or list, got ${JSON.stringify(sub ?? "")}`);
  const id = positionals[0];
  if (sub !== "list" && (!id || !ID.test(id))) throw new UsageError(`preview ${sub}: give the preview's id: lowercase letters, digits and dashes (for example pr-123), got ${JSON.stringify(id ?? "")}`);
  if (values["all-namespaces"] && sub !== "list") throw new UsageError(`preview ${sub}: --all-namespaces applies to list only`);
  const { client, namespace: ns } = connect(values);
  if (sub === "up") return previewUp(client, ns, id!, values);
  if (sub === "destroy") return previewDestroy(client, ns, id!, values);
  return previewList(client, values["all-namespaces"] ? undefined : ns, values.rollout);
}

/** `airollout stacks [--rollout NAME]`: the controller's environment stacks, one a line. */
export async function stacksCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(STACKS, argv);
  const { client, namespace: ns } = connect(values);
  const rollout = values.rollout ? await client.get<AIRollout>(`${rolloutsPath(ns)}/${values.rollout}`) : undefined;
  const { envs, source } = await controllerEnvironments(client, values, ns, rollout);
  const all = await envs.list(rollout);
  process.stderr.write(`backend: ${source}\n`);
  if (all.length === 0) {
    process.stdout.write("no stacks\n");
    return 0;
  }
  const rows = [["ROLLOUT", "ROLE", "STACK", "URL", "EXPIRES", "LAST UPDATE"]];
  for (const s of all) rows.push([s.rollout ?? "-", s.role, s.stack, s.url ?? "-", s.expiresAt ?? "-", s.updating ? "updating" : (s.lastUpdate ?? "-")]);
  process.stdout.write(table(rows));
  return 0;
}
