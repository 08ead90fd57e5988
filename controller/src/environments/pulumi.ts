/**
 * The environments port on Pulumi's Automation API: one stack per rollout and role (canary,
 * shadow, stable, preview-<id>), each running the program in infra/ in-process (an inline
 * program calling infra/environment.ts, so no language host binary is needed).
 *
 * - Backend: the rollout's spec.environments.pulumi.backend, else the adapter's backendUrl, else
 *   PULUMI_BACKEND_URL, else a local file backend under the state directory.
 * - Secrets passphrase: the Secret named by spec.environments.pulumi.passphraseSecretRef; without
 *   one, PULUMI_CONFIG_PASSPHRASE, else (file backends only) DEFAULT_LOCAL_PASSPHRASE.
 * - Updates of one stack never overlap in this process (a per-stack queue); a lock held by a
 *   live update elsewhere is a transient StackLockedError, and a stale lock (its process is dead,
 *   or it is older than staleLockMs) is cleared with `pulumi cancel` and the update retried.
 * - Ownership and expiry are stack tags (airollout:rollout, airollout:role,
 *   airollout:expiresAt), readable without the passphrase, so deletion and the preview garbage
 *   collector find stacks with one `pulumi stack ls --tag`.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CommandError,
  ConcurrentUpdateError,
  LocalWorkspace,
  PulumiCommand,
  StackNotFoundError,
  type LocalWorkspaceOptions,
  type OutputMap,
  type Stack,
} from "@pulumi/pulumi/automation/index.js";
import type { Logger } from "pino";
import { SpecSchema, type AIRollout, type Spec, type VersionSpec } from "../api/schema.ts";
import type { EnsureOptions, EnvironmentRole, EnvironmentStatus, EnvironmentSummary, EnvironmentsPort } from "../reconcile/contract.ts";
import { environment, environmentProblems, type EnvironmentArgs } from "../../../infra/environment.ts";
import { EnvironmentError, EnvironmentReason, StackLockedError, commandOutput, outputTail, parseLockHolders, pulumiMessage, type LockHolder } from "./errors.ts";
import { pulumiEnv, type PulumiToolchain } from "../dev/toolchain.ts";
import { shortHash } from "../api/hash.ts";

/** The Pulumi project of every environment stack; infra/Pulumi.yaml has the same name. */
export const PROJECT = "airollout-env";

/**
 * Passphrase of stacks on a local file backend when the rollout names no Secret. It protects
 * nothing the file system does not already: whoever can read the state directory can read
 * this source. Set passphraseSecretRef for anything shared.
 */
export const DEFAULT_LOCAL_PASSPHRASE = "airollout-local-file-backend";

export const TAGS = { rollout: "airollout:rollout", role: "airollout:role", expiresAt: "airollout:expiresAt", url: "airollout:url" } as const;

/** Reads one key of a Secret; undefined when the Secret or the key does not exist. */
export type SecretReader = (namespace: string, name: string, key: string) => Promise<string | undefined>;

export interface PulumiEnvironmentsOptions {
  /** Holds the default file backend (backend/), per-stack work dirs (workspaces/) and PULUMI_HOME (home/). */
  stateDir: string;
  toolchain: PulumiToolchain;
  readSecret: SecretReader;
  /** Backend for rollouts that name none; default PULUMI_BACKEND_URL, else file://<stateDir>/backend. */
  backendUrl?: string;
  /** Passphrase for stacks whose rollout names no Secret; default PULUMI_CONFIG_PASSPHRASE, else DEFAULT_LOCAL_PASSPHRASE on file backends. */
  defaultPassphrase?: string;
  /** Extra environment for Pulumi and the provider, e.g. KUBECONFIG (in a Pod: the service account). */
  env?: Record<string, string>;
  /** A lock of another host older than this is stale (same-host locks: when their pid is dead). */
  staleLockMs?: number;
  /** How long an update waits for readiness before failing, in seconds. */
  timeoutSeconds?: number;
  log?: Logger;
  /** Each line of Pulumi's progress output (tests, debugging). */
  onOutput?: (stackName: string, line: string) => void;
  now?: () => Date;
}

interface StackTarget {
  name: string;
  role: EnvironmentRole;
  backend: string;
  rollout: string;
  workDir: string;
}

/** Runs one operation per key at a time, in call order; different keys run concurrently. */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}

