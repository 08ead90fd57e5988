/**
 * Every command's flags, declared once: the parser (parseFlags) and the help (renderHelp) read
 * the same table, so `airollout <command> --help` lists exactly the flags the command accepts.
 * This module imports nothing heavy, so `--help` answers without loading the adapters.
 */
import { parseArgs } from "node:util";

/** One flag: what parseArgs needs plus the words of its help line. */
export interface Flag {
  type: "string" | "boolean";
  short?: string;
  default?: string | boolean;
  /** The value's placeholder in the help (`--namespace NS`); none for booleans. */
  arg?: string;
  help: string;
}

/** A command (with its subcommands, which share one set of flags). */
export interface Command<F extends Record<string, Flag> = Record<string, Flag>> {
  name: string;
  /** One line each: the ways to call it, without the leading `airollout`. */
  synopsis: string[];
  summary: string;
  flags: F;
  positionals: boolean;
}

const HELP = { type: "boolean", short: "h", help: "print this help and exit" } as const satisfies Flag;
const KUBECONFIG = { type: "string", arg: "PATH", help: "kubeconfig file (default: the files of $KUBECONFIG merged, else ~/.kube/config, else in-cluster)" } as const satisfies Flag;
const CONTEXT = { type: "string", arg: "NAME", help: "kubeconfig context (default: the current context)" } as const satisfies Flag;

/**
 * kubectl's flags that choose the cluster and the namespace, one set for every command that
 * talks to a cluster as the user (kube/kubeconfig.ts's kubeTarget applies them, by kubectl's
 * precedence: --kubeconfig > $KUBECONFIG > ~/.kube/config; --context; -n over the context's).
 */
export const KUBE_FLAGS = {
  kubeconfig: KUBECONFIG,
  context: CONTEXT,
  namespace: { type: "string", short: "n", arg: "NS", help: "namespace (default: the context's namespace, else default)" },
} as const satisfies Record<string, Flag>;

/** kubectl's -A, for the commands that list across namespaces. */
export const ALL_NAMESPACES = {
  "all-namespaces": { type: "boolean", short: "A", default: false, help: "every namespace you may list (instead of -n)" },
} as const satisfies Record<string, Flag>;

/**
 * The egress policy (api/egress.ts), the same flags on the controller and the gateway: the
 * controller refuses a rollout that dials outside it, the gateway never routes there.
 */
const EGRESS = {
  "egress-allow-hosts": { type: "string", arg: "HOSTS", help: "hosts rollouts may dial, comma-separated, exact or *.suffix (default: none listed)" },
  "egress-allow-cidrs": { type: "string", arg: "CIDRS", help: "IP blocks rollouts may dial, comma-separated; may reopen an always-denied block (default: none)" },
  "egress-allow-namespaces": { type: "string", arg: "NAMESPACES", help: "namespaces whose services any rollout may dial, comma-separated, or * (default: only the rollout's own)" },
  "egress-deny-loopback": { type: "boolean", help: "refuse loopback addresses and localhost (the Helm chart sets it)" },
  "egress-default": { type: "string", default: "allow", arg: "allow|deny", help: "for hosts and IP addresses no rule matches (default allow; the Helm chart sets deny)" },
} as const satisfies Record<string, Flag>;

function command<const F extends Record<string, Flag>>(c: Omit<Command<F>, "flags" | "positionals"> & { flags: F; positionals?: boolean }): Command<F & { help: typeof HELP }> {
  return { ...c, positionals: c.positionals ?? false, flags: { ...c.flags, help: HELP } };
}

