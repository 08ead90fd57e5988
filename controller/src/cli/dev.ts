/** `airollout dev up|down|status`: the embedded local control plane, like kind or minikube. */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { alive, down, readState, recordNodeSimulator, statusReport, up } from "../dev/controlplane.ts";
import { startNodeSimulator } from "../dev/kwok.ts";
import { UsageError } from "./errors.ts";

const progress = (line: string) => process.stderr.write(`${line}\n`);

export async function devCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      dir: { type: "string" },
      purge: { type: "boolean", default: false },
      "without-controller-manager": { type: "boolean", default: false },
      "node-simulator": { type: "boolean", default: false },
    },
  });
  switch (sub) {
    case "up": {
      if (values["node-simulator"] && values["without-controller-manager"]) {
        throw new UsageError("--node-simulator needs kube-controller-manager (Deployments, ReplicaSets, endpoints); drop --without-controller-manager");
      }
      const state = await up({ dir: values.dir, withoutControllerManager: values["without-controller-manager"], log: progress });
      if (values["node-simulator"]) {
        const running = readState(state.dir)?.nodeSimulator;
        if (running && alive(running.pids.kwok) && alive(running.pids.kubeScheduler)) {
          progress(`node simulator already running: node ${running.nodeName}`);
        } else {
          // Pods never run here: KWOK marks them Running and Ready on a fake node (see kwok.ts).
          const sim = await startNodeSimulator({ kubeconfig: state.kubeconfig, dir: join(state.dir, "logs"), log: progress });
          recordNodeSimulator(state.dir, { nodeName: sim.nodeName, pids: sim.pids });
        }
      }
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
