import { describe, expect, it } from "vitest";
import { GATEWAY, parseFlags } from "./commands.ts";
import { shadowNiceFlag } from "./gateway.ts";

describe("gateway --shadow-nice", () => {
  it("takes 0 to 19 and leaves the default when absent", () => {
    expect(shadowNiceFlag(undefined)).toBeUndefined();
    expect(shadowNiceFlag("0")).toBe(0);
    expect(shadowNiceFlag("19")).toBe(19);
    expect(parseFlags(GATEWAY, ["--shadow-nice", "0"]).values["shadow-nice"]).toBe("0");
  });

  it.each(["-1", "20", "2.5", "", "ten"])("refuses %j naming the flag", (v) => {
    expect(() => shadowNiceFlag(v)).toThrow(/^--shadow-nice: .* is not a whole number from 0 to 19$/);
  });
});
