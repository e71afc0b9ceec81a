import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import vm from 'node:vm';
import Fastify, { type FastifyInstance } from 'fastify';
import markdownit from 'markdown-it';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { IngestOutcome, PlatformContext, PlatformInbound } from '../../src/connector/platforms/types.js';
import {
  WEBCHAT_NO_ROUTE_NOTICE,
  WEBCHAT_RATE_LIMIT_ERROR,
  WEBCHAT_STORE_ERROR_NOTICE,
  WebChatAdapter,
  type WebChatAdapterOptions,
} from '../../src/connector/platforms/webchat/adapter.js';
import { MemoryWebChatHistory } from '../../src/connector/platforms/webchat/history.js';
import { webchatAssets } from '../../src/connector/platforms/webchat/page.js';
import { createMarkdownRenderer } from '../../src/connector/platforms/webchat/web/markdown.js';
import { parseDescriptor } from '../../src/protocol/index.js';

type Frame = { type: string; [key: string]: unknown };
type Message = { id: string; role: string; text: string; status?: string };

const silent = pino({ level: 'silent' });
const VISITOR = 'visitor0001';
const OTHER_VISITOR = 'visitor0002';

/** A PlatformContext that records ingests and answers with `outcome` (or throws it, if an Error). */
class FakeContext implements PlatformContext {
  readonly log = silent;
  readonly ingests: PlatformInbound[] = [];
  outcome: IngestOutcome | Error = { ok: true, deliveryId: 'd-1', tenantId: 't-1', sessionKey: 's-1' };

  async ingest(inbound: PlatformInbound): Promise<IngestOutcome> {
    this.ingests.push(inbound);
    if (this.outcome instanceof Error) throw this.outcome;
    return this.outcome;
  }
}

interface Harness {
  app: FastifyInstance;
  adapter: WebChatAdapter;
  context: FakeContext;
  base: string;
  wsBase: string;
}

const harnesses: Harness[] = [];
const clients: WebSocket[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.terminate();
  for (const h of harnesses.splice(0)) {
    await h.adapter.stop();
    await h.app.close();
  }
});

async function startHarness(options: Partial<WebChatAdapterOptions> = {}): Promise<Harness> {
  const adapter = new WebChatAdapter({ log: silent, ...options });
  const context = new FakeContext();
  const app = Fastify();
  await adapter.registerRoutes(app);
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!adapter.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await adapter.start(context);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const harness = {
    app,
    adapter,
    context,
    base: `http://127.0.0.1:${port}`,
    wsBase: `ws://127.0.0.1:${port}`,
  };
  harnesses.push(harness);
  return harness;
}

/** A browser stand-in: records every frame and lets a test wait for the next one that matches. */
class Client {
  readonly frames: Frame[] = [];
  private cursor = 0;
  private waiters: (() => void)[] = [];
  closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    clients.push(ws);
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as Frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        resolve({ code, reason: String(reason) });
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
  }

  /** The next frame (after earlier `next` results) satisfying `match`; skipped frames are consumed. */
  async next(match: (frame: Frame) => boolean = () => true): Promise<Frame> {
    for (;;) {
      while (this.cursor < this.frames.length) {
        const frame = this.frames[this.cursor++] as Frame;
        if (match(frame)) return frame;
      }
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('socket closed while waiting for a frame');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  nextOfType(type: string): Promise<Frame> {
    return this.next((frame) => frame.type === type);
  }

  sendJson(value: unknown): void {
    this.ws.send(JSON.stringify(value));
  }
}

async function connect(h: Harness, room = 'demo', visitor = VISITOR): Promise<Client> {
  const ws = new WebSocket(`${h.wsBase}/chat/ws?room=${room}&visitor=${visitor}`);
  const client = new Client(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return client;
}

/** Resolves with the HTTP status the server refused the upgrade with. */
function refusedStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('error', () => {});
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('upgrade unexpectedly accepted'));
    });
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      req.destroy();
    });
  });
}

const chatId = (room: string, visitor: string) => `wc-${room}-${visitor}`;

