import { createServer } from 'node:http';
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTenant } from '../../src/connector/admin.js';
import { connectorConfigFromEnv } from '../../src/connector/config.js';
import { type RunningConnector, startConnector } from '../../src/connector/connector.js';
import {
  WEBCHAT_TOO_MANY_FROM_ADDRESS,
  WebChatAdapter,
} from '../../src/connector/platforms/webchat/adapter.js';
import { MALFORMED_FRAMES_CLOSE_REASON } from '../../src/connector/relay-server.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { buildSessionKey } from '../../src/protocol/index.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';
import { TestRelayClient } from '../support/test-gateway.js';
import { WebChatClient } from '../support/webchat-client.js';

/**
 * The connector is multi-tenant and public-facing: no tenant's gateway, and no anonymous client,
 * can crash it, reach another tenant's chats, or hold its resources. Every case here failed before
 * its fix (issue 13). A real `hermes connector serve` process on 127.0.0.1, two tenants.
 */

interface Enrolled {
  secret: string;
  gatewayId: string;
}

const dir = tempDir('connector-security');
const db = `${dir.path}/connector.db`;
let connector: RunningProcess & { url: string };
const tokens: Record<string, string> = {};

async function enroll(
  tenant: string,
  body: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    tenant,
    '--db',
    db,
  ]);
  const response = await fetch(`${connector.url}/relay/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens[tenant]}`, 'content-type': 'application/json' },
    body: JSON.stringify({ enrollmentToken: token, ...body }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function gatewayOf(tenant: string, gatewayId: string, routeKeys?: string[]): Promise<TestRelayClient> {
  const enrolled = await enroll(tenant, routeKeys ? { gatewayId, routeKeys } : { gatewayId });
  expect(enrolled.status).toBe(200);
  const creds = enrolled.json as unknown as Enrolled;
  const client = new TestRelayClient(`${connector.url.replace('http', 'ws')}/relay`, gatewayId, creds.secret);
  await client.connect();
  await client.hello();
  return client;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${connector.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) total += Number(line.split(' ').pop());
  return total;
}

function nested(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

beforeAll(async () => {
  for (const tenant of ['acme', 'beta', 'carol']) {
    tokens[tenant] = (
      await hermesJson<{ accessToken: string }>(['connector', 'tenant', 'create', tenant, '--db', db])
    ).accessToken;
  }
  connector = await startConnectorProcess(db);
});

afterAll(async () => {
  await connector?.stop();
  dir.remove();
});

describe('hostile input never crashes the connector (real process)', () => {
  it('survives a frame of 100,000 nested arrays, and the sender and other tenants keep working', async () => {
    const attacker = await gatewayOf('beta', 'gw-nest-beta');
    const bystander = await gatewayOf('acme', 'gw-nest-acme', ['nest-room']);
    const visitor = new WebChatClient(connector.url, 'nest-room', 'visitor-nest-01');
    await visitor.open();
    visitor.say('hi');
    await until(() => bystander.frames.find((f) => f.type === 'inbound'), 10_000, 'inbound to acme');
    const before = await metric('relay_malformed_frames_total');

    attacker.ws?.send(`${nested(100_000)}\n`);
    attacker.ws?.send(`{"type":"outbound","requestId":"deep","action":${nested(100_000)}}\n`);
    attacker.ws?.send(`{"type":"outbound","requestId":"deep50","action":${nested(50)}}\n`);

    await until(
      async () => (await metric('relay_malformed_frames_total')) >= before + 3 || undefined,
      10_000,
      'malformed frames counted',
    );
    // An outbound it could still read gets its one failed result.
    const result = await until(() =>
      attacker.frames.find((f) => f.type === 'outbound_result' && f.requestId === 'deep50'),
    );
    expect(result).toMatchObject({ result: { success: false } });
    expect(connector.child.exitCode).toBeNull();
    expect((await fetch(`${connector.url}/healthz`)).status).toBe(200);
    // Both sockets still answer ops (the attacker's is refused: the room is acme's).
    expect(await bystander.op({ op: 'send', chat_id: visitor.chatId, content: 'still here' })).toMatchObject({
      success: true,
    });
    await until(() => visitor.agentTexts().includes('still here') || undefined);
    expect(await attacker.op({ op: 'send', chat_id: 'nest-room', content: 'x' })).toMatchObject({
      success: false,
    });
    expect(connector.output()).not.toMatch(/RangeError|Maximum call stack/);
    visitor.close();
    attacker.close();
    bystander.close();
  });

  it('answers a deeply nested enroll body with a clear 400, and a deeply nested web-chat message with an error frame', async () => {
    const response = await fetch(`${connector.url}/relay/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.acme}`, 'content-type': 'application/json' },
      body: `{"enrollmentToken":"x","gatewayId":"gw-deep","routeKeys":${nested(20_000)}}`,
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: expect.stringMatching(/nested deeper than 64/) });

    const visitor = new WebChatClient(connector.url, 'deep-room', 'visitor-deep-01');
    await visitor.open();
    const socket = (visitor as unknown as { ws: WebSocket }).ws;
    // As deep as the web chat's 16 KiB frame limit allows.
    socket.send(`{"type":"message","text":${nested(8_000)}}`);
    const error = await until(() => visitor.frames.find((f) => f.type === 'error'));
    expect(error.message).toMatch(/nested deeper/);
    expect(socket.readyState).toBe(WebSocket.OPEN);
    visitor.close();
  });

  it('logs a flood of malformed frames once per window, not once per frame, and closes the socket', async () => {
    const flooder = await gatewayOf('beta', 'gw-flood');
    const before = (connector.output().match(/malformed frame skipped/g) ?? []).length;
    for (let i = 0; i < 500; i++) flooder.ws?.send(`{not json ${i}\n`);
    expect(await flooder.closed()).toBe(1008);
    expect(flooder.closeReason).toBe(MALFORMED_FRAMES_CLOSE_REASON);
    const after = (connector.output().match(/malformed frame skipped/g) ?? []).length;
    expect(after - before).toBeLessThanOrEqual(2);
    // The log line may reach stdout a moment after the close.
    await until(
      () => /too many malformed frames/.test(connector.output()) || undefined,
      10_000,
      'the log line',
    );
  });
});

