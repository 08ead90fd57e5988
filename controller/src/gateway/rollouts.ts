/**
 * What the gateway knows about each AIRollout: the object as watched, compiled into everything a
 * request needs (backends, weight, rules, schemas, keys), plus state that outlives spec and status
 * updates (noise statistics, rate-limit buckets, circuit breakers, the mirror queue). Compiling
 * happens once per watch event, never per request.
 */
import type { z } from "zod";
import { ShadowSchema, SpecSchema, TrafficSchema, type AIRollout, type Spec, type Status, type VersionSpec } from "../api/schema.ts";
import { parseDuration } from "../api/duration.ts";
import { compileJsonSchema, compileMaskPatterns, compileRules, NoiseTracker, type CompiledRules, type CompiledSchema } from "../diff/index.ts";
import { CircuitBreaker, CIRCUIT_STATE_VALUE } from "./circuit.ts";
import { clampWeight, parseKeySource, type KeySource, type Role } from "./hash.ts";
import { MirrorQueue } from "./mirror.ts";
import { RateLimiter, TokenBucket } from "./ratelimit.ts";
import { compileUsage, DEFAULT_USAGE, type UsageSource } from "./payload.ts";
import { parseBackend, type Backend } from "./upstream.ts";
import type { GatewayMetrics } from "./metrics.ts";

export type Traffic = z.output<typeof TrafficSchema>;
export type Shadow = z.output<typeof ShadowSchema>;

export const DEFAULT_TRAFFIC: Traffic = TrafficSchema.parse({});
const DEFAULT_SHADOW: Shadow = ShadowSchema.parse({});

/** A version as a request target: its backend, or why it has none. */
export interface Target {
  role: Role;
  version: string;
  backend: Backend | undefined;
  /** Why there is no backend (an image version whose environment has no URL yet). */
  unavailable: string | undefined;
  breaker: CircuitBreaker | undefined;
}

/** State that survives spec and status updates of one rollout. */
export interface RolloutState {
  tracker: NoiseTracker;
  trackerIdentity: string;
  limiter: RateLimiter | undefined;
  limiterIdentity: string;
  breakers: Map<string, CircuitBreaker>;
  mirror: MirrorQueue;
  /** Field labels in use on airollout_shadow_field_mismatches_total (bounded). */
  fieldLabels: Set<string>;
  /** Mismatch samples built per second: a full buffer at once, then SAMPLES_PER_SECOND. */
  sampleBudget: TokenBucket;
}

/** Steady rate of stored mismatch samples per rollout, after a burst of maxSamples. */
export const SAMPLES_PER_SECOND = 10;

/** Everything a request to one rollout needs, compiled. */
export interface Rollout {
  key: string;
  namespace: string;
  name: string;
  /** Set when the spec cannot be used at all: requests are answered 503 with it. */
  error: string | undefined;
  spec: Spec | undefined;
  traffic: Traffic;
  shadow: Shadow;
  phase: string | undefined;
  /** status.revision: the candidate revision the shadow evidence counts for. */
  revision: string;
  weight: number;
  shadowOn: boolean;
  stable: Target;
  candidate: Target;
  /** Where mirrored copies go (the candidate's shadow build). */
  shadowTarget: Target;
  /** The second stable backend of the noise baseline. */
  noise: Backend | undefined;
  noiseProblem: string | undefined;
  sticky: KeySource | undefined;
  rateKey: KeySource | undefined;
  payloadSchema: CompiledSchema | undefined;
  /** A payloadSchema that does not compile: requests are answered 503 rather than let through unchecked. */
  payloadSchemaError: string | undefined;
  rules: CompiledRules | undefined;
  rulesError: string | undefined;
  /** Identity of spec.shadow.compare (its JSON): shadow workers compile rules once per key. */
  rulesKey: string;
  masks: RegExp[];
  /** Where backends report tokens and cost (spec.traffic.usage). */
  usage: UsageSource;
  /** Seed of the consistent hash: a new candidate draws a new cohort of sticky keys. */
  seed: string;
  timeoutMs: number;
  shadowTimeoutMs: number;
  signatureToleranceSeconds: number;
  idempotencyTtlMs: number;
  state: RolloutState;
}

/** Problems found while compiling, reported once per change (not per request). */
export interface CompileProblem {
  field: string;
  message: string;
}

