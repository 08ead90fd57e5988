import { describe, expect, it } from "vitest";
import type { AIRollout } from "../api/schema.ts";
import { FOLLOW_EXIT, MAX_FAILED_CONNECTIONS, followRollout, restingPoint, type FollowPort } from "./status-watch.ts";

type Status = NonNullable<AIRollout["status"]>;

function rollout(rv: number, status: Status, generation = 2): AIRollout {
  return { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: "ns", generation, resourceVersion: String(rv) }, spec: {}, status: { observedGeneration: 2, stepCount: 3, ...status } } as unknown as AIRollout;
}

/** One scripted watch connection: events to deliver, then how it ends (or stays open). */
interface Script {
  events?: [string, unknown][];
  end?: "close" | { error: Error & { statusCode?: number } } | "open";
  /** Fails to connect at all (the promise rejects). */
  reject?: Error;
}

/** A fake API server: get() answers from a list, watch() plays scripts; records every call. */
class FakeApi implements FollowPort {
  gets: string[] = [];
  watches: { path: string; query: Record<string, string | number | boolean> }[] = [];
  aborted = 0;
  private readonly reads: AIRollout[];
  private readonly scripts: Script[];
  constructor(reads: AIRollout[], scripts: Script[]) {
    this.reads = reads;
    this.scripts = scripts;
  }
  async get(path: string): Promise<AIRollout> {
    this.gets.push(path);
    const next = this.reads.shift();
    if (!next) throw new Error("get: no more objects");
    return next;
  }
  async watch(path: string, query: Record<string, string | number | boolean>, onEvent: (type: string, obj: unknown) => void, onDone: (err: unknown) => void) {
    this.watches.push({ path, query });
    const s = this.scripts.shift() ?? { end: "open" };
    if (s.reject) throw s.reject;
    let done = false;
    setTimeout(() => {
      for (const [type, obj] of s.events ?? []) if (!done) onEvent(type, obj);
      if (done || s.end === "open") return;
      done = true;
      onDone(s.end === "close" || s.end === undefined ? null : s.end.error);
    }, 1);
    return { abort: () => ((done = true), this.aborted++) };
  }
}

