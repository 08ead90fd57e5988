/**
 * The detection benchmark (part of `make bench`): how fast and how reliably airollout's decision
 * rules catch known regressions, and how often they stop a candidate that differs from the stable
 * only by the stable's own noise, beside fixed-window threshold rules (what an Argo Rollouts or
 * Flagger metric does) over the same simulated traffic in the same run. Seeded: every rule sees
 * the same draws, and the figures repeat exactly.
 *
 * Simulated services, one mirrored request at a time (RATE_PER_S per second, read every READ
 * requests, as the controller reads Prometheus every analysis interval):
 * - the stable answers an intent label, a confidence score, a latency and a token count; a second
 *   stable replica (the noise baseline) disagrees with it on the label for NOISE of requests;
 * - a candidate with a label regression x answers a wrong label on x of requests, and otherwise
 *   disagrees with the stable exactly as often as the stable disagrees with itself;
 * - a candidate with a distribution regression scales its confidence, latency or tokens;
 * - a null candidate is a copy of the stable: only the stable's own noise.
 *
 * Rules (the real code, not re-implementations):
 * - label rows, airollout: every comparison goes through the gateway's NoiseTracker
 *   (diff/noise.ts, with a noise baseline), whose summary is the evidence judged by the shadow
 *   step's rule (reconcile/shadow-evidence.ts judgeShadow: the sequential test, then the end of
 *   the step);
 * - distribution rows, airollout: the statistical judge (analysis/judge.ts judgeSamples: the
 *   Mann-Whitney U test and Cliff's delta on the gateway's JUDGE_BUCKETS histogram), read at every
 *   read over everything since the step began, its alpha spent evenly over the step's reads;
 *   High/Low stops, a conclusive Pass (its confidence bound inside the effect size) passes early;
 * - fixed_window: the raw mismatch rate (label) or the candidate's mean against the stable's
 *   (distributions) over the first WINDOW requests, against a threshold, judged once;
 * - per_read_window: the same threshold on each read's own window (a PromQL rate over the
 *   analysis interval, failureLimit 0), until the end of the step.
 * Run: node_modules/.bin/node bench/detection.ts [trials]
 */
import { JUDGE_BUCKETS, judgeSamples, type Direction, type JudgeSettings } from "../controller/src/analysis/judge.ts";
import { NoiseTracker } from "../controller/src/diff/noise.ts";
import { judgeShadow, SEQUENTIAL_ALPHA, type ShadowRule } from "../controller/src/reconcile/shadow-evidence.ts";
import { seededRandom } from "../test/support/random.ts";

const TRIALS = Math.max(200, Number(process.argv[2] ?? "1000"));
const SEED = 20261129;
const RATE_PER_S = 10;
const READ = 50;
const HORIZON = 3000;
const WINDOW = 1000;
const NOISE = 0.01;
const RULE: ShadowRule = { minSamples: 100, baseline: true, maxMismatchRate: 0.02 };
const LOOKS = HORIZON / READ;
const JUDGE: Omit<JudgeSettings, "direction"> = { effectSize: 0.1, alpha: SEQUENTIAL_ALPHA / LOOKS, minSamples: 50 };
const BAND = 0.05;
const TARGET = { label_regression: 0.05, within_requests: 1000, detection_rate: 0.95, max_false_alarm_rate: 0.01 };


/** A standard normal draw (Box-Muller). */
const normal = (next: () => number): number => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());

/** A rule's decision in one trial: what it decided and after how many mirrored requests. */
interface Decision {
  kind: "stop" | "pass" | "none";
  requests: number;
}

/** The decisions of every rule in one trial, filled in as they are made. */
type Decisions = Record<string, Decision | undefined>;
const RULES = ["airollout", "fixed_window", "per_read_window"] as const;

const decide = (d: Decisions, rule: string, kind: Decision["kind"], requests: number): void => {
  d[rule] ??= { kind, requests };
};
const allDecided = (d: Decisions): boolean => RULES.every((r) => d[r] !== undefined);

