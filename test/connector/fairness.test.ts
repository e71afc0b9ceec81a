/**
 * Per-tenant fairness in the delivery engine (#18): one tenant's backlog to a slow endpoint holds
 * at most its cap of attempt slots, so another tenant's deliveries go through meanwhile. First the
 * store's fair claim and claim-on-enqueue limits (both stores, Postgres when installed), then an
 * in-process engine on a real SQLite file with two real HTTP endpoints on 127.0.0.1. Assertions
 * are counts and order, never wall-clock times.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateSecret } from '../../src/auth/index.js';
import { TargetGuard } from '../../src/common/ssrf.js';
import { createTenant } from '../../src/connector/admin.js';
import { DeliveryEngine } from '../../src/connector/delivery-engine.js';
import { GatewayRegistry } from '../../src/connector/gateway-registry.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import { PostgresStore } from '../../src/connector/store/postgres.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import type { NewDelivery, RelayStore } from '../../src/connector/store/types.js';
import { HEADER_DELIVERY_ID } from '../../src/protocol/index.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { tempDir, until } from '../support/processes.js';
import { delivery } from './store-contract.js';

const log = pino({ level: 'silent' });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function ofTenant(id: string, session: string, tenantId: string, createdAt = 0): NewDelivery {
  return delivery(id, session, { tenantId, createdAt });
}

/** The fair-claim contract, run against each store. */
function describeFairClaim(name: string, open: () => Promise<RelayStore>): void {
  describe(`${name}: fair claim (#18)`, () => {
    let store: RelayStore;
    afterEach(async () => {
      await store?.close();
    });

    it('takes rows round-robin by tenant, no tenant over its cap minus what it has in flight', async () => {
      store = await open();
      // Tenant a: 6 sessions queued first; b: 2 sessions; c: 1 session with two messages.
      const rows = [
        ...Array.from({ length: 6 }, (_, i) => ofTenant(`a${i}`, `sa${i}`, 't_a')),
        ofTenant('b0', 'sb0', 't_b'),
        ofTenant('b1', 'sb1', 't_b'),
        ofTenant('c0', 'sc', 't_c'),
        ofTenant('c1', 'sc', 't_c'),
      ];
      await store.enqueueDeliveries(rows);
      const claimed = await store.claimDueDeliveries('A', 1, 10, 100, {
        perTenant: 3,
        inflight: new Map([['t_a', 1]]),
      });
      // a: 3 - 1 = 2 rows; b: both; c: only its session's head. Each tenant's first, then seconds.
      expect(claimed.map((d) => d.id)).toEqual(['a0', 'b0', 'c0', 'a1', 'b1']);
      for (const d of claimed) {
        expect(d.claimedBy).toBe('A');
        expect(d.claimedUntil).toBe(101);
        expect(d.attempts).toBe(1);
      }
      // Nothing of a while it is at its cap; the rest of a once it is not.
      expect(
        await store.claimDueDeliveries('A', 2, 10, 100, { perTenant: 3, inflight: new Map([['t_a', 3]]) }),
      ).toEqual([]);
      const more = await store.claimDueDeliveries('A', 2, 10, 100, {
        perTenant: 3,
        inflight: new Map([['t_a', 1]]),
      });
      expect(more.map((d) => d.id)).toEqual(['a2', 'a3']);
      // c1 waits for c0 whatever the limits say.
      await store.completeDelivery('c0', 'A');
      expect(
        (await store.claimDueDeliveries('B', 3, 10, 100, { perTenant: 3, inflight: new Map() })).map(
          (d) => d.id,
        ),
      ).toEqual(['a4', 'c1', 'a5']);
    });

    it('takes only what the limit allows, and a row held by another claimer is not taken again', async () => {
      store = await open();
      await store.enqueueDeliveries([
        ofTenant('a0', 's0', 't_a'),
        ofTenant('a1', 's1', 't_a'),
        ofTenant('b0', 's2', 't_b'),
      ]);
      const first = await store.claimDueDeliveries('A', 1, 1, 100, { perTenant: 5, inflight: new Map() });
      expect(first.map((d) => d.id)).toEqual(['a0']);
      const second = await store.claimDueDeliveries('B', 1, 10, 100, { perTenant: 5, inflight: new Map() });
      expect(second.map((d) => d.id).sort()).toEqual(['a1', 'b0']);
      // An expired lease is claimable again, under the limits.
      const again = await store.claimDueDeliveries('C', 102, 10, 100, {
        perTenant: 1,
        inflight: new Map(),
      });
      expect(again.map((d) => d.id)).toEqual(['a0', 'b0']);
    });

    it('claim-on-enqueue leases no more of a tenant than its limit', async () => {
      store = await open();
      const records = await store.enqueueDeliveries(
        [
          ofTenant('a0', 's0', 't_a'),
          ofTenant('a1', 's1', 't_a'),
          ofTenant('a2', 's2', 't_a'),
          ofTenant('b0', 's3', 't_b'),
          ofTenant('b1', 's4', 't_b'),
        ],
        { claimer: 'A', now: 5, leaseMs: 100, limit: 10, tenantLimits: new Map([['t_a', 1]]) },
      );
      expect(records.map((r) => r.claimedBy)).toEqual(['A', null, null, 'A', 'A']);
      expect(records.map((r) => r.attempts)).toEqual([1, 0, 0, 1, 1]);
      // The unleased ones are queued as usual.
      const claimed = await store.claimDueDeliveries('B', 6, 10, 100);
      expect(claimed.map((d) => d.id)).toEqual(['a1', 'a2']);
    });
  });
}

describeFairClaim('SqliteStore', async () => {
  const dir = tempDir('fair-claim');
  cleanups.push(() => dir.remove());
  return SqliteStore.open(join(dir.path, 'connector.db'));
});

