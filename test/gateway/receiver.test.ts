import { request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSecret, signDelivery } from '../../src/auth/index.js';
import { InboundReceiver, type InboundReceiverOptions } from '../../src/gateway/receiver.js';
import type { MessageEvent } from '../../src/protocol/index.js';
import { until } from '../support/poll.js';
import { loadVectors } from '../support/vectors.js';

/** The signed inbound receiver over real HTTP on 127.0.0.1 (reference §3.3, spec decision 4). */

interface DeliveryVector {
  timestamp: string;
  body_base64: string;
  key: string;
  signature: string;
}

const vectors = loadVectors<{ deliverySignatures: DeliveryVector[] }>('relay-auth.json');

/** The receiver's clock, in ms; tests move it instead of waiting. Starts at the vectors' timestamp. */
const START_MS = 1_750_000_000_000;

interface Harness {
  receiver: InboundReceiver;
  url: string;
  port: number;
  messages: { event: MessageEvent; deliveryId: string | undefined }[];
  interrupts: { sessionKey: string; chatId: string }[];
  logs: string[];
  clock: { ms: number };
  keys: string[];
  /** Seconds on the receiver's clock, for signing. */
  ts(): number;
}

const running: InboundReceiver[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((receiver) => receiver.stop()));
});

async function startReceiver(
  overrides: Partial<InboundReceiverOptions> & { keys?: string[] } = {},
): Promise<Harness> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(String(chunk));
      callback();
    },
  });
  const clock = { ms: START_MS };
  const keys = overrides.keys ?? [generateSecret()];
  const messages: Harness['messages'] = [];
  const interrupts: Harness['interrupts'] = [];
  const receiver = new InboundReceiver({
    host: '127.0.0.1',
    port: 0,
    verifyKeys: () => keys,
    onMessage: async (event, deliveryId) => {
      messages.push({ event, deliveryId });
    },
    onInterrupt: (sessionKey, chatId) => {
      interrupts.push({ sessionKey, chatId });
    },
    log: pino({ level: 'debug' }, sink),
    now: () => clock.ms,
    ...overrides,
  });
  const { url, port } = await receiver.start();
  running.push(receiver);
  return {
    receiver,
    url,
    port,
    messages,
    interrupts,
    logs,
    clock,
    keys,
    ts: () => Math.floor(clock.ms / 1000),
  };
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

async function post(
  h: Harness,
  path: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const response = await fetch(h.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Sign the exact bytes with `key` (default: the primary) at the receiver's current second. */
function signed(
  h: Harness,
  body: string | Uint8Array,
  options: { key?: string; ts?: number; headers?: Record<string, string> } = {},
): Record<string, string> {
  const ts = options.ts ?? h.ts();
  const key = options.key ?? (h.keys[0] as string);
  return {
    'x-relay-timestamp': String(ts),
    'x-relay-signature': signDelivery(body, key, ts),
    ...options.headers,
  };
}

async function postSigned(
  h: Harness,
  path: string,
  body: string | Uint8Array,
  options: { key?: string; ts?: number; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return post(h, path, body, signed(h, body, options));
}

function messageBody(text: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ type: 'message', event: { text, source: { chat_id: 'c1' } }, ...extra });
}

/**
 * A POST over node:http with the body written in the given chunks (chunked transfer encoding when
 * no content-length is given). Resolves with the response even if the server closes the connection
 * before the client has finished sending.
 */
function rawPost(
  port: number,
  path: string,
  chunks: Buffer[],
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: 'POST', headers, agent: false },
      (response) => {
        answered = true;
        const parts: Buffer[] = [];
        response.on('data', (part: Buffer) => parts.push(part));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }),
        );
        response.on('error', () =>
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }),
        );
      },
    );
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    const writeNext = (index: number) => {
      if (req.destroyed) return;
      const chunk = chunks[index];
      if (!chunk) {
        req.end();
        return;
      }
      req.write(chunk, () => writeNext(index + 1));
    };
    writeNext(0);
  });
}

