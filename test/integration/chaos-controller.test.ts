/**
 * Chaos drills for the controller: SIGKILL at seeded random points of rollouts, 20 times; the
 * API server and etcd restarted under load. Given rollouts in flight, When the controller or
 * the control plane dies mid-way, Then every rollout ends where its human controls say, no step
 * starts twice, no timed pause is cut short, no Event is recorded twice, and none is lost.
 *
 * Versions are endpoints and the controller runs with `--environments none`, so a kill lands
 * in the controller's own work (passes, Events, status writes) rather than in a `pulumi up`.
 * The after-events failpoint holds every pass that records Events for 300 ms before its status
 * write: the window where a crash could duplicate or lose a step is wide enough that the seeded
 * kills land in it regularly (the run prints how often).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { restartComponent } from "../../controller/src/dev/controlplane.ts";
import { duplicateEvents, eventsOf, followStatus, historyProblems, secs, seededRandom, type History } from "../support/chaos.ts";
import { GatewayProcess, startTraffic } from "../support/loop.ts";
import { startBackend, type TestBackend } from "../support/backends.ts";
import { ControllerProcess, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";
import { inject } from "vitest";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The kill schedule's seed; AIROLLOUT_CHAOS_SEED replays another one. */
const SEED = Number(process.env.AIROLLOUT_CHAOS_SEED ?? 20261129);
const KILLS = 20;
const PAUSE = "2s";
const PAUSE_MS = 2000;
/** Steps 1, 3 and 6 are timed pauses; step 4 waits for a human (promote or abort). */
const STEPS = [{ setWeight: 10 }, { pause: { duration: PAUSE } }, { setWeight: 30 }, { pause: { duration: PAUSE } }, { pause: {} }, { setWeight: 60 }, { pause: { duration: PAUSE } }, { setWeight: 100 }];
const TIMED_PAUSES = new Map([[1, PAUSE_MS], [3, PAUSE_MS], [6, PAUSE_MS]]);
const HUMAN_STEP = 4;

let ns: string;
const histories: History[] = [];
const processes: ControllerProcess[] = [];

beforeAll(() => {
  ns = createNamespace("chaos");
});

afterAll(async () => {
  for (const h of histories) h.stop();
  await killAll();
});

/** Stops every controller still running, so a failed test leaves no second one behind. */
async function killAll(): Promise<void> {
  for (const p of processes) if (!p.exited) await p.stop("SIGKILL");
}

/** Node's start-up alone took up to a minute on the loaded development machine: be patient. */
const LEADERSHIP_WAIT_MS = 180_000;

function startController(env: Record<string, string> = {}): ControllerProcess {
  // The same identity each time, as a restarted Pod keeps its name: it takes its own Lease back
  // at once instead of waiting for it to expire.
  const p = new ControllerProcess(`chaos-${ns}`, ["--namespace", ns, "--lease-namespace", ns, "--environments", "none"], env);
  processes.push(p);
  return p;
}

function apply(name: string, steps: unknown[] = STEPS, endpoint = "http://127.0.0.1:9"): void {
  const spec = {
    stable: { version: "v1", endpoint: `${endpoint}/stable` },
    candidate: { version: "v2", endpoint: `${endpoint}/candidate` },
    strategy: { steps },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec }));
}

async function get(name: string): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
}

const terminal = (o: AIRollout | undefined): boolean => o?.status?.phase === "Succeeded" || o?.status?.phase === "RolledBack";

/** What the human does at the indefinite pause of each rollout of a wave. */
interface Wave {
  promoted: string;
  aborted: string;
  promoteValue: string;
  abortValue: string;
}

/** Plays the human: promotes one rollout and aborts the other once each reaches the indefinite pause. */
function human(w: Wave): { stop: () => void } {
  let on = true;
  const acted = new Set<string>();
  void (async () => {
    while (on && acted.size < 2) {
      for (const [name, key, value] of [[w.promoted, "airollout.dev/promote", w.promoteValue], [w.aborted, "airollout.dev/abort", w.abortValue]] as const) {
        if (acted.has(name)) continue;
        try {
          const o = await get(name);
          if (o.status?.phase === "Paused" && o.status.currentStep === HUMAN_STEP) {
            await client().patch(`${rolloutsPath(ns)}/${name}`, { metadata: { annotations: { [key]: value } } }, "merge");
            acted.add(name);
          }
        } catch {
          // the next poll tells
        }
      }
      await sleep(150);
    }
  })();
  return { stop: () => (on = false) };
}

