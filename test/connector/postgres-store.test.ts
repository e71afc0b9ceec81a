import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore, type PostgresStoreOptions } from '../../src/connector/store/postgres.js';
import {
  migratePostgres,
  POSTGRES_MIGRATIONS,
  POSTGRES_SCHEMA_VERSION,
} from '../../src/connector/store/postgres-migrations.js';
import type { DeliveryRecord, RelayStore } from '../../src/connector/store/types.js';
import { freePort } from '../support/ports.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { mulberry32 } from '../support/prng.js';
import { until } from '../support/processes.js';
import { delivery, describeStoreContract } from './store-contract.js';

// The contract suite against the SQLite reference, so the shared cases are known to encode the
// reference's behaviour (store.test.ts has the SQLite-specific ones).

if (postgresUnavailable) {
  console.warn(`Skipping the Postgres store tests: ${postgresUnavailable}`);
}

describe.skipIf(postgresUnavailable !== null)('PostgresStore', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  describeStoreContract('PostgresStore', async () =>
    PostgresStore.open(await server.createSchema(), { maxConnections: 4 }),
  );

  /** Stores and raw clients a test opened, closed after it. */
  const stores: RelayStore[] = [];
  const clients: pg.Client[] = [];
  afterEach(async () => {
    // Raw clients first: ending them releases any lock a failed test left a store waiting on.
    for (const c of clients.splice(0)) await c.end().catch(() => undefined);
    for (const s of stores.splice(0)) await s.close();
  });
  const openStore = async (url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> => {
    const store = await PostgresStore.open(url, { maxConnections: 4, ...options });
    stores.push(store);
    return store;
  };
  /** A raw client (pg's default parsers: BIGINT arrives as a string). */
  const rawClient = async (url: string): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    clients.push(client);
    return client;
  };
  const tableNames = async (client: pg.Client): Promise<string[]> =>
    (
      await client.query<{ name: string }>(
        `SELECT table_name AS name FROM information_schema.tables
         WHERE table_schema = current_schema() ORDER BY table_name`,
      )
    ).rows.map((r) => r.name);

  /**
   * Await `work`, failing as soon as any session of the database waits for a lock meanwhile (a
   * claim must skip locked rows, never queue behind them).
   */
  async function withoutLockWaits<T>(watcher: pg.Client, work: Promise<T>): Promise<T> {
    let done = false;
    const finished = work.finally(() => {
      done = true;
    });
    const watch = (async (): Promise<never> => {
      for (;;) {
        const { rows } = await watcher.query<{ waiting: number }>(
          'SELECT COUNT(*)::int AS waiting FROM pg_locks WHERE NOT granted',
        );
        if ((rows[0]?.waiting ?? 0) > 0)
          throw new Error('a claim waited for a lock held by another transaction');
        if (done) return new Promise<never>(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    return Promise.race([finished, watch]);
  }

  describe('migrations', () => {
    it('apply once, tracked in schema_migrations; re-running is a no-op', async () => {
      const url = await server.createSchema();
      const client = await rawClient(url);
      expect(await migratePostgres(client)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
      expect(await migratePostgres(client)).toEqual([]);
      const { rows } = await client.query(
        'SELECT version, description FROM schema_migrations ORDER BY version',
      );
      expect(rows).toEqual(
        POSTGRES_MIGRATIONS.map((m) => ({ version: m.version, description: m.description })),
      );
      expect(await tableNames(client)).toEqual([
        'audit',
        'chats',
        'dead_letters',
        'delivery_keys',
        'enrollment_tokens',
        'gateway_identities',
        'gateway_policies',
        'gateways',
        'outbox',
        'platform_state',
        'routes',
        'schema_migrations',
        'tenant_tokens',
        'tenants',
        'webchat_messages',
      ]);
      // the store opens on a migrated database without applying anything
      await openStore(url);
      expect((await client.query('SELECT COUNT(*)::int AS n FROM schema_migrations')).rows[0]).toEqual({
        n: POSTGRES_SCHEMA_VERSION,
      });
    });

    it('roll back a failing migration entirely', async () => {
      const client = await rawClient(await server.createSchema());
      const broken = [
        ...POSTGRES_MIGRATIONS,
        {
          version: POSTGRES_MIGRATIONS.length + 1,
          description: 'broken',
          sql: 'CREATE TABLE x (a int); SELEC nonsense',
        },
      ];
      await expect(migratePostgres(client, broken)).rejects.toThrow(/syntax error/);
      expect((await client.query('SELECT MAX(version) AS v FROM schema_migrations')).rows[0]).toEqual({
        v: POSTGRES_SCHEMA_VERSION,
      });
      expect(await tableNames(client)).not.toContain('x');
      // the lock was released: a later run proceeds
      expect(await migratePostgres(client)).toEqual([]);
    });

    it('reject a mis-numbered list', async () => {
      const client = await rawClient(await server.createSchema());
      await expect(migratePostgres(client, [{ version: 2, description: 'gap', sql: '' }])).rejects.toThrow(
        /numbered/,
      );
      expect(await tableNames(client)).toEqual([]);
    });

    it('refuse a database written by a newer schema, and leave no connection behind', async () => {
      const url = await server.createSchema();
      const client = await rawClient(url);
      await migratePostgres(client);
      await client.query("INSERT INTO schema_migrations (version, description) VALUES ($1, 'future')", [
        POSTGRES_SCHEMA_VERSION + 1,
      ]);
      await expect(PostgresStore.open(url, { applicationName: 'relay-newer' })).rejects.toThrow(/newer/);
      // The client side closed its connections; the server's backends exit asynchronously.
      const open = async () =>
        (
          await client.query<{ n: number }>(
            "SELECT COUNT(*)::int AS n FROM pg_stat_activity WHERE application_name = 'relay-newer'",
          )
        ).rows[0]?.n;
      await until(async () => ((await open()) === 0 ? true : undefined), 5_000, 'backends gone');
      expect(await open()).toBe(0);
    });

    it('run once when three instances start on an empty database together', async () => {
      const url = await server.createSchema();
      const opened = await Promise.all([openStore(url), openStore(url), openStore(url)]);
      for (const s of opened) await s.ping();
      const client = await rawClient(url);
      const { rows } = await client.query('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows).toEqual(POSTGRES_MIGRATIONS.map((m) => ({ version: m.version })));
      // every instance sees the same data
      const tenant = await (opened[0] as PostgresStore).createTenant('acme', 1);
      expect(await (opened[2] as PostgresStore).getTenant(tenant.id)).toEqual(tenant);
    });

    it('serialise concurrent runs: one applies, the other finds nothing to do', async () => {
      const url = await server.createSchema();
      const [a, b] = [await rawClient(url), await rawClient(url)];
      const results = await Promise.all([migratePostgres(a), migratePostgres(b)]);
      expect(results.map((r) => r.length).sort()).toEqual([0, POSTGRES_SCHEMA_VERSION]);
    });
  });

  describe('one instance', () => {
    it('keeps data across close and reopen; seq keeps growing', async () => {
      const url = await server.createSchema();
      const first = await PostgresStore.open(url);
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
      await expect(first.ping()).rejects.toThrow();
      await first.close(); // idempotent

      const second = await openStore(url);
      expect(await second.getTenant(tenant.id)).toEqual(tenant);
      expect(await second.findTenantIdByTokenHash('hash-1')).toBe(tenant.id);
      expect((await second.getGateway('gw1'))?.secret).toBe('s1');
      expect(await second.listDeliveries(10)).toEqual([queued]);
      expect(await second.listAudit(10)).toEqual([
        { at: 11, event: 'tenant.created', tenantId: tenant.id, gatewayId: null, detail: { name: 'acme' } },
      ]);
      const next = await second.enqueueDelivery(delivery('d2', 'other', { tenantId: tenant.id }));
      expect(next.seq).toBeGreaterThan(queued.seq);
    });

    it('records who redeemed an enrollment token and when', async () => {
      const url = await server.createSchema();
      const store = await openStore(url);
      const tenant = await store.createTenant('acme', 0);
      await store.createEnrollmentToken('enr', tenant.id, 1000, 0);
      expect(await store.redeemEnrollmentToken('enr', tenant.id, 'gw-new', 500)).toEqual({
        ok: true,
        tenantId: tenant.id,
      });
      const client = await rawClient(url);
      const { rows } = await client.query(
        'SELECT used_at, used_by FROM enrollment_tokens WHERE token_hash = $1',
        ['enr'],
      );
      expect(rows).toEqual([{ used_at: '500', used_by: 'gw-new' }]);
    });

    it('restores a lost head flag on open, so a session cannot be stranded', async () => {
      const url = await server.createSchema();
      const first = await openStore(url);
      await first.enqueueDelivery(delivery('m1', 's'));
      await first.enqueueDelivery(delivery('m2', 's'));
      const client = await rawClient(url);
      await client.query("UPDATE outbox SET head = (id <> 'm1')");
      // m1 lost its flag: nothing is claimable, and m2 (flagged by mistake) is still held back
      expect(await first.claimDueDeliveries('c', 1, 10, 100)).toEqual([]);
      expect(await first.nextDueAt()).toBeNull();
      const second = await openStore(url);
      expect(await second.nextDueAt()).toBe(0);
      expect((await second.claimDueDeliveries('c', 1, 10, 100)).map((d) => d.id)).toEqual(['m1']);
    });

    it('maps BIGINT columns to exact JS numbers and refuses values beyond 2^53', async () => {
      const url = await server.createSchema();
      const store = await openStore(url);
      const now = 1_767_225_600_123; // 2026, far beyond int4
      const tenant = await store.createTenant('acme', now);
      expect((await store.getTenant(tenant.id))?.createdAt).toBe(now);
      const queued = await store.enqueueDelivery(
        delivery('m1', 's', { createdAt: now, tenantId: tenant.id }),
      );
      expect(typeof queued.seq).toBe('number');
      const [claimed] = await store.claimDueDeliveries('A', now, 1, 86_400_000);
      expect(claimed).toMatchObject({ nextAttemptAt: now, claimedUntil: now + 86_400_000, attempts: 1 });
      expect(await store.nextDueAt()).toBe(now + 86_400_001);
      expect(await store.outboxDepth()).toBe(1);
      const client = await rawClient(url);
      await client.query('UPDATE tenants SET created_at = 9007199254740993');
      await expect(store.getTenant(tenant.id)).rejects.toThrow(/does not fit/);
    });

    it('lists in byte order (like SQLite) even in a database with a linguistic default collation', async () => {
      const url = await server.createDatabase("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'");
      const store = await openStore(url);
      const t = await store.createTenant('acme', 0);
      for (const key of ['a', 'B', '*', '10', '9']) {
        await store.upsertRoute(
          { platform: 'telegram', routeKey: key, tenantId: t.id, endpoint: '', gatewayId: null },
          1,
        );
      }
      expect((await store.listRoutes()).map((r) => r.routeKey)).toEqual(['*', '10', '9', 'B', 'a']);
      const b = await store.createTenant('Zed', 5);
      const c = await store.createTenant('alpha', 5);
      expect((await store.listTenants()).map((x) => x.id)).toEqual([t.id, ...[b.id, c.id].sort()]);
    });

    it('keeps the pool within maxConnections', async () => {
      const url = await server.createSchema();
      const store = await openStore(url, { maxConnections: 2, applicationName: 'relay-bounded' });
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => store.enqueueDelivery(delivery(`d${i}`, `s${i % 3}`))),
      );
      expect(await store.outboxDepth()).toBe(30);
      const client = await rawClient(url);
      const { rows } = await client.query<{ n: number }>(
        "SELECT COUNT(*)::int AS n FROM pg_stat_activity WHERE application_name = 'relay-bounded'",
      );
      expect(rows[0]?.n).toBeGreaterThanOrEqual(1);
      expect(rows[0]?.n).toBeLessThanOrEqual(2);
    });

    it('fails to open, without hanging, when nothing listens at the URL', async () => {
      const port = await freePort();
      await expect(PostgresStore.open(`postgres://postgres@127.0.0.1:${port}/relay`)).rejects.toThrow(
        /ECONNREFUSED|connect/,
      );
    });

    it('rejects a pool size that is not a positive integer', async () => {
      await expect(PostgresStore.open(server.url, { maxConnections: 0 })).rejects.toThrow(/maxConnections/);
    });
  });

  describe('several instances on one database', () => {
    it("does not hand out a session's next message while another instance holds the head", async () => {
      const url = await server.createSchema();
      const a = await openStore(url);
      const b = await openStore(url);
      await a.enqueueDelivery(delivery('m1', 's'));
      await b.enqueueDelivery(delivery('m2', 's'));
      await a.enqueueDelivery(delivery('o1', 'other'));
      expect((await a.claimDueDeliveries('A', 1, 1, 100)).map((d) => d.id)).toEqual(['m1']);
      expect((await b.claimDueDeliveries('B', 1, 10, 100)).map((d) => d.id)).toEqual(['o1']);
      expect(await b.claimDueDeliveries('B', 2, 10, 100)).toEqual([]);
      expect(await b.completeDelivery('m1', 'B')).toBe(false);
      expect(await a.completeDelivery('m1', 'A')).toBe(true);
      expect((await b.claimDueDeliveries('B', 3, 10, 100)).map((d) => d.id)).toEqual(['m2']);
      expect(await a.claimDueDeliveries('A', 3, 10, 100)).toEqual([]);
    });

    it('skips rows another transaction has locked, without waiting, and never claims past them', async () => {
      const url = await server.createSchema();
      const store = await openStore(url);
      await store.enqueueDelivery(delivery('m1', 's'));
      await store.enqueueDelivery(delivery('m2', 's'));
      await store.enqueueDelivery(delivery('o1', 'other'));
      const other = await rawClient(url);
      const watcher = await rawClient(url);
      // Another instance is in the middle of claiming m1.
      await other.query('BEGIN');
      await other.query("SELECT 1 FROM outbox WHERE id = 'm1' FOR UPDATE");
      const first = await withoutLockWaits(watcher, store.claimDueDeliveries('B', 1, 10, 100));
      expect(first.map((d) => d.id)).toEqual(['o1']);
      await other.query('ROLLBACK');
      expect((await store.claimDueDeliveries('B', 2, 10, 100)).map((d) => d.id)).toEqual(['m1']);
    });

    it('does not claim the next message while the completion of the head is uncommitted', async () => {
      const url = await server.createSchema();
      const store = await openStore(url);
      await store.enqueueDelivery(delivery('m1', 's'));
      await store.enqueueDelivery(delivery('m2', 's'));
      const other = await rawClient(url);
      const watcher = await rawClient(url);
      // Flag m2 as a head by mistake: the claim must still hold it back while m1 exists.
      await other.query("UPDATE outbox SET head = TRUE WHERE id = 'm2'");
      // Another instance is deleting m1 (its completion), not yet committed.
      await other.query('BEGIN');
      await other.query("DELETE FROM outbox WHERE id = 'm1'");
      expect(await withoutLockWaits(watcher, store.claimDueDeliveries('B', 1, 10, 100))).toEqual([]);
      await other.query('COMMIT');
      expect((await store.claimDueDeliveries('B', 2, 10, 100)).map((d) => d.id)).toEqual(['m2']);
    });

    /**
     * Freeze the next enqueue of delivery `id` half-way: a raw transaction inserts a row with the
     * same id, so the store's INSERT (snapshot taken, seq drawn, head computed) waits on the unique
     * index until `release()` rolls the raw row back and lets it through.
     */
    async function stallEnqueueOf(url: string, id: string): Promise<{ release: () => Promise<void> }> {
      const raw = await rawClient(url);
      await raw.query('BEGIN');
      await raw.query(
        `INSERT INTO outbox (id, tenant_id, session_key, kind, body, endpoint, created_at, next_attempt_at)
         VALUES ($1, 't_stall', 'stall', 'message', '{}', '', 0, 0)`,
        [id],
      );
      return { release: async () => void (await raw.query('ROLLBACK')) };
    }

    /** Poll until `settled()` or until at least `waiters` lock requests are queued in the server. */
    async function untilSettledOrWaiting(watcher: pg.Client, settled: () => boolean, waiters: number) {
      for (;;) {
        if (settled()) return;
        const { rows } = await watcher.query<{ n: number }>(
          'SELECT COUNT(*)::int AS n FROM pg_locks WHERE NOT granted',
        );
        if ((rows[0]?.n ?? 0) >= waiters) return;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }

    const tracked = <T>(promise: Promise<T>) => {
      const state = { settled: false, promise };
      void promise.then(
        () => {
          state.settled = true;
        },
        () => {
          state.settled = true;
        },
      );
      return state;
    };

    it('does not strand a message enqueued while the previous one is being completed', async () => {
      const url = await server.createSchema();
      const [a, b] = [await openStore(url), await openStore(url)];
      const watcher = await rawClient(url);
      await a.enqueueDelivery(delivery('m1', 's'));
      expect((await a.claimDueDeliveries('A', 1, 10, 100)).map((d) => d.id)).toEqual(['m1']);
      const stall = await stallEnqueueOf(url, 'm2');
      // Instance B enqueues m2 while m1 is still there; its insert is frozen mid-way.
      const enqueued = tracked(b.enqueueDelivery(delivery('m2', 's')));
      await untilSettledOrWaiting(watcher, () => enqueued.settled, 1);
      // Instance A completes m1 meanwhile.
      const completed = tracked(a.completeDelivery('m1', 'A'));
      await untilSettledOrWaiting(watcher, () => completed.settled, 2);
      await stall.release();
      await enqueued.promise;
      expect(await completed.promise).toBe(true);
      // m2 must be claimable now that m1 is gone.
      expect(await a.nextDueAt()).toBe(0);
      expect((await b.claimDueDeliveries('B', 2, 10, 100)).map((d) => d.id)).toEqual(['m2']);
    });

    it('does not let a message enqueued later overtake one whose enqueue is still in flight', async () => {
      const url = await server.createSchema();
      const [a, b, c] = [await openStore(url), await openStore(url), await openStore(url)];
      const watcher = await rawClient(url);
      const stall = await stallEnqueueOf(url, 'first');
      const first = tracked(a.enqueueDelivery(delivery('first', 's')));
      await untilSettledOrWaiting(watcher, () => first.settled, 1);
      const second = tracked(b.enqueueDelivery(delivery('second', 's')));
      await untilSettledOrWaiting(watcher, () => second.settled, 2);
      // Nothing of the session is committed yet (or only `second`, which must not run ahead).
      expect(await c.claimDueDeliveries('C', 1, 10, 100)).toEqual([]);
      await stall.release();
      const [one, two] = [await first.promise, await second.promise];
      expect(two.seq).toBeGreaterThan(one.seq);
      expect((await c.claimDueDeliveries('C', 2, 10, 100)).map((d) => d.id)).toEqual(['first']);
      expect(await c.claimDueDeliveries('C', 3, 10, 100)).toEqual([]);
      expect(await c.completeDelivery('first', 'C')).toBe(true);
      expect((await c.claimDueDeliveries('C', 4, 10, 100)).map((d) => d.id)).toEqual(['second']);
    });

    it('claims concurrently from two instances: no double claim, one message per session in flight, all in order', async () => {
      const url = await server.createSchema();
      const instances = [await openStore(url), await openStore(url)] as const;
      const rand = mulberry32(42);
      const sessions = Array.from({ length: 8 }, (_, i) => `s${i}`);
      const perSession = 12;
      const expected = new Map<string, string[]>(sessions.map((s) => [s, []]));
      const interrupts = new Set<string>();
      // Half the messages are queued up front; the rest arrive while the workers run, each
      // session's producer alternating between the two instances.
      const enqueue = async (session: string, i: number): Promise<void> => {
        const id = `${session}-${i}`;
        expected.get(session)?.push(id);
        await (instances[i % 2] as PostgresStore).enqueueDelivery(delivery(id, session));
        if (i % 5 === 4) {
          interrupts.add(`${id}-int`);
          await (instances[(i + 1) % 2] as PostgresStore).enqueueDelivery(
            delivery(`${id}-int`, session, { kind: 'interrupt' }),
          );
        }
      };
      for (let i = 0; i < perSession / 2; i++) for (const s of sessions) await enqueue(s, i);
      let producing = true;
      const producers = Promise.all(
        sessions.map(async (s) => {
          for (let i = perSession / 2; i < perSession; i++) {
            await enqueue(s, i);
            await new Promise((resolve) => setImmediate(resolve));
          }
        }),
      ).finally(() => {
        producing = false;
      });

      let clock = 1;
      const inFlight = new Set<string>(); // every delivery currently claimed
      const sessionInFlight = new Map<string, string>(); // session → its message currently claimed
      const completed = new Map<string, string[]>(sessions.map((s) => [s, []]));
      const completedInterrupts = new Set<string>();
      const violations: string[] = [];
      let claims = 0;

      const worker = async (store: PostgresStore, claimer: string): Promise<void> => {
        for (let round = 0; round < 3000; round++) {
          const claimed = await store.claimDueDeliveries(claimer, clock++, 1 + Math.floor(rand() * 3), 1e12);
          if (claimed.length === 0) {
            if (!producing && (await store.outboxDepth()) === 0) return;
            await new Promise((resolve) => setTimeout(resolve, 1));
            continue;
          }
          claims += claimed.length;
          for (const d of claimed) {
            if (inFlight.has(d.id)) violations.push(`${d.id} claimed twice`);
            inFlight.add(d.id);
            if (d.kind !== 'message') continue;
            const holder = sessionInFlight.get(d.sessionKey);
            if (holder !== undefined) violations.push(`${d.id} claimed while ${holder} in flight`);
            sessionInFlight.set(d.sessionKey, d.id);
            const next = expected.get(d.sessionKey)?.[completed.get(d.sessionKey)?.length ?? 0];
            if (next !== d.id) violations.push(`${d.id} claimed before ${next}`);
          }
          // Hold the claims for a moment so other workers try to claim around them.
          for (let spin = Math.floor(rand() * 4); spin > 0; spin--) await store.ping();
          for (const d of claimed) {
            // Forget the claim before finishing it: the store may hand out the next message as
            // soon as the completion commits.
            inFlight.delete(d.id);
            if (d.kind === 'message') sessionInFlight.delete(d.sessionKey);
            const roll = rand();
            if (roll < 0.25) {
              if (
                !(await store.retryDeliveryLater(d.id, claimer, clock + Math.floor(rand() * 3), 'flaky', 503))
              ) {
                violations.push(`retry of ${d.id} by ${claimer} refused`);
              }
              continue;
            }
            if (d.kind === 'message') completed.get(d.sessionKey)?.push(d.id);
            else completedInterrupts.add(d.id);
            if (!(await store.completeDelivery(d.id, claimer)))
              violations.push(`completion of ${d.id} refused`);
          }
        }
        violations.push(`${claimer} did not finish`);
      };

      await Promise.all([
        ...[0, 1, 2].map((w) => worker(instances[0], `A${w}`)),
        ...[0, 1, 2].map((w) => worker(instances[1], `B${w}`)),
        producers,
      ]);
      expect(violations).toEqual([]);
      expect(completed).toEqual(expected);
      expect(completedInterrupts).toEqual(interrupts);
      expect(await instances[0].outboxDepth()).toBe(0);
      expect(claims).toBeGreaterThanOrEqual(sessions.length * perSession + interrupts.size);
    });

    it("keeps a session's order when two instances enqueue into it while a third claims", async () => {
      const url = await server.createSchema();
      const [a, b, c] = [await openStore(url), await openStore(url), await openStore(url)];
      const total = 60;
      let enqueued = 0;
      const producers = [a, b].map(async (store, p) => {
        // several concurrent enqueues per instance, all into one session
        await Promise.all(
          Array.from({ length: 3 }, async (_, lane) => {
            for (let i = lane; i < total / 2; i += 3) {
              await store.enqueueDelivery(delivery(`p${p}-${i}`, 'shared'));
              enqueued++;
            }
          }),
        );
      });
      const done: DeliveryRecord[] = [];
      const consumer = (async () => {
        for (let round = 0; done.length < total && round < 20_000; round++) {
          const claimed = await c.claimDueDeliveries('C', round + 1, 10, 1e12);
          expect(claimed.length).toBeLessThanOrEqual(1);
          for (const d of claimed) {
            done.push(d);
            expect(await c.completeDelivery(d.id, 'C')).toBe(true);
          }
          if (claimed.length === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      await Promise.all([...producers, consumer]);
      expect(enqueued).toBe(total);
      expect(done).toHaveLength(total);
      // Claimed strictly in seq order: no message ever committed behind one already handed out.
      const seqs = done.map((d) => d.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      // so each producer lane's messages come out in the order it enqueued them
      for (const p of [0, 1]) {
        for (let lane = 0; lane < 3; lane++) {
          const order = done
            .filter((d) => d.id.startsWith(`p${p}-`))
            .map((d) => Number(d.id.split('-')[1]))
            .filter((i) => i % 3 === lane);
          expect(order).toEqual(Array.from({ length: total / 6 }, (_, k) => lane + 3 * k));
        }
      }
    });

    it('redeems one enrollment token exactly once under concurrent attempts', async () => {
      const url = await server.createSchema();
      const [a, b] = [await openStore(url), await openStore(url)];
      const tenant = await a.createTenant('acme', 0);
      for (let round = 0; round < 5; round++) {
        const token = `enr-${round}`;
        await a.createEnrollmentToken(token, tenant.id, 1000, 0);
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            (i % 2 ? b : a).redeemEnrollmentToken(token, tenant.id, `gw-${i}`, 10),
          ),
        );
        const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
        expect(winners).toHaveLength(1);
        expect(results.filter((r) => !r.ok)).toEqual(Array(7).fill({ ok: false, reason: 'used' }));
        const client = await rawClient(url);
        const { rows } = await client.query('SELECT used_by FROM enrollment_tokens WHERE token_hash = $1', [
          token,
        ]);
        expect(rows).toEqual([{ used_by: `gw-${winners[0]}` }]);
      }
    });

    it('lets only one of two concurrent callers create a tenant name, retry a dead letter or own a route', async () => {
      const url = await server.createSchema();
      const [a, b] = [await openStore(url), await openStore(url)];
      const created = await Promise.allSettled([a.createTenant('acme', 1), b.createTenant('acme', 2)]);
      expect(created.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(created.find((r) => r.status === 'rejected')).toMatchObject({
        reason: expect.objectContaining({ message: 'a tenant named "acme" already exists' }),
      });
      expect(await a.listTenants()).toHaveLength(1);

      await a.enqueueDelivery(delivery('m1', 's'));
      await a.claimDueDeliveries('A', 1, 1, 100);
      expect(await a.deadLetterDelivery('m1', 'A', 'HTTP 410', 410, 2)).toBe(true);
      const retried = await Promise.all([a.retryDeadLetter('m1', 3), b.retryDeadLetter('m1', 3)]);
      expect(retried.filter(Boolean)).toHaveLength(1);
      expect((await b.listDeliveries(10)).map((d) => d.id)).toEqual(['m1']);

      const [t1, t2] = [await a.createTenant('one', 1), await a.createTenant('two', 1)];
      const routes = await Promise.all(
        [t1, t2].map((t, i) =>
          (i ? b : a).upsertRoute(
            { platform: 'telegram', routeKey: '42', tenantId: t.id, endpoint: '', gatewayId: null },
            5,
          ),
        ),
      );
      expect(routes.filter((r) => r.ok)).toHaveLength(1);
      expect(routes.filter((r) => !r.ok)).toEqual([
        { ok: false, reason: 'owned_by_other_tenant', routeKey: '42' },
      ]);
    });
  });
});