describe('routing', () => {
  it('answers GET /healthz with 200 text/plain ok', async () => {
    const h = await startReceiver();
    const response = await fetch(`${h.url}/healthz`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await response.text()).toBe('ok');
  });

  it('answers unknown paths 404 and wrong methods 405 with JSON error bodies', async () => {
    const h = await startReceiver();
    const missing = await post(h, '/nope', '{}');
    expect(missing.status).toBe(404);
    expect(missing.json).toEqual({ error: 'not found' });

    const getRoot = await fetch(`${h.url}/`);
    expect(getRoot.status).toBe(405);
    expect(getRoot.headers.get('allow')).toBe('POST');
    expect(await getRoot.json()).toEqual({ error: 'method not allowed' });

    const getInterrupt = await fetch(`${h.url}/interrupt`, { method: 'PUT', body: '{}' });
    expect(getInterrupt.status).toBe(405);

    const postHealth = await post(h, '/healthz', '{}');
    expect(postHealth.status).toBe(405);
    expect(postHealth.json).toEqual({ error: 'method not allowed' });
    expect(h.messages).toEqual([]);
  });

  it('ignores a query string when routing', async () => {
    const h = await startReceiver();
    const body = messageBody('with query');
    const reply = await postSigned(h, '/?probe=1', body);
    expect(reply.status).toBe(200);
    expect(h.messages.map((m) => m.event.text)).toEqual(['with query']);
  });
});

describe('signature (§3.3 steps 1-2)', () => {
  it('fails closed with 401 "no delivery key configured" when the key list is empty', async () => {
    const h = await startReceiver({ keys: [] });
    const body = messageBody('hi');
    const reply = await post(h, '/', body, signed(h, body, { key: generateSecret() }));
    expect(reply.status).toBe(401);
    expect(reply.text).toBe('{"error":"no delivery key configured"}');
    expect(h.messages).toEqual([]);
  });

  it('treats whitespace-only keys as no key', async () => {
    const h = await startReceiver({ keys: ['  ', ''] });
    const reply = await post(h, '/', messageBody('hi'));
    expect(reply.status).toBe(401);
    expect(reply.json).toEqual({ error: 'no delivery key configured' });
  });

  it('accepts the shared vector delivery, signature unchanged, with the vector key', async () => {
    const vector = vectors.deliverySignatures[0] as DeliveryVector;
    const h = await startReceiver({ keys: [vector.key] });
    const reply = await post(h, '/', Buffer.from(vector.body_base64, 'base64'), {
      'x-relay-timestamp': vector.timestamp,
      'x-relay-signature': vector.signature,
    });
    expect(reply.status).toBe(200);
    expect(reply.text).toBe('{"ok":true}');
    expect(h.messages).toHaveLength(1);
    expect(h.messages[0]?.event.text).toBe('hi');
    expect(h.messages[0]?.event.source.chat_id).toBe('c1');
  });

  it('refuses missing headers, a tampered body and a signature by another key with 401', async () => {
    const h = await startReceiver();
    const body = messageBody('hi');
    const headers = signed(h, body);

    const bare = await post(h, '/', body);
    expect(bare.status).toBe(401);
    expect(bare.text).toBe('{"error":"invalid delivery signature"}');

    const noSignature = await post(h, '/', body, { 'x-relay-timestamp': headers['x-relay-timestamp'] ?? '' });
    expect(noSignature.status).toBe(401);

    const tampered = await post(h, '/', `${body} `, headers);
    expect(tampered.status).toBe(401);
    expect(tampered.json).toEqual({ error: 'invalid delivery signature' });

    const otherKey = await postSigned(h, '/', body, { key: generateSecret() });
    expect(otherKey.status).toBe(401);

    const garbageSig = await post(h, '/', body, { ...headers, 'x-relay-signature': 'zz' });
    expect(garbageSig.status).toBe(401);

    const untouched = await post(h, '/', body, headers);
    expect(untouched.status).toBe(200);
    expect(h.messages).toHaveLength(1);
  });

  it('enforces the ±300 s window on the receiver clock, inclusive at 300', async () => {
    const h = await startReceiver();
    const now = h.ts();
    for (const ts of [now - 301, now + 301]) {
      const reply = await postSigned(h, '/', messageBody(`at ${ts}`), { ts });
      expect(reply.status).toBe(401);
      expect(reply.json).toEqual({ error: 'invalid delivery signature' });
    }
    for (const ts of [now - 300, now + 300]) {
      const reply = await postSigned(h, '/', messageBody(`at ${ts}`), { ts });
      expect(reply.status).toBe(200);
    }
    expect(h.messages.map((m) => m.event.text)).toEqual([`at ${now - 300}`, `at ${now + 300}`]);
  });

  it('accepts the secondary key during rotation and reads the key list on every request', async () => {
    const primary = generateSecret();
    const secondary = generateSecret();
    const h = await startReceiver({ keys: [primary, secondary] });
    const viaSecondary = await postSigned(h, '/', messageBody('old key'), { key: secondary });
    expect(viaSecondary.status).toBe(200);
    const viaPrimary = await postSigned(h, '/', messageBody('new key'), { key: primary });
    expect(viaPrimary.status).toBe(200);

    // The rotation window ends: the secondary disappears without a restart.
    h.keys.splice(1, 1);
    const afterWindow = await postSigned(h, '/', messageBody('too late'), { key: secondary });
    expect(afterWindow.status).toBe(401);
    expect(h.messages.map((m) => m.event.text)).toEqual(['old key', 'new key']);
  });

  it('logs refusals at debug with the reason, never the key or the body', async () => {
    const h = await startReceiver();
    const marker = 'body-marker-7f3a';
    await postSigned(h, '/', messageBody(marker), { key: generateSecret() });
    await postSigned(h, '/', messageBody(marker));
    const all = h.logs.join('');
    const refusal = h.logs.map((line) => JSON.parse(line)).find((line) => line.reason === 'bad_signature');
    expect(refusal?.level).toBe(20);
    expect(all).not.toContain(h.keys[0]);
    expect(all).not.toContain(marker);
  });
});

