/**
 * The webhook gateway against the real local control plane: AIRollouts created with kubectl,
 * status written through the status subresource (the controller is not running here), real
 * node backends on loopback, a real redis-server for the multi-replica case.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Status } from "../../controller/src/api/schema.ts";
import { Gateway } from "../../controller/src/gateway/gateway.ts";
import { replay } from "../../controller/src/gateway/quarantine.ts";
import { signGithub, signStripe } from "../../controller/src/gateway/signature.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { startBackend, refusingUrl, type TestBackend } from "../support/backends.ts";
import { startRedis, type TestRedis } from "../support/redis.ts";
import { CLI, NODE, client, createNamespace, kubeconfig, kubectl, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let stateDir: string;
let gateway: Gateway;
let base: string;
const logLines: string[] = [];
const backends: TestBackend[] = [];
const children: ChildProcess[] = [];

async function backend(name: string, respond?: Parameters<typeof startBackend>[1]): Promise<TestBackend> {
  const b = await startBackend(name, respond);
  backends.push(b);
  return b;
}

/** Creates (or updates) an AIRollout with endpoint versions through kubectl. */
function applyRollout(name: string, stableUrl: string, candidateUrl: string, spec: Record<string, unknown> = {}): void {
  const obj = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace: ns },
    spec: { stable: { version: "v1", endpoint: stableUrl }, candidate: { version: "v2", endpoint: candidateUrl }, strategy: { steps: [{ setWeight: 10 }, { setWeight: 100 }] }, ...spec },
  };
  kubectlOk(["apply", "-f", "-"], JSON.stringify(obj));
}

/** Writes status through the status subresource, as the controller would. */
async function setStatus(name: string, status: Status): Promise<void> {
  await client().patch(`${rolloutsPath(ns)}/${name}/status`, { status }, "merge");
}

/** Waits until the in-process gateway has seen the rollout in the wanted state. */
async function seen(name: string, pred: (r: NonNullable<ReturnType<Gateway["rollout"]>>) => boolean = () => true): Promise<void> {
  await waitFor(`gateway sees ${name}`, () => {
    const r = gateway.rollout(ns, name);
    return r !== undefined && pred(r);
  }, 20_000, 25);
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
  ms: number;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const raw = typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const t0 = performance.now();
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: raw });
  const text = await res.text();
  const ms = performance.now() - t0;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json, ms };
}

const hook = (name: string, path = "/events") => `${base}/hooks/${ns}/${name}${path}`;

