import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ClusterEvent, ClusterRequest } from '../../src/connector/cluster/bus.js';
import { publishClusterEvent, RedisBus } from '../../src/connector/cluster/redis-bus.js';
import { freePort } from '../support/ports.js';
import { until } from '../support/processes.js';
import { type RedisServer, redisUnavailable, startRedis } from '../support/redis.js';

const log = pino({ level: 'silent' });

describe.skipIf(redisUnavailable !== null)('Redis cluster bus (private redis-server)', () => {
  let redis: RedisServer;
  const buses: RedisBus[] = [];
  let prefixCounter = 0;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    for (const bus of buses) await bus.stop();
    await redis?.stop();
  });

  /** Buses sharing one fresh key prefix, i.e. one cluster. */
  async function cluster(ids: string[], aliveTtlMs = 10_000): Promise<RedisBus[]> {
    const prefix = `t${++prefixCounter}:`;
    const made: RedisBus[] = [];
    for (const instanceId of ids) {
      const bus = await RedisBus.connect({ url: redis.url, instanceId, log, prefix, aliveTtlMs });
      buses.push(bus);
      made.push(bus);
    }
    return made;
  }

  const noHandlers = {
    onRequest: async () => null,
    onEvent: () => undefined,
  };

  it('answers a request addressed to one instance, and reports no answer for an absent one', async () => {
    const [a, b] = await cluster(['a', 'b']);
    const seen: ClusterRequest[] = [];
    await a?.start(noHandlers);
    await b?.start({
      onRequest: async (request) => {
        seen.push(request);
        return { kind: 'delivered' };
      },
      onEvent: () => undefined,
    });
    const request: ClusterRequest = {
      type: 'socket_delivery',
      connectionId: 'c1',
      tenantId: 't1',
      delivery: { id: 'd1', kind: 'message', sessionKey: 's', body: '{}' },
    };
    expect(await a?.request('b', request, 5_000)).toEqual({ kind: 'delivered' });
    expect(seen).toEqual([request]);
    const started = Date.now();
    expect(await a?.request('nobody', request, 5_000)).toBeUndefined();
    // Nobody subscribed: known at once, not after the timeout.
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('a malformed request gets an error reply, never reaches the handler', async () => {
    const [a, b] = await cluster(['a', 'b']);
    let calls = 0;
    await a?.start(noHandlers);
    await b?.start({
      onRequest: async () => {
        calls++;
        return 'x';
      },
      onEvent: () => undefined,
    });
    const reply = await a?.request('b', { type: 'socket_delivery' } as unknown as ClusterRequest, 5_000);
    expect(reply).toEqual({ error: 'malformed request' });
    expect(calls).toBe(0);
  });

  it('events reach every instance, including ones published from outside a connector', async () => {
    const [a, b] = await cluster(['a', 'b']);
    const got: Record<string, ClusterEvent[]> = { a: [], b: [] };
    await a?.start({ ...noHandlers, onEvent: (event) => got.a?.push(event) });
    await b?.start({ ...noHandlers, onEvent: (event) => got.b?.push(event) });
    await a?.publish({ type: 'keys_rotated', tenantId: 't1' });
    await until(() => (got.a?.length === 1 && got.b?.length === 1) || undefined, 5_000, 'events');
    expect(got.b).toEqual([{ type: 'keys_rotated', tenantId: 't1' }]);
  });

  it('the default prefix is what operator commands publish on', async () => {
    const bus = await RedisBus.connect({ url: redis.url, instanceId: 'solo', log });
    buses.push(bus);
    const got: ClusterEvent[] = [];
    await bus.start({ ...noHandlers, onEvent: (event) => got.push(event) });
    await publishClusterEvent(redis.url, { type: 'revoked', gatewayId: 'gw-1' }, log);
    await until(() => got.length === 1 || undefined, 5_000, 'revocation event');
    expect(got).toEqual([{ type: 'revoked', gatewayId: 'gw-1' }]);
    await bus.stop();
  });

  it('lists a tenant’s sockets on live instances only', async () => {
    const [a, b] = await cluster(['a', 'b'], 600);
    await a?.start(noHandlers);
    await b?.start(noHandlers);
    await a?.announceSocket({ instanceId: 'a', connectionId: 'ca', gatewayId: 'g1', tenantId: 't1' });
    await b?.announceSocket({ instanceId: 'b', connectionId: 'cb', gatewayId: 'g2', tenantId: 't1' });
    await b?.announceSocket({ instanceId: 'b', connectionId: 'cx', gatewayId: 'g3', tenantId: 't2' });
    expect((await a?.socketsOf('t1'))?.map((s) => s.connectionId).sort()).toEqual(['ca', 'cb']);
    await b?.withdrawSocket({ instanceId: 'b', connectionId: 'cb', gatewayId: 'g2', tenantId: 't1' });
    expect((await a?.socketsOf('t1'))?.map((s) => s.connectionId)).toEqual(['ca']);
    await b?.announceSocket({ instanceId: 'b', connectionId: 'cb', gatewayId: 'g2', tenantId: 't1' });
    // b stops cleanly: gone at once.
    await b?.stop();
    expect((await a?.socketsOf('t1'))?.map((s) => s.connectionId)).toEqual(['ca']);
    expect(await a?.deadInstances(['a', 'b', 'never'])).toEqual(['b', 'never']);
  });

  it('an instance that stops beating is dead once its heartbeat lapses', async () => {
    const [a, b] = await cluster(['a', 'b'], 500);
    await a?.start(noHandlers);
    await b?.start(noHandlers);
    expect(await a?.deadInstances(['b'])).toEqual([]);
    // Simulate a crash: the heartbeat timer stops, nothing is cleaned up.
    (b as unknown as { heartbeat: NodeJS.Timeout }).heartbeat.unref();
    clearInterval((b as unknown as { heartbeat: NodeJS.Timeout }).heartbeat);
    await until(
      async () => ((await a?.deadInstances(['b']))?.length === 1 ? true : undefined),
      5_000,
      'lapse',
    );
  });

  it('judges its own heartbeat on the monotonic clock: a wall-clock step neither fences nor un-fences it (review L5)', async () => {
    const [a] = await cluster(['mono'], 1_000);
    await a?.start(noHandlers);
    expect(a?.heartbeatCurrent()).toBe(true);
    const real = Date.now();
    const jump = vi.spyOn(Date, 'now');
    try {
      jump.mockReturnValue(real + 3_600_000);
      expect(a?.heartbeatCurrent()).toBe(true);
      jump.mockReturnValue(real - 3_600_000);
      expect(a?.heartbeatCurrent()).toBe(true);
    } finally {
      jump.mockRestore();
    }
    // It does lapse when no beat reaches Redis for 60 % of the TTL.
    clearInterval((a as unknown as { heartbeat: NodeJS.Timeout }).heartbeat);
    await until(() => (a?.heartbeatCurrent() === false ? true : undefined), 15_000, 'own heartbeat lapsed');
  });

  it('refuses a second live process with the same instance id', async () => {
    const [first] = await cluster(['same'], 800);
    await first?.start(noHandlers);
    const prefix = `t${prefixCounter}:`;
    const second = await RedisBus.connect({
      url: redis.url,
      instanceId: 'same',
      log,
      prefix,
      aliveTtlMs: 800,
    });
    buses.push(second);
    await expect(second.start(noHandlers)).rejects.toThrow(/another connector instance with id "same"/);
  });

  it('a lease has one holder; it moves when the holder stops renewing', async () => {
    const [a, b] = await cluster(['a', 'b']);
    expect(await a?.holdLease('telegram:x', 400)).toBe(true);
    expect(await b?.holdLease('telegram:x', 400)).toBe(false);
    expect(await a?.holdLease('telegram:x', 400)).toBe(true);
    await until(
      async () => ((await b?.holdLease('telegram:x', 400)) ? true : undefined),
      5_000,
      'lease moved',
    );
    expect(await a?.holdLease('telegram:x', 400)).toBe(false);
    await b?.releaseLease('telegram:x');
    expect(await a?.holdLease('telegram:x', 400)).toBe(true);
  });

  it('tracks chat owners (live ones) and session placements', async () => {
    const [a, b] = await cluster(['a', 'b']);
    await a?.start(noHandlers);
    await b?.start(noHandlers);
    await a?.claimChat('webchat', 'wc-room-v1');
    expect(await b?.chatOwner('webchat', 'wc-room-v1')).toBe('a');
    await b?.releaseChat('webchat', 'wc-room-v1'); // not b's to release
    expect(await b?.chatOwner('webchat', 'wc-room-v1')).toBe('a');
    await a?.stop();
    expect(await b?.chatOwner('webchat', 'wc-room-v1')).toBeNull();

    const placement = { tenantId: 't1', chatId: 'c1', endpoint: '', gatewayId: 'g1' };
    await b?.rememberSession('agent:main:webchat:dm:c1', placement);
    expect(await b?.sessionPlacement('t1', 'agent:main:webchat:dm:c1')).toEqual(placement);
    expect(await b?.sessionPlacement('t2', 'agent:main:webchat:dm:c1')).toBeNull();
  });

  it('fails with a readable error, password hidden, when Redis is unreachable', async () => {
    const port = await freePort();
    const url = `redis://user:s3cret@127.0.0.1:${port}`;
    const error = await RedisBus.connect({ url, instanceId: 'x', log, connectTimeoutMs: 1_500 }).catch(
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/cannot reach Redis at redis:\/\/user:\*\*\*@127\.0\.0\.1/);
    expect((error as Error).message).not.toContain('s3cret');
  });
});
