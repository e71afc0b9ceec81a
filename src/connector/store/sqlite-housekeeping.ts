/**
 * The SQLite store's web-chat history and retention (migration 5), apart from the outbox code in
 * `sqlite.ts`: {@link SqliteStore} delegates these `RelayStore` methods here.
 */
import type Database from 'better-sqlite3';
import { PRUNE_TABLES, toWebChatEntry, type WebChatRow } from './rows.js';
import type { PruneKind, WebChatEntry } from './types.js';

export class SqliteHousekeeping {
  readonly #insert;
  readonly #byClient;
  readonly #get;
  readonly #list;
  readonly #trim;
  readonly #replace;
  readonly #delete;
  readonly #appendTx;
  readonly #count: Map<PruneKind, Database.Statement<[number], number>>;
  readonly #prune: Map<PruneKind, Database.Statement<[number, number, number]>>;

  constructor(db: Database.Database) {
    this.#insert = db.prepare<[string, string, string | null, string, number]>(
      `INSERT INTO webchat_messages (chat_id, id, client_id, body, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    );
    this.#byClient = db.prepare<[string, string], WebChatRow>(
      'SELECT * FROM webchat_messages WHERE chat_id = ? AND client_id = ?',
    );
    this.#get = db.prepare<[string, string], WebChatRow>(
      'SELECT * FROM webchat_messages WHERE chat_id = ? AND id = ?',
    );
    this.#list = db.prepare<[string, number], WebChatRow>(
      `SELECT * FROM (SELECT * FROM webchat_messages WHERE chat_id = ? ORDER BY seq DESC LIMIT ?)
       ORDER BY seq`,
    );
    this.#trim = db.prepare<[string, string, number]>(
      `DELETE FROM webchat_messages WHERE chat_id = ? AND seq <= (
         SELECT seq FROM webchat_messages WHERE chat_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
    );
    this.#replace = db.prepare<[string, string, string, string]>(
      'UPDATE webchat_messages SET body = ? WHERE chat_id = ? AND id = ? AND body = ?',
    );
    this.#delete = db.prepare<[string, string]>('DELETE FROM webchat_messages WHERE chat_id = ? AND id = ?');
    this.#appendTx = db.transaction(
      (entry: WebChatEntry, keep: number): { entry: WebChatEntry; inserted: boolean } => {
        const { changes } = this.#insert.run(
          entry.chatId,
          entry.id,
          entry.clientId,
          entry.body,
          entry.createdAt,
        );
        if (changes === 0) {
          const first =
            entry.clientId === null ? undefined : this.#byClient.get(entry.chatId, entry.clientId);
          if (!first) throw new Error(`web-chat message ${entry.id} is already stored`);
          return { entry: toWebChatEntry(first), inserted: false };
        }
        this.#trim.run(entry.chatId, entry.chatId, Math.max(1, Math.floor(keep)));
        return { entry, inserted: true };
      },
    );
    this.#count = new Map();
    this.#prune = new Map();
    for (const [kind, table] of Object.entries(PRUNE_TABLES) as [
      PruneKind,
      (typeof PRUNE_TABLES)[PruneKind],
    ][]) {
      const old = `${table.time} ${table.inclusive ? '<=' : '<'} ?`;
      this.#count.set(
        kind,
        db.prepare<[number], number>(`SELECT COUNT(*) FROM ${table.name} WHERE ${old}`).pluck(),
      );
      // The oldest first, a bounded batch: the write lock is held for one short statement.
      this.#prune.set(
        kind,
        db.prepare<[number, number, number]>(
          `DELETE FROM ${table.name} WHERE rowid IN (
             SELECT rowid FROM ${table.name} WHERE ${old} ORDER BY ${table.time} LIMIT ?)
           AND ${old}`,
        ),
      );
    }
  }

  append(entry: WebChatEntry, keep: number): { entry: WebChatEntry; inserted: boolean } {
    return this.#appendTx.immediate(entry, keep);
  }

  get(chatId: string, id: string): WebChatEntry | null {
    const row = this.#get.get(chatId, id);
    return row ? toWebChatEntry(row) : null;
  }

  list(chatId: string, limit: number): WebChatEntry[] {
    return this.#list.all(chatId, Math.max(0, Math.floor(limit))).map(toWebChatEntry);
  }

  replace(chatId: string, id: string, previousBody: string, body: string): boolean {
    return this.#replace.run(body, chatId, id, previousBody).changes > 0;
  }

  delete(chatId: string, ids: readonly string[]): number {
    let removed = 0;
    for (const id of ids) removed += this.#delete.run(chatId, id).changes;
    return removed;
  }

  countPrunable(kind: PruneKind, before: number): number {
    return this.#statement(this.#count, kind).get(before) ?? 0;
  }

  prune(kind: PruneKind, before: number, limit: number): number {
    const batch = Math.floor(limit);
    if (!(batch > 0)) return 0;
    return this.#statement(this.#prune, kind).run(before, batch, before).changes;
  }

  #statement<S>(statements: Map<PruneKind, S>, kind: PruneKind): S {
    const statement = statements.get(kind);
    if (!statement) throw new Error(`unknown retention kind ${JSON.stringify(kind)}`);
    return statement;
  }
}
