/**
 * Golden suites end to end: a suite recorded from a real stable backend with `airollout golden
 * record`, run from the terminal with `golden run` (exit code, JUnit XML), and the same suite in a
 * ConfigMap gating real rollouts through a controller process on the local control plane: a
 * passing candidate goes on to traffic, a failing one rolls back before any traffic with
 * status.golden and an Event, the stable never sees a golden request, and editing the suite
 * makes a new revision that runs it again.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { classifierResponder, startBackend, type TestBackend } from "../support/backends.ts";
import { ControllerProcess, client, createNamespace, kubectlOk, waitFor, runCli } from "./helpers.ts";

let ns: string;
let dir: string;
let controller: ControllerProcess;
let stable: TestBackend;
let good: TestBackend;
let bad: TestBackend;

const cli = (args: string[]) => runCli(args);

const goldenRequests = (b: TestBackend) => b.requests.filter((r) => r.headers["x-airollout-golden"] === "true");

async function rollout(name: string): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${name}`);
}

function apply(name: string, candidateUrl: string): void {
  const manifest = {
    apiVersion: "airollout.dev/v1alpha1",
    kind: "AIRollout",
    metadata: { name, namespace: ns },
    spec: {
      stable: { version: "v1", endpoint: stable.url },
      candidate: { version: "v2", endpoint: candidateUrl },
      golden: { configMapRef: { name: `suite-${name}`, key: "suite.yaml" }, gate: true },
      strategy: { steps: [{ setWeight: 10 }, { pause: {} }] },
    },
  };
  kubectlOk(["apply", "-f", "-"], stringify(manifest));
}

/** Elements open and close in order, one root: enough to know a CI parser will read it. */
function wellFormed(xml: string): boolean {
  const stack: string[] = [];
  let roots = 0;
  for (const m of xml.replace(/<\?xml[^>]*\?>/, "").matchAll(/<(\/?)([A-Za-z]+)[^>]*?(\/?)>/g)) {
    const [, close, tag, selfClose] = m;
    if (close) {
      if (stack.pop() !== tag) return false;
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(tag!);
    } else if (stack.length === 0) roots++;
  }
  return stack.length === 0 && roots === 1;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "golden-"));
  stable = await startBackend("stable", classifierResponder());
  good = await startBackend("good", classifierResponder());
  // Labels every ticket "other": a regression of the intent on every case.
  bad = await startBackend("bad", classifierResponder({ drift: () => true }));
  ns = createNamespace("golden");
  controller = new ControllerProcess("golden", ["--namespace", ns, "--lease-namespace", ns, "--environments", "none"]);
  await controller.waitForLog("leadership", (l) => l.msg === "became leader", 90_000);
}, 120_000);

afterAll(async () => {
  await controller?.stop("SIGKILL");
  await Promise.all([stable, good, bad].map((b) => b?.close()));
});

