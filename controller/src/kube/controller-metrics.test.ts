/**
 * The controller's per-rollout series end with the rollout: the Controller runs on a fake API
 * client (a list, a watch whose events the test sends), reconciles a rollout until it exports its
 * phase and weight, then the watch reports it deleted.
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { AIRollout } from "../api/schema.ts";
import { NoopEnvironments } from "../environments/noop.ts";
import { createControllerMetrics, type ControllerMetrics } from "../telemetry/metrics.ts";
import type { KubeClient } from "./client.ts";
import { Controller } from "./controller.ts";

type WatchCallback = (type: string, obj: unknown) => void;

/** Just enough of KubeClient for one rollout's passes; writes are echoed with a newer resourceVersion. */
function fakeClient(rollouts: AIRollout[]) {
  const watches = new Map<string, WatchCallback>();
  let rv = 10;
  const echo = (_path: string, body: unknown) => {
    const o = structuredClone(body) as { metadata?: { resourceVersion?: string } };
    if (o.metadata) o.metadata.resourceVersion = String(++rv);
    return Promise.resolve(o);
  };
  const client = {
    get: async (path: string) => ({ metadata: { resourceVersion: "1" }, items: path.includes("/airollouts") ? rollouts.map((r) => structuredClone(r)) : [] }),
    watcher: () => ({
      watch: async (path: string, _opts: unknown, cb: WatchCallback) => {
        watches.set(path, cb);
        return new AbortController();
      },
    }),
    create: echo,
    replace: echo,
    patch: echo,
  } as unknown as KubeClient;
  return { client, watches };
}

function rollout(name: string): AIRollout {
  return {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace: "ns", uid: `uid-${name}`, generation: 1, resourceVersion: "1" },
    spec: { stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" }, candidate: { version: "v2", endpoint: "http://127.0.0.1:9/candidate" }, strategy: { steps: [{ setWeight: 20 }, { pause: {} }] } },
  } as AIRollout;
}

/** The series of the two per-rollout metrics, as `metric name{labels}` texts. */
async function rolloutSeries(m: ControllerMetrics): Promise<string[]> {
  const out: string[] = [];
  for (const metric of [m.rolloutPhase, m.rolloutCanaryWeight]) {
    const { name, values } = await metric.get();
    for (const v of values) out.push(`${name}${JSON.stringify(v.labels)}`);
  }
  return out.sort();
}

async function until<T>(what: string, f: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("Controller metrics of a deleted rollout", () => {
  it("removes the deleted rollout's phase and canary weight series, and keeps the other rollout's", async () => {
    const metrics = createControllerMetrics();
    const { client, watches } = fakeClient([rollout("gone"), rollout("kept")]);
    const c = new Controller({ client, log: pino({ level: "silent" }), metrics, environments: new NoopEnvironments(), measurements: { measure: async () => ({}) }, identity: "t", namespace: "ns" });
    c.start();
    try {
      const series = await until("both rollouts' series", async () => {
        const s = await rolloutSeries(metrics);
        return s.filter((x) => x.includes('"name":"gone"')).length === 2 && s.filter((x) => x.includes('"name":"kept"')).length === 2 ? s : undefined;
      });
      expect(series.filter((x) => x.includes('"name":"gone"'))).toEqual([
        'airollout_controller_rollout_canary_weight{"namespace":"ns","name":"gone"}',
        expect.stringMatching(/^airollout_controller_rollout_phase\{"namespace":"ns","name":"gone","phase":"\w+"\}$/),
      ]);
      const watch = await until("the rollouts' watch", async () => [...watches].find(([path]) => path.includes("/airollouts"))?.[1]);
      watch("DELETED", { ...rollout("gone"), metadata: { ...rollout("gone").metadata, resourceVersion: "100" } });
      const after = await rolloutSeries(metrics);
      expect(after.filter((x) => x.includes('"name":"gone"'))).toEqual([]);
      expect(after.filter((x) => x.includes('"name":"kept"')).length).toBe(2);
      expect(await metrics.registry.metrics()).not.toContain('name="gone"');
    } finally {
      await c.stop();
    }
  });
});
