/**
 * Backpressure: the gateway process in front of a backend with a known capacity (2 workers,
 * 250 ms each: 8 requests/s), offered 3x that capacity open-loop. Given per-backend caps
 * (spec.traffic.concurrency: 2 in flight, 2 queued, 1 s queue timeout), When the load arrives,
 * Then the excess is shed at once with 503 `overloaded` and Retry-After, the admitted requests
 * keep the backend's own latency plus at most one queue's worth (bound stated below), the backend
 * never sees more than its cap, the gateway's memory stays bounded, and it answers normally as
 * soon as the load stops.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { capacityResponder, startBackend, type TestBackend } from "../support/backends.ts";
import { offerLoad, quantile, rssBytes, secs } from "../support/chaos.ts";
import { GatewayProcess } from "../support/loop.ts";
import { client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

const WORKERS = 2;
const LATENCY_MS = 250;
const CAPACITY = (WORKERS * 1000) / LATENCY_MS;
const OFFERED = 3 * CAPACITY;
const MAX_QUEUED = 2;
/**
 * The stated bound on an admitted request's p99: the backend's own p99 (its arrival-to-answer
 * time, measured by the backend in the same run), plus the path's own p99 (the shed requests',
 * which never reach the backend: the gateway's and the load generator's own delays under this
 * load), plus the wait of a full queue (MAX_QUEUED / WORKERS backend latencies), plus 1 s of
 * slack for this shared, heavily loaded machine.
 */
const QUEUE_WAIT_MS = (MAX_QUEUED / WORKERS) * LATENCY_MS;
const SLACK_MS = 1000;
/** The gateway's RSS may grow this much over its idle size under the overload, and no more. */
const RSS_GROWTH_BOUND = 150 * 1024 * 1024;

let ns: string;
let gateway: GatewayProcess;
let backend: TestBackend;
const capacity = capacityResponder({ concurrency: WORKERS, latencyMs: LATENCY_MS });

beforeAll(async () => {
  ns = createNamespace("backpressure");
  backend = await startBackend("stable", capacity.respond);
  const spec = {
    stable: { version: "v1", endpoint: backend.url },
    candidate: { version: "v2", endpoint: "http://127.0.0.1:9" },
    traffic: { timeout: "10s", concurrency: { maxInFlight: WORKERS, maxQueued: MAX_QUEUED, queueTimeout: "1s" } },
    strategy: { steps: [{ setWeight: 50 }] },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bp", namespace: ns }, spec }));
  // No controller here: the status says every request goes to the stable.
  await client().patch(`${rolloutsPath(ns)}/bp/status`, { status: { phase: "Progressing", canaryWeight: 0 } }, "merge");
  gateway = new GatewayProcess({ kubeconfig: kubeconfig(), namespace: ns, id: `backpressure-${ns}` });
  await gateway.ready();
  await gateway.knows(ns, "bp");
});

afterAll(async () => {
  await gateway?.stop();
  await backend?.close();
});

async function heapUsed(): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("airollout_gateway_process_nodejs_heap_size_used_bytes "));
  return Number(line?.split(" ")[1]);
}

describe("backpressure at 3x a backend's capacity", () => {
  it("sheds the excess with 503 + Retry-After; admitted p99 within the backend's own plus the stated bound; memory bounded; no crash", async () => {
    const url = gateway.hookUrl(ns, "bp");
    // Warm up at a tenth of capacity: the idle figures and the backend's own latency.
    const warm = await offerLoad({ url, ratePerSecond: CAPACITY / 10, durationMs: 3000 });
    expect(warm.answers.every((a) => a.status === 200)).toBe(true);
    const ownP99 = quantile(warm.answers.map((a) => a.ms), 0.99);
    const pid = gateway.proc.pid!;
    const idleRss = rssBytes(pid);
    const samples: { rss: number; heap: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push({ rss: rssBytes(pid), heap: await heapUsed().catch(() => NaN) });
        await new Promise((r) => setTimeout(r, 500));
      }
    })();

    const servedBefore = capacity.stats.served;
    capacity.stats.serviceMs.length = 0;
    const { answers, notSent } = await offerLoad({ url, ratePerSecond: OFFERED, durationMs: 20_000 });
    sampling = false;
    await sampler;
    const backendP99 = quantile(capacity.stats.serviceMs, 0.99);

    const by = (s: number) => answers.filter((a) => a.status === s);
    const admitted = by(200);
    const shed = by(503);
    const p99 = quantile(admitted.map((a) => a.ms), 0.99);
    const shedP99 = quantile(shed.map((a) => a.ms), 0.99);
    const bound = backendP99 + shedP99 + QUEUE_WAIT_MS + SLACK_MS;
    const maxRss = Math.max(...samples.map((s) => s.rss));
    const heaps = samples.map((s) => s.heap).filter(Number.isFinite);
    const statuses: Record<number, number> = {};
    for (const a of answers) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    console.log(
      `backpressure: offered ${OFFERED} req/s for 20 s to a ${CAPACITY} req/s backend (${WORKERS} workers x ${LATENCY_MS} ms): answers ${JSON.stringify(statuses)}, ${notSent} not sent; ` +
        `admitted p50 ${quantile(admitted.map((a) => a.ms), 0.5).toFixed(0)} ms p99 ${p99.toFixed(0)} ms (bound ${bound.toFixed(0)} ms: the backend's own p99 ${backendP99.toFixed(0)} + the shed requests' p99 ${shedP99.toFixed(0)} + a full queue's wait ${QUEUE_WAIT_MS} + ${SLACK_MS} slack; ${ownP99.toFixed(0)} ms through the gateway at 10% load); ` +
        `backend saw at most ${capacity.stats.maxOutstanding} at once; ` +
        `gateway RSS idle ${(idleRss / 2 ** 20).toFixed(0)} MiB, max ${(maxRss / 2 ** 20).toFixed(0)} MiB; heap used ${(Math.min(...heaps) / 2 ** 20).toFixed(0)}-${(Math.max(...heaps) / 2 ** 20).toFixed(0)} MiB`,
    );

    // Every request got an answer: the backend's, or a refusal that says when to come back.
    expect(answers.length + notSent).toBe(OFFERED * 20);
    expect(by(0)).toHaveLength(0);
    expect(answers.filter((a) => a.status !== 200 && a.status !== 503)).toEqual([]);
    expect(shed.length).toBeGreaterThan(answers.length / 3);
    expect(shed.every((a) => a.reason === "overloaded" && Number(a.retryAfter) >= 1)).toBe(true);
    // Every admitted request was served once, and the backend was never asked for more than the cap.
    expect(admitted.length).toBeGreaterThan(0);
    expect(capacity.stats.served - servedBefore).toBe(admitted.length);
    expect(capacity.stats.maxOutstanding).toBeLessThanOrEqual(WORKERS);
    expect(p99).toBeLessThan(bound);
    expect(maxRss - idleRss).toBeLessThan(RSS_GROWTH_BOUND);
    expect(gateway.proc.exitCode).toBeNull();

    // Recovery: the first request after the load is answered by the backend.
    const t0 = Date.now();
    await waitFor("a 200 after the overload", async () => (await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: '{"id":1}' })).status === 200, 30_000, 50);
    console.log(`backpressure: first 200 ${secs(Date.now() - t0)} after the load stopped`);
  }, 180_000);
});
