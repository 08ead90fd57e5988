/**
 * Chaos drill: the controller killed during a `pulumi up`. Given an AIRollout with image versions
 * (environments through Pulumi, KWOK making Deployments Available), When the controller and the
 * `pulumi` processes it started are SIGKILLed together mid-update (as a Pod's container is), at a
 * seeded random moment, Then the restarted controller clears the stale stack lock the dead update
 * left, finishes the environments, and the rollout reaches its pause with exactly one Deployment
 * and one stack per role: no duplicate environment, no lost status.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { startNodeSimulator, type NodeSimulator } from "../../controller/src/dev/kwok.ts";
import { duplicateEvents, eventsOf, secs, seededRandom } from "../support/chaos.ts";
import { ControllerProcess, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

const SEED = Number(process.env.AIROLLOUT_CHAOS_SEED ?? 20261129);
let ns: string;
let sim: NodeSimulator;
let stateDir: string;
const processes: ControllerProcess[] = [];

beforeAll(async () => {
  ns = createNamespace("pulumichaos");
  const dir = mkdtempSync(join(tmpdir(), "airollout-pulumichaos-"));
  sim = await startNodeSimulator({ kubeconfig: kubeconfig(), dir: join(dir, "kwok"), ownerPid: process.pid });
  stateDir = join(dir, "state");
}, 300_000);

afterAll(async () => {
  for (const p of processes) if (!p.exited) await p.stop("SIGTERM");
  await sim?.stop();
});

function startController(): ControllerProcess {
  const p = new ControllerProcess(`pulumichaos-${ns}`, ["--namespace", ns, "--lease-namespace", ns, "--environments", "pulumi", "--state-dir", stateDir]);
  processes.push(p);
  return p;
}

/** The process ids below `pid` (children, grandchildren, ...), from /proc. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      // The command may hold spaces and parentheses: the fields after the last ")" are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(Number(d), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [child, pp] of parent) {
      if (pp !== p) continue;
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

const deployments = () =>
  kubectlOk(["get", "deploy", "-n", ns, "-l", "airollout.dev/rollout=bot", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas}{\"\\n\"}{end}"])
    .trim()
    .split("\n")
    .filter(Boolean)
    .sort();

describe("controller killed during a pulumi up", () => {
  it("the restarted controller clears the stale lock and finishes: one Deployment and one stack per role, no Event twice", async () => {
    const random = seededRandom(SEED);
    const first = startController();
    await first.waitForLog("leadership", (l) => l.msg === "became leader", 60_000);
    const spec = {
      stable: { version: "v1", image: "registry.example.com/triage:v1", config: { model: "small" } },
      candidate: { version: "v2", image: "registry.example.com/triage:v2", config: { model: "large" } },
      strategy: { steps: [{ setWeight: 20 }, { pause: {} }] },
    };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
    // Mid-update: a `pulumi` process of this controller is running an update.
    const pulumiPids = await waitFor("a pulumi up under way", () => {
      const pids = descendants(first.proc.pid!).filter((p) => commandOf(p).includes("pulumi") && / up( |$)/.test(commandOf(p)));
      return pids.length > 0 ? pids : undefined;
    }, 240_000, 100);
    // Deep enough into the update that it holds the stack lock and has created some of its
    // resources (the program's first objects exist), then a seeded random moment later.
    await waitFor("the update creating resources", () => kubectlOk(["get", "cm,svc,deploy", "-n", ns, "-l", "airollout.dev/rollout=bot", "-o", "name"]).trim() !== "", 240_000, 100);
    const delayMs = Math.round(random() * 1000);
    await new Promise((r) => setTimeout(r, delayMs));
    // As a container is killed: the controller and everything it started, at once.
    const tree = descendants(first.proc.pid!);
    const killed = [first.proc.pid!, ...tree];
    for (const pid of killed) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await waitFor("the controller gone", () => first.exited, 30_000);
    const partial = kubectlOk(["get", "cm,svc,deploy", "-n", ns, "-l", "airollout.dev/rollout=bot", "-o", "name"]).trim().split("\n");
    console.log(`pulumi chaos (seed ${SEED}): SIGKILLed the controller and ${tree.length} processes it started ${secs(delayMs)} after the update's first resources appeared (pulumi pids ${pulumiPids.join(",")}); left behind: ${partial.join(" ")}`);

    const t0 = Date.now();
    const second = startController();
    const o = await waitFor("Paused at the pause step with its environments", async () => {
      const x = await client().get<AIRollout>(`${rolloutsPath(ns)}/bot`);
      return x.status?.phase === "Paused" ? x : undefined;
    }, 480_000, 500);
    console.log(`pulumi chaos: environments ready and the rollout at its pause ${secs(Date.now() - t0)} after the restart`);
    expect(o.status!.canaryWeight).toBe(20);
    expect(o.status!.environments!.stable).toMatchObject({ phase: "Ready", version: "v1" });
    expect(o.status!.environments!.canary).toMatchObject({ phase: "Ready", version: "v2" });
    expect(o.status!.observedGeneration).toBe(o.metadata.generation);
    // The dead update's lock was found stale (its holder is gone) and cleared, not waited out.
    expect(second.has((l) => l.msg === "clearing a stale stack lock left by a process that is gone")).toBe(true);
    // No duplicate environment: one Deployment per role, available.
    expect(deployments()).toEqual(["bot-canary=1", "bot-stable=1"]);
    expect(duplicateEvents(await eventsOf(client(), ns, "bot"))).toEqual([]);
    expect((await eventsOf(client(), ns, "bot")).filter((e) => e.reason === "EnvironmentReady").map((e) => e.message.split(":")[0]).sort()).toEqual(["canary environment ready", "stable environment ready"]);
    await second.stop();
  }, 900_000);
});
