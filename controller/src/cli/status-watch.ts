/**
 * `airollout status NAME -w`: follows one rollout through a watch of the API server (never by
 * polling), reprints its status on every change that shows, and ends when the rollout comes to
 * rest: promoted, rolled back, aborted, paused for a human, or stalled. The exit code says which
 * (FOLLOW_EXIT), so a script or a CI job can wait on a release the way `kubectl rollout status`
 * waits on a Deployment.
 *
 * A dropped watch resumes from the last resourceVersion seen; 410 Gone (that version compacted
 * away) reads the object afresh. Reconnects are bounded: after MAX_FAILED_CONNECTIONS connections
 * in a row that brought nothing, it gives up with exit code 1 rather than retrying forever.
 */
import type { AIRollout } from "../api/schema.ts";
import { rolloutPath, rolloutsPath } from "../api/paths.ts";
import { renderStatus } from "./status.ts";

/** The exit codes of `status -w` (2 stays the CLI's usage error). */
export const FOLLOW_EXIT = {
  /** Succeeded: the candidate was promoted and serves all traffic. */
  promoted: 0,
  /** The API server could not be read or watched (after the bounded reconnects), or the rollout was deleted. */
  error: 1,
  /** RolledBack by the controller: a failed analysis, shadow comparison or golden suite. */
  rolledBack: 3,
  /** RolledBack because a human aborted it. */
  aborted: 4,
  /** Paused until a human promotes or aborts it (a pause step, spec.paused, an inconclusive analysis, missing evidence). */
  paused: 5,
  /** Stalled otherwise (condition Stalled=True: an invalid spec, failed environments, past the progress deadline). */
  stalled: 6,
  /** --timeout passed first. */
  timeout: 7,
  /** Interrupted by Ctrl-C (SIGINT, 128+2). */
  interrupted: 130,
} as const;

/** Connections in a row that may fail (or end at once, empty) before following gives up. */
export const MAX_FAILED_CONNECTIONS = 5;
/** A connection that lasted this long was healthy even without events (a quiet rollout). */
const HEALTHY_CONNECTION_MS = 10_000;
/** The API server ends a watch after this long; it is renewed from the last version. */
const WATCH_TIMEOUT_SECONDS = 240;

/** Where a rollout rests: the exit code and the words for it. */
export interface RestingPoint {
  code: number;
  reason: string;
}

/**
 * Whether the rollout has come to rest, and where; undefined while it moves on by itself. A
 * status older than the spec (observedGeneration behind metadata.generation) describes the
 * rollout before the last edit (a Succeeded v2 while v3 was just applied), so it never ends the wait.
 */
export function restingPoint(obj: AIRollout): RestingPoint | undefined {
  const s = obj.status ?? {};
  if (s.observedGeneration === undefined || s.observedGeneration !== obj.metadata.generation) return undefined;
  switch (s.phase) {
    case "Succeeded":
      return { code: FOLLOW_EXIT.promoted, reason: `Succeeded: ${s.candidateVersion ?? s.stableVersion ?? "the candidate"} promoted` };
    case "RolledBack":
      return s.abort ? { code: FOLLOW_EXIT.aborted, reason: "Aborted: rolled back by a human" } : { code: FOLLOW_EXIT.rolledBack, reason: `RolledBack${s.message ? `: ${s.message}` : ""}` };
    case "Paused":
      return { code: FOLLOW_EXIT.paused, reason: `Paused (${s.pauseReason ?? "Paused"}): waiting for a human to promote or abort` };
    default: {
      const stalled = s.conditions?.find((c) => c.type === "Stalled" && c.status === "True");
      return stalled ? { code: FOLLOW_EXIT.stalled, reason: `Stalled (${stalled.reason})${stalled.message ? `: ${stalled.message}` : ""}` } : undefined;
    }
  }
}

