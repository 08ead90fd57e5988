/**
 * Chaos drills for the gateway process: Redis stopped under idempotent traffic, a shadow that
 * hangs, a candidate that refuses connections, a stable that answers 500s, a model throttled
 * past `traffic.timeout`. Given real traffic, When the fault starts, Then the gateway does what
 * its README documents, every answer is accounted for in its metrics (nothing lost), and once
 * the fault ends the time until normal answers return is measured and printed.
 *
 * No controller runs here: each rollout's status (weight, shadow on) is written by the test,
 * and the gateway process watches the AIRollouts through the real API server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { Status } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { startBackend, type TestBackend } from "../support/backends.ts";
import { offerLoad, quantile, secs, type Answered } from "../support/chaos.ts";
import { GatewayProcess } from "../support/loop.ts";
import { startRedis, type TestRedis } from "../support/redis.ts";
import { client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let ns: string;
let gateway: GatewayProcess;
const backends: TestBackend[] = [];
let redis: TestRedis | undefined;

beforeAll(async () => {
  ns = createNamespace("gwchaos");
  gateway = new GatewayProcess({ kubeconfig: kubeconfig(), namespace: ns, id: `gwchaos-${ns}` });
  await gateway.ready();
});

afterAll(async () => {
  await gateway?.stop();
  await Promise.all(backends.map((b) => b.close()));
  await redis?.dispose();
});

async function backend(name: string, port = 0): Promise<TestBackend> {
  const b = await startBackend(name, undefined, port);
  backends.push(b);
  return b;
}

/** Creates a rollout and writes the status the gateway routes by (no controller runs here). */
async function rollout(name: string, stable: string, candidate: string, spec: Record<string, unknown>, status: Status): Promise<string> {
  const obj = { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec: { stable: { version: "v1", endpoint: stable }, candidate: { version: "v2", endpoint: candidate }, strategy: { steps: [{ setWeight: 50 }] }, ...spec } };
  kubectlOk(["apply", "-f", "-"], stringify(obj));
  await client().patch(`${rolloutsPath(ns)}/${name}/status`, { status }, "merge");
  await gateway.knows(ns, name);
  await waitFor(`gateway follows ${name}'s status`, async () => ((await gateway.rollout(ns, name)) !== undefined), 10_000);
  return gateway.hookUrl(ns, name);
}

/** Sum of a metric's samples whose labels include every given pair, read from the gateway. */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const want = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (want) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