describe('web chat inbound', () => {
  it('ingests a visitor message as a normalised event and acknowledges it', async () => {
    const h = await startHarness();
    const client = await connect(h, 'lobby');
    expect((await client.nextOfType('history')).messages).toEqual([]);

    client.sendJson({ type: 'message', text: 'Hello agent', clientId: 'c1' });
    const echo = await client.nextOfType('message');
    const message = echo.message as Message;
    expect(echo.clientId).toBe('c1');
    expect(message).toMatchObject({ role: 'user', text: 'Hello agent', status: 'sent' });

    const ack = await client.nextOfType('ack');
    expect(ack.message_id).toBe(message.id);
    expect(h.context.ingests).toEqual([
      {
        routeKey: 'lobby',
        addressed: true,
        // The browser's clientId is the platform idempotency key, scoped to the visitor's chat.
        dedupeKey: `webchat:${chatId('lobby', VISITOR)}:client:c1`,
        // Remembered as long as history is kept by default (30 days), not an hour (review L1).
        dedupeTtlMs: 30 * 24 * 3600_000,
        event: {
          text: 'Hello agent',
          message_type: 'text',
          message_id: message.id,
          source: {
            platform: 'webchat',
            chat_id: chatId('lobby', VISITOR),
            chat_type: 'dm',
            user_id: VISITOR,
            user_name: 'Visitor',
            chat_name: 'Web chat (lobby)',
          },
        },
      },
    ]);
    expect((await h.adapter.history(chatId('lobby', VISITOR)))[0]?.status).toBe('delivered');
  });

  it('marks slash messages such as /stop as commands', async () => {
    const h = await startHarness();
    const client = await connect(h);
    client.sendJson({ type: 'message', text: '/stop' });
    await client.nextOfType('ack');
    expect(h.context.ingests[0]?.event).toMatchObject({ text: '/stop', message_type: 'command' });
  });

  it('ingests one chat in order even when ingest is slow', async () => {
    const h = await startHarness({ rateLimit: { messages: 100, windowMs: 10_000 } });
    const order: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    h.context.ingest = async (inbound) => {
      if (inbound.event.text === 'first') await gate;
      order.push(inbound.event.text);
      return { ok: true, deliveryId: 'd', tenantId: 't', sessionKey: 's' };
    };
    const client = await connect(h);
    client.sendJson({ type: 'message', text: 'first' });
    client.sendJson({ type: 'message', text: 'second' });
    // Both echoes arrive before either ingest finishes; then the gate opens.
    await client.nextOfType('message');
    await client.nextOfType('message');
    release();
    await client.nextOfType('ack');
    await client.nextOfType('ack');
    expect(order).toEqual(['first', 'second']);
  });

  it.each([
    ['no_route', WEBCHAT_NO_ROUTE_NOTICE],
    ['store_error', WEBCHAT_STORE_ERROR_NOTICE],
  ] as const)('shows a notice when the outcome is %s', async (reason, notice) => {
    const h = await startHarness();
    h.context.outcome = { ok: false, reason, message: 'nope' };
    const client = await connect(h);
    client.sendJson({ type: 'message', text: 'anyone there?' });
    const sent = (await client.nextOfType('message')).message as Message;
    const failed = await client.nextOfType('failed');
    expect(failed.message_id).toBe(sent.id);
    const system = (await client.nextOfType('message')).message as Message;
    expect(system).toMatchObject({ role: 'system', text: notice });
    expect(client.frames.some((f) => f.type === 'ack')).toBe(false);
    expect((await h.adapter.history(chatId('demo', VISITOR))).map((m) => m.status ?? m.role)).toEqual([
      'failed',
      'system',
    ]);
  });

  it('treats an ingest that throws as a store error and keeps serving', async () => {
    const h = await startHarness();
    h.context.outcome = new Error('database is locked');
    const client = await connect(h);
    client.sendJson({ type: 'message', text: 'hi' });
    const system = await client.next((f) => f.type === 'message' && (f.message as Message).role === 'system');
    expect((system.message as Message).text).toBe(WEBCHAT_STORE_ERROR_NOTICE);

    h.context.outcome = { ok: true, deliveryId: 'd', tenantId: 't', sessionKey: 's' };
    client.sendJson({ type: 'message', text: 'again' });
    await client.nextOfType('ack');
    expect(h.context.ingests.map((i) => i.event.text)).toEqual(['hi', 'again']);
  });
});

