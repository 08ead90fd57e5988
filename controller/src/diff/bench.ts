/**
 * Micro-benchmark of the diff engine on one core: comparisons per second of ~2 KB JSON responses
 * under a realistic rule set, against a baseline of JSON.stringify equality on the same pairs.
 * Prints one JSON line. Run: node_modules/.bin/node controller/src/diff/bench.ts [seconds]
 */
import { performance } from "node:perf_hooks";
import { compare, compileRules } from "./compare.ts";
import type { CompareRulesInput, DiffResponse } from "./compare.ts";

const seconds = Number(process.argv[2] ?? "2");

const intents = ["refund", "billing", "shipping", "cancel", "complaint"];
const entityTypes = ["PERSON", "ORG", "PRODUCT", "ORDER", "DATE"];

/**
 * A triage bot's answer, about 2 KB when serialised; `variant` shifts scores, wording and order
 * within the rules' bands, and `regressed` changes the intent and drops the confidence beyond them.
 */
function answer(n: number, variant: number, regressed = false): DiffResponse {
  const intent = intents[(n + (regressed ? 1 : 0)) % intents.length]!;
  const jitter = (1 + ((variant % 5) - 2) * 0.004) * (regressed ? 0.8 : 1);
  return {
    status: 200,
    headers: { "content-type": "application/json", "x-model": "small-v1", date: `Mon, 0${variant % 9} Jan 2024` },
    body: {
      id: `req-${n}-${variant}`,
      created: 1_718_000_000 + variant,
      model: "triage-small",
      intent,
      confidence: (0.5 + (n % 7) / 20) * jitter,
      priority: n % 3 === 0 ? "high" : "normal",
      language: "en",
      summary:
        variant % 3 === 0
          ? `The customer reports a problem with order ${1000 + n} and asks for a ${intent}; they mention the delivery was late and the packaging was damaged.`
          : `Customer reports a problem with order ${1000 + n} and asks for a ${intent}; they say delivery was late and the packaging was damaged.`,
      sentiment: { label: "negative", score: 0.82 * jitter, magnitude: 1.4 },
      entities: Array.from({ length: 14 }, (_, i) => ({
        type: entityTypes[i % entityTypes.length],
        text: `entity-${n}-${i}`,
        start: i * 12,
        end: i * 12 + 9,
        score: (0.6 + i / 40) * jitter,
      })),
      tags: variant % 2 === 0 ? ["support", "en", intent, "order", "late-delivery"] : ["late-delivery", "order", intent, "en", "support"],
      routing: { queue: `${intent}-queue`, team: "tier1", escalate: n % 11 === 0 },
      usage: { prompt_tokens: 412 + variant, completion_tokens: 96 + variant, total_tokens: 508 + 2 * variant },
      suggestions: [
        { action: "reply", template: "apology-late-delivery", score: 0.71 * jitter },
        { action: "refund", template: "partial-refund", score: 0.42 * jitter },
        { action: "escalate", template: "manager-callback", score: 0.18 * jitter },
      ],
      customer: { tier: "gold", region: "eu-west", accountAgeDays: 730 + (n % 50), openTickets: n % 4, lastContact: "2024-05-30" },
    },
  };
}

const rulesInput: CompareRulesInput = {
  status: true,
  headers: ["content-type", "x-model"],
  ignore: ["$.id", "$.created", "$.usage", "$.entities[*].start", "$.entities[*].end"],
  tolerances: [
    { path: "$.confidence", relative: 0.03 },
    { path: "$.sentiment.score", absolute: 0.05 },
    { path: "$.entities[*].score", absolute: 0.02, relative: 0.05 },
    { path: "$.suggestions[*].score", relative: 0.05 },
  ],
  labels: ["$.intent", "$.priority", "$.sentiment.label", "$.entities[*].type", "$.routing.queue"],
  text: [{ path: "$.summary", minSimilarity: 0.8, method: "jaccard" }],
  unorderedArrays: ["$.tags"],
  outputSchema: {
    type: "object",
    required: ["intent", "confidence", "summary", "entities"],
    properties: {
      intent: { enum: intents },
      confidence: { type: "number", minimum: 0, maximum: 1 },
      priority: { type: "string", enum: ["high", "normal", "low"] },
      summary: { type: "string", minLength: 1, maxLength: 2000 },
      sentiment: { type: "object", properties: { label: { type: "string" }, score: { type: "number" } } },
      entities: {
        type: "array",
        maxItems: 100,
        items: {
          type: "object",
          required: ["type", "text", "score"],
          properties: { type: { type: "string", pattern: "^[A-Z]+$" }, text: { type: "string" }, score: { type: "number", minimum: 0, maximum: 1 } },
        },
      },
      tags: { type: "array", items: { type: "string" } },
    },
  },
};
const rules = compileRules(rulesInput);