async function follow(api: FakeApi, opts: { signal?: AbortSignal; timeoutMs?: number } = {}) {
  let out = "";
  const code = await followRollout({ port: api, namespace: "ns", name: "bot", write: (t) => (out += t), signal: opts.signal ?? new AbortController().signal, backoffMs: 1, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  return { code, out };
}

const progressing = (rv: number, step = 0) => rollout(rv, { phase: "Progressing", currentStep: step, canaryWeight: 10 * (step + 1) });

describe("restingPoint", () => {
  it("maps where a rollout rests to the documented exit codes, and keeps waiting while it moves", () => {
    expect(restingPoint(rollout(1, { phase: "Succeeded" }))?.code).toBe(0);
    expect(restingPoint(rollout(1, { phase: "RolledBack", message: "analysis failed" }))).toEqual({ code: 3, reason: "RolledBack: analysis failed" });
    expect(restingPoint(rollout(1, { phase: "RolledBack", abort: true }))?.code).toBe(4);
    expect(restingPoint(rollout(1, { phase: "Paused", pauseReason: "PauseStep" }))).toEqual({ code: 5, reason: "Paused (PauseStep): waiting for a human to promote or abort" });
    const stalled = rollout(1, { phase: "Progressing", conditions: [{ type: "Stalled", status: "True", reason: "ProgressDeadlineExceeded", message: "step 2 past 10m", lastTransitionTime: "2026-01-01T00:00:00Z" }] } as Status);
    expect(restingPoint(stalled)?.code).toBe(6);
    for (const phase of ["Pending", "Initialized", "ShadowTesting", "Progressing", "Promoting", "RollingBack", "Degraded"] as const) expect(restingPoint(rollout(1, { phase }))).toBeUndefined();
    expect(FOLLOW_EXIT).toMatchObject({ promoted: 0, error: 1, rolledBack: 3, aborted: 4, paused: 5, stalled: 6, timeout: 7, interrupted: 130 });
  });

  it("a status older than the spec never ends the wait (Succeeded for the previous version while a new one was just applied)", () => {
    expect(restingPoint(rollout(1, { phase: "Succeeded" }, 3))).toBeUndefined();
    expect(restingPoint(rollout(1, { phase: "Succeeded", observedGeneration: undefined } as Status))).toBeUndefined();
  });
});

describe("followRollout", () => {
  it("reads once, then follows the watch from that resourceVersion, reprinting on each change that shows, until Succeeded (exit 0)", async () => {
    const api = new FakeApi(
      [progressing(10)],
      [
        {
          events: [
            ["MODIFIED", progressing(11, 1)],
            ["MODIFIED", progressing(12, 1)], // same status shown: no reprint
            ["BOOKMARK", { metadata: { resourceVersion: "13" } }],
            ["MODIFIED", rollout(14, { phase: "Succeeded", currentStep: 3, canaryWeight: 100, candidateVersion: "v3" })],
          ],
          end: "open",
        },
      ],
    );
    const { code, out } = await follow(api);
    expect(code).toBe(0);
    // Not polling: one read, one watch, of this rollout only, from the read's version.
    expect(api.gets).toEqual(["/apis/airollout.dev/v1alpha1/namespaces/ns/airollouts/bot"]);
    expect(api.watches).toHaveLength(1);
    expect(api.watches[0]).toMatchObject({ path: "/apis/airollout.dev/v1alpha1/namespaces/ns/airollouts", query: { fieldSelector: "metadata.name=bot", resourceVersion: "10", allowWatchBookmarks: true } });
    expect(out.match(/^Phase: /gm)).toHaveLength(3);
    expect(out).toMatch(/Weight: +10%[\s\S]*--- \S+ ---\n[\s\S]*Weight: +20%[\s\S]*Phase: +Succeeded[\s\S]*Weight: +100%/);
    expect(out.trimEnd().split("\n").at(-1)).toBe("ns/bot: Succeeded: v3 promoted (exit 0)");
    expect(api.aborted).toBe(1);
  });

  it.each([
    [{ phase: "RolledBack", message: "error-rate failed" }, 3, "RolledBack: error-rate failed"],
    [{ phase: "RolledBack", abort: true }, 4, "Aborted: rolled back by a human"],
    [{ phase: "Paused", pauseReason: "AnalysisInconclusive" }, 5, "Paused (AnalysisInconclusive)"],
  ] as [Status, number, string][])("ends on %o with exit %i", async (status, exit, words) => {
    const api = new FakeApi([progressing(10)], [{ events: [["MODIFIED", rollout(11, status)]], end: "open" }]);
    const { code, out } = await follow(api);
    expect(code).toBe(exit);
    expect(out).toContain(words);
  });

  it("already at rest: prints once and exits without watching", async () => {
    const api = new FakeApi([rollout(10, { phase: "RolledBack" })], []);
    expect((await follow(api)).code).toBe(3);
    expect(api.watches).toHaveLength(0);
  });

  it("a dropped watch resumes from the last version seen; a closed healthy one is not a failure", async () => {
    const api = new FakeApi(
      [progressing(10)],
      [{ events: [["MODIFIED", progressing(11, 1)]], end: "close" }, { end: { error: Object.assign(new Error("ECONNRESET")) } }, { events: [["MODIFIED", rollout(15, { phase: "Succeeded" })]], end: "open" }],
    );
    const { code } = await follow(api);
    expect(code).toBe(0);
    expect(api.watches.map((w) => w.query.resourceVersion)).toEqual(["10", "11", "11"]);
    expect(api.gets).toHaveLength(1);
  });

  it(`gives up after ${MAX_FAILED_CONNECTIONS} failed connections in a row (exit 1), never retrying forever`, async () => {
    const scripts: Script[] = [{ reject: new Error("connect ECONNREFUSED") }, { end: "close" }, { end: { error: new Error("socket hang up") } }, { reject: new Error("connect ECONNREFUSED") }, { reject: new Error("connect ECONNREFUSED") }, { events: [["MODIFIED", rollout(20, { phase: "Succeeded" })]] }];
    const api = new FakeApi([progressing(10)], scripts);
    const { code, out } = await follow(api);
    expect(code).toBe(1);
    expect(api.watches).toHaveLength(MAX_FAILED_CONNECTIONS);
    expect(out).toContain(`the watch failed ${MAX_FAILED_CONNECTIONS} times in a row (connect ECONNREFUSED); giving up (exit 1)`);
  });

  it("410 Gone (the version compacted away) reads the object afresh and watches on from it", async () => {
    const api = new FakeApi([progressing(10), progressing(50, 2)], [{ events: [["ERROR", { code: 410, message: "too old resource version" }]] }, { events: [["MODIFIED", rollout(51, { phase: "Succeeded" })]], end: "open" }]);
    const { code, out } = await follow(api);
    expect(code).toBe(0);
    expect(api.gets).toHaveLength(2);
    expect(api.watches.map((w) => w.query.resourceVersion)).toEqual(["10", "50"]);
    expect(out).toMatch(/Weight: +30%/);
  });

  it("the rollout deleted while followed: exit 1", async () => {
    const api = new FakeApi([progressing(10)], [{ events: [["DELETED", progressing(11)]], end: "open" }]);
    const { code, out } = await follow(api);
    expect(code).toBe(1);
    expect(out).toContain("ns/bot: deleted (exit 1)");
  });

  it("Ctrl-C (the signal) ends it at once with 130 and closes the watch; --timeout with 7", async () => {
    const ctrlC = new AbortController();
    const api = new FakeApi([progressing(10)], [{ end: "open" }]);
    const running = follow(api, { signal: ctrlC.signal });
    await new Promise((r) => setTimeout(r, 20));
    ctrlC.abort();
    const { code, out } = await running;
    expect(code).toBe(130);
    expect(out).toContain("interrupted");
    expect(api.aborted).toBe(1);

    const slow = new FakeApi([progressing(10)], [{ end: "open" }]);
    expect((await follow(slow, { timeoutMs: 30 })).code).toBe(7);
    expect(slow.aborted).toBe(1);
  });
});
