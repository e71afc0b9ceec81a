import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConnectorConfigError,
  connectorConfigFromEnv,
  connectorDbFromEnv,
} from '../../src/connector/config.js';
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

  it('reads the web-chat socket caps and refuses values that are not positive whole numbers', () => {
    expect(
      connectorConfigFromEnv({ RELAY_WEBCHAT_MAX_SOCKETS_PER_IP: '500', RELAY_WEBCHAT_MAX_SOCKETS: '20000' })
        .webchat,
    ).toMatchObject({ maxSocketsPerAddress: 500, maxSockets: 20_000 });
    expect(
      connectorConfigFromEnv({ RELAY_WEBCHAT_MAX_SOCKETS_PER_IP: '' }).webchat.maxSocketsPerAddress,
    ).toBe(undefined);
    for (const bad of ['0', '-3', '1.5', 'many']) {
      expect(() => connectorConfigFromEnv({ RELAY_WEBCHAT_MAX_SOCKETS_PER_IP: bad })).toThrow(
        new ConnectorConfigError(
          `RELAY_WEBCHAT_MAX_SOCKETS_PER_IP must be a whole number above 0, got ${JSON.stringify(bad)}`,
        ),
      );
    }
  });

  it('reads on/off settings as 1/0, true/false, yes/no, on/off and refuses anything else (a typo is not "off")', () => {
    for (const on of ['1', 'true', 'YES', ' on ']) {
      const config = connectorConfigFromEnv({
        RELAY_WAKE_ALLOW_PRIVATE: on,
        RELAY_ALLOW_NON_EXPIRING_TOKENS: on,
      });
      expect([config.wakeAllowPrivate, config.allowNonExpiringTokens]).toEqual([true, true]);
    }
    for (const off of ['0', 'false', 'no', 'off', '']) {
      expect(connectorConfigFromEnv({ RELAY_WAKE_ALLOW_PRIVATE: off }).wakeAllowPrivate).toBe(false);
    }
    expect(connectorConfigFromEnv({}).allowNonExpiringTokens).toBe(false);
    expect(() => connectorConfigFromEnv({ RELAY_ALLOW_NON_EXPIRING_TOKENS: 'ture' })).toThrow(
      new ConnectorConfigError(
        'RELAY_ALLOW_NON_EXPIRING_TOKENS must be 1 or 0 (or true/false, yes/no), got "ture"',
      ),
    );
  });

  it('reads the web-chat rate limit as <messages>/<seconds>, 10/10 by default, and refuses anything else', () => {
    expect(connectorConfigFromEnv({}).webchat.rateLimit).toEqual({ messages: 10, windowMs: 10_000 });
    expect(connectorConfigFromEnv({ RELAY_WEBCHAT_RATE_LIMIT: '30/10' }).webchat.rateLimit).toEqual({
      messages: 30,
      windowMs: 10_000,
    });
    expect(connectorConfigFromEnv({ RELAY_WEBCHAT_RATE_LIMIT: ' 5 / 2.5s ' }).webchat.rateLimit).toEqual({
      messages: 5,
      windowMs: 2_500,
    });
    for (const bad of ['10', '0/10', '10/0', 'ten/10', '10/-1', '/10']) {
      expect(() => connectorConfigFromEnv({ RELAY_WEBCHAT_RATE_LIMIT: bad }), bad).toThrow(
        /^RELAY_WEBCHAT_RATE_LIMIT must be <messages>\/<seconds> with both above 0/,
      );
    }
  });

  it('keeps admin commands usable whatever the server settings say: the store path alone', () => {
    expect(connectorDbFromEnv({ RELAY_WEBCHAT_RATE_LIMIT: 'nonsense', RELAY_DB: ':memory:' })).toBe(
      ':memory:',
    );
    expect(connectorDbFromEnv({}, 'x.db')).toBe(resolve('x.db'));
  });
});