export const CONTROLLER = command({
  name: "controller",
  synopsis: ["controller [flags]"],
  summary: "run the AIRollout controller (KUBECONFIG or in-cluster config)",
  flags: {
    kubeconfig: KUBECONFIG,
    namespace: { type: "string", arg: "NS", help: "watch one namespace (default: all)" },
    "metrics-port": { type: "string", default: "8080", arg: "N", help: "port of /healthz, /readyz, /metrics (default 8080; 0 = any free port)" },
    "bind-address": { type: "string", arg: "ADDR", help: "address /healthz, /readyz, /metrics listen on (default: 0.0.0.0 in a Pod, 127.0.0.1 run by hand)" },
    "leader-elect": { type: "string", default: "true", arg: "BOOL", help: "elect a leader through a Lease (default true); a lost lease makes it a candidate again" },
    "lease-namespace": { type: "string", arg: "NS", help: "namespace of the Lease and the published backend (default: $POD_NAMESPACE or default)" },
    "lease-name": { type: "string", default: "airollout-controller", arg: "NAME", help: "name of the Lease (default airollout-controller)" },
    id: { type: "string", arg: "ID", help: "identity in the Lease (default: hostname_pid)" },
    environments: { type: "string", default: "pulumi", arg: "pulumi|none", help: "stand image versions up through Pulumi (default), or not at all" },
    "state-dir": { type: "string", arg: "PATH", help: "Pulumi file backend and workspaces (default: ~/.local/state/airollout/controller)" },
    "preview-gc-interval": { type: "string", default: "1m", arg: "DURATION", help: "how often expired preview environments are destroyed (default 1m; also on winning the lease)" },
    "gateway-url": { type: "string", arg: "URL", help: "the gateway's admin (metrics) port, where AIPreviews fetch their rollout's fixtures (default: none; a preview asking for fixtures then reports them missing)" },
    ...EGRESS,
  },
});

export const GATEWAY = command({
  name: "gateway",
  synopsis: ["gateway [flags]"],
  summary: "run the webhook gateway: POST /hooks/<namespace>/<rollout>/<path>",
  flags: {
    kubeconfig: { type: "string", arg: "PATH", help: "kubeconfig file (AIRollouts are watched, signature Secrets read; default: the files of $KUBECONFIG merged, else ~/.kube/config, else in-cluster)" },
    context: CONTEXT,
    namespace: { type: "string", arg: "NS", help: "watch one namespace (default: all)" },
    port: { type: "string", default: "8080", arg: "N", help: "webhook port, also serving /metrics, /healthz, /readyz (default 8080)" },
    host: { type: "string", default: "0.0.0.0", arg: "ADDR", help: "listen address (default 0.0.0.0)" },
    "metrics-port": { type: "string", arg: "N", help: "also serve /metrics, /healthz, /readyz on this port" },
    "state-dir": { type: "string", arg: "DIR", help: "SQLite files: quarantine.db, idempotency.db (default: $AIROLLOUT_STATE_DIR or ~/.local/state/airollout/gateway)" },
    "quarantine-max-rows": { type: "string", arg: "N", help: "rows kept in the quarantine (default 100000)" },
    "fixtures-per-rollout": { type: "string", arg: "N", help: "masked fixtures kept per rollout in fixtures.db, the oldest dropped first (default 200)" },
    "fixtures-total": { type: "string", arg: "N", help: "masked fixtures kept over all rollouts (default 10000)" },
    "fixtures-max-age": { type: "string", arg: "DURATION", help: "fixtures older than this are deleted (default 168h)" },
    "fixtures-max-bytes": { type: "string", arg: "N", help: "largest masked body kept as a fixture; larger webhooks are not kept (default 65536)" },
    "fixtures-rate": { type: "string", arg: "R", help: "fixtures recorded per second per rollout, bursts of 10x (default 1)" },
    "shadow-workers": { type: "string", arg: "N", help: "worker threads for shadow copies and diffs (default: cores - 1, 1 to 4; 0 = on the thread that answers webhooks)" },
    "shadow-nice": { type: "string", arg: "N", help: "nice steps the shadow threads run below the answering thread on Linux, 0 to 19 (default 10: webhooks first, shadow coverage drops when the CPU is short; 0: coverage kept at the webhooks' expense)" },
    ...EGRESS,
  },
});