function parseSpec(rollout: AIRollout): Spec | undefined {
  const res = SpecSchema.safeParse(rollout.spec);
  return res.success ? res.data : undefined;
}

/**
 * The stack of a rollout's role: `<stackPrefix or namespace-name>-<role>`, kept to the
 * characters and length stack names allow (a hash suffix keeps long names distinct).
 */
export function stackNameFor(rollout: AIRollout, role: EnvironmentRole, spec: Spec | undefined = parseSpec(rollout)): string {
  const prefix = spec?.environments?.pulumi.stackPrefix ?? `${rollout.metadata.namespace}-${rollout.metadata.name}`;
  const raw = `${prefix}-${role}`;
  const clean = raw.replace(/[^A-Za-z0-9._-]+/g, "-");
  if (clean.length <= 100) return clean;
  return `${clean.slice(0, 90)}-${shortHash(raw, 9)}`;
}

/**
 * Whether a lock's holder (a pulumi CLI on this host) is still running. Where /proc exists, a
 * zombie (killed, not yet reaped) is dead, and so is a pid now used by a program that is not
 * pulumi: after a container restart the same Pod (same hostname) numbers its processes afresh.
 */
export function isLockHolderAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  let stat: string;
  let cmdline: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return true;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  if (state === "Z" || state === "X") return false;
  return cmdline.includes("pulumi");
}

/**
 * Whether a lock can be cleared: its process is gone (same host), or it is older than
 * staleAfterMs (another host, whose processes we cannot see: a controller Pod that was killed).
 */
export function isStaleLock(holder: LockHolder, now: Date, staleAfterMs: number, host: string = hostname(), alive: (pid: number) => boolean = isLockHolderAlive): boolean {
  if (holder.host === host) return !alive(holder.pid);
  return now.getTime() - holder.since.getTime() > staleAfterMs;
}

/**
 * mkdir -p that cannot spin: Node's recursive mkdirSync loops forever where a parent exists but
 * creating the child fails with ENOENT (for example under /proc), so each missing component is
 * created on its own and the first failure is thrown.
 */
export function makeDirectory(dir: string): void {
  const missing: string[] = [];
  let p = resolve(dir);
  while (!existsSync(p)) {
    missing.unshift(p);
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const m of missing) mkdirSync(m);
}

function fileBackendPath(url: string): string | undefined {
  if (!url.startsWith("file://")) return undefined;
  // file://~ means the home directory to Pulumi; file:///abs is absolute.
  if (url.startsWith("file://~")) return join(process.env.HOME ?? "/", url.slice("file://~".length));
  return fileURLToPath(url.replace(/\?.*$/, ""));
}

export class PulumiEnvironments implements EnvironmentsPort {
  private readonly o: PulumiEnvironmentsOptions;
  private readonly serial = new KeyedSerializer();
  private readonly staleLockMs: number;
  private command?: Promise<PulumiCommand>;
  /** Tags known to be set, per stack key: saves a CLI call per tag on every update. */
  private readonly knownTags = new Map<string, Record<string, string>>();
  private readonly inFlight = new Set<AbortController>();

