/** One port for /healthz, /readyz and /metrics, as kube probes and Prometheus expect. */
import express from "express";
import type { Server } from "node:http";
import type { Registry } from "prom-client";

export interface HealthSource {
  /** Liveness: the process works (watch loop not wedged). */
  live(): boolean;
  /** Readiness: caches synced (a standby replica is ready too: it can take over). */
  ready(): boolean;
}

/**
 * Starts the probe/metrics server; resolves with the bound server and port. `routes` adds a
 * component's admin endpoints (the gateway's fixtures), which then share this port's reach.
 */
export function startHealthServer(registry: Registry, health: HealthSource, port: number, host = "0.0.0.0", routes?: (app: express.Express) => void): Promise<{ server: Server; port: number }> {
  const app = express();
  app.disable("x-powered-by");
  app.get("/healthz", (_req, res) => {
    res.status(health.live() ? 200 : 500).type("text/plain").send(health.live() ? "ok" : "unhealthy");
  });
  app.get("/readyz", (_req, res) => {
    res.status(health.ready() ? 200 : 503).type("text/plain").send(health.ready() ? "ok" : "not ready");
  });
  app.get("/metrics", async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  routes?.(app);
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, () => {
      const addr = server.address();
      resolve({ server, port: typeof addr === "object" && addr ? addr.port : port });
    });
    server.once("error", reject);
  });
}
