/**
 * Health as the real consumers read it. airollout-health (hack/health, built from the Go module
 * proxy like the other tools) runs kstatus from sigs.k8s.io/cli-utils (what `kubectl wait`-style
 * tooling and Flux use) and the chart's Argo CD health check in gopher-lua, restricted as Argo CD
 * restricts a custom script. Given live AIRollouts in each phase on the real API server, When the
 * consumers read them, Then they say InProgress/Progressing, Failed/Suspended, Current/Healthy or
 * Failed/Degraded, and `kubectl wait --for=condition=Ready` returns only on success.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { healthConsumers, type Health, type HealthConsumers } from "./health-consumers.ts";
import { CLI, ControllerProcess, NODE, createNamespace, kubeconfig, kubectl, kubectlOk, waitFor } from "./helpers.ts";

const LUA = join(PROJECT_ROOT, "charts", "airollout", "files", "argocd-health.lua");

let consumers: HealthConsumers;
const kstatus = (obj: unknown) => consumers.kstatus(obj);
const argo = (obj: unknown, script = LUA) => consumers.argo(obj, script);

beforeAll(async () => {
  consumers = await healthConsumers();
}, 900_000);

// ---------------------------------------------------------------------------------------------
// The Argo CD check (and kstatus) on hand-written objects: each rule of the script, in the VM.

interface Cond {
  type: string;
  status: "True" | "False";
  reason: string;
  message?: string;
}
function fixture(status: Record<string, unknown> | undefined, generation = 3): Record<string, unknown> {
  return { apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "x", namespace: "n", generation }, ...(status ? { status } : {}) };
}
const conds = (phase: string, ...c: Cond[]) => ({ phase, observedGeneration: 3, conditions: c.map((x) => ({ observedGeneration: 3, message: "", ...x })) });
const T = (type: string, reason: string, message = ""): Cond => ({ type, status: "True", reason, message });
const F = (type: string, reason: string): Cond => ({ type, status: "False", reason });

describe("the Argo CD health check and kstatus on fixture objects", () => {
  it.each<[string, Record<string, unknown>, Health, string]>([
    // kstatus cannot tell an object no controller has seen from a current one (no
    // status.observedGeneration, no conditions): Current.
    ["no status", fixture(undefined), { status: "Progressing", message: "Waiting for the controller" }, "Current"],
    [
      "a status for an older generation, even Ready",
      fixture({ ...conds("Succeeded", T("Ready", "Succeeded", "v2 serves all traffic")), observedGeneration: 2 }),
      { status: "Progressing", message: "Waiting for the controller" },
      "InProgress",
    ],
    [
      "Reconciling",
      fixture(conds("Progressing", F("Ready", "Progressing"), T("Reconciling", "Progressing", "Step 1/2: weight 10%"), F("Stalled", "AsExpected"))),
      { status: "Progressing", message: "Step 1/2: weight 10%" },
      "InProgress",
    ],
    [
      "Ready (Succeeded)",
      fixture(conds("Succeeded", T("Ready", "Succeeded", "v2 serves all traffic"), F("Reconciling", "Succeeded"), F("Stalled", "AsExpected"))),
      { status: "Healthy", message: "v2 serves all traffic" },
      "Current",
    ],
    [
      "Stalled while Paused for a human",
      fixture(conds("Paused", F("Ready", "Paused"), F("Reconciling", "Paused"), T("Stalled", "PauseStep", "Step 2/3: paused until promoted"))),
      { status: "Suspended", message: "Step 2/3: paused until promoted" },
      "Failed",
    ],
    [
      "Stalled while Paused on a query Prometheus rejects",
      fixture(conds("Paused", F("Ready", "Paused"), T("Degraded", "InvalidQuery", "parse error"), T("Stalled", "InvalidQuery", "metric \"x\": parse error"))),
      { status: "Degraded", message: "metric \"x\": parse error" },
      "Failed",
    ],
    [
      "Stalled after a rollback, with an empty message",
      fixture(conds("RolledBack", F("Ready", "RolledBack"), T("Degraded", "AnalysisFailed", "error-ratio 0.4"), T("Stalled", "RolledBack"))),
      { status: "Degraded", message: "RolledBack" },
      "Failed",
    ],
    [
      "Stalled by an invalid analysis",
      fixture(conds("Degraded", F("Ready", "InvalidAnalysis"), T("Stalled", "InvalidAnalysis", "step 2 names the undefined metric \"nope\""))),
      { status: "Degraded", message: "step 2 names the undefined metric \"nope\"" },
      "Failed",
    ],
    [
      "no condition True",
      fixture({ ...conds("Initialized", F("Ready", "Initialized")), message: "Initialized: 2 steps" }),
      { status: "Progressing", message: "Initialized: 2 steps" },
      "InProgress",
    ],
    // kstatus refuses the object (an error, never a status); the script still answers.
    ["conditions that are not a list", fixture({ phase: "Progressing", observedGeneration: 3, conditions: "yes" }), { status: "Progressing", message: "Progressing" }, "error"],
  ])("%s", (_what, obj, expected, kstatusExpected) => {
    expect(argo(obj)).toEqual(expected);
    if (kstatusExpected === "error") expect(() => kstatus(obj)).toThrow(/kstatus: cannot restore slice/);
    else expect(kstatus(obj).status).toBe(kstatusExpected);
  });

  it("runs scripts as Argo CD does: no string library, an unknown status reads Unknown, the object bounded in depth", () => {
    const dir = join(tmpdir(), `airollout-health-${process.pid}`);
    const script = (name: string, text: string) => {
      const p = `${dir}-${name}.lua`;
      writeFileSync(p, text);
      return p;
    };
    const obj = fixture(undefined);
    // Argo CD opens only the base, table and package libraries for an argocd-cm script.
    expect(() => argo(obj, script("string", 'return { status = string.format("%s", "Healthy") }'))).toThrow(/string/);
    expect(argo(obj, script("os", 'local os = require("os"); return { status = "Healthy", message = type(os.time()) .. tostring(os.execute) }'))).toEqual({ status: "Healthy", message: "numbernil" });
    expect(argo(obj, script("invalid", 'return { status = "Fine" }')).status).toBe("Unknown");
    expect(() => argo(obj, script("nil", "local x = 1"))).toThrow(/not a table/);
    expect(argo({ ...obj, spec: { a: [1, 2, 3], n: 7 } }, script("convert", 'return { status = "Healthy", message = obj.spec.a[3] + obj.spec.n .. obj.kind }'))).toEqual({ status: "Healthy", message: "10AIRollout" });
    let deep: unknown = 1;
    for (let i = 0; i < 150; i++) deep = { d: deep };
    expect(() => argo({ ...obj, spec: deep }, script("deep", 'return { status = "Healthy" }'))).toThrow(/nested deeper than 100 levels/);
  });

  it("docs/argocd-health.md shows the chart's script, byte for byte", () => {
    const lines = readFileSync(join(PROJECT_ROOT, "docs", "argocd-health.md"), "utf8").split("\n");
    const key = lines.findIndex((l) => l.trim() === "resource.customizations.health.airollout.dev_AIRollout: |");
    expect(key, "the argocd-cm key with a literal block").toBeGreaterThan(0);
    // The block scalar: the lines indented deeper than the key (4 spaces) or empty.
    const block: string[] = [];
    for (const l of lines.slice(key + 1)) {
      if (l !== "" && !l.startsWith("    ")) break;
      block.push(l.slice(4));
    }
    while (block.at(-1) === "") block.pop();
    const shown = `${block.join("\n")}\n`;
    expect(shown).toBe(readFileSync(LUA, "utf8"));
  });
});

// ---------------------------------------------------------------------------------------------
// Live objects on the real API server, written by a real controller process.

describe("health of live AIRollouts", () => {
  let ns: string;
  let controller: ControllerProcess;

  beforeAll(async () => {
    ns = createNamespace("health");
    controller = new ControllerProcess("health", ["--namespace", ns, "--lease-namespace", ns]);
    await controller.waitForLog("leadership", (l) => l.msg === "became leader");
  });

  afterAll(async () => {
    await controller?.stop();
  });

  /** An AIRollout of two loopback endpoint versions (no environments, no Prometheus unless asked). */
  function apply(namespace: string, name: string, steps: unknown[], analysis?: unknown): void {
    const spec = {
      stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable" },
      candidate: { version: "v2", endpoint: "http://127.0.0.1:9/candidate" },
      strategy: { steps },
      ...(analysis ? { analysis } : {}),
    };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name, namespace }, spec }));
  }

  interface Live {
    metadata: { generation: number };
    status?: { phase?: string; observedGeneration?: number; conditions?: { type: string; status: string; reason: string; observedGeneration?: number }[] };
  }
  const live = (name: string): Live => JSON.parse(kubectlOk(["get", "airollout", name, "-n", ns, "-o", "json"])) as Live;

  /** The live object once the controller has written a status of its generation in one of `phases`. */
  function settled(name: string, phases: string[], timeoutMs = 90_000): Promise<Live> {
    return waitFor(`${name} in ${phases.join("|")} for its generation`, () => {
      const o = live(name);
      return o.status?.observedGeneration === o.metadata.generation && phases.includes(o.status.phase ?? "") ? o : undefined;
    }, timeoutMs, 250);
  }

  function cli(args: string[]): void {
    const r = spawnSync(NODE, [CLI, ...args, "-n", ns, "--kubeconfig", kubeconfig()], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`airollout ${args.join(" ")}: ${r.stderr}`);
  }

  /** Every condition carries the generation it was written for (kstatus conventions). */
  function expectConditionsObserved(o: Live): void {
    const types = (o.status?.conditions ?? []).map((c) => c.type);
    expect(types).toEqual(expect.arrayContaining(["Ready", "Reconciling", "Stalled"]));
    for (const c of o.status!.conditions!) expect(c.observedGeneration, `${c.type}.observedGeneration`).toBe(o.metadata.generation);
  }

  it("mid-rollout (a timed pause): kstatus InProgress, Argo CD Progressing", async () => {
    apply(ns, "midway", [{ setWeight: 10 }, { pause: { duration: "1h" } }]);
    const o = await settled("midway", ["Progressing"]);
    expectConditionsObserved(o);
    expect(kstatus(o).status).toBe("InProgress");
    expect(argo(o).status).toBe("Progressing");
  });

  it("paused for a human: kstatus Failed (Stalled), Argo CD Suspended; aborted: Failed and Degraded, and kubectl wait times out", async () => {
    apply(ns, "held", [{ setWeight: 10 }, { pause: {} }]);
    const paused = await settled("held", ["Paused"]);
    expectConditionsObserved(paused);
    expect(kstatus(paused).status).toBe("Failed");
    const pausedArgo = argo(paused);
    expect(pausedArgo.status).toBe("Suspended");
    expect(pausedArgo.message).toContain("promote");

    cli(["abort", "held"]);
    const rolled = await settled("held", ["RolledBack"]);
    expectConditionsObserved(rolled);
    const k = kstatus(rolled);
    expect(k.status).toBe("Failed");
    expect(argo(rolled)).toEqual({ status: "Degraded", message: k.message });
    const wait = kubectl(["wait", "--for=condition=Ready", `airollout/held`, "-n", ns, "--timeout=10s"]);
    expect(wait.code, wait.stdout + wait.stderr).not.toBe(0);
    expect(wait.stderr).toContain("timed out");
  });

  it("succeeded: kstatus Current, Argo CD Healthy, and kubectl wait --for=condition=Ready returns 0", async () => {
    apply(ns, "done", [{ setWeight: 50 }]);
    const wait = kubectl(["wait", "--for=condition=Ready", "airollout/done", "-n", ns, "--timeout=50s"]);
    expect(wait.code, wait.stdout + wait.stderr).toBe(0);
    // Ready means the candidate serves everything: the wait cannot return before Succeeded.
    const o = live("done");
    expect(o.status?.phase).toBe("Succeeded");
    expectConditionsObserved(o);
    expect(kstatus(o).status).toBe("Current");
    expect(argo(o).status).toBe("Healthy");
  });

  it("promoted in full by a human from a pause: Current and Healthy", async () => {
    apply(ns, "pushed", [{ setWeight: 10 }, { pause: {} }, { setWeight: 50 }, { pause: {} }]);
    await settled("pushed", ["Paused"]);
    cli(["promote", "pushed", "--full"]);
    const o = await settled("pushed", ["Succeeded"]);
    expect(kstatus(o).status).toBe("Current");
    expect(argo(o).status).toBe("Healthy");
  });

  it("an analysis step naming an undefined metric: kstatus Failed, Argo CD Degraded naming it", async () => {
    const analysis = { prometheus: { address: "http://127.0.0.1:9" }, metrics: [{ name: "error-ratio", query: "vector(0)", successCondition: "result < 1" }] };
    apply(ns, "invalid", [{ setWeight: 10 }, { analysis: { metrics: ["nope"] } }], analysis);
    const o = await settled("invalid", ["Degraded"]);
    expectConditionsObserved(o);
    expect(kstatus(o).status).toBe("Failed");
    const a = argo(o);
    expect(a.status).toBe("Degraded");
    expect(a.message).toContain('"nope"');
  });

  it("before any controller has seen it: kstatus InProgress, Argo CD Progressing, waiting for the controller", () => {
    // A namespace no controller watches: the object keeps the CRD's default status.
    const other = createNamespace("health-unwatched");
    apply(other, "orphan", [{ setWeight: 10 }]);
    const o = JSON.parse(kubectlOk(["get", "airollout", "orphan", "-n", other, "-o", "json"])) as Live;
    expect(o.status?.observedGeneration).toBe(0);
    expect(kstatus(o).status).toBe("InProgress");
    expect(argo(o)).toEqual({ status: "Progressing", message: "Waiting for the controller" });
  });
});

