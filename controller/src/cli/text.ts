/**
 * Small pieces of the CLI's output and flag handling that several commands share: a table in
 * kubectl's layout, and a duration flag that must be positive.
 */
import { parseDuration } from "../api/duration.ts";
import { UsageError } from "./errors.ts";

/**
 * Rows as kubectl prints a table: each column as wide as its widest cell plus two spaces, the
 * last column unpadded, no trailing blanks; one line per row, each ending in a newline.
 */
export function table(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return "";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join("").trimEnd() + "\n").join("");
}

/** A duration flag (`--timeout 5m`) in milliseconds; anything but a positive duration is a usage error naming the flag. */
export function positiveDurationFlag(flag: string, text: string): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
  if (!(ms > 0)) throw new UsageError(`${flag}: ${text} is not a positive duration`);
  return ms;
}
