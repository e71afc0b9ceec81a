import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ConnectorConfigError,
  connectorConfigFromEnv,
  retentionFromEnv,
} from '../../src/connector/config.js';
import {
  countPrunable,
  DEFAULT_RETENTION,
  type PruneCounts,
  pruneCutoffs,
  pruneOnce,
  RetentionPruner,
  type RetentionSettings,
} from '../../src/connector/retention.js';
import { PostgresStore } from '../../src/connector/store/postgres.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { PRUNE_KINDS, type PruneKind, type RelayStore } from '../../src/connector/store/types.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { hermes, tempDir } from '../support/processes.js';
import { delivery } from './store-contract.js';

const HOUR = 60 * 60_000;
const DAY = 24 * HOUR;

/** Every row of a kind (platform state: expired or not). */
const rows = (store: RelayStore, kind: PruneKind) => store.countPrunable(kind, Number.MAX_SAFE_INTEGER);

/**
 * Rows of every kind at `at`: a dead letter, an audit event, a chat, a web-chat message, and a
 * platform-state entry expiring at `at` (an ingest dedupe key as the outbox writes it).
 */
async function seed(store: RelayStore, tenantId: string, at: number, tag: string): Promise<void> {
  await store.audit({ at, event: `e-${tag}` });
  await store.recordChat({
    tenantId,
    platform: 'telegram',
    chatId: `c-${tag}`,
    routeKey: '*',
    updatedAt: at,
  });
  await store.appendWebChatMessage(
    { chatId: `wc-r-v${tag}`, id: `m-${tag}`, clientId: `k-${tag}`, body: '{}', createdAt: at },
    200,
  );
  await store.enqueueDelivery({
    ...delivery(`d-${tag}`, `s-${tag}`, { createdAt: at - HOUR }),
    dedupe: { key: `test:update:${tag}`, until: at },
  });
  const [claimed] = await store.claimDueDeliveries('me', at, 1, 1_000);
  expect(claimed?.id).toBe(`d-${tag}`);
  await store.deadLetterDelivery(`d-${tag}`, 'me', 'gone', 410, at);
}

const counts = (each: Partial<PruneCounts>): PruneCounts => ({
  deadLetters: 0,
  audit: 0,
  chats: 0,
  platformState: 0,
  webchatMessages: 0,
  ...each,
});

describe('retention settings', () => {
  it('defaults: dead letters 30 days, audit 90, chats 365, web chat 30', () => {
    expect(retentionFromEnv({})).toEqual({
      deadLettersMs: 30 * DAY,
      auditMs: 90 * DAY,
      chatsMs: 365 * DAY,
      webchatMessagesMs: 30 * DAY,
    });
    expect(connectorConfigFromEnv({}).retention).toEqual(DEFAULT_RETENTION);
  });

  it('reads days (fractions too; 0 keeps a kind for ever)', () => {
    expect(
      retentionFromEnv({
        RELAY_RETENTION_DEAD_LETTERS_DAYS: '7',
        RELAY_RETENTION_AUDIT_DAYS: '0.5',
        RELAY_RETENTION_CHATS_DAYS: '0',
        RELAY_RETENTION_WEBCHAT_DAYS: ' 2 ',
      }),
    ).toEqual({ deadLettersMs: 7 * DAY, auditMs: 12 * HOUR, chatsMs: 0, webchatMessagesMs: 2 * DAY });
    expect(pruneCutoffs({ ...DEFAULT_RETENTION, chatsMs: 0 }, 100 * DAY)).toEqual({
      deadLetters: 70 * DAY,
      audit: 10 * DAY,
      platformState: 100 * DAY,
      webchatMessages: 70 * DAY,
    });
  });

  it.each([
    ['RELAY_RETENTION_DEAD_LETTERS_DAYS', 'thirty'],
    ['RELAY_RETENTION_AUDIT_DAYS', '-1'],
    ['RELAY_RETENTION_CHATS_DAYS', 'Infinity'],
    ['RELAY_RETENTION_WEBCHAT_DAYS', '1d'],
  ])('refuses %s=%s in one line naming it', (name, value) => {
    const read = () => connectorConfigFromEnv({ [name]: value });
    expect(read).toThrow(ConnectorConfigError);
    expect(read).toThrow(
      `${name} must be a number of days (0 keeps them for ever), got ${JSON.stringify(value)}`,
    );
  });
});

