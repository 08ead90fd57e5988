/**
 * The dashboard in a real browser: Debian's chromium (/usr/bin/chromium, installed by
 * `make tools`) driven headless by puppeteer-core, against `airollout dashboard` processes on the
 * local control plane, with the real gateway, Prometheus and controller deciding
 * (test/support/loop.ts). Nothing downloads a browser and nothing stands in for a part.
 *
 * Given rollouts that advance, pause and regress under real traffic, When a person watches and
 * clicks in the page, Then the page follows the watch without a reload, shows the flagged field of
 * the regressing candidate, a Promote moves the paused rollout on (read back from the API server),
 * a user without patch rights sees the API server's refusal, and the report renders offline.
 *
 * Screenshots of every page are kept under .artifacts/dashboard/ (gitignored); the README's
 * dashboard images are copies of two of them.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { classifierResponder, type TestBackend } from "../support/backends.ts";
import { LOG_DIR, startLoop, type Loop, type TrafficRun } from "../support/loop.ts";
import { CLI, client, createNamespace, kubeconfig, kubectlOk, NODE, waitFor } from "./helpers.ts";

const CHROMIUM = "/usr/bin/chromium";

/**
 * The few browser globals the page functions below touch: the test's tsconfig has no DOM lib, and
 * those functions run in the page, so they reach them through globalThis.
 */
interface PageGlobals {
  document: { querySelector(selector: string): { textContent: string | null } | null };
  location: { hash: string };
  uPlot?: unknown;
  __sameDocument?: boolean;
}
const ARTIFACTS = join(PROJECT_ROOT, ".artifacts", "dashboard");
const STABLE = "v1";
const CANDIDATE = "v2";

/** `airollout dashboard` (or `report`) started from the CLI, its JSON log captured. */
class DashboardProcess {
  readonly proc: ChildProcess;
  readonly log: string;
  #port: number | undefined;
  #out = "";

