import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, migrate, SCHEMA_VERSION } from '../../src/connector/store/migrations.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import type { DeliveryKind, NewDelivery } from '../../src/connector/store/types.js';
import { describeStoreContract } from './store-contract.js';

const mode = (path: string): number => statSync(path).mode & 0o777;

function delivery(
  id: string,
  sessionKey: string,
  opts: { kind?: DeliveryKind; createdAt?: number; tenantId?: string } = {},
): NewDelivery {
  return {
    id,
    tenantId: opts.tenantId ?? 't_a',
    gatewayId: 'gw1',
    sessionKey,
    kind: opts.kind ?? 'message',
    body: JSON.stringify({ delivery_id: id, text: `body of ${id}` }),
    endpoint: 'https://gw.example/relay',
    createdAt: opts.createdAt ?? 0,
  };
}

describe('SqliteStore on disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'relay-store-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a 0700 parent directory and a 0600 database (and WAL files), in WAL mode', async () => {
    const parent = join(dir, 'nested', 'state');
    const path = join(parent, 'relay.db');
    const store = SqliteStore.open(path);
    try {
      expect(mode(parent)).toBe(0o700);
      expect(mode(path)).toBe(0o600);
      await store.createTenant('acme', 1);
      for (const extra of [`${path}-wal`, `${path}-shm`]) {
        expect(existsSync(extra)).toBe(true);
        expect(mode(extra)).toBe(0o600);
      }
    } finally {
      await store.close();
    }
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      raw.close();
    }
  });

  it('tightens a pre-existing database file to 0600', async () => {
    const path = join(dir, 'relay.db');
    writeFileSync(path, '');
    chmodSync(path, 0o644);
    const store = SqliteStore.open(path);
    await store.close();
    expect(mode(path)).toBe(0o600);
  });

  it('keeps data across close and reopen, and re-running migrations is a no-op', async () => {
    const path = join(dir, 'relay.db');
    const first = SqliteStore.open(path);
    const tenant = await first.createTenant('acme', 10);
    await first.addTenantToken(tenant.id, 'hash-1', 10);
    await first.putGatewaySecret({
      id: 'gw1',
      tenantId: tenant.id,
      secret: 's1',
      platform: 'telegram',
      botId: 'bot',
      endpoint: 'https://gw.example',
      now: 10,
      rotationWindowMs: 1000,
    });
    const queued = await first.enqueueDelivery(delivery('d1', 's', { tenantId: tenant.id }));
    await first.audit({ at: 11, event: 'tenant.created', tenantId: tenant.id, detail: { name: 'acme' } });
    await first.close();

    const second = SqliteStore.open(path);
    try {
      expect(await second.getTenant(tenant.id)).toEqual(tenant);
      expect(await second.findTenantIdByTokenHash('hash-1')).toBe(tenant.id);
      expect((await second.getGateway('gw1'))?.secret).toBe('s1');
      expect(await second.listDeliveries(10)).toEqual([queued]);
      expect(await second.listAudit(10)).toEqual([
        { at: 11, event: 'tenant.created', tenantId: tenant.id, gatewayId: null, detail: { name: 'acme' } },
      ]);
      // seq keeps growing across reopen
      const next = await second.enqueueDelivery(delivery('d2', 'other', { tenantId: tenant.id }));
      expect(next.seq).toBeGreaterThan(queued.seq);
    } finally {
      await second.close();
    }

    const raw = new Database(path);
    try {
      expect(migrate(raw)).toEqual([]);
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      raw.close();
    }
  });

  it('records who redeemed an enrollment token and when', async () => {
    const path = join(dir, 'relay.db');
    const store = SqliteStore.open(path);
    const tenant = await store.createTenant('acme', 0);
    await store.createEnrollmentToken('enr', tenant.id, 1000, 0);
    expect(await store.redeemEnrollmentToken('enr', tenant.id, 'gw-new', 500)).toEqual({
      ok: true,
      tenantId: tenant.id,
    });
    await store.close();
    const raw = new Database(path, { readonly: true });
    try {
      expect(
        raw.prepare('SELECT used_at, used_by FROM enrollment_tokens WHERE token_hash = ?').get('enr'),
      ).toEqual({
        used_at: 500,
        used_by: 'gw-new',
      });
    } finally {
      raw.close();
    }
  });

  it('recomputes outbox eligibility on open, so a corrupted head flag cannot strand a session', async () => {
    const path = join(dir, 'relay.db');
    const first = SqliteStore.open(path);
    await first.enqueueDelivery(delivery('m1', 's'));
    await first.enqueueDelivery(delivery('m2', 's'));
    await first.close();
    const raw = new Database(path);
    raw.prepare("UPDATE outbox SET head = CASE id WHEN 'm1' THEN 0 ELSE 1 END").run();
    raw.close();

    const second = SqliteStore.open(path);
    try {
      expect((await second.claimDueDeliveries('c', 1, 10, 100)).map((d) => d.id)).toEqual(['m1']);
    } finally {
      await second.close();
    }
  });

  it('atomically: the calls made inside commit together, a failing call rolls back alone, a failing whole writes nothing (issue 20)', async () => {
    const path = join(dir, 'relay.db');
    const store = SqliteStore.open(path);
    try {
      await store.enqueueDelivery(delivery('m1', 's1'));
      const [claimed] = await store.claimDueDeliveries('c', 1, 10, 100);
      expect(claimed?.id).toBe('m1');
      // One transaction: m1 completed and m2, m3 queued; the duplicate m2 fails alone.
      let completion: Promise<unknown> | undefined;
      let enqueued: Promise<unknown> | undefined;
      let duplicate: Promise<unknown> | undefined;
      await store.atomically(() => {
        completion = store.completeDeliveries(['m1'], 'c');
        enqueued = store.enqueueDeliveries([delivery('m2', 's1'), delivery('m3', 's2')]);
        duplicate = store.enqueueDeliveries([delivery('m4', 's3'), delivery('m2', 's3')]);
      });
      await expect(completion).resolves.toEqual([{ completed: true, promoted: false }]);
      await expect(enqueued).resolves.toHaveLength(2);
      await expect(duplicate).rejects.toThrow(/UNIQUE/);
      const raw = new Database(path, { readonly: true });
      try {
        expect(raw.prepare('SELECT id FROM outbox ORDER BY seq').pluck().all()).toEqual(['m2', 'm3']);
      } finally {
        raw.close();
      }
      // A whole that fails (here: after its calls) writes nothing, whatever the calls answered.
      await expect(
        store.atomically(() => {
          void store.completeDeliveries(['m2'], 'nobody');
          void store.enqueueDeliveries([delivery('m5', 's5')]);
          throw new Error('injected commit failure');
        }),
      ).rejects.toThrow('injected commit failure');
      expect((await store.listDeliveries(10)).map((d) => d.id).sort()).toEqual(['m2', 'm3']);
    } finally {
      await store.close();
    }
  });

  it('findRoute answers from its cache only while no route changed, here or in another process (issue 20)', async () => {
    const path = join(dir, 'relay.db');
    const store = SqliteStore.open(path);
    const other = new Database(path);
    try {
      const { id: tenantId } = await store.createTenant('acme', 1);
      expect(await store.findRoute('test', 'room')).toBeNull();
      await store.upsertRoute(
        { platform: 'test', routeKey: 'room', tenantId, endpoint: '', gatewayId: 'gw1' },
        2,
      );
      expect(await store.findRoute('test', 'room')).toMatchObject({ gatewayId: 'gw1' });
      await store.upsertRoute(
        { platform: 'test', routeKey: 'room', tenantId, endpoint: '', gatewayId: 'gw2' },
        3,
      );
      const found = await store.findRoute('test', 'room');
      expect(found).toMatchObject({ gatewayId: 'gw2' });
      // A caller changing its copy changes nothing for the next one.
      if (found) found.gatewayId = 'mutated';
      expect(await store.findRoute('test', 'room')).toMatchObject({ gatewayId: 'gw2' });
      // Another connection (the CLI, another process) changes or adds routes: seen at once.
      other.prepare("UPDATE routes SET gateway_id = 'gw3' WHERE route_key = 'room'").run();
      expect(await store.findRoute('test', 'room')).toMatchObject({ gatewayId: 'gw3' });
      expect(await store.findRoute('test', 'other')).toBeNull();
      other
        .prepare(
          "INSERT INTO routes (platform, route_key, tenant_id, endpoint, gateway_id, created_at) VALUES ('test', '*', ?, '', NULL, 4)",
        )
        .run(tenantId);
      expect(await store.findRoute('test', 'other')).toMatchObject({ routeKey: '*' });
      other.prepare("DELETE FROM routes WHERE route_key = 'room'").run();
      expect(await store.findRoute('test', 'room')).toMatchObject({ routeKey: '*' });
    } finally {
      other.close();
      await store.close();
    }
  });

  it('refuses a database written by a newer schema', async () => {
    const path = join(dir, 'relay.db');
    const raw = new Database(path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => SqliteStore.open(path)).toThrow(/newer/);
  });
});

