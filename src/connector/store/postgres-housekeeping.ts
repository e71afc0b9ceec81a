/**
 * The Postgres store's web-chat history and retention (migration 5), apart from the outbox code in
 * `postgres.ts`: {@link PostgresStore} delegates these `RelayStore` methods here.
 */
import type pg from 'pg';
import { PRUNE_TABLES, toWebChatEntry, type WebChatRow } from './rows.js';
import type { PruneKind, WebChatEntry } from './types.js';

function table(kind: PruneKind): (typeof PRUNE_TABLES)[PruneKind] {
  const found = PRUNE_TABLES[kind];
  if (!found) throw new Error(`unknown retention kind ${JSON.stringify(kind)}`);
  return found;
}

export class PostgresHousekeeping {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async append(entry: WebChatEntry, keep: number): Promise<{ entry: WebChatEntry; inserted: boolean }> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const inserted = await client.query(
        `INSERT INTO webchat_messages (chat_id, id, client_id, body, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING`,
        [entry.chatId, entry.id, entry.clientId, entry.body, entry.createdAt],
      );
      let result: { entry: WebChatEntry; inserted: boolean };
      if ((inserted.rowCount ?? 0) === 0) {
        const first =
          entry.clientId === null
            ? undefined
            : (
                await client.query<WebChatRow>(
                  'SELECT * FROM webchat_messages WHERE chat_id = $1 AND client_id = $2',
                  [entry.chatId, entry.clientId],
                )
              ).rows[0];
        if (!first) throw new Error(`web-chat message ${entry.id} is already stored`);
        result = { entry: toWebChatEntry(first), inserted: false };
      } else {
        await client.query(
          `DELETE FROM webchat_messages WHERE chat_id = $1 AND seq <= (
             SELECT seq FROM webchat_messages WHERE chat_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)`,
          [entry.chatId, Math.max(1, Math.floor(keep))],
        );
        result = { entry, inserted: true };
      }
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async get(chatId: string, id: string): Promise<WebChatEntry | null> {
    const { rows } = await this.#pool.query<WebChatRow>(
      'SELECT * FROM webchat_messages WHERE chat_id = $1 AND id = $2',
      [chatId, id],
    );
    return rows[0] ? toWebChatEntry(rows[0]) : null;
  }

  async list(chatId: string, limit: number): Promise<WebChatEntry[]> {
    const { rows } = await this.#pool.query<WebChatRow>(
      `SELECT * FROM (SELECT * FROM webchat_messages WHERE chat_id = $1 ORDER BY seq DESC LIMIT $2) AS newest
       ORDER BY seq`,
      [chatId, Math.max(0, Math.floor(limit))],
    );
    return rows.map(toWebChatEntry);
  }

  async replace(chatId: string, id: string, previousBody: string, body: string): Promise<boolean> {
    const result = await this.#pool.query(
      'UPDATE webchat_messages SET body = $1 WHERE chat_id = $2 AND id = $3 AND body = $4',
      [body, chatId, id, previousBody],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async delete(chatId: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const result = await this.#pool.query(
      'DELETE FROM webchat_messages WHERE chat_id = $1 AND id = ANY($2::text[])',
      [chatId, [...ids]],
    );
    return result.rowCount ?? 0;
  }

  async countPrunable(kind: PruneKind, before: number): Promise<number> {
    const { name, time, inclusive } = table(kind);
    const { rows } = await this.#pool.query<{ n: number }>(
      `SELECT COUNT(*)::bigint AS n FROM ${name} WHERE ${time} ${inclusive ? '<=' : '<'} $1`,
      [before],
    );
    return rows[0]?.n ?? 0;
  }

  /**
   * One bounded batch, oldest first. `SKIP LOCKED`: instances pruning at once take different rows
   * and never wait on each other; the outer condition re-checks the age of a row touched meanwhile
   * (a chat recorded again is kept).
   */
  async prune(kind: PruneKind, before: number, limit: number): Promise<number> {
    const batch = Math.floor(limit);
    if (!(batch > 0)) return 0;
    const { name, time, key, inclusive } = table(kind);
    const old = `${time} ${inclusive ? '<=' : '<'} $1`;
    const result = await this.#pool.query(
      `DELETE FROM ${name} WHERE ${key} IN (
         SELECT ${key.replace(/[()]/g, '')} FROM ${name} WHERE ${old} ORDER BY ${time} LIMIT $2 FOR UPDATE SKIP LOCKED)
       AND ${old}`,
      [before, batch],
    );
    return result.rowCount ?? 0;
  }
}
