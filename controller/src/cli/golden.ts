/**
 * `airollout golden run|record`: the golden suite from a terminal or CI. `run` sends a suite to
 * any URL and exits 0 only when it passes (at most --max-failures failed, and at least one case
 * answered: no evidence is never a pass), optionally writing JUnit XML; `record` builds a suite
 * from the stable's answers to a list of requests, so a team starts from real traffic.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parse as parseYaml, stringify } from "yaml";
import { parseDuration } from "../api/duration.ts";
import { maskPII } from "../diff/pii.ts";
import { ask, runSuite } from "../golden/runner.ts";
import { parseSuite, verdict, SUITE_LIMITS, type CaseResult, type FieldExpectation, type GoldenSuite } from "../golden/suite.ts";
import { GOLDEN, parseFlags } from "./commands.ts";
import { UsageError } from "./errors.ts";

/** Entry point of `airollout golden`. */
export async function goldenCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(GOLDEN, args);
  const sub = positionals[0];
  if (sub === "run") return goldenRun(values);
  if (sub === "record") return goldenRecord(values);
  throw new UsageError(`golden: expected "run" or "record", got ${JSON.stringify(sub ?? "")}`);
}

type Values = ReturnType<typeof parseFlags<typeof GOLDEN.flags>>["values"];

function required(v: string | undefined, flag: string): string {
  if (v === undefined || v === "") throw new UsageError(`--${flag} is required`);
  return v;
}

