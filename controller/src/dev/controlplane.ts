/**
 * The embedded local control plane: real etcd, kube-apiserver and kube-controller-manager on
 * loopback, the way controller-runtime's envtest and kind give a developer a cluster.
 *
 * Processes are started detached (so `airollout dev up` can exit) and recorded in
 * <dir>/state.json; `down` stops them by process group. A test run passes ownerPid, and a small
 * watchdog process stops the control plane when that owner dies, so a crashed test run leaves
 * no orphan process.
 */
import { execFileSync, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { ensureControlPlaneBinaries, PROJECT_ROOT, type ControlPlaneBinaries } from "./tools.ts";

export type Component = "etcd" | "kube-apiserver" | "kube-controller-manager";
const ORDER: Component[] = ["etcd", "kube-apiserver", "kube-controller-manager"];

interface ProcessRecord {
  pid: number;
  command: string;
  args: string[];
  log: string;
}

/** What `dev up` records in <dir>/state.json. */
export interface ControlPlaneState {
  dir: string;
  kubeVersion: string;
  kubeconfig: string;
  server: string;
  token: string;
  ports: { etcd: number; etcdPeer: number; apiserver: number; controllerManager: number };
  processes: Partial<Record<Component, ProcessRecord>>;
  watchdogPid?: number;
  kubectl: string;
  startedAt: string;
  /** KWOK and kube-scheduler when `dev up --node-simulator` started them. */
  nodeSimulator?: { nodeName: string; pids: { kwok: number; kubeScheduler: number } };
}

export interface UpOptions {
  dir?: string;
  /** Stop the control plane when this process exits (test runs). */
  ownerPid?: number;
  /** Skip kube-controller-manager (faster start; no garbage collection or Deployments). */
  withoutControllerManager?: boolean;
  log?: (line: string) => void;
}

/** The default state directory: $AIROLLOUT_DEV_DIR or ~/.local/state/airollout/dev. */
export function defaultDevDir(): string {
  return process.env.AIROLLOUT_DEV_DIR ?? join(process.env.XDG_STATE_HOME ?? join(homedir(), ".local", "state"), "airollout", "dev");
}

/** Reads the recorded state, or undefined when the control plane was never started here. */
export function readState(dir = defaultDevDir()): ControlPlaneState | undefined {
  const file = join(dir, "state.json");
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as ControlPlaneState;
}

function writeState(state: ControlPlaneState): void {
  writeFileSync(join(state.dir, "state.json"), JSON.stringify(state, null, 2));
}

/** Whether a process is alive (signal 0 only checks). */
export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A free TCP port on 127.0.0.1, avoiding ports already handed out in this run. */
export async function freePort(avoid: Set<number> = new Set()): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
      });
    });
    if (!avoid.has(port)) {
      avoid.add(port);
      return port;
    }
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GET a URL on loopback; resolves with the status code and body, never rejects. */
function probe(url: string, token?: string, ca?: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(
      u,
      { method: "GET", timeout: 3000, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(u.protocol === "https:" ? (ca ? { ca } : { rejectUnauthorized: false }) : {}) },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ code: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err) => resolve({ code: 0, body: err.message }));
    req.end();
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, pid: number, log: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (!alive(pid)) {
      throw new Error(`${what} exited during start-up; last lines of ${log}:\n${tailFile(log)}`);
    }
    await sleep(250);
  }
  throw new Error(`${what} was not ready after ${timeoutMs / 1000}s; last lines of ${log}:\n${tailFile(log)}`);
}

