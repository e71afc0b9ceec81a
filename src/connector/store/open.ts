import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { RelayStore } from './types.js';

/** Open the store named by `--db` / `RELAY_DB`: a SQLite path (default) or a Postgres URL. */
export async function openStore(db: string): Promise<RelayStore> {
  if (/^postgres(ql)?:\/\//i.test(db)) return PostgresStore.open(db);
  return SqliteStore.open(db);
}
