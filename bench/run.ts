/**
 * `make bench`: the gateway benchmark (bench/gateway.ts: against nginx mirror and a bare Node
 * pass-through, AIROLLOUT_BENCH_ROUNDS rounds), the diff engine micro-benchmark
 * (controller/src/diff/bench.ts), the decision benchmark (bench/decision.ts), the shadow
 * step's detection benchmark (bench/detection.ts) and the scale benchmark (bench/scale.ts:
 * thousands of AIRollouts in the local control plane), each in a
 * process of its own one after the other, printed as one JSON object. Loopback only. A part that
 * fails is reported as `{ "error": ... }` (with its own figures when it printed them) and the
 * exit code is 1.
 * Run: node_modules/.bin/node bench/run.ts [seconds-per-run]
 * AIROLLOUT_SCALE=full (default: 1,000, 5,000 and 10,000 rollouts, a 10-minute soak; about an
 * hour on a busy 2-core machine) | quick (200 and 1,000, a 1-minute soak) | off.
 */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
// Gateway runs of 5 s: long enough at a few thousand req/s to overflow the shadow queue (coverage).
const seconds = process.argv[2] ?? "5";

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
        // A part that printed its figures and then failed (bench/scale.ts lists its errors) keeps them.
        let figures: unknown;
        try {
          figures = line === undefined ? undefined : JSON.parse(line);
        } catch {
          /* no figures */
        }
        reject(Object.assign(new Error(`${script} exited with ${code}; output:\n${out.slice(-2000)}`), { figures }));
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
const scale = process.env.AIROLLOUT_SCALE ?? "full";
if (!["full", "quick", "off"].includes(scale)) throw new Error(`AIROLLOUT_SCALE: ${scale} is not full, quick or off`);
if (scale !== "off") parts.push(["scale", "bench/scale.ts", scale === "quick" ? ["--quick"] : []]);
const out: Record<string, unknown> = {};
let failed = false;
for (const [name, script, args] of parts) {
  try {
    out[name] = await runJson(script, args);
  } catch (err) {
    failed = true;
    const figures = (err as { figures?: unknown }).figures;
    out[name] = { error: (err as Error).message, ...(figures && typeof figures === "object" ? { figures } : {}) };
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);
if (failed) process.exitCode = 1;
