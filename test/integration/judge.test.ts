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

/**
 * The first samples need a few scrapes, and on a loaded machine the traffic arrives slowly: up to
 * 18 early NoData readings (3 s apart) are tolerated. A Pass ends the step early once its bound
 * is conclusive, else at count; the alpha is spent over the 20 looks.
 */
const PATIENCE = { initialDelay: "15s", count: 20, inconclusiveLimit: 18 };

function apply(name: string, stable: TestBackend, candidate: TestBackend, minSamples: number): void {
  const spec = {
    stable: { version: "v1", endpoint: stable.url },
    candidate: { version: "v2", endpoint: candidate.url },
    strategy: { steps: [{ setWeight: 50 }, { analysis: {} }, { setWeight: 100 }] },
    analysis: {
      prometheus: { address: loop.prometheus.url, timeout: "5s" },
      interval: "3s",
      consecutiveErrorLimit: 10,
      args: { window: "60s" },
      metrics: [{ name: "confidence-judge", judge: { signal: "field", field: "$.confidence", direction: "decrease", effectSize: 0.3, alpha: 0.01, minSamples }, ...PATIENCE }],
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
function judged(o: AIRollout, step = 1) {
  const runs = [o.status?.analysis?.current, ...(o.status?.analysis?.history ?? [])];
  return runs.find((r) => r?.id.startsWith(`step-${step}`))?.metrics.find((m) => m.name === "confidence-judge");
}

/**
 * judge baseline: noise. At weight 0 every request goes to the stable and is mirrored to the
 * candidate and to the noise baseline's second stable; the judge compares the two mirrored answers.
 */
function applyNoise(name: string, backends: Record<"stable" | "noise" | "candidate", TestBackend>): void {
  const spec = {
    stable: { version: "v1", endpoint: backends.stable.url },
    candidate: { version: "v2", endpoint: backends.candidate.url },
    shadow: { sampleRate: 1, noiseBaseline: { enabled: true, endpoint: backends.noise.url } },
    strategy: { steps: [{ analysis: {} }, { setWeight: 100 }] },
    analysis: {
      prometheus: { address: loop.prometheus.url, timeout: "5s" },
      interval: "3s",
      consecutiveErrorLimit: 10,
      args: { window: "60s" },
      metrics: [{ name: "confidence-judge", judge: { signal: "field", field: "$.confidence", baseline: "noise", direction: "decrease", effectSize: 0.3, alpha: 0.01, minSamples: 40 }, ...PATIENCE }],
    },
  };
  kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace: ns }, spec }));
}

async function noiseScenario(name: string, shifts: Record<"stable" | "noise" | "candidate", number>): Promise<AIRollout> {
  const backends = {
    stable: await loop.backend(`${name}-stable`, confidence(shifts.stable)),
    noise: await loop.backend(`${name}-noise`, confidence(shifts.noise)),
    candidate: await loop.backend(`${name}-candidate`, confidence(shifts.candidate)),
  };
  applyNoise(name, backends);
  await loop.gateway.knows(ns, name);
  const traffic = loop.traffic(name, { ratePerSecond: 16, maxRequests: 3000, maxDurationMs: 180_000 });
  try {
    return await phaseOf(name, ["Succeeded", "RolledBack", "Paused"], 180_000);
  } finally {
    await traffic.stop();
  }
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

// Each scenario waits up to 180 s for its verdict; no speed is asserted.
describe.concurrent("the statistical judge on the real gateway -> Prometheus -> controller loop", { timeout: 240_000 }, () => {
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

  it("baseline noise: a candidate that answers like the noise baseline passes although the stable answers higher", async ({ expect }) => {
    // Against the stable this candidate is 0.2 lower (Low); against the second stable it is the same.
    const done = await noiseScenario("judge-noise-null", { stable: 0, noise: -0.2, candidate: -0.2 });
    expect(done.status!.phase, done.status!.message).toBe("Succeeded");
    const m = judged(done, 0)!;
    expect(m.judge?.classification).toBe("Pass");
    expect(m.query).toContain('version="v2:shadow"');
    expect(m.query).toContain('version="v1:noise"');
    expect(m.judge?.baselineSamples).toBeGreaterThanOrEqual(40);
  });

  it("baseline noise: a candidate clearly below the noise baseline is Low and rolled back, mirroring off", async ({ expect }) => {
    const done = await noiseScenario("judge-noise-regression", { stable: 0, noise: 0, candidate: -0.2 });
    expect(done.status!.phase, done.status!.message).toBe("RolledBack");
    expect(judged(done, 0)?.judge?.classification).toBe("Low");
    expect(done.status!.shadowEnabled).toBe(false);
  });
});
