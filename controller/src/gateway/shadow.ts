/**
 * Shadow work: one mirrored request sent to the candidate's shadow (and to the noise baseline's
 * second stable), both answers decoded and judged against the primary's under the rollout's
 * rules. It runs on worker threads (shadow-worker.ts) so that diffing, JSON decoding and the
 * shadow's own HTTP exchange never take CPU from the event loop that answers webhooks; with
 * `shadowWorkers: 0` the same code runs in-process (InlineShadowRunner).
 *
 * What crosses the thread boundary is plain data: the job (bodies as exact-size, transferred
 * byte arrays) and a compact result (distinct compared/mismatched paths, the first mismatches,
 * and the bodies' text only when the answers differed, for masked samples). Noise statistics,
 * metrics, circuit breakers and samples stay on the main thread.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { boundedJSON, compare, compileRules, UnparsedBody, type CompareRulesInput, type CompiledRules, type DiffResponse, type FieldRule } from "../diff/index.ts";
import { decodeBody, headerValue } from "./payload.ts";
import { forward, UpstreamError, type Agents, type Backend } from "./upstream.ts";

/** Longest body text returned for a sample (characters, before masking). */
export const MAX_SAMPLE_BODY = 4096;
/** Most mismatched fields returned per comparison (for samples). */
export const MAX_SAMPLE_MISMATCHES = 20;

export interface ShadowJob {
  /** Identity of the rules (their JSON): compiled once per runner and key. */
  rulesKey: string;
  method: string;
  path: string;
  /** Headers for the copies: the sender's plus the correlation id and the shadow mark. */
  headers: OutgoingHttpHeaders;
  body: Uint8Array;
  timeoutMs: number;
  maxResponseBytes: number;
  primary: { status: number; headers: IncomingHttpHeaders; body: Uint8Array };
  /** Where the shadow copy goes; undefined when it is not sent (no backend, open circuit). */
  shadow: Backend | undefined;
  /** The noise baseline's second stable; undefined without one. */
  noise: Backend | undefined;
  /**
   * Return each answered copy's exchange time, headers and body (Outcome.answer): the rollout
   * has a judge metric against the noise baseline, which samples the mirrored answers.
   */
  answers?: boolean;
}

/** A mirrored copy's answer as the statistical judge samples it (only when the job asks). */
export interface MirroredAnswer {
  /** From sending the copy to its whole answer read, as the gateway times a served request. */
  seconds: number;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
}

/** A mismatched field, as kept in samples. */
export interface Mismatch {
  path: string;
  concretePath: string;
  rule: FieldRule;
  reason: string;
}

/** The verdict on one pair of answers, compact enough to cross a thread boundary cheaply. */
export interface Judged {
  matched: boolean;
  /** Distinct normalised paths compared, in first-seen order. */
  compared: string[];
  /** Distinct normalised paths that mismatched, in first-seen order. */
  mismatched: string[];
  /** The first MAX_SAMPLE_MISMATCHES mismatched fields. */
  mismatches: Mismatch[];
}

/**
 * How one copy went. Only the backend's own behaviour is evidence about the backend, so a failed
 * copy says which side failed:
 * - `exchange`: the backend did not answer usably (timeout, refused or reset, answer too large);
 *   the circuit breaker counts it as a failure.
 * - `diff`: the backend answered `status`, but decoding, judging or sampling the answer failed
 *   here; the breaker sees only `status`, the drop is counted as `diff_error`.
 * - `runner`: the job never completed here (worker crash, rules that do not compile, the gateway
 *   stopping); nothing is known about the backend.
 */
export type Outcome =
  | { ok: true; status: number; judged: Judged; text: string | undefined; answer?: MirroredAnswer }
  | { ok: false; stage: "exchange"; reason: "timeout" | "too_large" | "error"; detail: string }
  | { ok: false; stage: "diff"; reason: "diff_error"; status: number; detail: string }
  | { ok: false; stage: "runner"; reason: "worker_error" | "rules_invalid"; detail: string };

/** What a copy's outcome tells the candidate's circuit breaker. */
export type BackendVerdict = "success" | "failure" | "unknown";

/**
 * The breaker's view of an outcome: an answer's status when the backend answered (whatever the
 * diff made of it), a failure when the exchange failed, nothing when the job itself failed here.
 */
export function backendVerdict(o: Outcome): BackendVerdict {
  if (o.ok || o.stage === "diff") return o.status >= 500 ? "failure" : "success";
  return o.stage === "exchange" ? "failure" : "unknown";
}

/** A ShadowResult for a job that failed on this side before any outcome was known. */
export function runnerFailed(reason: "worker_error" | "rules_invalid", detail: string): ShadowResult {
  return { shadow: { ok: false, stage: "runner", reason, detail }, noise: undefined, primaryText: undefined };
}

export interface ShadowResult {
  shadow: Outcome | undefined;
  noise: Outcome | undefined;
  /** The primary's body as sample text, when the shadow's answer mismatched. */
  primaryText: string | undefined;
}

/** Runs shadow jobs somewhere (worker threads or in-process). Never rejects. */
export interface ShadowRunner {
  run(job: ShadowJob, rules: CompareRulesInput): Promise<ShadowResult>;
  close(): Promise<void>;
}

/** Judges `other` against `primary`: pure. */
export function judge(primary: DiffResponse, other: DiffResponse, rules: CompiledRules): Judged {
  const c = compare(primary, other, rules);
  const compared: string[] = [];
  const seen = new Set<string>();
  const mismatches: Mismatch[] = [];
  for (const f of c.fields) {
    if (!seen.has(f.path)) {
      seen.add(f.path);
      compared.push(f.path);
    }
    if (!f.match && mismatches.length < MAX_SAMPLE_MISMATCHES) mismatches.push({ path: f.path, concretePath: f.concretePath, rule: f.rule, reason: f.reason });
  }
  return { matched: c.summary.matched, compared, mismatched: c.summary.mismatchedPaths, mismatches };
}

