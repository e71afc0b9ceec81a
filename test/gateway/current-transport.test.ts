import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { RelayTransport } from '../../src/gateway/transport.js';
import { parseRelayIdentities } from '../../src/home/config.js';
import {
  CLOSE_UNAUTHORIZED,
  encodeLine,
  FrameDecoder,
  placeholderDescriptor,
} from '../../src/protocol/index.js';
import { until } from '../support/poll.js';

/**
 * Our gateway's transport against a fake current-generation connector (a `ws` server on 127.0.0.1
 * that the test scripts): the §14 transport cases that apply to it.
 */

const log = pino({ level: 'silent' });
type Frame = Record<string, unknown> & { type: string };

interface FakeConnector {
  url: string;
  /** Frames received, per connection (index = connection number). */
  received: Frame[][];
  connections: WebSocket[];
  onFrame: (socket: WebSocket, frame: Frame, connection: number) => void;
  onConnection: (socket: WebSocket, connection: number) => void;
  close(): Promise<void>;
}

const servers: FakeConnector[] = [];
const transports: RelayTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) await t.stop();
  for (const s of servers.splice(0)) await s.close();
});

const send = (socket: WebSocket, frame: object) => socket.send(encodeLine(frame));
const descriptorFor = (platform: string) => ({
  type: 'descriptor',
  descriptor: { ...placeholderDescriptor(platform), label: platform },
});

