import { SqliteStore } from './sqlite.js';
import type { RelayStore } from './types.js';

/** Open the store named by `--db` / `RELAY_DB`: a SQLite path (default) or a Postgres URL. */
export async function openStore(db: string): Promise<RelayStore> {
  if (/^postgres(ql)?:\/\//i.test(db)) {
    throw new Error(
      'the Postgres store is not available in this version; use a SQLite path for --db / RELAY_DB',
    );
  }
  return SqliteStore.open(db);
}