describe('tenant isolation (real process)', () => {
  it("a tenant cannot write into another tenant's web-chat visitor, whatever route keys it asserts", async () => {
    const owner = await gatewayOf('acme', 'gw-owner', ['iso-lobby']);
    const visitor = new WebChatClient(connector.url, 'iso-lobby', 'visitor-iso-0001');
    await visitor.open();
    visitor.say('hello acme');
    await until(() => owner.frames.find((f) => f.type === 'inbound'), 10_000, 'inbound to acme');

    // Claiming the visitor's chat id as a route key is refused outright...
    const claim = await enroll('beta', { gatewayId: 'gw-thief', routeKeys: [visitor.chatId] });
    expect(claim.status).toBe(403);
    expect(claim.json.error).toMatch(/another tenant/);

    // ...and a key claimed before the chat existed does not make the chat writable once it is
    // delivered to its real owner.
    const later = new WebChatClient(connector.url, 'iso-lobby', 'visitor-iso-0002');
    const squatter = await gatewayOf('beta', 'gw-squatter', [later.chatId]);
    await later.open();
    later.say('hello again');
    await until(
      () => owner.frames.filter((f) => f.type === 'inbound').length >= 2 || undefined,
      10_000,
      'second inbound to acme',
    );
    for (const chat of [visitor.chatId, later.chatId]) {
      expect(await squatter.op({ op: 'send', chat_id: chat, content: 'pwned' })).toMatchObject({
        success: false,
      });
    }
    const edit = await squatter.op({
      op: 'edit',
      chat_id: later.chatId,
      message_id: 'm-1',
      content: 'pwned',
    });
    expect(edit.success).toBe(false);
    expect(visitor.agentTexts()).toEqual([]);
    expect(later.agentTexts()).toEqual([]);

    // The owner still can.
    expect(await owner.op({ op: 'send', chat_id: later.chatId, content: 'hi from acme' })).toMatchObject({
      success: true,
    });
    await until(() => later.agentTexts().includes('hi from acme') || undefined);
    for (const client of [owner, squatter]) client.close();
    visitor.close();
    later.close();
  });

  it("a self-asserted route key cannot carve a room out of the operator's '*' route", async () => {
    const added = await hermes([
      'connector',
      'route',
      'add',
      '--tenant',
      'acme',
      '--platform',
      'webchat',
      '--key',
      '*',
      '--db',
      db,
    ]);
    expect(added.code).toBe(0);
    const owner = await gatewayOf('acme', 'gw-default-owner');

    const carve = await enroll('carol', { gatewayId: 'gw-carver', routeKeys: ['support'] });
    expect(carve.status).toBe(403);
    expect(carve.json.error).toMatch(/only the operator can bind it/);

    const visitor = new WebChatClient(connector.url, 'support', 'visitor-support-1');
    await visitor.open();
    visitor.say('help');
    const inbound = await until(
      () => owner.frames.find((f) => f.type === 'inbound'),
      10_000,
      'inbound to acme',
    );
    expect(JSON.stringify(inbound)).toContain('help');
    // The operator may still bind the room to carol explicitly.
    const bound = await hermes([
      'connector',
      'route',
      'add',
      '--tenant',
      'carol',
      '--platform',
      'webchat',
      '--key',
      'support',
      '--db',
      db,
    ]);
    expect(bound.code).toBe(0);
    owner.close();
    visitor.close();
  });
});

