/**
 * The gateway against hostile and awkward senders, on the real local control plane (AIRollouts
 * through the API server, signature Secrets from it) with real loopback backends: bodies the
 * gateway would read otherwise than a backend (invalid UTF-8, repeated keys), nesting depth,
 * 413s that must reach senders mid-upload or waiting for `100 Continue`, quarantine rows that
 * replay byte for byte, a request id on every refusal, and Standard Webhooks signatures.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway } from "../../controller/src/gateway/gateway.ts";
import { replay } from "../../controller/src/gateway/quarantine.ts";
import { signGithub, signStandard } from "../../controller/src/gateway/signature.ts";
import { refusingUrl, startBackend, type TestBackend } from "../support/backends.ts";
import { client, createNamespace, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let stateDir: string;
let gateway: Gateway;
let base: string;
let stable: TestBackend;
let cand: TestBackend;

function applyRollout(name: string, spec: Record<string, unknown> = {}, stableUrl = stable.url): void {
  const obj = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace: ns },
    spec: { stable: { version: "v1", endpoint: stableUrl }, candidate: { version: "v2", endpoint: cand.url }, strategy: { steps: [{ setWeight: 0 }] }, ...spec },
  };
  kubectlOk(["apply", "-f", "-"], JSON.stringify(obj));
}

async function seen(name: string, pred: (r: NonNullable<ReturnType<Gateway["rollout"]>>) => boolean = () => true): Promise<void> {
  await waitFor(`gateway sees ${name}`, () => {
    const r = gateway.rollout(ns, name);
    return r !== undefined && pred(r);
  }, 20_000, 25);
}

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

async function send(url: string, body: string | Buffer, headers: Record<string, string> = {}, method = "POST"): Promise<Answer> {
  const res = await fetch(url, { method, headers: { "content-type": "application/json", ...headers }, body: method === "GET" ? undefined : body });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Non-JSON answers are checked by status.
  }
  return { status: res.status, headers: res.headers, json };
}

const hook = (name: string, path = "/events") => `${base}/hooks/${ns}/${name}${path}`;

async function metric(line: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

beforeAll(async () => {
  ns = createNamespace("gwh");
  stateDir = mkdtempSync(join(tmpdir(), "airollout-gwh-it-"));
  stable = await startBackend("h-stable");
  cand = await startBackend("h-cand");
  gateway = new Gateway({ log: pino({ level: "silent" }), client: client(), namespace: ns, stateDir, secretTtlMs: 1000, shadowWorkers: 0 });
  gateway.start();
  const { port } = await gateway.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${port}`;
  await waitFor("gateway synced", () => gateway.synced, 20_000, 25);
});

afterAll(async () => {
  await gateway?.stop();
  await Promise.all([stable?.close(), cand?.close()]);
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

describe("the backend never sees a payload other than the one the gateway judged", () => {
  it("refuses invalid UTF-8, repeated keys and too deep bodies with 400 naming the reason (and path), quarantined, nothing forwarded", async () => {
    applyRollout("strict");
    applyRollout("shallow", { traffic: { maxJsonDepth: 3 } });
    await seen("strict");
    await seen("shallow");
    const before = stable.hits;

    const badUtf8 = await send(hook("strict"), Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]));
    expect(badUtf8.status).toBe(400);
    expect(badUtf8.json).toMatchObject({ error: "invalid_utf8", message: expect.stringContaining("first bad byte at offset 9") });

    const dup = await send(hook("strict"), '{"amount": 1, "currency": "EUR", "amount": 1000}');
    expect(dup.status).toBe(400);
    expect(dup.json).toMatchObject({ error: "duplicate_key", message: expect.stringContaining('key "amount" appears more than once at $.amount') });
    const nestedDup = await send(hook("strict"), '{"order": {"items": [{"sku": "a"}, {"sku": "b", "\\u0073ku": "c"}]}}');
    expect(nestedDup.status).toBe(400);
    expect(nestedDup.json).toMatchObject({ error: "duplicate_key", message: expect.stringContaining("at $.order.items[1].sku") });

    // The default limit is 128 levels: 128 pass, 129 and 100,000 do not.
    const nest = (n: number) => "[".repeat(n) + "]".repeat(n);
    expect((await send(hook("strict"), nest(128))).status).toBe(200);
    for (const depth of [129, 100_000]) {
      const deep = await send(hook("strict"), nest(depth));
      expect(deep.status, `depth ${depth}`).toBe(400);
      expect(deep.json).toMatchObject({ error: "too_deep", message: expect.stringContaining("nested deeper than 128 levels") });
    }
    const shallow = await send(hook("shallow"), '{"a": {"b": {"c": {"d": 1}}}}');
    expect(shallow.json).toMatchObject({ error: "too_deep", message: "JSON nested deeper than 3 levels at $.a.b.c (spec.traffic.maxJsonDepth)" });
    expect((await send(hook("shallow"), '{"a": {"b": {"c": 1}}}')).status).toBe(200);
    expect(stable.hits).toBe(before + 2);

    expect(gateway.quarantine.list({ namespace: ns, name: "strict" }).map((r) => r.reason)).toEqual(["too_deep", "too_deep", "duplicate_key", "duplicate_key", "invalid_utf8"]);
    expect(await metric(`airollout_quarantined_total{rollout="strict",namespace="${ns}",reason="duplicate_key"}`)).toBe(2);
    expect(await metric(`airollout_rejected_total{rollout="strict",namespace="${ns}",reason="invalid_utf8",code="400"}`)).toBe(1);
  });

  it("with the per-rollout opt-outs, forwards such bodies byte for byte", async () => {
    applyRollout("lenient", { traffic: { allowDuplicateKeys: true, allowInvalidUtf8: true } });
    await seen("lenient", (r) => r.traffic.allowDuplicateKeys && r.traffic.allowInvalidUtf8);
    for (const body of [Buffer.from('{"amount": 1, "amount": 1000}'), Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])]) {
      const res = await send(hook("lenient"), body);
      expect(res.status).toBe(200);
      expect(stable.requests.at(-1)!.body.equals(body)).toBe(true);
    }
  });
});

/** One POST through node:http, so that Expect: 100-continue and the upload are under the test's control. */
function upload(url: string, o: { size: number; expectContinue: boolean; chunked?: boolean }): Promise<{ status: number; continued: boolean; connection?: string; error?: string }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const headers: Record<string, string> = { "content-type": "application/json" };
    headers[o.chunked ? "transfer-encoding" : "content-length"] = o.chunked ? "chunked" : String(o.size);
    if (o.expectContinue) headers.expect = "100-continue";
    // A fresh connection each time: every upload meets the refusal on its own socket.
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers, agent: new Agent({ keepAlive: false }) });
    let continued = false;
    // A JSON string padded to the size.
    const body = Buffer.from(`"${"x".repeat(Math.max(0, o.size - 2))}"`);
    req.on("continue", () => {
      continued = true;
      req.end(body);
    });
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, continued, connection: res.headers.connection }));
    });
    req.on("error", (err) => resolve({ status: 0, continued, error: err.message }));
    if (!o.expectContinue) req.end(body);
  });
}

