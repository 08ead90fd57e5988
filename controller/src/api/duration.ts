/** Go-style duration strings (30s, 5m, 1h30m, 500ms), as used throughout the AIRollout spec. */
import { DURATION_PATTERN } from "./schema.ts";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const WHOLE = new RegExp(DURATION_PATTERN);

/** Parses a duration to milliseconds; throws with the offending text when it does not parse. */
export function parseDuration(text: string): number {
  if (!WHOLE.test(text)) throw new Error(`invalid duration ${quoted(text)}: use forms like 30s, 5m, 1h30m, 500ms`);
  let total = 0;
  for (const m of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  // Hundreds of digits overflow to Infinity, which no timer or comparison may ever see. Every
  // duration the spec admits (32 characters at most) stays far below that, so it always parses.
  if (!Number.isFinite(total)) throw new Error(`invalid duration ${quoted(text)}: too long to represent`);
  return Math.round(total);
}

// The text comes from users and other programs: an error message quotes a bounded part of it.
function quoted(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** Formats milliseconds the way the spec writes durations (1h30m, 45s, 250ms). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s || (!h && !m) ? `${s}s` : ""}`;
}
