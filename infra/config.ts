/**
 * Reads the environment's arguments from stack configuration, for stacks run by hand with
 * `pulumi config set ... && pulumi up` (the controller passes the same arguments in-process).
 */
import * as pulumi from "@pulumi/pulumi";
import type { EnvironmentArgs, EnvironmentVersion } from "./environment.ts";

/** The subset of pulumi.Config this module reads; tests pass a plain object. */
export interface ConfigSource {
  get(key: string): string | undefined;
  getObject<T>(key: string): T | undefined;
}

function num(cfg: ConfigSource, key: string): number | undefined {
  const raw = cfg.get(key);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n)) throw new pulumi.RunError(`config ${key}: "${raw}" is not a number (pulumi config set ${key} <number>)`);
  return n;
}

function bool(cfg: ConfigSource, key: string): boolean | undefined {
  const raw = cfg.get(key);
  if (raw === undefined) return undefined;
  if (raw === "true" || raw === "false") return raw === "true";
  throw new pulumi.RunError(`config ${key}: "${raw}" is not true or false`);
}

function stringMap(cfg: ConfigSource, key: string): Record<string, string> | undefined {
  const raw = cfg.getObject<unknown>(key);
  if (raw === undefined) return undefined;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new pulumi.RunError(`config ${key}: expected an object of names to values (pulumi config set --path '${key}.NAME' VALUE)`);
  }
  return Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
}

type EnvEntry = NonNullable<EnvironmentVersion["env"]>[number];

/**
 * env.<NAME>: a value (`pulumi config set --path 'env.LOG_LEVEL' debug`), or a reference
 * (`pulumi config set --path 'env.TOKEN.secretKeyRef.name' llm` and `...key token`).
 */
function envEntries(cfg: ConfigSource, key: string): EnvEntry[] | undefined {
  const raw = cfg.getObject<unknown>(key);
  if (raw === undefined) return undefined;
  const usage = `(pulumi config set --path '${key}.NAME' VALUE, or '${key}.NAME.secretKeyRef.name' and '.key')`;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new pulumi.RunError(`config ${key}: expected an object of names to values ${usage}`);
  return Object.entries(raw as Record<string, unknown>).map(([name, v]): EnvEntry => {
    if (v === null || typeof v !== "object") return { name, value: String(v) };
    const o = v as Record<string, { name?: unknown; key?: unknown } | undefined>;
    const kinds = (["secretKeyRef", "configMapKeyRef"] as const).filter((k) => o[k] !== undefined);
    const ref = kinds.length === 1 ? o[kinds[0]!] : undefined;
    if (Object.keys(o).length !== 1 || !ref || typeof ref.name !== "string" || typeof ref.key !== "string") {
      throw new pulumi.RunError(`config ${key}.${name}: expected a value, or exactly one of secretKeyRef and configMapKeyRef with name and key ${usage}`);
    }
    return { name, valueFrom: { [kinds[0]!]: { name: ref.name, key: ref.key } } };
  });
}

/**
 * Builds EnvironmentArgs from configuration keys (all in the project's namespace):
 * image (required), version (default: the stack name), rollout (default: the stack name),
 * role (default "preview"), namespace (default "default"), port, replicas, model, prompt,
 * promptConfigMap + promptKey, temperature, maxTokens, extra.<key>, env.<NAME> (a value, or
 * {secretKeyRef: {name, key}} or {configMapKeyRef: {name, key}}), resources,
 * waitForReady, timeoutSeconds, healthPath.
 */
export function argsFromConfig(cfg: ConfigSource, stack: string): EnvironmentArgs {
  const image = cfg.get("image");
  if (!image) throw new pulumi.RunError("config image is required: pulumi config set image <registry/repository:tag>");
  const promptConfigMap = cfg.get("promptConfigMap");
  const temperature = num(cfg, "temperature");
  const maxTokens = num(cfg, "maxTokens");
  const model = cfg.get("model");
  const prompt = cfg.get("prompt");
  const extra = stringMap(cfg, "extra");
  const config: NonNullable<EnvironmentVersion["config"]> = {
    ...(model !== undefined ? { model } : {}),
    ...(prompt !== undefined ? { prompt } : {}),
    ...(promptConfigMap !== undefined ? { promptRef: { configMap: promptConfigMap, key: cfg.get("promptKey") ?? "prompt" } } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(extra !== undefined ? { extra } : {}),
  };
  const env = envEntries(cfg, "env");
  const resources = cfg.getObject<Record<string, unknown>>("resources");
  const version: EnvironmentVersion = {
    version: cfg.get("version") ?? stack,
    image,
    port: num(cfg, "port") ?? 8080,
    replicas: num(cfg, "replicas") ?? 1,
    ...(env ? { env } : {}),
    ...(resources ? { resources } : {}),
    config,
  };
  const waitForReady = bool(cfg, "waitForReady");
  const timeoutSeconds = num(cfg, "timeoutSeconds");
  const healthPath = cfg.get("healthPath");
  return {
    // Resources are named <rollout>-<role>: a stack pr-123 run by hand gives pr-123-preview.
    rollout: cfg.get("rollout") ?? stack,
    role: cfg.get("role") ?? "preview",
    namespace: cfg.get("namespace") ?? "default",
    version,
    ...(waitForReady !== undefined ? { waitForReady } : {}),
    ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
    ...(healthPath !== undefined ? { healthPath } : {}),
  };
}
