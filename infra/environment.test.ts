/**
 * The environment program under Pulumi's mocks: which resources it registers, their names,
 * labels and wiring, and its outputs. No engine, no cluster.
 */
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { argsFromConfig, type ConfigSource } from "./config.ts";
import {
  CONFIG_HASH_ANNOTATION,
  FIELD_MANAGER,
  FIELD_MANAGER_ANNOTATION,
  LABELS,
  configData,
  environment,
  environmentProblems,
  extraConfigVariable,
  imageReferenceProblem,
  labelValue,
  resourceName,
  type EnvironmentArgs,
  type EnvironmentOutputs,
} from "./environment.ts";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

let registered: Registered[] = [];

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    "airollout-env",
    "unit",
    false,
  );
});

beforeEach(() => {
  registered = [];
});

function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

async function settle(out: EnvironmentOutputs): Promise<Record<keyof EnvironmentOutputs, string>> {
  const [serviceName, url, namespace, deploymentName, configMapName] = await Promise.all([
    value(out.serviceName),
    value(out.url),
    value(out.namespace),
    value(out.deploymentName),
    value(out.configMapName),
  ]);
  return { serviceName, url, namespace, deploymentName, configMapName };
}

function one(type: string, rollout: string): Registered {
  const found = registered.filter((r) => r.type === type && r.inputs.metadata?.labels?.[LABELS.rollout] === rollout);
  expect(found, `${type} of ${rollout}`).toHaveLength(1);
  return found[0]!;
}

const base = (rollout: string, over: Partial<EnvironmentArgs> = {}): EnvironmentArgs => ({
  rollout,
  namespace: "team-a",
  role: "canary",
  version: {
    version: "v2",
    image: "registry.local:5000/triage:v2",
    port: 9000,
    replicas: 2,
    env: [{ name: "LOG_LEVEL", value: "debug" }],
    config: { model: "gpt-small", prompt: "Classify: {{body}}", temperature: 0.2, maxTokens: 512, extra: { top_p: "0.9", "retrieval.index": "tickets-v3" } },
  },
  ...over,
});

