/**
 * `airollout promote|abort|retry NAME`: human controls. Each sets an annotation with a fresh
 * value; the controller acts on every new value exactly once (status.handled records it), so
 * a repeated command acts again and a replayed pass never does.
 */
import { ANNOTATIONS, type AIRollout } from "../api/schema.ts";
import { loadKubeConfig, KubeClient } from "../kube/client.ts";
import { rolloutsPath } from "../api/paths.ts";
import { UsageError } from "./errors.ts";
import { ABORT, PROMOTE, RETRY, parseFlags } from "./commands.ts";

export type ControlVerb = "promote" | "abort" | "retry";

/** The annotation value a command writes: its kind plus a unique suffix. */
export function requestValue(verb: ControlVerb, full: boolean, now = Date.now()): string {
  const id = `${now.toString(36)}${Math.floor(Math.random() * 1296).toString(36).padStart(2, "0")}`;
  return verb === "promote" ? `${full ? "full" : "step"}-${id}` : id;
}

export async function controlCommand(verb: ControlVerb, argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags({ promote: PROMOTE, abort: ABORT, retry: RETRY }[verb], argv);
  const name = positionals[0];
  if (!name) throw new UsageError(`${verb}: give the AIRollout's name`);
  if (values.full && verb !== "promote") throw new UsageError(`--full applies to promote only`);
  const client = new KubeClient(loadKubeConfig(values.kubeconfig));
  const ns = values.namespace ?? client.defaultNamespace;
  const path = `${rolloutsPath(ns)}/${name}`;
  const before = await client.get<AIRollout>(path);
  const phase = before.status?.phase ?? "Pending";
  if (verb === "retry" && phase !== "RolledBack") throw new UsageError(`retry: ${ns}/${name} is ${phase}; retry restarts a RolledBack rollout`);
  if ((verb === "promote" || verb === "abort") && ["Succeeded", "RolledBack"].includes(phase)) {
    throw new UsageError(`${verb}: ${ns}/${name} is already ${phase}`);
  }
  const value = requestValue(verb, values.full ?? false);
  await client.patch(path, { metadata: { annotations: { [ANNOTATIONS[verb]]: value } } });
  const what = verb === "promote" ? (values.full ? "full promotion" : "promotion of the current step") : verb;
  process.stdout.write(`${ns}/${name}: ${what} requested (${ANNOTATIONS[verb]}=${value}); phase was ${phase}\n`);
  return 0;
}
