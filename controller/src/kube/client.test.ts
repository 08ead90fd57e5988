import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { countRequests, KubeClient, resourceOf } from "./client.ts";
import { dropBookkeeping, Informer, type KubeObject } from "./informer.ts";
import { pino } from "pino";

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A loopback API server stand-in that counts TCP connections; answers every request with `answer`. */
async function fakeApi(answer: (url: string) => unknown): Promise<{ client: KubeClient; connections: () => number }> {
  let connections = 0;
  server = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(answer(req.url ?? "/")));
  });
  server.on("connection", () => connections++);
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  const kc = new KubeConfig();
  // client-node allows plain HTTP only with skipTLSVerify.
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { client: new KubeClient(kc), connections: () => connections };
}

describe("KubeClient", () => {
  it("keeps its connection to the API server alive across requests", async () => {
    const { client, connections } = await fakeApi(() => ({ kind: "Status" }));
    for (let i = 0; i < 20; i++) await client.get("/api/v1/namespaces/default");
    await Promise.all(Array.from({ length: 8 }, () => client.get("/api/v1/namespaces/default")));
    // One connection for the sequential requests; the parallel ones may open a few more.
    expect(connections()).toBeLessThanOrEqual(8);
    expect(connections()).toBeGreaterThanOrEqual(1);
  });
});

describe("request counting", () => {
  it.each([
    ["/apis/airollout.dev/v1alpha1/namespaces/team/airollouts/bot/status", "airollouts/status"],
    ["/apis/airollout.dev/v1alpha1/namespaces/team/airollouts/bot", "airollouts"],
    ["/apis/airollout.dev/v1alpha1/namespaces/team/airollouts?limit=500", "airollouts"],
    ["/apis/airollout.dev/v1alpha1/airollouts", "airollouts"],
    ["/api/v1/namespaces/team/events", "events"],
    ["/api/v1/namespaces/team", "namespaces"],
    ["/api/v1/namespaces", "namespaces"],
    ["/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/airollout", "leases"],
    ["/metrics", "other"],
  ])("names the resource of %s as %s", (path, resource) => {
    expect(resourceOf(path)).toBe(resource);
  });

  it("counts every request sent, answered or refused, by verb and resource; a second term reuses the counter", async () => {
    const { client } = await fakeApi(() => ({ kind: "Status" }));
    const registry = new Registry();
    countRequests(client, registry);
    countRequests(client, registry);
    await client.get("/api/v1/namespaces/team/events");
    await client.create("/api/v1/namespaces/team/events", {});
    await client.replace("/apis/airollout.dev/v1alpha1/namespaces/team/airollouts/bot/status", {});
    await client.replace("/apis/airollout.dev/v1alpha1/namespaces/team/airollouts/bot/status", {});
    const text = await registry.metrics();
    expect(text).toContain('airollout_controller_api_requests_total{verb="GET",resource="events"} 1');
    expect(text).toContain('airollout_controller_api_requests_total{verb="POST",resource="events"} 1');
    expect(text).toContain('airollout_controller_api_requests_total{verb="PUT",resource="airollouts/status"} 2');
  });
});

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

describe("the informer cache", () => {
  it("drops managedFields and kubectl's last-applied copy, keeps every other annotation", () => {
    const obj = {
      metadata: { name: "a", resourceVersion: "1", managedFields: [{ manager: "kubectl" }], annotations: { [LAST_APPLIED]: "{...}", "airollout.dev/promote": "1" } },
      spec: { x: 1 },
    };
    dropBookkeeping(obj);
    expect(obj).toEqual({ metadata: { name: "a", resourceVersion: "1", annotations: { "airollout.dev/promote": "1" } }, spec: { x: 1 } });
    const only = { metadata: { name: "b", resourceVersion: "1", annotations: { [LAST_APPLIED]: "{...}" } } };
    dropBookkeeping(only);
    expect(only.metadata).toEqual({ name: "b", resourceVersion: "1" });
    expect(dropBookkeeping(undefined)).toBeUndefined();
  });

  it("stores listed objects and our own writes without the bookkeeping", async () => {
    const item = (rv: string) => ({ metadata: { name: "a", namespace: "n", resourceVersion: rv, managedFields: [{ manager: "m" }], annotations: { [LAST_APPLIED]: "{}" } } });
    const { client } = await fakeApi((url) => (url.includes("watch=") ? {} : { metadata: { resourceVersion: "5" }, items: [item("5")] }));
    let synced!: () => void;
    const done = new Promise<void>((r) => (synced = r));
    const informer = new Informer<KubeObject>(client, "/apis/g/v1/namespaces/n/things", { onUpsert: () => {}, onDelete: () => {}, onSync: () => synced() }, pino({ level: "silent" }));
    informer.start();
    await done;
    expect(informer.get("n/a")).toEqual({ metadata: { name: "a", namespace: "n", resourceVersion: "5" } });
    informer.observe(item("6"));
    expect(informer.get("n/a")).toEqual({ metadata: { name: "a", namespace: "n", resourceVersion: "6" } });
    await informer.stop();
  });
});
