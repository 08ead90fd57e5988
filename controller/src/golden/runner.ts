/**
 * Runs golden suites (the I/O behind reconcile's GoldenPort, and the CLI's `golden run`): each case
 * is POSTed to one URL, the candidate's own, never the gateway, with bounded concurrency, a
 * timeout per request and a bounded answer size; each answer is checked by golden/suite.ts.
 */
import type { GoldenOutcome, GoldenPort, GoldenRequest } from "../reconcile/contract.ts";
import type { KubeClient } from "../kube/client.ts";
import { ApiError } from "../kube/client.ts";
import { digestsOf } from "../kube/references.ts";
import { checkCase, parseSuite, summarize, type Answer, type CaseResult, type GoldenSuite, type SuiteResult } from "./suite.ts";

/** Largest answer read per case; a longer one fails its case. */
export const MAX_ANSWER_BYTES = 1024 * 1024;

/** Header on every golden request, so a service can tell golden traffic from users'. */
export const GOLDEN_HEADER = "x-airollout-golden";

export interface RunOptions {
  url: string;
  concurrency: number;
  timeoutMs: number;
  maskPatterns?: readonly string[];
}

/** Sends every case of `suite` to `opts.url` and checks the answers; never rejects. */
export async function runSuite(suite: GoldenSuite, opts: RunOptions): Promise<{ results: CaseResult[]; summary: SuiteResult }> {
  const results: CaseResult[] = new Array(suite.cases.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < suite.cases.length; i = next++) {
      const c = suite.cases[i]!;
      results[i] = checkCase(c, await ask(opts, c.request), opts.maskPatterns ?? []);
    }
  };
  const workers = Math.max(1, Math.min(opts.concurrency, suite.cases.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return { results, summary: summarize(results) };
}

/** One golden request; any transport failure, timeout or oversized answer is `ok: false`. */
export async function ask(opts: Pick<RunOptions, "url" | "timeoutMs">, request: GoldenSuite["cases"][number]["request"]): Promise<Answer> {
  try {
    const res = await fetch(opts.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...request.headers, [GOLDEN_HEADER]: "true" },
      body: JSON.stringify(request.body ?? null),
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    const text = await readBounded(res);
    if (text === undefined) return { ok: false, error: `answer larger than ${MAX_ANSWER_BYTES} bytes` };
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: checked as text (a schema or field rule then fails, naming why).
    }
    return { ok: true, status: res.status, body };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { ok: false, error: e.name === "TimeoutError" ? `timed out after ${opts.timeoutMs}ms` : `${e.message}${e.cause?.code ? ` (${e.cause.code})` : ""}` };
  }
}

async function readBounded(res: Response): Promise<string | undefined> {
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await res.body.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The controller's GoldenPort: reads each suite's ConfigMap key from the API server, refuses a
 * suite whose content no longer has the revision's digest (it belongs to the next revision), and
 * runs it against the candidate.
 */
export class GoldenRunner implements GoldenPort {
  private readonly client: KubeClient;

  constructor(client: KubeClient) {
    this.client = client;
  }

  async run(requests: readonly GoldenRequest[]): Promise<Record<string, GoldenOutcome>> {
    const out: Record<string, GoldenOutcome> = {};
    await Promise.all(requests.map(async (r) => (out[r.key] = await this.runOne(r))));
    return out;
  }

  private async runOne(r: GoldenRequest): Promise<GoldenOutcome> {
    const text = await this.readSuite(r);
    if (typeof text !== "string") return text;
    const parsed = parseSuite(text);
    if (!parsed.ok) return { ok: false, message: `${r.field ?? "spec.golden.configMapRef"} (ConfigMap ${r.configMapRef.name} key ${r.configMapRef.key}): ${parsed.message}` };
    const { summary } = await runSuite(parsed.suite, r);
    return { ok: true, suiteVersion: parsed.suite.version, result: summary };
  }

  private async readSuite(r: GoldenRequest): Promise<string | GoldenOutcome> {
    const where = `ConfigMap ${r.configMapRef.name} key ${r.configMapRef.key}`;
    let cm: { metadata?: { uid?: string }; data?: Record<string, string> };
    try {
      cm = await this.client.get(`/api/v1/namespaces/${r.namespace}/configmaps/${r.configMapRef.name}`);
    } catch (err) {
      return { ok: false, message: `reading the golden suite (${where}): ${err instanceof ApiError && err.notFound ? "not found" : (err as Error).message}` };
    }
    const text = cm.data?.[r.configMapRef.key];
    if (text === undefined) return { ok: false, message: `reading the golden suite (${where}): no such key` };
    const digest = digestsOf("ConfigMap", { data: { [r.configMapRef.key]: text } })[r.configMapRef.key];
    if (r.digest !== undefined && digest !== r.digest) return { ok: false, message: `the golden suite (${where}) changed since the revision was computed: the next revision runs it` };
    return text;
  }
}
