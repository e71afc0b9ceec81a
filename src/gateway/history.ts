import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ConversationMessage, HistoryStore } from './agents/types.js';

/** Messages kept per session by default; older ones are pruned on append. */
export const DEFAULT_MAX_MESSAGES_PER_SESSION = 200;

export interface SqliteHistoryOptions {
  /** At most this many messages are kept per session (default 200, minimum 1). */
  maxPerSession?: number;
}

interface MessageRow {
  role: string;
  content: string;
}

const ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant']);

function isFileless(path: string): boolean {
  return path === ':memory:' || path === '';
}

/**
 * Conversation history in SQLite (`$HERMES_HOME/…`), so a gateway restart keeps each session's
 * context. The file is created with mode 0600 (it holds users' conversations), runs in WAL mode and
 * keeps at most `maxPerSession` messages per session.
 */
export class SqliteHistoryStore implements HistoryStore {
  readonly #db: Database.Database;
  readonly #maxPerSession: number;
  readonly #load;
  readonly #insert;
  readonly #prune;
  readonly #appendTx;

  /**
   * Sessions with a message at or after `since`, read from the file at `path` without creating or
   * writing it (the dashboard asks this of a gateway's store it does not own); 0 when unreadable.
   */
  static countSessionsSince(path: string, since: number): number {
    if (!existsSync(path)) return 0;
    try {
      const db = new Database(path, { readonly: true, fileMustExist: true });
      try {
        const row = db
          .prepare<[number], { n: number }>(
            'SELECT COUNT(DISTINCT session_key) AS n FROM messages WHERE created_at >= ?',
          )
          .get(since);
        return row?.n ?? 0;
      } finally {
        db.close();
      }
    } catch {
      return 0;
    }
  }

  /** Open (creating if needed) the history database at `path`; `:memory:` gives a private one. */
  static open(path: string, options: SqliteHistoryOptions = {}): SqliteHistoryStore {
    if (!isFileless(path)) {
      const dir = dirname(path);
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
      // Create the file ourselves so it never exists with wider permissions; tighten an old one too.
      closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
    }
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.exec(`
        CREATE TABLE IF NOT EXISTS messages (
          id INTEGER PRIMARY KEY,
          session_key TEXT NOT NULL,
          role TEXT NOT NULL,
          content TEXT NOT NULL,
          created_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS messages_session ON messages (session_key, id);
      `);
      if (!isFileless(path)) {
        for (const extra of [`${path}-wal`, `${path}-shm`]) if (existsSync(extra)) chmodSync(extra, 0o600);
      }
      return new SqliteHistoryStore(db, options);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private constructor(db: Database.Database, options: SqliteHistoryOptions) {
    this.#db = db;
    const max = options.maxPerSession ?? DEFAULT_MAX_MESSAGES_PER_SESSION;
    this.#maxPerSession = Number.isFinite(max)
      ? Math.max(1, Math.floor(max))
      : DEFAULT_MAX_MESSAGES_PER_SESSION;
    this.#load = db.prepare<[string, number], MessageRow>(
      `SELECT role, content FROM (
         SELECT id, role, content FROM messages WHERE session_key = ? ORDER BY id DESC LIMIT ?
       ) ORDER BY id ASC`,
    );
    this.#insert = db.prepare<[string, string, string, number]>(
      'INSERT INTO messages (session_key, role, content, created_at) VALUES (?, ?, ?, ?)',
    );
    // Everything at or below the (max+1)-th newest message of the session goes.
    this.#prune = db.prepare<[string, string, number]>(
      `DELETE FROM messages WHERE session_key = ? AND id <= (
         SELECT id FROM messages WHERE session_key = ? ORDER BY id DESC LIMIT 1 OFFSET ?
       )`,
    );
    this.#appendTx = db.transaction((sessionKey: string, messages: ConversationMessage[]) => {
      const now = Date.now();
      for (const message of messages) this.#insert.run(sessionKey, message.role, message.content, now);
      this.#prune.run(sessionKey, sessionKey, this.#maxPerSession);
    });
  }

  load(sessionKey: string, limit: number): ConversationMessage[] {
    if (!Number.isFinite(limit) || limit <= 0) return [];
    const rows = this.#load.all(sessionKey, Math.floor(limit));
    const messages: ConversationMessage[] = [];
    for (const row of rows) {
      if (ROLES.has(row.role)) {
        messages.push({ role: row.role as ConversationMessage['role'], content: row.content });
      }
    }
    return messages;
  }

  append(sessionKey: string, messages: ConversationMessage[]): void {
    if (messages.length === 0) return;
    this.#appendTx(sessionKey, messages);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
