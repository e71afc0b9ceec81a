/**
 * The delivery engine's write path in process: group-committed enqueues (with the claim taken in
 * the same transaction), batched completions, the delivery-key cache and the pump picking up what
 * the fast path does not start. A real SQLite file store and a real HTTP endpoint that verifies
 * every signature; no wall-clock assertions (clocks are injected where time matters).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSecret, verifyDelivery } from '../../src/auth/index.js';
import { TargetGuard } from '../../src/common/ssrf.js';
import { addRoute, createTenant } from '../../src/connector/admin.js';
import { DeliveryEngine } from '../../src/connector/delivery-engine.js';
import { GatewayRegistry } from '../../src/connector/gateway-registry.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import {
  HEADER_DELIVERY_ID,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  type MessageEventInit,
} from '../../src/protocol/index.js';
import { until } from '../support/poll.js';
import { tempDir } from '../support/processes.js';

const log = pino({ level: 'silent' });

interface Received {
  id: string;
  text: string;
  chatId: string;
}

interface Endpoint {
  url: string;
  received: Received[];
  /** Status to answer with, per request (default 200). */
  answer: (id: string) => number;
  /** Keys the endpoint accepts; a delivery signed with anything else gets 401. */
  keys: string[];
  close(): Promise<void>;
}

async function startEndpoint(keys: string[]): Promise<Endpoint> {
  const endpoint: Endpoint = {
    url: '',
    received: [],
    answer: () => 200,
    keys,
    close: async () => undefined,
  };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const raw = Buffer.concat(chunks);
      const verified = verifyDelivery(
        raw,
        request.headers[HEADER_TIMESTAMP],
        request.headers[HEADER_SIGNATURE],
        endpoint.keys,
      );
      if (!verified.ok) {
        response.writeHead(401).end();
        return;
      }
      const body = JSON.parse(raw.toString('utf8')) as {
        delivery_id: string;
        event: { text: string; source: { chat_id: string } };
      };
      expect(request.headers[HEADER_DELIVERY_ID]).toBe(body.delivery_id);
      const status = endpoint.answer(body.delivery_id);
      if (status === 200) {
        endpoint.received.push({
          id: body.delivery_id,
          text: body.event.text,
          chatId: body.event.source.chat_id,
        });
      }
      response.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  endpoint.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return endpoint;
}

function event(chatId: string, text: string): MessageEventInit {
  return { text, source: { platform: 'test', chat_id: chatId, chat_type: 'dm', user_id: chatId } };
}

