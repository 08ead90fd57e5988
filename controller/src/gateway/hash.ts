/**
 * Traffic split by consistent hashing. A sticky key (a tenant id) is hashed, together with a
 * per-rollout seed, onto 10,000 buckets; the candidate owns buckets [0, weight x 100). Raising the
 * weight only adds buckets to the candidate, so a key that reached the candidate stays there while
 * the weight holds or grows, and a key on the stable moves at most once per weight change.
 */
import { parseFieldPath } from "../diff/index.ts";

/** Buckets per 100 percent: weights with two decimals split exactly. */
export const BUCKETS = 10_000;

/** Which version answers a request. */
export type Role = "stable" | "candidate";

/**
 * 32-bit FNV-1a over UTF-16 code units, finished with murmur3's fmix32. FNV-1a alone spreads
 * short, similar keys (tenant-1, tenant-2) poorly over the low bits that a modulo uses.
 */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bucket (0..BUCKETS-1) of a sticky key under a seed. */
export function bucketOf(seed: string, key: string): number {
  return hash32(`${seed}\u0000${key}`) % BUCKETS;
}

/** Clamps a weight to 0..100; NaN and undefined are 0 (no candidate traffic). */
export function clampWeight(weight: number | undefined): number {
  if (weight === undefined || !Number.isFinite(weight)) return 0;
  return Math.min(100, Math.max(0, weight));
}

/**
 * Picks the version for a request. With a key the choice is a pure function of (seed, key,
 * weight); without one it is random, so anonymous traffic still splits by the weight.
 */
export function chooseRole(weight: number | undefined, seed: string, key: string | undefined, random: () => number = Math.random): Role {
  const w = clampWeight(weight);
  if (w <= 0) return "stable";
  if (w >= 100) return "candidate";
  if (key === undefined) return random() * 100 < w ? "candidate" : "stable";
  return bucketOf(seed, key) < Math.round(w * (BUCKETS / 100)) ? "candidate" : "stable";
}

/** Where a request key comes from: a header or a field of the JSON body. */
export type KeySource = { kind: "header"; name: string } | { kind: "json"; path: string[] };

/**
 * Parses `header:<name>` or `json:$.<path>` (the syntax of traffic.stickyBy and rateLimit.key).
 * Throws with the offending value; the CRD pattern normally rejects such specs first.
 */
export function parseKeySource(spec: string): KeySource {
  if (spec.startsWith("header:")) {
    const name = spec.slice("header:".length).toLowerCase();
    if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`key ${JSON.stringify(spec)}: header name must be letters, digits and dashes`);
    return { kind: "header", name };
  }
  if (spec.startsWith("json:")) {
    const segments = parseFieldPath(spec.slice("json:".length));
    const path: string[] = [];
    for (const s of segments) {
      if (s.kind !== "key") throw new Error(`key ${JSON.stringify(spec)}: only object keys are supported in json:$.<path>`);
      path.push(s.key);
    }
    if (path.length === 0) throw new Error(`key ${JSON.stringify(spec)}: json path must name a field`);
    return { kind: "json", path };
  }
  throw new Error(`key ${JSON.stringify(spec)}: must be header:<name> or json:$.<path>`);
}

// Keys longer than this are hashed as their prefix: a tenant id is short, a huge value is abuse.
const MAX_KEY_LENGTH = 256;

/**
 * Extracts a request's key; undefined when absent or not a scalar. Only own properties are
 * followed, so a body cannot steer the lookup through `__proto__`.
 */
export function extractKey(source: KeySource, headers: Readonly<Record<string, string | string[] | undefined>>, body: unknown): string | undefined {
  let value: unknown;
  if (source.kind === "header") {
    const h = headers[source.name];
    value = Array.isArray(h) ? h[0] : h;
  } else {
    value = body;
    for (const k of source.path) {
      if (value === null || typeof value !== "object" || Array.isArray(value) || !Object.hasOwn(value, k)) return undefined;
      value = (value as Record<string, unknown>)[k];
    }
  }
  if (typeof value === "string") return value === "" ? undefined : value.slice(0, MAX_KEY_LENGTH);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}