// Pre-built pairs so the loop measures comparison, not fixture construction. One pair in eight is
// a real regression, so building mismatch reasons is part of the cost.
const PAIRS = 64;
const pairs: [DiffResponse, DiffResponse][] = Array.from({ length: PAIRS }, (_, n) => [answer(n, 0), answer(n, 1 + (n % 7), n % 8 === 0)]);
const bodyBytes = Math.round(pairs.reduce((sum, [a]) => sum + JSON.stringify(a.body).length, 0) / PAIRS);

interface Tally {
  calls: number;
  wallMs: number;
  cpuUs: number;
}

let sink = 0;

/** Runs fn over the pairs for about `ms` milliseconds, adding to a tally. */
function round(ms: number, fn: (a: DiffResponse, b: DiffResponse) => unknown, tally: Tally): void {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const end = start + ms;
  let now = start;
  while (now < end) {
    for (let i = 0; i < PAIRS; i++) {
      const [a, b] = pairs[i]!;
      if (fn(a, b)) sink++;
    }
    tally.calls += PAIRS;
    now = performance.now();
  }
  const cpu = process.cpuUsage(cpuStart);
  tally.wallMs += now - start;
  tally.cpuUs += cpu.user + cpu.system;
}

const diff = (a: DiffResponse, b: DiffResponse) => compare(a, b, rules).summary.matched;
// The same rules without the output schema: JSON Schema validation of both bodies
// (@cfworker/json-schema) is the largest single cost, so it is measured apart.
const rulesWithoutSchema = compileRules({ ...rulesInput, outputSchema: undefined });
const diffWithoutSchema = (a: DiffResponse, b: DiffResponse) => compare(a, b, rulesWithoutSchema).summary.matched;
const baseline = (a: DiffResponse, b: DiffResponse) => JSON.stringify(a.body) === JSON.stringify(b.body);

// The machine may be busy: short alternating rounds expose both measurements to the same load,
// so the ratio stays meaningful even when the absolute numbers move. The wall-clock figure counts
// time spent waiting for a core; the CPU-time figure does not (but includes GC helper threads).
const warm: Tally = { calls: 0, wallMs: 0, cpuUs: 0 };
round(500, diff, warm);
round(500, baseline, warm);
round(500, diffWithoutSchema, warm);
const d: Tally = { calls: 0, wallMs: 0, cpuUs: 0 };
const n: Tally = { calls: 0, wallMs: 0, cpuUs: 0 };
const j: Tally = { calls: 0, wallMs: 0, cpuUs: 0 };
const ROUND_MS = 200;
for (let r = 0; r < Math.max(1, Math.round((seconds * 1000) / ROUND_MS)); r++) {
  round(ROUND_MS, diff, d);
  round(ROUND_MS, baseline, j);
  round(ROUND_MS, diffWithoutSchema, n);
}
// Keeps the results observable so the work cannot be optimised away.
if (sink < 0) console.log(sink);
const diffPerSec = { wall: d.calls / (d.wallMs / 1000), cpu: d.calls / (d.cpuUs / 1e6) };
const baselinePerSec = { wall: j.calls / (j.wallMs / 1000), cpu: j.calls / (j.cpuUs / 1e6) };
const sample = compare(pairs[1]![0], pairs[1]![1], rules);
const mismatchedPairs = pairs.filter(([a, b]) => !compare(a, b, rules).summary.matched).length;

console.log(
  JSON.stringify({
    diff_compare_per_sec: Math.round(diffPerSec.wall),
    baseline_json_stringify_equal_per_sec: Math.round(baselinePerSec.wall),
    ratio: Number((diffPerSec.wall / baselinePerSec.wall).toFixed(3)),
    diff_compare_per_cpu_sec: Math.round(diffPerSec.cpu),
    diff_compare_without_output_schema_per_sec: Math.round(n.calls / (n.wallMs / 1000)),
    diff_compare_without_output_schema_per_cpu_sec: Math.round(n.calls / (n.cpuUs / 1e6)),
    baseline_json_stringify_equal_per_cpu_sec: Math.round(baselinePerSec.cpu),
    target_per_sec: 20_000,
    meets_target: diffPerSec.wall >= 20_000,
    body_bytes: bodyBytes,
    fields_per_compare: sample.fields.length,
    mismatched_pair_share: mismatchedPairs / PAIRS,
    seconds_per_measurement: seconds,
    node: process.version,
  }),
);