export const QUARANTINE = command({
  name: "quarantine",
  synopsis: ["quarantine list [--rollout NS/NAME] [--limit N] [--json]", "quarantine replay ID --gateway URL"],
  summary: "list refused webhooks, or re-send one through a gateway",
  positionals: true,
  flags: {
    "state-dir": { type: "string", arg: "DIR", help: "the gateway's state directory (default: $AIROLLOUT_STATE_DIR or ~/.local/state/airollout/gateway)" },
    rollout: { type: "string", arg: "NS/NAME", help: "(list) only this rollout's payloads" },
    namespace: { type: "string", short: "n", arg: "NS", help: "(list) only this namespace's payloads" },
    limit: { type: "string", default: "50", arg: "N", help: "(list) at most N rows (default 50)" },
    json: { type: "boolean", default: false, help: "(list) print JSON, bodies in base64" },
    gateway: { type: "string", arg: "URL", help: "(replay) the gateway's base URL (default: $AIROLLOUT_GATEWAY_URL)" },
  },
});

export const DEV = command({
  name: "dev",
  synopsis: ["dev up [--node-simulator] [--dir PATH]", "dev down [--purge] [--dir PATH]", "dev status [--dir PATH]", "dev env [--dir PATH]"],
  summary: "the embedded local control plane (etcd, kube-apiserver, kube-controller-manager); `eval \"$(airollout dev env)\"` puts its KUBECONFIG and kubectl in your shell",
  flags: {
    dir: { type: "string", arg: "PATH", help: "state directory (default: $AIROLLOUT_DEV_DIR or ~/.local/state/airollout/dev)" },
    purge: { type: "boolean", default: false, help: "(down) also delete the state directory" },
    "without-controller-manager": { type: "boolean", default: false, help: "(up) start etcd and kube-apiserver only" },
    "node-simulator": { type: "boolean", default: false, help: "(up) also start KWOK and kube-scheduler: one fake Node that marks Pods Running and Ready" },
  },
});

export const STATUS = command({
  name: "status",
  synopsis: ["status NAME [-n NS] [-w [--timeout DURATION]]"],
  summary: "show a rollout's phase, steps, golden suite, analysis and conditions; -w follows it until it ends (exit 0 promoted, 3 rolled back, 4 aborted, 5 paused for a human, 6 stalled, 7 timed out, 1 error, 130 Ctrl-C)",
  positionals: true,
  flags: {
    ...KUBE_FLAGS,
    watch: { type: "boolean", short: "w", default: false, help: "follow the rollout through a watch, reprinting on every change, until it is promoted, rolled back, aborted, paused for a human or stalled" },
    timeout: { type: "string", arg: "DURATION", help: "(-w) give up after DURATION with exit code 7 (default: no limit)" },
  },
});

const control = (name: "promote" | "abort" | "retry", summary: string) =>
  command({
    name,
    synopsis: [name === "promote" ? "promote NAME [--full]" : `${name} NAME`],
    summary,
    positionals: true,
    flags: {
      ...KUBE_FLAGS,
      full: { type: "boolean", default: false, help: "(promote) skip the remaining steps: promote fully now" },
    },
  });

export const PROMOTE = control("promote", "complete the current step (a pause, an inconclusive analysis); --full skips to promotion");
export const ABORT = control("abort", "roll back now: weight 0, candidate environments torn down");
export const RETRY = control("retry", "restart a RolledBack rollout from step 1");

const BACKEND = { type: "string", arg: "URL", help: "Pulumi backend (default: the one the controller publishes in its ConfigMap)" } as const satisfies Flag;
const BACKEND_STATE_DIR = { type: "string", arg: "PATH", help: "a controller state directory whose file backend to use (overrides the published backend)" } as const satisfies Flag;
const CONTROLLER_NAMESPACE = { type: "string", arg: "NS", help: "namespace of the controller's published backend (default: search every namespace)" } as const satisfies Flag;

