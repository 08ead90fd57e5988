/**
 * HTTP fuzzing of the real gateway process (`airollout gateway`), fixed seed, bounded count:
 * random and malformed bodies (random bytes, truncated, deep, oversize and duplicate-key JSON,
 * invalid UTF-8), headers (content types, content encodings, duplicate and oversize headers,
 * request ids, idempotency keys), methods, framings (Content-Length, chunked, Expect:
 * 100-continue) and signatures (GitHub, Stripe: valid, stale, forged, malformed), written on raw
 * sockets so nothing between the fuzzer and the gateway tidies them up. Some go to the other
 * routes (the diffs API, health, metrics, made-up paths).
 *
 * With every backend healthy it asserts: no 5xx from the gateway's own code (load shedding with
 * Retry-After excepted), the process never exits and never logs an unexpected error, every
 * refusal carries a reason and a request id (body and x-request-id), every refusal the README
 * calls quarantined has its quarantine row, and a forwarded request reaches its backend with
 * exactly the bytes the gateway judged.
 */
import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { QuarantineStore } from "../../controller/src/gateway/quarantine.ts";
import { signGithub, signStandard, signStripe } from "../../controller/src/gateway/signature.ts";
import { startBackend, type TestBackend } from "../support/backends.ts";
import { GatewayProcess } from "../support/loop.ts";
import { client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";
import { join } from "node:path";

const SEED = 20261129;
const REQUESTS = 1200;
const CONCURRENCY = 8;
const SECRET = "fuzz-hmac-secret";
const STANDARD_SECRET = `whsec_${Buffer.from("fuzz-standard-webhooks-key").toString("base64")}`;
const MAX_BODY = 64 * 1024;

/** Refusals the README says are quarantined (unknown_rollout too, within a budget: checked by what its answer says). */
const QUARANTINED = new Set(["too_large", "signature", "content_type", "content_encoding", "bad_json", "schema", "invalid_utf8", "duplicate_key", "too_deep"]);
/** 5xx the gateway may answer with healthy backends: shedding load, with Retry-After. */
const SHEDDING = new Set(["overloaded"]);

let ns: string;
let gateway: GatewayProcess;
const backends: TestBackend[] = [];

// ---------------------------------------------------------------------------------------------
// Raw HTTP over a socket: what goes on the wire is exactly what the fuzzer chose.

interface RawRequest {
  method: string;
  path: string;
  headers: [string, string][];
  body: Buffer;
  framing: "length" | "chunked" | "none";
  /** Why this request is malformed at the HTTP level (Node's parser may answer it), if it is. */
  malformed?: string;
  /** A short description for failure messages. */
  label: string;
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

function encode(r: RawRequest, port: number): Buffer {
  const lines = [`${r.method} ${r.path} HTTP/1.1`, `host: 127.0.0.1:${port}`, "connection: close"];
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`);
  if (r.framing === "length") lines.push(`content-length: ${r.body.length}`);
  if (r.framing === "chunked") lines.push("transfer-encoding: chunked");
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  if (r.framing === "chunked") {
    const parts: Buffer[] = [head];
    for (let i = 0; i < r.body.length; i += 1000) {
      const chunk = r.body.subarray(i, i + 1000);
      parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n"));
    }
    parts.push(Buffer.from("0\r\n\r\n"));
    return Buffer.concat(parts);
  }
  return r.framing === "length" ? Buffer.concat([head, r.body]) : head;
}

function parseResponse(raw: Buffer): RawResponse | undefined {
  let rest = raw;
  // Skip interim answers (100 Continue).
  for (;;) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const head = rest.subarray(0, end).toString("latin1").split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "")?.[1]);
    if (!Number.isInteger(status)) return undefined;
    const headers: Record<string, string> = {};
    for (const l of head.slice(1)) {
      const i = l.indexOf(":");
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    rest = rest.subarray(end + 4);
    if (status >= 100 && status < 200) continue;
    let body = rest;
    if (headers["transfer-encoding"] === "chunked") {
      const parts: Buffer[] = [];
      let at = 0;
      for (;;) {
        const nl = body.indexOf("\r\n", at);
        if (nl < 0) break;
        const size = parseInt(body.subarray(at, nl).toString(), 16);
        if (!(size > 0)) break;
        parts.push(body.subarray(nl + 2, nl + 2 + size));
        at = nl + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers["content-length"] !== undefined) {
      body = body.subarray(0, Number(headers["content-length"]));
    }
    return { status, headers, body };
  }
}

/** Sends one request on its own connection; resolves with the answer, or undefined if none came. */
function send(r: RawRequest, port: number, timeoutMs = 30_000): Promise<RawResponse | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, "127.0.0.1");
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponse(Buffer.concat(chunks)));
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("end", done);
    socket.on("close", done);
    // A server that refuses early may reset while the upload is still being written.
    socket.on("error", done);
    socket.write(encode(r, port));
  });
}

// ---------------------------------------------------------------------------------------------
// Generators

const TARGETS = ["plain", "guarded", "stripe", "standard", "no-such-rollout"] as const;
type Target = (typeof TARGETS)[number];

const jsonText = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v));
// Mostly just past maxJsonDepth (128) and within maxBodyBytes; sometimes far past both.
const deep = fc.tuple(fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 100, max: 3000 }) }, { weight: 1, arbitrary: fc.integer({ min: 10, max: 200_000 }) }), fc.constantFrom("[", "{\"a\":")).map(([n, open]) => open.repeat(n) + (open === "[" ? "1" + "]".repeat(n) : "1" + "}".repeat(n)));
const bodies = fc.oneof(
  { weight: 6, arbitrary: fc.record({ id: fc.nat(), text: fc.string({ maxLength: 40 }), tenant: fc.constantFrom("t1", "t2", "t3") }).map((o) => JSON.stringify(o)) },
  { weight: 3, arbitrary: jsonText },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)) },
  { weight: 2, arbitrary: fc.tuple(jsonText, fc.nat()).map(([t, n]) => t.slice(0, n % Math.max(1, t.length))) },
  { weight: 2, arbitrary: deep },
  { weight: 1, arbitrary: fc.integer({ min: MAX_BODY - 10, max: MAX_BODY + 50_000 }).map((n) => JSON.stringify({ pad: "x".repeat(n) })) },
  { weight: 2, arbitrary: fc.constantFrom('{"id":1,"id":2}', '{"a":{"b":1,"b":[]}}', '{"__proto__":{"x":1},"id":1}') },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf])).map(([bad]) => Buffer.concat([Buffer.from('{"id":1,"text":"'), Buffer.from(bad), Buffer.from('"}')])) },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "\ufeff{\"id\":1}", "NaN", "{\"id\":1} trailing", "[1,]", "{'id':1}", "null", "\"\\ud800\"") },
);

const header = (name: string, values: fc.Arbitrary<string>): fc.Arbitrary<[string, string][]> =>
  fc.option(values.map((v): [string, string][] => [[name, v]]), { nil: [] as [string, string][] });

const contentTypes = fc.constantFrom("application/json", "application/json; charset=utf-8", "application/vnd.github+json", "text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin1", "APPLICATION/JSON", "multipart/form-data; boundary=x");

/** Paths off the webhook route: the diffs API, health and metrics, and made-up ones. */
const OTHER_PATHS = ["/api/rollouts/NS/plain/diffs", "/api/rollouts/NS/plain/diffs?limit=-1", "/api/rollouts/NS/plain/diffs?limit=1e99", "/api/rollouts/NS/nope/diffs", "/api/rollouts/NS/plain/diffs?limit=0&limit=1", "/metrics", "/healthz", "/readyz", "/", "/hooks", "/hooks/NS", "/%", "/api/rollouts/%ZZ/x/diffs", "*", "/hooks/NS/plain/../../metrics"];

interface Draft {
  /** Set: the request goes to this path instead of the webhook route. */
  other: string | undefined;
  target: Target;
  method: string;
  suffix: string;
  body: string | Buffer;
  contentType: [string, string][];
  extra: [string, string][];
  signature: "none" | "valid" | "forged" | "stale" | "garbage";
  framing: "length" | "chunked" | "none";
}

const draft: fc.Arbitrary<Draft> = fc.record({
  other: fc.oneof({ weight: 12, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(...OTHER_PATHS) }),
  target: fc.constantFrom(...TARGETS),
  method: fc.oneof({ weight: 10, arbitrary: fc.constant("POST") }, { weight: 1, arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO", "post") }),
  suffix: fc.oneof({ weight: 6, arbitrary: fc.constantFrom("/events", "/a/b?x=1", "", "/") }, { weight: 1, arbitrary: fc.constantFrom("/%E0%A4%A", "/%00", "/..%2F..%2Fetc", "/a?%zz", "/" + "a".repeat(3000)) }),
  body: bodies,
  contentType: fc.oneof(
    { weight: 8, arbitrary: fc.constant<[string, string][]>([["content-type", "application/json"]]) },
    { weight: 2, arbitrary: header("content-type", contentTypes) },
    { weight: 1, arbitrary: fc.constant<[string, string][]>([["content-type", "application/json"], ["content-type", "text/plain"]]) },
  ),
  extra: fc.array(
    fc.oneof(
      header("x-request-id", fc.oneof(fc.uuid(), fc.constantFrom("not a valid id", "x".repeat(300), "", "a\tb"))),
      header("idempotency-key", fc.oneof(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), fc.constantFrom("has space", "x".repeat(300), ""))),
      header("x-tenant-id", fc.constantFrom("t1", "t2", "t3", "")),
      header("content-encoding", fc.constantFrom("identity", "gzip", "br", "deflate", "bogus")),
      header("expect", fc.constant("100-continue")),
      header("x-filler", fc.constantFrom("a".repeat(20_000), "b".repeat(100))),
      fc.constant<[string, string][]>([["x-request-id", "dup-1"], ["x-request-id", "dup-2"]]),
    ),
    { maxLength: 3 },
  ).map((hs) => hs.flat()),
  signature: fc.constantFrom("none", "valid", "valid", "valid", "forged", "stale", "garbage"),
  framing: fc.constantFrom("length", "length", "length", "length", "chunked", "none"),
});

/** Turns a draft into bytes on the wire; the signature is computed over the final body. */
function build(d: Draft, i: number): RawRequest {
  let body = Buffer.isBuffer(d.body) ? d.body : Buffer.from(d.body);
  const headers: [string, string][] = [...d.contentType, ...d.extra];
  // Half the gzip-labelled bodies really are gzip.
  if (headers.some(([k, v]) => k === "content-encoding" && v === "gzip") && i % 2 === 0) body = gzipSync(body);
  const now = Math.floor(Date.now() / 1000);
  if (d.target === "guarded" && d.signature !== "none") {
    const sig = d.signature === "valid" || d.signature === "stale" ? signGithub(body, SECRET) : d.signature === "forged" ? signGithub(body, "wrong") : "sha256=zz";
    headers.push(["x-hub-signature-256", sig]);
  }
  if (d.target === "stripe" && d.signature !== "none") {
    const sig = d.signature === "valid" ? signStripe(body, SECRET, now) : d.signature === "stale" ? signStripe(body, SECRET, now - 3600) : d.signature === "forged" ? signStripe(body, "wrong", now) : "t=abc,v1=";
    headers.push(["stripe-signature", sig]);
  }
  if (d.target === "standard" && d.signature !== "none") {
    const id = `msg_${i}`;
    const t = d.signature === "stale" ? now - 3600 : now;
    const sig = d.signature === "valid" || d.signature === "stale" ? signStandard(body, STANDARD_SECRET, id, t) : d.signature === "forged" ? signStandard(body, `whsec_${Buffer.from("wrong").toString("base64")}`, id, t) : "v1,!!notbase64";
    headers.push(["webhook-id", id], ["webhook-timestamp", d.signature === "garbage" ? "yesterday" : String(t)], ["webhook-signature", sig]);
  }
  const malformed = [
    headers.some(([k, v]) => k === "x-filler" && v.length > 16_000) ? "header section over 16 KiB" : "",
    /^(GET|POST|PUT|DELETE|PATCH|OPTIONS|HEAD)$/.test(d.method) ? "" : `method ${d.method} unknown to the HTTP parser`,
  ].filter(Boolean).join(", ");
  return {
    method: d.method,
    path: d.other ? d.other.replaceAll("NS", ns) : `/hooks/${ns}/${d.target}${d.suffix}`,
    headers,
    body,
    framing: d.method === "GET" || d.method === "HEAD" ? (d.framing === "chunked" ? "chunked" : "none") : d.framing,
    ...(malformed ? { malformed } : {}),
    label: `#${i} ${d.method} ${d.other ?? `${d.target}${d.suffix.slice(0, 40)}`} body=${JSON.stringify(body.subarray(0, 60).toString("latin1"))}${body.length > 60 ? `…(${body.length} bytes)` : ""} headers=${JSON.stringify(headers.map(([k, v]) => [k, v.slice(0, 40)]))} framing=${d.framing}`,
  };
}

// ---------------------------------------------------------------------------------------------

async function setStatus(name: string, status: Record<string, unknown>): Promise<void> {
  await client().patch(`${rolloutsPath(ns)}/${name}/status`, { status }, "merge");
}

function applyRollout(name: string, stable: string, candidate: string, spec: Record<string, unknown>): void {
  kubectlOk(["apply", "-f", "-"], JSON.stringify({
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace: ns },
    spec: { stable: { version: "v1", endpoint: stable }, candidate: { version: "v2", endpoint: candidate }, strategy: { steps: [{ setWeight: 50 }, { setWeight: 100 }] }, ...spec },
  }));
}

