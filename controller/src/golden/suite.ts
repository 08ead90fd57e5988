/**
 * Golden suites (pure): a versioned list of inputs with expected structured outputs, parsed with
 * bounds, and the check of one answer against its case's expectations. The checks are the diff
 * engine's own rules (diff/compare.ts): exact equality, label equality, numeric tolerance bands,
 * text similarity, and a JSON Schema for the whole body; a suite names them per field.
 *
 *   version: "2026-11-29"
 *   cases:
 *     - name: refund-intent
 *       request: { headers: { x-tenant-id: acme }, body: { text: "I want my money back" } }
 *       expect:
 *         status: 200                      # default: any 2xx
 *         schema: { type: object, required: [intent] }
 *         fields:
 *           $.intent: { label: refund }
 *           $.confidence: { tolerance: { value: 0.92, relative: 0.03 } }
 *           $.summary: { similarity: { text: "customer asks for a refund", min: 0.5 } }
 *           $.lang: { equals: en }
 */
import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { FIELD_PATH_PATTERN } from "../api/schema.ts";
import { compare, type CompareRulesInput, type DiffResponse } from "../diff/compare.ts";
import { compileJsonSchema } from "../diff/json-schema.ts";
import { parseFieldPath, type PathSegment } from "../diff/path.ts";
import { maskPII } from "../diff/pii.ts";

/** Bounds on a suite: a ConfigMap key holds at most 1 MiB, and a run must stay bounded. */
export const SUITE_LIMITS = Object.freeze({ maxBytes: 1024 * 1024, maxCases: 1000, maxFields: 64, maxHeaders: 32 });

/** Failed cases kept in status.golden and printed by the CLI. */
export const MAX_FAILURES_SHOWN = 10;

const fieldRule = z
  .object({
    equals: z.unknown().optional().describe("Exact JSON equality."),
    label: z.union([z.string(), z.number(), z.boolean()]).optional().describe("Label equality (an intent, a category)."),
    tolerance: z
      .object({ value: z.number().finite(), absolute: z.number().min(0).optional(), relative: z.number().min(0).optional() })
      .strict()
      .refine((t) => t.absolute !== undefined || t.relative !== undefined, { message: "set absolute, relative or both" })
      .optional(),
    similarity: z
      .object({ text: z.string().max(100_000), min: z.number().min(0).max(1), method: z.enum(["jaccard", "levenshtein"]).default("jaccard") })
      .strict()
      .optional(),
  })
  .strict()
  .refine((r) => ["equals", "label", "tolerance", "similarity"].filter((k) => k in r).length === 1, { message: "set exactly one of equals, label, tolerance, similarity" });

const caseSchema = z
  .object({
    name: z.string().min(1).max(253),
    request: z
      .object({
        headers: z
          .record(z.string().max(128), z.string().max(8192))
          .refine((h) => Object.keys(h).length <= SUITE_LIMITS.maxHeaders, { message: `at most ${SUITE_LIMITS.maxHeaders} headers` })
          .optional(),
        body: z.unknown(),
      })
      .strict(),
    expect: z
      .object({
        status: z.number().int().min(100).max(599).optional(),
        schema: z.record(z.string(), z.unknown()).optional(),
        fields: z
          .record(z.string().regex(new RegExp(FIELD_PATH_PATTERN), { message: "must be a field path like $.a.b or $.items[0]" }), fieldRule)
          .refine((f) => Object.keys(f).length <= SUITE_LIMITS.maxFields, { message: `at most ${SUITE_LIMITS.maxFields} fields` })
          .optional(),
      })
      .strict()
      .refine((e) => e.schema !== undefined || Object.keys(e.fields ?? {}).length > 0, { message: "expect nothing: set schema or fields" }),
  })
  .strict();

const suiteSchema = z
  .object({
    version: z.union([z.string().min(1).max(253), z.number()]).transform(String),
    cases: z.array(caseSchema).min(1, { message: "a suite with no case is no evidence" }).max(SUITE_LIMITS.maxCases),
  })
  .strict();

export type GoldenSuite = z.output<typeof suiteSchema>;
export type GoldenCase = GoldenSuite["cases"][number];
export type FieldExpectation = z.output<typeof fieldRule>;

/** Parses a suite's text (JSON or YAML); errors name the field, e.g. `cases[2].expect.fields: ...`. */
export function parseSuite(text: string): { ok: true; suite: GoldenSuite } | { ok: false; message: string } {
  if (Buffer.byteLength(text, "utf8") > SUITE_LIMITS.maxBytes) return { ok: false, message: `suite larger than ${SUITE_LIMITS.maxBytes} bytes` };
  let raw: unknown;
  try {
    // YAML is a superset of JSON; maxAliasCount bounds alias expansion ("billion laughs").
    raw = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, message: `suite is neither JSON nor YAML: ${(err as Error).message.split("\n", 1)[0]}` };
  }
  const res = suiteSchema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0]!;
    const path = issue.path.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), "");
    return { ok: false, message: `${path || "suite"}: ${issue.message}` };
  }
  for (const [i, c] of res.data.cases.entries()) {
    if (c.expect.schema === undefined) continue;
    try {
      compileJsonSchema(c.expect.schema);
    } catch (err) {
      return { ok: false, message: `cases[${i}].expect.schema: invalid JSON Schema: ${(err as Error).message}` };
    }
  }
  return { ok: true, suite: res.data };
}

