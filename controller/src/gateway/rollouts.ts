/**
 * What the gateway knows about each AIRollout: the object as watched, compiled into everything a
 * request needs (backends, weight, rules, schemas, keys), plus state that outlives spec and status
 * updates (noise statistics, rate-limit buckets, circuit breakers, the mirror queue). Compiling
 * happens once per watch event, never per request.
 */
import type { z } from "zod";
import { ShadowSchema, SpecSchema, TrafficSchema, type AIRollout, type Spec, type Status, type VersionSpec } from "../api/schema.ts";
import { parseDuration } from "../api/duration.ts";
import { effectiveStable, stableRecordProblem } from "../api/stable.ts";
import { createHash } from "node:crypto";
import { compileJsonSchema, compileMaskPatterns, compileRules, type CompiledRules, type CompiledSchema } from "../diff/index.ts";
import { CircuitBreaker, CIRCUIT_STATE_VALUE } from "./circuit.ts";
import { clampWeight, parseKeySource, type KeySource, type Role } from "./hash.ts";
import { judgeSignals, type JudgeSignals } from "./judge-samples.ts";
import { RateLimiter } from "./ratelimit.ts";
import { RolloutState } from "./rollout-state.ts";
import { compileUsage, DEFAULT_USAGE, type UsageSource } from "./payload.ts";
import { parseBackend, type Backend } from "./upstream.ts";
import { checkEndpoint, type EgressPolicy } from "../api/egress.ts";
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

/** Everything a request to one rollout needs, compiled. */
export interface Rollout {
  key: string;
  namespace: string;
  name: string;
  /** Set when the spec cannot be used at all: requests are answered 503 with it. */
  error: string | undefined;
  /** The error is an egress refusal: requests are answered 503 egress_denied rather than spec_invalid. */
  egressDenied: boolean;
  /**
   * What the spec's judge metrics ask the gateway to sample (spec.analysis.metrics[].judge), or
   * none. The rest of the spec is not kept: what requests need is compiled into the fields here.
   */
  judge: JudgeSignals | undefined;
  /** spec.traffic, defaults applied; shared between rollouts whose traffic sections are equal (read-only). */
  traffic: Traffic;
  /** spec.shadow, defaults applied; shared like traffic (read-only). */
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

function url(v: VersionSpec | undefined, env: { url?: string } | undefined, role: string, missing = "no version"): { backend?: Backend; unavailable?: string } {
  if (v === undefined) return { unavailable: missing };
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

function formatIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `spec.${i.path.map(String).join(".")}: ${i.message}`)
    .join("; ");
}

/** What the compile steps share: the watched object's parts, the rollout being built, the problems found. */
interface Builder {
  /** The rollout being built: it starts with the defaults an invalid spec leaves, each step fills its part. */
  out: Rollout;
  /** The parsed, valid spec (the steps run only for one). */
  spec: Spec;
  /** status as watched (environments' URLs, revision). */
  status: Status;
  /** State carried over from the previous compile (or new); refreshState resets what lost its meaning. */
  state: RolloutState;
  /** For the circuit breakers' state gauge. */
  metrics: GatewayMetrics;
  /** Problems found, in step order; reported once per change by the caller. */
  problems: CompileProblem[];
  /** The cluster admin's egress policy; none: no check. */
  egress: EgressPolicy | undefined;
}

/**
 * Compiles a watched AIRollout. `previous` carries state across updates; state is reset where
 * its meaning changed (new candidate or rules: fresh noise statistics).
 */
export function compileRollout(obj: AIRollout, previous: Rollout | undefined, metrics: GatewayMetrics, problems: CompileProblem[] = [], egress?: EgressPolicy): Rollout {
  const parsed = SpecSchema.safeParse(obj.spec);
  const out = defaults(obj, parsed.success ? parsed.data : undefined, previous);
  if (!parsed.success) {
    out.error = `AIRollout ${out.key} has an invalid spec: ${formatIssues(parsed.error.issues)}`;
    problems.push({ field: "spec", message: out.error });
    return out;
  }
  const b: Builder = { out, spec: parsed.data, status: obj.status ?? {}, state: out.state, metrics, problems, egress };
  compileTargets(b);
  compileNoiseBaseline(b);
  compileEgress(b);
  compileTrafficGuardrails(b);
  compileShadowRules(b);
  refreshState(b);
  return out;
}

