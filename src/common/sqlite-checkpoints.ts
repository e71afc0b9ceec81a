import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CheckpointWorkerData, CheckpointWorkerMessage } from './wal-checkpoint-worker.js';

/**
 * WAL checkpoints off the event loop (issue 20). In WAL mode every commit appends pages to the
 * log, and by default the committing connection copies them back into the database once the log
 * holds 1,000 pages — inside whichever commit crosses that line, fsyncs included, so every socket of
 * the process waits a few milliseconds then. Here a worker thread with its own connection does it
 * instead (`wal_checkpoint(PASSIVE)`, which never waits for the writer), and the writer's own
 * checkpoint stays only as a safety net at 10,000 pages, for a worker that is gone or behind. The
 * writer can still wait a moment for the lock slot a running checkpoint holds: fine for the
 * connector, whose answers all follow their commits, not for the gateway's inbox (see there).
 * Durability is the same: a commit is in the log before it returns either way; the checkpoint only
 * moves committed pages. Under steady writes the log is rarely all copied at the moment a write
 * begins (when SQLite would start it over), so it grows to the safety net, whose checkpoint then
 * finds nearly everything copied: 40 MB of log at most, one short stall per 10,000 pages instead
 * of one per 1,000. Measured with the `latency` bench (web chat → echo turn), four runs alternated
 * with the build before: max load 2,568–2,681 → 2,885–3,093 turns/s (+13 %), p99 at half of it
 * unchanged (7–10 ms, at the higher load) — with the gateway's inbox on it too, as it then was.
 */

const BUSY_INTERVAL_MS = 20;
const IDLE_INTERVAL_MS = 1_000;
/** SQLite's default `wal_autocheckpoint`, given back when the worker stops or fails. */
const DEFAULT_AUTOCHECKPOINT_PAGES = 1_000;
const SAFETY_NET_PAGES = 10_000;
const STOP_TIMEOUT_MS = 2_000;

export interface BackgroundCheckpoints {
  /** False when checkpoints stay on the writer's connection (no file, no worker script, or it failed). */
  readonly active: boolean;
  /** Checkpoints that copied frames, and the latest one's figures. */
  readonly stats: { checkpoints: number; log: number; checkpointed: number };
  /** Stop the worker (its connection closed) and give the writer back its own checkpoints. */
  stop(): Promise<void>;
}

/** What is asked of the writer's connection (a better-sqlite3 `Database`; structural, so the typings need no better-sqlite3). */
export interface CheckpointedConnection {
  readonly open: boolean;
  pragma(source: string): unknown;
}

export interface BackgroundCheckpointOptions {
  /** A worker error or exit: checkpoints are back on the writer's connection. */
  onError?: (message: string) => void;
  /** The compiled worker script; the default is the one next to this module. */
  workerUrl?: URL;
}

const WORKER_URL = new URL('./wal-checkpoint-worker.js', import.meta.url);

/**
 * Checkpoint `db` (opened on `path`, WAL mode) from a worker thread. From the TypeScript sources
 * (vitest), where no compiled worker script sits next to this module, checkpoints stay where they
 * were, on the writer's connection.
 */
export function startBackgroundCheckpoints(
  db: CheckpointedConnection,
  path: string,
  options: BackgroundCheckpointOptions = {},
): BackgroundCheckpoints {
  const stats = { checkpoints: 0, log: 0, checkpointed: 0 };
  const url = options.workerUrl ?? WORKER_URL;
  if (path === '' || path === ':memory:' || !existsSync(fileURLToPath(url)))
    return { active: false, stats, stop: async () => undefined };
  const data: CheckpointWorkerData = {
    path,
    busyIntervalMs: BUSY_INTERVAL_MS,
    idleIntervalMs: IDLE_INTERVAL_MS,
  };
  const worker = new Worker(url, { workerData: data });
  worker.unref();
  let active = true;
  let stopping = false;
  /** Checkpoints back on the writer's connection; true the first time. */
  const handBack = (): boolean => {
    if (!active) return false;
    active = false;
    if (db.open) db.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
    return true;
  };
  const fallBack = (message: string): void => {
    if (handBack()) options.onError?.(message);
  };
  db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
  worker.on('message', (message: CheckpointWorkerMessage) => {
    if (message.type === 'checkpointed') {
      stats.checkpoints++;
      stats.log = message.log;
      stats.checkpointed = message.checkpointed;
    } else options.onError?.(`background checkpoint failed: ${message.message}`);
  });
  worker.on('error', (error) => fallBack(`background checkpoints stopped: ${error.message}`));
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  void exited.then(() => {
    if (!stopping) fallBack('background checkpoints stopped: the worker exited');
  });
  return {
    get active() {
      return active;
    },
    stats,
    async stop() {
      if (stopping) return exited;
      stopping = true;
      worker.postMessage('stop');
      const timer = setTimeout(() => void worker.terminate(), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      handBack();
    },
  };
}
