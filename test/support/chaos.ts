/**
 * Helpers of the chaos drills (test/integration/chaos*.test.ts): a seeded random source, so a
 * failing run's kill schedule can be replayed with its seed; a poller that keeps every distinct
 * status a rollout showed; and the checks that a history never applied a step twice.
 */
import { readFileSync } from "node:fs";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import type { KubeClient } from "../../controller/src/kube/client.ts";

export { seededRandom } from "./random.ts";

/** One distinct status a rollout showed. */
export interface Snapshot {
  /** When the test saw it (ms since the epoch). */
  at: number;
  phase: string | undefined;
  step: number | undefined;
  weight: number | undefined;
  stepStartedAt: string | undefined;
  attempt: number;
  generation: number | undefined;
  observedGeneration: number | undefined;
}

/** A running status poller: `seen` grows until stop() (bounded). */
export interface History {
  readonly seen: Snapshot[];
  /** The latest object read. */
  last: AIRollout | undefined;
  stop(): void;
}

const MAX_SNAPSHOTS = 2000;

/**
 * Polls a rollout every `everyMs` and keeps each status that differs from the one before. A
 * failed read (the API server restarting) is skipped: the next read tells.
 */
export function followStatus(client: () => KubeClient, namespace: string, name: string, everyMs = 100): History {
  const h: History & { on: boolean } = {
    seen: [],
    last: undefined,
    on: true,
    stop() {
      h.on = false;
    },
  };
  const key = (s: Snapshot) => JSON.stringify([s.phase, s.step, s.weight, s.stepStartedAt, s.attempt, s.observedGeneration]);
  void (async () => {
    while (h.on) {
      try {
        const o = await client().get<AIRollout>(`${rolloutsPath(namespace)}/${name}`);
        h.last = o;
        const s = o.status;
        const snap: Snapshot = { at: Date.now(), phase: s?.phase, step: s?.currentStep, weight: s?.canaryWeight, stepStartedAt: s?.stepStartedAt, attempt: s?.attempt ?? 0, generation: o.metadata.generation, observedGeneration: s?.observedGeneration };
        const prev = h.seen.at(-1);
        if (!prev || key(prev) !== key(snap)) h.seen.push(snap);
        if (h.seen.length > MAX_SNAPSHOTS) h.seen.shift();
      } catch {
        // not found yet, or the API server is away
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return h;
}

/**
 * What a history says went wrong, empty when nothing did: the step index went backwards, a step
 * started twice (two start times for one index), or a timed pause was cut short (a later step
 * started before `pauseMs` after the pause did).
 */
export function historyProblems(seen: readonly Snapshot[], timedPauses: ReadonlyMap<number, number>): string[] {
  const problems: string[] = [];
  const starts = new Map<number, Set<string>>();
  let maxStep = -1;
  for (const s of seen) {
    if (s.step === undefined) continue;
    if (s.step < maxStep) problems.push(`step went back from ${maxStep} to ${s.step} (${s.phase})`);
    maxStep = Math.max(maxStep, s.step);
    if (s.stepStartedAt !== undefined) {
      const set = starts.get(s.step) ?? new Set<string>();
      set.add(s.stepStartedAt);
      starts.set(s.step, set);
    }
  }
  for (const [step, set] of starts) if (set.size > 1) problems.push(`step ${step} started ${set.size} times: ${[...set].join(", ")}`);
  for (const [step, pauseMs] of timedPauses) {
    const began = [...(starts.get(step) ?? [])][0];
    if (!began) continue;
    for (const [later, set] of starts) {
      if (later <= step) continue;
      for (const t of set) if (Date.parse(t) - Date.parse(began) < pauseMs) problems.push(`step ${later} started ${Date.parse(t) - Date.parse(began)}ms after the ${pauseMs}ms pause of step ${step} began`);
    }
  }
  return problems;
}

/** A core/v1 Event, as far as the drills read it. */
export interface EventItem {
  type: string;
  reason: string;
  message: string;
  count?: number;
}

/** The Events recorded about one object. */
export async function eventsOf(client: KubeClient, namespace: string, name: string): Promise<EventItem[]> {
  const list = await client.get<{ items: EventItem[] }>(`/api/v1/namespaces/${namespace}/events`, { fieldSelector: `involvedObject.name=${name}` });
  return list.items;
}

/** Event (reason, message) pairs that occur more than once, or with a count above 1. */
export function duplicateEvents(events: readonly EventItem[]): string[] {
  const seen = new Map<string, number>();
  for (const e of events) {
    const k = `${e.reason}: ${e.message}`;
    seen.set(k, (seen.get(k) ?? 0) + (e.count ?? 1));
  }
  return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${n}x ${k}`);
}

/** Milliseconds as seconds with one decimal, for the printed measurements. */
export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** One answer of {@link offerLoad}. */
export interface Answered {
  /** HTTP status, 0 when no answer came (connection error, client timeout). */
  status: number;
  /** From sending to the whole answer read. */
  ms: number;
  retryAfter: string | null;
  /** The refusal's `error` field, when the answer was a JSON refusal. */
  reason: string | undefined;
  /** Which version answered (x-airollout-version). */
  version: string | null;
}

/** Options of {@link offerLoad}. */
export interface LoadOptions {
  url: string;
  ratePerSecond: number;
  durationMs: number;
  /** Client-side bound on open requests; arrivals beyond it are counted as `notSent`. Default 2,000. */
  maxInFlight?: number;
  /** Default 15 s. */
  timeoutMs?: number;
  body?: (i: number) => unknown;
  headers?: (i: number) => Record<string, string>;
}

/**
 * Open-loop load: requests arrive at a fixed rate whatever the answers take (unlike a closed
 * loop, an overloaded server cannot slow the offered load down). Loopback only, bounded in rate,
 * time and open requests.
 */
export async function offerLoad(o: LoadOptions): Promise<{ answers: Answered[]; notSent: number }> {
  const host = new URL(o.url).hostname;
  if (host !== "127.0.0.1" && host !== "localhost") throw new Error(`load goes to loopback only, not ${host}`);
  if (!(o.ratePerSecond > 0 && o.ratePerSecond <= 2000)) throw new Error(`ratePerSecond must be in (0, 2000], got ${o.ratePerSecond}`);
  if (!(o.durationMs > 0 && o.durationMs <= 5 * 60_000)) throw new Error(`durationMs must be in (0, 5 min], got ${o.durationMs}`);
  const maxInFlight = o.maxInFlight ?? 2000;
  const answers: Answered[] = [];
  const open = new Set<Promise<void>>();
  let notSent = 0;
  const send = async (i: number): Promise<void> => {
    const t0 = performance.now();
    try {
      const res = await fetch(o.url, {
        method: "POST",
        headers: { "content-type": "application/json", ...o.headers?.(i) },
        body: JSON.stringify(o.body ? o.body(i) : { id: i }),
        signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
      });
      const text = await res.text();
      let reason: string | undefined;
      if (res.status >= 400) {
        try {
          reason = (JSON.parse(text) as { error?: string }).error;
        } catch {
          reason = undefined;
        }
      }
      answers.push({ status: res.status, ms: performance.now() - t0, retryAfter: res.headers.get("retry-after"), reason, version: res.headers.get("x-airollout-version") });
    } catch {
      answers.push({ status: 0, ms: performance.now() - t0, retryAfter: null, reason: undefined, version: null });
    }
  };
  const started = performance.now();
  // Exactly rate x duration arrivals, even when this process lags (late ones are sent at once).
  const total = Math.round((o.durationMs / 1000) * o.ratePerSecond);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * o.ratePerSecond));
    for (; sent < due; sent++) {
      if (open.size >= maxInFlight) {
        notSent++;
        continue;
      }
      const p = send(sent).finally(() => open.delete(p));
      open.add(p);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all([...open]);
  return { answers, notSent };
}

/** The q-quantile (0..1) of a list of numbers; NaN for an empty list. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

/** Resident set size of a process in bytes, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = status.match(/^VmRSS:\s+(\d+) kB/m)?.[1];
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}
