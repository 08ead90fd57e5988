/**
 * Typed failures of environment operations, and the digest of Pulumi's output they carry.
 *
 * Every failure is an EnvironmentFailure (reconcile/contract.ts): `transient` says whether to
 * requeue with backoff (a stack locked by an update in progress) or to set Degraded with the
 * message (everything a person has to fix: bad input, a wrong passphrase, an unwritable
 * backend, an update Pulumi rejected).
 */
import type { EnvironmentFailure, EnvironmentRole } from "../reconcile/contract.ts";
import { Reason } from "../reconcile/reasons.ts";

/** Condition and Event reasons of environment failures: named in reconcile/reasons.ts with the others. */
export const EnvironmentReason = {
  StackLocked: Reason.StackLocked,
  InvalidEnvironment: Reason.InvalidEnvironment,
  MissingPassphrase: Reason.MissingPassphrase,
  MissingReference: Reason.MissingReference,
  BackendUnavailable: Reason.BackendUnavailable,
  UpdateFailed: Reason.EnvironmentUpdateFailed,
  DestroyFailed: Reason.EnvironmentDestroyFailed,
  Disabled: Reason.EnvironmentsDisabled,
} as const;

export interface EnvironmentErrorInit {
  reason: string;
  message: string;
  stackName: string;
  role: EnvironmentRole;
  transient?: boolean;
  /** The tail of Pulumi's output, for logs (too long and noisy for a condition). */
  detail?: string;
}

/** A failed environment operation that is not worth retrying until something changes. */
export class EnvironmentError extends Error implements EnvironmentFailure {
  readonly transient: boolean;
  readonly reason: string;
  readonly stackName: string;
  readonly role: EnvironmentRole;
  readonly detail?: string;

  constructor(init: EnvironmentErrorInit, options?: ErrorOptions) {
    super(init.message, options);
    this.name = "EnvironmentError";
    this.transient = init.transient ?? false;
    this.reason = init.reason;
    this.stackName = init.stackName;
    this.role = init.role;
    if (init.detail !== undefined) this.detail = init.detail;
  }
}

/** Who holds a stack's lock, as the diy backend reports it. */
export interface LockHolder {
  user: string;
  host: string;
  pid: number;
  /** When the lock was taken. */
  since: Date;
}

/** The stack is locked by an update that is (or may be) still running: requeue with backoff. */
export class StackLockedError extends EnvironmentError {
  readonly holders: LockHolder[];
  constructor(init: Omit<EnvironmentErrorInit, "reason" | "transient"> & { holders: LockHolder[] }, options?: ErrorOptions) {
    super({ ...init, reason: EnvironmentReason.StackLocked, transient: true }, options);
    this.name = "StackLockedError";
    this.holders = init.holders;
  }
}

/**
 * Parses the lock holders out of the diy backend's "the stack is currently locked by N lock(s)"
 * message (`<url>: created by <user>@<host> (pid <pid>) at <RFC 3339 time>` per lock). The text
 * is the same for every diy backend (file, s3, gs, azblob), so staleness can be judged without
 * reading the bucket.
 */
export function parseLockHolders(text: string): LockHolder[] {
  const out: LockHolder[] = [];
  for (const m of text.matchAll(/: created by (.*?)@(\S+) \(pid (\d+)\) at (\S+)/g)) {
    const since = new Date(m[4]!);
    out.push({ user: m[1]!, host: m[2]!, pid: Number(m[3]), since: Number.isNaN(since.getTime()) ? new Date(0) : since });
  }
  return out;
}

/** The stdout and stderr of a failed Pulumi command (an Automation API CommandError). */
export function commandOutput(err: unknown): { stdout: string; stderr: string } {
  const r = (err as { commandResult?: { stdout?: string; stderr?: string } } | undefined)?.commandResult;
  if (r) return { stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  return { stdout: "", stderr: err instanceof Error ? err.message : String(err) };
}

const NOISE = [
  /^error: update failed$/,
  /^error: destroy failed$/,
  /^error: preview failed$/,
  /^error: an unhandled error occurred: .*exited with non-zero exit code: \d+$/,
  /^error: \d+ errors? occurred:?$/,
];

/**
 * The part of Pulumi's output a person needs: its `error:` diagnostics (resource errors carry
 * the resource before them), without the generic "update failed" lines, the stack traces, and
 * the progress noise. Falls back to the last lines of stderr.
 */
export function pulumiMessage(err: unknown, maxLength = 2000): string {
  const { stdout, stderr } = commandOutput(err);
  const lines = `${stdout}\n${stderr}`.split("\n").map((l) => l.replace(/\x1b\[[0-9;]*m/g, "").trimEnd()); // eslint-disable-line no-control-regex
  const found: string[] = [];
  let resource = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const header = /^ {2}(\S+ \(.*\)):$/.exec(line);
    if (header) {
      resource = header[1]!;
      continue;
    }
    const m = /^\s*error: (.*)$/.exec(line);
    if (!m) continue;
    let text = m[1]!.trim();
    // A diagnostic continues on indented lines until a blank line or the next diagnostic.
    for (let j = i + 1; j < lines.length; j++) {
      const next = lines[j]!;
      if (next.trim() === "" || /^\s*(error|warning|info):/.test(next) || /^ {2}\S/.test(next) || /^\S/.test(next) || /^\s+at /.test(next)) break;
      text += ` ${next.trim()}`;
      i = j;
    }
    const full = `error: ${text}`;
    if (NOISE.some((re) => re.test(full))) continue;
    // The provider wraps its errors in a list: "1 error occurred: * <the error>".
    text = text.replace(/^\d+ errors? occurred:\s*\*\s*/, "").replace(/\s+\*\s+/g, "; ");
    const withResource = resource && !/^pulumi:pulumi:Stack/.test(resource) ? `${resource}: ${text}` : text;
    if (!found.includes(withResource)) found.push(withResource);
  }
  let message = found.join("; ");
  if (message === "") {
    message = stderr.trim().split("\n").filter((l) => l.trim() !== "").slice(-3).join(" ").trim() || (err instanceof Error ? err.message : String(err));
  }
  return message.length > maxLength ? `${message.slice(0, maxLength - 1)}…` : message;
}

/** The last `n` characters of a failed command's output, for logs. */
export function outputTail(err: unknown, n = 4000): string {
  const { stdout, stderr } = commandOutput(err);
  return `${stdout}\n${stderr}`.trim().slice(-n);
}
