import { Writable } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { NoopEnvironments } from "../environments/noop.ts";
import { PREVIEW_FINALIZER, type AIPreview, type PreviewStatus } from "../api/preview-schema.ts";
import { ApiError, type KubeClient } from "./client.ts";
import { PreviewController, previewsOf, RolloutWakes, rolloutMeta } from "./preview-controller.ts";

/** A logger whose lines land in `lines`. */
function capture() {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }), done()) });
  return { log: pino({ level: "debug" }, sink), lines };
}

describe("PreviewController without the AIPreview CRD", () => {
  it("warns once, lists nothing, and stops cleanly: an AIRollout-only cluster (CRD not upgraded) runs on", async () => {
    const paths: string[] = [];
    const client = {
      get: async (path: string) => {
        paths.push(path);
        return { resources: [{ name: "airollouts" }, { name: "airollouts/status" }] };
      },
    } as unknown as KubeClient;
    const { log, lines } = capture();
    const c = new PreviewController({ client, log, environments: new NoopEnvironments(), identity: "t" });
    c.start();
    await new Promise((r) => setTimeout(r, 50));
    await c.stop();
    expect(paths).toEqual(["/apis/airollout.dev/v1alpha1"]);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual(["the AIPreview CRD is not installed: previews are not reconciled until it is (kubectl apply -f crds/aipreview.yaml)"]);
    expect(lines.some((l) => l.msg === "watching previews")).toBe(false);
  });
});

describe("RolloutWakes and previewsOf: which rollout events wake which previews", () => {
  const meta = (name: string, generation: number, namespace = "ns") => rolloutMeta({ metadata: { name, namespace, resourceVersion: "1", generation, uid: "u", managedFields: [{}] }, spec: { big: "x" }, status: { phase: "Paused" } });

  it("keeps only name, namespace, resourceVersion and generation of a rollout", () => {
    expect(meta("bot", 3)).toEqual({ metadata: { name: "bot", namespace: "ns", resourceVersion: "1", generation: 3 } });
  });

  it("first sight and a new generation wake; a status-only update (same generation) does not; a deletion does, and forgets the rollout", () => {
    const w = new RolloutWakes();
    expect(w.upsert(meta("bot", 1))).toBe(true);
    expect(w.upsert(meta("bot", 1))).toBe(false);
    expect(w.upsert(meta("bot", 2))).toBe(true);
    expect(w.upsert(meta("other", 1))).toBe(true);
    expect(w.size).toBe(2);
    expect(w.delete(meta("bot", 2))).toBe(true);
    expect(w.size).toBe(1);
    // Created again after the deletion: news again.
    expect(w.upsert(meta("bot", 1))).toBe(true);
  });

  it("previewsOf picks the previews of that namespace whose rolloutRef names the rollout", () => {
    const p = (name: string, namespace: string, ref: unknown) => ({ apiVersion: "airollout.dev/v1alpha1", kind: "AIPreview", metadata: { name, namespace, uid: name, generation: 1, resourceVersion: "1" }, spec: { rolloutRef: { name: ref } } }) as AIPreview;
    const all = [p("a", "ns", "bot"), p("b", "ns", "other"), p("c", "elsewhere", "bot"), p("d", "ns", "bot"), p("e", "ns", 7)];
    expect(previewsOf(all, "ns", "bot")).toEqual(["ns/a", "ns/d"]);
    expect(previewsOf(all, "ns", "none")).toEqual([]);
  });
});

