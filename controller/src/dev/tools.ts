/**
 * Locates (and, when missing, builds) the Go binaries of the local control plane.
 *
 * Binaries are built from the Go module proxy by hack/build-tool.sh and cached by version under
 * $AIROLLOUT_CACHE (default ~/.cache/airollout), outside the checkout, so a fresh clone in CI
 * reuses them. Users who already have envtest assets can point KUBEBUILDER_ASSETS at them.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The cache directory for Go builds and downloads. */
export function cacheDir(): string {
  return process.env.AIROLLOUT_CACHE ?? join(homedir(), ".cache", "airollout");
}

/** Versions pinned in hack/versions.env (the cache keys). */
export function toolVersions(): Record<string, string> {
  const text = readFileSync(join(PROJECT_ROOT, "hack", "versions.env"), "utf8");
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(\S+)/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export interface ControlPlaneBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  kubeVersion: string;
}

/**
 * Runs `hack/build-tool.sh <target>` (which caches by version and serialises builds), passing
 * its progress lines to `log`; resolves with the directory it printed.
 */
export function runBuild(target: string, log: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(PROJECT_ROOT, "hack", "build-tool.sh"), target], {
      stdio: ["ignore", "pipe", "pipe"],
      env: process.env,
    });
    let out = "";
    let tail = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      const text = d.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split("\n")) {
        // Progress lines only; go's per-module download chatter would drown them.
        if (line.startsWith("[airollout build]")) log(line);
      }
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(out.trim().split("\n").pop() ?? "");
      else reject(new Error(`building ${target} failed (exit ${code}); last output:\n${tail}`));
    });
  });
}

/**
 * Returns the control plane binaries, building any that are missing. A cold build takes
 * minutes (kube-apiserver alone 5-15 on 2 cores); progress is reported through `log`.
 */
export async function ensureControlPlaneBinaries(log: (line: string) => void = () => {}): Promise<ControlPlaneBinaries> {
  const v = toolVersions();
  const kubeVersion = v.KUBE_VERSION!;
  const assets = process.env.KUBEBUILDER_ASSETS;
  const cache = cacheDir();
  const kubeDir = join(cache, "bin", `kubernetes-${kubeVersion}`);
  const etcdDir = join(cache, "bin", `etcd-${v.ETCD_VERSION}`);
  const pick = (name: string, dir: string) => (assets && existsSync(join(assets, name)) ? join(assets, name) : join(dir, name));
  let bins: ControlPlaneBinaries = {
    etcd: pick("etcd", etcdDir),
    kubeApiserver: pick("kube-apiserver", kubeDir),
    kubeControllerManager: join(kubeDir, "kube-controller-manager"),
    kubectl: pick("kubectl", kubeDir),
    kubeVersion,
  };
  if (!existsSync(bins.etcd)) {
    log(`etcd ${v.ETCD_VERSION} is not built yet: building it from the Go module proxy into ${cache} (once, about 2 min)`);
    await runBuild("etcd", log);
  }
  if (!existsSync(bins.kubeApiserver) || !existsSync(bins.kubeControllerManager) || !existsSync(bins.kubectl)) {
    log(`Kubernetes ${kubeVersion} is not built yet: building kube-apiserver, kube-controller-manager and kubectl into ${cache} (once; 10-25 min cold on 2 cores)`);
    await runBuild("kube", log);
    bins = { ...bins, kubeControllerManager: join(kubeDir, "kube-controller-manager") };
  }
  return bins;
}

/**
 * A server program from a Debian package (prometheus, redis-server): $<envVar>, /usr/bin/<name>
 * or on PATH; when missing, hack/ensure-system.sh installs the package (as root) or says what to
 * install.
 */
export function systemBinary(name: string, envVar: string): string {
  const find = () => [process.env[envVar], `/usr/bin/${name}`, ...(process.env.PATH ?? "").split(delimiter).map((d) => join(d, name))].find((c): c is string => !!c && existsSync(c));
  const found = find();
  if (found) return found;
  try {
    execFileSync("bash", [join(PROJECT_ROOT, "hack", "ensure-system.sh"), name], { stdio: ["ignore", "inherit", "inherit"] });
  } catch (e) {
    throw new Error(`${name} is not installed and could not be installed: run \`bash hack/ensure-system.sh ${name}\` as root (Debian package \`${name}\`)`, { cause: e });
  }
  const installed = find();
  if (!installed) throw new Error(`hack/ensure-system.sh ran but no ${name} binary was found`);
  return installed;
}

/**
 * The cache key of airollout-health: a digest of every file in hack/health, computed as
 * hack/build-tool.sh's health_key does (file names in byte order, a NUL after each name and
 * after each content), so an edit of its source or go.mod builds a new binary.
 */
export function healthKey(): string {
  const dir = join(PROJECT_ROOT, "hack", "health");
  const hash = createHash("sha256");
  const names = readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) {
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    hash.update(`${name}\0`).update(readFileSync(path)).update("\0");
  }
  return hash.digest("hex").slice(0, 12);
}

/**
 * The path of airollout-health (hack/health: kstatus and Argo CD's Lua health VM, run on live
 * objects by the tests), building it from the Go module proxy when it is not cached yet
 * (1-4 min cold).
 */
export async function ensureHealthBinary(log: (line: string) => void = () => {}): Promise<string> {
  const bin = join(cacheDir(), "bin", `health-${healthKey()}`, "airollout-health");
  if (!existsSync(bin)) {
    log(`airollout-health is not built yet: building it from the Go module proxy into ${cacheDir()} (1-4 min cold)`);
    await runBuild("health", log);
  }
  if (!existsSync(bin)) throw new Error(`hack/build-tool.sh health ran but ${bin} is missing: hack/health changed during the build?`);
  return bin;
}