  constructor(o: PulumiEnvironmentsOptions) {
    this.o = o;
    this.staleLockMs = o.staleLockMs ?? 30 * 60_000;
    makeDirectory(join(o.stateDir, "home"));
    makeDirectory(join(o.stateDir, "workspaces"));
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  /** The backend a rollout's stacks live in. */
  backendFor(spec: Spec | undefined): string {
    return spec?.environments?.pulumi.backend ?? this.o.backendUrl ?? process.env.PULUMI_BACKEND_URL ?? `file://${join(this.o.stateDir, "backend")}`;
  }

  private pulumiCommand(): Promise<PulumiCommand> {
    this.command ??= PulumiCommand.get({ root: this.o.toolchain.root, skipVersionCheck: true });
    return this.command;
  }

  private target(rollout: AIRollout, role: EnvironmentRole, spec: Spec | undefined): StackTarget {
    const name = stackNameFor(rollout, role, spec);
    const backend = this.backendFor(spec);
    const workDir = join(this.o.stateDir, "workspaces", `${name}-${shortHash(backend, 8)}`);
    return { name, role, backend, rollout: `${rollout.metadata.namespace}/${rollout.metadata.name}`, workDir };
  }

  private fail(t: StackTarget, reason: string, message: string, cause?: unknown): EnvironmentError {
    return new EnvironmentError({ reason, message, stackName: t.name, role: t.role, ...(cause ? { detail: outputTail(cause) } : {}) }, cause ? { cause } : undefined);
  }

  /** Checks a file backend can be written before Pulumi tries: its error would be far less clear. */
  private checkBackend(t: StackTarget): void {
    const dir = fileBackendPath(t.backend);
    if (!dir) return;
    try {
      makeDirectory(dir);
      accessSync(dir, constants.W_OK);
    } catch (err) {
      throw this.fail(
        t,
        EnvironmentReason.BackendUnavailable,
        `Pulumi backend ${t.backend} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): fix spec.environments.pulumi.backend or the controller's state volume`,
      );
    }
  }

  private async passphrase(rollout: AIRollout, spec: Spec | undefined, t: StackTarget): Promise<string | undefined> {
    const ref = spec?.environments?.pulumi.passphraseSecretRef;
    const ns = rollout.metadata.namespace;
    if (ref) {
      let value: string | undefined;
      try {
        value = await this.o.readSecret(ns, ref.name, ref.key);
      } catch (err) {
        throw new EnvironmentError({ reason: EnvironmentReason.MissingReference, message: `reading Secret "${ref.name}" for spec.environments.pulumi.passphraseSecretRef: ${(err as Error).message}`, stackName: t.name, role: t.role, transient: true }, { cause: err });
      }
      if (value === undefined || value === "") {
        // The same reason as the reference check before any pass acts (reconcile.ts): a missing
        // Secret or key is MissingReference wherever it is found.
        throw this.fail(
          t,
          EnvironmentReason.MissingReference,
          `spec.environments.pulumi.passphraseSecretRef: Secret "${ref.name}" in namespace "${ns}" has no key "${ref.key}" (or does not exist): create it with kubectl create secret generic ${ref.name} -n ${ns} --from-literal=${ref.key}=<passphrase>`,
        );
      }
      return value;
    }
    const fallback = this.o.defaultPassphrase ?? process.env.PULUMI_CONFIG_PASSPHRASE;
    if (fallback !== undefined) return fallback;
    if (t.backend.startsWith("file://")) return DEFAULT_LOCAL_PASSPHRASE;
    // The Pulumi Cloud backend encrypts with its own key; other diy backends need a passphrase.
    if (/^https?:\/\//.test(t.backend)) return undefined;
    throw this.fail(t, EnvironmentReason.MissingPassphrase, `backend ${t.backend} needs a secrets passphrase: set spec.environments.pulumi.passphraseSecretRef to a Secret holding one`);
  }

  private envVars(t: StackTarget, passphrase: string | undefined): Record<string, string> {
    return {
      ...pulumiEnv(this.o.toolchain, join(this.o.stateDir, "home")),
      // The controller owns its environments' objects: a field someone changed with kubectl is
      // taken back instead of failing the update with a server-side apply conflict.
      PULUMI_K8S_ENABLE_PATCH_FORCE: "true",
      ...this.o.env,
      PULUMI_BACKEND_URL: t.backend,
      ...(passphrase !== undefined ? { PULUMI_CONFIG_PASSPHRASE: passphrase } : {}),
    };
  }

  private async workspaceOptions(t: StackTarget, passphrase: string | undefined): Promise<LocalWorkspaceOptions> {
    mkdirSync(t.workDir, { recursive: true });
    return {
      workDir: t.workDir,
      pulumiHome: join(this.o.stateDir, "home"),
      pulumiCommand: await this.pulumiCommand(),
      envVars: this.envVars(t, passphrase),
      projectSettings: { name: PROJECT, runtime: "nodejs", description: "airollout environments (see infra/)" },
    };
  }

  private output(t: StackTarget): (out: string) => void {
    let buf = "";
    return (out: string) => {
      buf += out;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.o.onOutput?.(t.name, line);
      }
    };
  }

  /**
   * Runs `op`, clearing a stale lock once: a lock whose holder is gone is removed with
   * `pulumi cancel`, a live one becomes a StackLockedError (requeue with backoff).
   */
  private async withLockRecovery<T>(t: StackTarget, stack: Stack, op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (err) {
        if (!(err instanceof ConcurrentUpdateError)) throw err;
        const { stderr, stdout } = commandOutput(err);
        const holders = parseLockHolders(`${stderr}\n${stdout}`);
        const now = this.now();
        const stale = holders.length > 0 && holders.every((h) => isStaleLock(h, now, this.staleLockMs));
        if (!stale || attempt > 0) {
          const who = holders.map((h) => `${h.user}@${h.host} pid ${h.pid} since ${h.since.toISOString()}`).join(", ");
          throw new StackLockedError({ message: `stack ${t.name} is locked by an update in progress (${who || "unknown holder"}); retrying with backoff`, stackName: t.name, role: t.role, holders, detail: outputTail(err) }, { cause: err });
        }
        this.o.log?.warn({ stack: t.name, holders }, "clearing a stale stack lock left by a process that is gone");
        await stack.cancel();
        // The killed update may have left operations pending (a create whose result was never
        // recorded). Drop them; the resource, if it was created, is adopted by the next update
        // (the provider's server-side apply upserts).
        await stack.refresh({ color: "never", clearPendingCreates: true, onOutput: this.output(t) });
      }
    }
  }

