import { Writable } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { NoopEnvironments } from "../environments/noop.ts";
import type { KubeClient } from "./client.ts";
import { PreviewController } from "./preview-controller.ts";

/** A logger whose lines land in `lines`. */
function capture() {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }), done()) });
  return { log: pino({ level: "debug" }, sink), lines };
}

describe("PreviewController without the AIPreview CRD", () => {
  it("warns once, lists nothing, and stops cleanly: an AIRollout-only cluster (CRD not upgraded) runs on", async () => {
    const paths: string[] = [];
    const client = {
      get: async (path: string) => {
        paths.push(path);
        return { resources: [{ name: "airollouts" }, { name: "airollouts/status" }] };
      },
    } as unknown as KubeClient;
    const { log, lines } = capture();
    const c = new PreviewController({ client, log, environments: new NoopEnvironments(), identity: "t" });
    c.start();
    await new Promise((r) => setTimeout(r, 50));
    await c.stop();
    expect(paths).toEqual(["/apis/airollout.dev/v1alpha1"]);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual(["the AIPreview CRD is not installed: previews are not reconciled until it is (kubectl apply -f crds/aipreview.yaml)"]);
    expect(lines.some((l) => l.msg === "watching previews")).toBe(false);
  });
});