async function metric(line: string, from = base): Promise<number> {
  const text = await (await fetch(`${from}/metrics`)).text();
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

/** Runs `n` requests with at most `concurrency` in flight. */
async function load<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

function p99(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!;
}

beforeAll(async () => {
  ns = createNamespace("gw");
  stateDir = mkdtempSync(join(tmpdir(), "airollout-gw-it-"));
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l) logLines.push(l);
      cb();
    },
  });
  gateway = new Gateway({ log: pino({ level: "debug" }, sink), client: client(), namespace: ns, stateDir, secretTtlMs: 1000 });
  gateway.start();
  const { port } = await gateway.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${port}`;
  await waitFor("gateway synced", () => gateway.synced, 20_000, 25);
});

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await gateway?.stop();
  await Promise.all(backends.map((b) => b.close()));
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

describe("routing", () => {
  it("answers 404 with a reason for an unknown rollout and for its diffs", async () => {
    const res = await post(hook("nope"), { a: 1 });
    expect(res.status).toBe(404);
    expect(res.json).toMatchObject({ error: "unknown_rollout", message: expect.stringContaining(`no AIRollout ${ns}/nope is watched by this gateway`) });
    const diffs = await fetch(`${base}/api/rollouts/${ns}/nope/diffs`);
    expect(diffs.status).toBe(404);
    expect(await metric('airollout_rejected_total{rollout="(unknown)",namespace="(unknown)",reason="unknown_rollout",code="404"}')).toBeGreaterThanOrEqual(1);
  });

  it("quarantines a webhook sent before its AIRollout exists; replaying it once the rollout exists forwards it", async () => {
    const res = await post(hook("late", "/orders?x=1"), { order: 42, email: "erin@example.com" }, { "x-request-id": "late-1" });
    expect(res.status).toBe(404);
    expect((res.json as { message: string }).message).toContain("quarantined for replay");
    const row = gateway.quarantine.list({ namespace: ns, name: "late" })[0]!;
    expect(row).toMatchObject({ reason: "unknown_rollout", path: "/orders?x=1", requestId: "late-1", truncated: false });
    // The row shows the payload masked; the exact bytes are kept apart for the replay.
    expect(JSON.parse(row.body.toString())).toEqual({ order: 42, email: "[EMAIL]" });
    expect(JSON.parse(gateway.quarantine.replayCopy(row.id)!.body.toString())).toEqual({ order: 42, email: "erin@example.com" });
    // URL text never becomes a metric label.
    expect(await metric('airollout_quarantined_total{rollout="(unknown)",namespace="(unknown)",reason="unknown_rollout"}')).toBeGreaterThanOrEqual(1);

    const stable = await backend("late-stable");
    const cand = await backend("late-cand");
    applyRollout("late", stable.url, cand.url);
    await seen("late");
    const replayed = await replay(gateway.quarantine, row.id, base);
    expect(replayed.status).toBe(200);
    expect(stable.requests.at(-1)).toMatchObject({ url: "/orders?x=1", json: { order: 42, email: "erin@example.com" } });
    expect(stable.requests.at(-1)!.headers["x-airollout-replay-of"]).toBe(String(row.id));
  });

  it("a flood of webhooks to made-up rollouts spends a bounded quarantine budget; the rest are answered and counted, not stored", async () => {
    const before = gateway.quarantine.count();
    const skippedBefore = await metric('airollout_quarantine_skipped_total{reason="unknown_rollout"}');
    const answers = await load(150, 10, (i) => post(hook(`made-up-${i}`), { i }));
    expect(answers.every((a) => a.status === 404)).toBe(true);
    const stored = gateway.quarantine.count() - before;
    const skipped = (await metric('airollout_quarantine_skipped_total{reason="unknown_rollout"}')) - skippedBefore;
    // A burst of 100 minus what the earlier tests used, plus 5/s refill while this runs.
    expect(stored).toBeLessThanOrEqual(100 + 5 * 10);
    expect(skipped).toBeGreaterThan(0);
    expect(stored + skipped).toBe(150);
  });

  it("image versions without environment URLs answer 503 naming the reason; a status URL makes them routable", async () => {
    const stable = await backend("img-stable");
    kubectlOk(["apply", "-f", "-"], JSON.stringify({
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIRollout",
      metadata: { name: "images", namespace: ns },
      spec: { stable: { version: "v1", image: "registry/x:v1" }, candidate: { version: "v2", image: "registry/x:v2" }, strategy: { steps: [{ setWeight: 10 }] } },
    }));
    await seen("images");
    const res = await post(hook("images"), { a: 1 });
    expect(res.status).toBe(503);
    expect(res.json).toMatchObject({ error: "no_backend" });
    expect((res.json as { message: string }).message).toContain("status.environments has no URL");
    await setStatus("images", { environments: { stable: { stack: "s", phase: "Ready", url: stable.url } } });
    await seen("images", (r) => r.stable.backend !== undefined);
    const ok = await post(hook("images"), { a: 1 });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-airollout-version")).toBe("v1");
  });

  it("passes the correlation id to the backend, answers with it and logs it on every line of the request", async () => {
    const stable = await backend("corr-stable");
    const cand = await backend("corr-cand");
    applyRollout("corr", stable.url, cand.url);
    await seen("corr");
    const res = await post(hook("corr", "/a/b?x=1"), { customer: "alice@example.com" }, { "x-request-id": "it-corr-1" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("it-corr-1");
    expect(stable.requests.at(-1)!.headers["x-request-id"]).toBe("it-corr-1");
    expect(stable.requests.at(-1)!.url).toBe("/a/b?x=1");
    const generated = await post(hook("corr"), { a: 1 }, { "x-request-id": "not a valid id" });
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const lines = logLines.filter((l) => l.includes("it-corr-1"));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ requestId: "it-corr-1", rollout: `${ns}/corr` });
  });
});

describe("routing edge cases", () => {
  it("answers 405 for other methods, 404 off the hooks path and 400 for a malformed escape, each JSON and counted", async () => {
    const get = await fetch(`${base}/hooks/${ns}/corr/events`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect(await get.json()).toMatchObject({ error: "method_not_allowed" });
    const short = await post(`${base}/hooks/${ns}`, { a: 1 });
    expect(short.status).toBe(404);
    expect(short.json).toMatchObject({ error: "not_found" });
    const bad = await post(`${base}/hooks/${ns}/corr/%E0%A4%A`, { a: 1 });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: "bad_request", message: expect.stringContaining("malformed %-escape") });
    expect(await metric('airollout_rejected_total{rollout="(unknown)",namespace="(unknown)",reason="bad_request",code="400"}')).toBeGreaterThanOrEqual(1);
  });
});

describe("usage", () => {
  it("counts tokens and cost per version from the default $.usage fields and from spec.traffic.usage paths and headers", async () => {
    const reply = (i: number) => ({ body: { answer: "ok", usage: { total_tokens: 100 + i, cost: 0.5 }, meta: { tokens: 7, price: 0.25 } } });
    const stable = await backend("usage-stable", (req) => reply((req.json as { i: number }).i));
    const cand = await backend("usage-cand", () => ({ headers: { "x-llm-tokens": "11" }, body: { meta: { tokens: 999, price: 1.5 } } }));
    applyRollout("usage-default", stable.url, cand.url);
    applyRollout("usage-custom", stable.url, cand.url, { traffic: { usage: { tokensHeader: "X-LLM-Tokens", tokensPath: "$.meta.tokens", costPath: "$.meta.price" } } });
    await seen("usage-default");
    await seen("usage-custom", (r) => r.usage.tokensHeader === "x-llm-tokens");
    await setStatus("usage-custom", { canaryWeight: 100 });
    await seen("usage-custom", (r) => r.weight === 100);
    for (let i = 0; i < 3; i++) expect((await post(hook("usage-default"), { i })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await post(hook("usage-custom"), { i })).status).toBe(200);
    const labels = (name: string, version: string) => `{rollout="${name}",namespace="${ns}",version="${version}"}`;
    // stable answered i = 0, 1, 2: 100 + 101 + 102 tokens, 3 x 0.5 cost.
    expect(await metric(`airollout_tokens_total${labels("usage-default", "v1")}`)).toBe(303);
    expect(await metric(`airollout_cost_total${labels("usage-default", "v1")}`)).toBe(1.5);
    // The candidate (weight 100) reports tokens in the configured header (it wins) and cost at the configured path.
    expect(await metric(`airollout_tokens_total${labels("usage-custom", "v2")}`)).toBe(22);
    expect(await metric(`airollout_cost_total${labels("usage-custom", "v2")}`)).toBe(3);
  });

  it("rejects a usage path that is not a field path at the API server, naming the field", () => {
    const obj = {
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIRollout",
      metadata: { name: "usage-bad", namespace: ns },
      spec: { stable: { version: "v1", endpoint: "http://127.0.0.1:1" }, candidate: { version: "v2", endpoint: "http://127.0.0.1:2" }, strategy: { steps: [{ setWeight: 10 }] }, traffic: { usage: { tokensPath: "usage.tokens" } } },
    };
    const r = kubectl(["apply", "-f", "-"], JSON.stringify(obj));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("spec.traffic.usage.tokensPath");
  });
});

describe("split", () => {
  it("sends canaryWeight percent to the candidate, sticky per tenant, and stays sticky as the weight grows", async () => {
    const stable = await backend("split-stable");
    const cand = await backend("split-cand");
    applyRollout("split", stable.url, cand.url, { traffic: { stickyBy: "header:x-tenant-id" } });
    await setStatus("split", { canaryWeight: 30 });
    await seen("split", (r) => r.weight === 30);

    const n = 600;
    const first = await load(n, 16, (i) => post(hook("split"), { i }, { "x-tenant-id": `tenant-${i}` }));
    const toCandidate = first.filter((r) => r.headers.get("x-airollout-version") === "v2").length;
    // Binomial(600, 0.3): mean 180, sd 11.2; 4 sd either way.
    expect(Math.abs(toCandidate - 180)).toBeLessThan(45);
    expect(cand.hits).toBe(toCandidate);
    expect(stable.hits).toBe(n - toCandidate);
    expect(first.every((r) => r.status === 200)).toBe(true);

    // Every tenant stays where it was while the weight holds...
    const again = await load(200, 16, (i) => post(hook("split"), { i }, { "x-tenant-id": `tenant-${i}` }));
    for (let i = 0; i < 200; i++) expect(again[i]!.headers.get("x-airollout-version")).toBe(first[i]!.headers.get("x-airollout-version"));

    // ...and a tenant on the candidate stays there when the weight grows.
    await setStatus("split", { canaryWeight: 60 });
    await seen("split", (r) => r.weight === 60);
    const grown = await load(200, 16, (i) => post(hook("split"), { i }, { "x-tenant-id": `tenant-${i}` }));
    for (let i = 0; i < 200; i++) if (first[i]!.headers.get("x-airollout-version") === "v2") expect(grown[i]!.headers.get("x-airollout-version")).toBe("v2");
    expect(grown.filter((r) => r.headers.get("x-airollout-version") === "v2").length).toBeGreaterThan(again.filter((r) => r.headers.get("x-airollout-version") === "v2").length);

    expect(await metric(`airollout_requests_total{rollout="split",namespace="${ns}",version="v2",code="200"}`)).toBe(cand.hits);
    expect(await metric(`airollout_request_duration_seconds_count{rollout="split",namespace="${ns}",version="v1"}`)).toBe(stable.hits);
  });
});

describe("shadow", () => {
  it("never hurts the primary: a hanging or refusing shadow leaves answers and p99 unchanged, drops are counted", async () => {
    const stable = await backend("sh-stable", (req) => ({ body: { intent: "refund", echo: req.json } }));
    const hanging = await backend("sh-hang");
    hanging.mode = "hang";
    applyRollout("never-hurts", stable.url, hanging.url, { shadow: { sampleRate: 1, maxConcurrency: 4, queueSize: 8, timeout: "2s" } });
    await setStatus("never-hurts", { canaryWeight: 0, shadowEnabled: false });
    await seen("never-hurts", (r) => !r.shadowOn);

    const run = async () => {
      const answers = await load(300, 10, (i) => post(hook("never-hurts"), { i }));
      for (let i = 0; i < answers.length; i++) {
        expect(answers[i]!.status).toBe(200);
        expect(answers[i]!.json).toEqual({ intent: "refund", echo: { i } });
        expect(answers[i]!.headers.get("x-airollout-version")).toBe("v1");
      }
      return p99(answers.map((a) => a.ms));
    };
    await run(); // warm-up: connections, JIT
    // The worse of two baseline runs: the machine is shared, and a single quiet run would make
    // the bound below needlessly tight.
    const baseline = Math.max(await run(), await run());

    await setStatus("never-hurts", { shadowEnabled: true });
    await seen("never-hurts", (r) => r.shadowOn);
    // The better of two runs: outside load only ever adds latency, while harm done by the shadow
    // would show in both.
    const withHanging = Math.min(await run(), await run());
    expect(hanging.hits).toBeGreaterThan(0);
    expect(await metric(`airollout_mirror_dropped_total{rollout="never-hurts",namespace="${ns}",reason="queue_full"}`)).toBeGreaterThan(0);
    // The hung copies end by the shadow timeout, counted.
    await gateway.mirrorIdle();
    expect(await metric(`airollout_mirror_dropped_total{rollout="never-hurts",namespace="${ns}",reason="timeout"}`)).toBeGreaterThan(0);

    applyRollout("never-hurts", stable.url, await refusingUrl(), { shadow: { sampleRate: 1, maxConcurrency: 4, queueSize: 8, timeout: "2s" } });
    await seen("never-hurts", (r) => r.shadowTarget.backend?.url !== hanging.url);
    const withRefusing = Math.min(await run(), await run());
    await gateway.mirrorIdle();
    expect(await metric(`airollout_mirror_dropped_total{rollout="never-hurts",namespace="${ns}",reason="error"}`)).toBeGreaterThan(0);

    // Generous for a shared 2-core machine (spikes of a few hundred ms happen with or without a
    // shadow), yet well below the 2 s a hanging shadow on the primary path would add.
    const bound = Math.min(Math.max(baseline * 3 + 100, 500), 1500);
    expect(withHanging, `p99 with a hanging shadow ${withHanging.toFixed(1)}ms vs baseline ${baseline.toFixed(1)}ms`).toBeLessThan(bound);
    expect(withRefusing, `p99 with a refusing shadow ${withRefusing.toFixed(1)}ms vs baseline ${baseline.toFixed(1)}ms`).toBeLessThan(bound);
    console.info(`p99: baseline ${baseline.toFixed(1)}ms, hanging shadow ${withHanging.toFixed(1)}ms, refusing shadow ${withRefusing.toFixed(1)}ms`);
    expect(await metric(`airollout_shadow_comparisons_total{rollout="never-hurts",namespace="${ns}"}`)).toBe(0);
  });

  it("records diffs under the rollout's rules and serves them with PII masked", async () => {
    const answer = (intent: string, confidence: number) => (req: { json: unknown }) => ({
      body: { id: randomBytes(4).toString("hex"), intent, confidence, contact: "bob.smith@example.com", card: 4111111111111111, note: "call +1 (415) 555-0100", echo: req.json },
      headers: { "x-model": intent === "refund" ? "small" : "large" },
    });
    const stable = await backend("diff-stable", answer("refund", 0.9));
    const cand = await backend("diff-cand", answer("billing", 0.91));
    applyRollout("diffs", stable.url, cand.url, {
      shadow: { sampleRate: 1, minSamples: 5, compare: { ignore: ["$.id"], tolerances: [{ path: "$.confidence", relative: 0.05 }], labels: ["$.intent"] } },
    });
    await setStatus("diffs", { canaryWeight: 0, shadowEnabled: true });
    await seen("diffs", (r) => r.shadowOn);

    for (let i = 0; i < 10; i++) {
      const res = await post(hook("diffs"), { ticket: i, from: "carol@example.com" }, { "x-request-id": `diff-${i}` });
      expect(res.status).toBe(200);
      expect((res.json as { intent: string }).intent).toBe("refund");
    }
    await gateway.mirrorIdle();
    expect(cand.hits).toBe(10);
    // Copies are exchanged concurrently, so they may reach the candidate out of order.
    expect(cand.requests.map((r) => r.headers["x-request-id"]).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `diff-${i}`).sort());
    const shadowReq = cand.requests.find((r) => r.headers["x-request-id"] === "diff-9")!;
    expect(shadowReq.headers["x-airollout-shadow"]).toBe("true");
    expect(stable.requests.at(-1)!.headers["x-airollout-shadow"]).toBeUndefined();

    const res = await fetch(`${base}/api/rollouts/${ns}/diffs/diffs`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const d = JSON.parse(text) as { summary: { compared: number; mismatched: number; ready: boolean; topFields: { path: string; flagged: boolean }[] }; samples: { requestId: string; mismatches: { path: string; rule: string }[]; stable: { body: string } }[] };
    expect(d.summary).toMatchObject({ compared: 10, mismatched: 10, ready: true });
    expect(d.summary.topFields.map((f) => f.path)).toEqual(["$.intent"]);
    expect(d.summary.topFields[0]!.flagged).toBe(true);
    expect(d.samples).toHaveLength(10);
    // Newest first by the time each comparison finished, which need not be the order sent.
    expect(d.samples.map((x) => x.requestId).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `diff-${i}`).sort());
    for (const x of d.samples) expect(x.mismatches).toEqual([expect.objectContaining({ path: "$.intent", rule: "label" })]);
    for (const pii of ["bob.smith@example.com", "carol@example.com", "4111111111111111", "555-0100"]) expect(text).not.toContain(pii);
    expect(d.samples[0]!.stable.body).toContain("[EMAIL]");
    expect(d.samples[0]!.stable.body).toContain("[CARD]");
    expect(d.samples[0]!.stable.body).toContain("[PHONE]");

    const lbl = `rollout="diffs",namespace="${ns}"`;
    expect(await metric(`airollout_shadow_comparisons_total{${lbl}}`)).toBe(10);
    // Flagged once minSamples (5) comparisons were in: the 5th to the 10th.
    expect(await metric(`airollout_shadow_mismatches_total{${lbl}}`)).toBe(6);
    expect(await metric(`airollout_shadow_field_mismatches_total{${lbl},field="$.intent"}`)).toBe(10);
    expect(await metric(`airollout_shadow_field_mismatches_total{${lbl},field="$.confidence"}`)).toBe(0);
    // The gateway's logs never carry payload PII.
    for (const l of logLines) for (const pii of ["bob.smith@example.com", "carol@example.com", "4111111111111111"]) expect(l).not.toContain(pii);
  });

  it("noise baseline: identical nondeterministic stable replicas flag nothing; a real regression is flagged", async () => {
    // A nondeterministic service: a fresh nonce and timestamp every time, a score that jitters
    // within 1%, two phrasings of the same summary; the intent is a pure function of the input.
    let regressed = false;
    const service = (name: string, isCandidate: boolean) => (req: { json: unknown }) => {
      const ticket = (req.json as { ticket: number }).ticket;
      const intent = isCandidate && regressed && ticket % 2 === 0 ? "billing" : "refund";
      const summary = Math.random() < 0.5 ? "Customer wants a refund for a late order" : "The customer wants a refund for a late order";
      return { body: { nonce: randomBytes(6).toString("hex"), createdAt: Date.now() + Math.random(), intent, score: 0.8 * (1 + (Math.random() - 0.5) / 50), summary, by: name } };
    };
    const primary = await backend("noise-primary", service("primary", false));
    const secondary = await backend("noise-secondary", service("secondary", false));
    const cand = await backend("noise-cand", service("candidate", true));
    applyRollout("noise", primary.url, cand.url, {
      shadow: {
        sampleRate: 1,
        minSamples: 20,
        noiseBaseline: { enabled: true, endpoint: secondary.url },
        compare: { ignore: ["$.by"], tolerances: [{ path: "$.score", relative: 0.05 }], labels: ["$.intent"], text: [{ path: "$.summary", minSimilarity: 0.6 }] },
      },
    });
    await setStatus("noise", { canaryWeight: 0, shadowEnabled: true });
    await seen("noise", (r) => r.shadowOn && r.noise !== undefined);

    const summary = async () => {
      const d = (await (await fetch(`${base}/api/rollouts/${ns}/noise/diffs`)).json()) as { summary: { compared: number; mismatched: number; rawMismatched: number; noiseCompared: number; ready: boolean; topFields: { path: string; flagged: boolean; rate: number; noiseRate: number }[] } };
      return d.summary;
    };
    await load(30, 4, (i) => post(hook("noise"), { ticket: i }));
    await gateway.mirrorIdle();
    const calm = await summary();
    expect(calm).toMatchObject({ compared: 30, noiseCompared: 30, ready: true, mismatched: 0 });
    // Every comparison differed somewhere (nonce, createdAt), and none of it counts.
    expect(calm.rawMismatched).toBe(30);
    expect(calm.topFields.map((f) => f.path).sort()).toEqual(["$.createdAt", "$.nonce"]);
    expect(calm.topFields.every((f) => !f.flagged && f.rate === 1 && f.noiseRate === 1)).toBe(true);
    expect(secondary.hits).toBe(30);
    expect(await metric(`airollout_noise_comparisons_total{rollout="noise",namespace="${ns}"}`)).toBe(30);

    regressed = true;
    await load(30, 4, (i) => post(hook("noise"), { ticket: i }));
    await gateway.mirrorIdle();
    const bad = await summary();
    const intent = bad.topFields.find((f) => f.path === "$.intent")!;
    expect(intent).toMatchObject({ flagged: true, noiseRate: 0 });
    expect(bad.mismatched).toBe(15);
    expect(bad.topFields.filter((f) => f.flagged).map((f) => f.path)).toEqual(["$.intent"]);
  });
});

describe("hostile answers", () => {
  it("100,000-deep arrays and objects from the primary or the shadow: answered 200, compared as a limit mismatch, never a candidate failure", async () => {
    const deepArray = `${"[".repeat(100_000)}1${"]".repeat(100_000)}`;
    const deepObject = `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`;
    const plain = JSON.stringify({ intent: "refund" });
    const bodies = { stable: plain, candidate: plain };
    const stable = await backend("deep-stable", () => ({ body: bodies.stable }));
    const cand = await backend("deep-cand", () => ({ body: bodies.candidate }));
    // Two consecutive failures would open the candidate's circuit: each case below sends three.
    applyRollout("deep", stable.url, cand.url, { traffic: { circuitBreaker: { consecutiveFailures: 2, openDuration: "10m" } }, shadow: { sampleRate: 1, minSamples: 5 } });
    await setStatus("deep", { canaryWeight: 0, shadowEnabled: true });
    await seen("deep", (r) => r.shadowOn && r.shadowTarget.breaker !== undefined);
    const lbl = `rollout="deep",namespace="${ns}"`;

    const cases: [string, string, string][] = [
      ["shadow: deep array", plain, deepArray],
      ["shadow: deep object", plain, deepObject],
      ["primary: deep array", deepArray, plain],
      ["primary: deep object", deepObject, plain],
      ["both deep", deepArray, deepObject],
    ];
    for (const [name, primaryBody, shadowBody] of cases) {
      bodies.stable = primaryBody;
      bodies.candidate = shadowBody;
      for (let i = 0; i < 3; i++) {
        const res = await post(hook("deep"), { ticket: i });
        expect(res.status, name).toBe(200);
        expect(res.text === primaryBody, `${name}: the primary's answer is passed through unchanged`).toBe(true);
      }
      await gateway.mirrorIdle();
      const breaker = gateway.rollout(ns, "deep")!.shadowTarget.breaker!;
      expect(breaker.state(Date.now()), name).toBe("closed");
      expect(breaker.failures, name).toBe(0);
    }
    expect(cand.hits).toBe(15);
    expect(await metric(`airollout_circuit_state{${lbl},version="v2"}`)).toBe(0);
    expect(await metric(`airollout_shadow_comparisons_total{${lbl}}`)).toBe(15);
    expect(await metric(`airollout_mirror_dropped_total{${lbl},reason="diff_error"}`)).toBe(0);
    expect(await metric(`airollout_mirror_dropped_total{${lbl},reason="error"}`)).toBe(0);

    const d = (await (await fetch(`${base}/api/rollouts/${ns}/deep/diffs`)).json()) as { samples: { mismatches: { path: string; rule: string; reason: string }[]; stable: { body: string }; candidate: { body: string } }[] };
    expect(d.samples.length).toBeGreaterThan(0);
    for (const sample of d.samples) {
      expect(sample.mismatches).toEqual([expect.objectContaining({ path: "$", rule: "limit", reason: expect.stringContaining("nested deeper than 1000 levels") })]);
      // Sample text is cut, never the whole 200-500 KB body.
      expect(sample.stable.body.length + sample.candidate.body.length).toBeLessThan(20_000);
    }

    // The gateway keeps serving and judging ordinary answers.
    bodies.stable = plain;
    bodies.candidate = plain;
    expect((await post(hook("deep"), { ticket: 99 })).status).toBe(200);
    await gateway.mirrorIdle();
    expect(await metric(`airollout_shadow_comparisons_total{${lbl}}`)).toBe(16);
    expect(cand.hits).toBe(16);
  });
});

