/** `airollout gateway` and `airollout quarantine list|replay`: wiring and output only. */
import type { Express } from "express";
import { homedir } from "node:os";
import { join } from "node:path";
import { GATEWAY, QUARANTINE, parseFlags } from "./commands.ts";
import { defaultShadowWorkers, Gateway } from "../gateway/gateway.ts";
import { FIXTURES_ROUTE, fixturesHandler, type FixtureLimits } from "../gateway/fixtures.ts";
import { parseDuration } from "../api/duration.ts";
import { QuarantineStore, replay } from "../gateway/quarantine.ts";
import { KubeClient, loadKubeConfig } from "../kube/client.ts";
import { createLogger } from "../telemetry/logger.ts";
import { startHealthServer } from "../telemetry/http.ts";
import { UsageError } from "./errors.ts";
import { describeEgress, egressPolicyFromFlags } from "./egress.ts";

/** Where the gateway keeps its SQLite files unless --state-dir says otherwise. */
export function defaultStateDir(): string {
  return process.env.AIROLLOUT_STATE_DIR ?? join(homedir(), ".local", "state", "airollout", "gateway");
}

function port(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${flag}: ${value} is not a port number`);
  return n;
}

/** --shadow-nice: a whole number of nice steps from 0 to 19, or undefined for the default. */
export function shadowNiceFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > 19) throw new UsageError(`--shadow-nice: ${value} is not a whole number from 0 to 19`);
  return n;
}

/** The --fixtures-* flags; unset ones keep the store's defaults. */
export function fixtureLimitsFlags(values: Record<string, string | boolean | undefined>): Partial<FixtureLimits> {
  const out: Partial<FixtureLimits> = {};
  const int = (flag: string, key: "perRollout" | "total" | "maxBytes") => {
    const v = values[flag];
    if (typeof v !== "string") return;
    const n = Number(v);
    if (v.trim() === "" || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag}: ${v} is not a positive integer`);
    out[key] = n;
  };
  int("fixtures-per-rollout", "perRollout");
  int("fixtures-total", "total");
  int("fixtures-max-bytes", "maxBytes");
  const age = values["fixtures-max-age"];
  if (typeof age === "string") {
    let ms: number;
    try {
      ms = parseDuration(age);
    } catch (err) {
      throw new UsageError(`--fixtures-max-age: ${(err as Error).message}`);
    }
    if (ms < 1) throw new UsageError(`--fixtures-max-age: ${age} must be longer than 0`);
    out.maxAgeMs = ms;
  }
  const rate = values["fixtures-rate"];
  if (typeof rate === "string") {
    const r = Number(rate);
    if (rate.trim() === "" || !(Number.isFinite(r) && r > 0)) throw new UsageError(`--fixtures-rate: ${rate} is not a positive number`);
    out.perSecond = r;
  }
  return out;
}

