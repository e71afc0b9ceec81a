/**
 * The gateway writes typed frames and actions (issue #14 §4): a misspelt or missing field is a
 * compile error (checked by `tsc -p tsconfig.test.json`, through the `@ts-expect-error` lines), and
 * the bytes on the wire are what they always were.
 */
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { OutboundLink } from '../../src/gateway/replies.js';
import { RelayTransport } from '../../src/gateway/transport.js';
import {
  type ConnectorFrameInput,
  encodeFrame,
  type GatewayFrameInput,
  type OutboundActionInput,
  placeholderDescriptor,
} from '../../src/protocol/index.js';
import { until } from '../support/poll.js';

const log = pino({ level: 'silent' });

describe('typed frames and actions', () => {
  it('refuses misspelt or missing fields at compile time', () => {
    const frames: GatewayFrameInput[] = [
      { type: 'hello', platform: 'relay', botId: '' },
      // @ts-expect-error a misspelt field of a hello frame
      { type: 'hello', platfrom: 'relay' },
      // @ts-expect-error an interrupt without its session key
      { type: 'interrupt', reason: null },
      // @ts-expect-error an action whose content is misspelt
      { type: 'outbound', requestId: 'r1', action: { op: 'send', chat_id: 'c', contnet: 'hi' } },
      // @ts-expect-error an op that does not exist
      { type: 'outbound', requestId: 'r1', action: { op: 'sned', chat_id: 'c', content: 'hi' } },
    ];
    const actions: OutboundActionInput[] = [
      { op: 'edit', chat_id: 'c', message_id: 'm', content: 'x' },
      // @ts-expect-error an edit needs the message it edits
      { op: 'edit', chat_id: 'c', content: 'x' },
    ];
    // A connector frame is not something a gateway writes.
    const descriptor: ConnectorFrameInput = { type: 'descriptor', descriptor: placeholderDescriptor() };
    // @ts-expect-error a C→G frame where a G→C frame is expected
    const wrongWay: GatewayFrameInput = descriptor;
    const link: Pick<OutboundLink, 'send'> = { send: async () => ({ success: true }) };
    // @ts-expect-error the reply link takes typed actions only
    void link.send({ op: 'typing', chat: 'c' });
    expect(frames).toHaveLength(5);
    expect(actions).toHaveLength(2);
    expect(wrongWay).toBe(descriptor);
  });

  it('encodes a frame as the same compact JSON line as before', () => {
    expect(encodeFrame({ type: 'interrupt', session_key: 'k', reason: null })).toBe(
      '{"type":"interrupt","session_key":"k","reason":null}\n',
    );
    expect(
      encodeFrame({
        type: 'outbound',
        requestId: 'r1',
        action: { op: 'typing', chat_id: 'c', content: undefined, metadata: {} },
      }),
    ).toBe('{"type":"outbound","requestId":"r1","action":{"op":"typing","chat_id":"c","metadata":{}}}\n');
  });
});

describe('RelayTransport on the wire', () => {
  let server: WebSocketServer | undefined;
  let transport: RelayTransport | undefined;

  afterEach(async () => {
    await transport?.stop();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = transport = undefined;
  });

  it('writes hello, outbound, inbound_ack and interrupt frames byte for byte as before', async () => {
    const messages: string[] = [];
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    server = wss;
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        const text = (data as Buffer).toString('utf8');
        messages.push(text);
        const frame = JSON.parse(text) as { type: string; requestId?: string };
        if (frame.type === 'hello') {
          ws.send(encodeFrame({ type: 'descriptor', descriptor: placeholderDescriptor() }));
          ws.send(encodeFrame({ type: 'inbound', event: { text: 'hi' }, bufferId: 'dlv_1' }));
        }
        if (frame.type === 'outbound' && frame.requestId)
          ws.send(
            encodeFrame({
              type: 'outbound_result',
              requestId: frame.requestId,
              result: { success: true, message_id: '7' },
            }),
          );
      });
    });
    const port = (wss.address() as AddressInfo).port;
    const inbound: string[] = [];
    const relay = new RelayTransport({
      url: `ws://127.0.0.1:${port}`,
      credentials: () => ({}),
      platform: 'relay',
      botId: 'b1',
      log,
      onInbound: async (event) => {
        inbound.push(event.text);
      },
    });
    transport = relay;
    relay.start();
    await until(() => relay.connected && inbound.length > 0, 5_000, 'the handshake and an inbound frame');
    const result = await relay.send({
      op: 'send',
      chat_id: 'c1',
      content: 'hello',
      reply_to: null,
      metadata: { thread_id: 't' },
    });
    expect(result).toEqual({ success: true, message_id: '7' });
    expect(relay.sendInterrupt('agent:main:relay:dm:c1', null)).toBe(true);
    await until(() => messages.length >= 4, 5_000, 'four frames at the connector');
    const requestId = (
      JSON.parse(messages.find((m) => m.includes('"outbound"')) ?? '{}') as { requestId: string }
    ).requestId;
    expect(requestId).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(messages)).toEqual(
      new Set([
        '{"type":"hello","platform":"relay","botId":"b1"}\n',
        '{"type":"inbound_ack","bufferId":"dlv_1"}\n',
        `{"type":"outbound","requestId":"${requestId}","action":{"op":"send","chat_id":"c1","content":"hello","reply_to":null,"metadata":{"thread_id":"t"}}}\n`,
        '{"type":"interrupt","session_key":"agent:main:relay:dm:c1","reason":null}\n',
      ]),
    );
  });
});
