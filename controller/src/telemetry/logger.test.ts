import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { forRollout } from "./logger.ts";

describe("forRollout", () => {
  it("every line about a rollout carries namespace, name and rollout (ns/name)", () => {
    const lines: string[] = [];
    const log = pino({ base: undefined }, { write: (line: string) => void lines.push(line) });
    forRollout(log, "shop", "triage-bot").info({ step: 2 }, "step started");
    expect(JSON.parse(lines[0]!)).toMatchObject({ namespace: "shop", name: "triage-bot", rollout: "shop/triage-bot", step: 2, msg: "step started" });
  });
});