/** Runs the gateway until SIGTERM/SIGINT. */
export async function gatewayCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(GATEWAY, args);
  const listenPort = port("--port", values.port)!;
  const metricsPort = port("--metrics-port", values["metrics-port"]);
  const maxRows = values["quarantine-max-rows"] === undefined ? undefined : Number(values["quarantine-max-rows"]);
  if (maxRows !== undefined && !(Number.isInteger(maxRows) && maxRows > 0)) throw new UsageError(`--quarantine-max-rows: ${values["quarantine-max-rows"]} is not a positive integer`);
  const shadowWorkers = values["shadow-workers"] === undefined ? undefined : Number(values["shadow-workers"]);
  if (shadowWorkers !== undefined && !(Number.isInteger(shadowWorkers) && shadowWorkers >= 0 && shadowWorkers <= 64)) throw new UsageError(`--shadow-workers: ${values["shadow-workers"]} is not a whole number from 0 to 64`);
  const shadowNice = shadowNiceFlag(values["shadow-nice"]);
  const stateDir = values["state-dir"] ?? defaultStateDir();
  const egress = egressPolicyFromFlags(values);
  const fixtures = fixtureLimitsFlags(values);

  const log = createLogger("gateway");
  const client = new KubeClient(loadKubeConfig(values.kubeconfig, values.context));
  const gateway = new Gateway({ log, client, namespace: values.namespace, stateDir, quarantineMaxRows: maxRows, fixtures, shadowWorkers, shadowNice, egress });
  // A bug in one request's handling must not take every other request down with the process.
  process.on("unhandledRejection", (err) => log.error({ err: (err as Error)?.message, stack: (err as Error)?.stack }, "unhandled rejection"));
  gateway.start();
  const { port: bound } = await gateway.listen(listenPort, values.host);
  // Fixtures are read on the metrics port only: whoever may send webhooks may not read them.
  const admin = (app: Express) => app.get(FIXTURES_ROUTE, fixturesHandler(gateway.fixtures, (ns, name) => gateway.rollout(ns, name) !== undefined));
  const health = metricsPort === undefined ? undefined : await startHealthServer(gateway.metrics.registry, { live: () => true, ready: () => gateway.synced }, metricsPort, values.host, admin);
  log.info({ port: bound, metricsPort: health?.port, namespace: values.namespace ?? "(all)", server: client.server, stateDir, shadowWorkers: shadowWorkers ?? defaultShadowWorkers(), egress: describeEgress(egress) }, "gateway started");

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = async (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ reason: why }, "shutting down");
      health?.server.close();
      await gateway.stop();
      log.info("stopped");
      resolve(0);
    };
    process.once("SIGTERM", () => void shutdown("SIGTERM"));
    process.once("SIGINT", () => void shutdown("SIGINT"));
  });
}

/** `airollout quarantine list [--rollout NS/NAME] [--limit N] [--json]` and `replay ID --gateway URL`. */
export async function quarantineCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values: flags, positionals } = parseFlags(QUARANTINE, rest);
  const values = { ...flags, gateway: flags.gateway ?? process.env.AIROLLOUT_GATEWAY_URL };
  const store = new QuarantineStore(join(values["state-dir"] ?? defaultStateDir(), "quarantine.db"));
  try {
    if (sub === "list") {
      const limit = Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: ${values.limit} is not a positive integer`);
      let namespace = values.namespace;
      let name: string | undefined;
      if (values.rollout !== undefined) {
        const parts = values.rollout.split("/");
        if (parts.length !== 2 || !parts[0] || !parts[1]) throw new UsageError(`--rollout: ${JSON.stringify(values.rollout)} must be <namespace>/<name>`);
        [namespace, name] = parts;
      }
      const rows = store.list({ namespace, name, limit });
      if (values.json) {
        process.stdout.write(`${JSON.stringify(rows.map((r) => ({ ...r, body: r.body.toString("base64") })), null, 2)}\n`);
        return 0;
      }
      if (rows.length === 0) {
        process.stdout.write("no quarantined payloads\n");
        return 0;
      }
      process.stdout.write(["ID", "TIME", "ROLLOUT", "REASON", "BYTES", "REPLAYED", "DETAIL"].join("\t") + "\n");
      for (const r of rows) {
        const replayed = r.replayedAt ? `${r.replayStatus} ${r.replayedAt}` : "-";
        process.stdout.write([r.id, r.time, `${r.namespace}/${r.name}`, r.reason, r.bodySize, replayed, r.detail.slice(0, 120)].join("\t") + "\n");
      }
      return 0;
    }
    if (sub === "replay") {
      const id = Number(positionals[0]);
      if (!Number.isInteger(id) || id < 1) throw new UsageError(`replay needs a quarantine id, got ${JSON.stringify(positionals[0] ?? "")}`);
      if (!values.gateway) throw new UsageError("replay needs --gateway URL (or AIROLLOUT_GATEWAY_URL), the gateway's base URL");
      const res = await replay(store, id, values.gateway);
      process.stdout.write(`${res.status} ${res.url}\n${res.body}\n`);
      return res.status < 400 ? 0 : 1;
    }
    throw new UsageError(`quarantine: unknown subcommand ${JSON.stringify(sub ?? "")}; use list or replay`);
  } finally {
    store.close();
  }
}
