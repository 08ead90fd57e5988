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

/**
 * Builds EnvironmentArgs from configuration keys (all in the project's namespace):
 * image (required), version (default: the stack name), rollout (default: the stack name),
 * role (default "preview"), namespace (default "default"), port, replicas, model, prompt,
 * promptConfigMap + promptKey, temperature, maxTokens, extra.<key>, env.<NAME>, resources,
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
  const env = stringMap(cfg, "env");
  const resources = cfg.getObject<Record<string, unknown>>("resources");
  const version: EnvironmentVersion = {
    version: cfg.get("version") ?? stack,
    image,
    port: num(cfg, "port") ?? 8080,
    replicas: num(cfg, "replicas") ?? 1,
    ...(env ? { env: Object.entries(env).map(([name, value]) => ({ name, value })) } : {}),
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
