/**
 * The fixtures' WAL checkpoints, run off the thread that answers webhooks: the gateway's first
 * shadow worker (shadow-worker.ts, at its lower priority) calls startCheckpoints with the
 * gateway's fixtures.db, so no thread is added for it. In WAL mode with synchronous=NORMAL a
 * commit does not wait for the disk; a checkpoint does (it syncs the WAL and the database file),
 * and SQLite's automatic checkpoint runs inside whichever commit crosses its threshold: in the
 * gateway, a fixture insert on the main thread, stalling every request behind it for one or two
 * disk syncs (14-25 ms on the benchmark's VM, every ~110 fixtures once the per-rollout cap trims
 * on each insert). Checkpointing every second from here keeps the WAL far below that threshold;
 * the automatic checkpoint stays on as the backstop (no shadow worker, `--shadow-workers 0`, or
 * one that falls behind). PASSIVE checkpoints never block the store's writers.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** How often the WAL is checkpointed: at the default fixture rate, a few dozen pages a time. */
export const FIXTURE_CHECKPOINT_MS = 1000;

/** What a shadow worker needs to checkpoint the fixtures (its workerData, plain data). */
export interface CheckpointTask {
  file: string;
  intervalMs: number;
}

/**
 * Checkpoints `task.file` every `task.intervalMs` on this thread, through a connection of its
 * own; `onCheckpoint` hears the WAL frames each checkpoint left checkpointed (tests). A failure (a file not
 * there yet, a busy database) waits for the next interval. Returns the stop function.
 */
export function startCheckpoints(task: CheckpointTask, onCheckpoint?: (frames: number) => void): () => void {
  let db: DatabaseSync | undefined;
  let checkpoint: StatementSync | undefined;
  const tick = () => {
    try {
      if (!db) {
        db = new DatabaseSync(task.file);
        // A busy database (a writer restarting the WAL) is waited for on this thread only.
        db.exec("PRAGMA busy_timeout=5000;");
        checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
      }
      const r = checkpoint!.get() as { checkpointed: number | bigint } | undefined;
      const frames = Number(r?.checkpointed ?? 0);
      if (frames > 0) onCheckpoint?.(frames);
    } catch {
      // Retried at the next interval; SQLite's automatic checkpoint bounds the WAL meanwhile.
    }
  };
  const timer = setInterval(tick, task.intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (db?.isOpen) db.close();
  };
}