describe('body (§3.3 steps 3-5)', () => {
  it('answers 400 "invalid JSON body" to a validly signed body that is not JSON', async () => {
    const h = await startReceiver();
    const reply = await postSigned(h, '/', '{"type":"message",');
    expect(reply.status).toBe(400);
    expect(reply.text).toBe('{"error":"invalid JSON body"}');
    expect(h.messages).toEqual([]);
  });

  it('answers 400 "invalid JSON body" to validly signed bytes that are not UTF-8', async () => {
    const h = await startReceiver();
    const bytes = Buffer.concat([
      Buffer.from('{"type":"message","event":{"text":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}}'),
    ]);
    const reply = await postSigned(h, '/', bytes);
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual({ error: 'invalid JSON body' });
    expect(h.messages).toEqual([]);
  });

  it('checks the signature before the JSON: an unsigned non-JSON body is 401', async () => {
    const h = await startReceiver();
    const reply = await post(h, '/', 'not json');
    expect(reply.status).toBe(401);
  });

  it('answers 400 "missing event" when a message has no object event', async () => {
    const h = await startReceiver();
    for (const body of [
      '{"type":"message"}',
      '{"type":"message","event":"hi"}',
      '{"type":"message","event":[1]}',
      '[]',
    ]) {
      const reply = await postSigned(h, '/', body);
      expect(reply.status).toBe(400);
      expect(reply.text).toBe('{"error":"missing event"}');
    }
    expect(h.messages).toEqual([]);
  });

  it('dispatches a message and answers 200 {"ok":true} after onMessage resolves', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const order: string[] = [];
    const h = await startReceiver({
      onMessage: async (event) => {
        order.push(`start ${event.text}`);
        await gate;
        order.push(`end ${event.text}`);
      },
    });
    const pending = postSigned(h, '/', messageBody('slow', { extra: 'ignored' }));
    await until(() => order.length === 1);
    release();
    const reply = await pending;
    order.push('answered');
    expect(reply.status).toBe(200);
    expect(reply.text).toBe('{"ok":true}');
    expect(order).toEqual(['start slow', 'end slow', 'answered']);
  });

  it('dispatches an interrupt posted to /interrupt with its chat_id', async () => {
    const h = await startReceiver();
    const body = JSON.stringify({
      type: 'interrupt',
      session_key: 'agent:main:webchat:dm:c1:u1',
      chat_id: 'c1',
      reason: 'stop',
    });
    const reply = await postSigned(h, '/interrupt', body);
    expect(reply.status).toBe(200);
    expect(reply.text).toBe('{"ok":true}');
    expect(h.interrupts).toEqual([{ sessionKey: 'agent:main:webchat:dm:c1:u1', chatId: 'c1' }]);
    expect(h.messages).toEqual([]);
  });

  it('treats a root body of type interrupt as an interrupt; chat_id falls back to reason', async () => {
    const vector = vectors.deliverySignatures[1] as DeliveryVector;
    const h = await startReceiver({ keys: [vector.key] });
    const reply = await post(h, '/', Buffer.from(vector.body_base64, 'base64'), {
      'x-relay-timestamp': vector.timestamp,
      'x-relay-signature': vector.signature,
    });
    expect(reply.status).toBe(200);
    expect(h.interrupts).toEqual([{ sessionKey: 'agent:main:discord:group:c1:u1', chatId: 'stop' }]);
  });

  it('answers an interrupt on /interrupt even without type, and 200 with nothing dispatched for an empty session key', async () => {
    const h = await startReceiver();
    const untyped = await postSigned(h, '/interrupt', '{"session_key":"k1","chat_id":"c2"}');
    expect(untyped.status).toBe(200);
    const empty = await postSigned(h, '/interrupt', '{"type":"interrupt","session_key":"","chat_id":"c"}');
    expect(empty.status).toBe(200);
    expect(empty.json).toEqual({ ok: true });
    const noKey = await postSigned(h, '/', '{"type":"interrupt"}');
    expect(noKey.status).toBe(200);
    expect(h.interrupts).toEqual([{ sessionKey: 'k1', chatId: 'c2' }]);
  });

  it('answers 500 "dispatch failed" when the interrupt handler throws', async () => {
    const h = await startReceiver({
      onInterrupt: () => {
        throw new Error('boom');
      },
    });
    const reply = await postSigned(h, '/interrupt', '{"session_key":"k","chat_id":"c"}');
    expect(reply.status).toBe(500);
    expect(reply.json).toEqual({ error: 'dispatch failed' });
  });
});