describe("golden suites", () => {
  let suiteFile: string;

  it("`golden record` builds a suite from the stable's answers: numbers in a band, strings by label", async () => {
    const requests = join(dir, "requests.yaml");
    writeFileSync(requests, stringify([0, 1, 2, 3].map((id) => ({ name: `ticket-${id}`, body: { id } }))));
    suiteFile = join(dir, "suite.yaml");
    const r = await cli(["golden", "record", "--from-stable", stable.url, "--requests", requests, "--out", suiteFile]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const suite = parse(readFileSync(suiteFile, "utf8"));
    expect(suite.cases).toHaveLength(4);
    expect(suite.cases[1]).toMatchObject({
      name: "ticket-1",
      request: { body: { id: 1 } },
      expect: { status: 200, fields: { "$.intent": { label: "bug" }, "$.confidence": { tolerance: { value: 0.6, relative: 0.03 } }, "$.summary": { label: "ticket 1" } } },
    });
    expect(goldenRequests(stable)).toHaveLength(4);
  });

  it("`golden run` exits 0 against a matching service and 1 against a regressed one, writing JUnit XML", async () => {
    const passXml = join(dir, "pass.xml");
    const pass = await cli(["golden", "run", "--suite", suiteFile, "--url", good.url, "--junit", passXml]);
    expect(pass.code).toBe(0);
    expect(pass.stdout).toContain("4/4 passed, 0 failed");
    const xml = readFileSync(passXml, "utf8");
    expect(wellFormed(xml)).toBe(true);
    expect(xml).toMatch(/<testsuites tests="4" failures="0" errors="0"/);
    expect(xml.match(/<testcase /g)).toHaveLength(4);

    const failXml = join(dir, "fail.xml");
    const fail = await cli(["golden", "run", "--suite", suiteFile, "--url", bad.url, "--junit", failXml]);
    expect(fail.code).toBe(1);
    expect(fail.stdout).toContain("0/4 passed, 4 failed");
    const failed = readFileSync(failXml, "utf8");
    expect(wellFormed(failed)).toBe(true);
    expect(failed).toMatch(/<testsuites tests="4" failures="4" errors="0"/);
    expect(failed).toContain('<failure message="$.intent:');
  });

  it("a passing suite gates the rollout: it runs against the candidate only, then traffic starts", async () => {
    kubectlOk(["create", "configmap", "suite-pass", "-n", ns, `--from-file=suite.yaml=${suiteFile}`]);
    stable.reset();
    good.reset();
    apply("pass", good.url);
    const o = await waitFor(
      "paused at the pause step after the gate",
      async () => {
        const r = await rollout("pass");
        return r.status?.phase === "Paused" ? r : undefined;
      },
      120_000,
    );
    expect(o.status).toMatchObject({ currentStep: 2, canaryWeight: 10, golden: { phase: "Passed", total: 4, passed: 4, failed: 0 } });
    expect(o.status!.steps!.map((s) => s.type)).toEqual(["golden", "setWeight", "pause"]);
    expect(goldenRequests(good)).toHaveLength(4);
    expect(stable.requests).toHaveLength(0);
  });

  it("a failing suite rolls back before any traffic, with status.golden and a GoldenSuiteFailed Event; the stable never saw a golden request", async () => {
    kubectlOk(["create", "configmap", "suite-fail", "-n", ns, `--from-file=suite.yaml=${suiteFile}`]);
    stable.reset();
    bad.reset();
    apply("fail", bad.url);
    const o = await waitFor(
      "RolledBack",
      async () => {
        const r = await rollout("fail");
        return r.status?.phase === "RolledBack" ? r : undefined;
      },
      120_000,
    );
    expect(o.status).toMatchObject({ currentStep: 0, canaryWeight: 0, golden: { phase: "Failed", total: 4, failed: 4, maxFailures: 0 } });
    expect(o.status!.golden!.failures![0]!.reason).toContain("$.intent:");
    const events = await waitFor("the GoldenSuiteFailed Event", async () => {
      const list = await client().get<{ items: { reason: string; message: string; type: string }[] }>(`/api/v1/namespaces/${ns}/events`, { fieldSelector: "involvedObject.name=fail" });
      return list.items.find((e) => e.reason === "GoldenSuiteFailed");
    });
    expect(events.type).toBe("Warning");
    expect(events.message).toContain("0/4 cases passed, 4 failed (maxFailures 0)");
    expect(goldenRequests(bad)).toHaveLength(4);
    expect(stable.requests).toHaveLength(0);
  });

  it("editing the suite's ConfigMap makes a new revision that runs the suite again", async () => {
    const before = await rollout("pass");
    const suite = parse(readFileSync(suiteFile, "utf8"));
    suite.version = "edited";
    good.reset();
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "suite-pass", namespace: ns }, data: { "suite.yaml": stringify(suite) } }));
    const after = await waitFor(
      "a new revision, paused again after the gate",
      async () => {
        const r = await rollout("pass");
        return r.status?.revision !== before.status!.revision && r.status?.phase === "Paused" ? r : undefined;
      },
      120_000,
    );
    expect(after.status!.revisionInputs!["spec.golden.configMapRef"]).not.toBe(before.status!.revisionInputs!["spec.golden.configMapRef"]);
    expect(after.status!.golden).toMatchObject({ phase: "Passed", suiteVersion: "edited" });
    expect(goldenRequests(good)).toHaveLength(4);
  });

  it("a golden step runs its own suite after the gate's; status.golden.steps keeps both; editing the step's suite is a new revision", async () => {
    const full = parse(readFileSync(suiteFile, "utf8"));
    const smoke = (version: string) => stringify({ ...full, version, cases: full.cases.slice(0, 2) });
    kubectlOk(["create", "configmap", "suite-steps", "-n", ns, `--from-file=suite.yaml=${suiteFile}`]);
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "smoke-steps", namespace: ns }, data: { "smoke.yaml": smoke("smoke-1") } }));
    good.reset();
    stable.reset();
    const spec = {
      stable: { version: "v1", endpoint: stable.url },
      candidate: { version: "v2", endpoint: good.url },
      golden: { configMapRef: { name: "suite-steps", key: "suite.yaml" }, gate: true },
      strategy: { steps: [{ golden: { configMapRef: { name: "smoke-steps", key: "smoke.yaml" } } }, { setWeight: 10 }, { pause: {} }] },
    };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "steps", namespace: ns }, spec }));
    const paused = (revision?: string) => async () => {
      const r = await rollout("steps");
      return r.status?.phase === "Paused" && r.status.revision !== revision ? r : undefined;
    };
    const first = await waitFor("paused after both suites", paused(), 120_000);
    expect(first.status!.golden!.steps!.map((e) => [e.step, e.suite, e.phase, e.total])).toEqual([
      [0, "ConfigMap suite-steps key suite.yaml", "Passed", 4],
      [1, "ConfigMap smoke-steps key smoke.yaml", "Passed", 2],
    ]);
    expect(goldenRequests(good)).toHaveLength(6);
    expect(stable.requests).toHaveLength(0);

    good.reset();
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "smoke-steps", namespace: ns }, data: { "smoke.yaml": smoke("smoke-2") } }));
    const second = await waitFor("a new revision, paused again", paused(first.status!.revision), 120_000);
    const field = "spec.strategy.steps[0].golden.configMapRef";
    expect(second.status!.revisionInputs![field]).not.toBe(first.status!.revisionInputs![field]);
    expect(second.status!.golden!.steps![1]).toMatchObject({ step: 1, phase: "Passed", suiteVersion: "smoke-2" });
    expect(goldenRequests(good)).toHaveLength(6);
  });
});
