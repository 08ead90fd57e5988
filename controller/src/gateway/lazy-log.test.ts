import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { lazyChild } from "./lazy-log.ts";

function capture(level: string): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const stream = new Writable({ write: (chunk: Buffer, _enc, done) => (out.push(chunk.toString()), done()) });
  const log = pino({ level }, stream);
  return { log, lines: () => out.join("").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("lazyChild", () => {
  it("makes no child for level checks and disabled levels, and writes enabled lines with the bindings", async () => {
    const { log, lines } = capture("info");
    const child = vi.spyOn(log, "child");
    const lazy = lazyChild(log, { requestId: "r-1", rollout: "ns/bot" });
    expect(lazy.isLevelEnabled("debug")).toBe(false);
    expect(lazy.isLevelEnabled("info")).toBe(true);
    lazy.debug({ x: 1 }, "not written");
    expect(child).not.toHaveBeenCalled();
    lazy.info({ status: 400 }, "request refused");
    lazy.warn("second line");
    expect(child).toHaveBeenCalledTimes(1);
    await new Promise((r) => setImmediate(r));
    expect(lines()).toEqual([expect.objectContaining({ requestId: "r-1", rollout: "ns/bot", status: 400, msg: "request refused" }), expect.objectContaining({ requestId: "r-1", msg: "second line" })]);
  });

  it("writes debug lines with the bindings when debug is enabled", async () => {
    const { log, lines } = capture("debug");
    const lazy = lazyChild(log, { requestId: "r-2" });
    lazy.debug({ version: "v1" }, "request answered");
    await new Promise((r) => setImmediate(r));
    expect(lines()).toEqual([expect.objectContaining({ requestId: "r-2", version: "v1", msg: "request answered" })]);
  });
});
