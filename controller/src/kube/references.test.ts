import { createHash } from "node:crypto";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { KubeClient } from "./client.ts";
import { Informer } from "./informer.ts";
import { ReferenceIndex, digestsOf, lookupIn, observeReferences, summarize, type ReferenceCache, type ReferencedObject } from "./references.ts";
import type { Reference } from "../reconcile/contract.ts";

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const sha16 = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 16);
const log = pino({ level: "silent" });

describe("summarize", () => {
  const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "llm", namespace: "team", resourceVersion: "7", uid: "u-1", annotations: { a: "b" } }, data: { token: b64("hunter2") }, type: "Opaque" };

  it("keeps metadata and a digest per key, never a value", () => {
    const s = summarize("Secret", secret);
    expect(s).toEqual({ metadata: { name: "llm", namespace: "team", resourceVersion: "7", uid: "u-1" }, digests: { token: expect.stringMatching(/^[0-9a-f]{16}$/) } });
    const text = JSON.stringify(s);
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain(b64("hunter2"));
  });

  it("keys Secret digests by the Secret's uid, so a digest in status does not give a short secret away", () => {
    const a = digestsOf("Secret", secret).token;
    expect(a).not.toBe(sha16("hunter2"));
    expect(digestsOf("Secret", { ...secret, metadata: { ...secret.metadata, uid: "u-2" } }).token).not.toBe(a);
    expect(digestsOf("Secret", { ...secret, data: { token: b64("hunter3") } }).token).not.toBe(a);
    expect(digestsOf("Secret", { ...secret, metadata: { ...secret.metadata, resourceVersion: "8" } }).token).toBe(a);
  });

  it("digests ConfigMap data as sha256 of the text and binaryData of the decoded bytes", () => {
    const cm = { metadata: { name: "prompts", namespace: "team", resourceVersion: "3", uid: "c" }, data: { "triage.txt": "Classify: {{body}}" }, binaryData: { "logo.png": b64("PNG") } };
    expect(digestsOf("ConfigMap", cm)).toEqual({ "triage.txt": sha16("Classify: {{body}}"), "logo.png": sha16("PNG") });
    expect(digestsOf("ConfigMap", { metadata: cm.metadata })).toEqual({});
  });
});

describe("ReferenceIndex", () => {
  it("maps objects to the rollouts that refer to them, rebuilt as rollouts change", () => {
    const idx = new ReferenceIndex();
    idx.set("team/a", "team", [{ kind: "ConfigMap", name: "prompts" }, { kind: "Secret", name: "llm" }, { kind: "ConfigMap", name: "prompts" }]);
    idx.set("team/b", "team", [{ kind: "ConfigMap", name: "prompts" }]);
    idx.set("other/c", "other", [{ kind: "ConfigMap", name: "prompts" }]);
    expect(idx.rolloutsFor("team", "ConfigMap", "prompts").sort()).toEqual(["team/a", "team/b"]);
    expect(idx.rolloutsFor("team", "Secret", "prompts")).toEqual([]);
    expect(idx.rolloutsFor("team", "Secret", "llm")).toEqual(["team/a"]);
    idx.set("team/a", "team", [{ kind: "ConfigMap", name: "prompts-v2" }]);
    expect(idx.rolloutsFor("team", "Secret", "llm")).toEqual([]);
    expect(idx.rolloutsFor("team", "ConfigMap", "prompts")).toEqual(["team/b"]);
    idx.remove("team/b");
    expect(idx.rolloutsFor("team", "ConfigMap", "prompts")).toEqual([]);
    expect(idx.rolloutsFor("other", "ConfigMap", "prompts")).toEqual(["other/c"]);
  });
});

