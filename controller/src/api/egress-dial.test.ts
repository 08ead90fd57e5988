/**
 * The dial-time check: the resolver hook on its own, and through the controller's Prometheus
 * client against a real loopback server (`localhost` stands in for a name that resolves to a
 * refused address; loopback is refused with denyLoopback).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrometheusProvider } from "../analysis/prometheus.ts";
import { EGRESS_DENIED, egressLookup } from "./egress-dial.ts";
import { parseEgressPolicy } from "./egress.ts";

type Resolved = { err: NodeJS.ErrnoException | null; address: unknown; family?: number };

function resolve(lookup: ReturnType<typeof egressLookup>, host: string, all: boolean): Promise<Resolved> {
  return new Promise((done) => lookup(host, { all } as never, (err: NodeJS.ErrnoException | null, address: unknown, family?: number) => done({ err, address, family })));
}

describe("egressLookup", () => {
  it("refuses a name whose address the policy refuses, with the resolved address and the rule", async () => {
    const r = await resolve(egressLookup(parseEgressPolicy({ denyLoopback: true })), "localhost", false);
    expect(r.err?.code).toBe(EGRESS_DENIED);
    expect(r.err?.message).toMatch(/^egress to localhost is denied at dial time: it resolves to (127\.0\.0\.1|::1), a loopback address, and loopback is denied; a cluster admin can allow it with/);
  });

  it("hands allowed addresses on, one or all as asked", async () => {
    const lookup = egressLookup(parseEgressPolicy());
    const one = await resolve(lookup, "localhost", false);
    expect(one.err).toBeNull();
    expect(["127.0.0.1", "::1"]).toContain(one.address);
    const all = await resolve(lookup, "localhost", true);
    expect(all.err).toBeNull();
    expect(Array.isArray(all.address) && all.address.length > 0).toBe(true);
  });

  it("passes resolver errors through", async () => {
    const r = await resolve(egressLookup(parseEgressPolicy()), "no-such-host.invalid", false);
    expect(r.err).not.toBeNull();
    expect(r.err?.code).not.toBe(EGRESS_DENIED);
  });
});

describe("the controller's Prometheus client with an egress policy", () => {
  let server: Server;
  let port: number;
  let hits = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits++;
      req.resume();
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ status: "success", data: { resultType: "vector", result: [{ metric: {}, value: [1, "0.5"] }] } }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("never sends a query to a name that resolves to a refused address", async () => {
    hits = 0;
    const p = new PrometheusProvider(`http://localhost:${port}`, { egress: parseEgressPolicy({ denyLoopback: true }) });
    const out = await p.query("up", { timeoutMs: 10_000 });
    expect(out.kind).toBe("error");
    expect(JSON.stringify(out)).toContain("denied at dial time");
    expect(hits).toBe(0);
  });

  it("queries as before when the resolved address is allowed", async () => {
    hits = 0;
    const p = new PrometheusProvider(`http://localhost:${port}`, { egress: parseEgressPolicy() });
    const out = await p.query("up", { timeoutMs: 10_000 });
    expect(out.kind).not.toBe("error");
    expect(hits).toBe(1);
  });
});
