/**
 * The statistical judge end to end: the real gateway samples each answer's `$.confidence` into
 * airollout_judge_sample, a real Prometheus scrapes it, and the controller process judges the
 * candidate's distribution against the stable's with the Mann-Whitney U test (test/support/loop.ts).
 * Given a candidate whose confidence is shifted, the same as the stable's, or judged on too few
 * samples, When real traffic flows at a 50 % split, Then the rollout rolls back, is promoted, or
 * pauses without promotion. The signal is an answer field, not latency, so the machine's load
 * cannot change the outcome.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import type { Responder, TestBackend } from "../support/backends.ts";
import { startLoop, type Loop } from "../support/loop.ts";
import { client, createNamespace, kubeconfig, kubectlOk, waitFor } from "./helpers.ts";

let ns: string;
let loop: Loop;

beforeAll(async () => {
  ns = createNamespace("judge");
  loop = await startLoop({ kubeconfig: kubeconfig(), namespace: ns, id: `judge-${ns}` });
});

afterAll(async () => {
  await loop?.close();
});

/** Answers with a confidence spread over 0.5..0.9 by request id, plus `shift`. */
function confidence(shift: number): Responder {
  return (req) => {
    const raw = (req.json as { id?: unknown } | undefined)?.id;
    const id = typeof raw === "number" ? raw : 0;
    return { body: { intent: "billing", confidence: 0.5 + ((id * 37) % 41) / 100 + shift } };
  };
}

function apply(name: string, stable: TestBackend, candidate: TestBackend, minSamples: number): void {
  const spec = {
    stable: { version: "v1", endpoint: stable.url },
    candidate: { version: "v2", endpoint: candidate.url },
    strategy: { steps: [{ setWeight: 50 }, { analysis: {} }, { setWeight: 100 }] },
    analysis: {
      prometheus: { address: loop.prometheus.url, timeout: "5s" },
      interval: "3s",
      consecutiveErrorLimit: 10,
      args: { window: "40s" },
      metrics: [
        {
          name: "confidence-judge",
          judge: { signal: "field", field: "$.confidence", direction: "decrease", effectSize: 0.3, alpha: 0.01, minSamples },
          // The first samples need a few scrapes; up to two early NoData readings are tolerated.
          initialDelay: "15s",
          count: 3,
          inconclusiveLimit: 2,
        },
      ],
    },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec }));
}

async function phaseOf(name: string, phases: string[], timeoutMs: number): Promise<AIRollout> {
  return waitFor(`${name} in ${phases.join("|")}`, async () => {
    const o = await client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
    return phases.includes(o.status?.phase ?? "") ? o : undefined;
  }, timeoutMs, 300);
}

/** The judge metric of the finished analysis step's run. */
function judged(o: AIRollout) {
  const runs = [o.status?.analysis?.current, ...(o.status?.analysis?.history ?? [])];
  return runs.find((r) => r?.id.startsWith("step-1"))?.metrics.find((m) => m.name === "confidence-judge");
}

async function scenario(name: string, shift: number, minSamples: number): Promise<AIRollout> {
  const stable = await loop.backend(`${name}-stable`, confidence(0));
  const candidate = await loop.backend(`${name}-candidate`, confidence(shift));
  apply(name, stable, candidate, minSamples);
  await loop.gateway.knows(ns, name);
  const traffic = loop.traffic(name, { ratePerSecond: 16, maxRequests: 3000, maxDurationMs: 180_000 });
  try {
    return await phaseOf(name, ["Succeeded", "RolledBack", "Paused"], 180_000);
  } finally {
    await traffic.stop();
  }
}

describe.concurrent("the statistical judge on the real gateway -> Prometheus -> controller loop", () => {
  it("rolls back a candidate whose confidence is clearly lower (Low, p-value and effect size in status)", async ({ expect }) => {
    const done = await scenario("judge-regression", -0.2, 40);
    expect(done.status!.phase, done.status!.message).toBe("RolledBack");
    const m = judged(done)!;
    expect(m.judge?.classification).toBe("Low");
    expect(m.judge?.pValue).toBeLessThan(0.01);
    expect(m.judge?.effectSize).toBeLessThan(-0.3);
    expect(m.judge?.candidateSamples).toBeGreaterThanOrEqual(40);
  });

  it("promotes a null candidate (the stable's distribution)", async ({ expect }) => {
    const done = await scenario("judge-null", 0, 40);
    expect(done.status!.phase, done.status!.message).toBe("Succeeded");
    expect(judged(done)?.judge?.classification).toBe("Pass");
  });

  it("never promotes on too few samples: NoData pauses the rollout", async ({ expect }) => {
    const done = await scenario("judge-nodata", -0.2, 1_000_000);
    expect(done.status!.phase, done.status!.message).toBe("Paused");
    expect(done.status!.pauseReason).toBe("AnalysisInconclusive");
    expect(judged(done)?.judge?.classification).toBe("NoData");
    expect(done.status!.canaryWeight).toBe(50);
  });
});
