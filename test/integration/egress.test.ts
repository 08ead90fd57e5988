/**
 * The egress policy end to end, on the real local control plane: the controller (a process, its
 * default policy) refuses an AIRollout whose candidate points at the cloud metadata address
 * (status, Event, Stalled, no hot loop), and the real gateway process refuses to route there; a
 * name the gateway's policy allows when compiled but that resolves to a refused address at dial
 * time is never connected to.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { startBackend, type TestBackend } from "../support/backends.ts";
import { CLI, ControllerProcess, NODE, client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let stateDir: string;
let backend: TestBackend;
let controller: ControllerProcess;
let gateway: { url: string; proc: ChildProcess; log: string[] };

/** Creates an AIRollout with endpoint versions through kubectl. */
function applyRollout(name: string, stableUrl: string, candidateUrl: string): void {
  const obj = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace: ns },
    spec: { stable: { version: "v1", endpoint: stableUrl }, candidate: { version: "v2", endpoint: candidateUrl }, strategy: { steps: [{ setWeight: 50 }, { pause: {} }] } },
  };
  kubectlOk(["apply", "-f", "-"], JSON.stringify(obj));
}

const getRollout = (name: string) => client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);

interface EventItem {
  reason: string;
  type: string;
  message: string;
  count?: number;
}
async function eventsFor(name: string): Promise<EventItem[]> {
  return (await client().get<{ items: EventItem[] }>(`/api/v1/namespaces/${ns}/events`, { fieldSelector: `involvedObject.name=${name},involvedObject.kind=AIRollout` })).items;
}

/** The real gateway from the CLI, with the given egress flags; resolves once it has started. */
async function startGateway(flags: string[]): Promise<{ url: string; proc: ChildProcess; log: string[] }> {
  const proc = spawn(NODE, [CLI, "gateway", "--kubeconfig", kubeconfig(), "--namespace", ns, "--port", "0", "--host", "127.0.0.1", "--state-dir", stateDir, "--shadow-workers", "0", ...flags], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_LEVEL: "info" } });
  const log: string[] = [];
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      log.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  const parse = (l: string): { msg?: string; port?: number } => {
    try {
      return JSON.parse(l) as { msg?: string; port?: number };
    } catch {
      return {};
    }
  };
  const started = await waitFor("gateway started", () => log.map(parse).find((l) => l.msg === "gateway started"), 60_000, 50).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}; stderr: ${err}`);
  });
  return { url: `http://127.0.0.1:${started.port}`, proc, log };
}

async function post(name: string): Promise<{ status: number; body: { error?: string; message?: string } }> {
  const res = await fetch(`${gateway.url}/hooks/${ns}/${name}/events`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ action: "opened" }) });
  return { status: res.status, body: (await res.json()) as { error?: string; message?: string } };
}

beforeAll(async () => {
  ns = createNamespace("egress");
  stateDir = mkdtempSync(join(tmpdir(), "airollout-egress-it-"));
  backend = await startBackend("local");
  // The controller with the CLI's default policy: loopback allowed, metadata always refused.
  controller = new ControllerProcess("egress", ["--namespace", ns, "--lease-namespace", ns, "--leader-elect", "false", "--environments", "none"]);
  // The gateway as the Helm chart runs it (loopback refused), with `localhost` listed so that the
  // name passes when compiled and only its resolved address is refused at dial time.
  gateway = await startGateway(["--egress-default", "deny", "--egress-deny-loopback", "--egress-allow-hosts", "localhost"]);
}, 180_000);

afterAll(async () => {
  await controller?.stop("SIGKILL");
  gateway?.proc.kill("SIGKILL");
  await backend?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("an AIRollout pointing at the cloud metadata address", () => {
  it("is refused by the controller: Degraded, Stalled=True EgressDenied naming the field, one Warning Event, no hot loop", async () => {
    applyRollout("meta", `http://localhost:${backend.port}`, "http://169.254.169.254/latest/meta-data/iam/security-credentials/");
    const obj = await waitFor("status Stalled EgressDenied", async () => {
      const o = await getRollout("meta");
      return o.status?.conditions?.some((c) => c.type === "Stalled" && c.status === "True" && c.reason === "EgressDenied") ? o : undefined;
    }, 90_000);
    expect(obj.status?.phase).toBe("Degraded");
    expect(obj.status?.message).toMatch(/^spec\.candidate\.endpoint: egress to 169\.254\.169\.254 is denied: a link-local address .*--egress-allow-cidrs/);
    const stalled = obj.status!.conditions!.find((c) => c.type === "Stalled")!;
    expect(stalled.message).toBe(obj.status?.message);
    expect(stalled.observedGeneration).toBe(obj.metadata.generation);
    const events = await waitFor("EgressDenied Event", async () => {
      const e = (await eventsFor("meta")).filter((x) => x.reason === "EgressDenied");
      return e.length > 0 ? e : undefined;
    }, 30_000);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: "Warning" });
    expect(events[0]!.message).toContain("spec.candidate.endpoint: egress to 169.254.169.254 is denied");
    // Needs a person: nothing more is written until the spec or the policy changes.
    const rv = obj.metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, 3000));
    expect((await getRollout("meta")).metadata.resourceVersion).toBe(rv);
    expect((await eventsFor("meta")).filter((x) => x.reason === "EgressDenied").map((e) => e.count ?? 1)).toEqual([1]);
  });

  it("is refused by the real gateway: 503 egress_denied naming the field, visible in its log and metrics", async () => {
    const a = await waitFor("gateway refuses", async () => {
      const r = await post("meta");
      return r.body.error === "egress_denied" ? r : undefined;
    }, 30_000);
    expect(a.status).toBe(503);
    expect(a.body.message).toContain("spec.candidate.endpoint: egress to 169.254.169.254 is denied");
    expect(gateway.log.some((l) => l.includes("AIRollout spec problems affect the gateway") && l.includes("egress to 169.254.169.254 is denied"))).toBe(true);
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`airollout_rejected_total\\{rollout="meta",namespace="${ns}",reason="egress_denied",code="503"\\} [1-9]`));
  });
});

describe("a name allowed when compiled that resolves to a refused address", () => {
  it("is never connected to by the real gateway: 503 egress_denied at dial time, the backend sees nothing", async () => {
    backend.reset();
    applyRollout("rebind", `http://localhost:${backend.port}`, `http://localhost:${backend.port}/v2`);
    const a = await waitFor("gateway answers for rebind", async () => {
      const r = await post("rebind");
      return r.body.error === "egress_denied" ? r : undefined;
    }, 30_000);
    expect(a.status).toBe(503);
    expect(a.body.message).toMatch(/egress to localhost is denied at dial time: it resolves to (127\.0\.0\.1|::1), a loopback address/);
    expect(backend.hits).toBe(0);
  });
});
