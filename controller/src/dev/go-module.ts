/**
 * Files from Go modules at pinned versions, fetched through the Go module proxy: the Argo CD and
 * Flux CRDs the GitOps examples are checked against, the prometheus-operator CRDs the chart's
 * monitoring objects are checked against. `go mod download` verifies each module against the
 * checksum database and extracts it into a module cache under $AIROLLOUT_CACHE (default
 * ~/.cache/airollout/go-mod), outside the checkout, so a fresh clone in CI reuses it. Versions
 * are pinned in hack/versions.env.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { cacheDir, toolVersions } from "./tools.ts";

/** The module cache (GOMODCACHE) the downloads go to. */
export function goModCache(): string {
  return join(cacheDir(), "go-mod");
}

// A module path as `go mod download` accepts it, and a semantic version (no queries such as
// `latest`: a pinned version is the point).
const MODULE_PATH = /^[a-z0-9][a-z0-9.-]*\.[a-z]+(\/[A-Za-z0-9._~-]+)+$/;
const VERSION = /^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+incompatible)?$/;

/**
 * The go binary: on PATH or Go's default install location (hack/build-tool.sh looks there too).
 */
function goBinary(): string {
  const candidates = [...(process.env.PATH ?? "").split(delimiter).map((d) => join(d, "go")), "/usr/local/go/bin/go"];
  const found = candidates.find((c) => c !== "go" && existsSync(c) && statSync(c).isFile());
  if (!found) throw new Error("Go is required to fetch Go modules (go 1.26+ on PATH or in /usr/local/go/bin)");
  return found;
}

/** What `go mod download -json` prints for one module. */
interface Download {
  Path?: string;
  Version?: string;
  Dir?: string;
  Error?: string;
}

/**
 * Downloads `module@version` through the Go module proxy (once; later calls find it in the
 * module cache) and resolves with the directory of its extracted files. Throws naming the
 * module when the path or version is malformed, go is missing, or the proxy refuses it.
 */
export async function goModuleDir(module: string, version: string): Promise<string> {
  if (!MODULE_PATH.test(module)) throw new Error(`goModuleDir: module ${JSON.stringify(module)} is not a Go module path`);
  if (!VERSION.test(version)) throw new Error(`goModuleDir: version ${JSON.stringify(version)} of ${module} is not a pinned semantic version`);
  const go = goBinary();
  const cache = goModCache();
  mkdirSync(cache, { recursive: true });
  const env = {
    ...process.env,
    GOMODCACHE: cache,
    // Writable extracted files, so the cache can be deleted like any directory; no -mod flag,
    // which outside a module only gets in the way.
    GOFLAGS: "-modcacherw",
    // The machine's own Go: a module whose go.mod names a newer Go is refused rather than
    // fetching a toolchain (pin a version this Go accepts).
    GOTOOLCHAIN: "local",
    // Outside any go.mod: the checkout's hack/health module must not take part.
    GO111MODULE: "on",
  };
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(go, ["mod", "download", "-json", `${module}@${version}`], { cwd: cache, env, maxBuffer: 1 << 20, timeout: 900_000 }, (err, out, errOut) => {
      // go exits 1 with the reason in the JSON's Error field; keep both for the message.
      if (err && !out) reject(new Error(`go mod download ${module}@${version} failed: ${errOut || err.message}`, { cause: err }));
      else resolve(out);
    });
  });
  let parsed: Download;
  try {
    parsed = JSON.parse(stdout) as Download;
  } catch (e) {
    throw new Error(`go mod download ${module}@${version} printed no JSON: ${stdout.slice(0, 500)}`, { cause: e });
  }
  if (parsed.Error) throw new Error(`go mod download ${module}@${version}: ${parsed.Error}`);
  if (!parsed.Dir || !existsSync(parsed.Dir)) throw new Error(`go mod download ${module}@${version} gave no extracted directory`);
  return parsed.Dir;
}

/**
 * The directory of a module whose version is pinned in hack/versions.env under `versionKey`
 * (for example ARGOCD_VERSION).
 */
export async function pinnedGoModuleDir(module: string, versionKey: string): Promise<string> {
  const version = toolVersions()[versionKey];
  if (!version) throw new Error(`hack/versions.env has no ${versionKey} (the pinned version of ${module})`);
  return goModuleDir(module, version);
}
