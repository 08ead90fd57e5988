/**
 * `airollout preview up|destroy|list` and `airollout stacks`: ephemeral preview environments of
 * a rollout's candidate, and the list of the controller's stacks, through the same Pulumi
 * program and backend as the controller's environments. The backend is the one the controller
 * publishes in the cluster (backend.ts), so a preview lands where the controller's garbage
 * collector destroys it after spec.preview.ttl (or --ttl); --backend or --state-dir override it.
 */
import { SpecSchema, type AIRollout } from "../api/schema.ts";
import { parseDuration } from "../api/duration.ts";
import type { KubeClient } from "../kube/client.ts";
import { rolloutsPath } from "../api/paths.ts";
import { isEnvironmentFailure, type EnvironmentsPort, type EnvironmentSummary } from "../reconcile/contract.ts";
import { createLogger } from "../telemetry/logger.ts";
import { environmentsPort, pulumiState } from "./controller.ts";
import { discoverBackend } from "./backend.ts";
import { PREVIEW, STACKS, parseFlags } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { connect } from "./kube.ts";

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

function expiry(s: EnvironmentSummary): string {
  return s.expiresAt ?? "never";
}

/** `airollout preview up|destroy|list --rollout NAME`. */
export async function previewCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseFlags(PREVIEW, rest);
  if (!["up", "destroy", "list"].includes(sub ?? "")) throw new UsageError(`preview: expected up, destroy or list, got ${JSON.stringify(sub ?? "")}`);
  if (!values.rollout) throw new UsageError(`preview ${sub}: --rollout NAME is required`);
  const id = positionals[0];
  if (sub === "up" && (!id || !ID.test(id))) throw new UsageError(`preview up: give an id of lowercase letters, digits and dashes (for example pr-123), got ${JSON.stringify(id ?? "")}`);
  if (sub === "destroy" && !id) throw new UsageError("preview destroy: give the preview's id");
  const { client, namespace: ns } = connect(values);
  const rollout = await client.get<AIRollout>(`${rolloutsPath(ns)}/${values.rollout}`);
  const { envs } = await controllerEnvironments(client, values, ns, rollout);
  switch (sub) {
    case "up": {
      const spec = SpecSchema.parse(rollout.spec);
      if (!spec.candidate.image) throw new UsageError(`preview up: ${ns}/${values.rollout} has no candidate.image; a preview runs the candidate's image`);
      const ttl = values.ttl ?? spec.preview?.ttl ?? "24h";
      let ttlMs: number;
      try {
        ttlMs = parseDuration(ttl);
      } catch (err) {
        throw new UsageError(`--ttl: ${(err as Error).message}`);
      }
      if (!(ttlMs > 0)) throw new UsageError(`--ttl: ${ttl} is not a positive duration`);
      const expiresAt = new Date(Date.now() + ttlMs);
      try {
        const st = await envs.ensure(rollout, `preview-${id!}`, spec.candidate, { expiresAt, ...(rollout.status?.revision ? { revision: rollout.status.revision } : {}) });
        process.stdout.write(`preview ${id!}: stack ${st.stack} ready at ${st.url ?? "(no url)"}; expires ${expiresAt.toISOString()}\n`);
        return 0;
      } catch (err) {
        if (isEnvironmentFailure(err)) {
          process.stderr.write(`preview ${id!}: ${err.reason}: ${err.message}\n`);
          return 1;
        }
        throw err;
      }
    }
    case "destroy":
      await envs.destroy(rollout, `preview-${id!}`, "destroyed by hand");
      process.stdout.write(`preview ${id!}: destroyed\n`);
      return 0;
    default: {
      const previews = (await envs.list(rollout)).filter((x) => x.role.startsWith("preview-"));
      for (const e of previews) {
        process.stdout.write(`${e.role.slice("preview-".length).padEnd(20)} ${e.stack.padEnd(40)} ${e.url ?? "-"}  expires ${expiry(e)}\n`);
      }
      return 0;
    }
  }
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
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join("").trimEnd() + "\n");
  return 0;
}