/** One label trial: the candidate is wrong on `wrong` of requests on top of the stable's noise. */
function labelTrial(wrong: number, next: () => number): Decisions {
  const tracker = new NoiseTracker({ minSamples: RULE.minSamples, baseline: true });
  const d: Decisions = {};
  let raw = 0;
  let rawAtLastRead = 0;
  const LABEL = ["$.intent"];
  for (let n = 1; n <= HORIZON && !allDecided(d); n++) {
    tracker.recordPaths("noise", LABEL, next() < NOISE ? LABEL : []);
    const mismatch = next() < wrong || next() < NOISE;
    if (mismatch) raw++;
    tracker.recordPaths("candidate", LABEL, mismatch ? LABEL : []);
    if (n === WINDOW) decide(d, "fixed_window", raw / n > RULE.maxMismatchRate ? "stop" : "pass", n);
    if (n % READ !== 0) continue;
    const s = tracker.summary();
    const v = judgeShadow({ compared: s.compared, noiseCompared: s.noiseCompared, mismatched: s.mismatched, judged: s.ready }, RULE, n >= HORIZON);
    if (v.kind !== "wait") decide(d, "airollout", v.kind === "fail" ? "stop" : "pass", n);
    if (n >= RULE.minSamples && (raw - rawAtLastRead) / READ > RULE.maxMismatchRate) decide(d, "per_read_window", "stop", n);
    else if (n >= HORIZON) decide(d, "per_read_window", "pass", n);
    rawAtLastRead = raw;
  }
  for (const r of RULES) decide(d, r, "none", HORIZON);
  return d;
}

/** A numeric signal of the stable's answers and the candidate's change to it. */
interface Signal {
  name: string;
  direction: Direction;
  draw: (next: () => number) => number;
}

const SIGNALS: Record<string, Signal> = {
  // A classifier's confidence near 0.85, spread 0.08, clipped to [0, 1].
  confidence: { name: "$.confidence", direction: "decrease", draw: (next) => Math.min(1, Math.max(0, 0.85 + 0.08 * normal(next))) },
  // Latency: log-normal, median 400 ms.
  latency: { name: "latency_seconds", direction: "increase", draw: (next) => 0.4 * Math.exp(0.4 * normal(next)) },
  // Tokens: log-normal, median 250.
  tokens: { name: "tokens", direction: "increase", draw: (next) => Math.round(250 * Math.exp(0.25 * normal(next))) },
};

