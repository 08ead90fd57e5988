/**
 * Noise statistics, after Diffy: candidate mismatches (primary vs candidate) are judged against
 * noise mismatches (primary vs a second stable replica) per normalised field path, so a field that
 * differs between two identical stable replicas (an LLM's free text, a timestamp) does not count
 * against the candidate unless it differs clearly more often.
 *
 * Definitions (all counts are per comparison, i.e. per mirrored request):
 * - A field's rate is the share of comparisons in which at least one instance of the field
 *   mismatched (`$.items[*].score` counts once however many items differ). The denominator is all
 *   comparisons of that kind, not the comparisons where the field was present: a field that only
 *   shows up when it differs (an extra key) would otherwise always have a rate of 100%.
 * - A field is flagged once the tracker is ready (minSamples candidate comparisons, and minSamples
 *   noise comparisons when a baseline is configured) and
 *     with a baseline:  cand > noise, (cand - noise) / noise > relativeThreshold (noise 0 counts as
 *                       an infinite relative difference), and cand - noise > absoluteThreshold;
 *     without one:      cand > 0.
 *   Until ready nothing is flagged and `ready` is false: callers must treat that as "not judged",
 *   never as a pass. A configured baseline that has not delivered enough samples keeps the tracker
 *   not ready rather than falling back to the no-baseline rule, which would flag every noisy field
 *   for as long as the secondary lags behind.
 * - `mismatched` counts candidate comparisons with at least one mismatch in a field that is
 *   flagged now. It is evaluated retroactively at summary time, over the whole window: a field
 *   that becomes flagged after 500 comparisons also counts its mismatches among the first 500, so
 *   the mismatch rate does not depend on when the flag flipped. To do that without keeping every
 *   comparison, the tracker counts comparisons per distinct set of mismatched fields (a signature);
 *   beyond maxSignatures distinct sets it falls back to per-field counts and reports an upper bound
 *   (`approximate: true`), erring towards failing a rollout rather than passing a bad one.
 *
 * Memory is bounded: at most maxPaths distinct paths are tracked; the rest are pooled under
 * OVERFLOW_PATH, which is judged like any field, so a candidate cannot hide regressions by
 * producing many distinct keys.
 */
import type { z } from "zod";
import type { ShadowSchema } from "../api/schema.ts";
import type { CompareResult, FieldResult } from "./compare.ts";

/** The pseudo-path that pools fields beyond maxPaths. */
export const OVERFLOW_PATH = "$(other)";

export interface NoiseTrackerOptions {
  /** Comparisons (of each kind) needed before any field is judged. Default 100. */
  minSamples?: number;
  /** Whether noise comparisons are expected; without them a field is flagged on any mismatch. */
  baseline?: boolean;
  /** Default 0.2 (Diffy's 20%). */
  relativeThreshold?: number;
  /** Default 0.0003 (Diffy's 0.03%). */
  absoluteThreshold?: number;
  /** Distinct paths tracked before pooling into OVERFLOW_PATH. Default 1000. */
  maxPaths?: number;
  /** Distinct mismatched-field sets counted exactly. Default 4096. */
  maxSignatures?: number;
}

/** Which comparison a result came from. */
export type ComparisonKind = "candidate" | "noise";

/** Counters of one normalised field path. */
export class FieldStats {
  readonly path: string;
  /** Candidate comparisons in which the field was compared. */
  candidateCompared = 0;
  /** Candidate comparisons in which the field mismatched. */
  candidateMismatched = 0;
  /** Noise comparisons in which the field was compared. */
  noiseCompared = 0;
  /** Noise comparisons in which the field mismatched. */
  noiseMismatched = 0;
  /** @internal the comparison sequence numbers that last touched each counter, to count once per comparison. */
  seenStamp = -1;
  /** @internal */
  missStamp = -1;
  /** @internal index into the tracker's id space, used in signatures. */
  readonly id: number;

  constructor(path: string, id: number) {
    this.path = path;
    this.id = id;
  }
}

/** One row of the summary's topFields. */
export interface FieldSummary {
  path: string;
  /** Candidate mismatch rate: share of candidate comparisons in which the field differed. */
  rate: number;
  /** Noise mismatch rate, when a baseline is configured. */
  noiseRate: number | undefined;
  flagged: boolean;
  candidateMismatched: number;
  noiseMismatched: number;
}

