/**
 * Property-based tests of PII masking (fast-check, fixed seed, bounded runs): identifiers that
 * webhooks carry (UUID delivery and request ids, ISO timestamps, commit SHAs) are never masked
 * into something else, and masking is idempotent, so a masked view can be masked again safely.
 * That PII itself is masked is in compare.property.test.ts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { maskPII } from "./pii.ts";

const SEED = 20261129;
const opts = { seed: SEED, numRuns: 1000 };

const identifier = fc.oneof(
  fc.uuid(),
  fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.stringMatching(/^[0-9a-f]{40}$/),
);

describe("maskPII: properties", () => {
  it("leaves UUIDs, ISO timestamps and commit SHAs as they are, alone or inside JSON", () => {
    fc.assert(fc.property(identifier, (id) => {
      expect(maskPII(id)).toBe(id);
      const json = JSON.stringify({ id, delivery: id });
      expect(maskPII(json)).toBe(json);
    }), opts);
  });

  it("is idempotent on any text", () => {
    fc.assert(fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 60 }), fc.array(fc.constantFrom("a@b.co", "+1 415-555-0199", "4539 1488 0343 6467", " ", "-", "1", "(", ")", "@", "."), { maxLength: 10 }).map((p) => p.join(""))), (text) => {
      const once = maskPII(text);
      expect(maskPII(once)).toBe(once);
    }), opts);
  });
});
