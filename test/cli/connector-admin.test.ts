import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hermes, hermesJson, tempDir } from '../support/processes.js';

/**
 * Admin-command defects found trying the CLI as a new operator would (#19): `deliveries retry`
 * honours `--db`, a read command refuses a store that does not exist instead of creating an empty
 * one, and `route add` refuses a platform no adapter serves.
 */

const dir = tempDir('connector-admin');
const db = join(dir.path, 'connector.db');
afterAll(() => dir.remove());

describe('connector admin commands', () => {
  it('deliveries retry opens the --db it is given, not the default store', async () => {
    await hermesJson(['connector', 'tenant', 'create', 'acme', '--db', db]);
    const elsewhere = join(dir.path, 'default.db');
    const retried = await hermes(['connector', 'deliveries', 'retry', 'dlv_missing', '--db', db], {
      RELAY_DB: elsewhere,
    });
    expect(retried.stderr).toBe('hermes: no dead letter "dlv_missing"\n');
    expect(retried.code).toBe(1);
    expect(existsSync(elsewhere)).toBe(false);
  });

  it('a read command refuses a store that does not exist, and creates nothing', async () => {
    const typo = join(dir.path, 'conector.db');
    for (const args of [
      ['connector', 'tenant', 'list'],
      ['connector', 'route', 'list'],
      ['connector', 'deliveries', '--dead'],
      ['connector', 'prune', '--dry-run'],
    ]) {
      const result = await hermes([...args, '--db', typo]);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr).toBe(
        `hermes: no connector store at ${typo}: check --db (or RELAY_DB); \`hermes connector serve\` or \`hermes connector tenant create\` creates one\n`,
      );
      expect(result.stdout).toBe('');
    }
    expect(existsSync(typo)).toBe(false);
  });

  it('route add refuses a platform no adapter serves, unless it is declared custom', async () => {
    const refused = await hermes([
      'connector',
      'route',
      'add',
      '--tenant',
      'acme',
      '--platform',
      'slack',
      '--key',
      'C1',
      '--db',
      db,
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      'hermes: --platform slack: no adapter of this connector serves it (webchat, telegram, discord); for a platform an embedded adapter of yours serves, add --custom-platform\n',
    );
    const routes = await hermesJson<{ platform: string }[]>(['connector', 'route', 'list', '--db', db]);
    expect(routes).toEqual([]);
    const custom = await hermes([
      'connector',
      'route',
      'add',
      '--tenant',
      'acme',
      '--platform',
      'local',
      '--key',
      'console',
      '--custom-platform',
      '--db',
      db,
    ]);
    expect(custom.code, custom.stderr).toBe(0);
  });
});