/** One case's verdict; `reasons` may quote the answer, so it is masked before leaving the checker. */
export interface CaseResult {
  name: string;
  pass: boolean;
  /** Whether the candidate answered at all (any HTTP status). */
  answered: boolean;
  reasons: string[];
}

/** The answer to one golden request, or why there was none. */
export type Answer = { ok: true; status: number; body: unknown } | { ok: false; error: string };

/** Checks one answer against its case; every reason is masked (emails, phones, cards, maskPatterns). */
export function checkCase(c: GoldenCase, answer: Answer, maskPatterns: readonly string[] = []): CaseResult {
  const reasons = answer.ok ? answerProblems(c, answer) : [`no answer: ${answer.error}`];
  return { name: c.name, pass: reasons.length === 0, answered: answer.ok, reasons: reasons.map((r) => maskPII(r, maskPatterns)) };
}

function answerProblems(c: GoldenCase, a: { status: number; body: unknown }): string[] {
  const out: string[] = [];
  const e = c.expect;
  if (e.status !== undefined ? a.status !== e.status : a.status < 200 || a.status > 299) out.push(`status ${a.status}, expected ${e.status ?? "2xx"}`);
  if (e.schema !== undefined) for (const err of compileJsonSchema(e.schema).validate(a.body)) out.push(`schema: ${err}`);
  for (const [path, rule] of Object.entries(e.fields ?? {})) {
    const problem = checkField(path, rule, a.body);
    if (problem) out.push(problem);
  }
  return out;
}

/**
 * One field under one rule, by the diff engine: the expected value and the answer's value at
 * `path` are compared as two whole bodies under the same rule placed at the root.
 */
export function checkField(path: string, rule: FieldExpectation, body: unknown): string | undefined {
  const actual = valueAt(body, parseFieldPath(path));
  if (actual === MISSING) return `${path}: missing`;
  const { expected, rules } = asCompare(rule);
  const res = compare(response(expected), response(actual), rules);
  const bad = res.fields.find((f) => !f.match);
  return bad ? `${path}: ${bad.reason}` : undefined;
}

function asCompare(rule: FieldExpectation): { expected: unknown; rules: CompareRulesInput } {
  if (rule.tolerance) return { expected: rule.tolerance.value, rules: { status: false, tolerances: [{ path: "$", ...pick(rule.tolerance) }] } };
  if (rule.similarity) return { expected: rule.similarity.text, rules: { status: false, text: [{ path: "$", minSimilarity: rule.similarity.min, method: rule.similarity.method }] } };
  if (rule.label !== undefined) return { expected: rule.label, rules: { status: false, labels: ["$"] } };
  return { expected: rule.equals, rules: { status: false } };
}

function pick(t: { absolute?: number | undefined; relative?: number | undefined }): { absolute?: number; relative?: number } {
  return { ...(t.absolute !== undefined ? { absolute: t.absolute } : {}), ...(t.relative !== undefined ? { relative: t.relative } : {}) };
}

function response(body: unknown): DiffResponse {
  return { status: 200, headers: {}, body };
}

const MISSING = Symbol("missing");

/** The value at a concrete path; `[*]` is not a key field and reads as missing. */
function valueAt(body: unknown, segs: readonly PathSegment[]): unknown {
  let v: unknown = body;
  for (const s of segs) {
    if (s.kind === "key" && v !== null && typeof v === "object" && !Array.isArray(v) && Object.hasOwn(v, s.key)) v = (v as Record<string, unknown>)[s.key];
    else if (s.kind === "index" && Array.isArray(v) && s.index < v.length) v = v[s.index];
    else return MISSING;
  }
  return v;
}

/** A suite run's summary: counts and the first failures. */
export interface SuiteResult {
  total: number;
  /** Cases the candidate answered (any status); the others failed without an answer. */
  answered: number;
  passed: number;
  failed: number;
  /** The first MAX_FAILURES_SHOWN failed cases, masked. */
  failures: { name: string; reason: string }[];
}

/** Counts the results; the reasons of a failure are joined and bounded. */
export function summarize(results: readonly CaseResult[]): SuiteResult {
  const failed = results.filter((r) => !r.pass);
  return {
    total: results.length,
    answered: results.filter((r) => r.answered).length,
    passed: results.length - failed.length,
    failed: failed.length,
    failures: failed.slice(0, MAX_FAILURES_SHOWN).map((r) => ({ name: r.name, reason: bounded(r.reasons.join("; "), 512) })),
  };
}

function bounded(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * The verdict on a run, fail closed: no case run, or none answered (the candidate unreachable), is
 * no evidence (Error), never a pass; more failures than maxFailures is Failed.
 */
export function verdict(r: SuiteResult, maxFailures: number): "Passed" | "Failed" | "Error" {
  if (r.total === 0 || r.answered === 0) return "Error";
  return r.failed > maxFailures ? "Failed" : "Passed";
}
