/**
 * Entry point of the fixtures' checkpoint thread (FixtureStore): its own connection to
 * fixtures.db runs the WAL checkpoints every `intervalMs`, so the gateway's event loop never
 * does. In WAL mode with synchronous=NORMAL a commit does not wait for the disk; a checkpoint
 * does (it syncs the WAL and the database file), and SQLite's automatic checkpoint runs inside
 * whichever commit crosses its threshold: in the gateway, a fixture insert on the thread that
 * answers webhooks, stalling every request behind it for one or two disk syncs (10-25 ms on the
 * benchmark's VM, every ~110 fixtures once the per-rollout cap trims on each insert).
 * PASSIVE checkpoints never block the store's writers. Messages in: "close"; out:
 * `{ checkpointed: frames }` after a checkpoint that moved frames, `{ error }` after a failed one
 * (retried at the next interval).
 */
import { DatabaseSync } from "node:sqlite";
import { parentPort, workerData } from "node:worker_threads";

export interface CheckpointerData {
  file: string;
  intervalMs: number;
}

export type CheckpointerReport = { checkpointed: number } | { error: string };

const port = parentPort;
if (!port) throw new Error("fixtures-checkpoint.ts runs as a worker thread of the gateway");
const { file, intervalMs } = workerData as CheckpointerData;
const db = new DatabaseSync(file);
// A busy database (a writer restarting the WAL) is waited for here, on this thread only.
db.exec("PRAGMA busy_timeout=5000;");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
let done = 0;

const timer = setInterval(() => {
  try {
    const r = checkpoint.get() as { checkpointed: number | bigint } | undefined;
    const n = Number(r?.checkpointed ?? 0);
    // The WAL restarts after a complete checkpoint: the count falls back, nothing is lost.
    if (n !== done && n > 0) port.postMessage({ checkpointed: n } satisfies CheckpointerReport);
    done = n;
  } catch (err) {
    port.postMessage({ error: (err as Error).message } satisfies CheckpointerReport);
  }
}, intervalMs);

port.on("message", (m: unknown) => {
  if (m !== "close") return;
  clearInterval(timer);
  db.close();
  port.close();
});