function url(v: VersionSpec, env: { url?: string } | undefined, role: string): { backend?: Backend; unavailable?: string } {
  const raw = v.endpoint ?? env?.url;
  if (raw === undefined) {
    return { unavailable: `version ${v.version} (${role}) is an image version and status.environments has no URL for it yet` };
  }
  try {
    return { backend: parseBackend(raw) };
  } catch (err) {
    return { unavailable: `version ${v.version} (${role}): ${(err as Error).message}` };
  }
}

function durationMs(text: string, fallback: number): number {
  try {
    return parseDuration(text);
  } catch {
    return fallback;
  }
}

function newState(shadow: Shadow): RolloutState {
  return {
    tracker: NoiseTracker.fromShadow(shadow),
    trackerIdentity: "",
    limiter: undefined,
    limiterIdentity: "",
    breakers: new Map(),
    mirror: new MirrorQueue(shadow.maxConcurrency, shadow.queueSize),
    fieldLabels: new Set(),
    sampleBudget: new TokenBucket(SAMPLES_PER_SECOND, Math.max(1, shadow.maxSamples), Date.now()),
  };
}

function formatIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `spec.${i.path.map(String).join(".")}: ${i.message}`)
    .join("; ");
}

/**
 * Compiles a watched AIRollout. `previous` carries state across updates; state is reset where
 * its meaning changed (new candidate or rules: fresh noise statistics).
 */