describe("environment()", () => {
  it("registers a ConfigMap, a Deployment and a Service named <rollout>-<role>, and outputs the in-cluster URL", async () => {
    const out = await settle(environment(base("triage")));
    expect(out).toEqual({
      serviceName: "triage-canary",
      url: "http://triage-canary.team-a.svc.cluster.local:9000",
      namespace: "team-a",
      deploymentName: "triage-canary",
      configMapName: expect.stringMatching(/^triage-canary-config-[0-9a-f]{8}$/),
    });
    expect(registered.map((r) => r.type).sort()).toEqual([
      "airollout:index:Environment",
      "kubernetes:apps/v1:Deployment",
      "kubernetes:core/v1:ConfigMap",
      "kubernetes:core/v1:Service",
    ]);
    for (const type of ["kubernetes:apps/v1:Deployment", "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Service"]) {
      const r = one(type, "triage");
      expect(r.inputs.metadata.namespace).toBe("team-a");
      expect(r.inputs.metadata.labels).toEqual({ [LABELS.rollout]: "triage", [LABELS.version]: "v2", [LABELS.role]: "canary" });
    }
  });

  it("puts the model/prompt configuration in the ConfigMap as AIROLLOUT_* variables and the pod reads them", async () => {
    await settle(environment(base("cfg")));
    const cm = one("kubernetes:core/v1:ConfigMap", "cfg");
    expect(cm.inputs.data).toEqual({
      AIROLLOUT_MODEL: "gpt-small",
      AIROLLOUT_PROMPT: "Classify: {{body}}",
      AIROLLOUT_TEMPERATURE: "0.2",
      AIROLLOUT_MAX_TOKENS: "512",
      AIROLLOUT_CONFIG_TOP_P: "0.9",
      AIROLLOUT_CONFIG_RETRIEVAL_INDEX: "tickets-v3",
    });
    const container = one("kubernetes:apps/v1:Deployment", "cfg").inputs.spec.template.spec.containers[0];
    expect(container.envFrom).toEqual([{ configMapRef: { name: cm.inputs.metadata.name } }]);
    expect(cm.inputs.metadata.name).toMatch(/^cfg-canary-config-[0-9a-f]{8}$/);
    expect(container.env).toEqual([
      { name: "AIROLLOUT_ROLLOUT", value: "cfg" },
      { name: "AIROLLOUT_ROLE", value: "canary" },
      { name: "AIROLLOUT_VERSION", value: "v2" },
      { name: "LOG_LEVEL", value: "debug" },
    ]);
  });

  it("references a prompt kept in a ConfigMap instead of copying it", async () => {
    const args = base("pref");
    args.version.config = { model: "m", promptRef: { configMap: "prompts", key: "triage" } };
    await settle(environment(args));
    expect(one("kubernetes:core/v1:ConfigMap", "pref").inputs.data).toEqual({ AIROLLOUT_MODEL: "m" });
    const env = one("kubernetes:apps/v1:Deployment", "pref").inputs.spec.template.spec.containers[0].env;
    expect(env).toContainEqual({ name: "AIROLLOUT_PROMPT", valueFrom: { configMapKeyRef: { name: "prompts", key: "triage" } } });
  });

  it("passes env valueFrom to the container as Secret and ConfigMap references, never copying a value", async () => {
    const args = base("vfrom");
    args.version.env = [
      { name: "LOG_LEVEL", value: "debug" },
      { name: "TOKEN", valueFrom: { secretKeyRef: { name: "llm", key: "token" } } },
      { name: "INDEX", valueFrom: { configMapKeyRef: { name: "retrieval", key: "index" } } },
    ];
    await settle(environment(args));
    const env = one("kubernetes:apps/v1:Deployment", "vfrom").inputs.spec.template.spec.containers[0].env;
    expect(env.slice(3)).toEqual([
      { name: "LOG_LEVEL", value: "debug" },
      { name: "TOKEN", valueFrom: { secretKeyRef: { name: "llm", key: "token" } } },
      { name: "INDEX", valueFrom: { configMapKeyRef: { name: "retrieval", key: "index" } } },
    ]);
    expect(Object.keys(one("kubernetes:core/v1:ConfigMap", "vfrom").inputs.data)).not.toContain("TOKEN");
  });

  it("rejects env entries with both or neither of value and valueFrom, or a reference without a name", () => {
    const problems = environmentProblems({
      ...base("badenv"),
      version: {
        version: "v2",
        image: "r/t:2",
        env: [
          { name: "BOTH", value: "x", valueFrom: { secretKeyRef: { name: "s", key: "k" } } },
          { name: "NEITHER" },
          { name: "TWO", valueFrom: { secretKeyRef: { name: "s", key: "k" }, configMapKeyRef: { name: "c", key: "k" } } },
          { name: "NONAME", valueFrom: { configMapKeyRef: { name: "", key: "k" } } },
        ],
      },
    });
    expect(problems).toEqual([
      "env BOTH: exactly one of value and valueFrom must be set",
      "env NEITHER: exactly one of value and valueFrom must be set",
      "env TWO: valueFrom needs exactly one of secretKeyRef and configMapKeyRef",
      'env NONAME: valueFrom name "" is not a valid object name',
    ]);
  });

  it("runs the image with its port, replicas, resources and probes; selects by rollout and role only", async () => {
    await settle(environment(base("dep")));
    const spec = one("kubernetes:apps/v1:Deployment", "dep").inputs.spec;
    expect(spec.replicas).toBe(2);
    expect(spec.selector).toEqual({ matchLabels: { [LABELS.rollout]: "dep", [LABELS.role]: "canary" } });
    expect(spec.template.metadata.labels[LABELS.version]).toBe("v2");
    const c = spec.template.spec.containers[0];
    expect(c.image).toBe("registry.local:5000/triage:v2");
    expect(c.ports).toEqual([{ name: "http", containerPort: 9000 }]);
    expect(c.resources).toEqual({ requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "512Mi" } });
    expect(c.readinessProbe).toMatchObject({ tcpSocket: { port: "http" }, periodSeconds: 5 });
    expect(c.livenessProbe).toMatchObject({ tcpSocket: { port: "http" }, initialDelaySeconds: 10 });
    const svc = one("kubernetes:core/v1:Service", "dep").inputs.spec;
    expect(svc).toEqual({ type: "ClusterIP", selector: spec.selector.matchLabels, ports: [{ name: "http", port: 9000, targetPort: "http", protocol: "TCP" }] });
  });

  it("uses given resources and an HTTP health path", async () => {
    const args = base("res", { healthPath: "/healthz" });
    args.version.resources = { requests: { cpu: "1" }, limits: { cpu: "2", memory: "1Gi" } };
    await settle(environment(args));
    const c = one("kubernetes:apps/v1:Deployment", "res").inputs.spec.template.spec.containers[0];
    expect(c.resources).toEqual({ requests: { cpu: "1" }, limits: { cpu: "2", memory: "1Gi" } });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
  });

  it("waits for readiness by default and skips the wait when waitForReady is false", async () => {
    const owner = { [FIELD_MANAGER_ANNOTATION]: FIELD_MANAGER };
    await settle(environment(base("wait", { timeoutSeconds: 120 })));
    expect(one("kubernetes:apps/v1:Deployment", "wait").inputs.metadata.annotations).toEqual({ ...owner, "pulumi.com/timeoutSeconds": "120" });
    await settle(environment(base("nowait", { waitForReady: false })));
    expect(one("kubernetes:apps/v1:Deployment", "nowait").inputs.metadata.annotations).toEqual({ ...owner, "pulumi.com/skipAwait": "true" });
    expect(one("kubernetes:core/v1:Service", "nowait").inputs.metadata.annotations).toEqual({ ...owner, "pulumi.com/skipAwait": "true" });
    // A fixed server-side apply field manager on every object, so a killed create can be retried.
    expect(one("kubernetes:core/v1:ConfigMap", "nowait").inputs.metadata.annotations).toEqual(owner);
  });

  it("names the ConfigMap after its content and rolls the pods when the configuration changes", async () => {
    await settle(environment(base("h1")));
    const a = base("h2");
    a.version.config = { ...a.version.config, temperature: 0.7 };
    await settle(environment(a));
    const hash = (r: string) => one("kubernetes:apps/v1:Deployment", r).inputs.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION];
    const cmName = (r: string) => one("kubernetes:core/v1:ConfigMap", r).inputs.metadata.name as string;
    expect(hash("h1")).toMatch(/^[0-9a-f]{16}$/);
    expect(hash("h1")).not.toBe(hash("h2"));
    expect(cmName("h1").slice(-8)).toBe(hash("h1").slice(0, 8));
    expect(cmName("h2").slice(-8)).toBe(hash("h2").slice(0, 8));
  });

  it("names preview environments after their id and keeps long names within 63 characters", async () => {
    const out = await settle(environment(base("a-very-long-rollout-name-that-goes-on-and-on-and-on", { role: "preview-pr-12345" })));
    expect(out.serviceName.length).toBeLessThanOrEqual(63);
    expect(out.serviceName).toMatch(/^a-very-long-rollout-name-that-goes-on-and-on-and-on-pr-[0-9a-f]{8}$/);
  });

  it("rejects an invalid image reference before registering anything", () => {
    const args = base("bad");
    args.version.image = "Registry/Triage:v 2";
    expect(() => environment(args)).toThrow(/image "Registry\/Triage:v 2" is not an image reference/);
    expect(registered).toEqual([]);
  });

  it("rejects a version without an image, and config.extra keys that collide", () => {
    const noImage = base("noimg");
    delete noImage.version.image;
    expect(() => environment(noImage)).toThrow(/has no image/);
    expect(() => configData({ version: "v1", config: { extra: { "top-p": "1", top_p: "2" } } })).toThrow(/both become AIROLLOUT_CONFIG_TOP_P/);
  });
});