describe("guardrails", () => {
  let stable: TestBackend;
  let cand: TestBackend;
  beforeAll(async () => {
    stable = await backend("g-stable");
    cand = await backend("g-cand");
  });

  it("413 for an oversize body (declared or streamed), quarantined", async () => {
    applyRollout("size", stable.url, cand.url, { traffic: { maxBodyBytes: 1024 } });
    await seen("size");
    const before = stable.hits;
    const res = await post(hook("size"), { blob: "x".repeat(4000) });
    expect(res.status).toBe(413);
    expect(res.json).toMatchObject({ error: "too_large" });
    expect((res.json as { message: string }).message).toContain("spec.traffic.maxBodyBytes");
    expect(stable.hits).toBe(before);
    const row = gateway.quarantine.list({ namespace: ns, name: "size" })[0]!;
    // The declared size, and (a body this small arrives at once) all of it, replayable.
    expect(row).toMatchObject({ reason: "too_large", truncated: false });
    expect(row.declaredSize).toBeGreaterThan(4000);
    expect(row.receivedBytes).toBe(row.declaredSize);
    expect(await metric(`airollout_quarantined_total{rollout="size",namespace="${ns}",reason="too_large"}`)).toBe(1);

    // Chunked, without a Content-Length: refused once the limit is crossed while reading.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(hook("size"));
      const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        let b = "";
        res.on("data", (d: Buffer) => (b += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: b }));
      });
      req.on("error", reject);
      for (let i = 0; i < 40; i++) req.write(`{"pad":"${"y".repeat(60)}"}`);
      req.end();
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toMatchObject({ error: "too_large" });
    expect(gateway.quarantine.list({ namespace: ns, name: "size" })).toHaveLength(2);
    expect(stable.hits).toBe(before);

    const ok = await post(hook("size"), { small: true });
    expect(ok.status).toBe(200);
  });

  it("400 bad JSON, 415 wrong content type, 422 schema-invalid (naming the field), each quarantined; list and replay by command", async () => {
    const schema = { type: "object", required: ["event", "ticket"], properties: { event: { type: "string", enum: ["created", "updated"] }, ticket: { type: "integer" } } };
    applyRollout("schema", stable.url, cand.url, { traffic: { payloadSchema: schema } });
    await seen("schema", (r) => r.payloadSchema !== undefined);
    const before = stable.hits;

    const badJson = await post(hook("schema"), '{"event": "created",');
    expect(badJson.status).toBe(400);
    expect(badJson.json).toMatchObject({ error: "bad_json" });
    const badType = await post(hook("schema"), "event=created", { "content-type": "application/x-www-form-urlencoded" });
    expect(badType.status).toBe(415);
    expect((badType.json as { message: string }).message).toContain("application/x-www-form-urlencoded");
    const invalid = await post(hook("schema"), { event: "deleted", ticket: 7, email: "dave@example.com" });
    expect(invalid.status).toBe(422);
    expect(invalid.json).toMatchObject({ error: "schema" });
    expect((invalid.json as { message: string }).message).toMatch(/\$\.event/);
    expect(stable.hits).toBe(before);

    const rows = gateway.quarantine.list({ namespace: ns, name: "schema" });
    expect(rows.map((r) => r.reason)).toEqual(["schema", "content_type", "bad_json"]);
    expect(JSON.parse(rows[0]!.body.toString())).toEqual({ event: "deleted", ticket: 7, email: "[EMAIL]" });

    const valid = await post(hook("schema"), { event: "created", ticket: 7 });
    expect(valid.status).toBe(200);

    const cli = (args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        const p = spawn(NODE, [CLI, "quarantine", ...args, "--state-dir", stateDir], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        p.stdout.on("data", (d: Buffer) => (out += d.toString()));
        p.stderr.on("data", (d: Buffer) => (out += d.toString()));
        p.on("exit", (code) => resolve({ code: code ?? -1, out }));
      });
    const list = await cli(["list", "--rollout", `${ns}/schema`]);
    expect(list.code).toBe(0);
    expect(list.out).toContain(`${rows[0]!.id}\t`);
    expect(list.out).toContain("schema");
    expect(list.out).toContain("content_type");

    // The schema is widened; the once-invalid payload now passes when replayed.
    applyRollout("schema", stable.url, cand.url, { traffic: { payloadSchema: { ...schema, properties: { ...schema.properties, event: { type: "string" } } } } });
    await seen("schema", (r) => r.payloadSchema !== undefined && (r.traffic.payloadSchema as { properties: { event: { enum?: unknown } } }).properties.event.enum === undefined);
    const replayed = await cli(["replay", String(rows[0]!.id), "--gateway", base]);
    expect(replayed.code, replayed.out).toBe(0);
    expect(replayed.out).toMatch(/^200 /);
    expect(stable.requests.at(-1)!.json).toEqual({ event: "deleted", ticket: 7, email: "dave@example.com" });
    expect(stable.requests.at(-1)!.headers["x-airollout-replay-of"]).toBe(String(rows[0]!.id));
    expect(gateway.quarantine.get(rows[0]!.id)!.replayStatus).toBe(200);
  });

  it("a payloadSchema the validator would not enforce as written (unknown format) answers 503 spec_invalid naming the field; nothing is forwarded", async () => {
    applyRollout("schema-bad", stable.url, cand.url, { traffic: { payloadSchema: { type: "object", properties: { at: { type: "string", format: "datetime" } } } } });
    await seen("schema-bad", (r) => r.error !== undefined);
    const before = stable.hits;
    const res = await post(hook("schema-bad"), { at: "2026-11-29T12:00:00Z" });
    expect(res.status).toBe(503);
    expect(res.json).toMatchObject({ error: "spec_invalid", message: expect.stringContaining('spec.traffic.payloadSchema: invalid JSON Schema: #/properties/at/format: format "datetime" is not checked') });
    expect(stable.hits).toBe(before);
  });

  it("HMAC signatures (GitHub and Stripe schemes, secret from a Kubernetes Secret): bad ones 401 and quarantined", async () => {
    kubectlOk(["create", "secret", "generic", "hook-hmac", "-n", ns, "--from-literal=secret=s3cret-key"]);
    applyRollout("signed", stable.url, cand.url, { traffic: { signature: { scheme: "github", secretRef: { name: "hook-hmac", key: "secret" } } } });
    applyRollout("stripe", stable.url, cand.url, { traffic: { signature: { scheme: "stripe", secretRef: { name: "hook-hmac", key: "secret" }, tolerance: "5m" } } });
    await seen("signed");
    await seen("stripe");
    const body = JSON.stringify({ action: "opened", number: 42 });
    const before = stable.hits;

    const unsigned = await post(hook("signed"), body);
    expect(unsigned.status).toBe(401);
    expect((unsigned.json as { message: string }).message).toContain("x-hub-signature-256: signature header missing");
    const forged = await post(hook("signed"), body, { "x-hub-signature-256": signGithub(body, "wrong-key") });
    expect(forged.status).toBe(401);
    expect((forged.json as { message: string }).message).toContain("does not match");
    const good = await post(hook("signed"), body, { "x-hub-signature-256": signGithub(body, "s3cret-key") });
    expect(good.status).toBe(200);

    const now = Math.floor(Date.now() / 1000);
    const expired = await post(hook("stripe"), body, { "stripe-signature": signStripe(body, "s3cret-key", now - 600) });
    expect(expired.status).toBe(401);
    expect((expired.json as { message: string }).message).toMatch(/old, beyond the 300s tolerance/);
    const fresh = await post(hook("stripe"), body, { "stripe-signature": signStripe(body, "s3cret-key", now) });
    expect(fresh.status).toBe(200);
    expect(stable.hits).toBe(before + 2);

    expect(gateway.quarantine.list({ namespace: ns, name: "signed" }).map((r) => r.reason)).toEqual(["signature", "signature"]);
    expect(await metric(`airollout_quarantined_total{rollout="stripe",namespace="${ns}",reason="signature"}`)).toBe(1);

    // A missing Secret is the operator's problem, not the sender's: 503, not quarantined.
    applyRollout("unsigned-secret", stable.url, cand.url, { traffic: { signature: { scheme: "github", secretRef: { name: "absent", key: "secret" } } } });
    await seen("unsigned-secret");
    const noSecret = await post(hook("unsigned-secret"), body, { "x-hub-signature-256": signGithub(body, "s3cret-key") });
    expect(noSecret.status).toBe(503);
    expect((noSecret.json as { message: string }).message).toContain(`Secret ${ns}/absent not found`);
  });

  it("idempotency keys (SQLite): a repeat gets the stored answer without a second forward; concurrent repeats forward once", async () => {
    const counter = await backend("idem", (req, n) => ({ status: 201, body: { n, echo: req.json } }));
    applyRollout("idem", counter.url, cand.url, { traffic: { idempotency: { header: "Idempotency-Key", store: "sqlite" } } });
    await seen("idem");
    const first = await post(hook("idem"), { order: 1 }, { "idempotency-key": "order-1" });
    const second = await post(hook("idem"), { order: 1 }, { "idempotency-key": "order-1" });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
    expect(second.headers.get("x-airollout-idempotent-replay")).toBe("true");
    expect(counter.hits).toBe(1);
    const reused = await post(hook("idem"), { order: 2 }, { "idempotency-key": "order-1" });
    expect(reused.status).toBe(422);
    expect(reused.json).toMatchObject({ error: "idempotency_mismatch" });

    counter.mode = "slow";
    counter.slowMs = 300;
    const burst = await Promise.all(Array.from({ length: 5 }, () => post(hook("idem"), { order: 3 }, { "idempotency-key": "order-3" })));
    expect(burst.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    expect(new Set(burst.map((r) => r.text)).size).toBe(1);
    expect(counter.hits).toBe(2);

    // A failed answer is not stored: the sender's retry is forwarded again.
    counter.mode = "fail";
    expect((await post(hook("idem"), { order: 4 }, { "idempotency-key": "order-4" })).status).toBe(500);
    counter.mode = "ok";
    expect((await post(hook("idem"), { order: 4 }, { "idempotency-key": "order-4" })).status).toBe(201);
    expect(counter.hits).toBe(4);
  });

  it("per-tenant token bucket: 429 with Retry-After, other tenants unaffected", async () => {
    applyRollout("limited", stable.url, cand.url, { traffic: { rateLimit: { key: "header:x-tenant-id", requestsPerSecond: 0.5, burst: 3 } } });
    await seen("limited", (r) => r.state.limiter !== undefined);
    const codes: number[] = [];
    let limited: Answer | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await post(hook("limited"), { i }, { "x-tenant-id": "noisy" });
      codes.push(r.status);
      if (r.status === 429) limited = r;
    }
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    expect(Number(limited!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(limited!.headers.get("retry-after"))).toBeLessThanOrEqual(2);
    expect(limited!.json).toMatchObject({ error: "rate_limited" });
    expect((await post(hook("limited"), { i: 0 }, { "x-tenant-id": "quiet" })).status).toBe(200);
    expect(await metric(`airollout_rejected_total{rollout="limited",namespace="${ns}",reason="rate_limited",code="429"}`)).toBe(2);
  });

  it("circuit breaker: opens after N consecutive failures, rejects without forwarding, a half-open probe closes it", async () => {
    const flaky = await backend("flaky");
    flaky.mode = "fail";
    applyRollout("breaker", flaky.url, cand.url, { traffic: { circuitBreaker: { consecutiveFailures: 3, openDuration: "1s" } } });
    await seen("breaker");
    const lbl = `rollout="breaker",namespace="${ns}",version="v1"`;
    for (let i = 0; i < 3; i++) expect((await post(hook("breaker"), { i })).status).toBe(500);
    expect(flaky.hits).toBe(3);
    expect(await metric(`airollout_circuit_state{${lbl}}`)).toBe(2);
    const open = await post(hook("breaker"), { i: 3 });
    expect(open.status).toBe(503);
    expect(open.json).toMatchObject({ error: "circuit_open" });
    expect(Number(open.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(flaky.hits).toBe(3);

    flaky.mode = "ok";
    await new Promise((r) => setTimeout(r, 1100));
    expect((await post(hook("breaker"), { i: 4 })).status).toBe(200);
    expect(await metric(`airollout_circuit_state{${lbl}}`)).toBe(0);
    expect((await post(hook("breaker"), { i: 5 })).status).toBe(200);
    expect(flaky.hits).toBe(5);
  });

  it("an open candidate circuit falls back to the stable instead of failing the sender", async () => {
    const s = await backend("fb-stable");
    const broken = await backend("fb-cand");
    broken.mode = "fail";
    applyRollout("fallback", s.url, broken.url, { traffic: { circuitBreaker: { consecutiveFailures: 2, openDuration: "1m" } } });
    await setStatus("fallback", { canaryWeight: 100 });
    await seen("fallback", (r) => r.weight === 100);
    const answers = await load(6, 1, (i) => post(hook("fallback"), { i }));
    expect(answers.map((a) => a.status)).toEqual([500, 500, 200, 200, 200, 200]);
    expect(answers.slice(2).every((a) => a.headers.get("x-airollout-version") === "v1")).toBe(true);
    expect(broken.hits).toBe(2);
  });
});

describe("logs", () => {
  it("carry the correlation id on every request line and no payload PII", () => {
    const lines = logLines.map((l) => JSON.parse(l) as { msg: string; requestId?: string });
    const requestLines = lines.filter((l) => ["request refused", "payload quarantined", "request answered", "backend failed", "repeated idempotency key answered from the store"].includes(l.msg));
    expect(requestLines.length).toBeGreaterThan(50);
    for (const l of requestLines) expect(l.requestId, JSON.stringify(l)).toMatch(/\S/);
    for (const text of logLines) for (const pii of ["bob.smith@example.com", "carol@example.com", "dave@example.com", "alice@example.com", "4111111111111111"]) expect(text).not.toContain(pii);
  });
});

/** A gateway child process started from the CLI; resolves its port from the start-up log line. */
async function startGatewayProcess(dir: string): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(NODE, [CLI, "gateway", "--kubeconfig", kubeconfig(), "--namespace", ns, "--port", "0", "--host", "127.0.0.1", "--state-dir", dir], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_LEVEL: "info" } });
  children.push(proc);
  let out = "";
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split("\n")) {
        try {
          const l = JSON.parse(line) as { msg?: string; port?: number };
          if (l.msg === "gateway started" && l.port) resolve(l.port);
        } catch {
          /* partial line */
        }
      }
    });
    proc.on("exit", (code) => reject(new Error(`gateway exited ${code}: ${out}`)));
    setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 30_000);
  });
  return { url: `http://127.0.0.1:${port}`, proc };
}

