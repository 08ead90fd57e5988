import { describe, expect, it } from "vitest";
import { DASHBOARD, PREVIEW, parseFlags } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { connect } from "./kube.ts";

describe("connect", () => {
  it.each([DASHBOARD, PREVIEW])("$name: -A beside -n is a usage error, before any kubeconfig is read", (cmd) => {
    const { values } = parseFlags(cmd, ["-A", "-n", "team-a", "--kubeconfig", "/nonexistent/kubeconfig"]);
    expect(() => connect(values)).toThrow(UsageError);
    expect(() => connect(values)).toThrow("give --namespace or --all-namespaces, not both");
    // Without -A the same flags reach the loader, which names the missing file.
    const { values: plain } = parseFlags(cmd, ["-n", "team-a", "--kubeconfig", "/nonexistent/kubeconfig"]);
    expect(() => connect(plain)).toThrow("--kubeconfig: /nonexistent/kubeconfig does not exist");
  });
});