describe("helpers", () => {
  it.each([
    ["nginx", undefined],
    ["registry/triage:v2", undefined],
    ["registry.example.com:5000/team/triage:v2.1_rc-1", undefined],
    ["localhost/triage@sha256:" + "a".repeat(64), undefined],
    ["ghcr.io/org/triage:v2@sha256:" + "0".repeat(64), undefined],
    ["", "must not be empty"],
    [" nginx", "must not be empty"],
    ["Triage", "is not an image reference"],
    ["triage:v 2", "is not an image reference"],
    ["triage:", "is not an image reference"],
    ["triage@sha256:abc", "is not an image reference"],
  ])("imageReferenceProblem(%j)", (image, problem) => {
    const p = imageReferenceProblem(image);
    if (problem === undefined) expect(p).toBeUndefined();
    else expect(p).toContain(problem);
  });

  it("derives names, label values and variable names", () => {
    expect(resourceName("Triage_Bot", "canary")).toBe("triage-bot-canary");
    expect(resourceName("1st", "shadow")).toBe("st-shadow");
    expect(resourceName("x".repeat(80), "canary")).toHaveLength(63);
    expect(labelValue("v2")).toBe("v2");
    expect(labelValue("y".repeat(70))).toHaveLength(63);
    expect(extraConfigVariable("retrieval.index")).toBe("AIROLLOUT_CONFIG_RETRIEVAL_INDEX");
  });
});

