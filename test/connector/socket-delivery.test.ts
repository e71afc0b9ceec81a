/**
 * Socket delivery turns a stored delivery body into a frame once, checked against the schema the
 * gateway reads it with (issue #14 §4): a valid body goes out byte for byte as stored, a body that
 * makes no valid frame is an `invalid` outcome, which the engine dead-letters at once.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { addRoute, createTenant } from '../../src/connector/admin.js';
import { DeliveryEngine } from '../../src/connector/delivery-engine.js';
import { type GatewayConnection, GatewayRegistry } from '../../src/connector/gateway-registry.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import { SessionDirectory } from '../../src/connector/session-directory.js';
import { SocketDelivery } from '../../src/connector/socket-delivery.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import type { DeliveryRecord } from '../../src/connector/store/types.js';
import {
  deliveryFrame,
  deliveryLine,
  encodeFrame,
  FrameWriter,
  interruptDeliveryBody,
  messageDeliveryBody,
  messageEventToWire,
} from '../../src/protocol/index.js';
import { until } from '../support/poll.js';
import { tempDir } from '../support/processes.js';

const log = pino({ level: 'silent' });
const wireEvent = messageEventToWire({
  text: 'héllo \u{1F50C}',
  message_id: '42',
  source: { platform: 'telegram', chat_id: '-100', chat_type: 'group', user_id: 'u1', thread_id: '7' },
});

function record(kind: 'message' | 'interrupt', body: string, id = 'dlv_1'): DeliveryRecord {
  return {
    id,
    tenantId: 't1',
    gatewayId: 'gw1',
    sessionKey: 'agent:main:telegram:group:-100:7',
    kind,
    body,
    endpoint: '',
    createdAt: 0,
    seq: 1,
    attempts: 1,
    nextAttemptAt: 0,
    lastError: null,
    lastStatus: null,
    claimedBy: 'me',
    claimedUntil: 1,
  };
}

/** The engine these cases drive: one instance on `store`, its sockets in `registry`, a silent log. */
function testEngine(
  store: SqliteStore,
  registry: GatewayRegistry,
  extra: Partial<ConstructorParameters<typeof DeliveryEngine>[0]> = {},
): DeliveryEngine {
  return new DeliveryEngine({
    store,
    registry,
    metrics: new ConnectorMetrics(),
    log,
    instanceId: 'engine-a',
    ...extra,
  });
}

describe('deliveryFrame', () => {
  it('carries the stored event unchanged in an inbound frame acknowledged by the delivery id', () => {
    const body = JSON.stringify(messageDeliveryBody(wireEvent, 'dlv_1'));
    const framed = deliveryFrame(record('message', body));
    expect(framed).toEqual({ ok: true, frame: { type: 'inbound', event: wireEvent, bufferId: 'dlv_1' } });
    // The event's bytes in the frame are the stored ones (no parse-and-reserialise).
    const stored = JSON.stringify((JSON.parse(body) as { event: unknown }).event);
    expect(JSON.stringify(framed.ok && framed.frame)).toContain(`"event":${stored}`);
  });

  it('makes an interrupt_inbound frame, falling back to the delivery session key and an empty chat', () => {
    const full = JSON.stringify(interruptDeliveryBody('k1', 'c1', 'stop', 'dlv_2'));
    expect(deliveryFrame(record('interrupt', full))).toEqual({
      ok: true,
      frame: { type: 'interrupt_inbound', session_key: 'k1', chat_id: 'c1' },
    });
    expect(deliveryFrame(record('interrupt', '{"type":"interrupt"}'))).toEqual({
      ok: true,
      frame: { type: 'interrupt_inbound', session_key: 'agent:main:telegram:group:-100:7', chat_id: '' },
    });
  });

  it('is an error result, never an exception, for a body that makes no valid frame', () => {
    const cases: [kind: 'message' | 'interrupt', body: string, error: RegExp][] = [
      ['message', 'not json', /stored body: invalid JSON/],
      ['message', '[1,2]', /not a JSON object/],
      ['message', '{"type":"message"}', /no valid frame: event/],
      ['message', '{"type":"message","event":"hi"}', /no valid frame: event/],
      ['interrupt', '{"session_key":""}', /no valid frame: session_key/],
      ['interrupt', '{"session_key":5}', /no valid frame: session_key/],
    ];
    for (const [kind, body, error] of cases) {
      const framed = deliveryFrame(record(kind, body));
      expect(framed.ok).toBe(false);
      if (!framed.ok) expect(framed.error).toMatch(error);
    }
  });
});

