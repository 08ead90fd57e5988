import { describe, expect, it } from "vitest";
import { DASHBOARD, PREVIEW, parseFlags } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { connect } from "./kube.ts";

const BOTH = ["-A", "-n", "team-a", "--kubeconfig", "/nonexistent/kubeconfig"];
const NAMESPACE_ONLY = ["-n", "team-a", "--kubeconfig", "/nonexistent/kubeconfig"];

describe("connect", () => {
  it("-A beside -n is a usage error (dashboard and preview), before any kubeconfig is read", () => {
    for (const values of [parseFlags(DASHBOARD, BOTH).values, parseFlags(PREVIEW, BOTH).values]) {
      expect(() => connect(values)).toThrow(UsageError);
      expect(() => connect(values)).toThrow("give --namespace or --all-namespaces, not both");
    }
  });

  it("without -A the same flags reach the loader, which names the missing file", () => {
    for (const values of [parseFlags(DASHBOARD, NAMESPACE_ONLY).values, parseFlags(PREVIEW, NAMESPACE_ONLY).values]) {
      expect(() => connect(values)).toThrow("--kubeconfig: /nonexistent/kubeconfig does not exist");
    }
  });
});
