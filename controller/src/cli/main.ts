/**
 * The airollout command line: finds the command, answers `--help` from its declared flags
 * (commands.ts), and hands over to the command's module in cli/, loaded only then, so help and
 * the light commands never load the Pulumi or gateway adapters (wired in controller.ts and
 * gateway.ts only). Also runs as a kubectl plugin (`kubectl airollout status <name>`) when
 * bin/airollout is on PATH as kubectl-airollout.
 */
import { COMMANDS, renderHelp, renderUsage, wantsHelp } from "./commands.ts";
import { UsageError } from "./errors.ts";

async function run(command: string, rest: string[]): Promise<number> {
  switch (command) {
    case "controller":
      return (await import("./controller.ts")).controllerCommand(rest);
    case "gateway":
      return (await import("./gateway.ts")).gatewayCommand(rest);
    case "quarantine":
      return (await import("./gateway.ts")).quarantineCommand(rest);
    case "dev":
      return (await import("./dev.ts")).devCommand(rest);
    case "status":
      return (await import("./status.ts")).statusCommand(rest);
    case "promote":
    case "abort":
    case "retry":
      return (await import("./control.ts")).controlCommand(command, rest);
    case "preview":
      return (await import("./preview.ts")).previewCommand(rest);
    case "stacks":
      return (await import("./preview.ts")).stacksCommand(rest);
    case "dashboard":
      return (await import("./dashboard.ts")).dashboardCommand(rest);
    case "report":
      return (await import("./dashboard.ts")).reportCommand(rest);
    case "golden":
      return (await import("./golden.ts")).goldenCommand(rest);
    case "fixtures":
      return (await import("./fixtures.ts")).fixturesCommand(rest);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h") {
    process.stdout.write(renderUsage());
    return command === undefined ? 2 : 0;
  }
  if (command === "help") {
    const about = COMMANDS.find((c) => c.name === rest[0]);
    process.stdout.write(about ? renderHelp(about) : renderUsage());
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === command);
  if (cmd && wantsHelp(rest)) {
    process.stdout.write(renderHelp(cmd));
    return 0;
  }
  return run(command, rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      const cmd = COMMANDS.find((c) => c.name === process.argv[2]);
      process.stderr.write(`airollout: ${(err as Error).message}\n\n${cmd ? renderHelp(cmd) : renderUsage()}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`airollout: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
