import { type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type Duplex, Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MediaStore } from '../../src/connector/media.js';
import type { IngestOutcome, PlatformContext, PlatformInbound } from '../../src/connector/platforms/types.js';
import { WebChatAdapter } from '../../src/connector/platforms/webchat/adapter.js';
import { MEDIA_MAX_BYTES, parseOutboundAction } from '../../src/protocol/index.js';
import { until } from '../support/poll.js';
import { tempDir } from '../support/processes.js';

/**
 * The web chat's part of the op surface (current §7.2–§7.5): files the agent sends (served to the
 * chat's visitors only), questions with buttons whose press comes back as `prompt_response`, and
 * reactions on the visitor's messages.
 */

type Frame = { type: string; [key: string]: unknown };
const VISITOR = 'visitor-ops-0001';
const CHAT = `wc-lobby-${VISITOR}`;
const dir = tempDir('webchat-ops');
const media = new MediaStore(join(dir.path, 'media'));
const ingests: PlatformInbound[] = [];
const uploaded: { kind: string; mime?: string; filename?: string; bytes: Buffer }[] = [];
const context: PlatformContext = {
  log: pino({ level: 'silent' }),
  ingest: async (inbound): Promise<IngestOutcome> => {
    ingests.push(inbound);
    // As the engine does: the files are read (re-hosted) before the event counts as queued.
    for (const attachment of inbound.attachments ?? []) {
      const chunks: Buffer[] = [];
      for await (const chunk of await attachment.open()) chunks.push(chunk as Buffer);
      uploaded.push({
        kind: attachment.kind,
        mime: attachment.mime,
        filename: attachment.filename,
        bytes: Buffer.concat(chunks),
      });
    }
    return { ok: true, deliveryId: `d-${ingests.length}`, tenantId: 't1', sessionKey: 's1' };
  },
  openMedia: (id) => media.openUnscoped(id),
};
const adapter = new WebChatAdapter({ log: pino({ level: 'silent' }) });
let app: FastifyInstance;
let base: string;
let browser: WebSocket;
const frames: Frame[] = [];

const action = (input: Record<string, unknown>) => {
  const parsed = parseOutboundAction({ metadata: {}, reply_to: null, ...input });
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.action as never;
};

beforeAll(async () => {
  app = Fastify();
  adapter.registerRoutes(app);
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!adapter.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await adapter.start(context);
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = new WebSocket(`${base.replace('http', 'ws')}/chat/ws?room=lobby&visitor=${VISITOR}`);
  browser.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString()) as Frame));
  await new Promise((resolve) => browser.once('open', resolve));
});

afterAll(async () => {
  browser?.terminate();
  await adapter.stop();
  await app.close();
  dir.remove();
});