  private abortable(): { signal: AbortSignal; done: () => void } {
    const ac = new AbortController();
    this.inFlight.add(ac);
    return { signal: ac.signal, done: () => this.inFlight.delete(ac) };
  }

  /**
   * Interrupts updates in progress (SIGINT to the CLI, which stops gracefully and releases its
   * lock); for a controller shutting down.
   */
  close(): void {
    for (const ac of this.inFlight) ac.abort();
  }

  private async ensureTags(t: StackTarget, stack: Stack, tags: Record<string, string>): Promise<void> {
    const key = `${t.backend}|${t.name}`;
    let known = this.knownTags.get(key);
    if (!known) {
      known = await stack.workspace.listTags(t.name).catch(() => ({}));
      this.knownTags.set(key, known);
    }
    for (const [k, v] of Object.entries(tags)) {
      if (known[k] === v) continue;
      await stack.workspace.setTag(t.name, k, v);
      known[k] = v;
    }
  }

  private args(rollout: AIRollout, role: EnvironmentRole, version: VersionSpec, spec: Spec | undefined, opts: EnsureOptions): EnvironmentArgs {
    return {
      rollout: rollout.metadata.name,
      namespace: spec?.environments?.namespace ?? rollout.metadata.namespace,
      role,
      version,
      waitForReady: spec?.environments?.waitForReady ?? true,
      timeoutSeconds: this.o.timeoutSeconds ?? 300,
      ...(opts.revision !== undefined ? { revision: opts.revision } : {}),
    };
  }

  /** Creates or updates the environment; see EnvironmentsPort.ensure. */
  async ensure(rollout: AIRollout, role: EnvironmentRole, version: VersionSpec, opts: EnsureOptions = {}): Promise<EnvironmentStatus> {
    const spec = parseSpec(rollout);
    const t = this.target(rollout, role, spec);
    if (version.endpoint !== undefined && version.image === undefined) {
      // An external endpoint is already running: there is nothing to stand up, and no stack.
      return { stack: "", phase: "Ready", url: version.endpoint, version: version.version, ...(opts.revision ? { revision: opts.revision } : {}), lastUpdateTime: this.now().toISOString(), message: "external endpoint: no environment to stand up" };
    }
    const args = this.args(rollout, role, version, spec, opts);
    // Bad input is refused before a stack exists, so it leaves nothing half-created behind.
    const problems = environmentProblems(args);
    if (problems.length > 0) throw this.fail(t, EnvironmentReason.InvalidEnvironment, `${role} environment of ${version.version}: ${problems.join("; ")}`);
    this.checkBackend(t);
    const passphrase = await this.passphrase(rollout, spec, t);
    const extraConfig = spec?.environments?.pulumi.config ?? {};
    const expiresAt = opts.expiresAt?.toISOString();

    return this.serial.run(`${t.backend}|${t.name}`, async () => {
      const started = Date.now();
      const program = async () => {
        const out = environment(args);
        return { serviceName: out.serviceName, url: out.url, namespace: out.namespace, version: version.version, role, rollout: t.rollout, ...(expiresAt ? { expiresAt } : {}) };
      };
      let stack: Stack;
      try {
        stack = await LocalWorkspace.createOrSelectStack({ stackName: t.name, projectName: PROJECT, program }, await this.workspaceOptions(t, passphrase));
        await this.ensureTags(t, stack, { [TAGS.rollout]: t.rollout, [TAGS.role]: role, ...(expiresAt ? { [TAGS.expiresAt]: expiresAt } : {}) });
        if (Object.keys(extraConfig).length > 0) await stack.setAllConfig(Object.fromEntries(Object.entries(extraConfig).map(([k, v]) => [k, { value: v }])));
      } catch (err) {
        throw this.classify(t, err, EnvironmentReason.UpdateFailed, "selecting the stack");
      }
      const { signal, done } = this.abortable();
      try {
        const result = await this.withLockRecovery(t, stack, () => stack.up({ color: "never", onOutput: this.output(t), signal }));
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        const changes = Object.entries(result.summary.resourceChanges ?? {})
          .filter(([k, n]) => k !== "same" && (n ?? 0) > 0)
          .map(([k, n]) => `${k} ${n}`);
        this.o.log?.info({ stack: t.name, seconds, changes: result.summary.resourceChanges }, "environment up");
        const status = this.statusFrom(t, result.outputs, version, opts, `pulumi up: ${changes.length > 0 ? changes.join(", ") : "no changes"} in ${seconds}s`);
        // The URL as a tag too: `list` (preview list, airollout stacks) reads tags, not outputs.
        if (status.url) await this.ensureTags(t, stack, { [TAGS.url]: status.url }).catch((err: unknown) => this.o.log?.warn({ stack: t.name, err: (err as Error).message }, "could not tag the stack with its URL"));
        return status;
      } catch (err) {
        throw this.classify(t, err, EnvironmentReason.UpdateFailed, "pulumi up");
      } finally {
        done();
      }
    });
  }