/** The rollout as far as it does not depend on a valid spec: identity, status, durations, state. */
function defaults(obj: AIRollout, spec: Spec | undefined, previous: Rollout | undefined): Rollout {
  const namespace = obj.metadata.namespace;
  const name = obj.metadata.name;
  const key = `${namespace}/${name}`;
  const status: Status = obj.status ?? {};
  const traffic = spec?.traffic ? shared(TRAFFIC, spec.traffic) : DEFAULT_TRAFFIC;
  const shadow = spec?.shadow ? shared(SHADOW, spec.shadow) : DEFAULT_SHADOW;
  return {
    key,
    namespace,
    name,
    error: undefined,
    egressDenied: false,
    judge: judgeSignals(spec),
    traffic,
    shadow,
    phase: status.phase,
    revision: status.revision ?? "",
    weight: servingWeight(status),
    shadowOn: status.shadowEnabled === true || status.phase === "ShadowTesting",
    stable: invalidTarget("stable"),
    candidate: invalidTarget("candidate"),
    shadowTarget: invalidTarget("candidate"),
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
    state: previous?.state ?? new RolloutState(shadow),
  };
}

/**
 * The candidate's share. Once Succeeded with status.stable written, the promoted version is the
 * stable and takes every request: a spec edit naming the next candidate, seen before the
 * controller initialised it, then sends it nothing (with weight 100 it would send it everything).
 */
function servingWeight(status: Status): number {
  if (status.phase === "Succeeded" && status.stable !== undefined) return 0;
  return clampWeight(status.canaryWeight);
}

/** A target of a rollout whose spec is invalid: no backend (requests are answered 503 spec_invalid before a split). */
function invalidTarget(role: Role): Target {
  return { role, version: role, backend: undefined, unavailable: "spec invalid", breaker: undefined };
}

/**
 * Targets: the stable, the candidate and the shadow copies' backend, each with its circuit
 * breaker; and the split seed (a new candidate draws a new cohort of sticky keys).
 */
function compileTargets(b: Builder): void {
  const { spec, out } = b;
  const envs = b.status.environments;
  const candUrl = url(spec.candidate, envs?.canary, "candidate");
  // An endpoint candidate is its own shadow; an image candidate has a shadow environment, and
  // before that exists its canary environment serves just as well.
  const shadowUrl = spec.candidate.endpoint !== undefined ? candUrl : url(spec.candidate, envs?.shadow ?? envs?.canary, "shadow");
  const stable = stableVersion(b);
  out.stable = target(b, "stable", stable.version, url(stable.version, envs?.stable, "stable", stable.missing));
  out.candidate = target(b, "candidate", spec.candidate, candUrl);
  out.shadowTarget = target(b, "candidate", spec.candidate, shadowUrl);
  out.seed = `${out.key}/${spec.candidate.version}`;
}

function target(b: Builder, role: Role, v: VersionSpec | undefined, u: { backend?: Backend; unavailable?: string }): Target {
  const version = v?.version ?? role;
  return { role, version, backend: u.backend, unavailable: u.unavailable, breaker: breakerFor(b, version, u.backend) };
}

/**
 * The stable, by the controller's rule (api/stable.ts): spec.stable, or status.stable (the version
 * last promoted) once a promotion superseded it or when spec.stable is absent. Both read the same
 * object version, so the gateway never serves a stable the controller does not mean. Once
 * Succeeded it is status.stable whatever the spec says: until the controller has acted on a spec
 * edit, what it promoted serves. None while the first candidate is adopted, or when status.stable
 * is broken (fail closed: 503, not a guess).
 */
function stableVersion(b: Builder): { version: VersionSpec | undefined; missing: string } {
  const problem = stableRecordProblem(b.status);
  if (problem) return { version: undefined, missing: `the stable is unknown: ${problem}` };
  const stable = effectiveStable(b.status.phase === "Succeeded" ? {} : b.spec, b.status);
  return { version: stable?.version, missing: "no stable version yet: the first candidate is being adopted" };
}

/**
 * The circuit breaker of a version's backend (spec.traffic.circuitBreaker): kept across compiles
 * while its settings hold, so an open circuit stays open through status updates.
 */
