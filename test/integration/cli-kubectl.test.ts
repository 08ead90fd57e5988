/**
 * The kubectl plugin against the real local API server, run by the real kubectl
 * (`kubectl airollout ...`, found on PATH as bin/kubectl-airollout). No controller runs: the test
 * writes status itself, so what the plugin shows and waits for is exactly what the API server holds.
 *
 * Given one AIRollout named bot in each of two namespaces, and a kubeconfig with two contexts on
 * the same server whose default namespaces are those two:
 * - --kubeconfig, $KUBECONFIG (a merged list), ~/.kube/config, --context and -n choose the same
 *   rollout for `kubectl airollout` as for `kubectl get`;
 * - `status -w` follows a rollout the test moves, through a watch, and exits 0 when it is
 *   Succeeded, 3 when it is RolledBack, 130 on Ctrl-C;
 * - every command and subcommand answers --help and -h with its usage.
 */
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { parse, stringify } from "yaml";
import { ANNOTATIONS, type AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutPath } from "../../controller/src/api/paths.ts";
import { COMMANDS, renderHelp, renderUsage, subcommandsOf } from "../../controller/src/cli/commands.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

type Status = NonNullable<AIRollout["status"]>;

const dir = mkdtempSync(join(tmpdir(), "cli-kubectl-"));
let nsA: string;
let nsB: string;
/** The two contexts (ctx-a: nsA, ctx-b: nsB), current ctx-a. */
let TWO: string;
/** A file that only sets current-context: ctx-b, to be merged before TWO. */
let CURRENT_B: string;
/** A home directory whose .kube/config is TWO. */
let HOME: string;

/** The environment of a kubectl run: bin/ first on PATH (the plugin), and only the kubeconfig variables given. */
function env(vars: { KUBECONFIG?: string; HOME?: string }): NodeJS.ProcessEnv {
  const base = { ...process.env };
  delete base.KUBECONFIG;
  return { ...base, PATH: `${join(PROJECT_ROOT, "bin")}${delimiter}${process.env.PATH ?? ""}`, HOME: vars.HOME ?? join(dir, "empty-home"), ...(vars.KUBECONFIG ? { KUBECONFIG: vars.KUBECONFIG } : {}) };
}

