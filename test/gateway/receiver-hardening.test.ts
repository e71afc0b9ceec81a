import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { generateSecret, signDelivery } from '../../src/auth/index.js';
import type { Agent } from '../../src/gateway/agents/index.js';
import { SqliteInbox } from '../../src/gateway/inbox.js';
import { InboundReceiver, type InboundReceiverOptions } from '../../src/gateway/receiver.js';
import { ReplyChannel } from '../../src/gateway/replies.js';
import { SessionManager } from '../../src/gateway/sessions.js';
import { placeholderDescriptor, RECEIVER_ERRORS } from '../../src/protocol/index.js';
import { until } from '../support/poll.js';
import { tempDir } from '../support/processes.js';

/**
 * The receiver against unauthenticated and hostile callers (issue #13 items 1, 5, 6, 7, 10b): what
 * cannot verify is refused before its body is read, bodies are read a few at a time, a trickled
 * body is cut, nesting is bounded, every answer carries the security headers, and a delivery id
 * the durable inbox accepted before a restart is answered as a duplicate.
 */

const dir = tempDir('receiver-hardening');
afterAll(() => dir.remove());

const running: InboundReceiver[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(running.splice(0).map((receiver) => receiver.stop()));
});

async function start(overrides: Partial<InboundReceiverOptions> = {}) {
  const key = generateSecret();
  const receiver = new InboundReceiver({
    host: '127.0.0.1',
    port: 0,
    verifyKeys: () => [key],
    onMessage: async () => 'accepted',
    onInterrupt: () => {},
    log: pino({ level: 'silent' }),
    ...overrides,
  });
  const { url, port } = await receiver.start();
  running.push(receiver);
  return { receiver, url, port, key };
}

interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/** Open a socket, write `text`, and collect what comes back until the server answers or closes. */
function rawRequest(port: number, text: string): { socket: Socket; answer: Promise<RawAnswer | 'closed'> } {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  const answer = new Promise<RawAnswer | 'closed'>((resolve) => {
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = received.slice(0, end);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      const body = received.slice(end + 4);
      if (body.length >= length)
        resolve({ status: Number(head.split(' ')[1]), head: head.toLowerCase(), body });
    });
    socket.on('close', () => resolve('closed'));
    socket.on('error', () => resolve('closed'));
  });
  socket.write(text);
  return { socket, answer };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** POST `body` to the receiver at `url`, signed with `key` now. */