function breakerFor(b: Builder, version: string, backend: Backend | undefined): CircuitBreaker | undefined {
  const cb = b.out.traffic.circuitBreaker;
  if (!cb || !backend) return undefined;
  const openDurationMs = durationMs(cb.openDuration, 30_000);
  const id = `${version}|${backend.url}`;
  const known = b.state.breaker(id);
  if (known && known.consecutiveFailures === cb.consecutiveFailures && known.openDurationMs === openDurationMs) return known;
  const gaugeLabels = { rollout: b.out.name, namespace: b.out.namespace, version };
  const metrics = b.metrics;
  const breaker = new CircuitBreaker({ consecutiveFailures: cb.consecutiveFailures, openDurationMs, onChange: (s) => metrics.circuitState.set(gaugeLabels, CIRCUIT_STATE_VALUE[s]) });
  metrics.circuitState.set(gaugeLabels, 0);
  b.state.setBreaker(id, breaker);
  return breaker;
}

/** The noise baseline's second stable (spec.shadow.noiseBaseline), or why there is none. */
function compileNoiseBaseline(b: Builder): void {
  const { out } = b;
  const nb = out.shadow.noiseBaseline;
  if (!nb?.enabled) return;
  if (nb.endpoint === undefined) {
    out.noiseProblem = "shadow.noiseBaseline.enabled without an endpoint: the gateway has no second stable backend to compare with";
  } else {
    try {
      out.noise = parseBackend(nb.endpoint);
    } catch (err) {
      out.noiseProblem = (err as Error).message;
    }
  }
  if (out.noiseProblem !== undefined) b.problems.push({ field: "spec.shadow.noiseBaseline.endpoint", message: out.noiseProblem });
}

/**
 * The egress policy over every address this rollout makes the gateway dial: the versions'
 * backends (spec endpoints, or the URLs status gives), the noise baseline and Redis. One refused
 * address rejects the whole rollout (503 egress_denied, and the compile problem logged): the
 * gateway sends nothing where the admin forbade, and a half-working rollout would hide why.
 */
function compileEgress(b: Builder): void {
  const { out, egress } = b;
  if (!egress) return;
  const idem = out.traffic.idempotency;
  const dialed = new Map<string, string>();
  const add = (url: string | undefined, field: string) => {
    if (url !== undefined && !dialed.has(url)) dialed.set(url, field);
  };
  for (const t of [out.stable, out.candidate, out.shadowTarget]) add(t.backend?.url, backendField(b, t.role, t.backend?.url));
  add(out.noise?.url, "spec.shadow.noiseBaseline.endpoint");
  add(idem?.store === "redis" ? idem.redisUrl : undefined, "spec.traffic.idempotency.redisUrl");
  const refusals: string[] = [];
  for (const [url, field] of dialed) {
    const d = checkEndpoint(url, out.namespace, egress, field);
    if (!d.allowed) refusals.push(d.message);
  }
  if (refusals.length === 0) return;
  out.error = `AIRollout ${out.key}: ${refusals.join("; ")}`;
  out.egressDenied = true;
  b.problems.push({ field: "egress", message: out.error });
}

/** The field a backend URL came from: a spec endpoint, or status (an environment's URL). */
function backendField(b: Builder, role: Role, url: string | undefined): string {
  const endpoint = role === "candidate" ? b.spec.candidate.endpoint : (b.spec.stable as VersionSpec | undefined)?.endpoint;
  return url !== undefined && url === endpoint ? `spec.${role}.endpoint` : `the ${role}'s URL in status`;
}

/** Traffic guardrails that compile: the sticky and rate-limit keys, the payload schema, the usage source. */
function compileTrafficGuardrails(b: Builder): void {
  const { out, problems } = b;
  const traffic = out.traffic;
  if (traffic.stickyBy !== undefined) out.sticky = keySource(b, "spec.traffic.stickyBy", traffic.stickyBy);
  if (traffic.rateLimit?.key !== undefined) out.rateKey = keySource(b, "spec.traffic.rateLimit.key", traffic.rateLimit.key);
  if (traffic.payloadSchema !== undefined) {
    try {
      out.payloadSchema = compileJsonSchema(traffic.payloadSchema);
      if (out.payloadSchema.unsupported.length > 0) problems.push({ field: "spec.traffic.payloadSchema", message: `unsupported keywords ignored: ${out.payloadSchema.unsupported.join(", ")}` });
    } catch (err) {
      out.payloadSchemaError = `spec.traffic.payloadSchema does not compile: ${(err as Error).message}`;
      problems.push({ field: "spec.traffic.payloadSchema", message: out.payloadSchemaError });
    }
  }
  if (traffic.usage) {
    try {
      out.usage = compileUsage(traffic.usage);
    } catch (err) {
      problems.push({ field: "spec.traffic.usage", message: `${(err as Error).message}; the defaults are used` });
    }
  }
}