beforeAll(async () => {
  ns = createNamespace("fuzz");
  const stable = await startBackend("fuzz-stable");
  const candidate = await startBackend("fuzz-candidate");
  backends.push(stable, candidate);
  kubectlOk(["create", "secret", "generic", "fuzz-hmac", "-n", ns, `--from-literal=secret=${SECRET}`, `--from-literal=standard=${STANDARD_SECRET}`]);
  const traffic = { maxBodyBytes: MAX_BODY };
  applyRollout("plain", stable.url, candidate.url, { traffic, shadow: { sampleRate: 1, compare: { ignore: ["$.n", "$.backend"] } } });
  applyRollout("guarded", stable.url, candidate.url, {
    traffic: {
      ...traffic,
      stickyBy: "json:$.tenant",
      signature: { scheme: "github", secretRef: { name: "fuzz-hmac", key: "secret" } },
      payloadSchema: { type: "object", required: ["id"], properties: { id: { type: "integer", minimum: 0 } } },
      idempotency: { store: "sqlite" },
    },
  });
  applyRollout("stripe", stable.url, candidate.url, { traffic: { ...traffic, signature: { scheme: "stripe", secretRef: { name: "fuzz-hmac", key: "secret" }, tolerance: "5m" } } });
  applyRollout("standard", stable.url, candidate.url, { traffic: { ...traffic, signature: { scheme: "standard", secretRef: { name: "fuzz-hmac", key: "standard" } } } });
  await setStatus("plain", { canaryWeight: 50, shadowEnabled: true });
  await setStatus("standard", { canaryWeight: 50 });
  await setStatus("guarded", { canaryWeight: 50 });
  await setStatus("stripe", { canaryWeight: 50 });
  gateway = new GatewayProcess({ kubeconfig: kubeconfig(), namespace: ns, id: `fuzz-gateway-${ns}` });
  await gateway.ready();
  for (const name of ["plain", "guarded", "stripe", "standard"]) {
    await waitFor(`gateway sees ${name} at weight 50`, async () => (await gateway.rollout(ns, name))?.canaryWeight === 50, 60_000, 200);
  }
}, 240_000);