  private statusFrom(t: StackTarget, outputs: OutputMap, version: VersionSpec, opts: EnsureOptions, message: string): EnvironmentStatus {
    const str = (k: string) => (typeof outputs[k]?.value === "string" ? (outputs[k]!.value as string) : undefined);
    const url = str("url");
    const serviceName = str("serviceName");
    return {
      stack: t.name,
      phase: "Ready",
      ...(url ? { url } : {}),
      ...(serviceName ? { serviceName } : {}),
      version: version.version,
      ...(opts.revision ? { revision: opts.revision } : {}),
      lastUpdateTime: this.now().toISOString(),
      consecutiveFailures: 0,
      message,
      ...(opts.expiresAt ? { expiresAt: opts.expiresAt.toISOString() } : {}),
    };
  }

  private classify(t: StackTarget, err: unknown, reason: string, doing: string): EnvironmentError {
    if (err instanceof EnvironmentError) return err;
    if (err instanceof ConcurrentUpdateError) {
      const { stderr, stdout } = commandOutput(err);
      return new StackLockedError({ message: `stack ${t.name} is locked by an update in progress; retrying with backoff`, stackName: t.name, role: t.role, holders: parseLockHolders(`${stderr}\n${stdout}`), detail: outputTail(err) }, { cause: err });
    }
    const message = pulumiMessage(err);
    const { stderr } = commandOutput(err);
    if (/incorrect passphrase|passphrase must be set|PULUMI_CONFIG_PASSPHRASE/i.test(`${message}\n${stderr}`)) {
      return this.fail(t, EnvironmentReason.MissingPassphrase, `${doing} on stack ${t.name}: ${message} (the passphrase in spec.environments.pulumi.passphraseSecretRef must be the one the stack was created with)`, err);
    }
    if (/permission denied|read-only file system|no space left/i.test(message) && t.backend.startsWith("file://")) {
      return this.fail(t, EnvironmentReason.BackendUnavailable, `${doing} on stack ${t.name}: ${message}`, err);
    }
    if (/invalid environment /.test(message)) return this.fail(t, EnvironmentReason.InvalidEnvironment, message, err);
    if (!(err instanceof CommandError)) return this.fail(t, reason, `${doing} on stack ${t.name}: ${(err as Error).message ?? String(err)}`, err);
    return this.fail(t, reason, `${doing} on stack ${t.name} failed: ${message}`, err);
  }

  private async selectExisting(t: StackTarget, passphrase: string | undefined): Promise<Stack | undefined> {
    try {
      return await LocalWorkspace.selectStack({ stackName: t.name, projectName: PROJECT, program: async () => ({}) }, await this.workspaceOptions(t, passphrase));
    } catch (err) {
      if (err instanceof StackNotFoundError) return undefined;
      throw err;
    }
  }

