/**
 * Every edit that changes what the candidate answers makes a new revision: real edits of a
 * referenced ConfigMap (the prompt) and Secret (an env valueFrom) through the API server, a
 * controller process watching them, and edits that must not restart anything.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AIRollout } from "../../controller/src/api/schema.ts";
import pino from "pino";
import { rolloutsPath } from "../../controller/src/api/paths.ts";
import { Informer } from "../../controller/src/kube/informer.ts";
import { ControllerProcess, client, createNamespace, kubectl, kubectlOk, waitFor } from "./helpers.ts";

const NAME = "triage-bot";
const SECRET_ONE = "s3cr3t-token-one";
const SECRET_TWO = "s3cr3t-token-two";

interface EventItem {
  reason: string;
  message: string;
}

let ns: string;
let controller: ControllerProcess;
let metricsPort: number;
/** Every phase the rollout took, in order, from a watch on the object. */
const phases: string[] = [];
let stopWatch: (() => void) | undefined;

async function getRollout(): Promise<AIRollout> {
  return client().get<AIRollout>(`${rolloutsPath(ns)}/${NAME}`);
}

async function newRevisionEvents(): Promise<EventItem[]> {
  const list = await client().get<{ items: EventItem[] }>(`/api/v1/namespaces/${ns}/events`, { fieldSelector: `involvedObject.name=${NAME},involvedObject.kind=AIRollout` });
  return list.items.filter((e) => e.reason === "NewRevision");
}

/** Reconcile passes the controller has run so far (its own counter). */
async function passes(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(/^airollout_controller_reconcile_total\{[^}]*\} (\d+)/gm)) sum += Number(m[1]);
  return sum;
}

/** Waits until the revision differs from `from` and the rollout is Paused on it again. */
async function nextRevision(from: string): Promise<AIRollout> {
  return waitFor(
    `a revision other than ${from}, paused again`,
    async () => {
      const o = await getRollout();
      return o.status?.revision !== from && o.status?.phase === "Paused" ? o : undefined;
    },
    90_000,
  );
}

beforeAll(async () => {
  ns = createNamespace("rev");
  kubectlOk(["create", "configmap", "prompts", "-n", ns, "--from-literal=triage.txt=Classify the ticket. Answer JSON.", "--from-literal=other.txt=unused"]);
  kubectlOk(["create", "configmap", "unrelated", "-n", ns, "--from-literal=triage.txt=not ours"]);
  kubectlOk(["create", "secret", "generic", "llm", "-n", ns, `--from-literal=token=${SECRET_ONE}`]);
  controller = new ControllerProcess("revisions", ["--namespace", ns, "--lease-namespace", ns, "--environments", "none"]);
  const started = await controller.waitForLog("start", (l) => l.msg === "controller started", 60_000);
  metricsPort = started.port as number;
  await controller.waitForLog("leadership", (l) => l.msg === "became leader", 60_000);

  // The project's informer, not a bare watch: it resumes a watch that closes while the
  // rollout sits paused, from the last version seen, so no phase is missed.
  const record = (o: AIRollout) => {
    const phase = o.metadata.name === NAME ? o.status?.phase : undefined;
    if (phase && phases.at(-1) !== phase) phases.push(phase);
  };
  const informer = new Informer<AIRollout>(client(), rolloutsPath(ns), { onUpsert: record, onDelete: () => {} }, pino({ level: "silent" }));
  informer.start();
  stopWatch = () => void informer.stop();
});

afterAll(async () => {
  stopWatch?.();
  await controller?.stop("SIGKILL");
});