/** What following needs of the API server: a read and a watch (KubeClient and client-node's Watch, or a test's fake). */
export interface FollowPort {
  get(path: string): Promise<AIRollout>;
  /** Starts a watch; events go to onEvent, its end (err undefined or null when closed normally) to onDone, once. */
  watch(path: string, query: Record<string, string | number | boolean>, onEvent: (type: string, obj: unknown) => void, onDone: (err: unknown) => void): Promise<{ abort(): void }>;
}

/** One follow: where to look, where to print, and when to stop. */
export interface FollowOptions {
  port: FollowPort;
  namespace: string;
  name: string;
  write: (text: string) => void;
  /** Aborted on Ctrl-C: ends with FOLLOW_EXIT.interrupted. */
  signal: AbortSignal;
  /** Gives up after this long with FOLLOW_EXIT.timeout; none: no limit. */
  timeoutMs?: number;
  /** First wait before a reconnect after a failed connection, doubled each time (default 500 ms, at most 8 s). */
  backoffMs?: number;
}

/** How one watch connection ended. */
type ConnectionEnd = { kind: "rest"; rest: RestingPoint } | { kind: "deleted" } | { kind: "gone" } | { kind: "stopped" } | { kind: "closed"; healthy: boolean; error?: string };

/** The state of one follow, shared by its steps. */
interface Follow extends FollowOptions {
  path: string;
  resourceVersion: string;
  shown: string;
  failures: number;
  /** Aborted on Ctrl-C or when the timeout passes. */
  stop: AbortController;
  timedOut: boolean;
}

/**
 * Follows a rollout until it rests (FOLLOW_EXIT has the codes): prints its status, then again
 * on every change that shows, then one line saying where it ended.
 */
export async function followRollout(o: FollowOptions): Promise<number> {
  const f: Follow = { ...o, path: rolloutPath(o.namespace, o.name), resourceVersion: "", shown: "", failures: 0, stop: new AbortController(), timedOut: false };
  const onAbort = () => f.stop.abort();
  o.signal.addEventListener("abort", onAbort, { once: true });
  const timer = o.timeoutMs === undefined ? undefined : setTimeout(() => ((f.timedOut = true), f.stop.abort()), o.timeoutMs);
  try {
    const first = await o.port.get(f.path);
    const rest = show(f, first);
    if (rest) return finish(f, rest);
    return await watchUntilRest(f);
  } finally {
    clearTimeout(timer);
    o.signal.removeEventListener("abort", onAbort);
  }
}

/** Prints the status when what it shows changed; says whether the rollout now rests. */
function show(f: Follow, obj: AIRollout): RestingPoint | undefined {
  if (obj.metadata.resourceVersion) f.resourceVersion = obj.metadata.resourceVersion;
  const text = renderStatus(obj);
  if (text !== f.shown) {
    f.write(f.shown === "" ? text : `\n--- ${new Date().toISOString()} ---\n${text}`);
    f.shown = text;
  }
  return restingPoint(obj);
}

function finish(f: Follow, rest: RestingPoint): number {
  f.write(`${f.namespace}/${f.name}: ${rest.reason} (exit ${rest.code})\n`);
  return rest.code;
}

/** Watches connection after connection until the rollout rests, it is deleted, or following stops. */
async function watchUntilRest(f: Follow): Promise<number> {
  for (;;) {
    const end = f.stop.signal.aborted ? ({ kind: "stopped" } as const) : await connection(f);
    switch (end.kind) {
      case "rest":
        return finish(f, end.rest);
      case "deleted":
        f.write(`${f.namespace}/${f.name}: deleted (exit ${FOLLOW_EXIT.error})\n`);
        return FOLLOW_EXIT.error;
      case "stopped":
        return stopped(f);
      case "gone": {
        // The version we watched from was compacted away: read the object afresh and go on from it.
        const fresh = await reread(f);
        if (typeof fresh === "number") return fresh;
        if (fresh) return finish(f, fresh);
        continue;
      }
      case "closed": {
        f.failures = end.healthy ? 0 : f.failures + 1;
        if (f.failures >= MAX_FAILED_CONNECTIONS) {
          f.write(`${f.namespace}/${f.name}: the watch failed ${f.failures} times in a row (${end.error ?? "closed at once"}); giving up (exit ${FOLLOW_EXIT.error})\n`);
          return FOLLOW_EXIT.error;
        }
        if (f.failures > 0) await sleep(Math.min(8000, (f.backoffMs ?? 500) * 2 ** (f.failures - 1)), f.stop.signal);
      }
    }
  }
}