describe('web chat status across instances (review L2)', () => {
  it('a failed ingest does not mark failed a message another instance queued meanwhile: it is acknowledged', async () => {
    const history = new MemoryWebChatHistory(100);
    const h = await startHarness({ store: history });
    const client = await connect(h);
    await client.nextOfType('history');
    h.context.ingest = async (inbound) => {
      // Meanwhile the same clientId, re-sent through another instance, was queued and marked so.
      const chatId = inbound.event.source.chat_id ?? '';
      const id = String(inbound.event.message_id);
      const entry = await history.getWebChatMessage(chatId, id);
      if (!entry) throw new Error('the message was not stored before its ingest');
      const body = JSON.stringify({ ...JSON.parse(entry.body), status: 'delivered' });
      await history.replaceWebChatMessage(chatId, id, entry.body, body);
      throw new Error('database is locked');
    };
    client.sendJson({ type: 'message', text: 'hi', clientId: 'c-one' });
    const answer = await client.next((f) => f.type === 'ack' || f.type === 'failed');
    expect(answer.type).toBe('ack');
    const [stored] = await h.adapter.history(`wc-demo-${VISITOR}`);
    expect(stored?.status).toBe('delivered');
  });
});

describe('web chat input validation', () => {
  it('answers bad JSON and invalid messages with error frames and stays open', async () => {
    const h = await startHarness({ rateLimit: { messages: 100, windowMs: 10_000 } });
    const client = await connect(h);
    await client.nextOfType('history');

    client.ws.send('{not json');
    expect((await client.nextOfType('error')).message).toBe('Messages must be JSON.');
    client.sendJson({ type: 'message', text: '' });
    expect((await client.nextOfType('error')).message).toBe('Message is empty.');
    client.sendJson({ type: 'message', text: '   \n ' });
    expect((await client.nextOfType('error')).message).toBe('Message is empty.');
    client.sendJson({ type: 'message', text: 'x'.repeat(8001) });
    expect((await client.nextOfType('error')).message).toBe('Messages are limited to 8000 characters.');
    client.sendJson({ type: 'shout', text: 'hi' });
    expect((await client.nextOfType('error')).message).toBe('Unsupported message type.');
    client.sendJson([1, 2, 3]);
    expect((await client.nextOfType('error')).message).toBe('Unsupported message.');
    client.sendJson({ type: 'message', text: 42 });
    expect(typeof (await client.nextOfType('error')).message).toBe('string');
    client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await client.nextOfType('error')).message).toBe('Binary frames are not supported.');

    expect(h.context.ingests).toEqual([]);
    client.sendJson({ type: 'message', text: 'still here' });
    await client.nextOfType('ack');
    expect(h.context.ingests.map((i) => i.event.text)).toEqual(['still here']);
  });

  it('accepts exactly 8000 code points, counting an emoji as one', async () => {
    const h = await startHarness();
    const client = await connect(h);
    const text = `${'a'.repeat(7999)}💬`;
    client.sendJson({ type: 'message', text });
    await client.nextOfType('ack');
    expect(h.context.ingests[0]?.event.text).toBe(text);
  });

  it('closes a socket that sends an oversize frame (1009) and keeps serving others', async () => {
    const h = await startHarness();
    const client = await connect(h);
    client.ws.send(JSON.stringify({ type: 'message', text: 'é'.repeat(9000) }));
    expect((await client.closed).code).toBe(1009);

    const again = await connect(h);
    again.sendJson({ type: 'message', text: 'after' });
    await again.nextOfType('ack');
    expect(h.context.ingests.map((i) => i.event.text)).toEqual(['after']);
  });

  it('refuses upgrades with an invalid room or visitor id', async () => {
    const h = await startHarness();
    expect(await refusedStatus(`${h.wsBase}/chat/ws?room=bad%20room&visitor=${VISITOR}`)).toBe(400);
    expect(await refusedStatus(`${h.wsBase}/chat/ws?room=${'r'.repeat(65)}&visitor=${VISITOR}`)).toBe(400);
    expect(await refusedStatus(`${h.wsBase}/chat/ws?room=demo&visitor=short`)).toBe(400);
    expect(await refusedStatus(`${h.wsBase}/chat/ws?room=demo&visitor=bad.visitor.id`)).toBe(400);
    expect(await refusedStatus(`${h.wsBase}/chat/ws?visitor=${VISITOR}`)).toBe(400);
    // The server is still fine.
    const client = await connect(h);
    expect((await client.nextOfType('history')).type).toBe('history');
  });

  it('leaves upgrades for other paths alone', async () => {
    const h = await startHarness();
    let touched = false;
    const socket = new Duplex({
      read() {},
      write(_chunk, _encoding, callback) {
        touched = true;
        callback();
      },
    });
    const request = { url: '/relay?room=demo', headers: {} } as IncomingMessage;
    expect(h.adapter.handleUpgrade(request, socket, Buffer.alloc(0))).toBe(false);
    expect(touched).toBe(false);
    expect(socket.destroyed).toBe(false);
  });

  it('refuses upgrades with 503 before start', async () => {
    const adapter = new WebChatAdapter({ log: silent });
    const written: string[] = [];
    const socket = new Duplex({
      read() {},
      write(chunk, _encoding, callback) {
        written.push(String(chunk));
        callback();
      },
    });
    const request = { url: `/chat/ws?room=demo&visitor=${VISITOR}`, headers: {} } as IncomingMessage;
    expect(adapter.handleUpgrade(request, socket, Buffer.alloc(0))).toBe(true);
    expect(written.join('')).toMatch(/^HTTP\/1\.1 503 /);
  });

  it('rate limits a socket with a friendly error', async () => {
    const h = await startHarness();
    const client = await connect(h);
    for (let i = 0; i < 11; i++) client.sendJson({ type: 'message', text: `m${i}` });
    const error = await client.nextOfType('error');
    expect(error.message).toBe(WEBCHAT_RATE_LIMIT_ERROR);
    // Only the ten allowed messages reach the agent.
    for (let i = 0; i < 10; i++) await client.nextOfType('ack');
    expect(h.context.ingests.map((i) => i.event.text)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
  });

  it('lets a socket send again once the rate-limit window has passed', async () => {
    let now = 1_000_000;
    const h = await startHarness({ now: () => now, rateLimit: { messages: 2, windowMs: 10_000 } });
    const client = await connect(h);
    client.sendJson({ type: 'message', text: 'a' });
    client.sendJson({ type: 'message', text: 'b' });
    client.sendJson({ type: 'message', text: 'c' });
    expect((await client.nextOfType('error')).message).toBe(WEBCHAT_RATE_LIMIT_ERROR);
    await client.nextOfType('ack');
    await client.nextOfType('ack');
    now += 10_001;
    client.sendJson({ type: 'message', text: 'd' });
    await client.nextOfType('ack');
    expect(h.context.ingests.map((i) => i.event.text)).toEqual(['a', 'b', 'd']);
  });
});