/** Writes raw bytes to the gateway and returns everything it answers until it closes the connection. */
async function rawExchange(raw: string): Promise<string> {
  const u = new URL(base);
  const sock = connect(Number(u.port), u.hostname);
  let answer = "";
  sock.on("data", (d: Buffer) => (answer += d.toString()));
  sock.on("error", () => {});
  await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
  sock.write(raw);
  await new Promise((resolve) => sock.once("close", resolve));
  return answer;
}

/**
 * Declares `declared` bytes on a raw socket and sends up to `send` of them as fast as the socket
 * takes them, then waits (at most 30 s) for the gateway to close the connection.
 */
async function rawUpload(url: string, declared: number, send: number): Promise<{ response: string; sent: number; closedByServer: boolean }> {
  const u = new URL(url);
  const sock = connect(Number(u.port), u.hostname);
  let response = "";
  sock.on("data", (d: Buffer) => (response += d.toString()));
  sock.on("error", () => {});
  const closed = new Promise<boolean>((resolve) => sock.once("close", () => resolve(true)));
  await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
  sock.write(`POST ${u.pathname} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n`);
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let sent = 0;
  let isClosed = false;
  void closed.then(() => (isClosed = true));
  while (!isClosed && sent < send) {
    const n = Math.min(chunk.length, send - sent);
    sent += n;
    if (!sock.write(chunk.subarray(0, n))) await Promise.race([new Promise((resolve) => sock.once("drain", resolve)), closed]);
  }
  const closedByServer = await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 30_000))]);
  sock.destroy();
  return { response, sent, closedByServer };
}