async function postSigned(
  url: string,
  body: string,
  key: string,
): Promise<{ status: number; json: unknown }> {
  const ts = nowSeconds();
  const response = await fetch(`${url}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-relay-timestamp': String(ts),
      'x-relay-signature': signDelivery(body, key, ts),
    },
    body,
  });
  return { status: response.status, json: await response.json() };
}

function headersOnly(port: number, headers: Record<string, string>, contentLength = 100_000): string {
  const lines = [
    'POST / HTTP/1.1',
    `host: 127.0.0.1:${port}`,
    'content-type: application/json',
    `content-length: ${contentLength}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

describe('refusing before the body is read', () => {
  it.each([
    ['no signature headers', {}, RECEIVER_ERRORS.badSignature],
    [
      'a malformed timestamp',
      { 'x-relay-timestamp': 'soon', 'x-relay-signature': 'ab' },
      RECEIVER_ERRORS.badSignature,
    ],
    [
      'a timestamp outside the replay window',
      { 'x-relay-timestamp': String(nowSeconds() - 3_600), 'x-relay-signature': 'ab' },
      RECEIVER_ERRORS.badSignature,
    ],
  ])('answers 401 to %s while the body is still unsent', async (_name, headers, error) => {
    const { port } = await start();
    const { answer } = rawRequest(port, headersOnly(port, headers));
    const result = await answer;
    expect(result).not.toBe('closed');
    const { status, body, head } = result as RawAnswer;
    expect(status).toBe(401);
    expect(JSON.parse(body)).toEqual({ error });
    expect(head).toContain('connection: close');
  });

  it('says "no delivery key configured" first when the gateway holds no key', async () => {
    const { port } = await start({ verifyKeys: () => [] });
    const { answer } = rawRequest(port, headersOnly(port, {}));
    const result = (await answer) as RawAnswer;
    expect(result.status).toBe(401);
    expect(JSON.parse(result.body)).toEqual({ error: RECEIVER_ERRORS.noKey });
  });
});

describe('bounded work for callers that pass the header checks', () => {
  it('reads at most maxConcurrentBodies bodies at once: the next caller gets 503 with Retry-After', async () => {
    const { port } = await start({ maxConcurrentBodies: 2 });
    const plausible = { 'x-relay-timestamp': String(nowSeconds()), 'x-relay-signature': 'a'.repeat(64) };
    const held = [
      rawRequest(port, headersOnly(port, plausible)),
      rawRequest(port, headersOnly(port, plausible)),
    ];
    // The two held requests are being read once a third is refused; poll until that is so.
    const refused = await until(
      async () => {
        const third = (await rawRequest(port, headersOnly(port, plausible, 2)).answer) as RawAnswer;
        return third.status === 503 ? third : undefined;
      },
      5_000,
      'a third delivery to be refused',
    );
    expect(refused?.status).toBe(503);
    expect(refused?.head).toContain('retry-after: 1');
    expect(JSON.parse(refused?.body ?? '{}')).toEqual({ error: 'too many deliveries at once' });
    // One held body ends (a bad signature over it): a slot is free again.
    held[0]?.socket.end();
    held[0]?.socket.destroy();
    const admitted = await until(
      async () => {
        const next = (await rawRequest(port, `${headersOnly(port, plausible, 2)}{}`).answer) as RawAnswer;
        return next.status === 401 ? next : undefined;
      },
      5_000,
      'a delivery to be admitted again',
    );
    expect(JSON.parse(admitted?.body ?? '{}')).toEqual({ error: RECEIVER_ERRORS.badSignature });
  });

  it('cuts a body trickled past the request time limit', async () => {
    const { port } = await start({ timeouts: { requestTimeoutMs: 600, checkIntervalMs: 100 } });
    const plausible = { 'x-relay-timestamp': String(nowSeconds()), 'x-relay-signature': 'a'.repeat(64) };
    const { socket, answer } = rawRequest(port, headersOnly(port, plausible, 1_000));
    const trickle = setInterval(() => socket.writable && socket.write('{'), 100);
    try {
      // The answer comes (the test would time out otherwise): Node's 408, or a plain close.
      const result = await answer;
      if (result !== 'closed') expect(result.status).toBe(408);
    } finally {
      clearInterval(trickle);
    }
  });

  it('answers a signed body nested beyond the depth bound with 400 invalid JSON, and stays up', async () => {
    const { url, key } = await start();
    const body = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(await postSigned(url, body, key)).toEqual({
      status: 400,
      json: { error: RECEIVER_ERRORS.badJson },
    });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });
});

describe('answers', () => {
  it('carry the security headers, refusals and health checks alike', async () => {
    const { url } = await start();
    for (const response of [
      await fetch(`${url}/healthz`),
      await fetch(`${url}/`, { method: 'POST', body: '{}' }),
      await fetch(`${url}/nowhere`),
    ]) {
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(response.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('carry the security headers on a delivered message, its duplicate and refusals after the body', async () => {
    const { url, key } = await start({ maxBodyBytes: 4096 });
    const body = JSON.stringify({
      type: 'message',
      delivery_id: 'dlv_headers',
      event: { text: 'hi', source: { chat_id: 'c1' } },
    });
    const ts = nowSeconds();
    const signedHeaders = (text: string, signingKey = key) => ({
      'content-type': 'application/json',
      'x-relay-timestamp': String(ts),
      'x-relay-signature': signDelivery(text, signingKey, ts),
    });
    const send = (text: string, signingKey = key) =>
      fetch(`${url}/`, { method: 'POST', headers: signedHeaders(text, signingKey), body: text });
    const answers: [Response, number, unknown][] = [
      [await send(body), 200, { ok: true }],
      [await send(body), 200, { ok: true, duplicate: true }],
      [await send(body, generateSecret()), 401, { error: RECEIVER_ERRORS.badSignature }],
      [await send('{"type":"message"'), 400, { error: RECEIVER_ERRORS.badJson }],
    ];
    for (const [response, status, json] of answers) {
      expect(response.status).toBe(status);
      expect(await response.json()).toEqual(json);
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    }
  });
});

describe('duplicates after a restart', () => {
  it('a delivery id the durable inbox accepted before the restart is answered {"ok":true,"duplicate":true}', async () => {
    const inboxPath = join(dir.path, 'inbox.db');
    const key = generateSecret();
    const agentCalls: string[] = [];
    const agent: Agent = {
      name: 'recording',
      run: async (input) => {
        agentCalls.push(input.message.content);
        return { text: 'ok' };
      },
    };
    const link = { descriptor: placeholderDescriptor('webchat'), send: async () => ({ success: true }) };

    const gateway = async () => {
      const inbox = SqliteInbox.open(inboxPath);
      const sessions = new SessionManager({
        agent,
        history: { load: () => [], append: () => {}, close: () => {} },
        replies: new ReplyChannel(link, 'webchat', pino({ level: 'silent' })),
        log: pino({ level: 'silent' }),
        keyOptions: {},
        externalDrainActive: () => false,
        shutdown: () => 'none',
        onActiveChange: () => undefined,
        journal: inbox,
      });
      const { url, receiver } = await start({
        verifyKeys: () => [key],
        onMessage: async (event, deliveryId) => sessions.handleInbound(event, { deliveryId }),
      });
      return { url, receiver, inbox };
    };

    const body = JSON.stringify({
      delivery_id: 'd-restart',
      event: { text: 'once only', source: { platform: 'webchat', chat_id: 'c1', chat_type: 'dm' } },
    });
    const deliver = (url: string) => postSigned(url, body, key);

    const first = await gateway();
    expect(await deliver(first.url)).toEqual({ status: 200, json: { ok: true } });
    await until(() => agentCalls.length > 0, 5_000, 'the agent to be called');
    await first.receiver.stop();
    first.inbox.close();

    const second = await gateway();
    expect(await deliver(second.url)).toEqual({ status: 200, json: { ok: true, duplicate: true } });
    expect(agentCalls).toEqual(['once only']);
    second.inbox.close();
  });
});
