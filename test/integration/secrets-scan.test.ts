/**
 * No secret and no PII in any output: distinctive PII (an email, a phone number, a card number)
 * and secrets (the webhook signing secret, an Authorization bearer token, an API key header) are
 * seeded into real traffic through the whole loop (gateway process, Prometheus, controller
 * process; test/support/loop.ts): accepted, shadowed and diffed webhooks, and refused ones
 * (forged signature, schema-invalid, broken JSON) that are quarantined, and rate-limited ones
 * whose tenant key is an email; some carry an email as their x-request-id. After the run every
 * output is scanned for the raw values: both processes' logs, the rollout's Events and status,
 * both /metrics pages, the gateway's diff samples, the quarantine view and the masked fixtures.
 * Secrets must not appear in the quarantine's exact replay copies either (credentials are kept in
 * neither file).
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { luhnValid } from "../../controller/src/diff/pii.ts";
import { FixtureStore } from "../../controller/src/gateway/fixtures.ts";
import { QuarantineStore } from "../../controller/src/gateway/quarantine.ts";
import { signGithub } from "../../controller/src/gateway/signature.ts";
import type { Responder } from "../support/backends.ts";
import { LOG_DIR, startLoop, type Loop } from "../support/loop.ts";
import { client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

const EMAIL = "zqseed.alice@scan-example.org";
const PHONE = "+1 415-555-0199";
const CARD = "4539 1488 0343 6467";
const SIGNING_SECRET = "whsec-SEEDsigning-0b4e77c1";
const BEARER = "tok_SEEDbearer_7f3a9c2d";
const API_KEY = "ak_SEEDapikey_51d2e8f0";

/** What must appear nowhere: the raw values, and the card's digits without separators. */
const PII = { email: EMAIL, phone: PHONE, card: CARD, cardDigits: CARD.replaceAll(" ", "") };
const SECRETS = { signingSecret: SIGNING_SECRET, bearer: BEARER, apiKey: API_KEY };
const NAME = "pii";
const REQUESTS = 240;

let ns: string;
let loop: Loop;

/** Answers as a support bot would: the customer's details echoed back; the candidate words it differently. */
const responder = (version: string): Responder => (req) => {
  const body = req.json as { id?: number; customer?: unknown } | undefined;
  return { body: { intent: version === "v2" && (body?.id ?? 0) % 2 === 0 ? "refund" : "billing", reply: `We will call you at ${PHONE} or write to ${EMAIL}`, customer: body?.customer ?? null } };
};

beforeAll(async () => {
  expect(luhnValid(PII.cardDigits)).toBe(true);
  ns = createNamespace("scan");
  loop = await startLoop({ kubeconfig: kubeconfig(), namespace: ns, id: `scan-${ns}` });
}, 240_000);

afterAll(async () => {
  await loop?.close();
});

