import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectorConfigFromEnv } from '../../src/connector/config.js';
import { isPostgresUrl } from '../../src/connector/store/open.js';

describe('connector configuration', () => {
  it('recognises a Postgres URL in any letter case and resolves anything else as a SQLite path', () => {
    for (const url of [
      'postgres://u@h/db',
      'postgresql://u@h/db',
      'POSTGRES://u@h/db',
      'PostgreSQL://h/db',
    ]) {
      expect(isPostgresUrl(url)).toBe(true);
      expect(connectorConfigFromEnv({ RELAY_DB: url }).db).toBe(url);
    }
    expect(isPostgresUrl('./postgres.db')).toBe(false);
    expect(connectorConfigFromEnv({ RELAY_DB: 'data/relay.db' }).db).toBe(resolve('data/relay.db'));
    expect(connectorConfigFromEnv({ RELAY_DB: ':memory:' }).db).toBe(':memory:');
  });

  it('reads the web-chat socket caps, ignoring values that are not positive integers', () => {
    expect(
      connectorConfigFromEnv({ RELAY_WEBCHAT_MAX_SOCKETS_PER_IP: '500', RELAY_WEBCHAT_MAX_SOCKETS: '20000' })
        .webchat,
    ).toEqual({ maxSocketsPerAddress: 500, maxSockets: 20_000 });
    for (const bad of ['', '0', '-3', '1.5', 'many']) {
      expect(
        connectorConfigFromEnv({ RELAY_WEBCHAT_MAX_SOCKETS_PER_IP: bad }).webchat.maxSocketsPerAddress,
      ).toBe(undefined);
    }
  });
});
