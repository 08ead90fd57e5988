/**
 * Summarises V8 CPU profiles (`node --cpu-prof`, e.g. from AIROLLOUT_BENCH_CPU_PROF) as text:
 * per profile (one per thread: Node names them CPU.<date>.<time>.<pid>.<thread id>.<seq>, thread
 * 0 being the main thread), the sampled time, the idle share, and the functions with the most
 * self time, grouped by function name and source file so that one function's many inlined or
 * recompiled copies count once. With --requests N it also prints microseconds per request.
 * Run: node_modules/.bin/node bench/profile-summary.ts <dir|file>... [--top 25] [--requests N]
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One function's self time in microseconds, keyed by "name (file:line)". */
export interface SelfTime {
  key: string;
  us: number;
}

/** A profile's total sampled time, idle time and self time per function, largest first. */
export function selfTimes(p: Profile): { totalUs: number; idleUs: number; top: SelfTime[]; files: SelfTime[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const acc = new Map<string, number>();
  const perFile = new Map<string, number>();
  let total = 0;
  let idle = 0;
  // timeDeltas[i] is the time before sample i; the time a sample stands for is the next delta.
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (dt <= 0) continue;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    total += dt;
    const f = node.callFrame;
    if (f.functionName === "(idle)") idle += dt;
    const file = f.url ? shortUrl(f.url) : "";
    const key = `${f.functionName || "(anonymous)"}${file ? ` ${file}:${f.lineNumber + 1}` : ""}`;
    acc.set(key, (acc.get(key) ?? 0) + dt);
    const group = file || f.functionName;
    perFile.set(group, (perFile.get(group) ?? 0) + dt);
  }
  const sorted = (m: Map<string, number>) => [...m].map(([key, us]) => ({ key, us })).sort((a, b) => b.us - a.us);
  return { totalUs: total, idleUs: idle, top: sorted(acc), files: sorted(perFile) };
}

/** node:internal paths stay as they are; project and node_modules paths lose the checkout prefix. */
function shortUrl(url: string): string {
  const path = url.startsWith("file://") ? url.slice(7) : url;
  const nm = path.lastIndexOf("node_modules/");
  if (nm >= 0) return path.slice(nm);
  return path.startsWith("/") ? relative(process.cwd(), path) : path;
}

function profileFiles(arg: string): string[] {
  if (!statSync(arg).isDirectory()) return [arg];
  return readdirSync(arg, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort()
    .map((f) => join(arg, f));
}

/** The thread id from Node's default profile name, or undefined for another name. */
function threadOf(file: string): string {
  const m = /^CPU\.\d+\.\d+\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(basename(file));
  if (!m) return "?";
  return m[1] === "0" ? "main thread" : `worker thread ${m[1]}`;
}

function main(argv: string[]): void {
  const flag = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const top = Number(flag("--top") ?? "25");
  const requests = flag("--requests") === undefined ? undefined : Number(flag("--requests"));
  if (!(Number.isInteger(top) && top > 0)) throw new Error(`--top: ${flag("--top")} is not a positive integer`);
  if (requests !== undefined && !(requests > 0)) throw new Error(`--requests: ${flag("--requests")} is not a positive number`);
  const inputs = argv.filter((a, i) => !a.startsWith("--") && !["--top", "--requests"].includes(argv[i - 1] ?? ""));
  if (inputs.length === 0) throw new Error("usage: profile-summary.ts <dir|file>... [--top N] [--requests N]");
  for (const file of inputs.flatMap(profileFiles)) {
    const s = selfTimes(JSON.parse(readFileSync(file, "utf8")) as Profile);
    const busy = s.totalUs - s.idleUs;
    const per = requests ? `, busy ${(busy / requests).toFixed(1)} us per request over ${requests}` : "";
    process.stdout.write(`\n${file} (${threadOf(file)}): ${(s.totalUs / 1e6).toFixed(2)} s sampled, ${((100 * s.idleUs) / s.totalUs).toFixed(1)}% idle${per}\n`);
    // Shares are of the busy (not idle) time: on a loaded machine the sampler also counts time
    // the thread waited for a core, so shares compare better than absolute times.
    const line = (t: SelfTime) => {
      const perReq = requests ? ` ${(t.us / requests).toFixed(2).padStart(8)} us/req` : "";
      return `  ${((100 * t.us) / busy).toFixed(1).padStart(5)}% ${(t.us / 1000).toFixed(0).padStart(7)} ms${perReq}  ${t.key}\n`;
    };
    process.stdout.write("  functions, self time (share of busy time):\n");
    for (const t of s.top.filter((x) => x.key !== "(idle)").slice(0, top)) process.stdout.write(line(t));
    process.stdout.write("  files (share of busy time):\n");
    for (const t of s.files.filter((x) => x.key !== "(idle)").slice(0, Math.ceil(top / 2))) process.stdout.write(line(t));
  }
}

if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1]))) main(process.argv.slice(2));