async function fakeConnector(): Promise<FakeConnector> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const fake: FakeConnector = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/relay`,
    received: [],
    connections: [],
    // Default: a descriptor for every hello, acks for going_idle.
    onFrame: (socket, frame) => {
      if (frame.type === 'hello') send(socket, descriptorFor(String(frame.platform)));
      if (frame.type === 'going_idle') send(socket, { type: 'going_idle_ack' });
    },
    onConnection: () => undefined,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
  wss.on('connection', (socket) => {
    const index = fake.connections.length;
    fake.connections.push(socket);
    fake.received.push([]);
    const decoder = new FrameDecoder();
    socket.on('message', (data: Buffer) => {
      for (const value of decoder.push(data.toString('utf8')).values) {
        const frame = value as Frame;
        fake.received[index]?.push(frame);
        fake.onFrame(socket, frame, index);
      }
    });
    fake.onConnection(socket, index);
  });
  servers.push(fake);
  return fake;
}

function transport(url: string, extra: Partial<ConstructorParameters<typeof RelayTransport>[0]> = {}) {
  const t = new RelayTransport({
    url,
    credentials: () => ({ gatewayId: 'gw-1', secret: 's'.repeat(32) }),
    platform: 'relay',
    botId: '',
    log,
    ...extra,
  });
  transports.push(t);
  return t;
}

describe('identities (current §4.3)', () => {
  it('reads GATEWAY_RELAY_PLATFORMS / GATEWAY_RELAY_BOT_IDS, with the June scalars and `relay` as fallbacks', () => {
    expect(
      parseRelayIdentities({
        GATEWAY_RELAY_PLATFORMS: 'discord, telegram,,',
        GATEWAY_RELAY_BOT_IDS:
          '{"discord":{"botId":"app-1"},"telegram":{"botId":"bot-9","username":"@my_bot"}}',
      }),
    ).toEqual([
      { platform: 'discord', botId: 'app-1', username: undefined },
      { platform: 'telegram', botId: 'bot-9', username: '@my_bot' },
    ]);
    const warnings: string[] = [];
    expect(
      parseRelayIdentities({ GATEWAY_RELAY_PLATFORMS: 'discord', GATEWAY_RELAY_BOT_IDS: '{nope' }, warnings),
    ).toEqual([{ platform: 'discord', botId: '', username: undefined }]);
    expect(warnings).toEqual(['GATEWAY_RELAY_BOT_IDS is not valid JSON; treating as empty']);
    expect(parseRelayIdentities({ GATEWAY_RELAY_PLATFORM: 'webchat', GATEWAY_RELAY_BOT_ID: 'w' })).toEqual([
      { platform: 'webchat', botId: 'w' },
    ]);
    expect(parseRelayIdentities({})).toEqual([{ platform: 'relay', botId: '' }]);
  });

  it('says one hello per identity on every dial, and tags a reply with the platform of its chat', async () => {
    const fake = await fakeConnector();
    const t = transport(fake.url, {
      identities: [
        { platform: 'discord', botId: 'app-1' },
        { platform: 'telegram', botId: 'bot-9' },
      ],
      onInbound: async () => undefined,
    });
    t.start();
    await until(() => t.connected, 5_000, 'handshake');
    await until(() => (fake.received[0]?.length ?? 0) >= 2, 5_000, 'two hellos');
    expect(fake.received[0]?.slice(0, 2)).toEqual([
      { type: 'hello', platform: 'discord', botId: 'app-1' },
      { type: 'hello', platform: 'telegram', botId: 'bot-9' },
    ]);
    expect(t.descriptor?.platform).toBe('discord');
    expect(t.descriptorFor('telegram')?.platform).toBe('telegram');

    // An inbound from a Telegram chat teaches the chat's platform: the reply is tagged for it.
    const socket = fake.connections[0] as WebSocket;
    send(socket, {
      type: 'inbound',
      event: {
        text: 'hi',
        message_type: 'text',
        source: { platform: 'telegram', chat_id: 'tg-1', chat_type: 'dm' },
      },
      bufferId: 'buf-1',
    });
    await until(() => fake.received[0]?.some((f) => f.type === 'inbound_ack'), 5_000, 'the ack');
    fake.onFrame = (s, frame) => {
      if (frame.type === 'outbound')
        send(s, {
          type: 'outbound_result',
          requestId: frame.requestId,
          result: { success: true, message_id: 'm1' },
        });
    };
    expect(
      await t.send({
        op: 'send',
        chat_id: 'tg-1',
        content: 'a telegram reply',
        reply_to: null,
        metadata: {},
      }),
    ).toEqual({
      success: true,
      message_id: 'm1',
    });
    expect(fake.received[0]?.find((f) => f.type === 'outbound')).toMatchObject({
      platform: 'telegram',
      botId: 'bot-9',
    });
    // A chat of unknown platform goes untagged: the connector's default identity.
    await t.send({ op: 'send', chat_id: 'elsewhere', content: 'x', reply_to: null, metadata: {} });
    const untagged = fake.received[0]?.filter((f) => f.type === 'outbound')[1];
    expect(untagged).not.toHaveProperty('platform');
  });
});

describe('reconnects and 4401 (current §3.6, §8)', () => {
  it('climbs the ladder 1, 2, 4, 8 s (jitter at its ceiling) against a connector that closes after the descriptor', async () => {
    const fake = await fakeConnector();
    fake.onFrame = (socket, frame) => {
      if (frame.type === 'hello') {
        send(socket, descriptorFor('relay'));
        socket.close(1011, 'overloaded');
      }
    };
    const waits: number[] = [];
    const t = transport(fake.url, {
      random: () => 1,
      delay: async (ms) => {
        waits.push(ms);
      },
    });
    t.start();
    await until(() => waits.length >= 4, 10_000, 'four waits');
    expect(waits.slice(0, 4)).toEqual([1_000, 2_000, 4_000, 8_000]);
  });

  it('latches a revocation on the second 4401 — even when the gateway was revoked while disconnected', async () => {
    const fake = await fakeConnector();
    fake.onConnection = (socket, n) => {
      // Connection 0 works; from connection 1 on the gateway is revoked: refused at the upgrade.
      if (n >= 1) socket.close(CLOSE_UNAUTHORIZED, 'unauthorized');
    };
    const t = transport(fake.url, { delay: async () => undefined });
    t.start();
    await until(() => t.connected, 5_000, 'first handshake');
    fake.connections[0]?.close(1011, 'connector restarting');
    await until(() => t.currentStatus.state === 'failed', 5_000, 'the revocation latch');
    expect(t.currentStatus.errorCode).toBe('relay_revoked');
    const dials = fake.connections.length;
    expect(await t.send({ op: 'send', chat_id: 'c', content: 'x', reply_to: null, metadata: {} })).toEqual({
      success: false,
      error: 'relay transport not connected',
    });
    expect(fake.connections.length).toBe(dials);
  });

  it('never latches on "expired", however often', async () => {
    const fake = await fakeConnector();
    fake.onConnection = (socket, n) => {
      if (n >= 1 && n <= 6) socket.close(CLOSE_UNAUTHORIZED, 'expired');
    };
    const t = transport(fake.url, { delay: async () => undefined });
    t.start();
    await until(() => t.connected, 5_000, 'first handshake');
    fake.connections[0]?.close(CLOSE_UNAUTHORIZED, 'expired');
    await until(() => fake.connections.length >= 8 && t.connected, 10_000, 'a working connection again');
    expect(t.currentStatus.state).toBe('connected');
  });
});

describe('scale to zero, gateway side (current §9)', () => {
  it('goIdle says going_idle, closes on the ack, re-dials and takes the replay', async () => {
    const fake = await fakeConnector();
    const texts: string[] = [];
    const t = transport(fake.url, {
      delay: async () => undefined,
      onInbound: async (event) => {
        texts.push(event.text);
      },
    });
    fake.onConnection = (socket, n) => {
      if (n === 1)
        send(socket, {
          type: 'inbound',
          event: { text: 'while-asleep', message_type: 'text', source: { platform: 'relay', chat_id: 'c1' } },
          bufferId: 'buf-wake-1',
        });
    };
    t.start();
    await until(() => t.connected, 5_000, 'handshake');
    expect(await t.goIdle(2_000)).toBe(true);
    expect(fake.received[0]?.some((f) => f.type === 'going_idle')).toBe(true);
    await until(() => texts.includes('while-asleep'), 10_000, 'the replayed inbound');
    await until(
      () => fake.received[1]?.some((f) => f.type === 'inbound_ack' && f.bufferId === 'buf-wake-1'),
      5_000,
      'its ack',
    );
  });

  it('says going_idle before a planned stop', async () => {
    const fake = await fakeConnector();
    const t = transport(fake.url);
    t.start();
    await until(() => t.connected, 5_000, 'handshake');
    await t.stop();
    expect(fake.received[0]?.map((f) => f.type)).toContain('going_idle');
  });
});

describe('outbound results (current §3.5; §14 cases 2–5, 11)', () => {
  const answer = (result: Record<string, unknown>) => (socket: WebSocket, frame: Frame) => {
    if (frame.type === 'hello') send(socket, descriptorFor(String(frame.platform)));
    if (frame.type === 'going_idle') send(socket, { type: 'going_idle_ack' });
    if (frame.type === 'outbound')
      send(socket, { type: 'outbound_result', requestId: frame.requestId, result });
  };
  const sendOp = (t: RelayTransport) =>
    t.send({ op: 'send', chat_id: 'chan1', content: 'hi', reply_to: null, metadata: {} });

  it('case 2: correlates the result by requestId (a 32-char hex id); case 3: follow_up rides an outbound frame', async () => {
    const fake = await fakeConnector();
    fake.onFrame = answer({ success: true, message_id: 'srv-send' });
    const t = transport(fake.url);
    t.start();
    await until(() => t.connected, 5_000, 'handshake');
    expect(await sendOp(t)).toEqual({ success: true, message_id: 'srv-send' });
    const outbound = fake.received[0]?.find((f) => f.type === 'outbound');
    expect(outbound?.requestId).toMatch(/^[0-9a-f]{32}$/);
    expect(outbound?.action).toEqual({
      op: 'send',
      chat_id: 'chan1',
      content: 'hi',
      reply_to: null,
      metadata: {},
    });

    await t.send({
      op: 'follow_up',
      session_key: 'agent:main:discord:dm:u1',
      kind: 'discord.interaction_token',
      content: 'later',
      metadata: {},
    });
    const followUp = fake.received[0]?.filter((f) => f.type === 'outbound')[1];
    expect(followUp?.action).toMatchObject({ op: 'follow_up' });
  });

  it('case 4: a send after stop is success:false "relay transport closed", at once and without ambiguous', async () => {
    const fake = await fakeConnector();
    const t = transport(fake.url);
    t.start();
    await until(() => t.connected, 5_000, 'handshake');
    await t.stop();
    expect(await sendOp(t)).toEqual({ success: false, error: 'relay transport closed' });
  });

  it('case 5: a socket lost with a waiter pending gives "relay transport connection lost" (not ambiguous) and leaves nothing pending', async () => {
    const fake = await fakeConnector();
    fake.onFrame = (socket, frame) => {
      if (frame.type === 'hello') send(socket, descriptorFor('relay'));
      if (frame.type === 'outbound') socket.terminate();
    };
    const t = transport(fake.url);
    t.start();
    await until(() => t.connected, 5_000, 'handshake');
    expect(await sendOp(t)).toEqual({ success: false, error: 'relay transport connection lost' });
    expect((t as unknown as { pending: Map<string, unknown> }).pending.size).toBe(0);
  });

  it('case 11: no answer in time is ambiguous ("relay outbound timed out"); a waiter failed by a planned stop is ambiguous too', async () => {
    const fake = await fakeConnector();
    // Descriptors and going_idle acks, but never an outbound_result.
    const t = transport(fake.url, { opTimeoutMs: 200 });
    t.start();
    await until(() => t.connected, 5_000, 'handshake');
    expect(await sendOp(t)).toEqual({ success: false, error: 'relay outbound timed out', ambiguous: true });

    const t2 = transport(fake.url);
    t2.start();
    await until(() => t2.connected, 5_000, 'second handshake');
    const pending = sendOp(t2);
    await until(
      () =>
        fake.received.some(
          (frames) => frames.filter((f) => f.type === 'outbound').length > 0 && frames !== fake.received[0],
        ),
      5_000,
      'the frame written',
    );
    await t2.stop();
    expect(await pending).toEqual({
      success: false,
      error: 'relay send failed: relay transport closed',
      ambiguous: true,
    });
  });
});

describe('buffered frames (current §5.1, §12; §14 cases 14, 15, 19)', () => {
  it('acks every bufferId it is given — a buffered inbound, a buffered passthrough, the same passthrough twice — and nothing without one', async () => {
    const fake = await fakeConnector();
    const texts: string[] = [];
    const t = transport(fake.url, {
      onInbound: async (event) => {
        texts.push(event.text);
      },
    });
    t.start();
    await until(() => t.connected, 5_000, 'handshake');
    const socket = fake.connections[0] as WebSocket;
    const event = (text: string) => ({
      text,
      message_type: 'text',
      source: { platform: 'relay', chat_id: 'c1' },
    });
    const forward = {
      platform: 'discord',
      botId: 'app-1',
      method: 'POST',
      path: '/interactions/discord/app-1',
      headers: [],
      bodyB64: '',
    };
    send(socket, { type: 'inbound', event: event('buffered'), bufferId: 'buf-42' });
    send(socket, { type: 'inbound', event: event('live') });
    send(socket, { type: 'passthrough_forward', forward, bufferId: 'pbuf-7' });
    send(socket, { type: 'passthrough_forward', forward });
    send(socket, { type: 'passthrough_forward', forward, bufferId: 'buffer-1' });
    send(socket, { type: 'passthrough_forward', forward, bufferId: 'buffer-1' });
    const acks = () => fake.received[0]?.filter((f) => f.type === 'inbound_ack').map((f) => f.bufferId) ?? [];
    await until(() => acks().length >= 4 || undefined, 5_000, 'the acks');
    await until(() => texts.length >= 2 || undefined, 5_000, 'both inbound handled');
    // An inbound is acked after its handler; a passthrough at once: compare as sets with counts.
    expect([...acks()].sort()).toEqual(['buf-42', 'buffer-1', 'buffer-1', 'pbuf-7']);
    expect(texts).toEqual(['buffered', 'live']);
  });
});