/** The index of the JUDGE_BUCKETS bucket a value falls in (the gateway's histogram). */
function bucketOf(v: number): number {
  let lo = 0;
  let hi = JUDGE_BUCKETS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (v <= JUDGE_BUCKETS[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** One distribution trial: the candidate's values are the stable's distribution times `factor`. */
function distributionTrial(signal: Signal, factor: number, next: () => number): Decisions {
  const stable = new Array<number>(JUDGE_BUCKETS.length + 1).fill(0);
  const candidate = new Array<number>(JUDGE_BUCKETS.length + 1).fill(0);
  const settings: JudgeSettings = { ...JUDGE, direction: signal.direction };
  const d: Decisions = {};
  let sumS = 0;
  let sumC = 0;
  let readS = 0;
  let readC = 0;
  const outside = (c: number, s: number): boolean => (signal.direction === "increase" ? c > s * (1 + BAND) : c < s * (1 - BAND));
  for (let n = 1; n <= HORIZON && !allDecided(d); n++) {
    const s = signal.draw(next);
    const c = signal.draw(next) * factor;
    stable[bucketOf(s)]!++;
    candidate[bucketOf(c)]!++;
    sumS += s;
    sumC += c;
    readS += s;
    readC += c;
    if (n === WINDOW) decide(d, "fixed_window", outside(sumC, sumS) ? "stop" : "pass", n);
    if (n % READ !== 0) continue;
    const j = judgeSamples({ counts: candidate }, { counts: stable }, settings);
    if (j.classification === "High" || j.classification === "Low") decide(d, "airollout", "stop", n);
    else if (j.conclusive || (n >= HORIZON && j.classification === "Pass")) decide(d, "airollout", "pass", n);
    if (outside(readC, readS)) decide(d, "per_read_window", "stop", n);
    else if (n >= HORIZON) decide(d, "per_read_window", "pass", n);
    readS = 0;
    readC = 0;
  }
  for (const r of RULES) decide(d, r, "none", HORIZON);
  return d;
}

interface Scenario {
  name: string;
  /** Whether the candidate is worse (a stop is a detection) or a null (a stop is a false alarm). */
  regression: boolean;
  trial: (next: () => number) => Decisions;
}

const SCENARIOS: Scenario[] = [
  { name: "null_label", regression: false, trial: (next) => labelTrial(0, next) },
  { name: "label_wrong_2pct", regression: true, trial: (next) => labelTrial(0.02, next) },
  { name: "label_wrong_5pct", regression: true, trial: (next) => labelTrial(0.05, next) },
  { name: "label_wrong_10pct", regression: true, trial: (next) => labelTrial(0.1, next) },
  { name: "null_confidence", regression: false, trial: (next) => distributionTrial(SIGNALS.confidence!, 1, next) },
  { name: "confidence_minus_3pct", regression: true, trial: (next) => distributionTrial(SIGNALS.confidence!, 0.97, next) },
  { name: "confidence_minus_10pct", regression: true, trial: (next) => distributionTrial(SIGNALS.confidence!, 0.9, next) },
  { name: "null_latency", regression: false, trial: (next) => distributionTrial(SIGNALS.latency!, 1, next) },
  { name: "latency_plus_20pct", regression: true, trial: (next) => distributionTrial(SIGNALS.latency!, 1.2, next) },
  { name: "null_tokens", regression: false, trial: (next) => distributionTrial(SIGNALS.tokens!, 1, next) },
  { name: "tokens_plus_15pct", regression: true, trial: (next) => distributionTrial(SIGNALS.tokens!, 1.15, next) },
];

const median = (xs: readonly number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const share = (k: number): number => Number((k / TRIALS).toFixed(4));

/** One table row: a rule on a scenario over every trial. */
interface Row {
  scenario: string;
  rule: string;
  trials: number;
  /** Regressions: share stopped (detected). Nulls: undefined. */
  detection_rate?: number;
  /** Regressions: share stopped within WINDOW mirrored requests. */
  detected_within_1000?: number;
  /** Nulls: share stopped (a false alarm). Regressions: undefined. */
  false_alarm_rate?: number;
  passed_share: number;
  undecided_share: number;
  median_requests_to_decision: number | null;
  median_seconds_to_decision: number | null;
}

function run(sc: Scenario, index: number): Row[] {
  const all: Decisions[] = [];
  for (let i = 0; i < TRIALS; i++) all.push(sc.trial(seededRandom(SEED + 7919 * index + 104_729 * i)));
  return RULES.map((rule) => {
    const ds = all.map((d) => d[rule]!);
    const stops = ds.filter((d) => d.kind === "stop");
    const decided = ds.filter((d) => d.kind !== "none").map((d) => d.requests);
    const med = median(decided);
    return {
      scenario: sc.name,
      rule,
      trials: TRIALS,
      ...(sc.regression ? { detection_rate: share(stops.length), detected_within_1000: share(stops.filter((d) => d.requests <= WINDOW).length) } : { false_alarm_rate: share(stops.length) }),
      passed_share: share(ds.filter((d) => d.kind === "pass").length),
      undecided_share: share(ds.filter((d) => d.kind === "none").length),
      median_requests_to_decision: med,
      median_seconds_to_decision: med === null ? null : med / RATE_PER_S,
    };
  });
}

const rows = SCENARIOS.flatMap(run);
const row = (scenario: string, rule: string): Row => rows.find((r) => r.scenario === scenario && r.rule === rule)!;
const nullRows = (rule: string): Row[] => rows.filter((r) => r.rule === rule && r.false_alarm_rate !== undefined);
const label5 = row("label_wrong_5pct", "airollout");
const worstFalseAlarm = Math.max(...nullRows("airollout").map((r) => r.false_alarm_rate!));
const targets = {
  label_5pct_detected_within_1000: label5.detected_within_1000!,
  label_5pct_target: TARGET.detection_rate,
  worst_null_false_alarm_rate: worstFalseAlarm,
  false_alarm_target_below: TARGET.max_false_alarm_rate,
};
const meets_targets = label5.detected_within_1000! >= TARGET.detection_rate && worstFalseAlarm < TARGET.max_false_alarm_rate;
const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : Number((a / b).toFixed(3)));
const ratios = Object.fromEntries(
  SCENARIOS.filter((s) => s.regression).map((s) => [
    `${s.name}_median_requests_airollout_to_fixed_window`,
    ratio(row(s.name, "airollout").median_requests_to_decision, row(s.name, "fixed_window").median_requests_to_decision),
  ]),
);
const baseline = {
  fixed_window: `label: raw mismatch rate over the first ${WINDOW} mirrored requests > maxMismatchRate ${RULE.maxMismatchRate}; distributions: candidate mean over the same ${WINDOW} requests outside a ${BAND * 100}% band of the stable's mean, judged once`,
  per_read_window: `the same thresholds on each read's own ${READ} requests (a rate over the analysis interval, failureLimit 0), until the end of the step`,
  worst_null_false_alarm_rate: { fixed_window: Math.max(...nullRows("fixed_window").map((r) => r.false_alarm_rate!)), per_read_window: Math.max(...nullRows("per_read_window").map((r) => r.false_alarm_rate!)) },
};
const setup = {
  trials: TRIALS,
  seed: SEED,
  mirrored_requests_per_second: RATE_PER_S,
  read_every_requests: READ,
  step_horizon_requests: HORIZON,
  stable_label_noise: NOISE,
  shadow_rule: RULE,
  sequential_alpha_whole_step: SEQUENTIAL_ALPHA,
  judge: { ...JUDGE, note: `alpha ${SEQUENTIAL_ALPHA} spent evenly over the step's ${LOOKS} reads` },
};
process.stdout.write(`${JSON.stringify({ setup, rows, baseline, ratios, targets, meets_targets })}\n`);

// The human table (stderr, so `make bench` keeps one JSON object on stdout).
const cell = (x: number | null | undefined): string => (x === undefined || x === null ? "-" : String(x));
const lines = [
  `detection benchmark: ${TRIALS} trials per scenario, seed ${SEED}; ${RATE_PER_S} mirrored req/s, a read every ${READ} requests, step horizon ${HORIZON} requests`,
  "scenario                 rule             detect  <=1000  false-alarm  passed  undecided  median req  median s",
  ...rows.map((r) =>
    [r.scenario.padEnd(24), r.rule.padEnd(16), cell(r.detection_rate).padStart(6), cell(r.detected_within_1000).padStart(7), cell(r.false_alarm_rate).padStart(12), cell(r.passed_share).padStart(7), cell(r.undecided_share).padStart(10), cell(r.median_requests_to_decision).padStart(11), cell(r.median_seconds_to_decision).padStart(9)].join(" "),
  ),
  `targets: 5% label regression detected within ${WINDOW} requests in ${label5.detected_within_1000} of trials (target >= ${TARGET.detection_rate}); worst null false-alarm rate ${worstFalseAlarm} (target < ${TARGET.max_false_alarm_rate}): ${meets_targets ? "met" : "NOT met"}`,
];
process.stderr.write(`${lines.join("\n")}\n`);