describe("image versions on a controller that stands nothing up (--environments none)", () => {
  let ns: string;
  let controller: ControllerProcess;

  beforeAll(async () => {
    ns = createNamespace("noenv");
    controller = new ControllerProcess("noenv", ["--namespace", ns, "--lease-namespace", ns, "--environments", "none"]);
    await controller.waitForLog("leadership", (l) => l.msg === "became leader");
  });

  afterAll(async () => {
    await controller?.stop();
  });

  it("is Stalled with a message saying image versions need environments, never progressing to nothing", async () => {
    const spec = { stable: { version: "v1", image: "registry.example.com/bot:v1" }, candidate: { version: "v2", image: "registry.example.com/bot:v2" }, strategy: { steps: [{ setWeight: 10 }, { setWeight: 100 }] } };
    kubectlOk(["apply", "-f", "-"], stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "images", namespace: ns }, spec }));
    type Obj = { metadata: { generation: number }; status?: { phase?: string; canaryWeight?: number; observedGeneration?: number; conditions?: { type: string; status: string; reason: string; message: string }[] } };
    const o = await waitFor("Stalled", () => {
      const x = JSON.parse(kubectlOk(["get", "airollout", "images", "-n", ns, "-o", "json"])) as Obj;
      return x.status?.conditions?.some((c) => c.type === "Stalled" && c.status === "True") ? x : undefined;
    }, 60_000, 250);
    const cond = (t: string) => o.status!.conditions!.find((c) => c.type === t)!;
    expect(cond("Stalled")).toMatchObject({ reason: "EnvironmentFailed" });
    expect(cond("Degraded")).toMatchObject({ status: "True", reason: "EnvironmentsDisabled" });
    expect(cond("Degraded").message).toContain("--environments none");
    expect(o.status!.phase).toBe("Initialized");
    expect(o.status!.canaryWeight ?? 0).toBe(0);
    expect(kstatus(o).status).toBe("Failed");
    expect(argo(o).status).toBe("Degraded");
  });
});