function stopped(f: Follow): number {
  const code = f.timedOut ? FOLLOW_EXIT.timeout : FOLLOW_EXIT.interrupted;
  f.write(`${f.namespace}/${f.name}: ${f.timedOut ? "timed out" : "interrupted"} while ${f.shown ? "not yet at rest" : "reading"} (exit ${code})\n`);
  return code;
}

/** Reads the object again after 410 Gone: a failed read counts as a failed connection. */
async function reread(f: Follow): Promise<RestingPoint | undefined | number> {
  try {
    return show(f, await f.port.get(f.path));
  } catch (err) {
    f.failures++;
    if (f.failures >= MAX_FAILED_CONNECTIONS) {
      f.write(`${f.namespace}/${f.name}: ${(err as Error).message}; giving up (exit ${FOLLOW_EXIT.error})\n`);
      return FOLLOW_EXIT.error;
    }
    f.resourceVersion = "";
    return undefined;
  }
}

/** One watch connection from the last version seen, until it ends, brings a resting state, or following stops. */
function connection(f: Follow): Promise<ConnectionEnd> {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    let events = 0;
    let settled = false;
    let handle: { abort(): void } | undefined;
    const end = (e: ConnectionEnd) => {
      if (settled) return;
      settled = true;
      f.stop.signal.removeEventListener("abort", onStop);
      handle?.abort();
      resolve(e);
    };
    const onStop = () => end({ kind: "stopped" });
    f.stop.signal.addEventListener("abort", onStop, { once: true });
    const onEvent = (type: string, obj: unknown) => {
      if (settled) return;
      events++;
      const e = event(f, type, obj);
      if (e) end(e);
    };
    const onDone = (err: unknown) => {
      // A connection that brought events or lasted is a healthy one, however it ended: client-node
      // itself ends a watch quiet for 30 s (TimeoutError), routine for a rollout in a long step.
      const healthy = events > 0 || Date.now() - startedAt >= HEALTHY_CONNECTION_MS;
      if (isGone(err)) end({ kind: "gone" });
      else end({ kind: "closed", healthy, ...(err ? { error: (err as Error).message ?? String(err) } : {}) });
    };
    const query = { fieldSelector: `metadata.name=${f.name}`, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT_SECONDS, ...(f.resourceVersion ? { resourceVersion: f.resourceVersion } : {}) };
    f.port.watch(rolloutsPath(f.namespace), query, onEvent, onDone).then(
      (h) => {
        handle = h;
        if (settled) h.abort();
      },
      (err: unknown) => onDone(err),
    );
  });
}

/** One watch event: the end it brings, if any. */
function event(f: Follow, type: string, obj: unknown): ConnectionEnd | undefined {
  if (type === "ERROR") {
    const st = obj as { code?: number; message?: string } | undefined;
    return st?.code === 410 ? { kind: "gone" } : { kind: "closed", healthy: false, error: `watch error ${st?.code ?? ""} ${st?.message ?? ""}`.trim() };
  }
  const o = obj as AIRollout | undefined;
  if (type === "BOOKMARK") {
    if (o?.metadata?.resourceVersion) f.resourceVersion = o.metadata.resourceVersion;
    return undefined;
  }
  if (o?.metadata?.name !== f.name) return undefined;
  if (type === "DELETED") return { kind: "deleted" };
  const rest = show(f, o);
  return rest ? { kind: "rest", rest } : undefined;
}

function isGone(err: unknown): boolean {
  return (err as { statusCode?: number } | null | undefined)?.statusCode === 410;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