describe('web chat ops', () => {
  it('advertises send_media, prompt and react (derived from the adapter)', () => {
    expect(typeof adapter.sendMedia).toBe('function');
    expect(typeof adapter.prompt).toBe('function');
    expect(typeof adapter.react).toBe('function');
  });

  it('send_media: a re-host is served to this chat only, images inline; an https URL becomes a link', async () => {
    const png = Buffer.from('89504e47', 'hex');
    const put = await media.put('t1', Readable.from([png]), {
      contentType: 'image/png',
      filename: 'cat.png',
    });
    if (!put.ok) throw new Error(put.detail);
    const sent = await adapter.sendMedia(
      action({
        op: 'send_media',
        chat_id: CHAT,
        media_kind: 'image',
        source_url: `http://relay.test/relay/media/${put.id}`,
        content: 'a cat',
      }),
    );
    expect(sent).toMatchObject({ success: true });
    const frame = await until(() =>
      frames.find((f) => f.type === 'message' && (f.message as { text: string }).text === 'a cat'),
    );
    const attachment = (frame.message as { attachments: { url: string; mime: string; name: string }[] })
      .attachments[0];
    expect(attachment).toMatchObject({ mime: 'image/png', name: 'cat.png' });
    const served = await fetch(`${base}${attachment?.url}`);
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await served.arrayBuffer()).equals(png)).toBe(true);
    // Another chat, or a media id never sent here, gets nothing.
    const otherChat = attachment?.url.replace(VISITOR, 'visitor-ops-0002') ?? '';
    expect((await fetch(`${base}${otherChat}`)).status).toBe(404);
    const otherId = await media.put('t1', Readable.from([png]), {
      contentType: 'image/png',
      filename: 'x.png',
    });
    if (!otherId.ok) throw new Error('not stored');
    expect((await fetch(`${base}/chat/file/${CHAT}/${otherId.id}`)).status).toBe(404);

    await adapter.sendMedia(
      action({
        op: 'send_media',
        chat_id: CHAT,
        media_kind: 'document',
        source_url: 'https://files.example/r.pdf',
      }),
    );
    const link = await until(() =>
      frames.find(
        (f) =>
          f.type === 'message' &&
          (f.message as { attachments?: { url: string }[] }).attachments?.[0]?.url.startsWith('https:'),
      ),
    );
    expect((link.message as { attachments: unknown[] }).attachments[0]).toMatchObject({
      url: 'https://files.example/r.pdf',
      name: 'r.pdf',
    });
  });

  it('prompt: a press shows the choice, reaches the agent as prompt_response, and a second press is refused', async () => {
    const asked = await adapter.prompt(
      action({
        op: 'prompt',
        chat_id: CHAT,
        content: 'Ship it?',
        prompt_id: 'abc123.deadbeef',
        options: [
          { id: 'yes', label: 'Yes' },
          { id: 'no', label: 'No' },
        ],
      }),
    );
    const messageId = String(asked.message_id);
    browser.send(JSON.stringify({ type: 'press', message_id: messageId, option_id: 'yes' }));
    const update = await until(() => frames.find((f) => f.type === 'update'));
    expect((update.message as { prompt: { chosen: string } }).prompt.chosen).toBe('Yes');
    const press = await until(() => ingests.find((i) => i.event.prompt_response));
    expect(press.event).toMatchObject({
      text: '/yes',
      message_type: 'command',
      prompt_response: {
        prompt_id: 'abc123.deadbeef',
        option_id: 'yes',
        label: 'Yes',
        prompt_message_id: messageId,
      },
      source: { chat_id: CHAT, user_id: VISITOR },
    });
    browser.send(JSON.stringify({ type: 'press', message_id: messageId, option_id: 'no' }));
    await until(() =>
      frames.find((f) => f.type === 'error' && f.message === 'That question was already answered.'),
    );
    expect(ingests.filter((i) => i.event.prompt_response)).toHaveLength(1);
  });

  it('react: the emoji shows on the visitor’s message, and goes again on remove', async () => {
    browser.send(JSON.stringify({ type: 'message', text: 'hello' }));
    const own = await until(() =>
      frames.find((f) => f.type === 'message' && (f.message as { text: string }).text === 'hello'),
    );
    const id = (own.message as { id: string }).id;
    expect(await adapter.react(action({ op: 'react', chat_id: CHAT, message_id: id, emoji: '👍' }))).toEqual({
      success: true,
    });
    await until(() =>
      frames.find(
        (f) => f.type === 'update' && (f.message as { reactions?: string[] }).reactions?.includes('👍'),
      ),
    );
    await adapter.react(action({ op: 'react', chat_id: CHAT, message_id: id, emoji: '👍', remove: true }));
    await until(() =>
      frames.find(
        (f) =>
          f.type === 'update' &&
          (f.message as { id: string; reactions?: string[] }).id === id &&
          (f.message as { reactions?: string[] }).reactions?.length === 0,
      ),
    );
  });

  it('upload: a visitor’s file goes to the agent as an attachment with its caption, in the chat’s order; bad uploads are refused', async () => {
    const bytes = Buffer.from('a small photo');
    const ok = await fetch(`${base}/chat/upload?room=lobby&visitor=${VISITOR}&caption=look`, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg', 'x-media-filename': encodeURIComponent('café.jpg') },
      body: bytes,
    });
    expect(ok.status).toBe(200);
    const inbound = ingests.at(-1);
    expect(inbound?.event).toMatchObject({ text: 'look', message_type: 'photo', source: { chat_id: CHAT } });
    expect(uploaded.at(-1)).toEqual({ kind: 'image', mime: 'image/jpeg', filename: 'café.jpg', bytes });
    const shown = await until(() =>
      frames.find((f) => f.type === 'message' && (f.message as { text: string }).text === 'look'),
    );
    expect((shown.message as { attachments: unknown[] }).attachments).toEqual([
      { url: '', name: 'café.jpg', mime: 'image/jpeg', kind: 'image' },
    ]);

    const count = ingests.length;
    const refused = [
      await fetch(`${base}/chat/upload?room=lobby&visitor=short`, { method: 'POST', body: bytes }),
      // Headers announcing more than the cap, and no body: answered before any byte is read.
      await new Promise<{ status: number }>((resolve, reject) => {
        const req = request(
          `${base}/chat/upload?room=lobby&visitor=${VISITOR}`,
          { method: 'POST', headers: { 'content-length': String(MEDIA_MAX_BYTES + 1) } },
          (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0 });
            req.destroy();
          },
        );
        req.on('error', reject);
        req.flushHeaders();
      }),
    ];
    expect(refused[0]?.status).toBe(400);
    expect(refused[1]?.status).toBe(413);
    expect(ingests.length).toBe(count);
  });

  it('caps uploads in flight per client address, whatever visitor ids it uses', async () => {
    // Four uploads that announce 10 bytes and send 1: they stay in flight.
    const pending = Array.from({ length: 4 }, (_, i) => {
      const req = request(`${base}/chat/upload?room=lobby&visitor=visitor-flood-000${i}`, {
        method: 'POST',
        headers: { 'content-length': '10', 'content-type': 'text/plain' },
      });
      req.on('error', () => undefined);
      req.write('x');
      return req;
    });
    await until(async () => {
      const fifth = await fetch(`${base}/chat/upload?room=lobby&visitor=visitor-flood-0009`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'hello',
      });
      return fifth.status === 429 ? fifth : undefined;
    }, 5_000);
    for (const req of pending) req.destroy();
  });
});
