import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { KubeClient } from "./client.ts";
import { Informer, metadataOnly, type KubeObject } from "./informer.ts";

interface Obj extends KubeObject {
  spec?: { big: string };
}

/** A client whose list answers the given pages in turn and whose watch stays open until aborted. */
function fakeClient(lists: Obj[][]): KubeClient {
  let n = 0;
  return {
    get: async () => ({ metadata: { resourceVersion: String(10 + n) }, items: structuredClone(lists[Math.min(n++, lists.length - 1)]) }),
    watcher: () => ({ watch: async () => ({ abort() {} }) }),
  } as unknown as KubeClient;
}

const obj = (name: string): Obj => ({ metadata: { name, namespace: "ns", resourceVersion: "7", uid: `u-${name}` }, spec: { big: "x".repeat(1000) } });

describe("Informer storeOnly", () => {
  it("hands handlers the whole object and keeps only what storeOnly returns", async () => {
    const seen: Obj[] = [];
    let synced!: () => void;
    const done = new Promise<void>((r) => (synced = r));
    const inf = new Informer<Obj>(fakeClient([[obj("a"), obj("b")]]), "/x", { onUpsert: (o) => seen.push(o), onDelete: () => {}, onSync: () => synced() }, pino({ level: "silent" }), { storeOnly: metadataOnly });
    inf.start();
    await done;
    await inf.stop();
    expect(seen.map((o) => o.spec?.big.length)).toEqual([1000, 1000]);
    expect(inf.get("ns/a")).toEqual({ metadata: { name: "a", namespace: "ns", resourceVersion: "7", uid: "u-a" } });
    expect(inf.keys().sort()).toEqual(["ns/a", "ns/b"]);
  });

  it("without it the store keeps the whole object", async () => {
    let synced!: () => void;
    const done = new Promise<void>((r) => (synced = r));
    const inf = new Informer<Obj>(fakeClient([[obj("a")]]), "/x", { onUpsert: () => {}, onDelete: () => {}, onSync: () => synced() }, pino({ level: "silent" }));
    inf.start();
    await done;
    await inf.stop();
    expect(inf.get("ns/a")?.spec?.big.length).toBe(1000);
  });

  it("an observed write is kept reduced too, and a newer version still wins", () => {
    const inf = new Informer<Obj>(fakeClient([[]]), "/x", { onUpsert: () => {}, onDelete: () => {} }, pino({ level: "silent" }), { storeOnly: metadataOnly });
    inf.observe({ ...obj("a"), metadata: { ...obj("a").metadata, resourceVersion: "9" } });
    expect(inf.get("ns/a")).toEqual({ metadata: { name: "a", namespace: "ns", resourceVersion: "9", uid: "u-a" } });
    inf.observe(obj("a"));
    expect(inf.get("ns/a")?.metadata.resourceVersion).toBe("9");
  });
});