describe('deliveryLine (issue 20: the stored event spliced, not re-parsed)', () => {
  const events = [
    wireEvent,
    messageEventToWire({ text: '', source: { platform: 'relay' } }),
    messageEventToWire({
      text: 'line\nbreak "quoted" \\ \u2028 \ud800 \u0000',
      media_urls: ['https://x.test/a b'],
      media: [
        {
          url: 'https://x.test/a b',
          kind: 'image',
          mime: undefined,
          size: 12.5,
          filename: undefined,
          caption: undefined,
        },
      ],
      reply_to: { text: 'prev', author: 'a', is_own: false },
      context: [{ text: 'ctx', source: { user_name: 'b', user_id: '9' } }],
      source: { platform: 'discord', chat_id: '1', chat_type: 'channel', is_bot: true },
    }),
    {},
  ];

  it('writes exactly the line encodeFrame makes from the checked frame, for bodies ingest writes', () => {
    for (const event of events) {
      const body = JSON.stringify(messageDeliveryBody(event, 'dlv_0123456789abcdef01234567'));
      const checked = deliveryFrame(record('message', body, 'dlv_0123456789abcdef01234567'));
      const line = deliveryLine(record('message', body, 'dlv_0123456789abcdef01234567'));
      expect(checked.ok).toBe(true);
      expect(line).toEqual({
        ok: true,
        type: 'inbound',
        line: encodeFrame(checked.ok ? checked.frame : ({} as never)),
      });
      // What the gateway reads back is the event as stored.
      const parsed = JSON.parse(line.ok ? line.line : '') as { event: unknown; bufferId: string };
      expect(parsed).toEqual({
        type: 'inbound',
        event: JSON.parse(JSON.stringify(event)),
        bufferId: 'dlv_0123456789abcdef01234567',
      });
    }
  });

  it('still refuses a corrupt or foreign stored body (the checked path), never splices it', () => {
    const good = JSON.stringify(messageDeliveryBody(wireEvent, 'dlv_1'));
    const cases: [body: string, error: RegExp][] = [
      [good.slice(0, -7), /stored body: invalid JSON/], // truncated row
      [`${good.slice(0, 40)}\u0000garbage`, /stored body: invalid JSON/],
      ['not json', /stored body: invalid JSON/],
      ['{"type":"message","event":"hi","delivery_id":"dlv_1"}', /no valid frame: event/],
      ['{"type":"message","event":[],"delivery_id":"dlv_1"}', /no valid frame: event/],
      ['{"type":"message","event":null,"delivery_id":"dlv_1"}', /no valid frame: event/],
    ];
    for (const [body, error] of cases) {
      const line = deliveryLine(record('message', body));
      expect(line.ok, body).toBe(false);
      if (!line.ok) expect(line.error).toMatch(error);
    }
  });

  it('checks, and re-encodes, bodies of any other shape as before', () => {
    // A pretty-printed body (another writer), a body naming another delivery, one without an id.
    const other = JSON.stringify(messageDeliveryBody(wireEvent, 'dlv_other'));
    const pretty = JSON.stringify(messageDeliveryBody(wireEvent, 'dlv_1'), null, 2);
    const bare = JSON.stringify(messageDeliveryBody(wireEvent));
    for (const body of [other, pretty, bare]) {
      const line = deliveryLine(record('message', body));
      expect(line).toEqual({
        ok: true,
        type: 'inbound',
        line: encodeFrame({ type: 'inbound', event: wireEvent, bufferId: 'dlv_1' }),
      });
    }
    // The ingest shape with a line break inside: spliced, it would end the frame early on the
    // wire; checked and re-encoded, it is one line.
    const broken = '{"type":"message","event":{"text":"a"\n,"x":1},"delivery_id":"dlv_1"}';
    expect(deliveryLine(record('message', broken))).toEqual({
      ok: true,
      type: 'inbound',
      line: '{"type":"inbound","event":{"text":"a","x":1},"bufferId":"dlv_1"}\n',
    });
    const interrupt = JSON.stringify(interruptDeliveryBody('k1', 'c1', 'stop', 'dlv_2'));
    expect(deliveryLine(record('interrupt', interrupt))).toEqual({
      ok: true,
      type: 'interrupt_inbound',
      line: '{"type":"interrupt_inbound","session_key":"k1","chat_id":"c1"}\n',
    });
  });
});