interface Setup {
  store: SqliteStore;
  engine: DeliveryEngine;
  endpoint: Endpoint;
  tenantId: string;
  key: string;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(
  options: {
    now?: () => number;
    deliveryKeysTtlMs?: number;
    wrap?: (store: SqliteStore) => void;
    alive?: () => boolean;
  } = {},
): Promise<Setup> {
  const dir = tempDir('delivery-engine');
  cleanups.push(() => dir.remove());
  const store = SqliteStore.open(join(dir.path, 'connector.db'));
  cleanups.push(() => store.close());
  const { tenant } = await createTenant(store, 'acme');
  const key = (await store.getOrCreateDeliveryKey(tenant.id, generateSecret())).primary;
  const endpoint = await startEndpoint([key]);
  cleanups.push(() => endpoint.close());
  // The endpoint is on 127.0.0.1: allowed explicitly (SSRF rule, common/ssrf.ts).
  await addRoute(store, {
    tenantRef: tenant.id,
    platform: 'test',
    routeKey: 'room',
    endpoint: endpoint.url,
    allowPrivateTargets: 'all',
  });
  options.wrap?.(store);
  const engine = new DeliveryEngine({
    targets: new TargetGuard({ allowPrivate: 'all' }),
    store,
    registry: new GatewayRegistry(),
    metrics: new ConnectorMetrics(),
    log,
    instanceId: 'engine-a',
    backoffBaseMs: 20,
    backoffCapMs: 40,
    ...(options.now ? { now: options.now } : {}),
    ...(options.deliveryKeysTtlMs !== undefined ? { deliveryKeysTtlMs: options.deliveryKeysTtlMs } : {}),
    ...(options.alive ? { alive: options.alive } : {}),
  });
  await engine.start();
  cleanups.push(() => engine.stop(1_000));
  return { store, engine, endpoint, tenantId: tenant.id, key };
}

describe('DeliveryEngine fencing (#18)', () => {
  it('claims and delivers nothing while its cluster heartbeat may have lapsed, and resumes when it is back', async () => {
    let alive = false;
    let checks = 0;
    let claims = 0;
    const { engine, endpoint, store } = await setup({
      alive: () => {
        checks++;
        return alive;
      },
      wrap: (s) => {
        const claim = s.claimDueDeliveries.bind(s);
        s.claimDueDeliveries = async (...args) => {
          claims++;
          return claim(...args);
        };
      },
    });
    const outcome = await engine.ingest('test', { routeKey: 'room', event: event('chat-f', 'fenced-1') });
    expect(outcome.ok).toBe(true);
    // Queued (the ingest itself never waits on the bus), neither leased with the enqueue nor
    // claimed by the pump, which keeps looking whether the heartbeat is back.
    await until(() => checks >= 4 || undefined, 10_000, 'the fenced pump looking again');
    const [row] = await store.listDeliveries(10);
    expect(row?.claimedBy).toBeNull();
    expect(row?.attempts).toBe(0);
    expect(claims).toBe(0);
    expect(endpoint.received).toHaveLength(0);
    alive = true;
    await until(
      () => endpoint.received.length === 1 || undefined,
      10_000,
      'the delivery after the heartbeat is back',
    );
    await until(
      async () => ((await store.outboxDepth()) === 0 ? true : undefined),
      10_000,
      'an empty outbox',
    );
  });
});

describe('DeliveryEngine write path', () => {
  it('commits concurrent ingests together, each durable before it resolves, and delivers each once', async () => {
    const batches: number[] = [];
    const committed = new Set<string>();
    const { engine, endpoint, store } = await setup({
      wrap: (s) => {
        const many = s.enqueueDeliveries.bind(s);
        s.enqueueDeliveries = async (deliveries, lease) => {
          const records = await many(deliveries, lease);
          batches.push(deliveries.length);
          for (const d of deliveries) committed.add(d.id);
          return records;
        };
      },
    });
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const outcome = await engine.ingest('test', { routeKey: 'room', event: event(`chat-${i}`, `m${i}`) });
        // Resolved only once its row was committed.
        if (outcome.ok) expect(committed.has(outcome.deliveryId)).toBe(true);
        return outcome;
      }),
    );
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(batches.length).toBeLessThan(40);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(40);
    await until(() => endpoint.received.length === 40, 10_000, 'all deliveries');
    await until(async () => (await store.outboxDepth()) === 0, 10_000, 'an empty outbox');
    const ids = endpoint.received.map((r) => r.id);
    expect(new Set(ids).size).toBe(40);
    expect(new Set(ids)).toEqual(new Set(outcomes.map((o) => (o.ok ? o.deliveryId : ''))));
    for (const id of ids) expect(id).toMatch(/^dlv_[0-9a-f]{24}$/);
  });

  it('completes deliveries in batches and keeps every session in order, including queued successors', async () => {
    let completionCalls = 0;
    let completed = 0;
    const { engine, endpoint, store } = await setup({
      wrap: (s) => {
        const many = s.completeDeliveries.bind(s);
        s.completeDeliveries = async (ids, claimer) => {
          completionCalls++;
          const results = await many(ids, claimer);
          completed += results.filter((r) => r.completed).length;
          return results;
        };
      },
    });
    // Five messages per chat, ingested at once: only the first of each session can be leased on
    // enqueue, the others wait behind it and are claimed by the pump as each completion promotes
    // the next one.
    const chats = ['a', 'b', 'c', 'd'];
    await Promise.all(
      chats.flatMap((chat) =>
        [0, 1, 2, 3, 4].map((n) =>
          engine.ingest('test', { routeKey: 'room', event: event(chat, `${chat}${n}`) }),
        ),
      ),
    );
    await until(() => endpoint.received.length === 20, 10_000, 'all deliveries');
    await until(async () => (await store.outboxDepth()) === 0, 10_000, 'an empty outbox');
    for (const chat of chats) {
      expect(endpoint.received.filter((r) => r.chatId === chat).map((r) => r.text)).toEqual(
        [0, 1, 2, 3, 4].map((n) => `${chat}${n}`),
      );
    }
    expect(completed).toBe(20);
    expect(completionCalls).toBeLessThanOrEqual(20);
  });

  it('writes completions and new rows of one turn in one commit, and survives a failed shared commit (issue 20)', async () => {
    let shared = 0;
    let failNext = false;
    let failed = 0;
    const { engine, endpoint, store } = await setup({
      wrap: (s) => {
        const atomically = s.atomically.bind(s);
        s.atomically = async (work) => {
          shared++;
          if (!failNext) return atomically(work);
          failNext = false;
          failed++;
          // The calls run and answer, then the whole transaction rolls back.
          return atomically(() => {
            work();
            throw new Error('injected commit failure');
          });
        };
      },
    });
    const outcomes: Promise<{ ok: boolean }>[] = [];
    for (let wave = 0; wave < 30; wave++) {
      if (wave === 15) failNext = true;
      for (let i = 0; i < 8; i++)
        outcomes.push(engine.ingest('test', { routeKey: 'room', event: event(`c${i}`, `w${wave}-${i}`) }));
      await until(() => endpoint.received.length > wave * 4, 10_000, 'deliveries under way');
    }
    expect((await Promise.all(outcomes)).every((o) => o.ok)).toBe(true);
    await until(() => endpoint.received.length === 240, 10_000, 'all deliveries');
    await until(async () => (await store.outboxDepth()) === 0, 10_000, 'an empty outbox');
    expect(shared).toBeGreaterThan(0);
    expect(failed).toBe(1);
    // Each once, and each chat in order.
    expect(new Set(endpoint.received.map((r) => r.id)).size).toBe(240);
    for (let i = 0; i < 8; i++)
      expect(endpoint.received.filter((r) => r.chatId === `c${i}`).map((r) => r.text)).toEqual(
        Array.from({ length: 30 }, (_, wave) => `w${wave}-${i}`),
      );
    // No attempt slot was kept by a lease the failed commit rolled back.
    await until(
      () => (engine as unknown as { inflight: number }).inflight === 0,
      10_000,
      'no attempt in flight',
    );
  });

  it('retries a failed attempt and still completes it once', async () => {
    const { engine, endpoint, store } = await setup();
    let failures = 0;
    endpoint.answer = () => (failures++ < 2 ? 503 : 200);
    const outcome = await engine.ingest('test', { routeKey: 'room', event: event('r', 'retry me') });
    expect(outcome.ok).toBe(true);
    await until(() => endpoint.received.length === 1, 10_000, 'the delivery after retries');
    await until(async () => (await store.outboxDepth()) === 0, 10_000, 'an empty outbox');
    expect(failures).toBeGreaterThanOrEqual(3);
    expect(endpoint.received.map((r) => r.text)).toEqual(['retry me']);
  });

  it('falls back to one transaction per row when a batch fails', async () => {
    let failBatch = true;
    const { engine, endpoint, store } = await setup({
      wrap: (s) => {
        const many = s.enqueueDeliveries.bind(s);
        s.enqueueDeliveries = async (deliveries, lease) => {
          if (failBatch) {
            failBatch = false;
            throw new Error('injected batch failure');
          }
          return many(deliveries, lease);
        };
      },
    });
    const outcomes = await Promise.all(
      [1, 2, 3].map((i) => engine.ingest('test', { routeKey: 'room', event: event(`f${i}`, `f${i}`) })),
    );
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, true]);
    await until(() => endpoint.received.length === 3, 10_000, 'all deliveries');
    await until(async () => (await store.outboxDepth()) === 0, 10_000, 'an empty outbox');
  });

  it('reaches a gateway enrolled during a rotation window, which holds only the new key, on its first retry', async () => {
    const { engine, endpoint, store, tenantId, key } = await setup({ deliveryKeysTtlMs: 0 });
    const next = generateSecret();
    await store.rotateDeliveryKey(tenantId, next, Date.now(), 3_600_000);
    endpoint.keys = [next];
    await engine.ingest('test', { routeKey: 'room', event: event('w', 'in the window') });
    await until(() => endpoint.received.length === 1, 10_000, 'delivery signed with the new key');
    // Gateways that still hold the previous key keep getting first attempts signed with it.
    endpoint.keys = [key];
    await engine.ingest('test', { routeKey: 'room', event: event('w2', 'old key') });
    await until(() => endpoint.received.length === 2, 10_000, 'delivery signed with the previous key');
  });

  it('reads delivery keys at most once per TTL and signs with a rotated key once it expires', async () => {
    let now = 1_000_000;
    let keyReads = 0;
    const { engine, endpoint, store, tenantId, key } = await setup({
      now: () => now,
      deliveryKeysTtlMs: 1_000,
      wrap: (s) => {
        const get = s.getDeliveryKeys.bind(s);
        s.getDeliveryKeys = async (id) => {
          keyReads++;
          return get(id);
        };
      },
    });
    for (const n of [1, 2, 3]) {
      await engine.ingest('test', { routeKey: 'room', event: event('k', `k${n}`) });
      await until(() => endpoint.received.length === n || undefined, 10_000, `delivery ${n}`);
    }
    expect(keyReads).toBe(1);

    // Rotate with no window: the new key signs at once (after the cache), the endpoint only has it.
    const next = generateSecret();
    await store.rotateDeliveryKey(tenantId, next, now, 0);
    endpoint.keys = [next];
    now += 1_001;
    await engine.ingest('test', { routeKey: 'room', event: event('k', 'k4') });
    await until(() => endpoint.received.length === 4, 10_000, 'delivery after the rotation');
    expect(keyReads).toBe(2);
    expect(key).not.toBe(next);
  });

  it("remembers a dedupe key for the ingest's own TTL when it names one, else an hour (review L1)", async () => {
    let now = Date.now();
    const { engine } = await setup({ now: () => now });
    const send = (key: string, ttl?: number) =>
      engine.ingest('test', {
        routeKey: 'room',
        dedupeKey: key,
        ...(ttl === undefined ? {} : { dedupeTtlMs: ttl }),
        event: event(`chat-${key}`, key),
      });
    expect((await send('long', 30 * 24 * 3600_000)).ok).toBe(true);
    expect((await send('short')).ok).toBe(true);
    now += 2 * 3600_000;
    expect(await send('long', 30 * 24 * 3600_000)).toMatchObject({ ok: false, reason: 'duplicate' });
    expect((await send('short')).ok).toBe(true);
  });

  it("records a chat once per day, not per event, so an active chat's updated_at never ages into retention (#18)", async () => {
    let now = 1_000_000;
    let writes = 0;
    const { engine, endpoint, store, tenantId } = await setup({
      now: () => now,
      wrap: (s) => {
        const record = s.recordChat.bind(s);
        s.recordChat = async (chat) => {
          writes++;
          return record(chat);
        };
      },
    });
    for (const n of [1, 2]) {
      await engine.ingest('test', { routeKey: 'room', event: event('daily', `d${n}`) });
      await until(() => endpoint.received.length === n || undefined, 10_000, `delivery ${n}`);
    }
    expect(writes).toBe(1);
    now += 24 * 3600_000 + 1;
    await engine.ingest('test', { routeKey: 'room', event: event('daily', 'd3') });
    await until(() => endpoint.received.length === 3 || undefined, 10_000, 'delivery a day later');
    expect(writes).toBe(2);
    expect((await store.findChat(tenantId, 'daily'))?.updatedAt).toBe(now);
  });
});
