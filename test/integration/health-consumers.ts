/**
 * The real consumers of the controller's health, for tests: airollout-health (hack/health, built
 * from the Go module proxy into the cache) runs kstatus from sigs.k8s.io/cli-utils (Flux's
 * healthChecks, `kubectl wait`-style tooling) or an Argo CD health script in gopher-lua,
 * restricted as Argo CD restricts a custom script.
 */
import { spawnSync } from "node:child_process";
import { ensureHealthBinary } from "../../controller/src/dev/tools.ts";

/** What a consumer says: kstatus's status (Current, InProgress, Failed, ...) or Argo CD's health. */
export interface Health {
  status: string;
  message: string;
}

export interface HealthConsumers {
  /** kstatus's answer for the object. */
  kstatus(obj: unknown): Health;
  /** The Argo CD health script at `script` run on the object. */
  argo(obj: unknown, script: string): Health;
}

/**
 * Builds airollout-health (cold, a few minutes on a loaded 2-core machine; cached, instant) and
 * returns its two consumers; a non-zero exit is an error carrying its stderr, never an answer.
 */
export async function healthConsumers(): Promise<HealthConsumers> {
  const health = await ensureHealthBinary((l) => process.stderr.write(`${l}\n`));
  const consume = (args: string[], obj: unknown): Health => {
    const r = spawnSync(health, args, { input: JSON.stringify(obj), encoding: "utf8", timeout: 30_000 });
    if (r.status !== 0) throw new Error(`airollout-health ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Health;
  };
  return { kstatus: (obj) => consume(["kstatus"], obj), argo: (obj, script) => consume(["lua", script], obj) };
}