  private async destroyTarget(t: StackTarget, passphrase: string | undefined, why: string): Promise<void> {
    await this.serial.run(`${t.backend}|${t.name}`, async () => {
      const started = Date.now();
      let stack: Stack | undefined;
      try {
        stack = await this.selectExisting(t, passphrase);
      } catch (err) {
        throw this.classify(t, err, EnvironmentReason.DestroyFailed, "selecting the stack");
      }
      if (stack) {
        const s = stack;
        const { signal, done } = this.abortable();
        try {
          await this.withLockRecovery(t, s, () => s.destroy({ color: "never", onOutput: this.output(t), signal }));
          // --remove-backups: the diy backend otherwise keeps <stack>.json.bak and backups/
          // forever, a leak for short-lived previews. (The Automation API has no such option.)
          await this.cli(t, ["stack", "rm", t.name, "--yes", "--remove-backups"], passphrase);
        } catch (err) {
          throw this.classify(t, err, EnvironmentReason.DestroyFailed, "pulumi destroy");
        } finally {
          done();
        }
      }
      this.knownTags.delete(`${t.backend}|${t.name}`);
      rmSync(t.workDir, { recursive: true, force: true });
      this.o.log?.info({ stack: t.name, reason: why, existed: stack !== undefined, seconds: ((Date.now() - started) / 1000).toFixed(1) }, "environment destroyed");
    });
  }

  /** Destroys one environment and removes its stack; see EnvironmentsPort.destroy. */
  async destroy(rollout: AIRollout, role: EnvironmentRole, reason: string): Promise<void> {
    const spec = parseSpec(rollout);
    const t = this.target(rollout, role, spec);
    this.checkBackend(t);
    await this.destroyTarget(t, await this.passphrase(rollout, spec, t), reason);
  }

  /** Destroys every environment of the rollout; see EnvironmentsPort.destroyAll. */
  async destroyAll(rollout: AIRollout, reason: string): Promise<void> {
    const spec = parseSpec(rollout);
    const probe = this.target(rollout, "canary", spec);
    const dir = fileBackendPath(probe.backend);
    // A file backend that was never created holds no stacks: nothing to destroy, and no reason
    // to hold a deleted rollout's finalizer.
    if (dir !== undefined && !existsSync(dir)) return;
    const [names, owned] = await Promise.all([this.stackNames(probe.backend), this.list(rollout)]);
    const targets = new Map<string, EnvironmentRole>(owned.map((s) => [s.stack, s.role]));
    // The fixed roles are matched by name too: a stack whose tags were never written (the
    // controller died right after creating it) is still found.
    for (const role of ["canary", "shadow", "stable"] as const) {
      const name = stackNameFor(rollout, role, spec);
      if (names.has(name)) targets.set(name, role);
    }
    if (targets.size === 0) return;
    // Only now the passphrase: a rollout with nothing left is let go even when its Secret is gone.
    const passphrase = await this.passphrase(rollout, spec, probe);
    for (const role of targets.values()) await this.destroyTarget(this.target(rollout, role, spec), passphrase, reason);
  }

  /** Names of the project's stacks in a backend (one `pulumi stack ls`). */
  private async stackNames(backend: string): Promise<Set<string>> {
    const workDir = this.listWorkDir(backend);
    const stacks = JSON.parse(await this.cli({ backend, workDir }, ["stack", "ls", "--json"])) as { name: string }[];
    return new Set(stacks.map((s) => s.name.split("/").pop()!));
  }

  /** A work directory with only a Pulumi.yaml: `stack ls` lists the project of the directory it runs in. */
  private listWorkDir(backend: string): string {
    const workDir = join(this.o.stateDir, "workspaces", `_list-${shortHash(backend, 8)}`);
    const file = join(workDir, "Pulumi.yaml");
    if (!existsSync(file)) {
      // Listings run side by side: write once, atomically, so none reads a half-written file.
      mkdirSync(workDir, { recursive: true });
      const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
      writeFileSync(tmp, `name: ${PROJECT}\nruntime: nodejs\n`);
      renameSync(tmp, file);
    }
    return workDir;
  }

