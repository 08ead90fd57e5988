/**
 * `make bench`: the gateway benchmark (bench/gateway.ts), the diff engine micro-benchmark
 * (controller/src/diff/bench.ts), the decision benchmark (bench/decision.ts) and the shadow
 * step's detection benchmark (bench/detection.ts), each in a
 * process of its own one after the other, printed as one JSON object. Loopback only. A part that
 * fails is reported as `{ "error": ... }` and the exit code is 1.
 * Run: node_modules/.bin/node bench/run.ts [seconds-per-run]
 */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const seconds = process.argv[2] ?? "2";

/** Runs a script with this Node and returns the last JSON line it printed. */
function runJson(script: string, args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(ROOT, script), ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.on("error", reject);
    p.on("exit", (code) => {
      const line = out.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
      if (code !== 0 || line === undefined) {
        reject(new Error(`${script} exited with ${code}; output:\n${out.slice(-2000)}`));
        return;
      }
      try {
        resolve(JSON.parse(line));
      } catch (err) {
        reject(new Error(`${script} printed no JSON: ${line}`, { cause: err }));
      }
    });
  });
}

const parts: [string, string, string[]][] = [
  ["gateway", "bench/gateway.ts", [seconds]],
  ["diff", "controller/src/diff/bench.ts", ["2"]],
  ["decision", "bench/decision.ts", []],
  ["detection", "bench/detection.ts", ["2000"]],
];
const out: Record<string, unknown> = {};
let failed = false;
for (const [name, script, args] of parts) {
  try {
    out[name] = await runJson(script, args);
  } catch (err) {
    failed = true;
    out[name] = { error: (err as Error).message };
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);
if (failed) process.exitCode = 1;
