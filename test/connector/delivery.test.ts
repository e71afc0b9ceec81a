import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';
import { TestReceiver, TestRelayClient } from '../support/test-gateway.js';
import { WebChatClient } from '../support/webchat-client.js';

/** Durable delivery through a real connector process: retries, restarts, socket delivery, interrupts. */

interface Enrolled {
  secret: string;
  deliveryKey: string;
  gatewayId: string;
}

const dir = tempDir('connector-delivery');
const db = `${dir.path}/connector.db`;
let connector: RunningProcess & { url: string };
let tenantToken: string;

async function enroll(gatewayId: string, extra: Record<string, unknown> = {}): Promise<Enrolled> {
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'beta',
    '--db',
    db,
  ]);
  const response = await fetch(`${connector.url}/relay/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ enrollmentToken: token, gatewayId, ...extra }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Enrolled;
}

function relayUrl(): string {
  return `${connector.url.replace('http', 'ws')}/relay`;
}

beforeAll(async () => {
  tenantToken = (
    await hermesJson<{ accessToken: string }>(['connector', 'tenant', 'create', 'beta', '--db', db])
  ).accessToken;
  connector = await startConnectorProcess(db);
});

afterAll(async () => {
  await connector?.stop();
  dir.remove();
});

describe('durable delivery (real process)', () => {
  it('retries a 500 and delivers once, in per-session order', async () => {
    let key = '';
    const receiver = new TestReceiver(() => [key]);
    await receiver.start();
    key = (await enroll('gw-retry', { gatewayEndpoint: receiver.url, routeKeys: ['retry-room'] }))
      .deliveryKey;
    receiver.script.push(500);
    const visitor = new WebChatClient(connector.url, 'retry-room', 'visitor-retry1');
    await visitor.open();
    for (const text of ['one', 'two', 'three']) visitor.say(text);
    await until(() => (receiver.deliveries.length >= 3 ? true : undefined), 15_000, 'three deliveries');
    // A moment more, so a duplicate delivery (the defect this guards against) would have arrived.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const texts = receiver.deliveries.map((d) => (d.body.event as { text: string }).text);
    expect(texts).toEqual(['one', 'two', 'three']);
    expect(new Set(receiver.deliveries.map((d) => d.body.delivery_id)).size).toBe(3);
    expect(receiver.script).toEqual([]);
    const metrics = await (await fetch(`${connector.url}/metrics`)).text();
    expect(metrics).toMatch(/relay_deliveries_total\{outcome="retry",transport="http"\} [1-9]/);
    visitor.close();
    await receiver.stop();
  });

  it('dead-letters a 4xx at once and shows it in `deliveries --dead`', async () => {
    let key = '';
    const receiver = new TestReceiver(() => [key]);
    await receiver.start();
    key = (await enroll('gw-dead', { gatewayEndpoint: receiver.url, routeKeys: ['dead-room'] })).deliveryKey;
    receiver.script.push(422);
    const visitor = new WebChatClient(connector.url, 'dead-room', 'visitor-dead01');
    await visitor.open();
    visitor.say('doomed');
    const dead = await until(
      async () => {
        const rows = await hermesJson<{ id: string; reason: string }[]>([
          'connector',
          'deliveries',
          '--dead',
          '--db',
          db,
        ]);
        return rows.length > 0 ? rows : undefined;
      },
      10_000,
      'a dead letter',
    );
    expect(dead[0]?.reason).toMatch(/HTTP 422/);
    expect(receiver.deliveries).toEqual([]);
    visitor.close();
    await receiver.stop();
  });

  it('pushes inbound frames to an outbound-only gateway and redelivers what it did not ack', async () => {
    const creds = await enroll('gw-socket');
    await hermesJson([
      'connector',
      'route',
      'add',
      '--tenant',
      'beta',
      '--platform',
      'webchat',
      '--key',
      'sock-room',
      '--gateway',
      'gw-socket',
      '--db',
      db,
    ]);
    const first = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    first.autoAck = false;
    await first.connect();
    await first.hello();
    const visitor = new WebChatClient(connector.url, 'sock-room', 'visitor-sock01');
    await visitor.open();
    visitor.say('over the socket');
    const frame = await until(() => first.frames.find((f) => f.type === 'inbound'), 10_000, 'inbound frame');
    expect(frame).toMatchObject({ type: 'inbound', event: { text: 'over the socket' } });
    first.close();
    await first.closed();

    const second = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await second.connect();
    await second.hello();
    const again = await until(
      () => second.frames.find((f) => f.type === 'inbound'),
      15_000,
      'redelivered inbound frame',
    );
    expect(again).toMatchObject({ event: { text: 'over the socket' } });
    if (frame.type === 'inbound' && again.type === 'inbound') expect(again.bufferId).toBe(frame.bufferId);
    second.close();
    visitor.close();
  });

  it('routes a gateway interrupt to the endpoint running the session, signed, with chat_id', async () => {
    let key = '';
    const receiver = new TestReceiver(() => [key]);
    await receiver.start();
    const creds = await enroll('gw-stop', { gatewayEndpoint: receiver.url, routeKeys: ['stop-room'] });
    key = creds.deliveryKey;
    const visitor = new WebChatClient(connector.url, 'stop-room', 'visitor-stop01');
    await visitor.open();
    visitor.say('long task');
    const message = await until(() => receiver.deliveries[0], 10_000, 'message delivery');
    const sessionKey = message.headers['x-relay-session-key'] as string;
    const gateway = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await gateway.connect();
    await gateway.hello();
    gateway.send({ type: 'interrupt', session_key: sessionKey, reason: null });
    const interrupt = await until(
      () => receiver.deliveries.find((d) => d.path === '/interrupt'),
      10_000,
      'interrupt delivery',
    );
    expect(interrupt.body).toMatchObject({
      type: 'interrupt',
      session_key: sessionKey,
      chat_id: visitor.chatId,
    });
    gateway.close();
    visitor.close();
    await receiver.stop();
  });

  it("routes a June gateway's /stop that names the web-chat session `relay` (as the reference keys it) to its endpoint", async () => {
    let key = '';
    const receiver = new TestReceiver(() => [key]);
    await receiver.start();
    const creds = await enroll('gw-stop-june', { gatewayEndpoint: receiver.url, routeKeys: ['june-room'] });
    key = creds.deliveryKey;
    const visitor = new WebChatClient(connector.url, 'june-room', 'visitor-june01');
    await visitor.open();
    visitor.say('long task');
    const message = await until(() => receiver.deliveries[0], 10_000, 'message delivery');
    const ours = message.headers['x-relay-session-key'] as string;
    expect(ours).toBe(`agent:main:webchat:dm:${visitor.chatId}`);
    // The reference gateway does not know `webchat`: its platform enum maps it to `relay`.
    const theirs = ours.replace(':webchat:', ':relay:');
    const gateway = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await gateway.connect();
    await gateway.hello();
    gateway.send({ type: 'interrupt', session_key: theirs, reason: null });
    const interrupt = await until(
      () => receiver.deliveries.find((d) => d.path === '/interrupt'),
      10_000,
      'interrupt delivery',
    );
    expect(interrupt.body).toMatchObject({ type: 'interrupt', session_key: theirs, chat_id: visitor.chatId });
    gateway.close();
    visitor.close();
    await receiver.stop();
  });

  it("sends a current gateway's /stop for a `relay`-keyed web-chat session back on its socket as interrupt_inbound", async () => {
    const creds = await enroll('gw-stop-current', { routeKeys: ['current-room'] });
    const gateway = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await gateway.connect();
    await gateway.hello();
    const visitor = new WebChatClient(connector.url, 'current-room', 'visitor-cur01');
    await visitor.open();
    visitor.say('long task');
    const inbound = await until(
      () => gateway.frames.find((f) => f.type === 'inbound'),
      10_000,
      'inbound frame',
    );
    if (inbound.type === 'inbound' && inbound.bufferId !== undefined)
      gateway.send({ type: 'inbound_ack', bufferId: inbound.bufferId });
    const theirs = `agent:main:relay:dm:${visitor.chatId}`;
    gateway.send({ type: 'interrupt', session_key: theirs, reason: null });
    const frame = await until(
      () => gateway.frames.find((f) => f.type === 'interrupt_inbound'),
      10_000,
      'interrupt_inbound frame',
    );
    expect(frame).toEqual({ type: 'interrupt_inbound', session_key: theirs, chat_id: visitor.chatId });
    gateway.close();
    visitor.close();
  });

  it('keeps queued deliveries across a connector SIGKILL and delivers all of them after restart', async () => {
    let key = '';
    const receiver = new TestReceiver(() => [key]);
    const endpoint = await receiver.start();
    const port = Number(new URL(endpoint).port);
    await receiver.stop();
    key = (await enroll('gw-crash', { gatewayEndpoint: endpoint, routeKeys: ['crash-room'] })).deliveryKey;

    const visitor = new WebChatClient(connector.url, 'crash-room', 'visitor-crash1');
    await visitor.open();
    const texts = ['a', 'b', 'c', 'd', 'e'];
    for (const text of texts) visitor.say(text);
    // Every message is acknowledged to the visitor only once it is in the outbox.
    await until(
      () => (visitor.frames.filter((f) => f.type === 'ack').length === texts.length ? true : undefined),
      10_000,
      'acks',
    );
    visitor.close();
    await connector.stop('SIGKILL');

    await receiver.start(port);
    connector = await startConnectorProcess(db);
    await until(
      () => (receiver.deliveries.length >= texts.length ? true : undefined),
      20_000,
      'deliveries after restart',
    );
    // A moment more, so a duplicate delivery would have arrived.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.deliveries.map((d) => (d.body.event as { text: string }).text)).toEqual(texts);
    await receiver.stop();
  });
});