describe("two gateway processes sharing a real redis-server", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.dispose();
  });

  it("answer one idempotency key with one forward", async () => {
    const counter = await backend("redis-idem", (req, n) => ({ body: { n, echo: req.json } }));
    counter.mode = "slow";
    counter.slowMs = 400;
    applyRollout("shared", counter.url, counter.url, { traffic: { idempotency: { store: "redis", redisUrl: redis.url } } });
    const dirs = [mkdtempSync(join(tmpdir(), "airollout-gw-a-")), mkdtempSync(join(tmpdir(), "airollout-gw-b-"))];
    try {
      const [a, b] = await Promise.all(dirs.map((d) => startGatewayProcess(d)));
      for (const g of [a!, b!]) await waitFor("child gateway knows the rollout", async () => (await fetch(`${g.url}/api/rollouts/${ns}/shared/diffs`)).status === 200, 30_000, 100);

      const urls = [a!.url, b!.url, a!.url, b!.url, a!.url, b!.url];
      const answers = await Promise.all(urls.map((u) => post(`${u}/hooks/${ns}/shared/pay`, { amount: 10 }, { "idempotency-key": "pay-1" })));
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
      expect(new Set(answers.map((r) => r.text)).size).toBe(1);
      expect(counter.hits).toBe(1);
      expect(await redis.command("EXISTS airollout:idem:" + `${ns}/shared/pay-1`)).toBe(":1");

      // Later repeats on either replica come from Redis.
      const later = await post(`${b!.url}/hooks/${ns}/shared/pay`, { amount: 10 }, { "idempotency-key": "pay-1" });
      expect(later.headers.get("x-airollout-idempotent-replay")).toBe("true");
      expect(counter.hits).toBe(1);
      // A different key is forwarded.
      expect((await post(`${a!.url}/hooks/${ns}/shared/pay`, { amount: 10 }, { "idempotency-key": "pay-2" })).status).toBe(200);
      expect(counter.hits).toBe(2);
    } finally {
      for (const c of children.splice(0)) {
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        c.kill("SIGKILL");
      }
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });
});