  constructor(id: string, args: string[]) {
    mkdirSync(LOG_DIR, { recursive: true });
    this.log = join(LOG_DIR, `${id}.log`);
    writeFileSync(this.log, "");
    this.proc = spawn(NODE, [CLI, "dashboard", ...args, "--port", "0"], { env: { ...process.env, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stdout!.on("data", (d: Buffer) => this.#read(d));
    this.proc.stderr!.on("data", (d: Buffer) => writeFileSync(this.log, d, { flag: "a" }));
  }

  #read(d: Buffer): void {
    writeFileSync(this.log, d, { flag: "a" });
    this.#out += d.toString();
    let i;
    while ((i = this.#out.indexOf("\n")) >= 0) {
      const text = this.#out.slice(0, i);
      this.#out = this.#out.slice(i + 1);
      // The line the command prints for a person: "airollout dashboard: http://127.0.0.1:PORT/ ...".
      const m = /^airollout dashboard: http:\/\/127\.0\.0\.1:(\d+)\//.exec(text);
      if (m) this.#port = Number(m[1]);
    }
  }

  /** http://127.0.0.1:PORT/ once the dashboard printed it. */
  async url(): Promise<string> {
    const port = await waitFor(`dashboard listening (log ${this.log})`, () => {
      if (this.proc.exitCode !== null) throw new Error(`dashboard exited with ${this.proc.exitCode}; see ${this.log}`);
      return this.#port;
    }, 60_000, 100);
    return `http://127.0.0.1:${port}/`;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once("exit", () => r()));
    this.proc.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }
}

let ns: string;
let loop: Loop;
let browser: Browser;
let admin: DashboardProcess;
let viewer: DashboardProcess;
let adminUrl: string;
let viewerUrl: string;
const traffic: TrafficRun[] = [];
const dirs: string[] = [];

/** A kubeconfig for a ServiceAccount that may read AIRollouts and Events in `ns`, and nothing else. */
function viewerKubeconfig(): string {
  kubectlOk(["create", "serviceaccount", "viewer", "-n", ns]);
  kubectlOk(["create", "role", "airollout-viewer", "-n", ns, "--verb=get,list,watch", "--resource=airollouts.airollout.dev,events"]);
  kubectlOk(["create", "rolebinding", "airollout-viewer", "-n", ns, "--role=airollout-viewer", `--serviceaccount=${ns}:viewer`]);
  const token = kubectlOk(["create", "token", "viewer", "-n", ns, "--duration=1h"]).trim();
  const adminConfig = readFileSync(kubeconfig(), "utf8");
  if (!/^\s+token: \S+$/m.test(adminConfig)) throw new Error("the local control plane's kubeconfig has no token line to replace");
  const dir = mkdtempSync(join(tmpdir(), "airollout-viewer-"));
  dirs.push(dir);
  const path = join(dir, "kubeconfig");
  writeFileSync(path, adminConfig.replace(/^(\s+token: )\S+$/m, `$1${token}`), { mode: 0o600 });
  return path;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`make tools\` (installs Debian's chromium as root)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  ns = createNamespace("dash");
  loop = await startLoop({ kubeconfig: kubeconfig(), namespace: ns, id: `dashboard-${ns}` });
  const viewerConfig = viewerKubeconfig();
  admin = new DashboardProcess(`dashboard-admin-${ns}`, ["--kubeconfig", kubeconfig(), "--namespace", ns, "--gateway", loop.gateway.url]);
  viewer = new DashboardProcess(`dashboard-viewer-${ns}`, ["--kubeconfig", viewerConfig, "--namespace", ns, "--gateway", loop.gateway.url]);
  const userDataDir = mkdtempSync(join(tmpdir(), "airollout-chromium-"));
  dirs.push(userDataDir);
  [adminUrl, viewerUrl, browser] = await Promise.all([
    admin.url(),
    viewer.url(),
    puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir,
      // Root (CI, the dev container) cannot use chromium's sandbox; nothing here is untrusted.
      args: [...(process.getuid?.() === 0 ? ["--no-sandbox"] : []), "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"],
    }),
  ]);
}, 240_000);

afterAll(async () => {
  await Promise.all(traffic.map((t) => t.stop()));
  await browser?.close();
  await Promise.all([admin?.stop(), viewer?.stop()]);
  await loop?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 120_000);

interface Scenario {
  name: string;
  stable: TestBackend;
  candidate: TestBackend;
  noise?: TestBackend;
  steps: unknown[];
  shadow?: Record<string, unknown>;
}

function apply(s: Scenario): void {
  const shadow = s.noise ? { ...s.shadow, noiseBaseline: { enabled: true, endpoint: s.noise.url } } : s.shadow;
  const spec = {
    stable: { version: STABLE, endpoint: s.stable.url, config: { model: "small" } },
    candidate: { version: CANDIDATE, endpoint: s.candidate.url, config: { model: "large" } },
    ...(shadow ? { shadow } : {}),
    strategy: { steps: s.steps },
    analysis: {
      prometheus: { address: loop.prometheus.url, timeout: "5s" },
      // As in loop.test.ts: rate() needs a few 1 s scrapes of the candidate's first requests.
      interval: "2s",
      failureLimit: 1,
      consecutiveErrorLimit: 10,
      args: { window: "10s" },
      metrics: [{ name: "error-rate", templateRef: "error-rate", initialDelay: "10s" }],
    },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: s.name, namespace: ns }, spec }));
}

async function get(name: string): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
}

/** Uncaught page errors and requests refused for leaving the page's own origin, per page. */
const trouble = new WeakMap<Page, { errors: string[]; blocked: string[] }>();

/**
 * A page that may load only from `origin` (the dashboard; none for a report) and file:/data: URLs:
 * any other request fails and is recorded, so a CDN or font URL slipping into the UI fails the test.
 */
async function newPage(origin?: string): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const t = { errors: [] as string[], blocked: [] as string[] };
  trouble.set(page, t);
  page.on("pageerror", (e) => t.errors.push(String(e)));
  await page.setRequestInterception(true);
  page.on("request", (req) => {
    const url = req.url();
    if (url.startsWith("file:") || url.startsWith("data:") || (origin !== undefined && new URL(url).origin === origin)) void req.continue();
    else {
      t.blocked.push(url);
      void req.abort();
    }
  });
  return page;
}

/** What went wrong in a page: uncaught errors, and requests that tried to leave it. */
function pageErrors(page: Page): string[] {
  const t = trouble.get(page);
  return [...(t?.errors ?? []), ...(t?.blocked ?? []).map((u) => `blocked request ${u}`)];
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) as `${string}.png`, fullPage: true });
}

/** The text of `selector` inside the list row or page header of a rollout, "" when absent. */
async function field(page: Page, name: string, selector: string): Promise<string> {
  return page.evaluate((key, sel) => (globalThis as unknown as PageGlobals).document.querySelector(`[data-rollout="${key}"] ${sel}`)?.textContent?.trim() ?? "", `${ns}/${name}`, selector);
}

/** Opens the confirmation of an action button and confirms it; resolves with the result box's status. */
async function clickAction(page: Page, action: string): Promise<{ status: string; text: string }> {
  await page.waitForSelector(`button[data-action="${action}"]:not([disabled])`, { timeout: 30_000 });
  await page.click(`button[data-action="${action}"]`);
  await page.waitForSelector("dialog#confirm[open]", { timeout: 10_000 });
  await page.click("dialog#confirm button[data-confirm]");
  const box = await page.waitForSelector("#action-result", { timeout: 30_000 });
  return box!.evaluate((el) => ({ status: el.getAttribute("data-status") ?? "", text: el.textContent ?? "" }));
}

describe("the dashboard in Debian's chromium", () => {
  let advance: Scenario;
  let regress: Scenario;

  beforeAll(async () => {
    advance = {
      name: "advance",
      stable: await loop.backend("advance-stable", classifierResponder()),
      candidate: await loop.backend("advance-candidate", classifierResponder()),
      steps: [{ setWeight: 20 }, { analysis: { metrics: ["error-rate"] } }, { pause: { duration: "3s" } }, { pause: {} }, { setWeight: 100 }],
    };
    // 1 answer in 10 has another intent against a 5 % limit: rolled back in its shadow step (as
    // loop.test.ts's drift scenario). The gateway keeps the revision's diff after the rollback,
    // which is when a person opens it: to see why.
    regress = {
      name: "regress",
      stable: await loop.backend("regress-stable", classifierResponder()),
      noise: await loop.backend("regress-stable-copy", classifierResponder()),
      candidate: await loop.backend("regress-candidate", classifierResponder({ drift: (id) => id % 10 === 0 })),
      shadow: { minSamples: 30, maxMismatchRate: 0.05, compare: { labels: ["$.intent"] } },
      steps: [{ shadow: { duration: "10m" } }, { setWeight: 100 }],
    };
  });

  it("the list follows a rollout advancing live, with no reload", async () => {
    const page = await newPage(new URL(adminUrl).origin);
    await page.goto(adminUrl);
    await page.waitForSelector("h1");
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).__sameDocument = true));
    apply(advance);
    apply(regress);
    await loop.gateway.knows(ns, advance.name);
    await loop.gateway.knows(ns, regress.name);
    traffic.push(loop.traffic(advance.name, { ratePerSecond: 10, maxRequests: 3000, maxDurationMs: 300_000 }));
    traffic.push(loop.traffic(regress.name, { ratePerSecond: 10, maxRequests: 3000, maxDurationMs: 300_000 }));

    // Every distinct (phase, step, weight) the row shows, read from the page while it runs.
    const seen: string[] = [];
    await waitFor("the row shows advance paused at step 4 of 5", async () => {
      const s = `${await field(page, advance.name, "[data-field=phase]")} ${await field(page, advance.name, "[data-field=step]")} ${await field(page, advance.name, "[data-field=weight]")}`;
      if (seen.at(-1) !== s) seen.push(s);
      return s.startsWith("Paused 4 / 5");
    }, 150_000, 250);
    await shot(page, "list");
    console.log(`dashboard list rows seen for advance: ${seen.join(" | ")}`);
    // The row appeared and changed without the page being reloaded.
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__sameDocument)).toBe(true);
    expect(seen.filter((s) => s.trim() !== "").length).toBeGreaterThanOrEqual(2);
    expect(seen.some((s) => s.includes("20%"))).toBe(true);
    expect(await page.$eval("#mode", (el) => el.textContent)).toBe("live");
    // The row's versions come from the spec: stable v1 (model small), candidate v2 (model large).
    expect(await field(page, advance.name, "td:nth-child(5)")).toContain("model small");
    expect(await field(page, advance.name, "td:nth-child(6)")).toContain("model large");
    expect(pageErrors(page)).toEqual([]);
    await page.close();
  }, 200_000);

  it("the shadow diff view shows the regressing candidate's flagged field, highlighted in the samples", async () => {
    const started = Date.now();
    await waitFor("regress rolled back", async () => (await get(regress.name)).status?.phase === "RolledBack", 120_000, 500);
    const rolledBack = Date.now();
    const page = await newPage(new URL(adminUrl).origin);
    await page.goto(`${adminUrl}#/${ns}/${regress.name}/diff`);
    const flagged = `tr[data-path="$.intent"][data-flagged="true"]`;
    // The view refreshes on the rollout's watch events; the gateway flags the field once 30
    // candidate and 30 noise comparisons are in.
    await waitFor("$.intent flagged in the page", async () => {
      if (await page.$(flagged)) return true;
      await page.reload();
      await page.waitForSelector("h1");
      return false;
    }, 90_000, 3000);
    await page.waitForSelector(`.sample .side:nth-child(2) .ln.diff[data-path="$.intent"]`, { timeout: 30_000 });
    console.log(`dashboard diff: rolled back after ${((rolledBack - started) / 1000).toFixed(1)}s of this test, flagged and highlighted in the page ${((Date.now() - rolledBack) / 1000).toFixed(1)}s later`);
    const row = await page.$eval(flagged, (el) => el.textContent ?? "");
    expect(row).toContain("flagged");
    await shot(page, "diff");
    // The noise column is the stable-vs-stable rate: both copies answer alike.
    expect(await page.$eval(`${flagged} td:nth-child(3)`, (el) => el.textContent)).toContain("0");
    expect(pageErrors(page)).toEqual([]);
    await page.close();
  }, 150_000);

  it("a user without patch rights gets the API server's refusal; Promote then moves the paused rollout on", async () => {
    await waitFor("advance Paused", async () => (await get(advance.name)).status?.phase === "Paused", 120_000, 500);
    const before = await get(advance.name);
    expect(before.status!.currentStep).toBe(3);

    const refused = await newPage(new URL(viewerUrl).origin);
    await refused.goto(`${viewerUrl}#/${ns}/${advance.name}`);
    await refused.waitForSelector("[data-field=phase]");
    const denied = await clickAction(refused, "promote");
    await shot(refused, "refused");
    expect(pageErrors(refused)).toEqual([]);
    expect(denied.status).toBe("403");
    expect(denied.text).toContain("forbidden");
    expect(denied.text).toContain(`system:serviceaccount:${ns}:viewer`);
    const unchanged = await get(advance.name);
    expect(unchanged.status!.phase).toBe("Paused");
    expect(Object.keys(unchanged.metadata.annotations ?? {}).filter((k) => k.startsWith("airollout.dev/promote"))).toEqual([]);
    await refused.close();

    const page = await newPage(new URL(adminUrl).origin);
    await page.goto(`${adminUrl}#/${ns}/${advance.name}`);
    await page.waitForSelector(`.tstep.current[data-step="3"]`);
    await page.waitForSelector(`[data-metric="error-rate"] canvas`, { timeout: 30_000 });
    await shot(page, "rollout");
    const done = await clickAction(page, "promote");
    expect(done.status, done.text).toBe("200");
    // The controller acts on the annotation: the rollout leaves the pause and completes.
    const after = await waitFor("advance promoted", async () => {
      const o = await get(advance.name);
      return o.status?.phase === "Succeeded" ? o : undefined;
    }, 90_000, 500);
    expect(after.status!.canaryWeight).toBe(100);
    // ...and the page follows without a reload.
    await page.waitForFunction((key) => (globalThis as unknown as PageGlobals).document.querySelector(`[data-rollout="${key}"] [data-field=phase]`)?.textContent === "Succeeded", { timeout: 30_000 }, `${ns}/${advance.name}`);
    await shot(page, "promoted");
    expect(pageErrors(page)).toEqual([]);
    await page.close();
  }, 300_000);

  it("`airollout report` renders with no network at all", async () => {
    const dir = mkdtempSync(join(tmpdir(), "airollout-report-"));
    dirs.push(dir);
    const file = join(dir, "report.html");
    const html = await new Promise<string>((resolve, reject) => {
      const p = spawn(NODE, [CLI, "report", regress.name, "--kubeconfig", kubeconfig(), "--namespace", ns, "--gateway", loop.gateway.url], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      p.stdout.on("data", (d: Buffer) => (out += d.toString()));
      p.stderr.on("data", (d: Buffer) => (err += d.toString()));
      p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`report exited ${code}: ${err}`))));
    });
    writeFileSync(file, html);

    // No origin at all: the page may load file: and data: URLs only.
    const page = await newPage();
    await page.goto(`file://${file}`);
    await page.waitForFunction((name) => (globalThis as unknown as PageGlobals).document.querySelector("h1")?.textContent === name, { timeout: 30_000 }, regress.name);
    expect(await page.$eval("#mode", (el) => el.textContent)).toContain("report");
    expect(await page.evaluate(() => typeof (globalThis as unknown as PageGlobals).uPlot)).toBe("function");
    await shot(page, "report");
    await page.evaluate((hash) => ((globalThis as unknown as PageGlobals).location.hash = hash), `#/${ns}/${regress.name}/diff`);
    await page.waitForSelector(`tr[data-path="$.intent"][data-flagged="true"]`, { timeout: 30_000 });
    await shot(page, "report-diff");
    expect(pageErrors(page)).toEqual([]);
    await page.close();
  }, 120_000);
});
