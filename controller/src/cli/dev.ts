/** `airollout dev up|down|status`: the embedded local control plane, like kind or minikube. */
import { parseArgs } from "node:util";
import { down, statusReport, up } from "../dev/controlplane.ts";
import { UsageError } from "./errors.ts";

const progress = (line: string) => process.stderr.write(`${line}\n`);

export async function devCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: { dir: { type: "string" }, purge: { type: "boolean", default: false }, "without-controller-manager": { type: "boolean", default: false } },
  });
  switch (sub) {
    case "up": {
      const state = await up({ dir: values.dir, withoutControllerManager: values["without-controller-manager"], log: progress });
      progress(`state and logs: ${state.dir}`);
      progress(`kubectl ${state.kubeVersion} (matching the server): ${state.kubectl}`);
      process.stdout.write(`export KUBECONFIG=${state.kubeconfig}\n`);
      return 0;
    }
    case "down":
      await down({ dir: values.dir, purge: values.purge, log: progress });
      progress("local control plane stopped");
      return 0;
    case "status": {
      const report = await statusReport(values.dir);
      process.stdout.write(report.lines.join("\n") + "\n");
      return report.running ? 0 : 1;
    }
    default:
      throw new UsageError(`dev: expected up, down or status, got ${JSON.stringify(sub ?? "")}`);
  }
}
