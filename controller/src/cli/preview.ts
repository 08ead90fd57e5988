/**
 * `airollout preview up|destroy|list`: ephemeral preview environments of a rollout's candidate,
 * through the same Pulumi program and state as the controller's environments. A preview expires
 * after spec.preview.ttl (or --ttl); the controller's garbage collector destroys it then.
 */
import { parseArgs } from "node:util";
import { SpecSchema, type AIRollout } from "../api/schema.ts";
import { parseDuration } from "../api/duration.ts";
import { KubeClient, loadKubeConfig } from "../kube/client.ts";
import { rolloutsPath } from "../api/paths.ts";
import { isEnvironmentFailure } from "../reconcile/contract.ts";
import { createLogger } from "../telemetry/logger.ts";
import { environmentsPort } from "./controller.ts";
import { UsageError } from "./errors.ts";

const ID = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export async function previewCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      rollout: { type: "string" },
      namespace: { type: "string", short: "n" },
      kubeconfig: { type: "string" },
      ttl: { type: "string" },
      "state-dir": { type: "string" },
    },
  });
  const client = new KubeClient(loadKubeConfig(values.kubeconfig));
  const ns = values.namespace ?? client.defaultNamespace;
  const log = createLogger("preview", process.env.LOG_LEVEL ?? "warn");
  const envs = environmentsPort({ environments: "pulumi", stateDir: values["state-dir"], kubeconfig: values.kubeconfig }, client, log);
  if (!values.rollout) throw new UsageError(`preview ${sub ?? ""}: --rollout NAME is required`);
  const rollout = await client.get<AIRollout>(`${rolloutsPath(ns)}/${values.rollout}`);
  switch (sub) {
    case "up": {
      const id = positionals[0];
      if (!id || !ID.test(id)) throw new UsageError(`preview up: give an id of lowercase letters, digits and dashes (for example pr-123), got ${JSON.stringify(id ?? "")}`);
      const spec = SpecSchema.parse(rollout.spec);
      if (!spec.candidate.image) throw new UsageError(`preview up: ${ns}/${values.rollout} has no candidate.image; a preview runs the candidate's image`);
      const ttl = values.ttl ?? spec.preview?.ttl ?? "24h";
      const expiresAt = new Date(Date.now() + parseDuration(ttl));
      try {
        const st = await envs.ensure(rollout, `preview-${id}`, spec.candidate, { expiresAt, ...(rollout.status?.revision ? { revision: rollout.status.revision } : {}) });
        process.stdout.write(`preview ${id}: stack ${st.stack} ready at ${st.url ?? "(no url)"}; expires ${expiresAt.toISOString()}\n`);
        return 0;
      } catch (err) {
        if (isEnvironmentFailure(err)) {
          process.stderr.write(`preview ${id}: ${err.reason}: ${err.message}\n`);
          return 1;
        }
        throw err;
      }
    }
    case "destroy": {
      const id = positionals[0];
      if (!id) throw new UsageError("preview destroy: give the preview's id");
      await envs.destroy(rollout, `preview-${id}`, "destroyed by hand");
      process.stdout.write(`preview ${id}: destroyed\n`);
      return 0;
    }
    case "list": {
      const all = await envs.list(rollout);
      for (const e of all.filter((x) => x.role.startsWith("preview-"))) {
        process.stdout.write(`${e.role.slice("preview-".length).padEnd(20)} ${e.stack.padEnd(40)} ${e.url ?? "-"}  expires ${e.expiresAt ?? "never"}\n`);
      }
      return 0;
    }
    default:
      throw new UsageError(`preview: expected up, destroy or list, got ${JSON.stringify(sub ?? "")}`);
  }
}
