/**
 * Locates (and, when missing, builds) the Pulumi toolchain: the pulumi CLI and the Kubernetes
 * provider plugin, built from Go modules by hack/build-tool.sh and cached by version under
 * $AIROLLOUT_CACHE (see controller/src/dev/tools.ts for the control plane's binaries).
 *
 * Nothing is ever downloaded at run time: the npm `@pulumi/kubernetes` install script and the
 * CLI's automatic plugin acquisition both fetch from the internet, which these machines (and
 * many clusters) do not reach, so acquisition is disabled and the plugin is found on PATH.
 */
import { existsSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { cacheDir, runBuild, toolVersions } from "./tools.ts";

export interface PulumiToolchain {
  /**
   * A directory laid out as `<root>/bin/{pulumi,pulumi-resource-kubernetes,node,...}`: what
   * the Automation API's PulumiCommand.get({ root }) expects, and what goes first on PATH.
   */
  root: string;
  binDir: string;
  pulumi: string;
  provider: string;
  /** pulumi-language-nodejs, when one was built or found; inline programs do not need it. */
  languageHost?: string;
  pulumiVersion: string;
  kubernetesVersion: string;
}

/** Where hack/build-tool.sh puts each binary, by the versions pinned in hack/versions.env. */
export function toolchainPaths(): { pulumiDir: string; providerDir: string; pulumiVersion: string; kubernetesVersion: string } {
  const v = toolVersions();
  const bin = join(cacheDir(), "bin");
  return {
    pulumiDir: process.env.AIROLLOUT_PULUMI_DIR ?? join(bin, `pulumi-${v.PULUMI_VERSION}`),
    providerDir: process.env.AIROLLOUT_PULUMI_KUBERNETES_DIR ?? join(bin, `pulumi-kubernetes-${v.PULUMI_KUBERNETES_VERSION}`),
    pulumiVersion: v.PULUMI_VERSION!,
    kubernetesVersion: v.PULUMI_KUBERNETES_VERSION!,
  };
}

function link(target: string, path: string): void {
  try {
    if (readlinkSync(path) === target) return;
  } catch {
    // missing or not a link: (re)create below
  }
  // Several processes (test workers, a controller) may lay out the same directory at once:
  // create under a unique name and rename over, which is atomic.
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  symlinkSync(target, tmp);
  renameSync(tmp, path);
}

/**
 * Lays out the toolchain directory from already built binaries; undefined when the CLI or the
 * provider is missing. `node` in it is the Node.js running this process (the project's pinned
 * Node 24), so a language host started by the CLI finds the right one first on PATH.
 */
export function locatePulumiToolchain(): PulumiToolchain | undefined {
  const p = toolchainPaths();
  const pulumi = join(p.pulumiDir, "pulumi");
  const provider = join(p.providerDir, "pulumi-resource-kubernetes");
  if (!existsSync(pulumi) || !existsSync(provider)) return undefined;
  const root = join(cacheDir(), "bin", `pulumi-toolchain-${p.pulumiVersion}-k8s-${p.kubernetesVersion}`);
  const binDir = join(root, "bin");
  mkdirSync(binDir, { recursive: true });
  link(pulumi, join(binDir, "pulumi"));
  link(provider, join(binDir, "pulumi-resource-kubernetes"));
  link(process.execPath, join(binDir, "node"));
  const hostBuilt = join(p.pulumiDir, "pulumi-language-nodejs");
  let languageHost: string | undefined;
  if (existsSync(hostBuilt)) {
    link(hostBuilt, join(binDir, "pulumi-language-nodejs"));
    languageHost = join(binDir, "pulumi-language-nodejs");
  } else {
    rmSync(join(binDir, "pulumi-language-nodejs"), { force: true });
  }
  return {
    root,
    binDir,
    pulumi: join(binDir, "pulumi"),
    provider: join(binDir, "pulumi-resource-kubernetes"),
    ...(languageHost ? { languageHost } : {}),
    pulumiVersion: p.pulumiVersion,
    kubernetesVersion: p.kubernetesVersion,
  };
}

/**
 * Returns the toolchain, building what is missing with hack/build-tool.sh (once per version;
 * a cold build of the CLI and the provider takes 10-25 minutes on 2 cores).
 */
export async function ensurePulumiToolchain(log: (line: string) => void = () => {}): Promise<PulumiToolchain> {
  const found = locatePulumiToolchain();
  if (found) return found;
  const p = toolchainPaths();
  if (!existsSync(join(p.pulumiDir, "pulumi"))) {
    log(`pulumi ${p.pulumiVersion} is not built yet: building it from the Go module proxy into ${cacheDir()} (once; 5-15 min cold)`);
    await runBuild("pulumi", log);
  }
  if (!existsSync(join(p.providerDir, "pulumi-resource-kubernetes"))) {
    log(`pulumi-resource-kubernetes ${p.kubernetesVersion} is not built yet: building it into ${cacheDir()} (once; 5-10 min cold)`);
    await runBuild("pulumi-kubernetes", log);
  }
  const built = locatePulumiToolchain();
  if (!built) throw new Error(`the Pulumi toolchain is still missing after building it: expected ${p.pulumiDir}/pulumi and ${p.providerDir}/pulumi-resource-kubernetes`);
  return built;
}

/**
 * Environment variables for every Pulumi command: the toolchain first on PATH (the provider is
 * found there, as an ambient plugin), no update check, no plugin downloads, and a PULUMI_HOME
 * of our own so a user's ~/.pulumi (credentials, other plugin versions) never leaks in.
 */
export function pulumiEnv(toolchain: PulumiToolchain, pulumiHome: string, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return {
    PATH: `${toolchain.binDir}:${base.PATH ?? "/usr/bin:/bin"}`,
    PULUMI_HOME: pulumiHome,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
}