describe('resources an anonymous client can hold (real process)', () => {
  it('caps web-chat sockets per client address', async () => {
    const sockets: WebSocket[] = [];
    const open = (i: number) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(
          `${connector.url.replace('http', 'ws')}/chat/ws?room=cap-room&visitor=visitor-cap-${String(i).padStart(4, '0')}`,
        );
        sockets.push(ws);
        ws.once('open', () => resolve(101));
        ws.once('unexpected-response', (_request, response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => {
            body += chunk.toString('utf8');
          });
          response.on('end', () =>
            resolve(body === WEBCHAT_TOO_MANY_FROM_ADDRESS ? (response.statusCode ?? 0) : -1),
          );
        });
        ws.once('error', () => undefined);
      });
    const results: number[] = [];
    for (let i = 0; i < 40; i++) results.push(await open(i));
    // 32 from this address at most (a socket of an earlier case may still be closing).
    const opened = results.filter((code) => code === 101).length;
    expect(opened).toBeGreaterThanOrEqual(28);
    expect(opened).toBeLessThanOrEqual(32);
    expect(results.slice(opened)).toEqual(Array(40 - opened).fill(429));
    // Closing sockets frees their places.
    for (const ws of sockets.slice(0, 5)) ws.close();
    await until(async () => ((await open(100)) === 101 ? true : undefined), 5_000, 'a freed place');
    for (const ws of sockets) ws.terminate();
  });

  it('keeps only the latest message and one notice for a room with no route', async () => {
    // The process above routes every room through acme's '*' route by now: a fresh connector.
    const store = SqliteStore.open(':memory:');
    const running = await startConnector({
      config: connectorConfigFromEnv({}, { port: 0, db: ':memory:' }),
      store,
      adapters: [
        new WebChatAdapter({ log: pino({ level: 'silent' }), rateLimit: { messages: 100, windowMs: 1000 } }),
      ],
      log: pino({ level: 'silent' }),
      version: 'test',
    });
    try {
      const visitor = new WebChatClient(running.url, 'nobody-home', 'visitor-nohome-1');
      await visitor.open();
      for (let i = 0; i < 20; i++) visitor.say(`message ${i} ${'x'.repeat(7_000)}`);
      await until(() => visitor.frames.filter((f) => f.type === 'failed').length >= 20 || undefined);
      visitor.close();
      const again = new WebChatClient(running.url, 'nobody-home', 'visitor-nohome-1');
      await again.open();
      const history = await until(() => again.frames.find((f) => f.type === 'history'));
      const messages = history.messages as { role: string; text: string }[];
      expect(messages.map((m) => m.role)).toEqual(['user', 'system']);
      expect(messages[0]?.text).toMatch(/^message 19 /);
      again.close();
    } finally {
      await running.stop();
    }
  });
});

describe('interrupts (real process)', () => {
  it('drops interrupts for sessions never delivered and coalesces repeats for a known one', async () => {
    // The gateway's endpoint is down, so whatever is queued for it stays in the outbox.
    const down = createServer();
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve));
    const { port } = down.address() as AddressInfo;
    await new Promise((resolve) => down.close(resolve));
    const enrolled = await enroll('acme', {
      gatewayId: 'gw-int',
      routeKeys: ['int-room'],
      gatewayEndpoint: `http://127.0.0.1:${port}/hermes`,
    });
    expect(enrolled.status).toBe(200);
    const creds = enrolled.json as unknown as Enrolled;
    const gateway = new TestRelayClient(
      `${connector.url.replace('http', 'ws')}/relay`,
      'gw-int',
      creds.secret,
    );
    await gateway.connect();
    await gateway.hello();

    const droppedBefore = await metric('relay_interrupts_dropped_total{reason="unknown_session"}');
    for (let i = 0; i < 200; i++) {
      gateway.send({ type: 'interrupt', session_key: `agent:main:webchat:dm:nobody-${i}`, reason: null });
    }
    await until(
      async () =>
        (await metric('relay_interrupts_dropped_total{reason="unknown_session"}')) >= droppedBefore + 200 ||
        undefined,
      10_000,
      'interrupts dropped',
    );

    const visitor = new WebChatClient(connector.url, 'int-room', 'visitor-int-0001');
    await visitor.open();
    visitor.say('a long turn');
    await until(() => visitor.frames.find((f) => f.type === 'ack'), 10_000, 'message queued');
    const sessionKey = buildSessionKey({ platform: 'webchat', chat_id: visitor.chatId, chat_type: 'dm' });
    const coalescedBefore = await metric('relay_interrupts_dropped_total{reason="coalesced"}');
    for (let i = 0; i < 50; i++) gateway.send({ type: 'interrupt', session_key: sessionKey, reason: null });
    await until(
      async () =>
        (await metric('relay_interrupts_dropped_total{reason="coalesced"}')) >= coalescedBefore + 49 ||
        undefined,
      10_000,
      'coalesced interrupts',
    );
    const outbox = await hermesJson<{ kind: string; sessionKey: string; tenantId: string }[]>([
      'connector',
      'deliveries',
      '--json',
      '--limit',
      '1000',
      '--db',
      db,
    ]);
    const interrupts = outbox.filter((row) => row.kind === 'interrupt');
    expect(interrupts.map((row) => row.sessionKey)).toEqual([sessionKey]);
    gateway.close();
    visitor.close();
  });
});