/** A handshaken connection whose frames are collected as the lines written to the socket. */
function fakeConnection(lines: string[]): GatewayConnection {
  return {
    id: 'c_1',
    gatewayId: 'gw1',
    tenantId: 't1',
    ws: { readyState: 1, OPEN: 1 } as unknown as WebSocket,
    writer: new FrameWriter((data, done) => {
      lines.push(data);
      done();
    }),
    connectedAt: 0,
    platform: 'telegram',
    identities: [{ platform: 'telegram', botId: '', served: 'telegram' }],
    handshaken: true,
    idle: false,
  };
}

describe('SocketDelivery', () => {
  it('writes the same bytes as before: the stored event as the inbound frame event', async () => {
    const registry = new GatewayRegistry();
    const lines: string[] = [];
    const connection = fakeConnection(lines);
    registry.add(connection);
    const sockets = new SocketDelivery({ registry, sessions: new SessionDirectory(), log });
    const body = JSON.stringify(messageDeliveryBody(wireEvent, 'dlv_1'));
    const outcome = sockets.deliver(record('message', body));
    await new Promise((resolve) => setImmediate(resolve));
    const stored = JSON.stringify((JSON.parse(body) as { event: unknown }).event);
    expect(lines).toEqual([`{"type":"inbound","event":${stored},"bufferId":"dlv_1"}\n`]);
    sockets.acknowledge(connection, 'dlv_1');
    expect(await outcome).toEqual({ kind: 'delivered' });

    const interrupt = JSON.stringify(interruptDeliveryBody('k1', 'c1', 'stop', 'dlv_2'));
    expect(await sockets.deliver(record('interrupt', interrupt, 'dlv_2'))).toEqual({ kind: 'delivered' });
    expect(lines[1]).toBe('{"type":"interrupt_inbound","session_key":"k1","chat_id":"c1"}\n');
  });

  it("sends a spliced line through the writer's own write, which a writer that counts its frames sees", async () => {
    const taken: unknown[] = [];
    const lines: string[] = [];
    class CountingWriter extends FrameWriter {
      override write(frame: Parameters<FrameWriter['write']>[0], done?: (error?: Error) => void): void {
        taken.push(frame);
        super.write(frame, done);
      }
    }
    const connection = {
      ...fakeConnection(lines),
      writer: new CountingWriter((data, done) => {
        lines.push(data);
        done();
      }),
    };
    const registry = new GatewayRegistry();
    registry.add(connection);
    const sockets = new SocketDelivery({ registry, sessions: new SessionDirectory(), log });
    const body = JSON.stringify(messageDeliveryBody(wireEvent, 'dlv_1'));
    const outcome = sockets.deliver(record('message', body));
    await new Promise((resolve) => setImmediate(resolve));
    expect(taken).toHaveLength(1);
    expect(lines).toEqual([encodeFrame({ type: 'inbound', event: wireEvent, bufferId: 'dlv_1' })]);
    sockets.acknowledge(connection, 'dlv_1');
    expect(await outcome).toEqual({ kind: 'delivered' });
  });

  it('answers invalid for a corrupt body, before looking for a socket and without writing', async () => {
    const registry = new GatewayRegistry();
    const lines: string[] = [];
    registry.add(fakeConnection(lines));
    const sockets = new SocketDelivery({ registry, sessions: new SessionDirectory(), log });
    const outcome = await sockets.deliver(record('message', '{"type":"message","event":null}'));
    expect(outcome.kind).toBe('invalid');
    expect(
      await new SocketDelivery({
        registry: new GatewayRegistry(),
        sessions: new SessionDirectory(),
        log,
      }).deliver(record('message', '{')),
    ).toMatchObject({ kind: 'invalid' });
    const here = await sockets.deliverHere('c_1', 't1', record('interrupt', '{"session_key":7}'));
    expect(here.kind).toBe('invalid');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toEqual([]);
  });
});