export function compileRollout(obj: AIRollout, previous: Rollout | undefined, metrics: GatewayMetrics, problems: CompileProblem[] = []): Rollout {
  const namespace = obj.metadata.namespace;
  const name = obj.metadata.name;
  const key = `${namespace}/${name}`;
  const status: Status = obj.status ?? {};
  const parsed = SpecSchema.safeParse(obj.spec);
  const spec = parsed.success ? parsed.data : undefined;
  const traffic = spec?.traffic ?? DEFAULT_TRAFFIC;
  const shadow = spec?.shadow ?? DEFAULT_SHADOW;
  const state = previous?.state ?? newState(shadow);
  const labels = { rollout: name, namespace };

  const base: Rollout = {
    key,
    namespace,
    name,
    error: undefined,
    spec,
    traffic,
    shadow,
    phase: status.phase,
    revision: status.revision ?? "",
    weight: clampWeight(status.canaryWeight),
    shadowOn: status.shadowEnabled === true || status.phase === "ShadowTesting",
    stable: { role: "stable", version: "stable", backend: undefined, unavailable: "spec invalid", breaker: undefined },
    candidate: { role: "candidate", version: "candidate", backend: undefined, unavailable: "spec invalid", breaker: undefined },
    shadowTarget: { role: "candidate", version: "candidate", backend: undefined, unavailable: "spec invalid", breaker: undefined },
    noise: undefined,
    noiseProblem: undefined,
    sticky: undefined,
    rateKey: undefined,
    payloadSchema: undefined,
    payloadSchemaError: undefined,
    rules: undefined,
    rulesError: undefined,
    rulesKey: "",
    masks: [],
    usage: DEFAULT_USAGE,
    seed: key,
    timeoutMs: durationMs(traffic.timeout, 30_000),
    shadowTimeoutMs: durationMs(shadow.timeout, 10_000),
    signatureToleranceSeconds: Math.round(durationMs(traffic.signature?.tolerance ?? "5m", 300_000) / 1000),
    idempotencyTtlMs: durationMs(traffic.idempotency?.ttl ?? "24h", 86_400_000),
    state,
  };
  if (!spec) {
    base.error = `AIRollout ${key} has an invalid spec: ${parsed.success ? "" : formatIssues(parsed.error.issues)}`;
    problems.push({ field: "spec", message: base.error });
    return base;
  }

  const envs = status.environments;
  const stableUrl = url(spec.stable, envs?.stable, "stable");
  const candUrl = url(spec.candidate, envs?.canary, "candidate");
  // An endpoint candidate is its own shadow; an image candidate has a shadow environment, and
  // before that exists its canary environment serves just as well.
  const shadowUrl = spec.candidate.endpoint !== undefined ? candUrl : url(spec.candidate, envs?.shadow ?? envs?.canary, "shadow");

  const cb = traffic.circuitBreaker;
  const breakerFor = (version: string, backend: Backend | undefined): CircuitBreaker | undefined => {
    if (!cb || !backend) return undefined;
    const openDurationMs = durationMs(cb.openDuration, 30_000);
    const id = `${version}|${backend.url}`;
    let b = state.breakers.get(id);
    if (!b || b.consecutiveFailures !== cb.consecutiveFailures || b.openDurationMs !== openDurationMs) {
      const gaugeLabels = { ...labels, version };
      b = new CircuitBreaker({ consecutiveFailures: cb.consecutiveFailures, openDurationMs, onChange: (s) => metrics.circuitState.set(gaugeLabels, CIRCUIT_STATE_VALUE[s]) });
      metrics.circuitState.set(gaugeLabels, 0);
      state.breakers.set(id, b);
    }
    return b;
  };
  const target = (role: Role, v: VersionSpec, u: { backend?: Backend; unavailable?: string }): Target => ({
    role,
    version: v.version,
    backend: u.backend,
    unavailable: u.unavailable,
    breaker: breakerFor(v.version, u.backend),
  });
  base.stable = target("stable", spec.stable, stableUrl);
  base.candidate = target("candidate", spec.candidate, candUrl);
  base.shadowTarget = target("candidate", spec.candidate, shadowUrl);
  base.seed = `${key}/${spec.candidate.version}`;

  const nb = shadow.noiseBaseline;
  if (nb?.enabled) {
    if (nb.endpoint === undefined) {
      base.noiseProblem = "shadow.noiseBaseline.enabled without an endpoint: the gateway has no second stable backend to compare with";
      problems.push({ field: "spec.shadow.noiseBaseline.endpoint", message: base.noiseProblem });
    } else {
      try {
        base.noise = parseBackend(nb.endpoint);
      } catch (err) {
        base.noiseProblem = (err as Error).message;
        problems.push({ field: "spec.shadow.noiseBaseline.endpoint", message: base.noiseProblem });
      }
    }
  }

  for (const [field, value, set] of [
    ["spec.traffic.stickyBy", traffic.stickyBy, (k: KeySource) => (base.sticky = k)],
    ["spec.traffic.rateLimit.key", traffic.rateLimit?.key, (k: KeySource) => (base.rateKey = k)],
  ] as const) {
    if (value === undefined) continue;
    try {
      set(parseKeySource(value));
    } catch (err) {
      problems.push({ field, message: (err as Error).message });
    }
  }

  if (traffic.payloadSchema !== undefined) {
    try {
      base.payloadSchema = compileJsonSchema(traffic.payloadSchema);
      if (base.payloadSchema.unsupported.length > 0) problems.push({ field: "spec.traffic.payloadSchema", message: `unsupported keywords ignored: ${base.payloadSchema.unsupported.join(", ")}` });
    } catch (err) {
      base.payloadSchemaError = `spec.traffic.payloadSchema does not compile: ${(err as Error).message}`;
      problems.push({ field: "spec.traffic.payloadSchema", message: base.payloadSchemaError });
    }
  }
  if (traffic.usage) {
    try {
      base.usage = compileUsage(traffic.usage);
    } catch (err) {
      problems.push({ field: "spec.traffic.usage", message: `${(err as Error).message}; the defaults are used` });
    }
  }
  try {
    base.rules = compileRules(shadow.compare ?? {});
    base.rulesKey = JSON.stringify(shadow.compare ?? {});
  } catch (err) {
    base.rulesError = `spec.shadow.compare does not compile: ${(err as Error).message}`;
    problems.push({ field: "spec.shadow.compare", message: base.rulesError });
  }
  const masks = compileMaskPatterns(shadow.maskPatterns ?? []);
  base.masks = masks.patterns;
  for (const e of masks.errors) problems.push({ field: "spec.shadow.maskPatterns", message: e });

  const identity = JSON.stringify([status.revision, spec.stable.version, base.stable.backend?.url, spec.candidate.version, base.candidate.backend?.url, base.shadowTarget.backend?.url, shadow.minSamples, nb, shadow.compare]);
  if (identity !== state.trackerIdentity) {
    state.tracker = NoiseTracker.fromShadow(shadow);
    state.trackerIdentity = identity;
    state.fieldLabels.clear();
    state.sampleBudget = new TokenBucket(SAMPLES_PER_SECOND, Math.max(1, shadow.maxSamples), Date.now());
  }
  const rl = traffic.rateLimit;
  const limiterIdentity = rl ? `${rl.requestsPerSecond}/${rl.burst}/${rl.key}` : "";
  if (limiterIdentity !== state.limiterIdentity) {
    state.limiter = rl ? new RateLimiter(rl.requestsPerSecond, rl.burst) : undefined;
    state.limiterIdentity = limiterIdentity;
  }
  state.mirror.setLimits(shadow.maxConcurrency, shadow.queueSize);
  return base;
}