describe('web chat outbound', () => {
  it('pushes send, edit and typing to every tab of the chat and to no other chat', async () => {
    const h = await startHarness();
    const tab1 = await connect(h, 'demo', VISITOR);
    const tab2 = await connect(h, 'demo', VISITOR);
    const stranger = await connect(h, 'demo', OTHER_VISITOR);
    const elsewhere = await connect(h, 'other', VISITOR);
    const id = chatId('demo', VISITOR);

    expect(await h.adapter.typing({ op: 'typing', chat_id: id, metadata: {} })).toEqual({ success: true });
    const sent = await h.adapter.send({
      op: 'send',
      chat_id: id,
      content: 'Hi **there**',
      reply_to: null,
      metadata: {},
    });
    expect(sent.success).toBe(true);
    expect(typeof sent.message_id).toBe('string');
    const edited = await h.adapter.edit({
      op: 'edit',
      chat_id: id,
      message_id: String(sent.message_id),
      content: 'Hi **there**, friend',
      metadata: {},
    });
    expect(edited).toEqual({ success: true, message_id: sent.message_id });
    await h.adapter.typing({ op: 'typing', chat_id: id, content: '', metadata: {} });

    for (const tab of [tab1, tab2]) {
      expect(await tab.nextOfType('typing')).toEqual({ type: 'typing', on: true });
      const message = await tab.nextOfType('message');
      expect(message.message).toMatchObject({ id: sent.message_id, role: 'agent', text: 'Hi **there**' });
      expect(await tab.nextOfType('edit')).toEqual({
        type: 'edit',
        message_id: sent.message_id,
        text: 'Hi **there**, friend',
      });
      expect(await tab.nextOfType('typing')).toEqual({ type: 'typing', on: false });
    }

    // A marker sent to the other chats after the fact: anything leaked would have arrived first.
    for (const [client, otherId] of [
      [stranger, chatId('demo', OTHER_VISITOR)],
      [elsewhere, chatId('other', VISITOR)],
    ] as const) {
      await h.adapter.send({ op: 'send', chat_id: otherId, content: 'marker', reply_to: null, metadata: {} });
      await client.next((f) => f.type === 'message' && (f.message as Message).text === 'marker');
      expect(client.frames.map((f) => f.type)).toEqual(['history', 'message']);
    }
  });

  it('fails an edit of an unknown message', async () => {
    const h = await startHarness();
    const id = chatId('demo', VISITOR);
    await h.adapter.send({ op: 'send', chat_id: id, content: 'x', reply_to: null, metadata: {} });
    expect(
      await h.adapter.edit({ op: 'edit', chat_id: id, message_id: 'm-nope', content: 'y', metadata: {} }),
    ).toEqual({ success: false, error: 'message not found' });
    expect(
      await h.adapter.edit({
        op: 'edit',
        chat_id: chatId('demo', OTHER_VISITOR),
        message_id: 'm-nope',
        content: 'y',
        metadata: {},
      }),
    ).toEqual({ success: false, error: 'message not found' });
  });

  it('does not let the agent edit a visitor message', async () => {
    const h = await startHarness();
    const client = await connect(h);
    client.sendJson({ type: 'message', text: 'mine' });
    const mine = (await client.nextOfType('message')).message as Message;
    const result = await h.adapter.edit({
      op: 'edit',
      chat_id: chatId('demo', VISITOR),
      message_id: mine.id,
      content: 'changed',
      metadata: {},
    });
    expect(result.success).toBe(false);
    expect((await h.adapter.history(chatId('demo', VISITOR)))[0]?.text).toBe('mine');
  });

  it('stores a reply to a chat with no open socket and shows it on connect', async () => {
    const h = await startHarness();
    const id = chatId('quiet', VISITOR);
    const result = await h.adapter.send({
      op: 'send',
      chat_id: id,
      content: 'while you were away',
      reply_to: null,
      metadata: {},
    });
    expect(result.success).toBe(true);
    const client = await connect(h, 'quiet', VISITOR);
    const history = (await client.nextOfType('history')).messages as Message[];
    expect(history.map((m) => [m.role, m.text])).toEqual([['agent', 'while you were away']]);
  });

  it('refuses a send to something that is not a web chat id', async () => {
    const h = await startHarness();
    const result = await h.adapter.send({
      op: 'send',
      chat_id: '12345',
      content: 'x',
      reply_to: null,
      metadata: {},
    });
    expect(result.success).toBe(false);
  });

  it('replays the chat history, with edits and delivery state, on reconnect', async () => {
    const h = await startHarness();
    const first = await connect(h);
    first.sendJson({ type: 'message', text: 'question' });
    await first.nextOfType('ack');
    const id = chatId('demo', VISITOR);
    const reply = await h.adapter.send({
      op: 'send',
      chat_id: id,
      content: 'draft',
      reply_to: null,
      metadata: {},
    });
    await h.adapter.edit({
      op: 'edit',
      chat_id: id,
      message_id: String(reply.message_id),
      content: 'answer',
      metadata: {},
    });
    first.ws.close();
    await first.closed;

    const again = await connect(h);
    const history = (await again.nextOfType('history')).messages as Message[];
    expect(history.map((m) => [m.role, m.text, m.status])).toEqual([
      ['user', 'question', 'delivered'],
      ['agent', 'answer', undefined],
    ]);
    const stranger = await connect(h, 'demo', OTHER_VISITOR);
    expect((await stranger.nextOfType('history')).messages).toEqual([]);
  });

  it('keeps only maxHistory messages per chat', async () => {
    const h = await startHarness({ maxHistory: 3 });
    const id = chatId('demo', VISITOR);
    for (let i = 1; i <= 5; i++) {
      await h.adapter.send({ op: 'send', chat_id: id, content: `r${i}`, reply_to: null, metadata: {} });
    }
    const client = await connect(h);
    const history = (await client.nextOfType('history')).messages as Message[];
    expect(history.map((m) => m.text)).toEqual(['r3', 'r4', 'r5']);
  });

  it('forgets the least recently active idle chat beyond maxChats', async () => {
    const h = await startHarness({ maxChats: 2 });
    const send = (room: string) =>
      h.adapter.send({
        op: 'send',
        chat_id: chatId(room, VISITOR),
        content: room,
        reply_to: null,
        metadata: {},
      });
    await send('a');
    await send('b');
    await send('a');
    await send('c');
    expect((await h.adapter.history(chatId('a', VISITOR))).map((m) => m.text)).toEqual(['a', 'a']);
    expect(await h.adapter.history(chatId('b', VISITOR))).toEqual([]);
    expect((await h.adapter.history(chatId('c', VISITOR))).map((m) => m.text)).toEqual(['c']);
  });

  it('names the chat after its room', async () => {
    const h = await startHarness();
    await connect(h, 'my-room', VISITOR);
    expect(await h.adapter.getChatInfo({ op: 'get_chat_info', chat_id: chatId('my-room', VISITOR) })).toEqual(
      {
        success: true,
        chat_info: { name: 'Web chat (my-room)', type: 'dm' },
      },
    );
    expect(
      await h.adapter.getChatInfo({ op: 'get_chat_info', chat_id: chatId('lobby', 'abcdefgh12') }),
    ).toEqual({
      success: true,
      chat_info: { name: 'Web chat (lobby)', type: 'dm' },
    });
    expect((await h.adapter.getChatInfo({ op: 'get_chat_info', chat_id: 'nope' })).success).toBe(false);
  });

  it('closes every socket with 1001 on stop', async () => {
    const h = await startHarness();
    const a = await connect(h, 'demo', VISITOR);
    const b = await connect(h, 'other', VISITOR);
    await h.adapter.stop();
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
  });

  it('advertises a descriptor the protocol accepts', () => {
    const adapter = new WebChatAdapter({ log: silent });
    const parsed = parseDescriptor(adapter.descriptor());
    expect(parsed.ok).toBe(true);
    expect(adapter.descriptor()).toMatchObject({
      contract_version: 1,
      platform: 'webchat',
      max_message_length: 8000,
      supports_edit: true,
      markdown_dialect: 'markdown',
      len_unit: 'chars',
    });
  });
});