describe("argsFromConfig (stacks run by hand)", () => {
  const source = (values: Record<string, unknown>): ConfigSource => ({
    get: (k) => (values[k] === undefined ? undefined : typeof values[k] === "string" ? (values[k] as string) : JSON.stringify(values[k])),
    getObject: <T>(k: string) => (values[k] === undefined ? undefined : typeof values[k] === "string" ? (JSON.parse(values[k] as string) as T) : (values[k] as T)),
  });

  it("defaults a preview environment from the stack name", () => {
    expect(argsFromConfig(source({ image: "registry/triage:pr-123" }), "pr-123")).toEqual({
      rollout: "pr-123",
      role: "preview",
      namespace: "default",
      version: { version: "pr-123", image: "registry/triage:pr-123", port: 8080, replicas: 1, config: {} },
    });
  });

  it("reads the model configuration, extra settings, env and readiness settings", () => {
    const args = argsFromConfig(
      source({ image: "r/t:1", version: "v9", rollout: "triage", role: "shadow", namespace: "ns", model: "m", temperature: "0.5", maxTokens: "64", extra: { top_p: 0.9 }, env: { A: "b" }, waitForReady: "false", promptConfigMap: "prompts" }),
      "dev",
    );
    expect(args).toMatchObject({ rollout: "triage", role: "shadow", namespace: "ns", waitForReady: false });
    expect(args.version).toEqual({
      version: "v9",
      image: "r/t:1",
      port: 8080,
      replicas: 1,
      env: [{ name: "A", value: "b" }],
      config: { model: "m", temperature: 0.5, maxTokens: 64, extra: { top_p: "0.9" }, promptRef: { configMap: "prompts", key: "prompt" } },
    });
  });

  it("reads env references: env.<NAME>.secretKeyRef / configMapKeyRef", () => {
    const args = argsFromConfig(source({ image: "r/t:1", env: { A: "b", TOKEN: { secretKeyRef: { name: "llm", key: "token" } }, IDX: { configMapKeyRef: { name: "retrieval", key: "index" } } } }), "dev");
    expect(args.version.env).toEqual([
      { name: "A", value: "b" },
      { name: "TOKEN", valueFrom: { secretKeyRef: { name: "llm", key: "token" } } },
      { name: "IDX", valueFrom: { configMapKeyRef: { name: "retrieval", key: "index" } } },
    ]);
    expect(() => argsFromConfig(source({ image: "r/t:1", env: { T: { secretKeyRef: { name: "llm" } } } }), "dev")).toThrow(/config env\.T: expected a value, or exactly one of secretKeyRef and configMapKeyRef with name and key/);
  });

  it("says what to set when image is missing or a number is not one", () => {
    expect(() => argsFromConfig(source({}), "s")).toThrow(/config image is required: pulumi config set image/);
    expect(() => argsFromConfig(source({ image: "r/t:1", temperature: "hot" }), "s")).toThrow(/config temperature: "hot" is not a number/);
  });
});

describe("index.ts (the program `pulumi up` runs)", () => {
  it("reads stack config and exports serviceName, url and namespace", async () => {
    pulumi.runtime.setAllConfig({ "airollout-env:image": "registry/triage:pr-7", "airollout-env:namespace": "previews", "airollout-env:model": "gpt-small" });
    const program = (await import("./index.ts")) as { serviceName: pulumi.Output<string>; url: pulumi.Output<string>; namespace: pulumi.Output<string> };
    expect(await value(program.serviceName)).toBe("unit-preview");
    expect(await value(program.url)).toBe("http://unit-preview.previews.svc.cluster.local:8080");
    expect(await value(program.namespace)).toBe("previews");
    expect(one("kubernetes:core/v1:ConfigMap", "unit").inputs.data).toEqual({ AIROLLOUT_MODEL: "gpt-small" });
  });
});