describe('size limit', () => {
  it('answers 413 up front when Content-Length is over the limit, without waiting for the body', async () => {
    const h = await startReceiver();
    const size = 1024 * 1024 + 1;
    // Only 1 KiB of the declared size is ever sent: the answer must not depend on reading the rest.
    const reply = await rawPost(h.port, '/', [Buffer.alloc(1024, 0x20)], {
      'content-type': 'application/json',
      'content-length': String(size),
    });
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.text)).toEqual({ error: 'body too large' });
    expect(h.messages).toEqual([]);
  });

  it('answers an oversize Expect: 100-continue request 413 without inviting the body', async () => {
    const h = await startReceiver();
    const reply = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: h.port,
          path: '/',
          method: 'POST',
          agent: false,
          headers: { expect: '100-continue', 'content-length': String(2 * 1024 * 1024) },
        },
        (response) => {
          response.resume();
          resolve({ status: response.statusCode ?? 0, continued });
          req.destroy();
        },
      );
      req.on('continue', () => {
        continued = true;
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(reply).toEqual({ status: 413, continued: false });
  });

  it('answers 413 while streaming a chunked body with no Content-Length', async () => {
    const h = await startReceiver();
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const chunks = Array.from({ length: 20 }, () => chunk); // 1.25 MiB
    // Plausible signature headers: a request that could never verify is refused before its body.
    const reply = await rawPost(h.port, '/', chunks, {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
      'x-relay-timestamp': String(h.ts()),
      'x-relay-signature': 'a'.repeat(64),
    });
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.text)).toEqual({ error: 'body too large' });
    expect(h.messages).toEqual([]);
  });

  it('accepts a body of exactly the limit and refuses one byte more', async () => {
    const h = await startReceiver({ maxBodyBytes: 200 });
    const base = messageBody('x');
    const exact = base.replace('"x"', `"${'x'.repeat(200 - base.length + 1)}"`);
    expect(Buffer.byteLength(exact)).toBe(200);
    const ok = await postSigned(h, '/', exact);
    expect(ok.status).toBe(200);
    const over = `${exact} `;
    const tooBig = await rawPost(h.port, '/', [Buffer.from(over)], {
      ...signed(h, over),
      'transfer-encoding': 'chunked',
    });
    expect(tooBig.status).toBe(413);
    expect(h.messages).toHaveLength(1);
  });

  it('keeps serving after refusing an oversize body', async () => {
    const h = await startReceiver({ maxBodyBytes: 1000 });
    await rawPost(h.port, '/', [Buffer.alloc(5000, 0x20)], { 'content-length': '5000' });
    const reply = await postSigned(h, '/', messageBody('after'));
    expect(reply.status).toBe(200);
    expect(h.messages.map((m) => m.event.text)).toEqual(['after']);
  });
});

