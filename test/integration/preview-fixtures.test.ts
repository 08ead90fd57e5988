/**
 * Masked production fixtures end to end: a real gateway process (started from the CLI, watching
 * the local control plane) receives signed webhooks for an AIRollout with endpoint versions and
 * records them masked; `airollout fixtures export` writes them from the gateway's metrics port as
 * the versioned file, which `airollout golden record` accepts; the fixtures replayed to a preview
 * that differs on one field and to the stable name that field, directly and through an AIPreview
 * reconciled by a controller process (status.fixtures and an Event).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { FIXTURES_FORMAT } from "../../controller/src/fixtures/format.ts";
import { GatewayFixtures } from "../../controller/src/fixtures/replay.ts";
import { classifierResponder, startBackend, type TestBackend } from "../support/backends.ts";
import { CLI, ControllerProcess, NODE, client, createNamespace, kubeconfig, kubectlOk, waitFor, runCli } from "./helpers.ts";

const SECRET = "fixtures-hmac-key";
const EMAIL = "jane.doe@example.com";
const TOKEN = "tok-PLANTED-7f3a9c";
const BEARER = "Bearer sk-live-PLANTED-0042";

let ns: string;
let dir: string;
let stable: TestBackend;
let preview: TestBackend;
let gateway: { proc: ChildProcess; url: string; admin: string };
let controller: ControllerProcess | undefined;

const cli = (args: string[]) => runCli(args);

/** A gateway child process from the CLI; resolves its webhook and metrics ports from its start-up log line. */
async function startGateway(stateDir: string): Promise<typeof gateway> {
  const args = [CLI, "gateway", "--kubeconfig", kubeconfig(), "--namespace", ns, "--port", "0", "--metrics-port", "0", "--host", "127.0.0.1", "--state-dir", stateDir, "--shadow-workers", "0", "--fixtures-rate", "100", "--fixtures-per-rollout", "8", "--fixtures-max-bytes", "4096"];
  const proc = spawn(NODE, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_LEVEL: "info" } });
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const ports = await new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
    let buf = "";
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split("\n")) {
        try {
          const l = JSON.parse(line) as { msg?: string; port?: number; metricsPort?: number };
          if (l.msg === "gateway started" && l.port && l.metricsPort) resolve({ port: l.port, metricsPort: l.metricsPort });
        } catch {
          // A partial line: the rest comes with the next chunk.
        }
      }
    });
    proc.on("exit", (code) => reject(new Error(`gateway exited ${code}: ${err}`)));
    setTimeout(() => reject(new Error(`gateway did not start: ${err}`)), 60_000);
  });
  return { proc, url: `http://127.0.0.1:${ports.port}`, admin: `http://127.0.0.1:${ports.metricsPort}` };
}

/**
 * One webhook signed in the rollout's own header (a name no built-in rule would drop), with
 * personal data and secrets planted in its body and headers.
 */
async function send(id: number | undefined, text = `refund for ${EMAIL}`): Promise<Response> {
  const body = JSON.stringify({ id, text, customer: { email: EMAIL, api_token: TOKEN } });
  const signature = `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`;
  return fetch(`${gateway.url}/hooks/${ns}/bot/classify?source=test`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-acme-mac": signature, "x-hub-signature-256": signature, authorization: BEARER, cookie: `session=${TOKEN}`, "x-customer": EMAIL, "x-tenant-id": "acme" },
    body,
  });
}

/** A counter's value for the rollout from the gateway's metrics text (0 without a series). */
function counter(metrics: string, name: string, extra = ""): number {
  const m = metrics.match(new RegExp(`${name}\\{rollout="bot",namespace="${ns}"${extra}\\} (\\d+)`));
  return m ? Number(m[1]) : 0;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "preview-fixtures-"));
  stable = await startBackend("stable", classifierResponder());
  // The preview labels even ids "other": it differs from the stable on $.intent only.
  preview = await startBackend("preview", classifierResponder({ drift: (id) => id % 2 === 0 }));
  ns = createNamespace("fixtures");
  kubectlOk(["create", "secret", "generic", "hook-key", "-n", ns, `--from-literal=key=${SECRET}`]);
  const manifest = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name: "bot", namespace: ns },
    spec: {
      stable: { version: "v1", endpoint: stable.url },
      candidate: { version: "v2", endpoint: stable.url },
      traffic: { signature: { scheme: "github", header: "X-Acme-Mac", secretRef: { name: "hook-key", key: "key" } } },
      shadow: { compare: { ignore: ["$.summary"] } },
      strategy: { steps: [{ pause: {} }] },
    },
  };
  kubectlOk(["apply", "-f", "-"], stringify(manifest));
  gateway = await startGateway(join(dir, "gateway"));
}, 180_000);