describe('web chat page', () => {
  it('serves the page with the room baked in', async () => {
    const h = await startHarness({ title: 'Test <Chat>' });
    const res = await fetch(`${h.base}/chat/support_2`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await res.text();
    expect(html).toContain('data-room="support_2"');
    expect(html).toContain('/chat/assets/app.js');
    expect(html).toContain('/chat/assets/app.css');
    // No request for /favicon.ico (a 404 in every visitor's console).
    expect(html).toContain('<link rel="icon" href="data:,">');
    expect(html).toContain('Test &lt;Chat&gt;');
    expect(html).not.toContain('Test <Chat>');
  });

  it.each(['bad%20room', 'x'.repeat(65), 'a.b', '%3Cscript%3E'])('answers 404 for room %s', async (room) => {
    const h = await startHarness();
    const res = await fetch(`${h.base}/chat/${room}`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    expect(html).toContain('Chat room not found');
    expect(html).not.toContain('<script>');
  });

  it('serves the assets with content types and cache headers', async () => {
    const h = await startHarness();
    const page = await (await fetch(`${h.base}/chat/demo`)).text();
    const jsPath = /src="(\/chat\/assets\/app\.js\?v=[0-9a-f]+)"/.exec(page)?.[1];
    expect(jsPath).toBeDefined();

    const js = await fetch(`${h.base}${jsPath}`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect(await js.text()).toBe(webchatAssets()['app.js']?.body);

    const css = await fetch(`${h.base}/chat/assets/app.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(css.headers.get('cache-control')).toBe('no-cache, max-age=0');
    expect(await css.text()).toContain('prefers-color-scheme: dark');

    const etag = css.headers.get('etag');
    expect(etag).toBeTruthy();
    const revalidated = await fetch(`${h.base}/chat/assets/app.css`, {
      headers: { 'if-none-match': String(etag) },
    });
    expect(revalidated.status).toBe(304);
  });

  it('loads markdown-it before the page module, and serves it and the Markdown module', async () => {
    const h = await startHarness();
    const page = await (await fetch(`${h.base}/chat/demo`)).text();
    const scripts = [...page.matchAll(/<script[^>]*src="([^"]+)"[^>]*>/g)].map((m) => m[1] ?? '');
    expect(scripts.map((src) => src.replace(/\?v=[0-9a-f]+$/, ''))).toEqual([
      '/chat/assets/markdown-it.umd.min.js',
      '/chat/assets/app.js',
    ]);
    expect(page).toMatch(/<script type="module" src="\/chat\/assets\/app\.js\?v=/);
    const vendor = await fetch(`${h.base}${scripts[0]}`);
    expect(vendor.status).toBe(200);
    expect(vendor.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(vendor.headers.get('cache-control')).toContain('immutable');
    expect(await vendor.text()).toContain('markdownit');
    // The page module imports it without a version: revalidated on every load.
    const module = await fetch(`${h.base}/chat/assets/markdown.js`);
    expect(module.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(module.headers.get('cache-control')).toBe('no-cache, max-age=0');
    expect(await module.text()).toContain('export function renderMarkdown');
  });

  it('ships page JS that parses (ES modules, and markdown-it as a classic script)', () => {
    const assets = webchatAssets();
    const dir = mkdtempSync(join(tmpdir(), 'hermes-webchat-js-'));
    try {
      for (const name of ['app.js', 'markdown.js']) {
        const file = join(dir, name.replace(/\.js$/, '.mjs'));
        writeFileSync(file, assets[name]?.body ?? 'missing(');
        const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
        expect(check.status, `${name}: ${check.stderr}`).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(assets['app.js']?.body).toContain("from './markdown.js'");
    expect(() => new vm.Script(assets['markdown-it.umd.min.js']?.body ?? 'missing(')).not.toThrow();
  });
});

/** Every start tag of `html`: its name and its attributes. */
function tagsOf(html: string): { name: string; attributes: string[] }[] {
  return [...html.matchAll(/<([a-zA-Z][\w-]*)([^>]*)>/g)].map((m) => ({
    name: (m[1] ?? '').toLowerCase(),
    attributes: [...(m[2] ?? '').matchAll(/([^\s=/]+)\s*(?:=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?/g)].map((a) =>
      (a[1] ?? '').toLowerCase(),
    ),
  }));
}

const SAFE_TAGS = new Set([
  'a',
  'blockquote',
  'br',
  'button',
  'code',
  'del',
  'div',
  'em',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'hr',
  'li',
  'ol',
  'p',
  's',
  'span',
  'strong',
  'table',
  'tbody',
  'td',
  'th',
  'thead',
  'tr',
  'ul',
  'pre',
]);
const SAFE_ATTRIBUTES = new Set(['href', 'title', 'target', 'rel', 'class', 'type', 'aria-label', 'start']);

/** Only known-inert tags and attributes; every link is http(s). */
function expectInert(html: string, source: string): void {
  for (const tag of tagsOf(html)) {
    expect(SAFE_TAGS.has(tag.name), `<${tag.name}> from ${JSON.stringify(source)}`).toBe(true);
    for (const attribute of tag.attributes)
      expect(SAFE_ATTRIBUTES.has(attribute), `${attribute}= from ${JSON.stringify(source)}`).toBe(true);
  }
  for (const m of html.matchAll(/href="([^"]*)"/g)) expect(m[1], source).toMatch(/^https?:\/\//);
}

describe('renderMarkdown (markdown-it with the page settings)', () => {
  const renderMarkdown = createMarkdownRenderer(markdownit);

  it('escapes HTML, including script tags and attributes', () => {
    const out = renderMarkdown('<script>alert(1)</script> <img src=x onerror="alert(1)">');
    expect(out).not.toContain('<script');
    expect(out).not.toContain('<img');
    expect(out).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(out).toContain('&quot;alert(1)&quot;');
  });

  it('never lets raw HTML, scripts, handlers or images become elements', () => {
    // The check itself catches live markup.
    expect(() => expectInert('<img src=x onerror="alert(1)">', 'img')).toThrow();
    expect(() => expectInert('<p onclick="x">', 'handler')).toThrow();
    expect(() => expectInert('<a href="javascript:x">', 'link')).toThrow();
    for (const source of [
      '<script>alert(1)</script>',
      '<img src=x onerror="alert(1)">',
      '![x](https://example.com/x.png) ![y](javascript:alert(1))',
      '<div onclick="alert(1)">hi</div>\n\n<iframe src="https://example.com"></iframe>',
      '<a href="javascript:alert(1)">x</a> <svg onload=alert(1)>',
      '<style>body{display:none}</style>\n<details open ontoggle=alert(1)>',
      '| a | b |\n|:-:|--:|\n| <b>1</b> | <i>2</i> |',
      '> <script>alert(1)</script>\n\n1. <img src=x onerror=alert(1)>',
      '```html\n<script>alert(1)</script>\n```',
      '[x](https://e.com "title\\" onmouseover=\\"alert(1)")',
    ]) {
      expectInert(renderMarkdown(source), source);
    }
  });

  it('never links anything but http(s)', () => {
    for (const source of [
      '[click](javascript:alert(1))',
      '[click](JavaScript:alert(1))',
      '[click](  javascript:alert(1))',
      '[click](java&#115;cript:alert(1))',
      '[click](data:text/html;base64,PHNjcmlwdD4=)',
      'javascript:alert(1)',
      '<javascript:alert(1)>',
      '[x](vbscript:msgbox)',
      '[x](file:///etc/passwd) [y](mailto:a@example.com) a@example.com',
      '[ref]\n\n[ref]: javascript:alert(1)',
    ]) {
      const out = renderMarkdown(source);
      expect(out, source).not.toContain('<a');
    }
  });

  it('links http(s) URLs safely, in a new tab without opener or referrer', () => {
    expect(renderMarkdown('see [the docs](https://example.com/a_b?x=1&y=2)')).toBe(
      '<p>see <a href="https://example.com/a_b?x=1&amp;y=2" target="_blank" rel="noopener noreferrer nofollow">the docs</a></p>\n',
    );
    expect(renderMarkdown('go to https://example.com/some_path_here.')).toBe(
      '<p>go to <a href="https://example.com/some_path_here" target="_blank" rel="noopener noreferrer nofollow">https://example.com/some_path_here</a>.</p>\n',
    );
    const quoted = renderMarkdown('"https://example.com/x" and [a](https://e.com/"onmouseover="alert(1))');
    expect(quoted).toContain('href="https://example.com/x"');
    expect(quoted).not.toMatch(/"\s*onmouseover=/);
  });

  it('renders code fences with a language label and a copy button, unformatted', () => {
    const out = renderMarkdown('Try:\n```py\nprint("<b>**hi**</b>")\n```\nDone');
    expect(out).toContain('<span class="md-lang">py</span>');
    expect(out).toContain('<button type="button" class="md-copy" aria-label="Copy code">Copy</button>');
    expect(out).toContain('<pre><code>print(&quot;&lt;b&gt;**hi**&lt;/b&gt;&quot;)</code></pre>');
    expect(out.startsWith('<p>Try:</p>\n<div class="md-code">')).toBe(true);
    expect(out.endsWith('</div>\n<p>Done</p>\n')).toBe(true);
    expect(renderMarkdown('```"><script>\nx\n```')).toContain('<span class="md-lang">code</span>');
  });

  it('renders an unterminated fence (a reply still streaming) as code', () => {
    const out = renderMarkdown('```js\nconst a = 1 * 2 * 3;');
    expect(out).toContain('<pre><code>const a = 1 * 2 * 3;</code></pre>');
    expect(out).not.toContain('<em>');
  });

  it('renders inline code, emphasis and line breaks', () => {
    expect(renderMarkdown('**bold** and *it* and _it2_\n`a*b*c` ~~old~~')).toBe(
      '<p><strong>bold</strong> and <em>it</em> and <em>it2</em><br>\n<code>a*b*c</code> <s>old</s></p>\n',
    );
    expect(renderMarkdown('snake_case_name stays')).toBe('<p>snake_case_name stays</p>\n');
    expect(renderMarkdown('# Title\n- one\n- two')).toBe(
      '<h1>Title</h1>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n',
    );
  });

  it('renders tables (alignment as a class, never a style), quotes and numbered lists', () => {
    const table = renderMarkdown('| Name | Count |\n|:--|--:|\n| a | 1 |\n| b | 22 |');
    expect(table).toContain('<div class="md-table"><table>');
    expect(table).toContain('<th class="md-align-left">Name</th>');
    expect(table).toContain('<td class="md-align-right">22</td>');
    expect(table).toContain('</table>\n</div>');
    expect(table).not.toContain('style=');
    expect(renderMarkdown('> quoted\n> text')).toBe('<blockquote>\n<p>quoted<br>\ntext</p>\n</blockquote>\n');
    expect(renderMarkdown('3. three\n4. four')).toBe(
      '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>\n',
    );
  });
});
