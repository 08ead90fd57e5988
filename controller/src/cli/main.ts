/**
 * The airollout command line: parses the command and its flags and hands over to the command's
 * module in cli/ (adapters are wired there only: controller.ts for the controller and, through
 * its environmentsPort, previews; gateway.ts for the gateway). Also runs as a kubectl plugin
 * (`kubectl airollout status <name>`) when bin/airollout is on PATH as kubectl-airollout.
 */
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { runController } from "./controller.ts";
import { devCommand } from "./dev.ts";
import { statusCommand } from "./status.ts";
import { UsageError } from "./errors.ts";
import { controlCommand } from "./control.ts";
import { previewCommand } from "./preview.ts";
import { gatewayCommand, quarantineCommand } from "./gateway.ts";

const USAGE = `usage: airollout <command> [flags]

commands:
  controller            run the AIRollout controller (KUBECONFIG or in-cluster config)
      --kubeconfig PATH   kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)
      --namespace NS      watch one namespace (default: all)
      --metrics-port N    port of /healthz, /readyz, /metrics (default 8080; 0 = any free port)
      --leader-elect BOOL elect a leader through a Lease (default true)
      --lease-namespace NS  namespace of the Lease (default: $POD_NAMESPACE or default)
      --lease-name NAME   (default airollout-controller)
      --id ID             identity in the Lease (default: hostname_pid)
      --environments pulumi|none  stand image versions up through Pulumi (default), or not at all
      --state-dir PATH    Pulumi file backend and workspaces (default: ~/.local/state/airollout/controller)
  gateway               run the webhook gateway: POST /hooks/<namespace>/<rollout>/<path>
      --kubeconfig PATH   kubeconfig file (AIRollouts are watched, signature Secrets read)
      --namespace NS      watch one namespace (default: all)
      --port N            webhook port, also serving /metrics, /healthz, /readyz (default 8080)
      --metrics-port N    also serve /metrics, /healthz, /readyz on this port
      --host ADDR         listen address (default 0.0.0.0)
      --state-dir DIR     SQLite files: quarantine.db, idempotency.db
                          (default: $AIROLLOUT_STATE_DIR or ~/.local/state/airollout/gateway)
      --shadow-workers N  worker threads for shadow copies and diffs (default: cores - 1, 1 to 4;
                          0 = on the thread that answers webhooks)
      --quarantine-max-rows N  rows kept in the quarantine (default 100000)
  quarantine list       refused webhooks: [--rollout NS/NAME] [--limit N] [--json] [--state-dir DIR]
  quarantine replay ID  re-send one through a gateway: --gateway URL (or $AIROLLOUT_GATEWAY_URL)
  dev up|down|status    the embedded local control plane (etcd, kube-apiserver, kube-controller-manager)
      --dir PATH          state directory (default: $AIROLLOUT_DEV_DIR or ~/.local/state/airollout/dev)
      --purge             (down) also delete the state directory
      --node-simulator    (up) also start KWOK and kube-scheduler: one fake Node that marks Pods
                          Running and Ready, so image versions' Deployments become Available
  status NAME           show a rollout's phase, steps, analysis and conditions
  promote NAME [--full] complete the current step (a pause, an inconclusive analysis); --full skips to promotion
  abort NAME            roll back now: weight 0, candidate environments torn down
  retry NAME            restart a RolledBack rollout from step 1
  preview up ID --rollout NAME [--ttl 24h]   a preview environment of the candidate (Pulumi)
  preview destroy ID --rollout NAME | preview list --rollout NAME
      -n, --namespace NS  (default: the kubeconfig's namespace)
      --kubeconfig PATH
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "controller": {
      const { values } = parseArgs({
        args: rest,
        options: {
          kubeconfig: { type: "string" },
          namespace: { type: "string" },
          "metrics-port": { type: "string", default: "8080" },
          "leader-elect": { type: "string", default: "true" },
          "lease-namespace": { type: "string", default: process.env.POD_NAMESPACE ?? "default" },
          "lease-name": { type: "string", default: "airollout-controller" },
          id: { type: "string", default: `${hostname()}_${process.pid}` },
          environments: { type: "string", default: "pulumi" },
          "state-dir": { type: "string" },
        },
      });
      const port = Number(values["metrics-port"]);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--metrics-port: ${values["metrics-port"]} is not a port number`);
      if (!["true", "false"].includes(values["leader-elect"]!)) throw new UsageError(`--leader-elect: ${values["leader-elect"]} is not true or false`);
      if (values.environments !== "pulumi" && values.environments !== "none") throw new UsageError(`--environments: ${values.environments} is not pulumi or none`);
      return runController({
        kubeconfig: values.kubeconfig,
        namespace: values.namespace,
        metricsPort: port,
        leaderElect: values["leader-elect"] === "true",
        leaseNamespace: values["lease-namespace"]!,
        leaseName: values["lease-name"]!,
        identity: values.id!,
        environments: values.environments,
        stateDir: values["state-dir"],
      });
    }
    case "gateway":
      return gatewayCommand(rest);
    case "quarantine":
      return quarantineCommand(rest);
    case "dev":
      return devCommand(rest);
    case "status":
      return statusCommand(rest);
    case "promote":
    case "abort":
    case "retry":
      return controlCommand(command, rest);
    case "preview":
      return previewCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`airollout: ${(err as Error).message}\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`airollout: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