afterAll(async () => {
  gateway?.proc.kill("SIGKILL");
  await controller?.stop("SIGKILL");
  await Promise.all([stable, preview].map((b) => b?.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("masked production fixtures", () => {
  let exported: string;

  it("the gateway keeps accepted webhooks as fixtures: personal data masked, no secret, no signature header", async () => {
    await waitFor("the gateway accepts a signed webhook for the rollout", async () => (await send(0)).status === 200, 60_000, 250);
    for (let id = 1; id < 10; id++) expect((await send(id)).status).toBe(200);
    // Answered 400 by the backend (no id): not accepted, not kept. Over --fixtures-max-bytes: not kept.
    expect((await send(undefined)).status).toBe(400);
    expect((await send(10, "x".repeat(5000))).status).toBe(200);
    const res = await fetch(`${gateway.admin}/api/rollouts/${ns}/bot/fixtures?count=100`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const doc = JSON.parse(text) as { format: string; watched: boolean; requests: { headers: Record<string, string>; body: { id: number; text: string; customer: unknown }; path: string; version: string; status: number }[] };
    expect(doc).toMatchObject({ format: FIXTURES_FORMAT, namespace: ns, rollout: "bot", watched: true, truncated: false });
    // --fixtures-per-rollout 8: the newest 8 of the 10 accepted, newest first.
    expect(doc.requests.map((r) => r.body.id)).toEqual([9, 8, 7, 6, 5, 4, 3, 2]);
    const newest = doc.requests[0]!;
    expect(newest.body).toEqual({ id: 9, text: "refund for [EMAIL]", customer: { email: "[EMAIL]", api_token: "[REDACTED]" } });
    expect(newest).toMatchObject({ path: "/classify?source=test", version: "v1", status: 200, headers: { "content-type": "application/json", "x-customer": "[EMAIL]", "x-tenant-id": "acme" } });
    for (const leaked of [EMAIL, TOKEN, "sk-live-PLANTED", "x-acme-mac", "x-hub-signature-256", "sha256=", "authorization", "cookie"]) expect(text).not.toContain(leaked);
  });

  it("serves fixtures on the metrics port only, and counts them there", async () => {
    expect((await fetch(`${gateway.url}/api/rollouts/${ns}/bot/fixtures`)).status).toBe(404);
    expect((await fetch(`${gateway.admin}/api/rollouts/${ns}/bot/fixtures?count=0`)).status).toBe(400);
    const metrics = await (await fetch(`${gateway.admin}/metrics`)).text();
    expect(counter(metrics, "airollout_fixtures_stored_total")).toBe(10);
    expect(counter(metrics, "airollout_fixtures_evicted_total", ',reason="rollout_cap"')).toBe(2);
    expect(counter(metrics, "airollout_fixtures_skipped_total", ',reason="too_large"')).toBe(1);
    expect(metrics).toContain(`airollout_fixtures{namespace="${ns}",rollout="bot"} 8`);
  });

  it("`fixtures export` writes the versioned file, and `golden record` starts a suite from it", async () => {
    exported = join(dir, "fixtures.json");
    const r = await cli(["fixtures", "export", "--rollout", "bot", "-n", ns, "--count", "6", "-o", exported, "--gateway", gateway.admin]);
    expect(r.stderr).toContain(`wrote 6 fixtures of ${ns}/bot to ${exported}`);
    expect(r.code).toBe(0);
    const file = JSON.parse(readFileSync(exported, "utf8")) as { format: string; requests: { name: string }[] };
    expect(file.format).toBe(FIXTURES_FORMAT);
    expect(file.requests).toHaveLength(6);
    expect(readFileSync(exported, "utf8")).not.toContain(EMAIL);

    const suiteFile = join(dir, "suite.yaml");
    const rec = await cli(["golden", "record", "--from-stable", stable.url, "--requests", exported, "--out", suiteFile]);
    expect(rec.stderr).toBe("");
    expect(rec.code).toBe(0);
    const suite = parse(readFileSync(suiteFile, "utf8")) as { cases: { name: string; request: { body: { id: number } }; expect: { fields: Record<string, unknown> } }[] };
    expect(suite.cases).toHaveLength(6);
    expect(suite.cases[0]!.name).toBe(file.requests[0]!.name);
    expect(suite.cases[0]!.expect.fields["$.intent"]).toEqual({ label: "billing" });
  });

  it("`fixtures export` of a rollout without fixtures fails, saying so", async () => {
    const r = await cli(["fixtures", "export", "--rollout", "nothing", "-n", ns, "--gateway", gateway.admin]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no fixtures of ${ns}/nothing`);
  });

  it("replayed to a preview that differs on one field and to the stable, the summary names that field", async () => {
    const port = new GatewayFixtures({ gatewayUrl: gateway.admin, readRollout: (namespace, name) => client().get<AIRollout>(`${rolloutsPath(namespace)}/${name}`) });
    stable.reset();
    preview.reset();
    const s = await port.replay({ namespace: ns, rollout: "bot", count: 6, previewUrl: preview.url, stableUrl: stable.url });
    // The newest six are ids 9..4: the preview labels 4, 6 and 8 "other".
    expect(s).toMatchObject({ replayed: 6, mismatched: 3, errors: 0, topFields: [{ path: "$.intent", mismatches: 3 }], source: `gateway:${ns}/bot` });
    expect(preview.requests).toHaveLength(6);
    expect(preview.requests[0]!.url).toBe("/classify?source=test");
    expect(preview.requests[0]!.headers["x-airollout-shadow"]).toBe("true");
    expect(preview.requests[0]!.headers.authorization).toBeUndefined();
  });

  it("an AIPreview with fixtures: {fromRollout, count} gets the replay's summary in status.fixtures and an Event", async () => {
    controller = new ControllerProcess("preview-fixtures", ["--namespace", ns, "--lease-namespace", ns, "--environments", "none", "--gateway-url", gateway.admin]);
    await controller.waitForLog("leadership", (l) => l.msg === "became leader", 90_000);
    const manifest = {
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIPreview",
      metadata: { name: "pr-7", namespace: ns },
      spec: { rolloutRef: { name: "bot" }, version: { version: "pr-7", endpoint: preview.url }, fixtures: { fromRollout: "bot", count: 6 } },
    };
    kubectlOk(["apply", "-f", "-"], stringify(manifest));
    type Preview = { status?: { phase?: string; url?: string; fixtures?: { replayed?: number; mismatched?: number; errors?: number; topFields?: { path: string; mismatches: number }[]; source?: string; message?: string } } };
    const p = await waitFor(
      "status.fixtures of the AIPreview",
      async () => {
        const o = await client().get<Preview>(`/apis/airollout.dev/v1alpha1/namespaces/${ns}/aipreviews/pr-7`);
        return o.status?.fixtures?.replayed !== undefined || o.status?.fixtures?.message ? o : undefined;
      },
      120_000,
      500,
    );
    expect(p.status).toMatchObject({ phase: "Ready", url: preview.url });
    expect(p.status!.fixtures).toMatchObject({ replayed: 6, mismatched: 3, errors: 0, topFields: [{ path: "$.intent", mismatches: 3 }], source: `gateway:${ns}/bot` });
    const event = await waitFor("the FixturesReplayed Event", async () => {
      const list = await client().get<{ items: { reason: string; message: string; type: string }[] }>(`/api/v1/namespaces/${ns}/events`, { fieldSelector: "involvedObject.name=pr-7" });
      return list.items.find((e) => e.reason === "FixturesReplayed");
    });
    expect(event.message).toContain("$.intent");
  });
});
