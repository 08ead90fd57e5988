/**
 * Go-style durations (the spec's `30s`, `1h30m`, `1.5m`) to milliseconds and back to a form
 * PromQL accepts. PromQL range selectors take `1m30s` and `500ms` but not decimals such as
 * `1.5m`, so `{{interval}}` is always rendered through {@link formatPromDuration}.
 */
import { DURATION_PATTERN } from "../api/schema.ts";

const WHOLE = new RegExp(DURATION_PATTERN);
const PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration such as `30s`, `5m`, `1h30m` or `250ms` into milliseconds.
 * @throws Error naming the text when it is not a duration.
 */
export function parseDuration(text: string): number {
  if (!WHOLE.test(text)) {
    throw new Error(`"${text}" is not a duration such as 30s, 5m or 1h30m`);
  }
  let ms = 0;
  for (const m of text.matchAll(PART)) {
    ms += Number(m[1]) * (UNIT_MS[m[2] ?? ""] ?? 0);
  }
  return Math.round(ms);
}

/**
 * Formats milliseconds as a PromQL duration: `1h30m`, `45s`, `1500ms`. Sub-second remainders
 * fall back to milliseconds because PromQL has no decimal durations.
 */
export function formatPromDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms));
  if (whole === 0) return "0s";
  if (whole % 1000 !== 0) return `${whole}ms`;
  let seconds = whole / 1000;
  const h = Math.floor(seconds / 3600);
  seconds -= h * 3600;
  const m = Math.floor(seconds / 60);
  seconds -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${seconds ? `${seconds}s` : ""}`;
}
