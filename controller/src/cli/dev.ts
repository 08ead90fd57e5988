/** `airollout dev up|down|status|env`: the embedded local control plane, like kind or minikube. */
import { dirname, join } from "node:path";
import { DEV, parseFlags } from "./commands.ts";
import { PROJECT_ROOT } from "../dev/tools.ts";
import { alive, defaultDevDir, down, readState, recordNodeSimulator, statusReport, up } from "../dev/controlplane.ts";
import { startNodeSimulator } from "../dev/kwok.ts";
import { UsageError } from "./errors.ts";

const progress = (line: string) => process.stderr.write(`${line}\n`);

/** A value single-quoted for POSIX shells (a quote inside becomes '\''). */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * The exports `eval "$(airollout dev env)"` runs: the control plane's KUBECONFIG, and on PATH
 * its kubectl (the version matching the server) and this checkout's bin/ (airollout and the
 * kubectl-airollout plugin, run on the project's pinned Node.js: no npm in the way).
 */
export function envExports(state: { kubeconfig: string; kubectl: string }): string {
  const path = [dirname(state.kubectl), join(PROJECT_ROOT, "bin")].map(shellQuote).join(":");
  return `export KUBECONFIG=${shellQuote(state.kubeconfig)}\nexport PATH=${path}:"$PATH"\n`;
}

export async function devCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseFlags(DEV, rest);
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
      progress(`put it, airollout and kubectl-airollout on PATH and use this cluster: eval "$(${join(PROJECT_ROOT, "bin", "airollout")} dev env${values.dir ? ` --dir ${shellQuote(values.dir)}` : ""})"`);
      process.stdout.write(`export KUBECONFIG=${state.kubeconfig}\n`);
      return 0;
    }
    case "env": {
      const state = readState(values.dir ?? defaultDevDir());
      if (!state) throw new Error(`no local control plane in ${values.dir ?? defaultDevDir()}: run airollout dev up${values.dir ? ` --dir ${values.dir}` : ""} first`);
      process.stdout.write(envExports(state));
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
      throw new UsageError(`dev: expected up, down, status or env, got ${JSON.stringify(sub ?? "")}`);
  }
}