describe("revisions follow referenced ConfigMaps and Secrets", () => {
  let first: AIRollout;

  it("rolls out a candidate whose prompt and token come from a ConfigMap and a Secret, up to its pause", async () => {
    const manifest = {
      apiVersion: "airollout.dev/v1alpha1",
      kind: "AIRollout",
      metadata: { name: NAME, namespace: ns },
      spec: {
        stable: { version: "v1", endpoint: "http://127.0.0.1:9/stable", config: { model: "small" } },
        candidate: {
          version: "v2",
          endpoint: "http://127.0.0.1:9/candidate",
          config: { model: "large", promptRef: { configMap: "prompts", key: "triage.txt" } },
          env: [{ name: "LLM_TOKEN", valueFrom: { secretKeyRef: { name: "llm", key: "token" } } }],
        },
        strategy: { steps: [{ setWeight: 10 }, { pause: {} }] },
      },
    };
    kubectlOk(["apply", "-f", "-"], stringify(manifest));
    first = await waitFor(
      "Paused at the pause step",
      async () => {
        const o = await getRollout();
        return o.status?.phase === "Paused" ? o : undefined;
      },
      90_000,
    );
    expect(first.status).toMatchObject({ currentStep: 1, canaryWeight: 10 });
    expect(first.status!.revision).toMatch(/^[0-9a-f]{16}$/);
    expect(first.status!.revisionInputs).toMatchObject({
      "spec.candidate.config.promptRef": expect.stringMatching(/^[0-9a-f]{16}$/),
      "spec.candidate.env[0].valueFrom.secretKeyRef": expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(await newRevisionEvents()).toEqual([]);
  });

  it("the API server rejects an env entry with both value and valueFrom, or with two sources", () => {
    const bad = (env: unknown[]) =>
      stringify({ apiVersion: "airollout.dev/v1alpha1", kind: "AIRollout", metadata: { name: "bad-env", namespace: ns }, spec: { stable: { version: "v1", endpoint: "http://127.0.0.1:9/s" }, candidate: { version: "v2", endpoint: "http://127.0.0.1:9/c", env }, strategy: { steps: [{ setWeight: 10 }] } } });
    const both = kubectl(["apply", "-f", "-"], bad([{ name: "A", value: "x", valueFrom: { secretKeyRef: { name: "llm", key: "token" } } }]));
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain("exactly one of value and valueFrom must be set");
    const two = kubectl(["apply", "-f", "-"], bad([{ name: "A", valueFrom: { secretKeyRef: { name: "llm", key: "token" }, configMapKeyRef: { name: "prompts", key: "triage.txt" } } }]));
    expect(two.code).not.toBe(0);
    expect(two.stderr).toContain("exactly one of secretKeyRef and configMapKeyRef must be set");
  });

  it("an edit of the prompt's key starts a new revision, back through Initialized, and the Event names the ConfigMap", async () => {
    const seen = phases.length;
    kubectlOk(["patch", "configmap", "prompts", "-n", ns, "--type=merge", "-p", JSON.stringify({ data: { "triage.txt": "Classify the ticket; be brief. Answer JSON." } })]);
    const second = await nextRevision(first.status!.revision!);
    expect(phases.slice(seen)).toContain("Initialized");
    expect(second.status!.revisionInputs!["spec.candidate.config.promptRef"]).not.toBe(first.status!.revisionInputs!["spec.candidate.config.promptRef"]);
    expect(second.status!.revisionInputs!["spec.candidate.env[0].valueFrom.secretKeyRef"]).toBe(first.status!.revisionInputs!["spec.candidate.env[0].valueFrom.secretKeyRef"]);
    const events = await waitFor("a NewRevision Event", async () => {
      const evs = await newRevisionEvents();
      return evs.length === 1 ? evs : undefined;
    });
    expect(events[0]!.message).toContain(`New candidate revision ${second.status!.revision}`);
    expect(events[0]!.message).toContain("ConfigMap prompts key triage.txt (spec.candidate.config.promptRef) changed");
    expect(events[0]!.message).not.toContain("secretKeyRef");
    first = second;
  });

  it("an edit of the Secret starts a new revision too, and its value shows up nowhere", async () => {
    const seen = phases.length;
    kubectlOk(["patch", "secret", "llm", "-n", ns, "--type=merge", "-p", JSON.stringify({ stringData: { token: SECRET_TWO } })]);
    const third = await nextRevision(first.status!.revision!);
    expect(phases.slice(seen)).toContain("Initialized");
    const events = await waitFor("a second NewRevision Event", async () => {
      const evs = await newRevisionEvents();
      return evs.length === 2 ? evs : undefined;
    });
    const latest = events.find((e) => e.message.includes(third.status!.revision!))!;
    expect(latest.message).toContain("Secret llm key token (spec.candidate.env[0].valueFrom.secretKeyRef) changed");
    expect(latest.message).not.toContain("promptRef");
    // Digests only: neither value (nor its base64) in status, Events or the controller's log.
    const everything = JSON.stringify([third, events, controller.lines]);
    for (const secret of [SECRET_ONE, SECRET_TWO]) {
      expect(everything).not.toContain(secret);
      expect(everything).not.toContain(Buffer.from(secret).toString("base64"));
    }
    first = third;
  });

  it("edits of another key of the prompt's ConfigMap, or of another ConfigMap, start no new revision", async () => {
    const before = await passes();
    kubectlOk(["patch", "configmap", "unrelated", "-n", ns, "--type=merge", "-p", JSON.stringify({ data: { "triage.txt": "still not ours" } })]);
    kubectlOk(["patch", "configmap", "prompts", "-n", ns, "--type=merge", "-p", JSON.stringify({ data: { "other.txt": "still unused" } })]);
    // The edit of prompts enqueues the rollout (it refers to prompts); ConfigMap events arrive in
    // order, so the pass that follows has seen both edits.
    await waitFor("a reconcile pass after the edits", async () => (await passes()) > before, 60_000);
    const after = await getRollout();
    expect(after.status!.revision).toBe(first.status!.revision);
    expect(after.status!.phase).toBe("Paused");
    expect(await newRevisionEvents()).toHaveLength(2);
  });
});