afterAll(async () => {
  await gateway?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

describe("HTTP fuzzing of the gateway", () => {
  it(`${REQUESTS} random and malformed requests (seed ${SEED}): no 5xx of its own, no crash, every refusal with a reason and a request id, quarantined where documented`, async () => {
    const drafts = fc.sample(draft, { seed: SEED, numRuns: REQUESTS });
    const requests = drafts.map(build);
    const answers = new Array<RawResponse | undefined>(requests.length);
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < requests.length) {
        const i = next++;
        answers[i] = await send(requests[i]!, gateway.port);
      }
    }));

    const problems: string[] = [];
    const quarantinable: { requestId: string; reason: string; label: string }[] = [];
    const forwarded: { requestId: string; body: Buffer; label: string }[] = [];
    const statuses: Record<string, number> = {};
    const forwardedTo = new Set<string>();
    const unknown = { total: 0, skipped: 0 };
    requests.forEach((r, i) => {
      const a = answers[i];
      if (!a) {
        problems.push(`no answer: ${r.label}`);
        return;
      }
      const bodyText = a.body.toString("utf8");
      let json: { error?: unknown; message?: unknown; requestId?: unknown } | undefined;
      try {
        json = JSON.parse(bodyText) as typeof json;
      } catch {
        json = undefined;
      }
      const reason = typeof json?.error === "string" ? json.error : "(none)";
      statuses[`${a.status} ${a.status >= 400 ? reason : ""}`.trim()] = (statuses[`${a.status} ${a.status >= 400 ? reason : ""}`.trim()] ?? 0) + 1;
      if (a.status >= 500 && !(SHEDDING.has(reason) && a.headers["retry-after"])) problems.push(`${a.status} ${reason} ${bodyText.slice(0, 200)}: ${r.label}`);
      if (a.status >= 400) {
        if (r.method === "HEAD") return;
        if (typeof json?.error !== "string" || json.error === "" || typeof json.message !== "string" || json.message === "") problems.push(`${a.status} refusal without reason: ${JSON.stringify(a.headers)} ${JSON.stringify(bodyText.slice(0, 200))} ${r.label}`);
        if (typeof json?.requestId !== "string" || json.requestId === "") problems.push(`${a.status} ${reason} refusal without requestId in the body: ${r.label}`);
        else if (a.headers["x-request-id"] !== json.requestId) problems.push(`${a.status} ${reason} refusal whose x-request-id ${JSON.stringify(a.headers["x-request-id"])} differs from its requestId ${JSON.stringify(json.requestId)}: ${r.label}`);
        if (QUARANTINED.has(reason) && typeof json?.requestId === "string") quarantinable.push({ requestId: json.requestId, reason, label: r.label });
        // Webhooks to an unknown rollout are quarantined within a budget, and the answer says whether.
        if (reason === "unknown_rollout" && r.path.startsWith(`/hooks/${ns}/`) && typeof json?.requestId === "string") {
          unknown.total++;
          if (String(json.message).includes("quarantined for replay")) quarantinable.push({ requestId: json.requestId, reason, label: r.label });
          else unknown.skipped++;
        }
      } else if (r.method === "POST" && r.path.startsWith(`/hooks/${ns}/`) && r.headers.some(([k, v]) => k === "content-encoding" && v !== "identity")) {
        // The gateway judges the bytes as sent; a backend would read them decoded.
        problems.push(`${a.status} for a body with Content-Encoding: forwarded, not refused: ${r.label}`);
      } else if (a.status >= 200 && a.status < 300 && r.method === "POST" && r.path.startsWith(`/hooks/${ns}/`) && a.headers["x-request-id"]) {
        forwarded.push({ requestId: a.headers["x-request-id"], body: r.body, label: r.label });
        forwardedTo.add(r.path.split("/")[3] ?? "");
      }
    });

    // The process lives, answers, and logged no unexpected error.
    expect(gateway.proc.exitCode, "gateway exit code").toBeNull();
    expect(gateway.proc.signalCode, "gateway signal").toBeNull();
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    const unexpected = gateway.lines.filter((l) => l.level === "stderr" || /unexpected error/.test(String(l.msg)));
    expect(unexpected.map((l) => l.msg).slice(0, 5)).toEqual([]);

    // Every documented quarantine happened, under the same request id and reason.
    const store = new QuarantineStore(join(gateway.stateDir, "quarantine.db"));
    try {
      const rows = store.list({ namespace: ns, limit: 100_000 });
      const byId = new Map(rows.map((row) => [row.requestId, row]));
      for (const q of quarantinable) {
        const row = byId.get(q.requestId);
        if (!row) problems.push(`${q.reason} refusal not quarantined: ${q.label}`);
        else if (row.reason !== q.reason) problems.push(`${q.reason} refusal quarantined as ${row.reason}: ${q.label}`);
      }
    } finally {
      store.close();
    }

    // A forwarded request reached its backend with exactly the bytes the gateway judged.
    const seen = new Map<string, Buffer>();
    for (const b of backends) for (const req of b.requests) if (!req.headers["x-airollout-shadow"]) seen.set(String(req.headers["x-request-id"]), req.body);
    for (const f of forwarded) {
      const got = seen.get(f.requestId);
      if (got && !got.equals(f.body)) problems.push(`backend received other bytes than sent: ${f.label}`);
    }

    console.log(`fuzz: ${REQUESTS} requests, answers by status and reason: ${JSON.stringify(statuses)}; quarantinable ${quarantinable.length}; forwarded ${forwarded.length}; malformed at the HTTP level ${requests.filter((r) => r.malformed).length}`);
    expect(quarantinable.length).toBeGreaterThan(50);
    // The unknown-rollout budget is a burst of 100 before any is skipped.
    expect(unknown.total - unknown.skipped).toBeGreaterThanOrEqual(Math.min(unknown.total, 100));
    expect(forwarded.length).toBeGreaterThan(50);
    // Valid signatures of every scheme got through, so the fuzzing reached the later stages too.
    expect([...forwardedTo].sort()).toEqual(["guarded", "plain", "standard", "stripe"]);
    expect(problems.slice(0, 30), `${problems.length} problems`).toEqual([]);
  }, 300_000);
});