describe("413 reaches every sender", () => {
  it("50 declared oversize uploads waiting for 100 Continue and 50 already uploading all get the 413; a waiting one is never told to continue", async () => {
    applyRollout("small", { traffic: { maxBodyBytes: 1024 } });
    await seen("small");
    const before = stable.hits;
    const waiting = [];
    const uploading = [];
    for (let i = 0; i < 50; i++) {
      waiting.push(await upload(hook("small"), { size: 2 * 1024 * 1024, expectContinue: true }));
      uploading.push(await upload(hook("small"), { size: 2 * 1024 * 1024, expectContinue: false }));
    }
    // Refused before it sent its body: the connection closes, it cannot carry another request.
    expect(waiting.filter((r) => r.status !== 413 || r.continued || r.connection !== "close")).toEqual([]);
    expect(uploading.filter((r) => r.status !== 413)).toEqual([]);
    // Streamed without a length: refused once the limit is crossed, the rest drained.
    for (let i = 0; i < 10; i++) expect(await upload(hook("small"), { size: 512 * 1024, expectContinue: false, chunked: true })).toMatchObject({ status: 413 });
    // Within the limit, a sender waiting for 100 Continue is told to go on and answered.
    expect(await upload(hook("small"), { size: 100, expectContinue: true })).toMatchObject({ status: 200, continued: true });
    expect(stable.hits).toBe(before + 1);
  });

  it("drains a refused upload only so far: past 8 MiB the connection is closed, and a stalled sender's after 10 s", async () => {
    const declared = 200 * 1024 * 1024;
    const flood = await rawUpload(hook("small"), declared, declared);
    expect(flood.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(flood.closedByServer).toBe(true);
    expect(flood.sent).toBeLessThan(declared);
    const stalled = await rawUpload(hook("small"), 10 * 1024 * 1024, 100 * 1024);
    expect(stalled.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(stalled.closedByServer).toBe(true);
  });

  it("an oversize row keeps the declared size, the bytes read and the first bytes, each named", async () => {
    applyRollout("sizes", { traffic: { maxBodyBytes: 1024 } });
    await seen("sizes");
    await upload(hook("sizes"), { size: 300_000, expectContinue: true });
    await upload(hook("sizes"), { size: 300_000, expectContinue: false });
    await upload(hook("sizes"), { size: 300_000, expectContinue: false, chunked: true });
    const [chunked, uploading, waiting] = gateway.quarantine.list({ namespace: ns, name: "sizes" });
    // Refused before it sent anything: the declared size, nothing read.
    expect(waiting).toMatchObject({ reason: "too_large", declaredSize: 300_000, receivedBytes: 0, bodySize: 300_000, truncated: true });
    expect(waiting!.body.length).toBe(0);
    // Refused while uploading: the declared size, the bytes read and the first of them (a bounded head).
    expect(uploading).toMatchObject({ reason: "too_large", declaredSize: 300_000, bodySize: 300_000, truncated: true });
    expect(uploading!.receivedBytes).toBeGreaterThan(0);
    expect(uploading!.receivedBytes).toBeLessThan(300_000);
    expect(uploading!.body.length).toBe(Math.min(uploading!.receivedBytes, 64 * 1024));
    expect(uploading!.body.toString()).toMatch(/^"x+$/);
    // Without a declared size: what was read when the limit was crossed, never more than kept.
    expect(chunked).toMatchObject({ reason: "too_large", declaredSize: undefined, truncated: true });
    expect(chunked!.receivedBytes).toBeGreaterThan(1024);
    expect(chunked!.bodySize).toBe(chunked!.receivedBytes);
    expect(chunked!.body.length).toBe(Math.min(chunked!.receivedBytes, 64 * 1024));
  });
});

describe("quarantine replay", () => {
  it("a quarantined webhook replays with the sender's x-request-id, X-GitHub-Delivery, signature and byte-identical body; the view is masked", async () => {
    kubectlOk(["create", "secret", "generic", "gh-hmac", "-n", ns, "--from-literal=secret=gh-key"]);
    const schema = { type: "object", required: ["action"], properties: { action: { type: "string", enum: ["opened"] } } };
    applyRollout("replayed", { traffic: { payloadSchema: schema, signature: { scheme: "github", secretRef: { name: "gh-hmac", key: "secret" } } } });
    await seen("replayed", (r) => r.payloadSchema !== undefined);
    const body = Buffer.from('{ "action": "closed",\n  "sender": {"email": "erin@example.com", "phone": "+1 555 123 4567"}, "note": "caf\u00e9" }');
    const requestId = randomUUID();
    const delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    const headers = { "x-request-id": requestId, "x-github-delivery": delivery, "x-hub-signature-256": signGithub(body, "gh-key"), "x-github-event": "issues" };
    const refused = await send(hook("replayed"), body, headers);
    expect(refused.status).toBe(422);
    const row = gateway.quarantine.list({ namespace: ns, name: "replayed" })[0]!;
    expect(row.headers["x-request-id"]).toBe(requestId);
    expect(row.headers["x-github-delivery"]).toBe(delivery);
    expect(row.body.toString()).toContain('"email": "[EMAIL]"');
    expect(row.body.toString()).toContain('"phone": "[PHONE]"');

    applyRollout("replayed", { traffic: { payloadSchema: { ...schema, properties: { action: { type: "string" } } }, signature: { scheme: "github", secretRef: { name: "gh-hmac", key: "secret" } } } });
    await seen("replayed", (r) => (r.traffic.payloadSchema as { properties: { action: { enum?: unknown } } }).properties.action.enum === undefined);
    const replayed = await replay(gateway.quarantine, row.id, base);
    expect(replayed.status).toBe(200);
    const got = stable.requests.at(-1)!;
    expect(got.headers["x-request-id"]).toBe(requestId);
    expect(got.headers["x-github-delivery"]).toBe(delivery);
    expect(got.headers["x-airollout-replay-of"]).toBe(String(row.id));
    expect(got.body.equals(body)).toBe(true);
  });
});

describe("Standard Webhooks", () => {
  it("verifies webhook-signature over id.timestamp.body with the whsec_ key from a Secret; webhook-id is the default idempotency key", async () => {
    const secret = `whsec_${Buffer.from("a-32-byte-signing-key-for-tests!").toString("base64")}`;
    kubectlOk(["create", "secret", "generic", "std-hmac", "-n", ns, `--from-literal=secret=${secret}`]);
    const counter = await startBackend("std-counter", (_req, n) => ({ body: { n } }));
    try {
      applyRollout("standard", { traffic: { signature: { scheme: "standard", secretRef: { name: "std-hmac", key: "secret" } }, idempotency: { store: "sqlite" } } }, counter.url);
      await seen("standard", (r) => r.traffic.idempotency !== undefined);
      const body = '{"type":"invoice.paid","data":{"id":"in_1"}}';
      const now = Math.floor(Date.now() / 1000);
      const signed = (id: string, t = now, b = body) => ({ "webhook-id": id, "webhook-timestamp": String(t), "webhook-signature": signStandard(b, secret, id, t) });

      const first = await send(hook("standard"), body, signed("msg_1"));
      expect(first.status).toBe(200);
      const again = await send(hook("standard"), body, signed("msg_1"));
      expect(again.status).toBe(200);
      expect(again.headers.get("x-airollout-idempotent-replay")).toBe("true");
      expect(counter.hits).toBe(1);

      const forged = await send(hook("standard"), body, { ...signed("msg_2"), "webhook-id": "msg_3" });
      expect(forged.status).toBe(401);
      expect(forged.json).toMatchObject({ error: "signature", message: "webhook-signature: signature does not match the body" });
      const stale = await send(hook("standard"), body, signed("msg_4", now - 3600));
      expect(stale.json).toMatchObject({ error: "signature", message: expect.stringContaining("beyond the 300s tolerance") });
      expect(counter.hits).toBe(1);
      expect(gateway.quarantine.list({ namespace: ns, name: "standard" }).map((r) => r.reason)).toEqual(["signature", "signature"]);
    } finally {
      await counter.close();
    }
  });
});

describe("every refusal carries the request id", () => {
  it("in the JSON answer and the x-request-id header, on every refusal path the gateway has", async () => {
    kubectlOk(["create", "secret", "generic", "ref-hmac", "-n", ns, "--from-literal=secret=k"]);
    applyRollout("refusals", { traffic: { maxBodyBytes: 512, payloadSchema: { type: "object", required: ["ok"] } } });
    applyRollout("refusals-limited", { traffic: { rateLimit: { key: "header:x-tenant-id", requestsPerSecond: 0.001, burst: 1 } } });
    applyRollout("refusals-signed", { traffic: { signature: { scheme: "github", secretRef: { name: "ref-hmac", key: "secret" } } } });
    applyRollout("refusals-nosecret", { traffic: { signature: { scheme: "github", secretRef: { name: "absent", key: "secret" } } } });
    applyRollout("refusals-down", {}, await refusingUrl());
    kubectlOk(["apply", "-f", "-"], JSON.stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "refusals-image", namespace: ns }, spec: { stable: { version: "v1", image: "registry/x:v1" }, candidate: { version: "v2", image: "registry/x:v2" }, strategy: { steps: [{ setWeight: 0 }] } } }));
    applyRollout("refusals-badschema", { traffic: { payloadSchema: { type: "object", properties: { at: { type: "string", format: "datetime" } } } } });
    for (const n of ["refusals", "refusals-limited", "refusals-signed", "refusals-nosecret", "refusals-down", "refusals-image"]) await seen(n);
    await seen("refusals-badschema", (r) => r.error !== undefined);
    expect((await send(hook("refusals-limited"), '{"ok":1}', { "x-tenant-id": "t1" })).status).toBe(200);

    const cases: [string, () => Promise<Answer>, number, string][] = [
      ["malformed escape", () => send(`${base}/hooks/${ns}/refusals/%E0%A4%A`, "{}"), 400, "bad_request"],
      ["GET on a hook", () => send(hook("refusals"), "", {}, "GET"), 405, "method_not_allowed"],
      ["no route", () => send(`${base}/nowhere`, "{}"), 404, "not_found"],
      ["unknown rollout", () => send(hook("nope"), "{}"), 404, "unknown_rollout"],
      ["diffs of an unknown rollout", () => send(`${base}/api/rollouts/${ns}/nope/diffs`, "", {}, "GET"), 404, "unknown_rollout"],
      ["bad diffs limit", () => send(`${base}/api/rollouts/${ns}/refusals/diffs?limit=x`, "", {}, "GET"), 400, "bad_request"],
      ["rate limit", () => send(hook("refusals-limited"), '{"ok":1}', { "x-tenant-id": "t1" }), 429, "rate_limited"],
      ["too large", () => send(hook("refusals"), JSON.stringify({ ok: "x".repeat(1000) })), 413, "too_large"],
      ["content type", () => send(hook("refusals"), "{}", { "content-type": "text/plain" }), 415, "content_type"],
      ["content encoding", () => send(hook("refusals"), '{"ok":1}', { "content-encoding": "gzip" }), 415, "content_encoding"],
      ["invalid UTF-8", () => send(hook("refusals"), Buffer.from([0x7b, 0xff, 0x7d])), 400, "invalid_utf8"],
      ["not JSON", () => send(hook("refusals"), "{"), 400, "bad_json"],
      ["duplicate key", () => send(hook("refusals"), '{"ok":1,"ok":2}'), 400, "duplicate_key"],
      ["too deep", () => send(hook("refusals"), `${"[".repeat(129)}${"]".repeat(129)}`), 400, "too_deep"],
      ["schema", () => send(hook("refusals"), "{}"), 422, "schema"],
      ["signature", () => send(hook("refusals-signed"), "{}"), 401, "signature"],
      ["signature secret", () => send(hook("refusals-nosecret"), "{}"), 503, "signature_secret"],
      ["spec invalid", () => send(hook("refusals-badschema"), "{}"), 503, "spec_invalid"],
      ["no backend", () => send(hook("refusals-image"), "{}"), 503, "no_backend"],
      ["backend down", () => send(hook("refusals-down"), "{}"), 502, "backend_error"],
    ];
    for (const [name, call, status, reason] of cases) {
      const res = await call();
      expect(res.status, name).toBe(status);
      expect(res.json.error, name).toBe(reason);
      const id = res.headers.get("x-request-id");
      expect(id, name).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.json.requestId, name).toBe(id);
    }
    expect(gateway.quarantine.list({ namespace: ns, name: "refusals" }).map((r) => r.reason)).toContain("content_encoding");

    // Requests Node's HTTP parser refuses before the gateway sees them are answered the same way.
    const parserCases: [string, string, number, string][] = [
      ["unknown method", `FOO /hooks/${ns}/refusals/e HTTP/1.1\r\nhost: x\r\n\r\n`, 400, "bad_request"],
      ["header section too large", `POST /hooks/${ns}/refusals/e HTTP/1.1\r\nhost: x\r\nx-filler: ${"a".repeat(20_000)}\r\n\r\n`, 431, "headers_too_large"],
    ];
    for (const [name, raw, status, reason] of parserCases) {
      const answer = await rawExchange(raw);
      const [head = "", body = ""] = answer.split("\r\n\r\n");
      expect(head, name).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      const id = /\r\nx-request-id: ([0-9a-f-]{36})\r\n/.exec(head)?.[1];
      expect(id, name).toBeDefined();
      expect(JSON.parse(body), name).toEqual({ error: reason, message: expect.any(String), requestId: id });
    }
    expect(await metric('airollout_rejected_total{rollout="(unknown)",namespace="(unknown)",reason="headers_too_large",code="431"}')).toBe(1);

    // The sender's own id, when acceptable, is the one answered, outside the pipeline too.
    const own = await fetch(`${base}/hooks/${ns}/refusals/%E0%A4%A`, { method: "POST", headers: { "x-request-id": "sender-id-1" }, body: "{}" });
    expect(own.headers.get("x-request-id")).toBe("sender-id-1");
    expect(await own.json()).toMatchObject({ error: "bad_request", requestId: "sender-id-1" });
    const own405 = await fetch(hook("refusals"), { method: "PUT", headers: { "x-request-id": "sender-id-2" }, body: "{}" });
    expect(own405.headers.get("x-request-id")).toBe("sender-id-2");
    expect(await own405.json()).toMatchObject({ error: "method_not_allowed", requestId: "sender-id-2" });
  });
});
