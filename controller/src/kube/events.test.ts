import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { KubeClient } from "./client.ts";
import { EventRecorder, SERIES_WINDOW_MS, type EventTarget } from "./events.ts";

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A loopback stand-in for the API server's Events: create (409 on a taken name), merge patch (404 when gone). */
async function fakeEvents(): Promise<{ client: KubeClient; requests: string[]; events: Map<string, Record<string, unknown>> }> {
  const requests: string[] = [];
  const events = new Map<string, Record<string, unknown>>();
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      requests.push(`${req.method} ${req.url}`);
      res.setHeader("content-type", "application/json");
      const name = req.url!.split("/").at(-1)!;
      if (req.method === "POST") {
        const ev = JSON.parse(body) as { metadata: { name: string } };
        res.statusCode = events.has(ev.metadata.name) ? 409 : 201;
        if (res.statusCode === 201) events.set(ev.metadata.name, ev);
      } else if (req.method === "PATCH") {
        res.statusCode = events.has(name) ? 200 : 404;
        if (res.statusCode === 200) Object.assign(events.get(name)!, JSON.parse(body));
      }
      res.end("{}");
    });
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { client: new KubeClient(kc), requests, events };
}

const target: EventTarget = { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: "team", uid: "u1", resourceVersion: "1" } };
const other: EventTarget = { ...target, metadata: { ...target.metadata, name: "other", uid: "u2" } };
const ev = (dedupeKey: string, message = `message ${dedupeKey}`) => ({ type: "Normal" as const, reason: "StepStarted", message, dedupeKey });
const silent = pino({ level: "silent" });

describe("EventRecorder", () => {
  it("sends a name once: a pass retried on the same problem costs no request, and a name found taken (409) is not sent again", async () => {
    const { client, requests } = await fakeEvents();
    const r = new EventRecorder(client, "c", "h", silent);
    expect(await r.recordOutcome(target, ev("k1"))).toBe("created");
    expect(await r.recordOutcome(target, ev("k1"))).toBe("known");
    expect(requests).toHaveLength(1);
    // A restarted controller: the name exists on the server.
    const again = new EventRecorder(client, "c", "h", silent);
    expect(await again.recordOutcome(target, ev("k1"))).toBe("known");
    expect(await again.recordOutcome(target, ev("k1"))).toBe("known");
    expect(requests).toHaveLength(2);
  });

  it("counts a repeat (same object, type, reason, message) on the first Event within the window, then starts a new series", async () => {
    const { client, requests, events } = await fakeEvents();
    let now = Date.parse("2026-05-01T00:00:00Z");
    const r = new EventRecorder(client, "c", "h", silent, { now: () => now });
    expect(await r.recordOutcome(target, ev("fail1", "pulumi up failed: quota"))).toBe("created");
    now += 60_000;
    expect(await r.recordOutcome(target, ev("fail2", "pulumi up failed: quota"))).toBe("counted");
    expect(await r.recordOutcome(target, ev("fail3", "pulumi up failed: quota"))).toBe("counted");
    expect(events.size).toBe(1);
    expect([...events.values()][0]).toMatchObject({ count: 3, lastTimestamp: new Date(now).toISOString() });
    // Another object, or another message, is not a repeat.
    expect(await r.recordOutcome(other, ev("fail1", "pulumi up failed: quota"))).toBe("created");
    expect(await r.recordOutcome(target, ev("fail4", "pulumi up failed: timeout"))).toBe("created");
    now += SERIES_WINDOW_MS;
    expect(await r.recordOutcome(target, ev("fail5", "pulumi up failed: quota"))).toBe("created");
    expect(requests.filter((q) => q.startsWith("PATCH"))).toHaveLength(2);
    expect(events.size).toBe(4);
  });

  it("creates the repeat anew when the series' first Event is gone (expired)", async () => {
    const { client, events } = await fakeEvents();
    const r = new EventRecorder(client, "c", "h", silent);
    await r.recordOutcome(target, ev("a", "same"));
    events.clear();
    expect(await r.recordOutcome(target, ev("b", "same"))).toBe("created");
    expect(events.size).toBe(1);
  });

  it("bounds each object's Events with a token bucket; other objects keep theirs; it refills with time", async () => {
    const { client, requests } = await fakeEvents();
    let now = 0;
    const r = new EventRecorder(client, "c", "h", silent, { now: () => now, burst: 3, refillMs: 1000 });
    const outcomes = [];
    for (let i = 0; i < 5; i++) outcomes.push(await r.recordOutcome(target, ev(`k${i}`)));
    expect(outcomes).toEqual(["created", "created", "created", "throttled", "throttled"]);
    expect(r.throttled).toBe(2);
    expect(await r.recordOutcome(other, ev("k0"))).toBe("created");
    now += 1000;
    expect(await r.recordOutcome(target, ev("k3"))).toBe("created");
    expect(await r.recordOutcome(target, ev("k4"))).toBe("throttled");
    expect(requests).toHaveLength(5);
  });

  it("forgets its oldest names past its memory: a forgotten name costs one request again, never a second Event", async () => {
    const { client, requests, events } = await fakeEvents();
    const r = new EventRecorder(client, "c", "h", silent, { memory: 2 });
    for (const k of ["a", "b", "c"]) await r.recordOutcome(target, ev(k));
    expect(await r.recordOutcome(target, ev("a"))).toBe("known");
    expect(requests).toHaveLength(4);
    expect(events.size).toBe(3);
  });
});