/** Runs the real kubectl; never throws. */
function kubectl(args: string[], vars: { KUBECONFIG?: string; HOME?: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(inject("kubectl"), args, { env: env(vars), encoding: "utf8", timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

function writeKubeconfigs(): void {
  const admin = parse(readFileSync(kubeconfig(), "utf8")) as { clusters: { name: string }[]; users: { name: string }[] };
  const cluster = admin.clusters[0]!;
  const user = admin.users[0]!;
  const two = {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "ctx-a",
    clusters: [cluster],
    users: [user],
    contexts: [
      { name: "ctx-a", context: { cluster: cluster.name, user: user.name, namespace: nsA } },
      { name: "ctx-b", context: { cluster: cluster.name, user: user.name, namespace: nsB } },
    ],
  };
  TWO = join(dir, "two-contexts.yaml");
  writeFileSync(TWO, stringify(two), { mode: 0o600 });
  CURRENT_B = join(dir, "current-b.yaml");
  writeFileSync(CURRENT_B, stringify({ apiVersion: "v1", kind: "Config", "current-context": "ctx-b" }), { mode: 0o600 });
  HOME = join(dir, "home");
  mkdirSync(join(HOME, ".kube"), { recursive: true });
  writeFileSync(join(HOME, ".kube", "config"), stringify(two), { mode: 0o600 });
  mkdirSync(join(dir, "empty-home"));
}

function progressing(step: number, weight: number, version: string): Status {
  return { phase: "Progressing", observedGeneration: 1, currentStep: step, stepCount: 3, canaryWeight: weight, stableVersion: "v1", candidateVersion: version } as Status;
}

async function writeStatus(ns: string, status: Status): Promise<void> {
  // Replaces the whole status (a merge patch would keep fields such as abort or pauseReason).
  const obj = await client().get<AIRollout>(rolloutPath(ns, "bot"));
  await client().replace(`${rolloutPath(ns, "bot")}/status`, { ...obj, status });
}

beforeAll(async () => {
  nsA = createNamespace("plugin-a");
  nsB = createNamespace("plugin-b");
  writeKubeconfigs();
  for (const [ns, version] of [
    [nsA, "v2-in-a"],
    [nsB, "v2-in-b"],
  ] as const) {
    const spec = {
      stable: { version: "v1", endpoint: "http://127.0.0.1:9" },
      candidate: { version, endpoint: "http://127.0.0.1:9" },
      strategy: { steps: [{ setWeight: 10 }, { setWeight: 50 }, { setWeight: 100 }] },
    };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bot", namespace: ns }, spec }));
    await writeStatus(ns, progressing(0, 10, version));
    // An AIPreview in each namespace, for list -A (no controller runs: they stay Pending).
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIPreview", metadata: { name: `pr-${version.slice(-1)}`, namespace: ns }, spec: { rolloutRef: { name: "bot" } } }));
  }
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("kubectl's flags and precedence, the same for kubectl airollout as for kubectl get", () => {
  const cases: [string, () => { vars: { KUBECONFIG?: string; HOME?: string }; flags: string[]; expect: string }][] = [
    ["~/.kube/config when nothing else is given", () => ({ vars: { HOME }, flags: [], expect: nsA })],
    ["$KUBECONFIG over ~/.kube/config", () => ({ vars: { HOME: join(dir, "empty-home"), KUBECONFIG: TWO }, flags: [], expect: nsA })],
    ["$KUBECONFIG as a list: the first file's current-context wins, the contexts of the next", () => ({ vars: { HOME, KUBECONFIG: [CURRENT_B, TWO].join(delimiter) }, flags: [], expect: nsB })],
    ["--kubeconfig over $KUBECONFIG", () => ({ vars: { KUBECONFIG: [CURRENT_B, TWO].join(delimiter) }, flags: ["--kubeconfig", TWO], expect: nsA })],
    ["--context picks the context and its namespace", () => ({ vars: { KUBECONFIG: TWO }, flags: ["--context", "ctx-b"], expect: nsB })],
    ["-n over the context's namespace", () => ({ vars: { KUBECONFIG: TWO }, flags: ["-n", nsB], expect: nsB })],
    ["--kubeconfig, --context and --namespace together", () => ({ vars: {}, flags: ["--kubeconfig", TWO, "--context", "ctx-b", "--namespace", nsA], expect: nsA })],
  ];

  it.each(cases)("%s", async (_name, make) => {
    const c = make();
    const [viaGet, viaPlugin] = await Promise.all([kubectl(["get", "air", "bot", "-o", "jsonpath={.metadata.namespace}", ...c.flags], c.vars), kubectl(["airollout", "status", "bot", ...c.flags], c.vars)]);
    expect(viaGet.stderr).toBe("");
    expect(viaGet.stdout).toBe(c.expect);
    expect(viaPlugin.stderr).toBe("");
    expect(viaPlugin.code).toBe(0);
    expect(viaPlugin.stdout).toContain(`Name:        ${c.expect}/bot\n`);
    expect(viaPlugin.stdout).toContain(`Candidate:   v2-in-${c.expect === nsA ? "a" : "b"}`);
  }, 240_000);

  it("an unknown context is refused with kubectl's exit code 1 and the contexts there are, never a fallback", async () => {
    const r = await kubectl(["airollout", "status", "bot", "--context", "ctx-c"], { KUBECONFIG: TWO });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--context: no context "ctx-c" .*\(contexts: ctx-a, ctx-b\)/);
    expect(r.stdout).toBe("");
  }, 120_000);

  it("preview list: --context lists that context's namespace, -A every namespace (as kubectl get -A), -A beside -n is refused", async () => {
    const inB = await kubectl(["airollout", "preview", "list", "--context", "ctx-b"], { KUBECONFIG: TWO });
    expect(inB.stderr).toBe("");
    expect(inB.stdout.split("\n").filter(Boolean).map((l) => l.split(/\s+/)[0])).toEqual(["NAME", "pr-b"]);
    const [all, viaGet] = await Promise.all([kubectl(["airollout", "preview", "list", "-A"], { KUBECONFIG: TWO }), kubectl(["get", "aipreviews", "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}"], { KUBECONFIG: TWO })]);
    expect(all.stderr).toBe("");
    const listed = all.stdout.split("\n").filter(Boolean).slice(1).map((l) => l.split(/\s+/).slice(0, 2).join("/"));
    expect(all.stdout).toMatch(/^NAMESPACE +NAME +ROLLOUT +PHASE/);
    // Other test files may create previews in their namespaces meanwhile: compare ours.
    const ours = (l: string[]) => l.filter((x) => x.startsWith(`${nsA}/`) || x.startsWith(`${nsB}/`)).sort();
    expect(ours(listed)).toEqual(ours(viaGet.stdout.trim().split(" ")));
    expect(ours(listed)).toEqual([`${nsA}/pr-a`, `${nsB}/pr-b`].sort());
    const both = await kubectl(["airollout", "preview", "list", "-A", "-n", nsA], { KUBECONFIG: TWO });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("give --namespace or --all-namespaces, not both");
  }, 240_000);

  it("promote --context writes the annotation on that context's rollout only", async () => {
    const r = await kubectl(["airollout", "promote", "bot", "--context", "ctx-b"], { KUBECONFIG: TWO });
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`${nsB}/bot: promotion of the current step requested`);
    const [a, b] = await Promise.all([client().get<AIRollout>(rolloutPath(nsA, "bot")), client().get<AIRollout>(rolloutPath(nsB, "bot"))]);
    expect(b.metadata.annotations?.[ANNOTATIONS.promote]).toMatch(/^step-/);
    expect(a.metadata.annotations?.[ANNOTATIONS.promote]).toBeUndefined();
  }, 120_000);
});

/** `kubectl airollout status bot -w ...` running, its output collected. */
class Follower {
  readonly proc;
  out = "";
  err = "";
  readonly exit: Promise<number | null>;
  constructor(flags: string[]) {
    this.proc = spawn(inject("kubectl"), ["airollout", "status", "bot", "-w", ...flags], { env: env({ KUBECONFIG: TWO }), stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stdout.on("data", (d: Buffer) => (this.out += d.toString()));
    this.proc.stderr.on("data", (d: Buffer) => (this.err += d.toString()));
    this.exit = new Promise((resolve) => this.proc.once("exit", (code) => resolve(code)));
  }
  /** Waits for the first status block: the rollout was read and the watch starts from that version. */
  started(): Promise<true> {
    return waitFor("the first status block", () => (this.proc.exitCode !== null ? Promise.reject(new Error(`exited ${this.proc.exitCode}: ${this.err}`)) : /^Conditions:|^Generation:/m.test(this.out)), 120_000, 100);
  }
}

describe("status -w follows a rollout through a watch until it rests", () => {
  it("reprints every change the test writes (all of them, written back to back) and exits 0 when Succeeded; a Succeeded older than the spec does not end it", async () => {
    await writeStatus(nsB, progressing(0, 10, "v2-in-b"));
    const f = new Follower(["--context", "ctx-b"]);
    await f.started();
    // Written back to back: a watch delivers each, polling would skip some.
    await writeStatus(nsB, { ...progressing(0, 10, "v2-in-b"), phase: "Succeeded", observedGeneration: 0 } as Status);
    await writeStatus(nsB, progressing(1, 20, "v2-in-b"));
    await writeStatus(nsB, progressing(1, 30, "v2-in-b"));
    await writeStatus(nsB, progressing(2, 50, "v2-in-b"));
    await writeStatus(nsB, { ...progressing(3, 100, "v2-in-b"), phase: "Succeeded" } as Status);
    const code = await f.exit;
    expect(f.err).toBe("");
    expect(code).toBe(0);
    const weights = [...f.out.matchAll(/^Weight: +(\d+)%/gm)].map((m) => Number(m[1]));
    expect(weights).toEqual([10, 10, 20, 30, 50, 100]);
    expect(f.out).toContain(`Name:        ${nsB}/bot`);
    expect(f.out.trimEnd().split("\n").at(-1)).toBe(`${nsB}/bot: Succeeded: v2-in-b promoted (exit 0)`);
  }, 240_000);

  it("exits 3 when the rollout is RolledBack (with -n over the context's namespace)", async () => {
    await writeStatus(nsA, progressing(1, 20, "v2-in-a"));
    const f = new Follower(["--context", "ctx-b", "-n", nsA]);
    await f.started();
    await writeStatus(nsA, { ...progressing(1, 0, "v2-in-a"), phase: "RollingBack" } as Status);
    await writeStatus(nsA, { ...progressing(1, 0, "v2-in-a"), phase: "RolledBack", message: "error-rate failed 3 times" } as Status);
    const code = await f.exit;
    expect(f.err).toBe("");
    expect(code).toBe(3);
    expect(f.out).toContain(`Name:        ${nsA}/bot`);
    expect(f.out).toContain("Phase:       RollingBack");
    expect(f.out.trimEnd().split("\n").at(-1)).toBe(`${nsA}/bot: RolledBack: error-rate failed 3 times (exit 3)`);
  }, 240_000);

  it("Ctrl-C ends it at once, cleanly, with 130", async () => {
    await writeStatus(nsB, progressing(1, 20, "v2-in-b"));
    const f = new Follower(["--context", "ctx-b"]);
    await f.started();
    f.proc.kill("SIGINT");
    const code = await f.exit;
    expect(f.err).toBe("");
    expect(code).toBe(130);
    expect(f.out.trimEnd().split("\n").at(-1)).toBe(`${nsB}/bot: interrupted while not yet at rest (exit 130)`);
  }, 240_000);
});

describe("--help and -h everywhere, through kubectl", () => {
  it("every command and subcommand prints its usage and exits 0", async () => {
    const calls: { args: string[]; expect: string }[] = [
      { args: ["airollout", "--help"], expect: renderUsage("kubectl airollout") },
      { args: ["airollout", "-h"], expect: renderUsage("kubectl airollout") },
    ];
    for (const cmd of COMMANDS) {
      for (const flag of ["--help", "-h"]) {
        calls.push({ args: ["airollout", cmd.name, flag], expect: renderHelp(cmd, "kubectl airollout") });
        for (const sub of subcommandsOf(cmd)) calls.push({ args: ["airollout", cmd.name, sub, flag], expect: renderHelp(cmd, "kubectl airollout") });
      }
    }
    for (let i = 0; i < calls.length; i += 4) {
      const batch = calls.slice(i, i + 4);
      const results = await Promise.all(batch.map((c) => kubectl(c.args, { KUBECONFIG: TWO })));
      batch.forEach((c, j) => {
        const r = results[j]!;
        expect(r.stderr, c.args.join(" ")).toBe("");
        expect(r.code, c.args.join(" ")).toBe(0);
        expect(r.stdout, c.args.join(" ")).toBe(c.expect);
      });
    }
  }, 600_000);
});