export const PREVIEW = command({
  name: "preview",
  synopsis: ["preview up ID --rollout NAME [--image IMAGE] [--ttl 24h] [--fixtures N] [--wait]", "preview destroy ID [--wait]", "preview list [--rollout NAME] [-A]"],
  summary: "preview environments as AIPreview objects: up applies one, list shows their status, destroy deletes one (the controller stands the stack up and tears it down)",
  positionals: true,
  flags: {
    rollout: { type: "string", arg: "NAME", help: "(up) the AIRollout the preview belongs to (required); (list) only its previews" },
    ...KUBE_FLAGS,
    image: { type: "string", arg: "IMAGE", help: "(up) the image to preview, as version ID (default: the rollout's candidate)" },
    ttl: { type: "string", arg: "DURATION", help: "(up) lifetime from creation, then the stack is destroyed (default: the rollout's spec.preview.ttl, else 24h)" },
    fixtures: { type: "string", arg: "N", help: "(up) replay N of the rollout's recorded fixtures to the preview and the stable once Ready" },
    wait: { type: "boolean", default: false, help: "(up) wait until Ready and print the URL; (destroy) wait until the stack is destroyed and the object gone" },
    timeout: { type: "string", default: "10m", arg: "DURATION", help: "how long --wait waits (default 10m)" },
    ...ALL_NAMESPACES,
  },
});

export const STACKS = command({
  name: "stacks",
  synopsis: ["stacks [--rollout NAME]"],
  summary: "list the Pulumi stacks of the controller's environments (canary, shadow, previews) with their URLs",
  flags: {
    rollout: { type: "string", arg: "NAME", help: "only this AIRollout's stacks (its own spec.environments.pulumi.backend if it names one)" },
    ...KUBE_FLAGS,
    backend: BACKEND,
    "state-dir": BACKEND_STATE_DIR,
    "controller-namespace": CONTROLLER_NAMESPACE,
  },
});

const DIFFS_GATEWAY = { type: "string", arg: "URL", help: "the gateway's base URL, for the shadow diffs (default: $AIROLLOUT_GATEWAY_URL; none: no diff view)" } as const satisfies Flag;

export const DASHBOARD = command({
  name: "dashboard",
  synopsis: ["dashboard [--port 3100] [-n NS | --all-namespaces] [--gateway URL] [--read-only]"],
  summary: "serve the web dashboard (live rollouts, steps, analysis, shadow diffs, promote/abort) with your own kubeconfig and RBAC",
  flags: {
    port: { type: "string", default: "3100", arg: "N", help: "port to listen on (default 3100; 0 = any free port)" },
    address: { type: "string", default: "127.0.0.1", arg: "ADDR", help: "address to listen on (default 127.0.0.1; another address exposes your credentials' reach to that network)" },
    ...KUBE_FLAGS,
    ...ALL_NAMESPACES,
    gateway: DIFFS_GATEWAY,
    "read-only": { type: "boolean", default: false, help: "refuse promote, abort and retry whatever your RBAC allows" },
  },
});

export const REPORT = command({
  name: "report",
  synopsis: ["report NAME [-n NS] [--gateway URL] > report.html"],
  summary: "write one rollout's dashboard views as a self-contained HTML page (no network needed to open it)",
  positionals: true,
  flags: {
    ...KUBE_FLAGS,
    gateway: DIFFS_GATEWAY,
    output: { type: "string", short: "o", arg: "FILE", help: "write to FILE instead of standard output" },
  },
});

export const GOLDEN = command({
  name: "golden",
  synopsis: ["golden run --suite FILE --url URL [--junit FILE]", "golden record --from-stable URL --requests FILE --out FILE"],
  summary: "run a golden suite against any URL (exit 0 when it passes, JUnit XML for CI), or record one from the stable's answers",
  positionals: true,
  flags: {
    suite: { type: "string", arg: "FILE", help: "(run) the suite, JSON or YAML: {version, cases: [{name, request, expect}]}" },
    url: { type: "string", arg: "URL", help: "(run) where each case is POSTed" },
    junit: { type: "string", arg: "FILE", help: "(run) also write the results as JUnit XML" },
    "max-failures": { type: "string", default: "0", arg: "N", help: "(run) failed cases accepted (default 0)" },
    concurrency: { type: "string", default: "4", arg: "N", help: "requests in flight at once (default 4)" },
    timeout: { type: "string", default: "10s", arg: "DURATION", help: "timeout of one request (default 10s)" },
    "from-stable": { type: "string", arg: "URL", help: "(record) the stable version's URL, whose answers become the expectations" },
    requests: { type: "string", arg: "FILE", help: "(record) the inputs, JSON or YAML: a list of {name?, headers?, body}" },
    out: { type: "string", arg: "FILE", help: "(record) where the suite is written (YAML)" },
    tolerance: { type: "string", default: "0.03", arg: "R", help: "(record) relative tolerance band of numbers (default 0.03 = +-3%)" },
  },
});