function count(answers: readonly Answered[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const k = a.reason ? `${a.status} ${a.reason}` : `${a.status}${a.version ? ` ${a.version}` : ""}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** Posts until `ok` holds for an answer; returns the milliseconds it took. */
async function recovery(url: string, ok: (a: Answered) => boolean, timeoutMs = 60_000): Promise<number> {
  const t0 = Date.now();
  await waitFor("recovery", async () => {
    const { answers } = await offerLoad({ url, ratePerSecond: 20, durationMs: 100 });
    return answers.some(ok);
  }, timeoutMs, 0);
  return Date.now() - t0;
}

describe("gateway under faults", () => {
  it("Redis stopped under idempotent traffic: fail closed (503 idempotency_store + Retry-After), never a second forward; a sender honouring Retry-After gets every webhook through exactly once", async () => {
    redis = await startRedis();
    const stable = await backend("stable");
    const url = await rollout("idem", stable.url, "http://127.0.0.1:9", { traffic: { idempotency: { store: "redis", redisUrl: redis.url } } }, { phase: "Progressing", canaryWeight: 0 });
    const KEYS = 120;
    const results = new Map<number, number[]>();
    let outageStarted = 0;
    let outageEnded = 0;
    let firstOkAfter = 0;
    // Each key is sent until a 200, waiting what Retry-After says (as a webhook sender would).
    const sender = async (key: number): Promise<void> => {
      const statuses: number[] = [];
      results.set(key, statuses);
      for (let i = 0; i < 40; i++) {
        const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": `k-${key}` }, body: JSON.stringify({ id: key }), signal: AbortSignal.timeout(15_000) });
        const body = (await res.json().catch(() => ({}))) as { error?: string };
        statuses.push(res.status);
        if (res.status === 200) {
          if (outageEnded && !firstOkAfter) firstOkAfter = Date.now();
          return;
        }
        expect(res.status).toBe(503);
        expect(body.error).toBe("idempotency_store");
        const wait = Number(res.headers.get("retry-after"));
        expect(wait).toBeGreaterThanOrEqual(1);
        await sleep(Math.min(wait, 2) * 1000);
      }
    };
    const running: Promise<void>[] = [];
    for (let k = 0; k < KEYS; k++) {
      if (k === 30) {
        await redis.kill();
        outageStarted = Date.now();
      }
      if (k === 80) {
        await redis.start();
        outageEnded = Date.now();
      }
      running.push(sender(k));
      await sleep(50);
    }
    await Promise.all(running);
    const forwarded = new Map<string, number>();
    for (const r of stable.requests) {
      const k = String(r.headers["idempotency-key"]);
      forwarded.set(k, (forwarded.get(k) ?? 0) + 1);
    }
    const refusals = [...results.values()].reduce((n, s) => n + s.filter((x) => x === 503).length, 0);
    console.log(`redis outage ${secs(outageEnded - outageStarted)}: ${refusals} answers 503 idempotency_store; first 200 ${secs(firstOkAfter - outageEnded)} after Redis was back; ${KEYS} keys, ${stable.requests.length} forwards`);
    expect(refusals).toBeGreaterThan(0);
    expect([...results.values()].every((s) => s.at(-1) === 200)).toBe(true);
    // Exactly once: every key forwarded, none twice, across the outage.
    expect(forwarded.size).toBe(KEYS);
    expect([...forwarded.values()].every((n) => n === 1)).toBe(true);
    expect(await metric("airollout_rejected_total", { rollout: "idem", reason: "idempotency_store" })).toBe(refusals);
  }, 180_000);

  it("a shadow that hangs: primary answers unchanged, every sampled copy compared or counted as a timeout drop; comparisons resume when it answers again", async () => {
    const stable = await backend("stable");
    const shadow = await backend("shadow");
    const url = await rollout("hang", stable.url, shadow.url, { shadow: { sampleRate: 1, timeout: "1s", maxConcurrency: 8, queueSize: 64 } }, { phase: "ShadowTesting", canaryWeight: 0, shadowEnabled: true });
    const baseline = await offerLoad({ url, ratePerSecond: 10, durationMs: 2000 });
    shadow.mode = "hang";
    const { answers } = await offerLoad({ url, ratePerSecond: 20, durationMs: 8000 });
    const p99 = quantile(answers.map((a) => a.ms), 0.99);
    // The queued copies still run into the shadow timeout one batch at a time: wait until every
    // copy is accounted for (the queue drains within queueSize / maxConcurrency timeouts).
    const labels = { rollout: "hang" };
    const stableAnswers = await metric("airollout_requests_total", { ...labels, version: "v1", code: "200" });
    const settled = await waitFor("every copy compared or dropped", async () => {
      const compared = await metric("airollout_shadow_comparisons_total", labels);
      const dropped = await metric("airollout_mirror_dropped_total", labels);
      return compared + dropped >= stableAnswers ? { compared, dropped } : undefined;
    }, 30_000, 250);
    const { compared, dropped } = settled;
    const timeouts = await metric("airollout_mirror_dropped_total", { ...labels, reason: "timeout" });
    shadow.mode = "ok";
    const t0 = Date.now();
    await waitFor("a comparison after the shadow answers again", async () => {
      await offerLoad({ url, ratePerSecond: 20, durationMs: 100 });
      return (await metric("airollout_shadow_comparisons_total", labels)) > compared;
    }, 30_000, 0);
    const resumed = Date.now() - t0;
    console.log(`hanging shadow: primary ${JSON.stringify(count(answers))} p50 ${quantile(answers.map((a) => a.ms), 0.5).toFixed(0)} ms p99 ${p99.toFixed(0)} ms (before the hang ${quantile(baseline.answers.map((a) => a.ms), 0.99).toFixed(0)} ms); ${stableAnswers} stable answers = ${compared} compared + ${dropped} dropped (${timeouts} timeouts); comparisons resumed ${secs(resumed)} after it answered again`);
    expect(answers.every((a) => a.status === 200 && a.version === "v1")).toBe(true);
    expect(timeouts).toBeGreaterThan(0);
    // Nothing lost: each of the stable's answers was mirrored and either compared or dropped with a reason.
    expect(compared + dropped).toBe(stableAnswers);
    // The hang does not reach the primary: had answers waited for the shadow, each would take
    // its 1 s timeout; the median stays well below it (p99 is printed: this machine is noisy).
    expect(quantile(answers.map((a) => a.ms), 0.5)).toBeLessThan(1000);
  }, 120_000);

  it("a candidate that refuses connections: at most consecutiveFailures 502s, then the stable answers for it; it serves again once it listens", async () => {
    const stable = await backend("stable");
    const candidate = await backend("candidate");
    const port = candidate.port;
    await candidate.close();
    const url = await rollout("refuse", stable.url, `http://127.0.0.1:${port}`, { traffic: { circuitBreaker: { consecutiveFailures: 3, openDuration: "2s" } } }, { phase: "Progressing", canaryWeight: 50 });
    const { answers } = await offerLoad({ url, ratePerSecond: 20, durationMs: 8000 });
    const c = count(answers);
    const failed = answers.filter((a) => a.status === 502).length;
    // 3 to open, then one half-open probe per 2 s open period that finds it still refusing.
    const probes = Math.ceil(8000 / 2000) + 1;
    expect(failed).toBeLessThanOrEqual(3 + probes);
    expect(answers.filter((a) => a.status !== 200 && a.status !== 502)).toEqual([]);
    expect(answers.filter((a) => a.status === 200).every((a) => a.version === "v1")).toBe(true);
    expect(await metric("airollout_requests_total", { rollout: "refuse", version: "v2", code: "502" })).toBe(failed);
    const again = await backend("candidate-again", port);
    const back = await recovery(url, (a) => a.status === 200 && a.version === "v2");
    console.log(`refusing candidate: ${JSON.stringify(c)}; the candidate served again ${secs(back)} after it listened (openDuration 2 s)`);
    expect(again.hits).toBeGreaterThan(0);
  }, 120_000);

  it("a stable that answers 500s: passed through until the circuit opens, then 503 circuit_open + Retry-After without forwarding; 200s again once it heals", async () => {
    const stable = await backend("stable");
    stable.mode = "fail";
    const url = await rollout("fivehundred", stable.url, "http://127.0.0.1:9", { traffic: { circuitBreaker: { consecutiveFailures: 3, openDuration: "2s" } } }, { phase: "Progressing", canaryWeight: 0 });
    const { answers } = await offerLoad({ url, ratePerSecond: 20, durationMs: 8000 });
    const c = count(answers);
    const passed = answers.filter((a) => a.status === 500).length;
    const open = answers.filter((a) => a.status === 503);
    expect(answers.filter((a) => a.status !== 500 && a.status !== 503)).toEqual([]);
    expect(open.every((a) => a.reason === "circuit_open" && Number(a.retryAfter) >= 1)).toBe(true);
    expect(passed).toBeLessThanOrEqual(3 + Math.ceil(8000 / 2000) + 1);
    // Shed, not forwarded: the stable saw only the 500s it gave.
    expect(stable.hits).toBe(passed);
    expect(await metric("airollout_requests_total", { rollout: "fivehundred", version: "v1", code: "503" })).toBe(open.length);
    stable.mode = "ok";
    const back = await recovery(url, (a) => a.status === 200);
    console.log(`stable answering 500s: ${JSON.stringify(c)}; 200s again ${secs(back)} after it healed (openDuration 2 s)`);
  }, 120_000);

  it("a model throttled past traffic.timeout: 504 backend_timeout at the timeout, counted; normal answers as soon as it is fast again", async () => {
    const stable = await backend("stable");
    stable.mode = "slow";
    stable.slowMs = 3000;
    const url = await rollout("throttled", stable.url, "http://127.0.0.1:9", { traffic: { timeout: "1s" } }, { phase: "Progressing", canaryWeight: 0 });
    const { answers } = await offerLoad({ url, ratePerSecond: 10, durationMs: 5000 });
    const c = count(answers);
    expect(answers.every((a) => a.status === 504 && a.reason === "backend_timeout")).toBe(true);
    // Answered at the timeout, not when the model finally answers.
    expect(quantile(answers.map((a) => a.ms), 0.5)).toBeLessThan(2500);
    expect(await metric("airollout_requests_total", { rollout: "throttled", version: "v1", code: "504" })).toBe(answers.length);
    stable.mode = "ok";
    const back = await recovery(url, (a) => a.status === 200);
    console.log(`throttled model (3 s answers, 1 s timeout): ${JSON.stringify(c)}, p50 ${quantile(answers.map((a) => a.ms), 0.5).toFixed(0)} ms; 200s again ${secs(back)} after it was fast`);
  }, 120_000);
});
