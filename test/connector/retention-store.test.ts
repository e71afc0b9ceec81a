import { afterAll, beforeAll, describe } from 'vitest';
import { PostgresStore } from '../../src/connector/store/postgres.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { describeHistoryAndRetentionContract } from './store-contract.js';

// Web-chat history and retention, the same cases against both stores.

describeHistoryAndRetentionContract('SqliteStore', async () => SqliteStore.open(':memory:'));

if (postgresUnavailable) console.warn(`Skipping the Postgres retention tests: ${postgresUnavailable}`);

describe.skipIf(postgresUnavailable !== null)('PostgresStore', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });
  describeHistoryAndRetentionContract('PostgresStore', async () =>
    PostgresStore.open(await server.createSchema(), { maxConnections: 4 }),
  );
});
