/**
 * The shadow step's detection benchmark (part of `make bench`), printed as one JSON line: how fast
 * and how reliably each rule stops a regressing candidate, and how often it stops a candidate that
 * is not worse than the limit, on simulated traffic with a seeded random generator (the same
 * draws for every rule, so the comparison is exact and repeatable).
 *
 * Each trial: comparisons arrive at `rate` per second, each a mismatch with probability p; the
 * evidence is read every `interval` seconds, as the controller reads Prometheus. Rules:
 * - `end_of_step`: judge the rate once, when the duration ends (what airollout did before);
 * - `fixed_threshold`: roll back at the first read whose rate is above the limit, once minSamples
 *   were compared (what a user would write as an Argo/Flagger metric with failureLimit 0);
 * - `wilson_fail_fast`: airollout's rule (reconcile/shadow-evidence.ts judgeShadow).
 * Run: node_modules/.bin/node bench/detection.ts [trials]
 */
import { judgeShadow, type ShadowRule } from "../controller/src/reconcile/shadow-evidence.ts";

const trials = Number(process.argv[2] ?? "2000");
const RULE: ShadowRule = { minSamples: 100, baseline: false, maxMismatchRate: 0.1 };
const DURATION_S = 120;
const INTERVAL_S = 5;
const RATE_PER_S = 10;

/** mulberry32: small, seeded, good enough for Bernoulli draws. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Decision = { stopAt: number | undefined; passed: boolean };
type Rule = (compared: number, mismatched: number, durationOver: boolean) => "stop" | "pass" | "wait";

const RULES: Record<string, Rule> = {
  end_of_step: (n, m, over) => (!over || n < RULE.minSamples ? "wait" : m / n <= RULE.maxMismatchRate ? "pass" : "stop"),
  fixed_threshold: (n, m, over) => (n < RULE.minSamples ? "wait" : m / n > RULE.maxMismatchRate ? "stop" : over ? "pass" : "wait"),
  wilson_fail_fast: (n, m, over) => {
    const v = judgeShadow({ compared: n, noiseCompared: 0, mismatched: m, judged: n >= RULE.minSamples }, RULE, over);
    return v.kind === "fail" ? "stop" : v.kind === "pass" ? "pass" : "wait";
  },
};

/** One trial of one rule over the same draws: when it stopped, or whether it passed. */
function trial(rule: Rule, draws: readonly boolean[]): Decision {
  let mismatched = 0;
  let compared = 0;
  for (let t = INTERVAL_S; t <= DURATION_S; t += INTERVAL_S) {
    for (; compared < t * RATE_PER_S; compared++) if (draws[compared]) mismatched++;
    const d = rule(compared, mismatched, t >= DURATION_S);
    if (d === "stop") return { stopAt: t, passed: false };
    if (d === "pass") return { stopAt: undefined, passed: true };
  }
  return { stopAt: undefined, passed: false };
}

function summarize(p: number): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const decisions: Record<string, Decision[]> = Object.fromEntries(Object.keys(RULES).map((k) => [k, []]));
  for (let i = 0; i < trials; i++) {
    const next = rng(1_000_003 * (i + 1) + Math.round(p * 1e6));
    const draws = Array.from({ length: DURATION_S * RATE_PER_S }, () => next() < p);
    for (const [name, rule] of Object.entries(RULES)) decisions[name]!.push(trial(rule, draws));
  }
  for (const [name, ds] of Object.entries(decisions)) {
    const stops = ds.filter((d) => d.stopAt !== undefined).map((d) => d.stopAt!).sort((a, b) => a - b);
    out[name] = {
      stopped_share: Number((stops.length / ds.length).toFixed(4)),
      stopped_before_end_share: Number((stops.filter((s) => s < DURATION_S).length / ds.length).toFixed(4)),
      median_seconds_to_stop: stops.length ? stops[Math.floor(stops.length / 2)]! : -1,
      passed_share: Number((ds.filter((d) => d.passed).length / ds.length).toFixed(4)),
    };
  }
  return out;
}

const scenarios = {
  // A clear regression: 16% against a 10% limit (the demo's v3 was at 16%).
  regression_16pct: summarize(0.16),
  // A gross regression: 30%.
  regression_30pct: summarize(0.3),
  // At the limit and under it: any stop here is a false alarm or a coin flip.
  at_limit_10pct: summarize(0.1),
  healthy_8pct: summarize(0.08),
  healthy_5pct: summarize(0.05),
};
const setup = { trials, max_mismatch_rate: RULE.maxMismatchRate, min_samples: RULE.minSamples, duration_seconds: DURATION_S, read_interval_seconds: INTERVAL_S, comparisons_per_second: RATE_PER_S };
const r16 = scenarios.regression_16pct;
const h8 = scenarios.healthy_8pct;
const ratios = {
  // < 1: the fail-fast rule stops a clear regression sooner than judging at the end of the step.
  median_stop_ratio_wilson_to_end_of_step_16pct: Number((r16.wilson_fail_fast!.median_seconds_to_stop! / r16.end_of_step!.median_seconds_to_stop!).toFixed(3)),
  // The fixed threshold's false alarms on a healthy candidate, against ours (both under the limit).
  false_stop_8pct_fixed_threshold: h8.fixed_threshold!.stopped_share!,
  false_stop_8pct_wilson: h8.wilson_fail_fast!.stopped_share!,
};
process.stdout.write(`${JSON.stringify({ setup, scenarios, ratios })}\n`);
