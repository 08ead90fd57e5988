/**
 * The dashboard's JSON API against the real local API server, through `airollout dashboard`
 * processes started from the CLI: one with the admin kubeconfig, one with a ServiceAccount's
 * token that may only get/list/watch. No controller runs: the test writes the status itself, so
 * what the dashboard shows is exactly what the API server holds.
 *
 * Given a paused rollout, When the pages list, open, watch and click, Then the list and the detail
 * show it, a status change reaches an open event stream, Promote writes the annotation `airollout
 * promote` writes, the viewer's Promote is refused with the API server's own 403 message, and
 * `airollout report` writes a page that loads nothing from the network.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ANNOTATIONS, type AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { CLI, client, createNamespace, kubeconfig, kubectlOk, NODE, waitFor } from "./helpers.ts";

/** `airollout dashboard --port 0` and the URL it prints. */
class Dashboard {
  readonly proc: ChildProcess;
  #out = "";
  #err = "";
  constructor(args: string[]) {
    this.proc = spawn(NODE, [CLI, "dashboard", "--port", "0", ...args], { env: { ...process.env, LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stdout!.on("data", (d: Buffer) => (this.#out += d.toString()));
    this.proc.stderr!.on("data", (d: Buffer) => (this.#err += d.toString()));
  }
  url(): Promise<string> {
    return waitFor(
      "the dashboard's URL line",
      () => {
        if (this.proc.exitCode !== null) throw new Error(`dashboard exited ${this.proc.exitCode}: ${this.#err}`);
        return /^airollout dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/m.exec(this.#out)?.[1];
      },
      120_000,
      100,
    );
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGTERM");
    await exited;
  }
}

let ns: string;
let admin: Dashboard;
let viewer: Dashboard;
let adminUrl: string;
let viewerUrl: string;

/** A kubeconfig with the ServiceAccount `viewer`'s token: get/list/watch on AIRollouts and Events only. */
function viewerKubeconfig(): string {
  kubectlOk(["create", "serviceaccount", "viewer", "-n", ns]);
  kubectlOk(["create", "role", "viewer", "-n", ns, "--verb=get,list,watch", "--resource=airollouts.airollout.dev,events"]);
  kubectlOk(["create", "rolebinding", "viewer", "-n", ns, "--role=viewer", `--serviceaccount=${ns}:viewer`]);
  const token = kubectlOk(["create", "token", "viewer", "-n", ns, "--duration=1h"]).trim();
  const adminConfig = readFileSync(kubeconfig(), "utf8");
  if (!/^\s+token: \S+$/m.test(adminConfig)) throw new Error("the local control plane's kubeconfig has no token line to replace");
  const path = join(mkdtempSync(join(tmpdir(), "dashboard-viewer-")), "kubeconfig");
  writeFileSync(path, adminConfig.replace(/^(\s+token: )\S+$/m, `$1${token}`), { mode: 0o600 });
  return path;
}

const status = {
  phase: "Paused",
  pauseReason: "PauseStep",
  currentStep: 1,
  stepCount: 3,
  canaryWeight: 20,
  stableVersion: "v1",
  candidateVersion: "v2",
  stepStartedAt: new Date().toISOString(),
  steps: [
    { index: 0, type: "setWeight", weight: 20 },
    { index: 1, type: "pause" },
    { index: 2, type: "setWeight", weight: 100 },
  ],
};

beforeAll(async () => {
  ns = createNamespace("dashboard-api");
  const spec = {
    stable: { version: "v1", endpoint: "http://127.0.0.1:9", config: { model: "small" } },
    candidate: { version: "v2", endpoint: "http://127.0.0.1:9", config: { model: "large", prompt: "Classify the ticket." } },
    strategy: { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 100 }] },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
  await client().patch(`${rolloutsPath(ns)}/bot/status`, { status }, "merge");
  const uid = (await client().get<AIRollout>(`${rolloutsPath(ns)}/bot`)).metadata.uid;
  const now = new Date().toISOString();
  await client().create(`/api/v1/namespaces/${ns}/events`, {
    metadata: { name: `bot.${Date.now()}`, namespace: ns },
    involvedObject: { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", name: "bot", namespace: ns, uid },
    reason: "StepPaused",
    message: "paused at step 1 for a human",
    type: "Normal",
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
    source: { component: "dashboard-api-test" },
  });
  admin = new Dashboard(["--kubeconfig", kubeconfig(), "-n", ns]);
  viewer = new Dashboard(["--kubeconfig", viewerKubeconfig(), "-n", ns]);
  [adminUrl, viewerUrl] = await Promise.all([admin.url(), viewer.url()]);
}, 240_000);

afterAll(async () => {
  await Promise.all([admin?.stop(), viewer?.stop()]);
});

/** The CSRF token the page carries. */
async function csrfOf(url: string): Promise<string> {
  const html = await (await fetch(url)).text();
  const token = /"csrfToken":"([0-9a-f]+)"/.exec(html)?.[1];
  if (!token) throw new Error(`no csrfToken in the page: ${html.slice(0, 300)}`);
  return token;
}

async function post(url: string, path: string): Promise<{ status: number; body: Record<string, string> }> {
  const res = await fetch(new URL(path, url), { method: "POST", headers: { "x-airollout-csrf": await csrfOf(url), origin: new URL(url).origin } });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}

const annotations = async () => (await client().get<AIRollout>(`${rolloutsPath(ns)}/bot`)).metadata.annotations ?? {};

describe("airollout dashboard against the API server", () => {
  it("lists the namespace's rollouts with phase, step, weight and versions", async () => {
    const list = (await (await fetch(new URL("api/rollouts", adminUrl))).json()) as { namespace: string; items: Record<string, unknown>[] };
    expect(list.namespace).toBe(ns);
    expect(list.items).toHaveLength(1);
    expect(list.items[0]).toMatchObject({ name: "bot", namespace: ns, phase: "Paused", step: { index: 1, total: 3 }, weight: 20, stable: { version: "v1", model: "small" }, candidate: { version: "v2", model: "large" } });
    expect((list.items[0]!.candidate as { promptDigest: string }).promptDigest).toMatch(/^[0-9a-f]{16}$/);
  }, 60_000);

  it("a rollout's page: the timeline with the current step, conditions and its Events", async () => {
    const d = (await (await fetch(new URL(`api/rollouts/${ns}/bot`, adminUrl))).json()) as { timeline: { state: string }[]; events: { reason: string; message: string }[]; object: AIRollout };
    expect(d.timeline.map((s) => s.state)).toEqual(["done", "current", "pending"]);
    expect(d.events.map((e) => e.reason)).toContain("StepPaused");
    expect(d.object.metadata.name).toBe("bot");
    const missing = await fetch(new URL(`api/rollouts/${ns}/nope`, adminUrl));
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { message: string }).message).toContain(`"nope" not found`);
  }, 60_000);

  it("an open event stream receives the rollout when its status changes", async () => {
    const abort = new AbortController();
    const res = await fetch(new URL(`api/events?rollout=${ns}/bot`, adminUrl), { signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = "";
    // The hello frame first: the stream is open before the status changes.
    while (!text.includes("event: hello")) text += new TextDecoder().decode((await reader.read()).value);
    await client().patch(`${rolloutsPath(ns)}/bot/status`, { status: { canaryWeight: 40 } }, "merge");
    const row = await waitFor(
      "a rollout frame with weight 40",
      async () => {
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        text += new TextDecoder().decode(value);
        for (const m of text.matchAll(/event: rollout\ndata: (.*)\n/g)) {
          const data = JSON.parse(m[1]!) as { row: { weight: number; name: string } };
          if (data.row.weight === 40) return data.row;
        }
        return undefined;
      },
      60_000,
      0,
    );
    expect(row.name).toBe("bot");
    abort.abort();
    await client().patch(`${rolloutsPath(ns)}/bot/status`, { status: { canaryWeight: 20 } }, "merge");
  }, 120_000);

  it("Promote writes the annotation `airollout promote` writes, and refuses a POST without the page's token", async () => {
    const noToken = await fetch(new URL(`api/rollouts/${ns}/bot/actions/promote`, adminUrl), { method: "POST" });
    expect(noToken.status).toBe(403);
    expect((await annotations())[ANNOTATIONS.promote]).toBeUndefined();

    const { status: code, body } = await post(adminUrl, `api/rollouts/${ns}/bot/actions/promote`);
    expect(code, JSON.stringify(body)).toBe(200);
    expect(body.annotation).toBe(ANNOTATIONS.promote);
    expect(body.value).toMatch(/^step-[0-9a-z]+$/);
    expect((await annotations())[ANNOTATIONS.promote]).toBe(body.value);

    // The CLI writes the same key with a value of the same form (each request a fresh value).
    const cli = spawnSync(NODE, [CLI, "promote", "bot", "-n", ns, "--kubeconfig", kubeconfig()], { encoding: "utf8", timeout: 120_000 });
    expect(cli.status, cli.stderr).toBe(0);
    const fromCli = (await annotations())[ANNOTATIONS.promote]!;
    expect(fromCli).toMatch(/^step-[0-9a-z]+$/);
    expect(fromCli).not.toBe(body.value);
    expect(cli.stdout).toContain(`${ANNOTATIONS.promote}=${fromCli}`);
  }, 180_000);

  it("a user without patch rights sees the rollout but gets the API server's 403 on Promote", async () => {
    const list = (await (await fetch(new URL("api/rollouts", viewerUrl))).json()) as { items: { name: string }[] };
    expect(list.items.map((r) => r.name)).toEqual(["bot"]);
    const before = (await annotations())[ANNOTATIONS.promote];
    const { status: code, body } = await post(viewerUrl, `api/rollouts/${ns}/bot/actions/promote`);
    expect(code).toBe(403);
    expect(body.error).toBe("Forbidden");
    expect(body.message).toContain(`User "system:serviceaccount:${ns}:viewer" cannot patch resource "airollouts"`);
    expect((await annotations())[ANNOTATIONS.promote]).toBe(before);
    // What the viewer may not list is refused with the API server's message too.
    const other = await fetch(new URL("api/rollouts?namespace=default", viewerUrl));
    expect(other.status).toBe(403);
    expect(((await other.json()) as { message: string }).message).toContain("cannot list resource");
  }, 120_000);

  it("airollout report writes a self-contained page: the data embedded, nothing loaded from the network", () => {
    const r = spawnSync(NODE, [CLI, "report", "bot", "-n", ns, "--kubeconfig", kubeconfig()], { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
    expect(r.status, r.stderr).toBe(0);
    const html = r.stdout;
    expect(html).toMatch(/^<!doctype html>/i);
    expect(html).toContain(`"rollout":"${ns}/bot"`);
    expect(html).toContain(`"candidateVersion":"v2"`);
    expect(html).not.toMatch(/<script[^>]*\bsrc\s*=/i);
    expect(html).not.toMatch(/<link[^>]*\bhref\s*=\s*["']?(?!data:)/i);
    expect(html).not.toMatch(/\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
  }, 180_000);
});