export interface NoiseSummary {
  /** Candidate comparisons recorded. */
  compared: number;
  /** Candidate comparisons with at least one mismatch in a currently flagged field (see module doc). */
  mismatched: number;
  /** mismatched / compared (0 when nothing was compared). */
  mismatchRate: number;
  /** Candidate comparisons with any mismatch at all, flagged or not. */
  rawMismatched: number;
  /** Noise comparisons recorded. */
  noiseCompared: number;
  /** Noise comparisons with any mismatch. */
  noiseMismatched: number;
  /** Whether enough samples were seen to judge; when false nothing is flagged. */
  ready: boolean;
  baseline: boolean;
  minSamples: number;
  /** True when `mismatched` is an upper bound (signature overflow). */
  approximate: boolean;
  /** Distinct paths tracked (excluding the overflow pool). */
  trackedPaths: number;
  /** Fields that mismatched at least once, by rate (then noise rate), highest first. */
  topFields: FieldSummary[];
}

interface Signature {
  ids: readonly number[];
  count: number;
}

/** Per-rollout field statistics of candidate and noise comparisons (see the module doc for the rules). */
export class NoiseTracker {
  readonly minSamples: number;
  readonly baseline: boolean;
  readonly relativeThreshold: number;
  readonly absoluteThreshold: number;
  readonly maxPaths: number;
  readonly maxSignatures: number;

  #fields = new Map<string, FieldStats>();
  #byId: FieldStats[] = [];
  #overflow: FieldStats;
  #seq = 0;
  #candidateTotal = 0;
  #candidateRawMismatched = 0;
  #noiseTotal = 0;
  #noiseRawMismatched = 0;
  #signatures = new Map<string, Signature>();
  #overflowComparisons = 0;
  #overflowById = new Map<number, number>();

  constructor(options: NoiseTrackerOptions = {}) {
    this.minSamples = options.minSamples ?? 100;
    this.baseline = options.baseline ?? false;
    this.relativeThreshold = options.relativeThreshold ?? 0.2;
    this.absoluteThreshold = options.absoluteThreshold ?? 0.0003;
    this.maxPaths = options.maxPaths ?? 1000;
    this.maxSignatures = options.maxSignatures ?? 4096;
    this.#overflow = this.#newStats(OVERFLOW_PATH);
  }

  /** Builds a tracker from a rollout's shadow spec (zod output, defaults applied). */
  static fromShadow(shadow: z.output<typeof ShadowSchema>): NoiseTracker {
    const nb = shadow.noiseBaseline;
    return new NoiseTracker({
      minSamples: shadow.minSamples,
      baseline: nb?.enabled ?? false,
      relativeThreshold: nb?.relativeThreshold,
      absoluteThreshold: nb?.absoluteThreshold,
    });
  }

  #newStats(path: string): FieldStats {
    const s = new FieldStats(path, this.#byId.length);
    this.#byId.push(s);
    return s;
  }

  #stats(path: string): FieldStats {
    const s = this.#fields.get(path);
    if (s) return s;
    if (this.#fields.size >= this.maxPaths) return this.#overflow;
    const created = this.#newStats(path);
    this.#fields.set(path, created);
    return created;
  }

  /** Records a primary-vs-candidate comparison. */
  recordCandidate(result: CompareResult | readonly FieldResult[]): void {
    this.record("candidate", result);
  }

  /** Records a primary-vs-secondary (stable vs stable) comparison. */
  recordNoise(result: CompareResult | readonly FieldResult[]): void {
    this.record("noise", result);
  }

  /** Records one comparison of the given kind. */
  record(kind: ComparisonKind, result: CompareResult | readonly FieldResult[]): void {
    const fields = "fields" in result ? result.fields : result;
    const seq = ++this.#seq;
    const candidate = kind === "candidate";
    let mismatchedIds: number[] | undefined;
    for (const f of fields) mismatchedIds = this.#count(seq, candidate, f.path, !f.match, mismatchedIds);
    this.#finish(candidate, mismatchedIds);
  }

  /**
   * Records one comparison given as its distinct normalised paths: every path compared, and the
   * ones that mismatched (the compact form shadow workers send). Same counting as record().
   */
  recordPaths(kind: ComparisonKind, compared: readonly string[], mismatched: readonly string[]): void {
    const seq = ++this.#seq;
    const candidate = kind === "candidate";
    let mismatchedIds: number[] | undefined;
    for (const p of compared) mismatchedIds = this.#count(seq, candidate, p, false, mismatchedIds);
    for (const p of mismatched) mismatchedIds = this.#count(seq, candidate, p, true, mismatchedIds);
    this.#finish(candidate, mismatchedIds);
  }