/** One webhook: signed (or forged), carrying every seeded value in its headers, URL and body. */
async function send(i: number): Promise<number> {
  const kind = i % 20 === 3 ? "forged" : i % 20 === 7 ? "schema" : i % 20 === 11 ? "broken" : "ok";
  const customer = { email: EMAIL, phone: PHONE, card: i % 2 ? CARD : PII.cardDigits };
  const text =
    kind === "schema" ? JSON.stringify({ id: EMAIL, customer })
    : kind === "broken" ? `{"id": ${i}, "customer": {"email": "${EMAIL}", "phone": "${PHONE}", "card": "${CARD}"`
    : JSON.stringify({ id: i, customer, note: `Customer ${EMAIL} (card ${CARD}) asked to be called on ${PHONE}` });
  const res = await fetch(loop.gateway.hookUrl(ns, NAME, `/tickets?contact=${encodeURIComponent(EMAIL)}`), {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${BEARER}`,
      "x-api-key": API_KEY,
      // Some senders use a customer's address as their delivery id.
      "x-request-id": i % 4 === 1 ? EMAIL : randomUUID(),
      // The tenant is a customer's email: it picks the version (stickyBy) and a rate-limit bucket.
      "x-tenant-id": i % 3 === 0 ? EMAIL : `tenant-${i % 5}`,
      "x-hub-signature-256": signGithub(text, kind === "forged" ? "not-the-secret" : SIGNING_SECRET),
    },
    body: text,
    signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Every place a leaked value could be found, by name. */
async function outputs(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  out["gateway log"] = readFileSync(loop.gateway.logFile, "utf8");
  out["controller log"] = readFileSync(join(LOG_DIR, `scan-${ns}-controller.log`), "utf8") + JSON.stringify(loop.controller.lines.filter((l) => l.level === "stderr"));
  out["Events"] = kubectlOk(["get", "events", "-n", ns, "-o", "json"]);
  out["AIRollout"] = JSON.stringify(await client().get<AIRollout>(`${rolloutsPath(ns)}/${NAME}`));
  out["gateway /metrics"] = await (await fetch(`${loop.gateway.url}/metrics`)).text();
  const started = loop.controller.lines.find((l) => l.msg === "controller started" && typeof l.port === "number");
  expect(started, "the controller logs its metrics port").toBeDefined();
  out["controller /metrics"] = await (await fetch(`http://127.0.0.1:${started!.port as number}/metrics`)).text();
  out["diff samples"] = await (await fetch(`${loop.gateway.url}/api/rollouts/${ns}/${NAME}/diffs?limit=1000`)).text();
  const store = new QuarantineStore(join(loop.gateway.stateDir, "quarantine.db"));
  try {
    const rows = store.list({ namespace: ns, limit: 10_000 });
    out["quarantine view"] = JSON.stringify(rows.map((r) => ({ ...r, body: r.body.toString("utf8") })));
    out["quarantine replay copies (secrets only)"] = JSON.stringify(rows.map((r) => {
      const copy = store.replayCopy(r.id);
      return { headers: copy?.headers, body: copy?.body.toString("utf8") };
    }));
  } finally {
    store.close();
  }
  const fixtures = new FixtureStore(join(loop.gateway.stateDir, "fixtures.db"));
  try {
    const doc = fixtures.document(ns, NAME, 1000, true);
    expect(doc.requests.length, "accepted webhooks were kept as fixtures").toBeGreaterThan(0);
    out["fixtures"] = JSON.stringify(doc);
  } finally {
    fixtures.close();
  }
  return out;
}

describe("secrets and PII never reach an output", () => {
  it("after a run with seeded PII and secrets, no log, Event, status, metric, diff sample or quarantine view holds a raw value", async () => {
    const stable = await loop.backend("scan-stable", responder("v1"));
    const candidate = await loop.backend("scan-candidate", responder("v2"));
    kubectlOk(["create", "secret", "generic", "scan-hmac", "-n", ns, `--from-literal=secret=${SIGNING_SECRET}`]);
    kubectlOk(["apply", "-f", "-"], JSON.stringify({
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIRollout",
      metadata: { name: NAME, namespace: ns },
      spec: {
        stable: { version: "v1", endpoint: stable.url },
        candidate: { version: "v2", endpoint: candidate.url },
        traffic: {
          signature: { scheme: "github", secretRef: { name: "scan-hmac", key: "secret" } },
          payloadSchema: { type: "object", required: ["id"], properties: { id: { type: "integer" } } },
          stickyBy: "header:x-tenant-id",
          // The email tenant sends about 25 requests a second: some are answered 429 naming it.
          rateLimit: { key: "header:x-tenant-id", requestsPerSecond: 5, burst: 5 },
        },
        shadow: { sampleRate: 1, minSamples: 20, maxMismatchRate: 1, compare: { labels: ["$.intent"] } },
        strategy: { steps: [{ shadow: { duration: "5s" } }, { setWeight: 50 }, { analysis: {} }, { pause: {} }] },
        analysis: {
          prometheus: { address: loop.prometheus.url, timeout: "5s" },
          interval: "2s",
          metrics: [{ name: "always-fine", query: `sum(airollout_requests_total{rollout="{{rollout}}"}) * 0`, successCondition: "result < 1", onEmpty: "Successful" }],
        },
      },
    }));
    await loop.gateway.knows(ns, NAME);

    // Traffic until the rollout waits at its last (pause) step: shadowed, split, analysed.
    const statuses: Record<number, number> = {};
    let sent = 0;
    const paused = waitFor("rollout Paused at its last step", async () => {
      const o = await client().get<AIRollout>(`${rolloutsPath(ns)}/${NAME}`);
      return o.status?.phase === "Paused" ? o : undefined;
    }, 150_000, 500);
    let done = false;
    void paused.finally(() => (done = true)).catch(() => {});
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (sent < REQUESTS || !done) {
        if (sent >= REQUESTS * 3) break;
        const s = await send(sent++);
        statuses[s] = (statuses[s] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 50));
      }
    }));
    const rollout = await paused;
    // The run exercised every path: forwarded, refused by signature, schema and JSON, and diffed.
    expect(statuses[200], JSON.stringify(statuses)).toBeGreaterThan(50);
    expect(statuses[401]).toBeGreaterThan(0);
    expect(statuses[422]).toBeGreaterThan(0);
    expect(statuses[400]).toBeGreaterThan(0);
    expect(statuses[429]).toBeGreaterThan(0);
    expect(rollout.status?.shadow?.mismatched ?? 0).toBeGreaterThan(0);

    const found: string[] = [];
    const all = await outputs();
    expect(JSON.parse(all["diff samples"]!).samples.length, "diff samples were taken").toBeGreaterThan(0);
    expect(all["quarantine view"]!.length, "refusals were quarantined").toBeGreaterThan(100);
    // A positive control: the replay copies keep the exact body by design, so the scan must find
    // the PII there; a scan that cannot find anything would pass for the wrong reason.
    expect(all["quarantine replay copies (secrets only)"]).toContain(EMAIL);
    console.log(`secrets scan: answers ${JSON.stringify(statuses)}; scanned ${Object.entries(all).map(([k, v]) => `${k} ${v.length} chars`).join(", ")}`);
    for (const [where, text] of Object.entries(all)) {
      const wanted = where.startsWith("quarantine replay") ? SECRETS : { ...PII, ...SECRETS };
      for (const [what, value] of Object.entries(wanted)) {
        const at = text.indexOf(value);
        if (at >= 0) found.push(`${what} in ${where}: …${text.slice(Math.max(0, at - 120), at + value.length + 40)}…`);
      }
    }
    expect(found).toEqual([]);
  }, 300_000);
});