function describeRetention(name: string, fresh: () => Promise<RelayStore>): void {
  describe(`${name}: retention with an injected clock`, () => {
    const opened: RelayStore[] = [];
    const open = async () => {
      const store = await fresh();
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      for (const store of opened.splice(0)) await store.close();
    });
    const settings: RetentionSettings = {
      deadLettersMs: 10 * DAY,
      auditMs: 20 * DAY,
      chatsMs: 30 * DAY,
      webchatMessagesMs: 5 * DAY,
    };

    it('prunes each kind past its own retention and keeps the rest; a dry run only counts', async () => {
      const store = await open();
      const tenant = await store.createTenant('acme', 0);
      const now = 100 * DAY;
      for (const age of [40, 25, 15, 7, 3, 0]) await seed(store, tenant.id, now - age * DAY, `${age}`);
      // Platform state expiring later than now stays.
      await store.putPlatformState('discord:session:0', 'live', now + HOUR);

      const expected = counts({ deadLetters: 3, audit: 2, chats: 1, platformState: 6, webchatMessages: 4 });
      expect(await countPrunable(store, settings, now)).toEqual(expected);
      // Counting deleted nothing.
      expect(await countPrunable(store, settings, now)).toEqual(expected);
      expect(await rows(store, 'audit')).toBe(6);

      expect(await pruneOnce(store, settings, now, { batch: 2 })).toEqual(expected);
      expect(await countPrunable(store, settings, now)).toEqual(counts({}));
      expect((await store.listDeadLetters(10)).map((d) => d.id).sort()).toEqual(['d-0', 'd-3', 'd-7']);
      expect((await store.listAudit(10)).map((e) => e.event)).toEqual(['e-0', 'e-3', 'e-7', 'e-15']);
      expect(await store.findChat(tenant.id, 'c-40')).toBeNull();
      expect(await store.findChat(tenant.id, 'c-25')).not.toBeNull();
      expect(await store.listWebChatMessages('wc-r-v7', 10)).toEqual([]);
      expect(await store.listWebChatMessages('wc-r-v3', 10)).toHaveLength(1);
      expect(await store.getPlatformState('discord:session:0', now)).toBe('live');
      expect(await rows(store, 'platformState')).toBe(1);
    });

    it('the dedupe key of an ingest is kept while live, pruned once expired, and then the id can come again', async () => {
      const store = await open();
      const at = 1_000 * HOUR;
      const withKey = (id: string, createdAt: number) => ({
        ...delivery(id, 's', { createdAt }),
        dedupe: { key: 'telegram:bot:update:7', until: createdAt + HOUR },
      });
      expect((await store.enqueueDelivery(withKey('d1', at))).duplicate).toBeUndefined();
      await pruneOnce(store, settings, at + HOUR - 1);
      expect((await store.enqueueDelivery(withKey('d2', at + HOUR - 1))).duplicate).toBe(true);
      expect((await pruneOnce(store, settings, at + HOUR)).platformState).toBe(1);
      expect((await store.enqueueDelivery(withKey('d3', at + HOUR + 1))).duplicate).toBeUndefined();
    });

    it('deletes in batches no larger than asked, however many rows are due', async () => {
      const store = await open();
      for (let i = 0; i < 23; i++) await store.audit({ at: i, event: `e${i}` });
      const sizes: number[] = [];
      const watched = new Proxy(store, {
        get(target, key, receiver) {
          if (key === 'prune')
            return async (kind: PruneKind, before: number, limit: number) => {
              const removed = await target.prune(kind, before, limit);
              if (kind === 'audit') sizes.push(removed);
              expect(removed).toBeLessThanOrEqual(limit);
              return removed;
            };
          const value = Reflect.get(target, key, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const pruned = await pruneOnce(watched, { ...settings, auditMs: 1 }, 1_000, { batch: 5 });
      expect(pruned.audit).toBe(23);
      expect(sizes).toEqual([5, 5, 5, 5, 3]);
    });

    it('the pruner runs a minute after start, then hourly, logs one line with counts when it deleted something, and stops', async () => {
      const store = await open();
      const tenant = await store.createTenant('acme', 0);
      const lines: Record<string, unknown>[] = [];
      const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: 50 * DAY });
      try {
        const pruner = new RetentionPruner({ store, settings, log });
        await seed(store, tenant.id, Date.now() - 40 * DAY, 'old');
        pruner.start();
        await vi.advanceTimersByTimeAsync(59_000);
        await pruner.idle();
        expect(await rows(store, 'audit')).toBe(1);
        await vi.advanceTimersByTimeAsync(1_000);
        await pruner.idle();
        expect(await rows(store, 'audit')).toBe(0);
        expect(lines.map((l) => [l.msg, l.pruned])).toEqual([
          [
            'retention: old rows pruned',
            counts({ deadLetters: 1, audit: 1, chats: 1, platformState: 1, webchatMessages: 1 }),
          ],
        ]);
        // Nothing to remove: no line.
        await vi.advanceTimersByTimeAsync(HOUR);
        await pruner.idle();
        expect(lines).toHaveLength(1);
        // An hour later, what has aged since goes.
        await seed(store, tenant.id, Date.now() - 10 * DAY - 1, 'aged');
        await vi.advanceTimersByTimeAsync(HOUR);
        await pruner.idle();
        expect(lines).toHaveLength(2);
        expect(lines[1]?.pruned).toEqual(counts({ deadLetters: 1, platformState: 1, webchatMessages: 1 }));
        await pruner.stop();
        await seed(store, tenant.id, Date.now() - 40 * DAY, 'after-stop');
        await vi.advanceTimersByTimeAsync(2 * HOUR);
        expect(await rows(store, 'audit')).toBe(2);
      } finally {
        vi.useRealTimers();
      }
    });

    it('a failing store is one warning, and the next run tries again', async () => {
      const store = await open();
      const lines: Record<string, unknown>[] = [];
      const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      let fail = true;
      const flaky = new Proxy(store, {
        get(target, key, receiver) {
          if (key === 'prune' && fail) return async () => Promise.reject(new Error('database is locked'));
          const value = Reflect.get(target, key, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      await store.audit({ at: 0, event: 'old' });
      const pruner = new RetentionPruner({
        store: flaky,
        settings: { ...settings, auditMs: 1 },
        log,
        now: () => 10,
      });
      expect(await pruner.runOnce()).toEqual(counts({}));
      expect(lines.map((l) => [l.level, l.msg, l.err])).toEqual([
        [40, 'retention: pruning failed; trying again next hour', 'database is locked'],
      ]);
      fail = false;
      expect((await pruner.runOnce()).audit).toBe(1);
    });
  });
}

describeRetention('SqliteStore', async () => SqliteStore.open(':memory:'));

if (postgresUnavailable) console.warn(`Skipping the Postgres retention tests: ${postgresUnavailable}`);

describe.skipIf(postgresUnavailable !== null)('PostgresStore', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });
  describeRetention('PostgresStore', async () =>
    PostgresStore.open(await server.createSchema(), { maxConnections: 4 }),
  );
});

describe('hermes connector prune (the built CLI on a SQLite file)', () => {
  const dir = tempDir('prune-cli');
  afterAll(() => dir.remove());

  it('--dry-run counts per kind and deletes nothing; without it, deletes and prints the counts; --db is honoured', async () => {
    const db = join(dir.path, 'connector.db');
    const elsewhere = join(dir.path, 'not-this.db');
    const store = SqliteStore.open(db);
    const tenant = await store.createTenant('acme', 0);
    const now = Date.now();
    for (const age of [400, 100, 40, 1]) await seed(store, tenant.id, now - age * DAY, `${age}`);
    await store.putPlatformState('discord:session:0', 'live', now + DAY);
    await store.close();
    const env = { RELAY_DB: elsewhere };

    const dry = await hermes(['connector', 'prune', '--dry-run', '--db', db, '--json'], env);
    expect(dry.code).toBe(0);
    const wouldGo = counts({ deadLetters: 3, audit: 2, chats: 1, platformState: 4, webchatMessages: 3 });
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, wouldPrune: wouldGo });
    const text = await hermes(['connector', 'prune', '--dry-run', '--db', db], env);
    expect(text.stdout).toContain('dry run: nothing deleted');
    expect(text.stdout).toMatch(/dead letters\s+3\s/);
    expect(text.stdout).toMatch(/chats\s+1\s/);
    const unchanged = SqliteStore.open(db);
    for (const kind of PRUNE_KINDS)
      expect(await rows(unchanged, kind)).toBe(kind === 'platformState' ? 5 : 4);
    await unchanged.close();

    const real = await hermes(['connector', 'prune', '--db', db, '--json'], env);
    expect(real.code).toBe(0);
    expect(JSON.parse(real.stdout)).toMatchObject({ dryRun: false, pruned: wouldGo });
    const after = SqliteStore.open(db);
    expect(await countPrunable(after, DEFAULT_RETENTION, Date.now())).toEqual(counts({}));
    expect(await rows(after, 'audit')).toBe(2);
    expect(await rows(after, 'chats')).toBe(3);
    expect(await after.getPlatformState('discord:session:0', Date.now())).toBe('live');
    await after.close();
    // The other database was never opened (created) by either run.
    expect(existsSync(elsewhere)).toBe(false);

    const again = await hermes(['connector', 'prune', '--db', db], env);
    expect(again.stdout).toMatch(/dead letters\s+0\s/);
    const bad = await hermes(['connector', 'prune', '--db', db], { RELAY_RETENTION_AUDIT_DAYS: 'soon' });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe(
      'hermes: RELAY_RETENTION_AUDIT_DAYS must be a number of days (0 keeps them for ever), got "soon"',
    );
  });
});
