import { execFile, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../dev/tools.ts";
import { ALL_NAMESPACES, COMMANDS, DASHBOARD, KUBE_FLAGS, PREVIEW, STATUS, parseFlags, renderHelp, renderUsage, subcommandsOf, wantsHelp, type Command } from "./commands.ts";
import { defaultBindAddress } from "./controller.ts";
import { envExports } from "./dev.ts";

const BIN = join(PROJECT_ROOT, "bin", "airollout");
const KUBECTL_PLUGIN = join(PROJECT_ROOT, "bin", "kubectl-airollout");

function run(file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: "utf8", timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}
const CLI_DIR = join(PROJECT_ROOT, "controller", "src", "cli");

describe("command help", () => {
  it.each(COMMANDS.map((c) => [c.name, c] as const))("%s --help names every flag its parser accepts", (_name, cmd) => {
    const help = renderHelp(cmd);
    expect(Object.keys(cmd.flags).length).toBeGreaterThan(1);
    for (const [name, flag] of Object.entries(cmd.flags)) {
      expect(help).toMatch(new RegExp(`--${name}\\b`));
      if (flag.short) expect(help).toContain(`-${flag.short}, --${name}`);
      // Every flag the help names is one the parser takes, with a value when it says so.
      const args = flag.type === "string" ? [`--${name}`, "x"] : [`--${name}`];
      expect(() => parseFlags(cmd, args)).not.toThrow();
    }
    expect(renderUsage()).toContain(cmd.synopsis[0]);
  });

  it("every command module parses through parseFlags (the table the help is rendered from), and main dispatches every command", () => {
    const sources = readdirSync(CLI_DIR).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && f !== "commands.ts");
    expect(sources.length).toBeGreaterThan(5);
    for (const f of sources) expect(readFileSync(join(CLI_DIR, f), "utf8"), f).not.toMatch(/\bparseArgs\s*\(/);
    const main = readFileSync(join(CLI_DIR, "main.ts"), "utf8");
    for (const c of COMMANDS) expect(main, c.name).toContain(`case "${c.name}":`);
  });

  it("kubectl's flags are one set: every command that talks to the cluster as the user has exactly KUBE_FLAGS, and reaches it through kubeTarget only", () => {
    const withKubeconfig = COMMANDS.filter((c) => "kubeconfig" in c.flags && !["controller", "gateway"].includes(c.name));
    expect(withKubeconfig.map((c) => c.name).sort()).toEqual(["abort", "dashboard", "fixtures", "preview", "promote", "report", "retry", "stacks", "status"]);
    for (const c of withKubeconfig) for (const [name, flag] of Object.entries(KUBE_FLAGS)) expect(c.flags[name], `${c.name} --${name}`).toBe(flag);
    expect(KUBE_FLAGS.namespace.short).toBe("n");
    expect(COMMANDS.filter((c) => "all-namespaces" in c.flags).map((c) => c.name)).toEqual(["preview", "dashboard"]);
    for (const c of [PREVIEW, DASHBOARD]) expect(c.flags["all-namespaces"]).toBe(ALL_NAMESPACES["all-namespaces"]);
    // No second loader: the user's commands go through cli/kube.ts (connect) or kubeTarget, the daemons through loadKubeConfig.
    for (const f of readdirSync(CLI_DIR).filter((x) => x.endsWith(".ts") && !x.endsWith(".test.ts"))) {
      const src = readFileSync(join(CLI_DIR, f), "utf8");
      expect(src, f).not.toMatch(/new KubeConfig\(|loadFromDefault|loadFromFile/);
      if (!["controller.ts", "gateway.ts"].includes(f)) expect(src, f).not.toMatch(/loadKubeConfig\(/);
    }
  });

  it("wantsHelp finds --help and -h anywhere before --, and nowhere else", () => {
    expect(wantsHelp(["up", "--help"])).toBe(true);
    expect(wantsHelp(["-h"])).toBe(true);
    expect(wantsHelp(["list", "--rollout", "bot", "-h"])).toBe(true);
    expect(wantsHelp(["--", "--help"])).toBe(false);
    expect(wantsHelp(["list", "--helpful"])).toBe(false);
    expect(wantsHelp([])).toBe(false);
  });

  it("every command and every subcommand, with --help and with -h, through bin/kubectl-airollout: exit 0, the command's usage, nothing on stderr", async () => {
    const calls: { args: string[]; cmd: Command }[] = [];
    for (const cmd of COMMANDS) {
      for (const flag of ["--help", "-h"]) {
        calls.push({ args: [cmd.name, flag], cmd });
        // After a subcommand, as users type it (`preview up -h`), and after other flags and arguments.
        for (const sub of subcommandsOf(cmd)) calls.push({ args: [cmd.name, sub, flag], cmd }, { args: [cmd.name, sub, "some-name", "-n", "x", flag], cmd });
      }
    }
    expect(calls.length).toBeGreaterThan(4 * COMMANDS.length);
    // A few at a time: each call starts a Node.js process.
    const results = await inBatches(calls, 4, ({ args }) => run(KUBECTL_PLUGIN, args));
    calls.forEach(({ args, cmd }, i) => {
      const r = results[i]!;
      expect(r.stderr, args.join(" ")).toBe("");
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.stdout, args.join(" ")).toBe(renderHelp(cmd, "kubectl airollout"));
      expect(r.stdout).toMatch(/^usage: kubectl airollout /);
    });
    for (const args of [["--help"], ["-h"], ["help"]]) {
      const general = await run(KUBECTL_PLUGIN, args);
      expect([general.code, general.stdout]).toEqual([0, renderUsage("kubectl airollout")]);
    }
    const status = await run(KUBECTL_PLUGIN, ["help", "status"]);
    expect([status.code, status.stdout]).toEqual([0, renderHelp(STATUS, "kubectl airollout")]);
    // Run by its own name, the help says airollout.
    const plain = await run(BIN, ["status", "--help"]);
    expect([plain.code, plain.stdout]).toEqual([0, renderHelp(STATUS, "airollout")]);
  }, 600_000);

  it("subcommandsOf reads the subcommands from the synopsis, and a command without any has none", () => {
    const byName = Object.fromEntries(COMMANDS.map((c) => [c.name, subcommandsOf(c)]));
    expect(byName).toMatchObject({ preview: ["up", "destroy", "list"], dev: ["up", "down", "status", "env"], golden: ["run", "record"], quarantine: ["list", "replay"], status: [], promote: [], dashboard: [], controller: [] });
  });

  it("an unknown flag is still refused with exit 2 and the command's usage on stderr", async () => {
    const r = await run(KUBECTL_PLUGIN, ["status", "bot", "--no-such-flag"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown option '--no-such-flag'");
    expect(r.stderr).toContain(renderHelp(STATUS, "kubectl airollout"));
  }, 60_000);
});

describe("controller bind address", () => {
  it("defaults to loopback run by hand and to every interface in a Pod", () => {
    expect(defaultBindAddress({})).toBe("127.0.0.1");
    expect(defaultBindAddress({ KUBERNETES_SERVICE_HOST: "10.96.0.1" })).toBe("0.0.0.0");
  });
});

describe("dev env", () => {
  it("prints exports a POSIX shell evaluates: KUBECONFIG, and kubectl and airollout first on PATH, even in paths with quotes and spaces", () => {
    const dir = mkdtempSync(join(tmpdir(), "dev env 'quoted' "));
    try {
      const kubeDir = join(dir, "kube bin");
      mkdirSync(kubeDir);
      writeFileSync(join(kubeDir, "kubectl"), "#!/bin/sh\necho fake kubectl\n");
      chmodSync(join(kubeDir, "kubectl"), 0o755);
      const exports = envExports({ kubeconfig: join(dir, "kube config"), kubectl: join(kubeDir, "kubectl") });
      const r = spawnSync("sh", ["-c", `eval "$EXPORTS"; printf '%s\\n' "$KUBECONFIG"; command -v kubectl; command -v airollout; command -v kubectl-airollout`], {
        encoding: "utf8",
        env: { PATH: "/usr/bin:/bin", EXPORTS: exports },
      });
      expect(r.stderr).toBe("");
      expect(r.stdout.split("\n").slice(0, 4)).toEqual([join(dir, "kube config"), join(kubeDir, "kubectl"), join(PROJECT_ROOT, "bin", "airollout"), join(PROJECT_ROOT, "bin", "kubectl-airollout")]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
