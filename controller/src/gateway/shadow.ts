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
import { compare, compileRules, type CompareRulesInput, type CompiledRules, type DiffResponse, type FieldRule } from "../diff/index.ts";
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

/** How one copy went. `status` is the backend's answer status when there was one. */
export type Outcome =
  | { ok: true; status: number; judged: Judged; text: string | undefined }
  | { ok: false; reason: "timeout" | "error"; detail: string };

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

/** A decoded body as sample text (JSON re-serialised), truncated. */
export function sampleText(body: unknown): string {
  const text = typeof body === "string" ? body : (JSON.stringify(body) ?? "");
  return text.length <= MAX_SAMPLE_BODY ? text : `${text.slice(0, MAX_SAMPLE_BODY)}... (${text.length - MAX_SAMPLE_BODY} more characters)`;
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
 * never (a failed copy is an Outcome).
 */
export async function runShadowJob(job: ShadowJob, rules: CompiledRules, agents: Agents): Promise<ShadowResult> {
  const primary: DiffResponse = { status: job.primary.status, headers: job.primary.headers, body: decodeBody(asBuffer(job.primary.body), headerValue(job.primary.headers, "content-type")) };
  const body = asBuffer(job.body);
  const send = async (backend: Backend | undefined, withText: boolean): Promise<Outcome | undefined> => {
    if (!backend) return undefined;
    try {
      const res = await forward({ backend, method: job.method, path: job.path, headers: job.headers, body, timeoutMs: job.timeoutMs, maxResponseBytes: job.maxResponseBytes, agents });
      const answer: DiffResponse = { status: res.status, headers: res.headers, body: decodeBody(res.body, headerValue(res.headers, "content-type")) };
      const judged = judge(primary, answer, rules);
      return { ok: true, status: res.status, judged, text: withText && !judged.matched ? sampleText(answer.body) : undefined };
    } catch (err) {
      const e = err instanceof UpstreamError ? err : new UpstreamError("connect", String(err));
      return { ok: false, reason: e.kind === "timeout" ? "timeout" : "error", detail: e.message };
    }
  };
  const [shadow, noise] = await Promise.all([send(job.shadow, true), send(job.noise, false)]);
  const primaryText = shadow?.ok && !shadow.judged.matched ? sampleText(primary.body) : undefined;
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
    return runShadowJob(job, this.#rules.get(job.rulesKey, rules)!, this.#agents);
  }

  async close(): Promise<void> {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }
}
