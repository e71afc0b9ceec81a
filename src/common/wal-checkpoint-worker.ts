/**
 * The worker thread of `sqlite-checkpoints.ts`: its own connection to one SQLite file in WAL mode,
 * copying committed WAL frames back into the database (`wal_checkpoint(PASSIVE)`: never waits for
 * and never blocks the writer or a reader) every few milliseconds while the file is written, less
 * and less often while it is not.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointWorkerData {
  path: string;
  /** Between two checkpoints while frames keep coming. */
  busyIntervalMs: number;
  /** The longest wait once nothing new came (the wait doubles from busyIntervalMs). */
  idleIntervalMs: number;
}

/** To the owning thread: a checkpoint that copied frames (`log` in the WAL, `checkpointed` of them), or an error. */
export type CheckpointWorkerMessage =
  | { type: 'checkpointed'; log: number; checkpointed: number }
  | { type: 'error'; message: string };

interface CheckpointRow {
  busy: number;
  log: number;
  checkpointed: number;
}

const port = parentPort;
if (!port) throw new Error('wal-checkpoint-worker runs as a worker thread');
const { path, busyIntervalMs, idleIntervalMs } = workerData as CheckpointWorkerData;
const db = new Database(path, { fileMustExist: true });
const checkpoint = db.prepare<[], CheckpointRow>('PRAGMA wal_checkpoint(PASSIVE)');
let last = { log: -1, checkpointed: -1 };
let wait = busyIntervalMs;
let reportedError = false;
let timer: NodeJS.Timeout | undefined = setTimeout(run, wait);

function run(): void {
  try {
    const row = checkpoint.get();
    if (row && (row.log !== last.log || row.checkpointed !== last.checkpointed)) {
      last = { log: row.log, checkpointed: row.checkpointed };
      wait = busyIntervalMs;
      if (row.checkpointed > 0)
        port?.postMessage({ type: 'checkpointed', log: row.log, checkpointed: row.checkpointed });
    } else wait = Math.min(idleIntervalMs, wait * 2);
    reportedError = false;
  } catch (error) {
    // Said once per run of failures, not every few milliseconds.
    if (!reportedError)
      port?.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    reportedError = true;
    wait = idleIntervalMs;
  }
  timer = setTimeout(run, wait);
}

port.on('message', (message: unknown) => {
  if (message !== 'stop') return;
  clearTimeout(timer);
  timer = undefined;
  db.close();
  port.close();
});
