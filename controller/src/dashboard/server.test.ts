import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ANNOTATIONS, type AIRollout, type Status } from "../api/schema.ts";
import { shortHash } from "../api/hash.ts";
import { ApiError } from "../kube/client.ts";
import type { ChangeType, DashboardKube } from "./kube.ts";
import { Live, MAX_BUFFERED, MAX_CLIENTS } from "./live.ts";
import { History, MAX_MEASUREMENTS, MAX_WEIGHT_POINTS, toDetail, toRow } from "./model.ts";
import { externalReferences, inlineAssets, renderReport } from "./report.ts";
import { bootstrapScript, Dashboard, type DashboardOptions } from "./server.ts";
import { VENDOR_FILES } from "./vendor.ts";

function rollout(name: string, status: Status = {}, extra: Partial<AIRollout["metadata"]> = {}, spec: unknown = {}): AIRollout {
  return { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: "team", uid: `uid-${name}`, generation: 1, resourceVersion: "1", creationTimestamp: "2026-01-01T00:00:00Z", ...extra }, spec, status };
}

/** A Kubernetes of a few AIRollouts in memory: patches apply to the stored objects; a user may lack patch rights. */
class FakeKube implements DashboardKube {
  objects = new Map<string, AIRollout>();
  events_: unknown[] = [];
  patches: { path: string; body: unknown }[] = [];
  canPatch = true;
  canList = true;
  watchers: ((type: ChangeType, obj: AIRollout) => void)[] = [];
  stopped = 0;
  readonly control = {
    get: async <T,>(path: string): Promise<T> => this.#byPath(path) as T,
    patch: async <T,>(path: string, body: unknown): Promise<T> => {
      if (!this.canPatch) throw new ApiError("PATCH", path, 403, { kind: "Status", reason: "Forbidden", message: `airollouts.airollout.dev "x" is forbidden: User "viewer" cannot patch resource "airollouts"` });
      this.patches.push({ path, body });
      return this.#byPath(path) as T;
    },
  };
  add(o: AIRollout) {
    this.objects.set(`${o.metadata.namespace}/${o.metadata.name}`, o);
  }
  #byPath(path: string): AIRollout {
    const [, ns, name] = path.match(/namespaces\/([^/]+)\/airollouts\/([^/]+)$/) ?? [];
    const o = this.objects.get(`${ns}/${name}`);
    if (!o) throw new ApiError("GET", path, 404, { reason: "NotFound", message: `airollouts "${name}" not found` });
    return o;
  }
  async list(namespace: string | undefined) {
    if (!this.canList) throw new ApiError("GET", "/x", 403, { reason: "Forbidden", message: `User "nobody" cannot list resource "airollouts" in namespace "${namespace}"` });
    return [...this.objects.values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace);
  }
  async get(namespace: string, name: string) {
    return this.#byPath(`/namespaces/${namespace}/airollouts/${name}`);
  }
  async events() {
    return this.events_ as never[];
  }
  watch(_ns: string | undefined, onChange: (type: ChangeType, obj: AIRollout) => void) {
    this.watchers.push(onChange);
    return { stop: async () => void this.stopped++ };
  }
}

const log = pino({ level: "silent" });
let open: { server: Server; dashboard: Dashboard }[] = [];
afterEach(async () => {
  for (const o of open) await o.dashboard.stop(o.server);
  open = [];
});

async function start(kube: FakeKube, opts: Partial<DashboardOptions> = {}) {
  const dashboard = new Dashboard({ kube, namespace: "team", readOnly: false, loopback: true, log, uiDir: "/nonexistent", ...opts });
  const { server, port } = await dashboard.listen(0, "127.0.0.1");
  open.push({ server, dashboard });
  const base = `http://127.0.0.1:${port}`;
  const post = (path: string, headers: Record<string, string> = { "x-airollout-csrf": dashboard.csrfToken }) => fetch(base + path, { method: "POST", headers });
  return { dashboard, base, post };
}

