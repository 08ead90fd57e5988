/**
 * `airollout dashboard` and `airollout report NAME`: the web dashboard with the user's own
 * kubeconfig (dashboard/server.ts), and one rollout's views frozen into an HTML file.
 */
import { writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { createLogger } from "../telemetry/logger.ts";
import { KubeDashboard } from "../dashboard/kube.ts";
import { renderReport } from "../dashboard/report.ts";
import { Dashboard, UI_DIR } from "../dashboard/server.ts";
import { DASHBOARD, REPORT, parseFlags } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { connect } from "./kube.ts";

/** Whether a listen address is loopback only (then the dashboard also checks the Host header). */
export function isLoopback(address: string): boolean {
  if (address === "localhost") return true;
  if (isIP(address) === 4) return address.startsWith("127.");
  return address === "::1";
}

/** Parses a port flag: an integer from 0 to 65535. */
export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new UsageError(`--port: ${JSON.stringify(value)} is not a port (0 to 65535)`);
  return n;
}

/** The gateway URL of the flags or $AIROLLOUT_GATEWAY_URL; an http(s) URL or nothing. */
function gatewayOf(flag: string | undefined): string | undefined {
  const url = flag ?? process.env.AIROLLOUT_GATEWAY_URL;
  if (url === undefined || url === "") return undefined;
  if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`--gateway: ${JSON.stringify(url)} is not an http(s) URL`);
  return url;
}

export async function dashboardCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(DASHBOARD, argv);
  const port = parsePort(values.port);
  const { client, namespace: chosen } = connect(values);
  const namespace = values["all-namespaces"] ? undefined : chosen;
  const log = createLogger("dashboard");
  const dashboard = new Dashboard({
    kube: new KubeDashboard(client, log),
    namespace,
    readOnly: values["read-only"],
    gateway: gatewayOf(values.gateway),
    loopback: isLoopback(values.address),
    log,
  });
  const { server, port: bound } = await dashboard.listen(port, values.address);
  const host = values.address.includes(":") ? `[${values.address}]` : values.address;
  process.stdout.write(`airollout dashboard: http://${host}:${bound}/  (${namespace ? `namespace ${namespace}` : "all namespaces"}${values["read-only"] ? ", read-only" : ""}; Ctrl-C stops it)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await dashboard.stop(server);
  return 0;
}

export async function reportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(REPORT, argv);
  const name = positionals[0];
  if (!name) throw new UsageError("report: give the AIRollout's name");
  const { client, namespace } = connect(values);
  const log = createLogger("report", "warn");
  const gateway = gatewayOf(values.gateway);
  const dashboard = new Dashboard({ kube: new KubeDashboard(client, log), namespace, readOnly: true, gateway, loopback: true, log });
  const detail = await dashboard.detail(namespace, name);
  const list = await dashboard.list(namespace);
  // The diffs are optional evidence: a gateway that is down leaves the view out, said in the page's data.
  let diffs: unknown = null;
  let diffsError: string | null = gateway ? null : "no --gateway given";
  if (gateway) {
    try {
      const got = await dashboard.diffs(namespace, name, undefined);
      if (got.status === 200) diffs = got.body;
      else diffsError = (got.body as { message?: string }).message ?? `gateway answered ${got.status}`;
    } catch (err) {
      diffsError = (err as Error).message;
    }
  }
  const html = await renderReport({ generatedAt: new Date().toISOString(), rollout: `${namespace}/${name}`, data: { list, detail, diffs, diffsError } }, UI_DIR);
  if (values.output) writeFileSync(values.output, html);
  else process.stdout.write(html);
  return 0;
}
