import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { MessageEvent } from '../protocol/index.js';

/**
 * The gateway's durable inbox: every accepted delivery is written here before the connector is
 * answered, and marked done when its turn ends. A crash therefore loses nothing accepted (pending
 * entries are replayed at the next boot), and delivery ids stay deduplicated across restarts.
 * A turn that had already started when the process died is not replayed (the agent saw it; running
 * it twice could repeat its side effects): it is reported and closed.
 */

const DONE_RETENTION_MS = 3600_000;

export interface PendingEntry {
  id: number;
  event: MessageEvent;
  /** The follow-up capability kind its replies go through (a Discord interaction's), if any. */
  followUpKind?: string;
}

/**
 * What became of an inbox entry: `answered` (the turn ran to its end, also with an error reply),
 * `stopped` (`/stop` or an interrupt), `refused` (drain), `ignored` (a press not for this gateway,
 * a `/stop` itself), `cut_by_shutdown` (a stop that could not wait: the chat was told),
 * `cut_by_crash` (found running at the next boot).
 */
export type InboxOutcome =
  | 'answered'
  | 'stopped'
  | 'refused'
  | 'ignored'
  | 'cut_by_shutdown'
  | 'cut_by_crash';

export interface InboxJournal {
  /**
   * Record an accepted event; null when this delivery id was accepted before. The record is durable
   * once {@link committed} resolves: only then may the delivery be acknowledged.
   */
  accept(
    deliveryId: string | undefined,
    sessionKey: string,
    event: MessageEvent,
    followUpKind?: string,
  ): number | null;
  started(id: number): void;
  done(id: number, outcome?: InboxOutcome): void;
  /** Resolves once everything recorded so far is committed. */
  committed(): Promise<void>;
}

export class SqliteInbox implements InboxJournal {
  private readonly insert: Database.Statement<[string | null, string, string, number, string | null]>;
  private readonly markStarted: Database.Statement<[number]>;
  private readonly markDone: Database.Statement<[number, string, number]>;
  private readonly prune: Database.Statement<[number]>;
  /** The batch's own statements, prepared once like the rest (issue 20): no SQL parse per burst. */
  private readonly begin: Database.Statement<[]>;
  private readonly commit: Database.Statement<[]>;
  private accepted = 0;
  /** Writes of this event-loop turn share one transaction (group commit); its waiters follow it. */
  private batchOpen = false;
  private batchWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];

  private constructor(private readonly db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS inbox (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      delivery_id TEXT UNIQUE,
      session_key TEXT NOT NULL,
      event TEXT NOT NULL,
      received_at INTEGER NOT NULL,
      state TEXT NOT NULL DEFAULT 'pending',
      done_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS inbox_state ON inbox (state, id);`);
    // Added with Discord interactions: how an entry's replies go (older files get the column).
    const columns = db.prepare('PRAGMA table_info(inbox)').all() as { name: string }[];
    if (!columns.some((column) => column.name === 'follow_up_kind'))
      db.exec('ALTER TABLE inbox ADD COLUMN follow_up_kind TEXT');
    // What became of an entry (#18): answered, stopped, refused, cut by a forced stop, …
    if (!columns.some((column) => column.name === 'outcome'))
      db.exec('ALTER TABLE inbox ADD COLUMN outcome TEXT');
    // The prune's own index (issue 20): without it every prune walked every done row still kept
    // (an hour of traffic) through `inbox_state`, a cost that grew with the inbox — at 5 k events/s
    // about 30 µs per accepted event after a few seconds, more than the insert itself.
    db.exec("CREATE INDEX IF NOT EXISTS inbox_done_at ON inbox (done_at) WHERE state = 'done'");
    this.insert = db.prepare(
      'INSERT INTO inbox (delivery_id, session_key, event, received_at, follow_up_kind) VALUES (?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING',
    );
    this.markStarted = db.prepare("UPDATE inbox SET state = 'started' WHERE id = ? AND state = 'pending'");
    this.markDone = db.prepare("UPDATE inbox SET state = 'done', done_at = ?, outcome = ? WHERE id = ?");
    // INDEXED BY: left to itself the planner picks `inbox_state` (state = ?) and scans every done row.
    this.prune = db.prepare(
      "DELETE FROM inbox INDEXED BY inbox_done_at WHERE state = 'done' AND done_at < ?",
    );
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
  }

  static open(path: string): SqliteInbox {
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
    }
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a commit survives the process dying at any point (what a redelivery would
    // otherwise repair); only an OS crash or power loss may lose the last commits, as in the connector.
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    // Checkpoints stay on this connection, not on a worker thread (`src/common/sqlite-checkpoints.ts`,
    // as the connector does): a checkpoint running beside it can hold this connection's next write
    // for a moment, and the `started` mark must follow a command agent's handover at once. With the
    // worker, the SIGKILL-mid-stream fault case ran one turn twice in 3 of 6 runs (0 of 5 without).
    return new SqliteInbox(db);
  }

  accept(
    deliveryId: string | undefined,
    sessionKey: string,
    event: MessageEvent,
    followUpKind?: string,
  ): number | null {
    this.openBatch();
    const result = this.insert.run(
      deliveryId ?? null,
      sessionKey,
      JSON.stringify(event),
      Date.now(),
      followUpKind ?? null,
    );
    if (result.changes === 0) return null;
    if (++this.accepted % 500 === 0) this.prune.run(Date.now() - DONE_RETENTION_MS);
    return Number(result.lastInsertRowid);
  }

  started(id: number): void {
    // Handed to the agent: durable at once, not with the next batch — a crash in between would
    // replay a turn the agent already has.
    this.commitBatch();
    this.markStarted.run(id);
  }

  done(id: number, outcome: InboxOutcome = 'answered'): void {
    this.markDone.run(Date.now(), outcome, id);
  }

  committed(): Promise<void> {
    if (!this.batchOpen) return Promise.resolve();
    return new Promise((resolve, reject) => this.batchWaiters.push({ resolve, reject }));
  }

  /**
   * A burst of deliveries (a coalesced socket message, concurrent POSTs) is journaled in one
   * transaction, committed after this turn of the event loop: one commit for many events.
   */
  private openBatch(): void {
    if (this.batchOpen) return;
    this.begin.run();
    this.batchOpen = true;
    setImmediate(() => this.commitBatch());
  }

  private commitBatch(): void {
    if (!this.batchOpen) return;
    const waiters = this.batchWaiters;
    this.batchWaiters = [];
    this.batchOpen = false;
    try {
      this.commit.run();
      for (const waiter of waiters) waiter.resolve();
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      for (const waiter of waiters) waiter.reject(error as Error);
    }
  }

  /**
   * At boot: close turns that were running when the process died, and return the entries that
   * never started, oldest first, for replay.
   */
  recover(): { pending: PendingEntry[]; interrupted: number } {
    const interrupted = this.db
      .prepare(
        "UPDATE inbox SET state = 'done', done_at = ?, outcome = 'cut_by_crash' WHERE state = 'started'",
      )
      .run(Date.now()).changes;
    const rows = this.db
      .prepare("SELECT id, event, follow_up_kind FROM inbox WHERE state = 'pending' ORDER BY id")
      .all() as { id: number; event: string; follow_up_kind: string | null }[];
    return {
      pending: rows.map((row) => ({
        id: row.id,
        event: JSON.parse(row.event) as MessageEvent,
        ...(row.follow_up_kind ? { followUpKind: row.follow_up_kind } : {}),
      })),
      interrupted,
    };
  }

  close(): void {
    this.commitBatch();
    if (this.db.open) this.db.close();
  }
}