describe('DeliveryEngine.deliverHere (the one route to socket delivery from the cluster bus)', () => {
  it('sends on the socket this instance holds, and answers no_socket or invalid otherwise', async () => {
    const registry = new GatewayRegistry();
    const lines: string[] = [];
    registry.add(fakeConnection(lines));
    const store = SqliteStore.open(':memory:');
    try {
      const engine = testEngine(store, registry);
      const interrupt = record(
        'interrupt',
        JSON.stringify(interruptDeliveryBody('k1', 'c1', 'stop', 'dlv_3')),
      );
      expect(await engine.deliverHere('c_1', 't1', interrupt)).toEqual({ kind: 'delivered' });
      expect(lines).toEqual(['{"type":"interrupt_inbound","session_key":"k1","chat_id":"c1"}\n']);
      expect(await engine.deliverHere('c_1', 'other-tenant', interrupt)).toEqual({ kind: 'no_socket' });
      // A socket that said going_idle gets no live delivery, whichever instance asks.
      const held = registry.get('c_1');
      if (held) held.idle = true;
      expect(await engine.deliverHere('c_1', 't1', interrupt)).toEqual({ kind: 'no_socket' });
      if (held) held.idle = false;
      expect((await engine.deliverHere('c_1', 't1', record('interrupt', '{'))).kind).toBe('invalid');
    } finally {
      await store.close();
    }
  });
});

describe('DeliveryEngine and a corrupt socket row', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('dead-letters it at once with the reason, and keeps delivering the rest', async () => {
    const dir = tempDir('socket-delivery');
    cleanups.push(() => dir.remove());
    const store = SqliteStore.open(join(dir.path, 'connector.db'));
    cleanups.push(() => store.close());
    const { tenant } = await createTenant(store, 'acme');
    await store.enqueueDelivery({
      id: 'dlv_bad',
      tenantId: tenant.id,
      gatewayId: null,
      sessionKey: 'agent:main:relay:dm:x',
      kind: 'message',
      body: '{"type":"message","delivery_id":"dlv_bad"}',
      endpoint: '',
      createdAt: Date.now(),
    });
    const engine = testEngine(store, new GatewayRegistry());
    await engine.start();
    cleanups.push(() => engine.stop(1_000));
    await until(async () => (await store.listDeadLetters(10)).length > 0, 5_000, 'a dead letter');
    const [dead] = await store.listDeadLetters(10);
    expect(dead?.id).toBe('dlv_bad');
    expect(dead?.reason).toMatch(/^stored body makes no valid frame: event/);
    expect(await store.outboxDepth()).toBe(0);
  });
});

describe('DeliveryEngine when sockets become ready', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('wakes the pump only when rows waiting for a socket were moved, and then delivers them', async () => {
    // Only timeouts are faked: the pump's wake is a 0 ms timeout, its own schedule 50 ms or more.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const store = SqliteStore.open(':memory:');
    const registry = new GatewayRegistry();
    const lines: string[] = [];
    const connection = fakeConnection(lines);
    const now = 1_000_000;
    let claims = 0;
    const claimDueDeliveries = store.claimDueDeliveries.bind(store);
    store.claimDueDeliveries = (...args) => {
      claims++;
      return claimDueDeliveries(...args);
    };
    const engine = testEngine(store, registry, { now: () => now });
    try {
      await engine.start();
      await vi.advanceTimersByTimeAsync(1);
      // Nothing waits: the socket is announced, and no claim query is made for it.
      const before = claims;
      registry.add(connection);
      engine.connectionsReady([connection]);
      engine.releaseWaitingDeliveries([connection.tenantId]);
      await vi.advanceTimersByTimeAsync(1);
      expect(claims).toBe(before);

      // A row of the tenant waiting out a no-socket backoff for another minute.
      const body = JSON.stringify(messageDeliveryBody(wireEvent, 'dlv_wait'));
      await store.enqueueDelivery({ ...record('message', body, 'dlv_wait'), createdAt: now });
      const [claimed] = await claimDueDeliveries('elsewhere', now, 1, 1);
      expect(claimed?.id).toBe('dlv_wait');
      await store.retryDeliveryLater('dlv_wait', 'elsewhere', now + 60_000, 'no socket', null);
      engine.releaseWaitingDeliveries([connection.tenantId]);
      await vi.advanceTimersByTimeAsync(1);
      expect(claims).toBeGreaterThan(before);
      // The attempt writes through the connection's writer, which flushes after the turn.
      for (let turn = 0; turn < 20 && lines.length === 0; turn++)
        await new Promise<void>((resolve) => setImmediate(resolve));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('"bufferId":"dlv_wait"');
      // Acknowledged: the row is completed, so nothing is left in flight when the engine stops.
      engine.acknowledge(connection, 'dlv_wait');
      for (let turn = 0; turn < 20 && (await store.outboxDepth()) > 0; turn++)
        await new Promise<void>((resolve) => setImmediate(resolve));
      expect(await store.outboxDepth()).toBe(0);
    } finally {
      await engine.stop(0);
      vi.useRealTimers();
      await store.close();
    }
  });
});