describe('migrations', () => {
  it('apply in order once, tracked by user_version', () => {
    const db = new Database(':memory:');
    try {
      expect(migrate(db)).toEqual(MIGRATIONS.map((m) => m.version));
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(migrate(db)).toEqual([]);
      const tables = db
        .prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .pluck()
        .all();
      expect(tables).toEqual(
        expect.arrayContaining([
          'audit',
          'chats',
          'dead_letters',
          'delivery_keys',
          'enrollment_tokens',
          'gateways',
          'outbox',
          'routes',
          'tenant_tokens',
          'tenants',
        ]),
      );
    } finally {
      db.close();
    }
  });

  it('roll back a failing migration entirely', () => {
    const db = new Database(':memory:');
    try {
      const broken = [
        ...MIGRATIONS,
        { version: MIGRATIONS.length + 1, description: 'broken', sql: 'CREATE TABLE x (a); SELEC nonsense' },
      ];
      expect(() => migrate(db, broken)).toThrow();
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'x'").pluck().get()).toBe(0);
    } finally {
      db.close();
    }
  });

  it('migration 3 gives every existing gateway its identity and leaves the new details empty', () => {
    const db = new Database(':memory:');
    try {
      migrate(db, MIGRATIONS.slice(0, 2));
      db.exec(`INSERT INTO tenants (id, name, created_at) VALUES ('t_a', 'acme', 1);
        INSERT INTO gateways (id, tenant_id, secret, platform, bot_id, created_at)
        VALUES ('gw1', 't_a', 's', 'telegram', 'bot1', 5)`);
      expect(migrate(db, MIGRATIONS.slice(0, 3))).toEqual([3]);
      expect(
        db.prepare('SELECT gateway_id, platform, bot_id, created_at FROM gateway_identities').all(),
      ).toEqual([{ gateway_id: 'gw1', platform: 'telegram', bot_id: 'bot1', created_at: 5 }]);
      expect(
        db.prepare('SELECT instance_id, wake_url, display_name, idle_since FROM gateways').get(),
      ).toEqual({ instance_id: null, wake_url: null, display_name: null, idle_since: null });
    } finally {
      db.close();
    }
  });

  it('reject a mis-numbered list', () => {
    const db = new Database(':memory:');
    try {
      expect(() => migrate(db, [{ version: 2, description: 'gap', sql: '' }])).toThrow(/numbered/);
    } finally {
      db.close();
    }
  });
});

// The behaviour every RelayStore shares (also run against Postgres in postgres-store.test.ts).
describeStoreContract('SqliteStore', async () => SqliteStore.open(':memory:'));