/** The last lines of a log file, for start-up errors. */
export function tailFile(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Starts a detached process (its own process group) logging to `log`. */
export function startProcess(command: string, args: string[], log: string): ProcessRecord {
  const fd = openSync(log, "a");
  // detached: its own process group, so `down` can signal the whole group and the process
  // outlives `airollout dev up`.
  const child = spawn(command, args, { detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${command}`);
  return { pid: child.pid, command, args, log };
}

/** Stops a process group (SIGTERM, then SIGKILL after graceMs) and waits for it to exit. */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  if (!alive(pid)) return;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) signal("SIGKILL");
  while (alive(pid) && Date.now() < deadline + 2000) await sleep(50);
}

function componentArgs(c: Component, state: ControlPlaneState): string[] {
  const d = state.dir;
  const p = state.ports;
  switch (c) {
    case "etcd":
      return [
        `--name=airollout`,
        `--data-dir=${join(d, "etcd")}`,
        `--listen-client-urls=http://127.0.0.1:${p.etcd}`,
        `--advertise-client-urls=http://127.0.0.1:${p.etcd}`,
        `--listen-peer-urls=http://127.0.0.1:${p.etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${p.etcdPeer}`,
        `--initial-cluster=airollout=http://127.0.0.1:${p.etcdPeer}`,
        `--unsafe-no-fsync=true`,
        `--quota-backend-bytes=${2 * 1024 * 1024 * 1024}`,
        `--log-level=warn`,
      ];
    case "kube-apiserver":
      return [
        `--etcd-servers=http://127.0.0.1:${p.etcd}`,
        `--cert-dir=${join(d, "pki")}`,
        `--secure-port=${p.apiserver}`,
        `--bind-address=127.0.0.1`,
        `--advertise-address=127.0.0.1`,
        `--service-cluster-ip-range=10.0.0.0/24`,
        `--allow-privileged=true`,
        `--disable-admission-plugins=ServiceAccount`,
        `--authorization-mode=RBAC`,
        `--token-auth-file=${join(d, "pki", "tokens.csv")}`,
        `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
        `--service-account-key-file=${join(d, "pki", "sa.key")}`,
        `--service-account-signing-key-file=${join(d, "pki", "sa.key")}`,
        `--enable-priority-and-fairness=false`,
        `--profiling=false`,
        `--v=1`,
      ];
    case "kube-controller-manager":
      return [
        `--kubeconfig=${state.kubeconfig}`,
        `--authentication-kubeconfig=${state.kubeconfig}`,
        `--authorization-kubeconfig=${state.kubeconfig}`,
        `--bind-address=127.0.0.1`,
        `--secure-port=${p.controllerManager}`,
        `--cert-dir=${join(d, "pki", "kcm")}`,
        `--leader-elect=false`,
        `--use-service-account-credentials=false`,
        `--service-account-private-key-file=${join(d, "pki", "sa.key")}`,
        `--root-ca-file=${join(d, "pki", "apiserver.crt")}`,
        `--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-route,-persistentvolume-binder,-attachdetach,-csrsigning,-csrapproving,-csrcleaner,-bootstrapsigner,-tokencleaner,-ttl`,
        `--profiling=false`,
        `--v=1`,
      ];
  }
}

function kubeconfigYaml(server: string, caData: string, token: string): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: airollout-dev",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority-data: ${caData}`,
    "users:",
    "- name: airollout-admin",
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: airollout-dev",
    "  context:",
    "    cluster: airollout-dev",
    "    user: airollout-admin",
    "    namespace: default",
    "current-context: airollout-dev",
    "",
  ].join("\n");
}

async function startComponent(c: Component, state: ControlPlaneState, bins: { etcd: string; kubeApiserver: string; kubeControllerManager: string }, log: (line: string) => void): Promise<void> {
  const binary = c === "etcd" ? bins.etcd : c === "kube-apiserver" ? bins.kubeApiserver : bins.kubeControllerManager;
  const logFile = join(state.dir, "logs", `${c}.log`);
  const t0 = Date.now();
  const rec = startProcess(binary, componentArgs(c, state), logFile);
  state.processes[c] = rec;
  writeState(state);
  if (c === "etcd") {
    await waitFor("etcd", async () => (await probe(`http://127.0.0.1:${state.ports.etcd}/health`)).code === 200, 60_000, rec.pid, logFile);
  } else if (c === "kube-apiserver") {
    await waitFor("kube-apiserver", async () => (await probe(`${state.server}/readyz`, state.token)).code === 200, 120_000, rec.pid, logFile);
    // The API server generates its serving certificate (and the CA that signs it) on first
    // start; the kubeconfig trusts that CA instead of skipping verification.
    const ca = readFileSync(join(state.dir, "pki", "apiserver.crt"));
    writeFileSync(state.kubeconfig, kubeconfigYaml(state.server, ca.toString("base64"), state.token), { mode: 0o600 });
  } else {
    await waitFor("kube-controller-manager", async () => (await probe(`https://127.0.0.1:${state.ports.controllerManager}/healthz`)).code === 200, 60_000, rec.pid, logFile);
  }
  log(`${c} ready in ${((Date.now() - t0) / 1000).toFixed(1)}s (pid ${rec.pid}, log ${logFile})`);
}

function startWatchdog(state: ControlPlaneState, ownerPid: number): number {
  const pids = ORDER.map((c) => state.processes[c]?.pid).filter((p): p is number => !!p);
  const groups = pids.map((p) => `-${p}`).join(" ");
  // Plain sh, so the watchdog has no dependency on the Node process it watches.
  const script = `while kill -0 ${ownerPid} 2>/dev/null; do sleep 1; done; kill -TERM ${groups} 2>/dev/null; sleep 5; kill -KILL ${groups} 2>/dev/null; exit 0`;
  const child = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" });
  child.unref();
  return child.pid ?? 0;
}

/** Whether every recorded component is alive and the API server answers /readyz. */
export async function healthy(state: ControlPlaneState, withoutControllerManager = false): Promise<boolean> {
  const comps = withoutControllerManager ? ORDER.slice(0, 2) : ORDER;
  if (!comps.every((c) => alive(state.processes[c]?.pid))) return false;
  return (await probe(`${state.server}/readyz`, state.token)).code === 200;
}

/**
 * Starts the local control plane, or returns the running one (idempotent). Data in etcd is
 * kept across `down`/`up`, like a kind cluster's.
 */
export async function up(opts: UpOptions = {}): Promise<ControlPlaneState> {
  const dir = opts.dir ?? defaultDevDir();
  const log = opts.log ?? (() => {});
  const existing = readState(dir);
  if (existing && (await healthy(existing, opts.withoutControllerManager))) {
    log(`local control plane already running (${existing.server})`);
    if (opts.ownerPid) {
      existing.watchdogPid = startWatchdog(existing, opts.ownerPid);
      writeState(existing);
    }
    return existing;
  }
  if (existing) {
    log("local control plane found partly stopped; restarting it");
    await down({ dir, log: () => {} });
  }
  const t0 = Date.now();
  const bins: ControlPlaneBinaries = await ensureControlPlaneBinaries(log);
  for (const sub of ["pki", "logs", "etcd"]) mkdirSync(join(dir, sub), { recursive: true });

  // Reuse the previous ports when they are free, so an exported KUBECONFIG stays valid.
  const used = new Set<number>();
  const keep = async (p: number | undefined) => (p && !used.has(p) && (await portFree(p)) ? (used.add(p), p) : freePort(used));
  const ports = {
    etcd: await keep(existing?.ports.etcd),
    etcdPeer: await keep(existing?.ports.etcdPeer),
    apiserver: await keep(existing?.ports.apiserver),
    controllerManager: await keep(existing?.ports.controllerManager),
  };
  const pki = join(dir, "pki");
  if (!existsSync(join(pki, "sa.key"))) {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    writeFileSync(join(pki, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  }
  let token = existing?.token;
  if (!token || !existsSync(join(pki, "tokens.csv"))) {
    token = randomBytes(24).toString("hex");
    writeFileSync(join(pki, "tokens.csv"), `${token},airollout-admin,airollout-admin,"system:masters"\n`, { mode: 0o600 });
  }
  const state: ControlPlaneState = {
    dir,
    kubeVersion: bins.kubeVersion,
    kubeconfig: join(dir, "kubeconfig"),
    server: `https://127.0.0.1:${ports.apiserver}`,
    token,
    ports,
    processes: {},
    kubectl: bins.kubectl,
    startedAt: new Date().toISOString(),
  };
  writeState(state);
  const onSignal = () => {
    void down({ dir, log }).then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    for (const c of ORDER) {
      if (c === "kube-controller-manager" && opts.withoutControllerManager) continue;
      await startComponent(c, state, bins, log);
    }
  } catch (err) {
    await down({ dir, log: () => {} });
    throw err;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
  if (opts.ownerPid) state.watchdogPid = startWatchdog(state, opts.ownerPid);
  writeState(state);
  log(`local control plane ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: Kubernetes ${bins.kubeVersion} at ${state.server}`);
  return state;
}

/** Stops every recorded process (SIGTERM, then SIGKILL after a grace period). */
export async function down(opts: { dir?: string; purge?: boolean; log?: (line: string) => void } = {}): Promise<void> {
  const dir = opts.dir ?? defaultDevDir();
  const log = opts.log ?? (() => {});
  const state = readState(dir);
  if (state) {
    // The simulator first: it talks to the API server until it stops.
    for (const [name, pid] of Object.entries(state.nodeSimulator?.pids ?? {})) {
      if (!alive(pid)) continue;
      await stopPid(pid);
      log(`stopped ${SIMULATOR_NAMES[name] ?? name} (pid ${pid}, node simulator)`);
    }
    for (const c of [...ORDER].reverse()) {
      const rec = state.processes[c];
      if (rec && alive(rec.pid)) {
        await stopPid(rec.pid);
        log(`stopped ${c} (pid ${rec.pid})`);
      }
    }
    if (state.watchdogPid && alive(state.watchdogPid)) await stopPid(state.watchdogPid, 1000);
    state.processes = {};
    delete state.watchdogPid;
    delete state.nodeSimulator;
    writeState(state);
  }
  if (opts.purge && existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    log(`removed ${dir}`);
  }
}

/** Restarts one component in place (same ports and data): used to test watch recovery. */
export async function restartComponent(c: Component, opts: { dir?: string; downtimeMs?: number; log?: (line: string) => void } = {}): Promise<void> {
  const dir = opts.dir ?? defaultDevDir();
  const state = readState(dir);
  if (!state) throw new Error(`no local control plane recorded in ${dir}`);
  const rec = state.processes[c];
  if (rec) await stopPid(rec.pid);
  if (opts.downtimeMs) await sleep(opts.downtimeMs);
  const bins = await ensureControlPlaneBinaries(opts.log);
  await startComponent(c, state, bins, opts.log ?? (() => {}));
}

const SIMULATOR_NAMES: Record<string, string> = { kwok: "kwok", kubeScheduler: "kube-scheduler" };

/** Records (or forgets, with undefined) the node simulator started for this control plane. */
export function recordNodeSimulator(dir: string, sim: ControlPlaneState["nodeSimulator"]): void {
  const state = readState(dir);
  if (!state) throw new Error(`no local control plane recorded in ${dir}`);
  if (sim) state.nodeSimulator = sim;
  else delete state.nodeSimulator;
  writeState(state);
}

/** A one-line-per-component report for `airollout dev status`. */
export async function statusReport(dir = defaultDevDir()): Promise<{ running: boolean; lines: string[] }> {
  const state = readState(dir);
  if (!state) return { running: false, lines: [`no local control plane in ${dir} (run: bin/airollout dev up)`] };
  const lines = [`state: ${dir}`, `Kubernetes ${state.kubeVersion} at ${state.server}`];
  let all = true;
  for (const c of ORDER) {
    const rec = state.processes[c];
    const ok = alive(rec?.pid);
    all &&= ok;
    lines.push(`${c.padEnd(24)} ${ok ? `running (pid ${rec!.pid})` : "stopped"}`);
  }
  const sim = state.nodeSimulator;
  if (sim) {
    for (const [name, pid] of Object.entries(sim.pids)) {
      const ok = alive(pid);
      all &&= ok;
      lines.push(`${(SIMULATOR_NAMES[name] ?? name).padEnd(24)} ${ok ? `running (pid ${pid})` : "stopped"} (node simulator, node ${sim.nodeName})`);
    }
  }
  const ready = (await probe(`${state.server}/readyz`, state.token)).code === 200;
  lines.push(`/readyz ${ready ? "ok" : "not ready"}`);
  lines.push(`export KUBECONFIG=${state.kubeconfig}`);
  return { running: all && ready, lines };
}

/** The CRDs in crds/ and their names, installed together (AIRollout, AIPreview). */
const CRDS = [
  { file: "airollout.yaml", name: "airollouts.airollout.dev", kind: "AIRollout" },
  { file: "aipreview.yaml", name: "aipreviews.airollout.dev", kind: "AIPreview" },
] as const;

/**
 * Applies the CRDs in crds/ (server-side) and waits for each one's Established condition.
 * Polled rather than `kubectl wait`, which fails outright when it looks before the API server
 * has written any condition.
 */
export async function installCRD(state: ControlPlaneState): Promise<void> {
  const env = { ...process.env, KUBECONFIG: state.kubeconfig };
  const files = CRDS.flatMap((c) => ["-f", join(PROJECT_ROOT, "crds", c.file)]);
  execFileSync(state.kubectl, ["apply", "--server-side", "--force-conflicts", ...files], { env, stdio: "pipe" });
  for (const crd of CRDS) {
    const deadline = Date.now() + 60_000;
    for (;;) {
      // JSON rather than a jsonpath filter: a filter over conditions that do not exist yet is an
      // error in kubectl, not an empty answer.
      const out = execFileSync(state.kubectl, ["get", "crd", crd.name, "-o", "json"], { env, encoding: "utf8" });
      const conditions = (JSON.parse(out) as { status?: { conditions?: { type: string; status: string }[] | null } }).status?.conditions ?? [];
      if (conditions.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`the ${crd.kind} CRD was not Established within 60s`);
      await sleep(200);
    }
  }
}
