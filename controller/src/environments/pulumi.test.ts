/** The adapter's decisions that need no Pulumi: names, lock staleness, error digests, ordering. */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { AIRollout } from "../api/schema.ts";
import { isEnvironmentFailure } from "../reconcile/contract.ts";
import { EnvironmentError, StackLockedError, parseLockHolders, pulumiMessage } from "./errors.ts";
import { KeyedSerializer, isLockHolderAlive, isStaleLock, stackNameFor } from "./pulumi.ts";

const rollout = (name: string, namespace = "team", spec: unknown = {}): AIRollout => ({
  apiVersion: "airollout.dev/v1alpha1",
  kind: "AIRollout",
  metadata: { name, namespace, uid: "u", generation: 1, resourceVersion: "1" },
  spec,
});

const validSpec = (stackPrefix?: string) => ({
  stable: { version: "v1", image: "r/t:1" },
  candidate: { version: "v2", image: "r/t:2" },
  strategy: { steps: [{ setWeight: 10 }] },
  ...(stackPrefix ? { environments: { pulumi: { stackPrefix } } } : {}),
});

describe("stackNameFor", () => {
  it("is <namespace>-<name>-<role>, or <stackPrefix>-<role>", () => {
    expect(stackNameFor(rollout("triage"), "canary")).toBe("team-triage-canary");
    expect(stackNameFor(rollout("triage"), "preview-pr-12")).toBe("team-triage-preview-pr-12");
    expect(stackNameFor(rollout("triage", "team", validSpec("prod-triage")), "shadow")).toBe("prod-triage-shadow");
  });

  it("keeps long names within 100 characters and distinct", () => {
    const a = stackNameFor(rollout("x".repeat(120)), "canary");
    const b = stackNameFor(rollout("x".repeat(121)), "canary");
    expect(a).toHaveLength(100);
    expect(a).not.toBe(b);
  });
});

describe("stale locks", () => {
  const now = new Date("2026-01-01T12:00:00Z");
  const holder = (host: string, pid: number, minutesAgo: number) => ({ user: "root", host, pid, since: new Date(now.getTime() - minutesAgo * 60_000) });

  it.each([
    ["same host, process gone", holder("me", 111, 0), false, true],
    ["same host, process alive (however old)", holder("me", 111, 600), true, false],
    ["another host, recent", holder("pod-a", 7, 5), true, false],
    ["another host, older than the threshold", holder("pod-a", 7, 31), true, true],
  ])("%s", (_what, h, alive, stale) => {
    expect(isStaleLock(h, now, 30 * 60_000, "me", () => alive)).toBe(stale);
  });

  it("counts a holder alive only while it runs and is pulumi", () => {
    expect(isLockHolderAlive(2 ** 22 + 12345)).toBe(false);
    // This test process runs, but it is not a pulumi CLI: a reused pid, not the lock's holder.
    expect(isLockHolderAlive(process.pid)).toBe(!existsSync("/proc/self/stat"));
  });

  it("parses the holders out of the diy backend's message", () => {
    const text =
      "error: the stack is currently locked by 2 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n" +
      "  file:///state/.pulumi/locks/organization/airollout-env/s/a.json: created by root@ctl-0 (pid 4242) at 2026-01-01T11:00:00Z\n" +
      "  file:///state/.pulumi/locks/organization/airollout-env/s/b.json: created by some user@ctl-1 (pid 7) at 2026-01-01T11:30:00+01:00\n";
    expect(parseLockHolders(text)).toEqual([
      { user: "root", host: "ctl-0", pid: 4242, since: new Date("2026-01-01T11:00:00Z") },
      { user: "some user", host: "ctl-1", pid: 7, since: new Date("2026-01-01T10:30:00Z") },
    ]);
  });
});

describe("pulumiMessage", () => {
  const commandError = (stdout: string, stderr: string) => Object.assign(new Error("code: 255"), { commandResult: { stdout, stderr } });

  it("keeps resource diagnostics and drops the generic lines", () => {
    const stdout = [
      "Updating (team-triage-canary):",
      "",
      "Diagnostics:",
      "  kubernetes:apps/v1:Deployment (deployment):",
      "    error: resource team/triage-canary was not successfully created by the Kubernetes API server: Deployment.apps \"triage-canary\" is invalid:",
      "    spec.template.spec.containers[0].image: Required value",
      "",
      "  pulumi:pulumi:Stack (airollout-env-team-triage-canary):",
      "    error: update failed",
      "",
      "Resources:",
    ].join("\n");
    expect(pulumiMessage(commandError(stdout, "error: update failed\n"))).toBe(
      'kubernetes:apps/v1:Deployment (deployment): resource team/triage-canary was not successfully created by the Kubernetes API server: Deployment.apps "triage-canary" is invalid: spec.template.spec.containers[0].image: Required value',
    );
  });

  it("unwraps the provider's error list (as `pulumi up` printed it for an invalid quantity)", () => {
    const stdout = [
      "Diagnostics:",
      "  pulumi:pulumi:Stack (airollout-env-default-smoke-canary):",
      "    warning: using pulumi-resource-kubernetes from $PATH at /x/pulumi-resource-kubernetes",
      "    error: update failed",
      "",
      "  kubernetes:apps/v1:Deployment (deployment):",
      "    error: 1 error occurred:",
      "    \t* the Kubernetes API server reported that \"default/smoke-canary\" failed to fully initialize or become live: quantities must match the regular expression",
      "",
      "Outputs:",
    ].join("\n");
    expect(pulumiMessage(commandError(stdout, ""))).toBe(
      'kubernetes:apps/v1:Deployment (deployment): the Kubernetes API server reported that "default/smoke-canary" failed to fully initialize or become live: quantities must match the regular expression',
    );
  });

  it("falls back to the last lines of stderr", () => {
    expect(pulumiMessage(commandError("", "something odd\nhappened here\n"))).toBe("something odd happened here");
  });
});

describe("typed errors", () => {
  it("are EnvironmentFailures reconcile can classify", () => {
    const locked = new StackLockedError({ message: "locked", stackName: "s", role: "canary", holders: [] });
    const bad = new EnvironmentError({ reason: "InvalidEnvironment", message: "bad image", stackName: "s", role: "canary" });
    expect(isEnvironmentFailure(locked) && locked.transient).toBe(true);
    expect(isEnvironmentFailure(bad) && !bad.transient).toBe(true);
    expect(isEnvironmentFailure(new Error("x"))).toBe(false);
  });
});

describe("KeyedSerializer", () => {
  it("runs one operation per key at a time, in order, and different keys side by side", async () => {
    const s = new KeyedSerializer();
    const log: string[] = [];
    const op = (name: string, ms: number, fail = false) => async () => {
      log.push(`${name}+`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${name}-`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([s.run("a", op("a1", 30, true)), s.run("a", op("a2", 5)), s.run("b", op("b1", 10))]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled"]);
    expect(log.indexOf("a1-")).toBeLessThan(log.indexOf("a2+"));
    expect(log.indexOf("b1+")).toBeLessThan(log.indexOf("a1-"));
  });
});
