import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { hermes, hermesJson, tempDir } from '../support/processes.js';

/**
 * Admin-command defects found trying the CLI as a new operator would (#19): `deliveries retry`
 * honours `--db`, a read command refuses a store that does not exist instead of creating an empty
 * one, and `route add` refuses a platform no adapter serves. Irreversible commands (`gateway
 * revoke`, `deliveries discard`) refuse without `--yes` when input is not a terminal; `audit` lists
 * what the commands did, with their actor.
 */

/** A dead letter of the tenant in the store at `path` (as the delivery engine leaves one). */
async function deadLetter(path: string, tenantId: string, id: string): Promise<void> {
  const store = SqliteStore.open(path);
  try {
    await store.enqueueDelivery({
      id,
      tenantId,
      gatewayId: null,
      sessionKey: `s-${id}`,
      kind: 'message',
      body: '{}',
      endpoint: 'https://gw.example/relay',
      createdAt: 1,
    });
    await store.claimDueDeliveries('test', Date.now(), 10, 60_000);
    await store.deadLetterDelivery(id, 'test', 'HTTP 404', 404, Date.now());
  } finally {
    await store.close();
  }
}

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

  it('gateway revoke refuses without --yes when input is not a terminal, exit 2, nothing revoked', async () => {
    const store = SqliteStore.open(db);
    const acme = await store.findTenantByName('acme');
    await store.putGatewaySecret({
      id: 'gw-cli',
      tenantId: acme?.id ?? '',
      secret: 'x'.repeat(43),
      platform: 'webchat',
      botId: '',
      endpoint: '',
      now: Date.now(),
      rotationWindowMs: 1000,
    });
    await store.close();
    const refused = await hermes(['connector', 'gateway', 'revoke', 'gw-cli', '--db', db]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      'hermes: revoking gateway gw-cli cannot be undone: pass --yes to confirm (input is not a terminal, so nothing was asked)\n',
    );
    const listed = await hermesJson<{ id: string; revoked: boolean; connected: boolean }[]>([
      'connector',
      'gateway',
      'list',
      '--db',
      db,
    ]);
    expect(listed).toMatchObject([{ id: 'gw-cli', revoked: false, connected: false }]);
    const missing = await hermes(['connector', 'gateway', 'revoke', 'gw-nope', '--yes', '--db', db]);
    expect(missing).toMatchObject({
      code: 1,
      stderr: 'hermes: no gateway "gw-nope" (list them with: hermes connector gateway list)\n',
    });
    const revoked = await hermesJson(['connector', 'gateway', 'revoke', 'gw-cli', '--yes', '--db', db]);
    expect(revoked).toEqual({ id: 'gw-cli', revoked: true });
  });

  it('deliveries discard removes a dead letter (with --yes only); audit shows it with the actor', async () => {
    const tenants = await hermesJson<{ id: string; name: string }[]>([
      'connector',
      'tenant',
      'list',
      '--db',
      db,
    ]);
    const acme = tenants.find((t) => t.name === 'acme')?.id as string;
    await deadLetter(db, acme, 'dlv_dead1');
    const refused = await hermes(['connector', 'deliveries', 'discard', 'dlv_dead1', '--db', db]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      'hermes: discarding dead letter dlv_dead1 cannot be undone: pass --yes to confirm (input is not a terminal, so nothing was asked)\n',
    );
    const before = await hermesJson<{ id: string }[]>(['connector', 'deliveries', '--dead', '--db', db]);
    expect(before.map((d) => d.id)).toEqual(['dlv_dead1']);
    const discarded = await hermesJson([
      'connector',
      'deliveries',
      'discard',
      'dlv_dead1',
      '--yes',
      '--db',
      db,
    ]);
    expect(discarded).toEqual({ id: 'dlv_dead1', discarded: true });
    expect(await hermesJson(['connector', 'deliveries', '--dead', '--db', db])).toEqual([]);
    const again = await hermes(['connector', 'deliveries', 'discard', 'dlv_dead1', '--yes', '--db', db]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      'hermes: no dead letter "dlv_dead1" (list them with: hermes connector deliveries --dead)\n',
    );

    const audit = await hermesJson<
      { event: string; tenantId: string | null; detail: Record<string, unknown> | null }[]
    >(['connector', 'audit', '--tenant', 'acme', '--limit', '3', '--db', db]);
    expect(audit.map((e) => e.event)).toEqual(['dead_letter_discarded', 'gateway_revoked', 'route_added']);
    expect(audit[0]).toMatchObject({
      tenantId: acme,
      detail: { id: 'dlv_dead1', actor: 'cli', reason: 'HTTP 404' },
    });
    expect(audit[1]?.detail).toEqual({ actor: 'cli' });
    const table = await hermes(['connector', 'audit', '--limit', '1', '--db', db]);
    expect(table.stdout).toMatch(/dead_letter_discarded .*cli +id=dlv_dead1 reason=HTTP 404/);
    const badLimit = await hermes(['connector', 'audit', '--limit', 'lots', '--db', db]);
    expect(badLimit).toMatchObject({
      code: 2,
      stderr: 'hermes: --limit must be a whole number from 1 to 10000, got "lots"\n',
    });
    const noTenant = await hermes(['connector', 'audit', '--tenant', 'nobody', '--db', db]);
    expect(noTenant.code).toBe(1);
    expect(noTenant.stderr).toMatch(/^hermes: no tenant with id or name "nobody"/);
  });
});
