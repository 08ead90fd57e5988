/**
 * Which version is the stable: one rule, read by the controller (reconcile/) and the gateway
 * alike, so both route and decide from the same object version (ADR 0009).
 *
 * spec.stable is optional. The version last promoted is recorded in status.stable; while
 * spec.stable is absent, or still holds the value it had at that promotion, the record is the
 * stable, so a change of spec.candidate alone starts the next rollout from the version just
 * promoted. An edit of spec.stable makes spec.stable the stable again: the explicit pair wins
 * whenever it says something new. With neither, there is no stable yet and the first candidate
 * is adopted without steps.
 */
import { shortHash } from "./hash.ts";
import { StableRecordSchema, VersionSchema, type Spec, type StableRecord, type Status, type VersionSpec } from "./schema.ts";

/** The stable of a rollout and where it was read from. */
export interface EffectiveStable {
  version: VersionSpec;
  /** "spec": spec.stable; "status": status.stable, the version last promoted. */
  source: "spec" | "status";
  /** The field it was read from, for messages: spec.stable or status.stable.spec. */
  field: "spec.stable" | "status.stable.spec";
}

/** JSON with object keys sorted, so a digest does not depend on the order fields were written in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Digest of a (parsed, defaulted) version spec: what status.stable.specStableDigest compares. */
export function versionDigest(v: VersionSpec): string {
  return shortHash(canonicalJson(v));
}

/**
 * Why status.stable cannot be used (it is written by the controller only, but a status edit by
 * hand or a bad write must not become a stable nobody checked), or undefined when it is absent
 * or sound. Callers check it before effectiveStable(): a broken record stops the rollout.
 */
export function stableRecordProblem(status: Pick<Status, "stable"> | undefined): string | undefined {
  if (status?.stable === undefined) return undefined;
  const res = StableRecordSchema.safeParse(status.stable);
  if (res.success) return undefined;
  const issue = res.error.issues[0]!;
  return `${["status", "stable", ...issue.path.map(String)].join(".")}: ${issue.message}`;
}

/**
 * The stable of a rollout: spec.stable unless a promotion since it was last edited superseded it,
 * else the version last promoted (status.stable), else none (the first candidate is adopted).
 */
export function effectiveStable(spec: Pick<Spec, "stable">, status: Pick<Status, "stable"> | undefined): EffectiveStable | undefined {
  const record = status?.stable;
  if (spec.stable !== undefined && (record === undefined || record.specStableDigest !== versionDigest(spec.stable))) {
    return { version: spec.stable, source: "spec", field: "spec.stable" };
  }
  if (record !== undefined) {
    // Parsed as spec.stable would be: the API server returns status keys in its own order, and
    // what the stable deploys is hashed from the parsed shape (machine.ts stableEnvironmentRevision).
    const parsed = VersionSchema.safeParse(record.spec);
    return { version: parsed.success ? parsed.data : record.spec, source: "status", field: "status.stable.spec" };
  }
  return undefined;
}

/**
 * The status.stable record of a promotion (or adoption) of `spec.candidate` at `revision`: the
 * candidate's spec is copied, and spec.stable's digest kept so its next edit can be told apart.
 */
export function stableRecord(spec: Pick<Spec, "stable" | "candidate">, revision: string, now: Date, adopted: boolean): StableRecord {
  return {
    version: spec.candidate.version,
    spec: structuredClone(spec.candidate),
    revision,
    promotedAt: now.toISOString(),
    ...(adopted ? { adopted: true } : {}),
    ...(spec.stable !== undefined ? { specStableDigest: versionDigest(spec.stable) } : {}),
  };
}