describe("observeReferences", () => {
  const refs: Reference[] = [
    { kind: "ConfigMap", name: "prompts", key: "triage.txt", field: "spec.candidate.config.promptRef" },
    { kind: "Secret", name: "llm", key: "token", field: "spec.candidate.env[0].valueFrom.secretKeyRef" },
    { kind: "ConfigMap", name: "prompts", key: "other", field: "spec.stable.config.promptRef" },
  ];

  it("reads from the cache and falls back to a read per object only where the cache cannot tell", async () => {
    const cm: ReferencedObject = { metadata: { name: "prompts", namespace: "team", resourceVersion: "1" }, digests: { "triage.txt": "aaaaaaaaaaaaaaaa" } };
    const configMaps = { hasSynced: true, get: (k: string) => (k === "team/prompts" ? cm : undefined) };
    const secrets = { hasSynced: false, get: () => undefined };
    const cache: ReferenceCache = { lookup: (ns, kind, name) => lookupIn(kind === "Secret" ? secrets : configMaps, ns, name) };
    const read: string[] = [];
    const world = await observeReferences(refs, "team", cache, async (r) => {
      read.push(`${r.kind}/${r.name}`);
      return { exists: true, keys: ["token"], digests: { token: "bbbbbbbbbbbbbbbb" } };
    });
    expect(read).toEqual(["Secret/llm"]);
    expect(world).toEqual({
      "ConfigMap/prompts": { exists: true, keys: ["triage.txt"], digests: { "triage.txt": "aaaaaaaaaaaaaaaa" } },
      "Secret/llm": { exists: true, keys: ["token"], digests: { token: "bbbbbbbbbbbbbbbb" } },
    });
  });

  it("reports an object absent from a synced cache as missing, without reading it", async () => {
    const store = { hasSynced: true, get: () => undefined };
    const world = await observeReferences(refs.slice(0, 1), "team", { lookup: (ns, _k, name) => lookupIn(store, ns, name) }, () => Promise.reject(new Error("must not read")));
    expect(world).toEqual({ "ConfigMap/prompts": { exists: false, keys: [] } });
  });
});

describe("Informer with a transform", () => {
  /** A client answering a paged list, then a watch that delivers the given events. */
  function fakeClient(pages: { items: unknown[]; continue?: string }[], events: [string, unknown][]) {
    const queries: unknown[] = [];
    const client = {
      get: async (_path: string, query: Record<string, unknown>) => {
        queries.push(query);
        const page = pages[queries.length - 1]!;
        return { metadata: { resourceVersion: "100", ...(page.continue ? { continue: page.continue } : {}) }, items: page.items };
      },
      watcher: () => ({
        watch: async (_path: string, _opts: unknown, cb: (type: string, obj: unknown) => void) => {
          const ctl = new AbortController();
          setTimeout(() => events.forEach(([t, o]) => cb(t, o)), 0);
          return ctl;
        },
      }),
    };
    return { client: client as unknown as KubeClient, queries };
  }
  const secret = (name: string, rv: string, value: string) => ({ metadata: { name, namespace: "team", resourceVersion: rv, uid: `u-${name}` }, data: { token: b64(value) } });

  it("stores and hands on only the transformed objects, over every list page and watch event", async () => {
    const { client, queries } = fakeClient(
      [{ items: [secret("a", "1", "one")], continue: "next" }, { items: [secret("b", "2", "two")] }],
      [["MODIFIED", secret("a", "101", "uno")]],
    );
    const seen: ReferencedObject[] = [];
    const inf = new Informer<ReferencedObject>(client, "/api/v1/namespaces/team/secrets", { onUpsert: (o) => seen.push(o), onDelete: () => {} }, log, {
      transform: (raw) => summarize("Secret", raw),
      pageSize: 1,
    });
    inf.start();
    await waitUntil(() => seen.length === 3);
    await inf.stop();
    expect(queries).toEqual([{ limit: 1 }, { limit: 1, continue: "next" }]);
    expect(inf.hasSynced).toBe(true);
    expect(seen.map((o) => o.metadata.name)).toEqual(["a", "b", "a"]);
    expect(inf.get("team/a")!.metadata.resourceVersion).toBe("101");
    expect(inf.get("team/a")!.digests.token).not.toBe(seen[0]!.digests.token);
    for (const o of [...seen, inf.get("team/a"), inf.get("team/b")]) {
      expect(Object.keys(o!).sort()).toEqual(["digests", "metadata"]);
      expect(JSON.stringify(o)).not.toMatch(/one|two|uno|b25l|dHdv|dW5v/);
    }
  });
});

async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}