describe('passthrough forwards (current §12)', () => {
  const forward = {
    platform: 'discord',
    botId: 'app-1',
    method: 'POST',
    path: '/interactions/discord/app-1',
    headers: [['content-type', 'application/json']] as [string, string][],
    bodyB64: Buffer.from('{"type":2,"data":{"name":"new"}}').toString('base64'),
  };
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('rides the socket as passthrough_forward with its bufferId, in its session order, completed by inbound_ack', async () => {
    const store = SqliteStore.open(':memory:');
    cleanups.push(() => store.close());
    const { tenant } = await createTenant(store, 'acme');
    await addRoute(store, { tenantRef: tenant.id, platform: 'discord', routeKey: 'guild-1' });
    const registry = new GatewayRegistry();
    const lines: string[] = [];
    const connection = { ...fakeConnection(lines), tenantId: tenant.id };
    registry.add(connection);
    const engine = testEngine(store, registry);
    await engine.start();
    cleanups.push(() => engine.stop(1_000));
    const source = {
      platform: 'discord',
      chat_id: 'chan-1',
      chat_type: 'group',
      scope_id: 'guild-1',
      user_id: 'u1',
    };
    const message = await engine.ingest('discord', { routeKey: 'guild-1', event: { text: 'first', source } });
    const passthrough = await engine.ingest('discord', {
      routeKey: 'guild-1',
      event: { text: '', source },
      passthrough: forward,
    });
    if (!message.ok || !passthrough.ok) throw new Error('not queued');
    expect(passthrough.sessionKey).toBe(message.sessionKey);

    // Per-session order: the passthrough waits for the message before it to be acknowledged.
    await until(() => lines.length === 1, 5_000, 'the first frame');
    expect(JSON.parse(lines[0] as string)).toMatchObject({ type: 'inbound', bufferId: message.deliveryId });
    engine.acknowledge(connection, message.deliveryId);
    await until(() => lines.length === 2, 5_000, 'the passthrough frame');
    expect(JSON.parse(lines[1] as string)).toEqual({
      type: 'passthrough_forward',
      forward,
      bufferId: passthrough.deliveryId,
    });
    engine.acknowledge(connection, passthrough.deliveryId);
    await until(async () => (await store.outboxDepth()) === 0, 5_000, 'the outbox drained');
  });

  it('is refused at ingest for a route that posts to an endpoint (June generation)', async () => {
    const store = SqliteStore.open(':memory:');
    cleanups.push(() => store.close());
    const { tenant } = await createTenant(store, 'acme');
    await addRoute(store, {
      tenantRef: tenant.id,
      platform: 'discord',
      routeKey: 'guild-2',
      endpoint: 'http://127.0.0.1:9/hook',
      allowPrivateTargets: 'all',
    });
    const engine = testEngine(store, new GatewayRegistry());
    const outcome = await engine.ingest('discord', {
      routeKey: 'guild-2',
      event: { text: '', source: { platform: 'discord', chat_id: 'chan-2' } },
      passthrough: forward,
    });
    expect(outcome).toMatchObject({ ok: false, reason: 'unsupported' });
    expect(await store.outboxDepth()).toBe(0);
  });
});