const paused: Status = { phase: "Paused", pauseReason: "PauseStep", currentStep: 1, stepCount: 3, canaryWeight: 20 };

describe("list and detail", () => {
  it("a row carries phase, step, weight, both versions with model and prompt digest, shadow mismatch and age", () => {
    const spec = { candidate: { version: "v2", config: { model: "big", prompt: "be nice" } }, stable: { version: "v1", config: { model: "small", promptRef: { configMap: "prompts", key: "p.txt" } } } };
    const o = rollout("bot", { ...paused, stableVersion: "v1", candidateVersion: "v2", shadow: { mismatchRate: "0.25", compared: 40, judged: true }, conditions: [{ type: "Ready", status: "False", reason: "Paused", lastTransitionTime: "2026-01-01T00:00:00Z" }] } as Status, {}, spec);
    const row = toRow(o, Date.parse("2026-01-01T00:01:40Z"));
    expect(row).toMatchObject({ phase: "Paused", pauseReason: "PauseStep", step: { index: 1, total: 3 }, weight: 20, ready: "False", ageSeconds: 100 });
    expect(row.candidate).toEqual({ version: "v2", model: "big", promptDigest: shortHash("be nice"), promptRef: null });
    expect(row.stable).toEqual({ version: "v1", model: "small", promptDigest: null, promptRef: "prompts/p.txt" });
    expect(row.shadow).toMatchObject({ mismatchRate: "0.25", compared: 40, judged: true });
    // The promoted record outranks spec.stable; a promptRef candidate shows the revision's content digest.
    const promoted = rollout("bot", { stable: { version: "v9", spec: { version: "v9", port: 8080, replicas: 1, config: { model: "m9" } }, revision: "r", promotedAt: "t" }, revisionInputs: { "spec.candidate.config.promptRef": "abcdabcdabcdabcd" } } as Status, {}, { ...spec, candidate: { version: "v2", config: { promptRef: { configMap: "c", key: "k" } } } });
    expect(toRow(promoted).stable.model).toBe("m9");
    expect(toRow(promoted).candidate.promptDigest).toBe("abcdabcdabcdabcd");
    expect(toRow(rollout("empty", undefined))).toMatchObject({ phase: "Pending", weight: 0, step: { index: 0, total: 0 } });
  });

  it("GET /api/rollouts lists the server's namespace by default, another on request, and passes a 403 through with the API server's message", async () => {
    const kube = new FakeKube();
    kube.add(rollout("b", paused));
    kube.add(rollout("a"));
    kube.add({ ...rollout("c"), metadata: { ...rollout("c").metadata, namespace: "other" } });
    const { base } = await start(kube);
    const list = (await (await fetch(`${base}/api/rollouts`)).json()) as { namespace: string; items: { name: string }[] };
    expect(list.namespace).toBe("team");
    expect(list.items.map((r) => r.name)).toEqual(["a", "b"]);
    expect(((await (await fetch(`${base}/api/rollouts?namespace=other`)).json()) as { items: unknown[] }).items).toHaveLength(1);
    expect(((await (await fetch(`${base}/api/rollouts?namespace=*`)).json()) as { items: unknown[] }).items).toHaveLength(3);
    const bad = await fetch(`${base}/api/rollouts?namespace=Not_A_Name`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain("namespace");
    kube.canList = false;
    const refused = await fetch(`${base}/api/rollouts`);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({ error: "Forbidden", status: 403, message: `User "nobody" cannot list resource "airollouts" in namespace "team"` });
  });

  it("GET /api/rollouts/:ns/:name: timeline with the current step and its start, thresholds from the spec, events newest first, 404 passed through", async () => {
    const kube = new FakeKube();
    const status: Status = {
      ...paused,
      stepStartedAt: "2026-01-01T00:05:00Z",
      steps: [
        { index: 0, type: "setWeight", weight: 20 },
        { index: 1, type: "pause" },
        { index: 2, type: "analysis", metrics: ["error-rate"] },
      ],
      analysis: { current: { id: "step-2", step: 2, phase: "Running", startedAt: "2026-01-01T00:06:00Z", metrics: [{ name: "error-rate", phase: "Running", query: "sum(rate(x[1m]))", successful: 1, failed: 0, inconclusive: 0, error: 0, consecutiveError: 0, measurements: [{ time: "2026-01-01T00:06:30Z", value: "0.01", phase: "Successful" }] }] } },
    };
    kube.add(rollout("bot", status, {}, { analysis: { metrics: [{ name: "error-rate", query: "q", successCondition: "result < 0.05", max: 0.05 }] } }));
    kube.events_ = [
      { type: "Normal", reason: "Old", message: "first", lastTimestamp: "2026-01-01T00:00:01Z" },
      { type: "Warning", reason: "New", message: "second", lastTimestamp: "2026-01-01T00:09:00Z", count: 3 },
    ];
    const { base } = await start(kube);
    const d = (await (await fetch(`${base}/api/rollouts/team/bot`)).json()) as ReturnType<typeof toDetail>;
    expect(d.timeline.map((s) => s.state)).toEqual(["done", "current", "pending"]);
    expect(d.timeline[1]!.startedAt).toBe("2026-01-01T00:05:00Z");
    expect(d.timeline[2]!.startedAt).toBe("2026-01-01T00:06:00Z"); // known from its analysis run
    const m = d.analysis[0]!.metrics[0]!;
    expect(m).toMatchObject({ name: "error-rate", query: "sum(rate(x[1m]))", threshold: { successCondition: "result < 0.05", failureCondition: null, min: null, max: 0.05 } });
    expect(m.measurements).toEqual([{ time: "2026-01-01T00:06:30Z", value: "0.01", phase: "Successful", message: null }]);
    expect(d.events.map((e) => e.reason)).toEqual(["New", "Old"]);
    expect(d.events[0]!.count).toBe(3);
    const missing = await fetch(`${base}/api/rollouts/team/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { message: string }).message).toBe(`airollouts "nope" not found`);
  });
});

describe("thresholds", () => {
  it("a templateRef metric shows its built-in template's condition; a metric's own criteria replace the template's as a group", () => {
    const metrics = (names: string[]) => ({ current: { id: "s", step: 0, phase: "Running", startedAt: "2026-01-01T00:00:00Z", metrics: names.map((name) => ({ name, phase: "Running", successful: 0, failed: 0, inconclusive: 0, error: 0, consecutiveError: 0, measurements: [] })) } });
    const spec = { analysis: { metrics: [{ name: "errors", templateRef: "error-rate" }, { name: "own", templateRef: "error-rate", max: 0.02 }] } };
    const d = toDetail(rollout("bot", { analysis: metrics(["errors", "own"]) } as unknown as Status, {}, spec), new History(), []);
    const [errors, own] = d.analysis[0]!.metrics;
    expect(errors!.threshold).toEqual({ successCondition: "result <= 0.01", failureCondition: null, min: null, max: null });
    expect(own!.threshold).toEqual({ successCondition: null, failureCondition: null, min: null, max: 0.02 });
  });
});

describe("history (what the watch saw)", () => {
  it("keeps weights as they change and measurements past the status's bound, both bounded", () => {
    const h = new History();
    const series = (n: number) => Array.from({ length: n }, (_, i) => ({ time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), value: String(i), phase: "Successful" as const }));
    const run = (ms: ReturnType<typeof series>) => ({ current: { id: "bg", phase: "Running" as const, startedAt: "t", metrics: [{ name: "m", phase: "Running" as const, successful: 0, failed: 0, inconclusive: 0, error: 0, consecutiveError: 0, measurements: ms }] } });
    // The status keeps the latest 10 measurements; the dashboard saw 30 of them over time.
    const all = series(30);
    for (let i = 0; i < 30; i += 10) h.observe(rollout("bot", { canaryWeight: i, analysis: run(all.slice(i, i + 10)) }), new Date(Date.UTC(2026, 0, 1, 0, i)));
    h.observe(rollout("bot", { canaryWeight: 20, analysis: run(all.slice(20, 30)) })); // same weight: no new point
    const d = toDetail(rollout("bot", { canaryWeight: 20, analysis: run(all.slice(20, 30)) }), h, []);
    expect(d.weightHistory.map((p) => p.weight)).toEqual([0, 10, 20]);
    expect(d.analysis[0]!.metrics[0]!.measurements.map((m) => m.value)).toEqual(all.map((m) => m.value));

    for (let i = 0; i < MAX_WEIGHT_POINTS + 50; i++) h.observe(rollout("bot", { canaryWeight: i % 2, analysis: run(series(MAX_MEASUREMENTS + 20)) }));
    const after = h.get("team", "bot");
    expect(after.weights).toHaveLength(MAX_WEIGHT_POINTS);
    expect(after.measurements.get("bg/m")).toHaveLength(MAX_MEASUREMENTS);
    h.forget("team", "bot");
    expect(h.get("team", "bot").weights).toHaveLength(0);
  });

  it("remembers when each step it saw started and finished", () => {
    const h = new History();
    const steps = [0, 1, 2].map((index) => ({ index, type: "pause" as const }));
    h.observe(rollout("bot", { currentStep: 0, steps, stepStartedAt: "2026-01-01T00:00:00Z" }));
    h.observe(rollout("bot", { currentStep: 2, steps, stepStartedAt: "2026-01-01T00:10:00Z" }));
    const t = toDetail(rollout("bot", { currentStep: 2, steps, stepStartedAt: "2026-01-01T00:10:00Z" }), h, []).timeline;
    expect(t[0]).toMatchObject({ state: "done", startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:10:00Z" });
    expect(t[1]).toMatchObject({ state: "done", startedAt: null, finishedAt: "2026-01-01T00:10:00Z" });
    expect(t[2]).toMatchObject({ state: "current", startedAt: "2026-01-01T00:10:00Z", finishedAt: null });
  });
});

describe("actions", () => {
  it("promote, promote-full, abort write the CLI's annotations; the answer says what was requested", async () => {
    const kube = new FakeKube();
    kube.add(rollout("bot", paused));
    const { post } = await start(kube);
    for (const [action, annotation, prefix] of [["promote", ANNOTATIONS.promote, /^step-/], ["promote-full", ANNOTATIONS.promote, /^full-/], ["abort", ANNOTATIONS.abort, /^[0-9a-z]+$/]] as const) {
      const res = await post(`/api/rollouts/team/bot/actions/${action}`);
      expect(res.status, action).toBe(200);
      const body = (await res.json()) as { annotation: string; value: string; phaseBefore: string; message: string };
      expect(body.annotation).toBe(annotation);
      expect(body.value).toMatch(prefix);
      expect(body.phaseBefore).toBe("Paused");
      expect(kube.patches.at(-1)).toEqual({ path: "/apis/airollout.dev/v1alpha1/namespaces/team/airollouts/bot", body: { metadata: { annotations: { [annotation]: body.value } } } });
    }
  });

  it("refuses: retry of a running rollout (409), an unknown action (404), a read-only dashboard (403), and passes the API server's 403", async () => {
    const kube = new FakeKube();
    kube.add(rollout("bot", paused));
    const { post } = await start(kube);
    const retry = await post("/api/rollouts/team/bot/actions/retry");
    expect(retry.status).toBe(409);
    expect(((await retry.json()) as { message: string }).message).toContain("retry restarts a RolledBack rollout");
    expect((await post("/api/rollouts/team/bot/actions/delete")).status).toBe(404);
    kube.canPatch = false;
    const forbidden = await post("/api/rollouts/team/bot/actions/promote");
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toEqual({ error: "Forbidden", status: 403, message: `airollouts.airollout.dev "x" is forbidden: User "viewer" cannot patch resource "airollouts"` });
    kube.canPatch = true;
    const ro = await start(kube, { readOnly: true });
    const refused = await ro.post("/api/rollouts/team/bot/actions/promote");
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toBe("read_only");
    expect(kube.patches).toHaveLength(0);
  });

  it("CSRF: a POST without the page's token, with another token or from another Origin is refused; a foreign Host is refused on loopback", async () => {
    const kube = new FakeKube();
    kube.add(rollout("bot", paused));
    const { post, dashboard, base } = await start(kube);
    const path = "/api/rollouts/team/bot/actions/promote";
    const attempts: Record<string, string>[] = [{}, { "x-airollout-csrf": "0".repeat(64) }, { "x-airollout-csrf": dashboard.csrfToken, origin: "http://evil.example" }];
    for (const headers of attempts) {
      const res = await post(path, headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(((await res.json()) as { error: string }).error).toBe("csrf");
    }
    expect(kube.patches).toHaveLength(0);
    expect((await post(path, { "x-airollout-csrf": dashboard.csrfToken, origin: base })).status).toBe(200);
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const u = new URL(base);
      request({ host: u.hostname, port: u.port, path: "/api/rollouts", headers: { host: "rebound.example:80" } }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on("error", reject).end();
    });
    expect(status).toBe(403);
  });
});

/** Reads SSE frames from a response until `want` matches one, or fails after the deadline. */
async function readUntil(res: Response, want: (frame: string) => boolean, ms = 10_000): Promise<string[]> {
  const reader = res.body!.getReader();
  const frames: string[] = [];
  let buf = "";
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<{ done: true; value: undefined }>((resolve) => (timer = setTimeout(() => resolve({ done: true, value: undefined }), Math.max(0, deadline - Date.now()))));
    const { value, done } = await Promise.race([reader.read(), timeout]);
    clearTimeout(timer);
    if (done) break;
    buf += new TextDecoder().decode(value);
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      frames.push(buf.slice(0, i));
      buf = buf.slice(i + 2);
      if (want(frames.at(-1)!)) {
        await reader.cancel();
        return frames;
      }
    }
  }
  await reader.cancel();
  throw new Error(`no matching frame in ${JSON.stringify(frames)}`);
}

describe("server-sent events", () => {
  it("pushes a watched change to pages that show it, not to pages of another rollout; feeds the history", async () => {
    const kube = new FakeKube();
    kube.add(rollout("bot", paused));
    const { base, dashboard } = await start(kube);
    const page = await fetch(`${base}/api/events`);
    expect(page.headers.get("content-type")).toContain("text/event-stream");
    const other = await fetch(`${base}/api/events?rollout=team/other`);
    await new Promise((r) => setTimeout(r, 50));
    expect(dashboard.live.clients).toBe(2);
    kube.watchers[0]!("MODIFIED", rollout("bot", { ...paused, phase: "Progressing", canaryWeight: 50 }));
    const frames = await readUntil(page, (f) => f.startsWith("event: rollout"));
    expect(frames[0]).toContain("event: hello");
    const data = JSON.parse(frames.at(-1)!.split("data: ")[1]!) as { type: string; row: { name: string; weight: number; phase: string } };
    expect(data).toMatchObject({ type: "MODIFIED", row: { name: "bot", weight: 50, phase: "Progressing" } });
    await expect(readUntil(other, (f) => f.startsWith("event: rollout"), 300)).rejects.toThrow(/no matching frame/);
    expect(dashboard.history.get("team", "bot").weights.map((w) => w.weight)).toEqual([50]);
  }, 30_000);

  it("is bounded in pages (503 past the limit) and answers a user who may not list with the API server's 403", async () => {
    const kube = new FakeKube();
    const { base } = await start(kube);
    const pages: Response[] = [];
    for (let i = 0; i < MAX_CLIENTS; i++) pages.push(await fetch(`${base}/api/events`));
    expect(pages.every((p) => p.status === 200)).toBe(true);
    const over = await fetch(`${base}/api/events`);
    expect(over.status).toBe(503);
    for (const p of pages) await p.body!.cancel();
    kube.canList = false;
    const refused = await fetch(`${base}/api/events?namespace=other`);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { message: string }).message).toContain("cannot list");
  }, 30_000);
});

describe("live pages", () => {
  it("drops a page that does not read (unsent data past MAX_BUFFERED) and releases its watch", async () => {
    const kube = new FakeKube();
    const live = new Live(kube, new History(), "team");
    live.start();
    const page = (buffered: number) => {
      const p = { writableLength: buffered, destroyed: false, written: [] as string[], onClose: undefined as undefined | (() => void) };
      return Object.assign(p, {
        writeHead: () => p,
        write: (s: string) => (p.written.push(s), true),
        on: (ev: string, fn: () => void) => (ev === "close" && (p.onClose = fn), p),
        destroy: () => ((p.destroyed = true), p.onClose?.()),
        end: () => undefined,
      });
    };
    const reader = page(0);
    const stalled = page(MAX_BUFFERED + 1);
    const elsewhere = page(0);
    expect(live.add(reader as never, { namespace: "team" })).toBe(true);
    expect(live.add(stalled as never, { namespace: "team" })).toBe(true);
    expect(live.add(elsewhere as never, { namespace: "other" })).toBe(true);
    expect(kube.watchers).toHaveLength(2); // the home namespace and "other"
    kube.watchers[0]!("MODIFIED", rollout("bot", paused));
    expect(stalled.destroyed).toBe(true);
    expect(reader.written.at(-1)).toContain("event: rollout");
    expect(live.clients).toBe(2);
    elsewhere.onClose!();
    expect(live.clients).toBe(1);
    expect(kube.stopped).toBe(1); // the "other" watch, no page left on it; the home watch stays
    await live.stop();
    expect(kube.stopped).toBe(2);
  });
});

describe("diffs proxy", () => {
  it("answers the gateway's JSON unchanged, its 404 passed through, 404 no_gateway without one, 502 when it is down", async () => {
    const kube = new FakeKube();
    const seen: string[] = [];
    const gatewayBody = { summary: { topFields: [{ path: "$.label", rate: 0.5, flagged: true }] }, samples: [{ stable: { body: "{\"email\":\"***\"}" } }] };
    const fakeFetch = (async (url: string) => {
      seen.push(url);
      if (url.includes("/missing/")) return new Response(JSON.stringify({ error: "unknown_rollout", message: "no AIRollout team/missing" }), { status: 404 });
      if (url.includes("/down/")) throw new Error("connect ECONNREFUSED");
      return new Response(JSON.stringify(gatewayBody), { status: 200 });
    }) as typeof fetch;
    const { base } = await start(kube, { gateway: "http://gw:8080/", fetch: fakeFetch });
    expect(await (await fetch(`${base}/api/rollouts/team/bot/diffs?limit=5`)).json()).toEqual(gatewayBody);
    expect(seen[0]).toBe("http://gw:8080/api/rollouts/team/bot/diffs?limit=5");
    expect((await fetch(`${base}/api/rollouts/team/missing/diffs`)).status).toBe(404);
    expect((await fetch(`${base}/api/rollouts/team/down/diffs`)).status).toBe(502);
    expect((await fetch(`${base}/api/rollouts/team/bot/diffs?limit=-1`)).status).toBe(400);
    const none = await start(kube);
    const r = await fetch(`${none.base}/api/rollouts/team/bot/diffs`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: string }).error).toBe("no_gateway");
  });
});

describe("page and report", () => {
  function uiDir(index: string, files: Record<string, string> = {}): string {
    const dir = mkdtempSync(join(tmpdir(), "ui-"));
    writeFileSync(join(dir, "index.html"), index);
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    return dir;
  }

  it("GET / injects the bootstrap (token, read-only) before </head> under a nonce CSP; a value cannot close the script", async () => {
    const dir = uiDir(`<!doctype html><html><head><title>t</title></head><body></body></html>`, { "app.js": "1" });
    const { base, dashboard } = await start(new FakeKube(), { uiDir: dir, readOnly: true });
    const res = await fetch(`${base}/`);
    const html = await res.text();
    expect(html).toContain(`"csrfToken":"${dashboard.csrfToken}"`);
    expect(html).toContain(`"readOnly":true`);
    expect(html.indexOf("window.AIROLLOUT")).toBeLessThan(html.indexOf("</head>"));
    const nonce = html.match(/nonce="([^"]+)"/)![1]!;
    expect(res.headers.get("content-security-policy")).toContain(`'nonce-${nonce}'`);
    expect(await (await fetch(`${base}/ui/app.js`)).text()).toBe("1");
    expect((await fetch(`${base}/ui/../server.ts`)).status).toBe(404);
    expect(await (await fetch(`${base}/healthz`)).text()).toBe("ok\n");
    // uPlot from the installed package, and nothing else from ui/vendor/.
    const uplot = await fetch(`${base}/ui/vendor/uPlot.iife.min.js`);
    expect(uplot.status).toBe(200);
    expect(await uplot.text()).toBe(readFileSync(VENDOR_FILES["uPlot.iife.min.js"]!, "utf8"));
    expect((await fetch(`${base}/ui/vendor/package.json`)).status).toBe(404);
    const script = bootstrapScript({ csrfToken: null, readOnly: true, namespace: "</script><script>alert(1)</script>", allNamespaces: false, gateway: false, report: null });
    expect(script.match(/<\/script/g)).toHaveLength(1);
  });

  it("a report inlines the UI's scripts and stylesheets, embeds the data and refuses network references", async () => {
    const dir = uiDir(`<html><head><link rel="stylesheet" href="ui/app.css"><script src="ui/vendor/uPlot.iife.min.js"></script><script type="module" src="ui/app.js"></script></head><body></body></html>`, { "app.js": "const s = '</script>'; console.log(s)", "app.css": "body{color:red}" });
    const kube = new FakeKube();
    kube.add(rollout("bot", paused));
    const d = new Dashboard({ kube, namespace: "team", readOnly: true, loopback: true, log, uiDir: dir });
    const html = await renderReport({ generatedAt: "now", rollout: "team/bot", data: { list: await d.list(undefined), detail: await d.detail("team", "bot"), diffs: null, diffsError: "no --gateway given" } }, dir);
    expect(html).toContain("<style>body{color:red}</style>");
    expect(html).toContain(readFileSync(VENDOR_FILES["uPlot.iife.min.js"]!, "utf8").replace(/<\/script/gi, "<\\/script").slice(0, 200));
    expect(html).toContain(`<script type="module" >const s = '<\\/script>'; console.log(s)</script>`);
    expect(html).toContain(`"rollout":"team/bot"`);
    expect(html).not.toMatch(/\b(src|href)\s*=/);
    expect(externalReferences(html)).toEqual([]);
    await expect(inlineAssets(`<script src="https://cdn.example/x.js"></script>`, dir)).rejects.toThrow(/from the network/);
    await expect(inlineAssets(`<script src="ui/../../etc/passwd"></script>`, dir)).rejects.toThrow(/outside the UI directory/);
    const withLink = uiDir(`<html><head></head><body><a href="https://example.com/docs">docs</a></body></html>`);
    await expect(renderReport({ generatedAt: "now", rollout: "team/bot", data: { list: await d.list(undefined), detail: await d.detail("team", "bot"), diffs: null, diffsError: null } }, withLink)).rejects.toThrow(/https:\/\/example.com\/docs/);
  });
});
