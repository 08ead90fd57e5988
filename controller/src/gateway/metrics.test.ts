import { afterEach, describe, expect, it, vi } from "vitest";
import { createGatewayMetrics, type RolloutStats } from "./metrics.ts";

const stats = (revision: string, compared: number, mismatched: number, judged: boolean, sampled = compared): RolloutStats => ({
  rollout: "bot",
  namespace: "ns",
  running: 0,
  queued: 0,
  shadow: { revision, compared, sampled, noiseCompared: compared, mismatched, judged },
});

/** The value of one series in the registry's text exposition, or undefined. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

describe("shadow evidence gauges", () => {
  afterEach(() => vi.useRealTimers());

  it("publish the current revision's comparisons, judged mismatches and judged flag at scrape time", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    let current = stats("r1", 40, 0, false);
    const m = createGatewayMetrics(() => [current]);
    let text = await m.registry.metrics();
    expect(sample(text, "airollout_shadow_revision_comparisons", 'revision="r1",kind="candidate"')).toBe(40);
    expect(sample(text, "airollout_shadow_judged", 'revision="r1"')).toBe(0);
    expect(sample(text, "airollout_shadow_revision_mismatches", 'revision="r1"')).toBe(0);

    current = stats("r2", 150, 9, true);
    vi.setSystemTime(Date.now() + 1000);
    text = await m.registry.metrics();
    // A new revision's evidence replaces the old one's: no stale series reads as evidence.
    expect(sample(text, "airollout_shadow_judged", 'revision="r1"')).toBeUndefined();
    expect(sample(text, "airollout_shadow_judged", 'revision="r2"')).toBe(1);
    expect(sample(text, "airollout_shadow_revision_mismatches", 'revision="r2"')).toBe(9);
    expect(sample(text, "airollout_shadow_revision_comparisons", 'revision="r2",kind="noise"')).toBe(150);
  });

  it("publish the coverage (candidate comparisons / requests chosen for mirroring), and no coverage before a request was chosen", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    let current = stats("r1", 0, 0, false, 0);
    const m = createGatewayMetrics(() => [current]);
    let text = await m.registry.metrics();
    // 0/0 is no coverage at all, not 0% or 100%: the series is absent.
    expect(sample(text, "airollout_shadow_coverage_ratio", 'revision="r1"')).toBeUndefined();
    expect(sample(text, "airollout_shadow_revision_sampled", 'revision="r1"')).toBe(0);
    current = stats("r1", 49, 0, false, 100);
    vi.setSystemTime(Date.now() + 1000);
    text = await m.registry.metrics();
    expect(sample(text, "airollout_shadow_coverage_ratio", 'revision="r1"')).toBe(0.49);
    expect(sample(text, "airollout_shadow_revision_sampled", 'revision="r1"')).toBe(100);
  });

  it("reads the rollouts' stats once per scrape, not once per gauge", async () => {
    let reads = 0;
    const m = createGatewayMetrics(() => {
      reads++;
      return [stats("r1", 1, 0, false)];
    });
    await m.registry.metrics();
    expect(reads).toBe(1);
  });
});