describe('HTTP hardening (in process, short limits)', () => {
  let running: RunningConnector;
  let tenantToken: string;

  beforeAll(async () => {
    const store = SqliteStore.open(':memory:');
    ({ accessToken: tenantToken } = await createTenant(store, 'acme'));
    running = await startConnector({
      config: connectorConfigFromEnv({}, { port: 0, db: ':memory:' }),
      store,
      adapters: [new WebChatAdapter({ log: pino({ level: 'silent' }) })],
      log: pino({ level: 'silent' }),
      version: 'test',
      timeouts: { requestTimeoutMs: 1_500, headersTimeoutMs: 1_500, checkIntervalMs: 250 },
    });
  });

  afterAll(async () => {
    await running?.stop();
  });

  /** Opens a raw request with a chunked body and trickles a byte every 300 ms. */
  function trickle(path: string, headers: string): { socket: Socket; response: Promise<string> } {
    const { port } = new URL(running.url);
    const socket = netConnect(Number(port), '127.0.0.1');
    let received = '';
    const response = new Promise<string>((resolve) => {
      socket.on('data', (chunk) => {
        received += chunk.toString('utf8');
      });
      socket.on('close', () => resolve(received));
      socket.on('error', () => undefined);
    });
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n${headers}transfer-encoding: chunked\r\n\r\n`,
    );
    const timer = setInterval(() => {
      if (socket.destroyed) return clearInterval(timer);
      socket.write('1\r\n \r\n');
    }, 300);
    socket.on('close', () => clearInterval(timer));
    return { socket, response };
  }

  it('cuts a body trickled to /relay/enroll by an authenticated caller', async () => {
    const started = Date.now();
    const { response } = trickle('/relay/enroll', `authorization: Bearer ${tenantToken}\r\n`);
    const text = await response;
    // Cut by the request limit (1.5 s here), long before a trickle of this pace would finish.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(text === '' || /^HTTP\/1\.1 408/.test(text)).toBe(true);
  });

  it('answers an unauthenticated enroll or provision 401 before reading its body', async () => {
    for (const path of ['/relay/enroll', '/relay/provision']) {
      const { socket, response } = trickle(path, '');
      const first = await until(
        () => ((socket as Socket & { bytesRead: number }).bytesRead > 0 ? true : undefined),
        5_000,
      );
      expect(first).toBe(true);
      socket.destroy();
      expect(await response).toMatch(/^HTTP\/1\.1 401/);
    }
  });

  it('sends security headers on pages, assets, API answers and errors', async () => {
    const check = (response: Response, page: boolean) => {
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('referrer-policy')).toBe('no-referrer');
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      if (!page) expect(response.headers.get('cache-control')).toBe('no-store');
    };
    check(await fetch(`${running.url}/`), false);
    check(await fetch(`${running.url}/healthz`), false);
    check(await fetch(`${running.url}/metrics`), false);
    check(await fetch(`${running.url}/no-such-thing`), false);
    check(await fetch(`${running.url}/relay/enroll`, { method: 'POST', body: '{}' }), false);
    const page = await fetch(`${running.url}/chat/demo`);
    check(page, true);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    check(await fetch(`${running.url}/chat/bad room!`), true);
    const asset = await fetch(`${running.url}/chat/assets/app.js`);
    expect(asset.headers.get('x-content-type-options')).toBe('nosniff');
    expect(asset.headers.get('cache-control')).toMatch(/max-age/);
  });
});