describe("PreviewController wakes a rollout's previews when the rollout changes", () => {
  type WatchCallback = (type: string, obj: unknown) => void;
  const rolloutObj = (generation: number, candidate: string) => ({
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bot", namespace: "ns", uid: "r1", generation, resourceVersion: String(generation * 100) },
    spec: { stable: { version: "v1", endpoint: "http://127.0.0.1:9/v1" }, candidate: { version: candidate, endpoint: `http://127.0.0.1:9/${candidate}` }, strategy: { steps: [{ pause: {} }] } },
  });

  it("a candidate edit reaches a preview without spec.version at once (no resync); a status-only update reads nothing; a deletion makes it RolloutNotFound", async () => {
    let current: ReturnType<typeof rolloutObj> | undefined = rolloutObj(1, "v2");
    const preview = { apiVersion: "airollout.dev/v1alpha1", kind: "AIPreview", metadata: { name: "pr-1", namespace: "ns", uid: "p1", generation: 1, resourceVersion: "1", creationTimestamp: new Date().toISOString(), finalizers: [PREVIEW_FINALIZER] }, spec: { rolloutRef: { name: "bot" }, ttl: "1h" } };
    const watches = new Map<string, WatchCallback>();
    const statuses: PreviewStatus[] = [];
    let rolloutReads = 0;
    let rv = 100;
    const echo = async (_path: string, body: unknown) => {
      const o = structuredClone(body) as { metadata?: { resourceVersion?: string } };
      if (o.metadata) o.metadata.resourceVersion = String(++rv);
      return o;
    };
    const client = {
      get: async (path: string) => {
        if (path === "/apis/airollout.dev/v1alpha1") return { resources: [{ name: "airollouts" }, { name: "aipreviews" }] };
        if (path.includes("/airollouts/bot")) {
          rolloutReads++;
          if (!current) throw new ApiError("GET", path, 404, { reason: "NotFound" });
          return structuredClone(current);
        }
        if (path.includes("/aipreviews")) return { metadata: { resourceVersion: "1" }, items: [structuredClone(preview)] };
        return { metadata: { resourceVersion: "1" }, items: current ? [structuredClone(current)] : [] };
      },
      watcher: () => ({
        watch: async (path: string, _opts: unknown, cb: WatchCallback) => {
          watches.set(path.includes("/airollouts") ? "rollouts" : "previews", cb);
          return new AbortController();
        },
      }),
      create: echo,
      patch: echo,
      replace: async (path: string, body: { status: PreviewStatus }) => {
        statuses.push(body.status);
        return echo(path, body);
      },
    } as unknown as KubeClient;
    const c = new PreviewController({ client, log: capture().log, environments: new NoopEnvironments(), identity: "t", namespace: "ns" });
    const until = async <T>(what: string, f: () => T | undefined): Promise<T> => {
      for (let i = 0; i < 400; i++) {
        const v = f();
        if (v !== undefined) return v;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    c.start();
    try {
      await until("Ready at v2", () => statuses.find((s) => s.phase === "Ready" && s.url === "http://127.0.0.1:9/v2"));
      await until("the rollout watch", () => watches.get("rollouts"));
      // A status-only update: same generation, so nothing is read or written.
      const [reads, writes] = [rolloutReads, statuses.length];
      watches.get("rollouts")!("MODIFIED", { ...rolloutObj(1, "v2"), metadata: { ...rolloutObj(1, "v2").metadata, resourceVersion: "50" }, status: { phase: "Paused" } });
      await new Promise((r) => setTimeout(r, 100));
      expect([rolloutReads, statuses.length]).toEqual([reads, writes]);
      // The candidate moves: the preview follows without waiting for the 5-minute resync.
      current = rolloutObj(2, "v3");
      watches.get("rollouts")!("MODIFIED", current);
      await until("Ready at v3", () => statuses.find((s) => s.phase === "Ready" && s.url === "http://127.0.0.1:9/v3"));
      current = undefined;
      watches.get("rollouts")!("DELETED", rolloutObj(2, "v3"));
      const gone = await until("RolloutNotFound", () => statuses.find((s) => s.phase === "Failed"));
      expect(gone.conditions?.find((x) => x.type === "Stalled")).toMatchObject({ status: "True", reason: "RolloutNotFound" });
      expect(gone.url).toBeUndefined();
    } finally {
      await c.stop();
    }
  });
});