/** The checks every rollout of a wave must pass, whatever the kills did. */
async function checkRollout(name: string, h: History, outcome: "Succeeded" | "RolledBack"): Promise<void> {
  const o = await get(name);
  expect(o.status?.phase, `${name} final phase`).toBe(outcome);
  expect(o.status?.observedGeneration, `${name} observedGeneration`).toBe(o.metadata.generation);
  expect(historyProblems(h.seen, TIMED_PAUSES), `${name} history`).toEqual([]);
  const events = await eventsOf(client(), ns, name);
  expect(duplicateEvents(events), `${name} duplicate Events`).toEqual([]);
  const started = events.filter((e) => e.reason === "StepStarted").map((e) => e.message.match(/^Step (\d+)\//)?.[1]).map(Number).sort((a, b) => a - b);
  if (outcome === "Succeeded") {
    expect(o.status?.canaryWeight).toBe(100);
    // Every step's start was recorded, once: none lost to a kill, none repeated.
    expect(started, `${name} StepStarted Events`).toEqual(STEPS.map((_, i) => i + 1));
    expect(events.filter((e) => e.reason === "Promoted")).toHaveLength(1);
    expect(events.filter((e) => e.reason === "Succeeded")).toHaveLength(1);
  } else {
    expect(o.status?.canaryWeight).toBe(0);
    expect(started, `${name} StepStarted Events`).toEqual(STEPS.slice(0, HUMAN_STEP + 1).map((_, i) => i + 1));
    // An abort is two transitions, each one Event: RollingBack, then RolledBack.
    expect(events.filter((e) => e.reason === "Aborted").map((e) => e.message.split(":")[0]!.slice(0, 12)).sort()).toEqual(["Rolled back ", "Rolling back"]);
  }
}

describe("controller SIGKILLed at seeded random points", () => {
  it(`${KILLS} kills over rollouts with timed pauses, a promote and an abort: right outcomes, no step twice, no Event lost or doubled`, async () => {
    try {
      await killDrill();
    } finally {
      await killAll();
    }
  }, 1_800_000);
});

/** Waves of two rollouts, the controller restarted and SIGKILLed at seeded moments until KILLS kills. */
async function killDrill(): Promise<void> {
  const random = seededRandom(SEED);
  const kills: { delayMs: number; lastLog: string; inWindow: boolean }[] = [];
  const restartMs: number[] = [];
  let wave = 0;
  while (kills.length < KILLS) {
    wave++;
    const w: Wave = { promoted: `promote-${wave}`, aborted: `abort-${wave}`, promoteValue: `step-chaos${wave}`, abortValue: `chaos${wave}` };
    const hp = followStatus(client, ns, w.promoted);
    const ha = followStatus(client, ns, w.aborted);
    histories.push(hp, ha);
    apply(w.promoted);
    apply(w.aborted);
    const actor = human(w);
    const done = () => terminal(hp.last) && terminal(ha.last);
    while (!done()) {
      const t0 = Date.now();
      const ctl = startController({ AIROLLOUT_FAILPOINT: "after-events=300" });
      await ctl.waitForLog("leadership", (l) => l.msg === "became leader", LEADERSHIP_WAIT_MS);
      restartMs.push(Date.now() - t0);
      if (kills.length >= KILLS) {
        await waitFor(`wave ${wave} finished`, () => done(), 120_000, 200);
        await ctl.stop("SIGTERM");
        break;
      }
      const delayMs = Math.round(200 + random() * 2300);
      await sleep(delayMs);
      if (done()) {
        await ctl.stop("SIGTERM");
        break;
      }
      const last = ctl.lines.filter((l) => l.level !== "stderr").at(-1);
      await ctl.stop("SIGKILL");
      kills.push({ delayMs, lastLog: last?.msg ?? "", inWindow: last?.msg === "failpoint after-events reached" });
    }
    actor.stop();
    hp.stop();
    ha.stop();
    await checkRollout(w.promoted, hp, "Succeeded");
    await checkRollout(w.aborted, ha, "RolledBack");
    expect((await get(w.promoted)).status?.handled?.promote).toBe(w.promoteValue);
    expect((await get(w.aborted)).status?.handled?.abort).toBe(w.abortValue);
  }
  const inWindow = kills.filter((k) => k.inWindow).length;
  const sorted = [...restartMs].sort((a, b) => a - b);
  console.log(
    `chaos (seed ${SEED}): ${kills.length} SIGKILLs over ${wave} waves of 2 rollouts; ${inWindow} landed between a pass's Events and its status write; ` +
      `restart to leadership ${secs(sorted[0]!)} min, ${secs(sorted[Math.floor(sorted.length / 2)]!)} median, ${secs(sorted.at(-1)!)} max`,
  );
  expect(kills).toHaveLength(KILLS);
}

describe("API server and etcd restarted under load", () => {
  let gateway: GatewayProcess | undefined;
  const backends: TestBackend[] = [];

  afterAll(async () => {
    await gateway?.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  it("rollouts in flight finish without a step twice, the controller stays up, the gateway keeps answering from its cache", async () => {
    const stable = await startBackend("stable");
    const candidate = await startBackend("candidate");
    backends.push(stable, candidate);
    gateway = new GatewayProcess({ kubeconfig: kubeconfig(), namespace: ns, id: `chaos-${ns}-gateway` });
    await gateway.ready();
    const ctl = startController();
    await ctl.waitForLog("leadership", (l) => l.msg === "became leader", LEADERSHIP_WAIT_MS);

    const steps = [{ setWeight: 20 }, { pause: { duration: "4s" } }, { setWeight: 50 }, { pause: { duration: "4s" } }, { setWeight: 100 }];
    const names = Array.from({ length: 8 }, (_, i) => `load-${i}`);
    const hs = names.map((n) => followStatus(client, ns, n, 200));
    histories.push(...hs);
    for (const n of names) apply(n, steps, "http://127.0.0.1:9");
    // One rollout routes real backends: its webhooks must keep being answered while the API
    // server is away (the gateway routes from the AIRollouts it last saw).
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "routed", namespace: ns }, spec: { stable: { version: "v1", endpoint: stable.url }, candidate: { version: "v2", endpoint: candidate.url }, strategy: { steps: [{ setWeight: 30 }, { pause: {} }] } } }));
    await gateway.knows(ns, "routed");
    await waitFor("routed at its pause", async () => (await get("routed")).status?.phase === "Paused", 60_000);
    const traffic = startTraffic({ url: gateway.hookUrl(ns, "routed"), ratePerSecond: 20, maxRequests: 100_000, maxDurationMs: 10 * 60_000, timeoutMs: 5000 });

    await waitFor("every rollout under way", async () => hs.every((h) => (h.last?.status?.currentStep ?? 0) >= 1), 60_000);
    const t0 = Date.now();
    await restartComponent("kube-apiserver", { dir: inject("devDir"), downtimeMs: 1000 });
    const apiBack = Date.now();
    await restartComponent("etcd", { dir: inject("devDir"), downtimeMs: 1000 });
    const etcdBack = Date.now();
    // Recovery: the first status write any rollout gets after both are back.
    const writes = () => hs.reduce((n, h) => n + h.seen.filter((s) => s.at > etcdBack).length, 0);
    await waitFor("a status write after the restarts", () => writes() > 0, 60_000, 100);
    const recovered = Date.now() - etcdBack;
    await waitFor("every load rollout Succeeded", () => hs.every((h) => h.last?.status?.phase === "Succeeded"), 180_000, 250);
    const report = await traffic.stop();
    for (const h of hs) h.stop();

    console.log(`control plane restarts: kube-apiserver down and back in ${secs(apiBack - t0)}, etcd in ${secs(etcdBack - apiBack)}; first status write ${secs(recovered)} after; gateway answers during it: ${JSON.stringify(report.statuses)}, ${report.failed} without an answer`);
    expect(ctl.exited, "the controller survived the restarts").toBe(false);
    for (const [i, h] of hs.entries()) expect(historyProblems(h.seen, new Map([[1, 4000], [3, 4000]])), names[i]).toEqual([]);
    for (const n of names) expect(duplicateEvents(await eventsOf(client(), ns, n)), n).toEqual([]);
    // Every webhook got the backend's answer: none lost while the API server was away.
    expect(report.failed).toBe(0);
    expect(Object.keys(report.statuses)).toEqual(["200"]);
    expect(report.sent).toBeGreaterThan(0);
    await ctl.stop();
  }, 400_000);
});
