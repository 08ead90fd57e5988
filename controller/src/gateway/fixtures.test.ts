/** Masked fixtures: what masking keeps of a webhook, and the SQLite store's bounds, against real files. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MASK } from "../diff/index.ts";
import { FIXTURES_FORMAT, parseFixtureDocument } from "../fixtures/format.ts";
import pino from "pino";
import type { AIRollout } from "../api/schema.ts";
import { fixtureEvents, FixtureStore, recordFixture, validateLimits, DEFAULT_FIXTURE_LIMITS, type EvictReason, type FixtureInput } from "./fixtures.ts";
import { createGatewayMetrics } from "./metrics.ts";
import { compileRollout } from "./rollouts.ts";
import { fixtureHeaders, maskFixture, maskJsonText, maskPath, type MaskedFixture } from "./fixtures-mask.ts";

const dir = mkdtempSync(join(tmpdir(), "airollout-fixtures-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rules = { masks: [] as (string | RegExp)[], secretHeaders: [] as string[], maxBytes: 64 * 1024 };

function masked(payload: unknown, headers: Record<string, string> = {}, path = "/hook", r = rules): MaskedFixture {
  const m = maskFixture({ method: "POST", path, headers, payload }, r);
  if ("skip" in m) throw new Error(`skipped: ${m.skip}`);
  return m;
}

describe("fixture masking", () => {
  it("masks personal data in the body by the diff samples' rule and keeps it valid JSON", () => {
    const m = masked({ from: "Ann <ann.lee@example.com>", phone: "+1 (555) 123-4567", text: "hi", n: 3 });
    expect(JSON.parse(m.body)).toEqual({ from: `Ann <${MASK.email}>`, phone: MASK.phone, text: "hi", n: 3 });
  });

  it("masks a card number sent as a JSON number leaf by leaf, the JSON still valid", () => {
    const m = masked({ card: 4111111111111111, amount: 12.5 });
    expect(JSON.parse(m.body)).toEqual({ card: MASK.card, amount: 12.5 });
  });

  it("redacts values under secret-named keys at any depth", () => {
    const m = masked({ token: "ghs_abcdef", user: { api_key: "k-1", password: "hunter2", name: "x" }, list: [{ client_secret: "s" }] });
    expect(JSON.parse(m.body)).toEqual({ token: "[REDACTED]", user: { api_key: "[REDACTED]", password: "[REDACTED]", name: "x" }, list: [{ client_secret: "[REDACTED]" }] });
    expect(m.body).not.toContain("ghs_abcdef");
    expect(m.body).not.toContain("hunter2");
  });

  it("applies the rollout's maskPatterns", () => {
    const m = masked({ ticket: "ACME-12345 broke" }, {}, "/hook", { ...rules, masks: [/ACME-\d+/] });
    expect(JSON.parse(m.body)).toEqual({ ticket: `${MASK.custom} broke` });
  });

  it("drops credentials, every signature header, the rollout's secret header and client addresses; masks the rest", () => {
    const h = fixtureHeaders(
      {
        authorization: "Bearer sk-live-1",
        cookie: "sid=1",
        "x-api-key": "k",
        "x-hub-signature-256": "sha256=ab",
        "x-hub-signature": "sha1=ab",
        "stripe-signature": "t=1,v1=ab",
        "webhook-signature": "v1,ab",
        "x-gitlab-token": "t",
        "X-My-Sig": "abc",
        "x-forwarded-for": "10.1.2.3",
        host: "gw",
        "content-length": "10",
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "x-github-event": "issues",
        "x-reply-to": "bob@example.org",
      },
      { masks: [], secretHeaders: ["x-my-sig"] },
    );
    expect(h).toEqual({ "content-type": "application/json", "webhook-id": "msg_1", "x-github-event": "issues", "x-reply-to": MASK.email });
  });

  it("keeps at most 32 headers, none longer than a golden suite accepts", () => {
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`x-h${i}`, "v"]));
    expect(Object.keys(fixtureHeaders({ ...many, "x-long": "a".repeat(9000) }, { masks: [], secretHeaders: [] }))).toHaveLength(32);
    expect(fixtureHeaders({ "x-long": "a".repeat(9000) }, { masks: [], secretHeaders: [] })).toEqual({});
  });

  it("redacts secret query parameters and masks %-encoded personal data in the path", () => {
    expect(maskPath("/v1/hook?email=ann%40example.com&access_token=abc&page=2", [])).toBe(`/v1/hook?email=${encodeURIComponent(MASK.email)}&access_token=${encodeURIComponent("[REDACTED]")}&page=2`);
    expect(maskPath("/users/ann@example.com/events", [])).toBe(`/users/${encodeURIComponent(MASK.email)}/events`);
    expect(maskPath("/plain/path", [])).toBe("/plain/path");
  });

  it("keeps no body that is too large or too deep, nor one a pattern spanning values would still match", () => {
    expect(maskFixture({ method: "POST", path: "/", headers: {}, payload: { t: "x".repeat(100) } }, { ...rules, maxBytes: 50 })).toEqual({ skip: "too_large" });
    let deep: unknown = 1;
    for (let i = 0; i < 300; i++) deep = [deep];
    expect(maskFixture({ method: "POST", path: "/", headers: {}, payload: deep }, rules)).toEqual({ skip: "too_deep" });
    expect(maskJsonText('{"a":1,"b":2}', [/"a":1,"b"/])).toBeUndefined();
    expect(maskFixture({ method: "POST", path: "/", headers: {}, payload: { a: 1, b: 2 } }, { ...rules, masks: [/"a":1,"b"/] })).toEqual({ skip: "unmaskable" });
  });
});

function input(name: string, i: number): FixtureInput {
  return { namespace: "ns", name, method: "POST", path: `/p${i}`, headers: { "content-type": "application/json" }, body: JSON.stringify({ i }), version: "v1", status: 200 };
}

function recorder() {
  const evicted: Record<string, number> = {};
  const stored: Record<string, number> = {};
  return {
    evicted,
    stored,
    events: {
      stored: (ns: string, n: string) => (stored[`${ns}/${n}`] = (stored[`${ns}/${n}`] ?? 0) + 1),
      evicted: (ns: string, n: string, reason: EvictReason, k: number) => (evicted[`${ns}/${n}/${reason}`] = (evicted[`${ns}/${n}/${reason}`] ?? 0) + k),
    },
  };
}

const bodies = (s: FixtureStore, name: string, count = 100) => s.document("ns", name, count, true).requests.map((r) => (r.body as { i: number }).i);

describe("fixture store", () => {
  it("keeps the newest fixtures of a rollout up to its cap, newest first, counting evictions", () => {
    const ev = recorder();
    const s = new FixtureStore(join(dir, "cap.db"), { limits: { perRollout: 3 }, events: ev.events });
    for (let i = 0; i < 5; i++) s.add(input("a", i));
    expect(bodies(s, "a")).toEqual([4, 3, 2]);
    expect(ev.stored["ns/a"]).toBe(5);
    expect(ev.evicted["ns/a/rollout_cap"]).toBe(2);
    expect(s.counts().get("ns/a")).toBe(3);
    s.close();
  });

  it("keeps at most the total over all rollouts, the oldest of any rollout going first", () => {
    const ev = recorder();
    const s = new FixtureStore(join(dir, "total.db"), { limits: { perRollout: 10, total: 4 }, events: ev.events });
    for (let i = 0; i < 3; i++) s.add(input("a", i));
    for (let i = 0; i < 3; i++) s.add(input("b", i));
    expect(s.total).toBe(4);
    expect(bodies(s, "a")).toEqual([2]);
    expect(bodies(s, "b")).toEqual([2, 1, 0]);
    expect(ev.evicted["ns/a/total_cap"]).toBe(2);
    s.close();
  });

  it("never returns a fixture past the retention, and deletes it on the next sweep", () => {
    const ev = recorder();
    let now = 1_000_000;
    const s = new FixtureStore(join(dir, "age.db"), { limits: { maxAgeMs: 60_000 }, events: ev.events, now: () => now });
    s.add(input("a", 0));
    now += 30_000;
    s.add(input("a", 1));
    now += 40_000;
    expect(bodies(s, "a")).toEqual([1]);
    s.sweep();
    expect(ev.evicted["ns/a/age"]).toBe(1);
    expect(s.counts().get("ns/a")).toBe(1);
    s.close();
  });

  it("deletes fixtures past the retention when it opens, without a write", () => {
    let now = 1_000_000;
    const file = join(dir, "age-open.db");
    const s = new FixtureStore(file, { limits: { maxAgeMs: 60_000 }, now: () => now });
    s.add(input("a", 0));
    s.close();
    now += 120_000;
    const ev = recorder();
    const again = new FixtureStore(file, { limits: { maxAgeMs: 60_000 }, events: ev.events, now: () => now });
    expect(again.total).toBe(0);
    expect(ev.evicted["ns/a/age"]).toBe(1);
    again.close();
  });

  it("admits a rollout's fixtures at its rate: a burst of 10x, then one per 1/rate seconds", () => {
    let now = 0;
    const s = new FixtureStore(join(dir, "rate.db"), { limits: { perSecond: 2 }, now: () => now });
    const admitted = Array.from({ length: 25 }, () => s.admit("ns", "a")).filter(Boolean).length;
    expect(admitted).toBe(20);
    expect(s.admit("ns", "b")).toBe(true);
    now += 500;
    expect(s.admit("ns", "a")).toBe(true);
    expect(s.admit("ns", "a")).toBe(false);
    s.close();
  });

  it("survives a restart: the rows and their counts are read back", () => {
    const file = join(dir, "restart.db");
    const s = new FixtureStore(file, { limits: { perRollout: 3 } });
    for (let i = 0; i < 3; i++) s.add(input("a", i));
    s.close();
    const again = new FixtureStore(file, { limits: { perRollout: 3 } });
    expect(again.counts().get("ns/a")).toBe(3);
    again.add(input("a", 3));
    expect(bodies(again, "a")).toEqual([3, 2, 1]);
    again.close();
  });

  it("forgets a deleted rollout's fixtures", () => {
    const ev = recorder();
    const s = new FixtureStore(join(dir, "forget.db"), { events: ev.events });
    s.add(input("a", 0));
    s.add(input("b", 0));
    s.forget("ns", "a");
    expect(bodies(s, "a")).toEqual([]);
    expect(bodies(s, "b")).toEqual([0]);
    expect(ev.evicted["ns/a/rollout_deleted"]).toBe(1);
    s.close();
  });

  it("answers the versioned document, which parses, limited to count", () => {
    const s = new FixtureStore(join(dir, "doc.db"));
    for (let i = 0; i < 4; i++) s.add(input("a", i));
    const doc = s.document("ns", "a", 2, true);
    expect(doc).toMatchObject({ format: FIXTURES_FORMAT, namespace: "ns", rollout: "a", watched: true, truncated: false });
    expect(doc.requests.map((r) => r.body)).toEqual([{ i: 3 }, { i: 2 }]);
    expect(doc.requests[0]).toMatchObject({ method: "POST", path: "/p3", headers: { "content-type": "application/json" }, version: "v1", status: 200 });
    expect(doc.requests[0]!.name).toMatch(/^fixture-\d+$/);
    expect(parseFixtureDocument(JSON.parse(JSON.stringify(doc)))).toMatchObject({ ok: true });
    expect(parseFixtureDocument({ ...doc, format: "airollout.dev/fixtures/v2" })).toMatchObject({ ok: false, message: expect.stringContaining("format") });
    s.close();
  });

  it("defaults to the bounds the README and the flags' help name", () => {
    expect(DEFAULT_FIXTURE_LIMITS).toEqual({ perRollout: 200, total: 10_000, maxAgeMs: 168 * 3600 * 1000, maxBytes: 65_536, perSecond: 1 });
  });

  it("refuses limits that are not positive, naming which", () => {
    expect(() => validateLimits({ ...DEFAULT_FIXTURE_LIMITS, perRollout: 0 })).toThrow(/per-rollout cap/);
    expect(() => validateLimits({ ...DEFAULT_FIXTURE_LIMITS, perSecond: Number.NaN })).toThrow(/per-second/);
    expect(() => validateLimits({ ...DEFAULT_FIXTURE_LIMITS, maxBytes: 1.5 })).toThrow(/max bytes/);
  });
});

describe("recordFixture", () => {
  const obj: AIRollout = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bot", namespace: "ns", uid: "u", generation: 1, resourceVersion: "1" },
    spec: {
      stable: { version: "v1", endpoint: "http://stable" },
      candidate: { version: "v2", endpoint: "http://candidate" },
      strategy: { steps: [{ setWeight: 10 }] },
      traffic: { signature: { scheme: "stripe", header: "X-Vendor-Mac", secretRef: { name: "s", key: "k" } } },
      shadow: { maskPatterns: ["ACME-\\d+"] },
    },
  };
  const counted = async (metrics: ReturnType<typeof createGatewayMetrics>, name: string, labels: Record<string, string>) => {
    const m = (await metrics.registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
    return m?.value ?? 0;
  };

  it("keeps 2xx answers only, at the rollout's rate, masked by its maskPatterns, without its own signature header; counts what it skips", async () => {
    const metrics = createGatewayMetrics();
    const r = compileRollout(obj, undefined, metrics);
    const store = new FixtureStore(join(dir, "record.db"), { limits: { perSecond: 0.1 }, events: fixtureEvents(metrics), now: () => 0 });
    const log = pino({ level: "silent" });
    const w = { rollout: r, method: "POST", path: "/t", headers: { "content-type": "application/json", "x-vendor-mac": "t=1,v1=ab" }, payload: { ticket: "ACME-42" }, version: "v1", status: 200 };
    recordFixture(store, metrics, { ...w, status: 500 }, log);
    expect(store.total).toBe(0);
    recordFixture(store, metrics, w, log);
    recordFixture(store, metrics, w, log);
    const doc = store.document("ns", "bot", 10, true);
    expect(doc.requests).toHaveLength(1);
    expect(doc.requests[0]).toMatchObject({ headers: { "content-type": "application/json" }, body: { ticket: MASK.custom } });
    expect(await counted(metrics, "airollout_fixtures_stored_total", { rollout: "bot", namespace: "ns" })).toBe(1);
    expect(await counted(metrics, "airollout_fixtures_skipped_total", { rollout: "bot", namespace: "ns", reason: "rate" })).toBe(1);
    store.close();
  });

  it("never throws: a store that fails is counted as skipped{reason=error}", async () => {
    const metrics = createGatewayMetrics();
    const r = compileRollout(obj, undefined, metrics);
    const store = new FixtureStore(join(dir, "closed.db"));
    store.close();
    recordFixture(store, metrics, { rollout: r, method: "POST", path: "/", headers: {}, payload: {}, version: "v1", status: 200 }, pino({ level: "silent" }));
    expect(await counted(metrics, "airollout_fixtures_skipped_total", { rollout: "bot", namespace: "ns", reason: "error" })).toBe(1);
  });
});

