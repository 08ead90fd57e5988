/**
 * The per-backend caps of the primary path as a rollout's spec sets them (spec.traffic.concurrency)
 * or their defaults. Apart from upstream.ts so that the shadow workers, which load upstream.ts,
 * do not load the API schema (zod) too.
 */
import type { z } from "zod";
import { parseDuration } from "../api/duration.ts";
import { TrafficSchema } from "../api/schema.ts";
import type { SlotLimits } from "./upstream.ts";

/** spec.traffic.concurrency as parsed (its defaults filled in), absent when the spec leaves it out. */
export type ConcurrencySpec = NonNullable<z.output<typeof TrafficSchema>["concurrency"]>;

/** spec.traffic.concurrency's defaults, for rollouts that leave it out. */
const DEFAULT_CONCURRENCY: ConcurrencySpec = TrafficSchema.shape.concurrency.unwrap().parse({});
/** Slot limits per compiled traffic object: parsed once per spec change, not per request. */
const SLOT_LIMITS = new WeakMap<object, SlotLimits>();

/** The per-backend caps a rollout's primary requests are held to: its spec's, else the defaults. */
export function slotLimits(traffic: { concurrency?: ConcurrencySpec | undefined }): SlotLimits {
  let limits = SLOT_LIMITS.get(traffic);
  if (!limits) {
    const c = traffic.concurrency ?? DEFAULT_CONCURRENCY;
    let queueTimeoutMs: number;
    try {
      queueTimeoutMs = parseDuration(c.queueTimeout);
    } catch {
      queueTimeoutMs = parseDuration(DEFAULT_CONCURRENCY.queueTimeout);
    }
    limits = { maxInFlight: c.maxInFlight, maxQueued: c.maxQueued, queueTimeoutMs };
    SLOT_LIMITS.set(traffic, limits);
  }
  return limits;
}
