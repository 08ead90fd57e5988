import { afterEach, describe, expect, it } from "vitest";
import { capacityResponder, startBackend, type TestBackend } from "../../../test/support/backends.ts";
import { MAX_ANSWER_BYTES, runSuite, GOLDEN_HEADER } from "./runner.ts";
import { parseSuite, type GoldenSuite } from "./suite.ts";

const backends: TestBackend[] = [];
afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
});

function suite(n: number): GoldenSuite {
  const p = parseSuite(JSON.stringify({ version: 1, cases: Array.from({ length: n }, (_, i) => ({ name: `c${i}`, request: { headers: { "x-case": String(i) }, body: { i } }, expect: { fields: { "$.n": { tolerance: { value: 1, absolute: 1e9 } } } } })) }));
  if (!p.ok) throw new Error(p.message);
  return p.suite;
}

describe("runSuite against a real backend", () => {
  it("keeps at most `concurrency` requests in flight, sends the case's headers and the golden header", async () => {
    const cap = capacityResponder({ concurrency: 100, latencyMs: 30 });
    const b = await startBackend("cand", cap.respond);
    backends.push(b);
    const { summary } = await runSuite(suite(12), { url: b.url, concurrency: 3, timeoutMs: 10_000 });
    expect(summary).toMatchObject({ total: 12, answered: 12, passed: 12, failed: 0 });
    expect(cap.stats.maxOutstanding).toBeLessThanOrEqual(3);
    expect(cap.stats.maxOutstanding).toBeGreaterThan(1);
    expect(b.requests.every((r) => r.headers[GOLDEN_HEADER] === "true" && r.headers["x-case"] !== undefined)).toBe(true);
  });

  it("a request past its timeout, or an answer larger than the bound, fails its case without an answer", async () => {
    const slow = await startBackend("slow");
    slow.mode = "hang";
    const big = await startBackend("big", () => ({ body: { n: 1, pad: "x".repeat(MAX_ANSWER_BYTES) } }));
    backends.push(slow, big);
    const timedOut = await runSuite(suite(1), { url: slow.url, concurrency: 1, timeoutMs: 300 });
    expect(timedOut.results[0]).toMatchObject({ pass: false, answered: false, reasons: ["no answer: timed out after 300ms"] });
    const tooBig = await runSuite(suite(1), { url: big.url, concurrency: 1, timeoutMs: 10_000 });
    expect(tooBig.results[0]).toMatchObject({ pass: false, answered: false, reasons: [`no answer: answer larger than ${MAX_ANSWER_BYTES} bytes`] });
  });
});
