/**
 * `airollout promote|abort|retry NAME`: human controls. Each sets an annotation with a fresh
 * value; the controller acts on every new value exactly once (status.handled records it), so
 * a repeated command acts again and a replayed pass never does.
 */
import { ANNOTATIONS, type AIRollout } from "../api/schema.ts";
import { rolloutsPath } from "../api/paths.ts";
import { UsageError } from "./errors.ts";
import { ABORT, PROMOTE, RETRY, parseFlags } from "./commands.ts";
import { connect } from "./kube.ts";

export type ControlVerb = "promote" | "abort" | "retry";

/** The annotation value a command writes: its kind plus a unique suffix. */
export function requestValue(verb: ControlVerb, full: boolean, now = Date.now()): string {
  const id = `${now.toString(36)}${Math.floor(Math.random() * 1296).toString(36).padStart(2, "0")}`;
  return verb === "promote" ? `${full ? "full" : "step"}-${id}` : id;
}

/** What a control request needs of the Kubernetes API: the CLI's KubeClient, or a test's fake. */
export interface ControlClient {
  get<T = unknown>(path: string): Promise<T>;
  patch<T = unknown>(path: string, body: unknown): Promise<T>;
}

/** A control request the rollout's phase does not allow (retry of a running rollout, promote of a finished one). */
export class ControlRefused extends UsageError {}

/** What a control request did: the annotation written and the phase it found. */
export interface ControlResult {
  namespace: string;
  name: string;
  annotation: string;
  value: string;
  phaseBefore: string;
  /** One line for a human, as `airollout promote` prints it. */
  message: string;
}

/**
 * Requests a human control on one rollout, as `airollout promote [--full]|abort|retry` and the
 * dashboard's buttons do: checks the phase allows it, then writes the annotation with a fresh
 * value. API errors (403 included) propagate unchanged.
 */
export async function requestControl(client: ControlClient, target: { namespace: string; name: string; verb: ControlVerb; full: boolean }): Promise<ControlResult> {
  const { namespace: ns, name, verb, full } = target;
  if (full && verb !== "promote") throw new UsageError(`--full applies to promote only`);
  const path = `${rolloutsPath(ns)}/${name}`;
  const before = await client.get<AIRollout>(path);
  const phase = before.status?.phase ?? "Pending";
  if (verb === "retry" && phase !== "RolledBack") throw new ControlRefused(`retry: ${ns}/${name} is ${phase}; retry restarts a RolledBack rollout`);
  if ((verb === "promote" || verb === "abort") && ["Succeeded", "RolledBack"].includes(phase)) {
    throw new ControlRefused(`${verb}: ${ns}/${name} is already ${phase}`);
  }
  const value = requestValue(verb, full);
  await client.patch(path, { metadata: { annotations: { [ANNOTATIONS[verb]]: value } } });
  const what = verb === "promote" ? (full ? "full promotion" : "promotion of the current step") : verb;
  const message = `${ns}/${name}: ${what} requested (${ANNOTATIONS[verb]}=${value}); phase was ${phase}`;
  return { namespace: ns, name, annotation: ANNOTATIONS[verb], value, phaseBefore: phase, message };
}

export async function controlCommand(verb: ControlVerb, argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags({ promote: PROMOTE, abort: ABORT, retry: RETRY }[verb], argv);
  const name = positionals[0];
  if (!name) throw new UsageError(`${verb}: give the AIRollout's name`);
  if (values.full && verb !== "promote") throw new UsageError(`--full applies to promote only`);
  const { client, namespace } = connect(values);
  const result = await requestControl(client, { namespace, name, verb, full: values.full ?? false });
  process.stdout.write(`${result.message}\n`);
  return 0;
}