describe('delivery ids (spec decision 4)', () => {
  it('answers a repeated header id 200 duplicate without dispatching again', async () => {
    const h = await startReceiver();
    const body = messageBody('once');
    const first = await postSigned(h, '/', body, { headers: { 'x-relay-delivery-id': 'd-1' } });
    expect(first.text).toBe('{"ok":true}');
    const second = await postSigned(h, '/', body, { headers: { 'x-relay-delivery-id': 'd-1' } });
    expect(second.status).toBe(200);
    expect(second.text).toBe('{"ok":true,"duplicate":true}');
    expect(h.messages).toEqual([expect.objectContaining({ deliveryId: 'd-1' })]);
  });

  it('uses the body delivery_id and passes it to onMessage', async () => {
    const h = await startReceiver();
    const body = messageBody('in body', { delivery_id: 'd-body' });
    expect((await postSigned(h, '/', body)).json).toEqual({ ok: true });
    expect((await postSigned(h, '/', body)).json).toEqual({ ok: true, duplicate: true });
    expect(h.messages.map((m) => m.deliveryId)).toEqual(['d-body']);
  });

  it('dedupes interrupts too', async () => {
    const h = await startReceiver();
    const body = '{"type":"interrupt","session_key":"k","chat_id":"c","delivery_id":"i-1"}';
    expect((await postSigned(h, '/interrupt', body)).json).toEqual({ ok: true });
    expect((await postSigned(h, '/interrupt', body)).json).toEqual({ ok: true, duplicate: true });
    expect(h.interrupts).toHaveLength(1);
  });

  it('never consults the id of an unverified request', async () => {
    const h = await startReceiver();
    const body = messageBody('real', { delivery_id: 'd-2' });
    const forged = await postSigned(h, '/', body, { key: generateSecret() });
    expect(forged.status).toBe(401);
    const real = await postSigned(h, '/', body);
    expect(real.json).toEqual({ ok: true });
    expect(h.messages).toHaveLength(1);
  });

  it('forgets ids after dedupeSeconds', async () => {
    const h = await startReceiver({ dedupeSeconds: 600 });
    const headers = { 'x-relay-delivery-id': 'd-3' };
    await postSigned(h, '/', messageBody('a'), { headers });
    h.clock.ms += 599_000;
    expect((await postSigned(h, '/', messageBody('a'), { headers })).json).toEqual({
      ok: true,
      duplicate: true,
    });
    h.clock.ms += 2_000;
    expect((await postSigned(h, '/', messageBody('a'), { headers })).json).toEqual({ ok: true });
    expect(h.messages).toHaveLength(2);
  });

  it('bounds the remembered ids, forgetting the oldest first', async () => {
    const h = await startReceiver({ maxRememberedIds: 2 });
    for (const id of ['x1', 'x2', 'x3']) {
      await postSigned(h, '/', messageBody(id), { headers: { 'x-relay-delivery-id': id } });
    }
    expect(h.receiver.rememberedCount).toBe(2);
    const oldest = await postSigned(h, '/', messageBody('x1'), { headers: { 'x-relay-delivery-id': 'x1' } });
    expect(oldest.json).toEqual({ ok: true });
    const recent = await postSigned(h, '/', messageBody('x3'), { headers: { 'x-relay-delivery-id': 'x3' } });
    expect(recent.json).toEqual({ ok: true, duplicate: true });
    expect(h.messages.map((m) => m.event.text)).toEqual(['x1', 'x2', 'x3', 'x1']);
  });

  it('answers 503 to the same id while its first dispatch is still running', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    const h = await startReceiver({
      onMessage: async () => {
        calls++;
        await gate;
      },
    });
    const headers = { 'x-relay-delivery-id': 'd-busy' };
    const first = postSigned(h, '/', messageBody('busy'), { headers });
    await until(() => calls === 1);
    const concurrent = await postSigned(h, '/', messageBody('busy'), { headers });
    expect(concurrent.status).toBe(503);
    expect(concurrent.json).toEqual({ error: 'delivery in progress' });
    const other = postSigned(h, '/', messageBody('other'), { headers: { 'x-relay-delivery-id': 'd-other' } });
    await until(() => calls === 2);
    release();
    expect((await first).json).toEqual({ ok: true });
    expect((await other).json).toEqual({ ok: true });
    const after = await postSigned(h, '/', messageBody('busy'), { headers });
    expect(after.json).toEqual({ ok: true, duplicate: true });
    expect(calls).toBe(2);
  });

  it('answers 500 when onMessage throws, does not remember the id, and a retry dispatches', async () => {
    let fail = true;
    const seen: string[] = [];
    const h = await startReceiver({
      onMessage: async (event) => {
        seen.push(event.text);
        if (fail) throw new Error('agent offline');
      },
    });
    const headers = { 'x-relay-delivery-id': 'd-retry' };
    const failed = await postSigned(h, '/', messageBody('retry me'), { headers });
    expect(failed.status).toBe(500);
    expect(failed.text).toBe('{"error":"dispatch failed"}');
    fail = false;
    const retried = await postSigned(h, '/', messageBody('retry me'), { headers });
    expect(retried.status).toBe(200);
    expect(retried.json).toEqual({ ok: true });
    expect(seen).toEqual(['retry me', 'retry me']);
    expect(h.logs.join('')).toContain('agent offline');
  });
});

describe('lifecycle', () => {
  it('rejects start() with a clear error when the port is in use', async () => {
    const h = await startReceiver();
    const second = new InboundReceiver({
      host: '127.0.0.1',
      port: h.port,
      verifyKeys: () => [],
      onMessage: async () => {},
      onInterrupt: () => {},
      log: pino({ level: 'silent' }),
    });
    await expect(second.start()).rejects.toThrow(
      new RegExp(`could not bind 127\\.0\\.0\\.1:${h.port}: address already in use`),
    );
    // The first one is unaffected.
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });

  it('stops listening on stop()', async () => {
    const h = await startReceiver();
    await h.receiver.stop();
    await expect(fetch(`${h.url}/healthz`)).rejects.toThrow();
  });
});
