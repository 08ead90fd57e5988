/**
 * The gateway's side of the egress policy: a rollout that would dial a refused address is
 * rejected whole when compiled (503 egress_denied), and a name allowed when compiled is still
 * refused at dial time when it resolves to a refused address. Real loopback backends, no mocks.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEgressPolicy, type EgressPolicy } from "../api/egress.ts";
import type { AIRollout } from "../api/schema.ts";
import { startBackend, type TestBackend } from "../../../test/support/backends.ts";
import { Gateway } from "./gateway.ts";
import { compileRollout } from "./rollouts.ts";
import { createGatewayMetrics } from "./metrics.ts";
import { createAgents, forward, UpstreamError, parseBackend } from "./upstream.ts";

function rollout(name: string, stable: string, candidate: string, extra: Record<string, unknown> = {}): AIRollout {
  return {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace: "team-a", uid: `u-${name}`, generation: 1, resourceVersion: "1" },
    spec: { stable: { version: "v1", endpoint: stable }, candidate: { version: "v2", endpoint: candidate }, strategy: { steps: [{ setWeight: 50 }] }, ...extra },
    status: { phase: "Progressing", canaryWeight: 50, revision: "r1" },
  };
}

describe("compileRollout with an egress policy", () => {
  const metrics = createGatewayMetrics(() => []);
  const policy = parseEgressPolicy();

  it("rejects the whole rollout when one backend is refused, naming the field and the rule", () => {
    const problems: { field: string; message: string }[] = [];
    const r = compileRollout(rollout("meta", "http://127.0.0.1:1", "http://0xA9FEA9FE/latest/meta-data/"), undefined, metrics, problems, policy);
    expect(r.egressDenied).toBe(true);
    expect(r.error).toContain("spec.candidate.endpoint: egress to 169.254.169.254 is denied: a link-local address");
    expect(problems).toEqual([{ field: "egress", message: r.error }]);
  });

  it("checks the noise baseline, Redis, and URLs that come from status", () => {
    const noise = compileRollout(rollout("noise", "http://127.0.0.1:1", "http://127.0.0.1:2", { shadow: { noiseBaseline: { enabled: true, endpoint: "http://[fd00:ec2::254]/" } } }), undefined, metrics, [], policy);
    expect(noise.error).toContain("spec.shadow.noiseBaseline.endpoint: egress to fd00:ec2::254 is denied");
    const redis = compileRollout(rollout("redis", "http://127.0.0.1:1", "http://127.0.0.1:2", { traffic: { idempotency: { header: "x-id", store: "redis", redisUrl: "redis://:pw@cache.team-b.svc:6379" } } }), undefined, metrics, [], policy);
    expect(redis.error).toContain('spec.traffic.idempotency.redisUrl: egress to cache.team-b.svc is denied: it names a service in namespace "team-b"');
    expect(redis.error).not.toContain(":pw@");
    const image = rollout("image", "http://127.0.0.1:1", "http://127.0.0.1:2");
    image.spec = { ...(image.spec as object), candidate: { version: "v2", image: "registry/triage:v2" } };
    image.status!.environments = { canary: { stack: "s", phase: "Ready", url: "http://triage-canary.team-b.svc.cluster.local:8080" } };
    expect(compileRollout(image, undefined, metrics, [], policy).error).toContain("the candidate's URL in status: egress to triage-canary.team-b.svc.cluster.local is denied");
  });

  it("leaves an allowed rollout (and every rollout without a policy) untouched", () => {
    expect(compileRollout(rollout("ok", "http://127.0.0.1:1", "http://triage.team-a.svc:8080"), undefined, metrics, [], policy).error).toBeUndefined();
    const none = compileRollout(rollout("none", "http://127.0.0.1:1", "http://169.254.169.254/"), undefined, metrics, []);
    expect(none.error).toBeUndefined();
    expect(none.egressDenied).toBe(false);
  });
});

describe("dial-time check (createAgents with a policy)", () => {
  let backend: TestBackend;
  beforeAll(async () => {
    backend = await startBackend("local");
  });
  afterAll(async () => {
    await backend.close();
  });

  const send = (policy: EgressPolicy) => forward({ backend: parseBackend(`http://localhost:${backend.port}`), method: "POST", path: "/x", headers: {}, body: Buffer.from("{}"), timeoutMs: 10_000, maxResponseBytes: 1024, agents: createAgents(4, policy) });

  it("refuses a name that resolves to a refused address, before connecting", async () => {
    backend.reset();
    const err = await send(parseEgressPolicy({ denyLoopback: true })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).kind).toBe("egress_denied");
    expect((err as UpstreamError).message).toMatch(/egress to localhost is denied at dial time: it resolves to (127\.0\.0\.1|::1), a loopback address/);
    expect(backend.hits).toBe(0);
  });

  it("connects when the resolved address is allowed", async () => {
    backend.reset();
    const res = await send(parseEgressPolicy());
    expect(res.status).toBe(200);
    expect(backend.hits).toBe(1);
  });
});

describe("the gateway with an egress policy", () => {
  let backend: TestBackend;
  let gateway: Gateway;
  let base: string;
  let stateDir: string;
  beforeAll(async () => {
    backend = await startBackend("stable");
    stateDir = mkdtempSync(join(tmpdir(), "airollout-egress-"));
    // localhost is listed, so it compiles; loopback is denied, so its address is refused at dial time.
    const egress = parseEgressPolicy({ denyLoopback: true, allowHosts: ["localhost"] });
    gateway = new Gateway({ log: pino({ level: "silent" }), stateDir, shadowWorkers: 0, egress });
    const { port } = await gateway.listen(0, "127.0.0.1");
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await gateway.stop();
    await backend.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const post = async (name: string) => {
    const res = await fetch(`${base}/hooks/team-a/${name}/events`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    return { status: res.status, body: (await res.json()) as { error: string; message: string } };
  };

  it("answers 503 egress_denied for a rollout whose backend is refused when compiled", async () => {
    gateway.upsert(rollout("meta", `http://localhost:${backend.port}`, "http://169.254.169.254/latest/meta-data/"));
    const a = await post("meta");
    expect(a.status).toBe(503);
    expect(a.body.error).toBe("egress_denied");
    expect(a.body.message).toContain("spec.candidate.endpoint: egress to 169.254.169.254 is denied");
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/airollout_rejected_total\{rollout="meta",namespace="team-a",reason="egress_denied",code="503"\} 1/);
  });

  it("answers 503 egress_denied when an allowed name resolves to a refused address, and never reaches it", async () => {
    backend.reset();
    // A breaker that opens after one failure: a refused dial is not the backend failing, so it stays closed.
    gateway.upsert(rollout("dial", `http://localhost:${backend.port}`, `http://localhost:${backend.port}`, { strategy: { steps: [{ setWeight: 0 }] }, traffic: { circuitBreaker: { consecutiveFailures: 1, openDuration: "1m" } } }));
    for (let i = 0; i < 3; i++) {
      const a = await post("dial");
      expect(a.status).toBe(503);
      expect(a.body.error).toBe("egress_denied");
      expect(a.body.message).toMatch(/egress to localhost is denied at dial time/);
    }
    expect(backend.hits).toBe(0);
  });
});