  #count(seq: number, candidate: boolean, path: string, mismatch: boolean, mismatchedIds: number[] | undefined): number[] | undefined {
    const s = this.#stats(path);
    if (s.seenStamp !== seq) {
      s.seenStamp = seq;
      if (candidate) s.candidateCompared++;
      else s.noiseCompared++;
    }
    if (mismatch && s.missStamp !== seq) {
      s.missStamp = seq;
      if (candidate) s.candidateMismatched++;
      else s.noiseMismatched++;
      (mismatchedIds ??= []).push(s.id);
    }
    return mismatchedIds;
  }

  #finish(candidate: boolean, mismatchedIds: number[] | undefined): void {
    if (!candidate) {
      this.#noiseTotal++;
      if (mismatchedIds) this.#noiseRawMismatched++;
      return;
    }
    this.#candidateTotal++;
    if (!mismatchedIds) return;
    this.#candidateRawMismatched++;
    mismatchedIds.sort((x, y) => x - y);
    const key = mismatchedIds.join(",");
    const sig = this.#signatures.get(key);
    if (sig) {
      sig.count++;
    } else if (this.#signatures.size < this.maxSignatures) {
      this.#signatures.set(key, { ids: mismatchedIds, count: 1 });
    } else {
      this.#overflowComparisons++;
      for (const id of mismatchedIds) this.#overflowById.set(id, (this.#overflowById.get(id) ?? 0) + 1);
    }
  }

  /** Whether enough comparisons were recorded to judge fields. */
  get ready(): boolean {
    return this.#candidateTotal >= this.minSamples && (!this.baseline || this.#noiseTotal >= this.minSamples);
  }

  #rate(s: FieldStats): number {
    return this.#candidateTotal === 0 ? 0 : s.candidateMismatched / this.#candidateTotal;
  }

  #noiseRate(s: FieldStats): number {
    return this.#noiseTotal === 0 ? 0 : s.noiseMismatched / this.#noiseTotal;
  }

  #flagged(s: FieldStats): boolean {
    if (!this.ready || s.candidateMismatched === 0) return false;
    const cand = this.#rate(s);
    if (!this.baseline) return cand > 0;
    const noise = this.#noiseRate(s);
    if (!(cand > noise)) return false;
    const relative = noise === 0 ? Infinity : (cand - noise) / noise;
    return relative > this.relativeThreshold && cand - noise > this.absoluteThreshold;
  }

  /** The counters of one normalised path (OVERFLOW_PATH for the pool), if it was seen. */
  field(path: string): FieldStats | undefined {
    return path === OVERFLOW_PATH ? this.#overflow : this.#fields.get(path);
  }

  /** Whether a normalised path is flagged now. */
  isFlagged(path: string): boolean {
    const s = this.field(path);
    return s !== undefined && this.#flagged(s);
  }

  /** The summary for status.shadow and metrics; topFields holds at most `limit` rows. */
  summary(limit = 10): NoiseSummary {
    const flagged = new Set<number>();
    for (const s of this.#byId) if (this.#flagged(s)) flagged.add(s.id);

    let mismatched = 0;
    if (flagged.size > 0) {
      for (const sig of this.#signatures.values()) {
        if (sig.ids.some((id) => flagged.has(id))) mismatched += sig.count;
      }
      let bound = 0;
      for (const id of flagged) bound += this.#overflowById.get(id) ?? 0;
      mismatched += Math.min(bound, this.#overflowComparisons);
    }

    // summary(0) is what /metrics reads at every scrape: no rows to build or sort then.
    const rows: FieldSummary[] = [];
    for (const s of limit > 0 ? this.#byId : []) {
      if (s.candidateMismatched === 0 && s.noiseMismatched === 0) continue;
      rows.push({
        path: s.path,
        rate: this.#rate(s),
        noiseRate: this.baseline ? this.#noiseRate(s) : undefined,
        flagged: flagged.has(s.id),
        candidateMismatched: s.candidateMismatched,
        noiseMismatched: s.noiseMismatched,
      });
    }
    rows.sort((x, y) => y.rate - x.rate || (y.noiseRate ?? 0) - (x.noiseRate ?? 0) || (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));

    return {
      compared: this.#candidateTotal,
      mismatched,
      mismatchRate: this.#candidateTotal === 0 ? 0 : mismatched / this.#candidateTotal,
      rawMismatched: this.#candidateRawMismatched,
      noiseCompared: this.#noiseTotal,
      noiseMismatched: this.#noiseRawMismatched,
      ready: this.ready,
      baseline: this.baseline,
      minSamples: this.minSamples,
      approximate: this.#overflowComparisons > 0,
      trackedPaths: this.#fields.size,
      topFields: rows.slice(0, Math.max(0, limit)),
    };
  }

  /** Forgets everything, for a new rollout revision. */
  reset(): void {
    this.#fields.clear();
    this.#byId = [];
    this.#overflow = this.#newStats(OVERFLOW_PATH);
    this.#seq = 0;
    this.#candidateTotal = 0;
    this.#candidateRawMismatched = 0;
    this.#noiseTotal = 0;
    this.#noiseRawMismatched = 0;
    this.#signatures.clear();
    this.#overflowComparisons = 0;
    this.#overflowById.clear();
  }
}