  /** Runs the pulumi CLI directly, for what the Automation API does not expose (tag filters, --remove-backups). */
  private cli(t: Pick<StackTarget, "backend" | "workDir">, args: string[], passphrase?: string): Promise<string> {
    mkdirSync(t.workDir, { recursive: true });
    return new Promise((resolve, reject) => {
      execFile(
        this.o.toolchain.pulumi,
        [...args, "--non-interactive"],
        { cwd: t.workDir, env: { ...process.env, ...this.envVars({ ...t, name: "", role: "canary", rollout: "" }, passphrase) }, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => (err ? reject(new Error(`pulumi ${args.join(" ")}: ${stderr.trim() || err.message}`, { cause: err })) : resolve(stdout)),
      );
    });
  }

  private async listIn(backend: string, tagFilter: string): Promise<EnvironmentSummary[]> {
    const workDir = this.listWorkDir(backend);
    const stacks = JSON.parse(await this.cli({ backend, workDir }, ["stack", "ls", "--json", "--tag", tagFilter])) as { name: string; lastUpdate?: string; updateInProgress?: boolean }[];
    const out: EnvironmentSummary[] = [];
    for (const s of stacks) {
      const name = s.name.split("/").pop()!;
      const tags = JSON.parse(await this.cli({ backend, workDir }, ["stack", "tag", "ls", "--json", "--stack", name])) as Record<string, string>;
      const role = tags[TAGS.role] as EnvironmentRole | undefined;
      if (!role) continue;
      out.push({
        stack: name,
        role,
        ...(tags[TAGS.rollout] ? { rollout: tags[TAGS.rollout] } : {}),
        ...(tags[TAGS.expiresAt] ? { expiresAt: tags[TAGS.expiresAt] } : {}),
        ...(tags[TAGS.url] ? { url: tags[TAGS.url] } : {}),
        ...(s.lastUpdate ? { lastUpdate: s.lastUpdate } : {}),
        updating: s.updateInProgress ?? false,
      });
    }
    return out;
  }

  /** The rollout's environment stacks (every rollout's in the default backend when undefined). */
  async list(rollout?: AIRollout): Promise<EnvironmentSummary[]> {
    if (!rollout) return this.listIn(this.backendFor(undefined), TAGS.role);
    const spec = parseSpec(rollout);
    return this.listIn(this.backendFor(spec), `${TAGS.rollout}=${rollout.metadata.namespace}/${rollout.metadata.name}`);
  }

  /**
   * Destroys preview stacks of the default backend whose expiresAt has passed. Their owner may
   * be gone, so the passphrase is the default one: previews whose rollout names a passphrase
   * Secret are collected by the rollout's own passes (destroy) instead, and skipped here when
   * the default does not open them.
   */
  async collectExpired(now: Date): Promise<EnvironmentSummary[]> {
    const backend = this.backendFor(undefined);
    const all = await this.listIn(backend, TAGS.expiresAt);
    const collected: EnvironmentSummary[] = [];
    for (const s of all) {
      if (!s.role.startsWith("preview-") || !s.expiresAt || Date.parse(s.expiresAt) > now.getTime()) continue;
      const workDir = join(this.o.stateDir, "workspaces", `${s.stack}-${shortHash(backend, 8)}`);
      const t: StackTarget = { name: s.stack, role: s.role, backend, rollout: s.rollout ?? "", workDir };
      const passphrase = this.o.defaultPassphrase ?? process.env.PULUMI_CONFIG_PASSPHRASE ?? (backend.startsWith("file://") ? DEFAULT_LOCAL_PASSPHRASE : undefined);
      try {
        await this.destroyTarget(t, passphrase, "expired");
        collected.push(s);
      } catch (err) {
        this.o.log?.warn({ stack: s.stack, err: (err as Error).message }, "could not collect an expired preview environment");
      }
    }
    return collected;
  }
}

/** A SecretReader over the Kubernetes API (GET /api/v1/namespaces/<ns>/secrets/<name>). */
export function kubeSecretReader(get: (path: string) => Promise<{ data?: Record<string, string> }>, isNotFound: (err: unknown) => boolean): SecretReader {
  return async (namespace, name, key) => {
    try {
      const s = await get(`/api/v1/namespaces/${namespace}/secrets/${name}`);
      const b64 = s.data?.[key];
      return b64 === undefined ? undefined : Buffer.from(b64, "base64").toString("utf8");
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
}
