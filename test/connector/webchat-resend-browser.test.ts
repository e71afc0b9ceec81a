import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  renderChatPage,
  WEBCHAT_ASSETS_PREFIX,
  webchatAssets,
} from '../../src/connector/platforms/webchat/page.js';
import { registerAssets } from '../../src/http/static-assets.js';
import { collectPageErrors, HAS_CHROMIUM, launchChromium, NO_CHROMIUM_MESSAGE } from '../support/browser.js';
import { until } from '../support/processes.js';

/**
 * The page's script in a real browser against a scripted chat socket: a message whose socket drops
 * before its ack is sent again once the page has reconnected, with the same clientId (random, not a
 * per-page counter that a reload would start over); once acknowledged it is not sent again.
 */

type Received = { connection: number; frame: { type: string; text?: string; clientId?: string } };

let app: FastifyInstance;
let base = '';
const received: Received[] = [];
const sockets: WebSocket[] = [];
/** How the server answers each connection's messages: `drop` closes the socket unanswered. */
let answer: 'drop' | 'ack' = 'drop';

beforeAll(async () => {
  if (!HAS_CHROMIUM) return;
  app = Fastify();
  app.get('/chat/:room', async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(renderChatPage({ room: 'lobby', title: 'Test chat' })),
  );
  registerAssets(app, WEBCHAT_ASSETS_PREFIX, webchatAssets());
  const wss = new WebSocketServer({ noServer: true });
  let ids = 0;
  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) =>
    wss.handleUpgrade(request, socket, head, (ws) => {
      sockets.push(ws);
      const connection = sockets.length;
      ws.send(JSON.stringify({ type: 'history', messages: [] }));
      ws.on('message', (data) => {
        const frame = JSON.parse(String(data)) as Received['frame'];
        received.push({ connection, frame });
        if (answer === 'drop') {
          ws.terminate();
          return;
        }
        ids += 1;
        const message = { id: `u-${ids}`, role: 'user', text: frame.text, ts: Date.now(), status: 'sent' };
        ws.send(JSON.stringify({ type: 'message', message, clientId: frame.clientId }));
        ws.send(JSON.stringify({ type: 'ack', message_id: message.id }));
      });
    }),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const socket of sockets) socket.terminate();
  await app?.close();
});

describe.skipIf(!HAS_CHROMIUM)(
  `web chat page re-sends unacknowledged messages${HAS_CHROMIUM ? '' : ` (${NO_CHROMIUM_MESSAGE})`}`,
  () => {
    it('sends a message again after a reconnect with the same clientId, and only until it is acknowledged', async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        const errors = collectPageErrors(page);
        await page.goto(`${base}/chat/lobby`);
        const connected = page.locator('#status-text').filter({ hasText: /^connected$/ });
        await connected.waitFor();

        // The socket drops before any answer: the page reconnects and sends it again.
        await page.locator('#input').fill('are you there?');
        await page.keyboard.press('Enter');
        await until(() => received.length >= 1 || undefined, 10_000, 'the first send');
        answer = 'ack';
        await until(() => received.length >= 2 || undefined, 20_000, 'the re-send after reconnecting');
        const [first, again] = received;
        expect(first?.connection).toBe(1);
        expect(again?.connection).toBe(2);
        expect(again?.frame).toEqual(first?.frame);
        expect(first?.frame).toMatchObject({ type: 'message', text: 'are you there?' });
        // Random per message (22 base62 characters after `c`), within the server's 64.
        expect(first?.frame.clientId).toMatch(/^c[A-Za-z0-9]{22}$/);
        await page.getByText('are you there?').waitFor();
        await page.locator('.msg.user[data-status="delivered"]').waitFor();

        // Acknowledged: after the next reconnect only the new message goes, under a new clientId.
        sockets[1]?.terminate();
        await until(() => sockets.length >= 3 || undefined, 20_000, 'the next reconnect');
        await connected.waitFor();
        await page.locator('#input').fill('second');
        await page.keyboard.press('Enter');
        await until(() => received.length >= 3 || undefined, 10_000, 'the second message');
        expect(received.slice(2).map((r) => [r.connection, r.frame.text])).toEqual([[3, 'second']]);
        expect(received[2]?.frame.clientId).not.toBe(first?.frame.clientId);
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    }, 60_000);
  },
);