function count(v: string, flag: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function timeoutOf(v: Values): number {
  try {
    return parseDuration(v.timeout);
  } catch (err) {
    throw new UsageError(`--timeout: ${(err as Error).message}`);
  }
}

async function goldenRun(v: Values): Promise<number> {
  const file = required(v.suite, "suite");
  const url = required(v.url, "url");
  const maxFailures = count(v["max-failures"], "max-failures", 0, SUITE_LIMITS.maxCases);
  const parsed = parseSuite(readFileSync(file, "utf8"));
  if (!parsed.ok) throw new UsageError(`--suite ${file}: ${parsed.message}`);
  const started = Date.now();
  const { results, summary } = await runSuite(parsed.suite, { url, concurrency: count(v.concurrency, "concurrency", 1, 64), timeoutMs: timeoutOf(v) });
  const outcome = verdict(summary, maxFailures);
  if (v.junit) writeFileSync(v.junit, junitXml(parsed.suite, results, (Date.now() - started) / 1000));
  for (const r of results) process.stdout.write(`${r.pass ? "PASS" : "FAIL"}  ${r.name}${r.pass ? "" : `: ${r.reasons.join("; ")}`}\n`);
  process.stdout.write(`golden suite ${parsed.suite.version}: ${summary.passed}/${summary.total} passed, ${summary.failed} failed (max failures ${maxFailures}): ${outcome === "Error" ? "no evidence (no case answered)" : outcome}\n`);
  return outcome === "Passed" ? 0 : 1;
}

/** XML text: the five entities escaped, and the control characters XML 1.0 forbids dropped. */
function xmlEscape(s: string): string {
  const allowed = [...s].filter((c) => c.charCodeAt(0) >= 0x20 || c === "\t" || c === "\n" || c === "\r").join("");
  return allowed.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** JUnit XML (the Ant/Jenkins form CI systems read): one testcase per golden case. */
export function junitXml(suite: GoldenSuite, results: readonly CaseResult[], seconds: number): string {
  const failures = results.filter((r) => r.pass === false && r.answered).length;
  const errors = results.filter((r) => !r.answered).length;
  const name = xmlEscape(`golden ${suite.version}`);
  const cases = results.map((r) => {
    const open = `    <testcase classname="${name}" name="${xmlEscape(r.name)}"`;
    if (r.pass) return `${open}/>`;
    const tag = r.answered ? "failure" : "error";
    const text = xmlEscape(r.reasons.join("\n"));
    return `${open}>\n      <${tag} message="${xmlEscape(r.reasons[0] ?? "")}">${text}</${tag}>\n    </testcase>`;
  });
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites tests="${results.length}" failures="${failures}" errors="${errors}" time="${seconds.toFixed(3)}">`,
    `  <testsuite name="${name}" tests="${results.length}" failures="${failures}" errors="${errors}" time="${seconds.toFixed(3)}">`,
    ...cases,
    `  </testsuite>`,
    `</testsuites>`,
    "",
  ].join("\n");
}

interface RecordedRequest {
  name?: string;
  headers?: Record<string, string>;
  body?: unknown;
}

async function goldenRecord(v: Values): Promise<number> {
  const url = required(v["from-stable"], "from-stable");
  const file = required(v.requests, "requests");
  const out = required(v.out, "out");
  const relative = Number(v.tolerance);
  if (!Number.isFinite(relative) || relative < 0) throw new UsageError(`--tolerance must be a number >= 0, got ${JSON.stringify(v.tolerance)}`);
  const requests = readRequests(file);
  const timeoutMs = timeoutOf(v);
  const cases = [];
  for (const [i, r] of requests.entries()) {
    const request = { ...(r.headers ? { headers: r.headers } : {}), body: r.body ?? null };
    const answer = await ask({ url, timeoutMs }, request);
    if (!answer.ok) throw new Error(`request ${i} (${r.name ?? `case-${i + 1}`}): the stable did not answer: ${answer.error}`);
    if (answer.status < 200 || answer.status > 299) throw new Error(`request ${i} (${r.name ?? `case-${i + 1}`}): the stable answered ${answer.status}`);
    const fields = expectationsOf(answer.body, relative);
    if (Object.keys(fields).length === 0) throw new Error(`request ${i} (${r.name ?? `case-${i + 1}`}): the stable's answer has no scalar field to expect`);
    cases.push({ name: r.name ?? `case-${i + 1}`, request, expect: { status: answer.status, fields } });
  }
  const suite = { version: new Date().toISOString(), cases };
  const text = stringify(suite);
  // What is written must read back: the same parser the controller runs.
  const check = parseSuite(text);
  if (!check.ok) throw new Error(`the recorded suite does not parse: ${check.message}`);
  writeFileSync(out, text);
  process.stdout.write(`recorded ${cases.length} cases from ${url} into ${out}\n`);
  return 0;
}

function readRequests(file: string): RecordedRequest[] {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8"), { maxAliasCount: 100 });
  } catch (err) {
    throw new UsageError(`--requests ${file}: ${(err as Error).message.split("\n", 1)[0]}`);
  }
  const list = Array.isArray(raw) ? raw : (raw as { requests?: unknown })?.requests;
  if (!Array.isArray(list) || list.length === 0) throw new UsageError(`--requests ${file}: expected a non-empty list of {name?, headers?, body}`);
  if (list.length > SUITE_LIMITS.maxCases) throw new UsageError(`--requests ${file}: at most ${SUITE_LIMITS.maxCases} requests`);
  return list as RecordedRequest[];
}

/**
 * The key fields of an answer: scalar leaves of objects (nested up to 3 levels, at most
 * SUITE_LIMITS.maxFields): numbers within a relative band, strings by label equality, booleans
 * equal. Strings holding personal data (masking changes them) are left out: a suite is stored in a
 * ConfigMap and printed in failures, and a masked label would never match.
 */
export function expectationsOf(body: unknown, relative: number): Record<string, FieldExpectation> {
  const out: Record<string, FieldExpectation> = {};
  const walk = (v: unknown, path: string, depth: number) => {
    if (Object.keys(out).length >= SUITE_LIMITS.maxFields) return;
    if (typeof v === "number" && Number.isFinite(v)) out[path] = { tolerance: { value: v, relative } };
    else if (typeof v === "string" && maskPII(v) === v) out[path] = { label: v };
    else if (typeof v === "boolean") out[path] = { equals: v };
    else if (v !== null && typeof v === "object" && !Array.isArray(v) && depth < 3) {
      for (const [k, child] of Object.entries(v)) if (/^[A-Za-z0-9_-]+$/.test(k)) walk(child, `${path}.${k}`, depth + 1);
    }
  };
  if (body !== null && typeof body === "object" && !Array.isArray(body)) walk(body, "$", 0);
  return out;
}