/** A `header:<name>` / `json:$.<path>` key source; undefined (a problem reported) when it does not parse. */
function keySource(b: Builder, field: string, value: string): KeySource | undefined {
  try {
    return parseKeySource(value);
  } catch (err) {
    b.problems.push({ field, message: (err as Error).message });
    return undefined;
  }
}

/** Shadow rules: the compare rules (and their identity for the workers) and the mask patterns of samples. */
function compileShadowRules(b: Builder): void {
  const { out, problems } = b;
  const compare = out.shadow.compare ?? {};
  try {
    const key = JSON.stringify(compare);
    out.rules = sharedBy(RULES, key, () => compileRules(compare));
    out.rulesKey = key;
  } catch (err) {
    out.rulesError = `spec.shadow.compare does not compile: ${(err as Error).message}`;
    problems.push({ field: "spec.shadow.compare", message: out.rulesError });
  }
  const patterns = out.shadow.maskPatterns ?? [];
  const masks = sharedBy(MASKS, JSON.stringify(patterns), () => compileMaskPatterns(patterns));
  out.masks = masks.patterns;
  for (const e of masks.errors) problems.push({ field: "spec.shadow.maskPatterns", message: e });
}

/**
 * State identity: the noise statistics, field labels and sample budget start over when what they
 * count changed (revision, a version, a backend URL, minSamples, the noise baseline, the rules);
 * the rate limiter when its settings changed; the mirror queue takes the current limits.
 */
function refreshState(b: Builder): void {
  const { out, spec, state } = b;
  const shadow = out.shadow;
  // A digest: the identity's JSON is hundreds of bytes, kept per rollout.
  const identity = createHash("sha256")
    .update(JSON.stringify([b.status.revision, out.stable.version, out.stable.backend?.url, spec.candidate.version, out.candidate.backend?.url, out.shadowTarget.backend?.url, shadow.minSamples, shadow.noiseBaseline, shadow.compare]))
    .digest("base64");
  if (identity !== state.trackerIdentity) state.resetEvidence(identity, shadow);
  const rl = out.traffic.rateLimit;
  const limiterIdentity = rl ? `${rl.requestsPerSecond}/${rl.burst}/${rl.key}` : "";
  if (limiterIdentity !== state.limiterIdentity) {
    state.limiter = rl ? new RateLimiter(rl.requestsPerSecond, rl.burst) : undefined;
    state.limiterIdentity = limiterIdentity;
  }
  state.setMirrorLimits(shadow.maxConcurrency, shadow.queueSize);
}

// ---------------------------------------------------------------- artefacts shared between rollouts

/**
 * Compiled and parsed parts that many rollouts have alike (a team's template: the same compare
 * rules, mask patterns, traffic and shadow sections), kept once per distinct JSON. They are
 * read-only after compiling, so sharing them changes nothing but memory. Each map is bounded: past
 * its size the oldest entry is forgotten, which costs only the sharing, never correctness.
 */
const MAX_SHARED = 512;
const TRAFFIC = new Map<string, Traffic>();
const SHADOW = new Map<string, Shadow>();
const RULES = new Map<string, CompiledRules>();
const MASKS = new Map<string, ReturnType<typeof compileMaskPatterns>>();

/** What `map` holds under `key`, else what `make` builds, remembered (the oldest forgotten past MAX_SHARED). */
function sharedBy<V>(map: Map<string, V>, key: string, make: () => V): V {
  const known = map.get(key);
  if (known !== undefined) return known;
  const value = make();
  if (map.size >= MAX_SHARED) map.delete(map.keys().next().value!);
  map.set(key, value);
  return value;
}

/** The equal section already known (by its JSON), else this one. */
function shared<V>(map: Map<string, V>, value: V): V {
  return sharedBy(map, JSON.stringify(value), () => value);
}