describe.skipIf(postgresUnavailable !== null)('Postgres', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });
  describeFairClaim('PostgresStore', async () =>
    PostgresStore.open(await server.createSchema(), { maxConnections: 4 }),
  );
});

// ---------------------------------------------------------------------------------------------

interface CountingEndpoint {
  url: string;
  /** Delivery ids in the order their requests arrived. */
  arrived: string[];
  /** Requests answered so far. */
  answered: number;
  /** Most requests held open at once. */
  maxOpen: number;
  close(): Promise<void>;
}

/** An endpoint answering 200 after `delayMs` (a slow gateway) or at once. */
async function startCountingEndpoint(delayMs: number): Promise<CountingEndpoint> {
  let open = 0;
  const timers = new Set<NodeJS.Timeout>();
  const endpoint: CountingEndpoint = {
    url: '',
    arrived: [],
    answered: 0,
    maxOpen: 0,
    close: async () => undefined,
  };
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      endpoint.arrived.push(String(request.headers[HEADER_DELIVERY_ID]));
      open++;
      endpoint.maxOpen = Math.max(endpoint.maxOpen, open);
      const answer = () => {
        open--;
        endpoint.answered++;
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      };
      if (delayMs === 0) answer();
      else {
        const timer = setTimeout(() => {
          timers.delete(timer);
          answer();
        }, delayMs);
        timers.add(timer);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  endpoint.close = () =>
    new Promise<void>((resolve) => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return endpoint;
}

describe('DeliveryEngine per-tenant fairness (#18)', () => {
  it("a tenant with thousands queued to a slow endpoint holds only its cap; another tenant's deliveries all complete meanwhile", async () => {
    const dir = tempDir('fairness');
    cleanups.push(() => dir.remove());
    const store = SqliteStore.open(join(dir.path, 'connector.db'));
    cleanups.push(() => store.close());
    const slow = await startCountingEndpoint(2_000);
    cleanups.push(() => slow.close());
    const fast = await startCountingEndpoint(0);
    cleanups.push(() => fast.close());

    const tenants: string[] = [];
    for (const [name, endpoint, key] of [
      ['tenant-a', slow, 'a'],
      ['tenant-b', fast, 'b'],
    ] as const) {
      const { tenant } = await createTenant(store, name);
      await store.getOrCreateDeliveryKey(tenant.id, generateSecret());
      await store.upsertRoute(
        { platform: 'test', routeKey: key, tenantId: tenant.id, endpoint: endpoint.url, gatewayId: null },
        0,
      );
      tenants.push(tenant.id);
    }
    const [tenantA] = tenants as [string, string];

    // A's backlog: 3,000 deliveries in 3,000 sessions, all due, queued before B's.
    const BACKLOG = 3_000;
    for (let batch = 0; batch < BACKLOG / 500; batch++) {
      await store.enqueueDeliveries(
        Array.from({ length: 500 }, (_, i) => {
          const n = batch * 500 + i;
          return {
            ...delivery(`dlv_a${String(n).padStart(20, '0')}`, `agent:main:test:dm:a-${n}`, {
              tenantId: tenantA,
            }),
            gatewayId: null,
            endpoint: slow.url,
          };
        }),
      );
    }

    const concurrency = 128;
    const tenantConcurrency = 16;
    const engine = new DeliveryEngine({
      targets: new TargetGuard({ allowPrivate: 'all' }),
      store,
      registry: new GatewayRegistry(),
      metrics: new ConnectorMetrics(),
      log,
      instanceId: 'fair',
      concurrency,
      tenantConcurrency,
    });
    await engine.start();
    cleanups.push(() => engine.stop(100));
    // A's cap is taken (claimed by the pump)…
    await until(() => slow.arrived.length >= tenantConcurrency || undefined, 20_000, "A's first attempts");

    // …then A's own new events (claim-on-enqueue must respect the cap too) and B's, interleaved.
    const B_EVENTS = 200;
    const outcomes = await Promise.all(
      Array.from({ length: B_EVENTS }, async (_, i) => {
        const [b, a] = await Promise.all([
          engine.ingest('test', {
            routeKey: 'b',
            event: {
              text: `b${i}`,
              source: { platform: 'test', chat_id: `b-${i % 50}`, chat_type: 'dm', user_id: 'u' },
            },
          }),
          engine.ingest('test', {
            routeKey: 'a',
            event: {
              text: `a${i}`,
              source: { platform: 'test', chat_id: `a-new-${i}`, chat_type: 'dm', user_id: 'u' },
            },
          }),
        ]);
        return [a.ok, b.ok];
      }),
    );
    expect(outcomes.flat().every(Boolean)).toBe(true);
    await until(() => fast.answered >= B_EVENTS || undefined, 30_000, "every one of B's deliveries");
    const aArrived = slow.arrived.length;
    const aAnswered = slow.answered;

    // B is done while A's backlog is still all but untouched: A never had more than its cap open
    // (claim and claim-on-enqueue alike), and at most a few of its waves went through.
    expect(fast.arrived).toHaveLength(B_EVENTS);
    expect(slow.maxOpen).toBeLessThanOrEqual(tenantConcurrency);
    expect(aAnswered).toBeLessThan((BACKLOG + B_EVENTS) / 10);
    expect(aArrived).toBeLessThanOrEqual(aAnswered + tenantConcurrency);
    expect(await store.outboxDepth()).toBeGreaterThan(BACKLOG * 0.9);
    // And the cap is work A keeps doing: its next wave starts once the first is answered.
    await until(() => slow.arrived.length > aArrived || undefined, 20_000, "A's next wave");
    expect(slow.maxOpen).toBeLessThanOrEqual(tenantConcurrency);
  }, 60_000);
});
