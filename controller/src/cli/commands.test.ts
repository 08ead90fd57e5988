import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../dev/tools.ts";
import { COMMANDS, parseFlags, renderHelp, renderUsage, wantsHelp } from "./commands.ts";
import { defaultBindAddress } from "./controller.ts";
import { envExports } from "./dev.ts";

const BIN = join(PROJECT_ROOT, "bin", "airollout");
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

  it("wantsHelp finds --help and -h anywhere before --, and nowhere else", () => {
    expect(wantsHelp(["up", "--help"])).toBe(true);
    expect(wantsHelp(["-h"])).toBe(true);
    expect(wantsHelp(["list", "--rollout", "bot", "-h"])).toBe(true);
    expect(wantsHelp(["--", "--help"])).toBe(false);
    expect(wantsHelp(["list", "--helpful"])).toBe(false);
    expect(wantsHelp([])).toBe(false);
  });

  it("bin/airollout <command> --help and -h print the command's help and exit 0 (no 'Unknown option')", () => {
    for (const cmd of COMMANDS) {
      const sub = cmd.synopsis[0]!.split(" ")[1]?.match(/^[a-z]+$/)?.[0];
      // -h too where there are subcommands, after one, as users type it (`preview up -h`).
      for (const flag of sub ? ["--help", "-h"] : ["--help"]) {
        const args = sub ? [cmd.name, sub, flag] : [cmd.name, flag];
        const r = spawnSync(BIN, args, { encoding: "utf8", timeout: 60_000 });
        expect(r.stderr, args.join(" ")).toBe("");
        expect(r.status, args.join(" ")).toBe(0);
        expect(r.stdout).toBe(renderHelp(cmd));
      }
    }
    const general = spawnSync(BIN, ["--help"], { encoding: "utf8", timeout: 60_000 });
    expect(general.status).toBe(0);
    expect(general.stdout).toBe(renderUsage());
  }, 180_000);
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