/** Containers nested deeper than this are summarised in sample text (`[…]`, `{…}`). */
export const MAX_SAMPLE_DEPTH = 64;

/**
 * A decoded body as sample text (JSON re-serialised, bounded in depth and length), truncated to
 * MAX_SAMPLE_BODY characters. Never throws: JSON.stringify would overflow the stack on a deeply
 * nested answer and serialise megabytes only to cut them.
 */
export function sampleText(body: unknown): string {
  if (body instanceof UnparsedBody) return truncated(body.text, `(not parsed: ${body.reason})`);
  if (typeof body === "string") return truncated(body, "");
  const { text, truncated: cut } = boundedJSON(body, { maxDepth: MAX_SAMPLE_DEPTH, maxChars: MAX_SAMPLE_BODY });
  return cut && text.length >= MAX_SAMPLE_BODY ? `${text}... (truncated)` : text;
}

function truncated(text: string, note: string): string {
  const suffix = note === "" ? "" : ` ${note}`;
  return text.length <= MAX_SAMPLE_BODY ? `${text}${suffix}` : `${text.slice(0, MAX_SAMPLE_BODY)}... (${text.length - MAX_SAMPLE_BODY} more characters)${suffix}`;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Compiled rules by key, bounded (rules change rarely; a flood of distinct keys cannot grow it). */
export class RulesCache {
  #cache = new Map<string, CompiledRules>();
  #max: number;

  constructor(max = 64) {
    this.#max = max;
  }

  get(key: string, rules: CompareRulesInput | undefined): CompiledRules | undefined {
    const hit = this.#cache.get(key);
    if (hit || rules === undefined) return hit;
    const compiled = compileRules(rules);
    if (this.#cache.size >= this.#max) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, compiled);
    return compiled;
  }
}

/**
 * Sends the copies, decodes the answers and judges them. Bounded by the job's timeout; rejects
 * never (a failed copy is an Outcome saying whether the exchange or the diff failed).
 */
export async function runShadowJob(job: ShadowJob, rules: CompiledRules, agents: Agents): Promise<ShadowResult> {
  let primary: DiffResponse;
  try {
    primary = { status: job.primary.status, headers: job.primary.headers, body: decodeBody(asBuffer(job.primary.body), headerValue(job.primary.headers, "content-type")) };
  } catch (err) {
    // Nothing to judge against; the copies are not sent, so no backend is blamed either.
    const detail = `decoding the primary's answer: ${String(err)}`;
    const unjudged = (backend: Backend | undefined): Outcome | undefined => (backend ? { ok: false, stage: "runner", reason: "worker_error", detail } : undefined);
    return { shadow: unjudged(job.shadow), noise: unjudged(job.noise), primaryText: undefined };
  }
  const body = asBuffer(job.body);
  const send = async (backend: Backend | undefined, withText: boolean): Promise<Outcome | undefined> => {
    if (!backend) return undefined;
    let res;
    const started = performance.now();
    try {
      res = await forward({ backend, method: job.method, path: job.path, headers: job.headers, body, timeoutMs: job.timeoutMs, maxResponseBytes: job.maxResponseBytes, agents });
    } catch (err) {
      const e = err instanceof UpstreamError ? err : new UpstreamError("connect", String(err));
      return { ok: false, stage: "exchange", reason: e.kind === "timeout" ? "timeout" : e.kind === "too_large" ? "too_large" : "error", detail: e.message };
    }
    // From here on the backend has answered: a failure is ours, not the backend's.
    try {
      const answer: DiffResponse = { status: res.status, headers: res.headers, body: decodeBody(res.body, headerValue(res.headers, "content-type")) };
      const judged = judge(primary, answer, rules);
      // An exact-size copy: a pooled Buffer's whole slab would cross the thread boundary otherwise.
      const raw = job.answers ? { answer: { seconds: (performance.now() - started) / 1000, headers: res.headers, body: new Uint8Array(res.body) } } : {};
      return { ok: true, status: res.status, judged, text: withText && !judged.matched ? sampleText(answer.body) : undefined, ...raw };
    } catch (err) {
      return { ok: false, stage: "diff", reason: "diff_error", status: res.status, detail: String(err) };
    }
  };
  const [shadow, noise] = await Promise.all([send(job.shadow, true), send(job.noise, false)]);
  let primaryText: string | undefined;
  try {
    primaryText = shadow?.ok && !shadow.judged.matched ? sampleText(primary.body) : undefined;
  } catch {
    // sampleText is bounded and should not throw; a sample without the primary's text still counts.
    primaryText = undefined;
  }
  return { shadow, noise, primaryText };
}

/** Runs shadow jobs on the calling thread (`shadowWorkers: 0`; tests of the pure parts). */
export class InlineShadowRunner implements ShadowRunner {
  #rules = new RulesCache();
  #agents: Agents;

  constructor(agents: Agents) {
    this.#agents = agents;
  }

  run(job: ShadowJob, rules: CompareRulesInput): Promise<ShadowResult> {
    let compiled: CompiledRules;
    try {
      compiled = this.#rules.get(job.rulesKey, rules)!;
    } catch (err) {
      return Promise.resolve(runnerFailed("rules_invalid", `spec.shadow.compare does not compile: ${(err as Error).message}`));
    }
    return runShadowJob(job, compiled, this.#agents);
  }

  async close(): Promise<void> {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }
}
