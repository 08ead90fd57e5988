/**
 * Bounds for timer delays. Node fires a setTimeout whose delay is above 2^31-1 ms (24.8 days),
 * NaN or negative after 1 ms, with a TimeoutOverflowWarning: a valid `pause: {duration: 720h}`
 * turned into a reconcile loop spinning ~120 times a second. Every delay derived from input (a
 * spec duration, a wake-up time, a flag) goes through boundedDelay before it reaches a timer.
 */

/** The longest delay Node's timers honour (2^31-1 ms); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A delay a timer honours: at least 0, at most `max` (itself capped at MAX_TIMER_MS). A delay
 * that is not a finite number (NaN, either infinity) gets `max`, never 0: a broken computation must not
 * become a hot loop. A caller that clamps a long wait re-arms when the timer fires (the
 * controller's next pass recomputes the remaining wait).
 */
export function boundedDelay(ms: number, max: number = MAX_TIMER_MS): number {
  const cap = Math.min(Math.max(0, Number.isFinite(max) ? max : MAX_TIMER_MS), MAX_TIMER_MS);
  if (!Number.isFinite(ms)) return cap;
  if (ms <= 0) return 0;
  return Math.min(ms, cap);
}
