import { PostgresStore } from './postgres.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
import type { RelayStore } from './types.js';

/** Whether `--db` / `RELAY_DB` names a Postgres database (any letter case of the scheme). */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/**
 * Open the store named by `--db` / `RELAY_DB`: a SQLite path (default) or a Postgres URL. `sqlite`
 * applies to a SQLite file only (a running connector checkpoints it in the background).
 */
export async function openStore(db: string, sqlite: SqliteStoreOptions = {}): Promise<RelayStore> {
  if (isPostgresUrl(db)) return PostgresStore.open(db);
  return SqliteStore.open(db, sqlite);
}