export const FIXTURES = command({
  name: "fixtures",
  synopsis: ["fixtures export --rollout NAME [-n NS] [--count N] [-o FILE] [--gateway URL]"],
  summary: "write a rollout's masked fixtures (recorded webhooks) from the gateway as a versioned file that `golden record --requests` reads",
  positionals: true,
  flags: {
    rollout: { type: "string", arg: "NAME", help: "the AIRollout whose fixtures are exported (required)" },
    ...KUBE_FLAGS,
    count: { type: "string", default: "50", arg: "N", help: "the newest N fixtures, 1 to 1000 (default 50)" },
    output: { type: "string", short: "o", arg: "FILE", help: "write to FILE instead of standard output" },
    gateway: { type: "string", arg: "URL", help: "the gateway's admin (metrics) port URL (default: $AIROLLOUT_GATEWAY_URL)" },
  },
});

/** Every command, in the order the general help lists them. */
export const COMMANDS: readonly Command[] = [CONTROLLER, GATEWAY, QUARANTINE, DEV, STATUS, PROMOTE, ABORT, RETRY, PREVIEW, STACKS, DASHBOARD, REPORT, GOLDEN, FIXTURES];

/** Parses a command's arguments against its declared flags (the only parser the CLI uses). */
export function parseFlags<F extends Record<string, Flag>>(cmd: Command<F>, args: string[]) {
  return parseArgs({ args, options: cmd.flags, allowPositionals: cmd.positionals, strict: true });
}

/** Whether the arguments ask for help (`--help` or `-h` before any `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}

function flagLabel(name: string, f: Flag): string {
  return `${f.short ? `-${f.short}, ` : "    "}--${name}${f.arg ? ` ${f.arg}` : ""}`;
}

/**
 * How the user called us, for the help: `kubectl airollout` when run as the kubectl plugin
 * (bin/airollout sets AIROLLOUT_PROGRAM from the name it was run by), else `airollout`.
 */
export function programName(env: NodeJS.ProcessEnv = process.env): string {
  return env.AIROLLOUT_PROGRAM === "kubectl airollout" ? "kubectl airollout" : "airollout";
}

/** The subcommands a command's synopsis lines name (`preview up|destroy|list`), none for `status NAME`. */
export function subcommandsOf(cmd: Command): string[] {
  const subs = cmd.synopsis.map((s) => s.split(" ")[1] ?? "").filter((w) => /^[a-z][a-z-]*$/.test(w));
  return [...new Set(subs)];
}

/** The help of one command: its synopsis, summary and every flag it accepts. */
export function renderHelp(cmd: Command, program = programName()): string {
  const entries = Object.entries(cmd.flags);
  const width = Math.max(...entries.map(([n, f]) => flagLabel(n, f).length)) + 2;
  const lines = cmd.synopsis.map((s, i) => `${i === 0 ? "usage:" : "      "} ${program} ${s}`);
  lines.push("", cmd.summary, "", "flags:");
  for (const [name, f] of entries) lines.push(`  ${flagLabel(name, f).padEnd(width)}${f.help}`);
  return lines.join("\n") + "\n";
}

/** The general help: every command with its summary. */
export function renderUsage(program = programName()): string {
  const lines = [`usage: ${program} <command> [flags]      (${program} <command> --help lists a command's flags)`, "", "commands:"];
  for (const c of COMMANDS) {
    lines.push(`  ${c.synopsis[0]}`);
    for (const s of c.synopsis.slice(1)) lines.push(`  ${s}`);
    lines.push(`      ${c.summary}`);
  }
  return lines.join("\n") + "\n";
}
