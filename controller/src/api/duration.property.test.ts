/**
 * Property-based tests of durations (fast-check, fixed seed, bounded runs): parsing any text
 * gives a finite whole number of milliseconds or an error naming the text; formatting then
 * parsing gives the value back (to the second, the precision formatDuration writes); every
 * duration the spec's pattern admits parses.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "./duration.ts";
import { DURATION_PATTERN } from "./schema.ts";

const SEED = 20261129;
const opts = { seed: SEED, numRuns: 500 };
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

function tryParse(text: string): number | Error {
  try {
    return parseDuration(text);
  } catch (err) {
    return err as Error;
  }
}

const unit = fc.constantFrom("ms", "s", "m", "h") as fc.Arbitrary<keyof typeof UNIT_MS>;
const part = fc.tuple(fc.nat({ max: 10_000 }), fc.option(fc.nat({ max: 999 }), { nil: undefined }), unit);
const durationText = fc.array(part, { minLength: 1, maxLength: 4 });
const garbage = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.array(fc.constantFrom("1", "0", ".", "5", "ms", "s", "m", "h", "d", "-", " ", "e3", "µs", "ns", "9".repeat(400)), { maxLength: 8 }).map((p) => p.join("")),
);

describe("durations: properties", () => {
  it("any text parses to a finite whole number of milliseconds or is refused with an error quoting it", () => {
    fc.assert(fc.property(garbage, (text) => {
      const r = tryParse(text);
      if (r instanceof Error) {
        expect(r.message).toMatch(/^invalid duration "/);
        expect(r.message.length).toBeLessThan(200);
        expect(new RegExp(DURATION_PATTERN).test(text) && text.length <= 32).toBe(false);
      } else {
        expect(Number.isSafeInteger(r) || (Number.isFinite(r) && Number.isInteger(r))).toBe(true);
        expect(r).toBeGreaterThanOrEqual(0);
      }
    }), opts);
  });

  it("a duration written as parts parses to the sum of its parts", () => {
    fc.assert(fc.property(durationText, (parts) => {
      const text = parts.map(([n, frac, u]) => `${n}${frac === undefined ? "" : `.${frac}`}${u}`).join("");
      const expected = parts.reduce((sum, [n, frac, u]) => sum + Number(`${n}${frac === undefined ? "" : `.${frac}`}`) * UNIT_MS[u], 0);
      expect(parseDuration(text)).toBe(Math.round(expected));
    }), opts);
  });

  it("every text of at most 32 characters the spec's pattern admits parses to a finite value", () => {
    fc.assert(fc.property(fc.stringMatching(new RegExp(DURATION_PATTERN)).filter((s) => s.length <= 32), (text) => {
      expect(Number.isFinite(parseDuration(text))).toBe(true);
    }), opts);
  });

  it("format then parse gives the value back: exactly below a second and for whole seconds, else to the nearest second", () => {
    fc.assert(fc.property(fc.oneof(fc.nat({ max: 999 }), fc.nat({ max: 10_000_000 }).map((s) => s * 1000), fc.nat({ max: 2 ** 40 })), (ms) => {
      const back = parseDuration(formatDuration(ms));
      if (ms < 1000 || ms % 1000 === 0) expect(back).toBe(ms);
      else expect(Math.abs(back - ms)).toBeLessThanOrEqual(500);
    }), opts);
  });

  it("parse then format then parse is stable", () => {
    fc.assert(fc.property(durationText, (parts) => {
      const once = parseDuration(parts.map(([n, , u]) => `${n}${u}`).join(""));
      const twice = parseDuration(formatDuration(once));
      expect(parseDuration(formatDuration(twice))).toBe(twice);
    }), opts);
  });

  it("hundreds of digits are refused, not turned into Infinity", () => {
    expect(() => parseDuration(`${"9".repeat(400)}h`)).toThrow(/invalid duration "9{40}…": too long to represent/);
  });
});
