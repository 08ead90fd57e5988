/**
 * `airollout fixtures export`: a rollout's masked fixtures, fetched from the gateway's admin port,
 * written as the versioned fixtures file (fixtures/format.ts). Its `requests` list is what
 * `airollout golden record --requests` reads, so a golden suite starts from real, masked traffic.
 */
import { writeFileSync } from "node:fs";
import { FIXTURE_LIMITS } from "../fixtures/format.ts";
import { fetchFixtures } from "../fixtures/replay.ts";
import { kubeTarget } from "../kube/kubeconfig.ts";
import { FIXTURES, parseFlags } from "./commands.ts";
import { UsageError } from "./errors.ts";

/** Entry point of `airollout fixtures`. */
export async function fixturesCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(FIXTURES, args);
  if (positionals[0] !== "export") throw new UsageError(`fixtures: expected "export", got ${JSON.stringify(positionals[0] ?? "")}`);
  const rollout = values.rollout;
  if (!rollout) throw new UsageError("--rollout is required");
  const gateway = values.gateway ?? process.env.AIROLLOUT_GATEWAY_URL;
  if (!gateway) throw new UsageError("--gateway URL (or AIROLLOUT_GATEWAY_URL) is required: the gateway's admin (metrics) port, e.g. after kubectl port-forward svc/airollout-gateway 9090");
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > FIXTURE_LIMITS.maxCount) throw new UsageError(`--count must be an integer from 1 to ${FIXTURE_LIMITS.maxCount}, got ${JSON.stringify(values.count)}`);
  // -n alone needs no kubeconfig: the fixtures come from the gateway, not the API server.
  const namespace = values.namespace ?? kubeTarget(values).namespace;
  const doc = await fetchFixtures(gateway, namespace, rollout, count);
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  if (values.output) {
    writeFileSync(values.output, text);
    process.stderr.write(`wrote ${doc.requests.length} fixtures of ${namespace}/${rollout} to ${values.output}${doc.truncated ? " (cut short by the answer's size bound)" : ""}\n`);
  } else process.stdout.write(text);
  return 0;
}
