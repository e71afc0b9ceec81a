import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSessionKey } from '../../src/protocol/index.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';
import { TestReceiver, TestRelayClient } from '../support/test-gateway.js';
import { WebChatClient } from '../support/webchat-client.js';

/**
 * A real `hermes connector serve` process on 127.0.0.1, configured through the real CLI, with a
 * minimal gateway built from the protocol core and a web-chat visitor.
 */

interface Enrolled {
  secret: string;
  deliveryKey: string;
  tenant: string;
  gatewayId: string;
}

const dir = tempDir('connector-e2e');
const db = `${dir.path}/connector.db`;
let connector: RunningProcess & { url: string };
let tenantToken: string;

async function enrollmentToken(): Promise<string> {
  return (
    await hermesJson<{ token: string }>([
      'connector',
      'enroll-token',
      'create',
      '--tenant',
      'acme',
      '--db',
      db,
    ])
  ).token;
}

async function enroll(
  body: Record<string, unknown>,
  bearer = tenantToken,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${connector.url}/relay/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  tenantToken = (
    await hermesJson<{ accessToken: string }>(['connector', 'tenant', 'create', 'acme', '--db', db])
  ).accessToken;
  connector = await startConnectorProcess(db);
});

afterAll(async () => {
  await connector?.stop();
  dir.remove();
});

describe('connector end to end (real process)', () => {
  it('enroll → dial → descriptor → web chat message → signed delivery → reply op → visible in the web chat', async () => {
    let deliveryKey = '';
    const receiver = new TestReceiver(() => [deliveryKey]);
    await receiver.start();
    const enrolled = await enroll({
      enrollmentToken: await enrollmentToken(),
      gatewayId: 'gw-e2e',
      gatewayEndpoint: receiver.url,
      routeKeys: ['lobby'],
    });
    expect(enrolled.status).toBe(200);
    const creds = enrolled.json as unknown as Enrolled;
    expect(creds.gatewayId).toBe('gw-e2e');
    expect(creds.secret).toMatch(/^[0-9a-f]{64}$/);
    deliveryKey = creds.deliveryKey;

    const gateway = new TestRelayClient(
      `${connector.url.replace('http', 'ws')}/relay`,
      creds.gatewayId,
      creds.secret,
    );
    await gateway.connect();
    const descriptor = await gateway.hello();
    expect(descriptor).toMatchObject({
      platform: 'webchat',
      contract_version: 1,
      len_unit: 'chars',
      supports_edit: true,
    });
    expect(descriptor.supported_ops).toEqual(expect.arrayContaining(['send', 'edit', 'typing']));

    const visitor = new WebChatClient(connector.url, 'lobby', 'visitor-0001');
    await visitor.open();
    visitor.say('hello relay');
    const delivery = await until(() => receiver.deliveries[0], 10_000, 'signed delivery');
    const event = delivery.body.event as { text: string; source: Record<string, string> };
    expect(event.text).toBe('hello relay');
    expect(event.source).toMatchObject({ platform: 'webchat', chat_id: visitor.chatId, chat_type: 'dm' });
    const sessionKey = buildSessionKey({ platform: 'webchat', chat_id: visitor.chatId, chat_type: 'dm' });
    expect(delivery.headers['x-relay-session-key']).toBe(sessionKey);
    expect(delivery.headers['x-relay-delivery-id']).toBe(delivery.body.delivery_id);
    expect(receiver.rejected).toBe(0);

    const sent = await gateway.op({
      op: 'send',
      chat_id: visitor.chatId,
      content: 'echo: hello relay',
      reply_to: null,
      metadata: {},
    });
    expect(sent.success).toBe(true);
    const edited = await gateway.op({
      op: 'edit',
      chat_id: visitor.chatId,
      message_id: sent.message_id as string,
      content: 'echo: hello relay!',
    });
    expect(edited.success).toBe(true);
    await until(
      () => visitor.agentTexts().includes('echo: hello relay!') || undefined,
      5_000,
      'reply visible in web chat',
    );

    // Another tenant's chat is out of reach, and unknown ops still get exactly one result.
    expect(
      await gateway.op({ op: 'send', chat_id: 'wc-elsewhere-visitor-9999', content: 'x' }),
    ).toMatchObject({ success: false });
    expect(await gateway.op({ op: 'teleport', chat_id: visitor.chatId })).toMatchObject({
      success: false,
      error: expect.stringContaining('unsupported op'),
    });

    visitor.close();
    gateway.close();
    await receiver.stop();
  });

  it('refuses bad, expired and revoked credentials with close 4401', async () => {
    const enrolled = await enroll({ enrollmentToken: await enrollmentToken(), gatewayId: 'gw-auth' });
    const creds = enrolled.json as unknown as Enrolled;
    const relayUrl = `${connector.url.replace('http', 'ws')}/relay`;

    const noToken = new TestRelayClient(relayUrl, creds.gatewayId, creds.secret);
    await noToken.connect({ token: null });
    expect(await noToken.closed()).toBe(4401);

    const wrongSecret = new TestRelayClient(relayUrl, creds.gatewayId, 'f'.repeat(64));
    await wrongSecret.connect();
    expect(await wrongSecret.closed()).toBe(4401);

    const expired = new TestRelayClient(relayUrl, creds.gatewayId, creds.secret);
    await expired.connect({ now: Math.floor(Date.now() / 1000) - 3600 });
    expect(await expired.closed()).toBe(4401);
    expect(expired.closeReason).toBe('expired');

    const live = new TestRelayClient(relayUrl, creds.gatewayId, creds.secret);
    await live.connect();
    await live.hello();
    const revoke = await hermes(['connector', 'gateway', 'revoke', creds.gatewayId, '--yes', '--db', db]);
    expect(revoke.code).toBe(0);
    expect(await live.closed()).toBe(4401);
    expect(live.closeReason).toBe('unauthorized'); // never 'expired': a current gateway must latch revocation

    const again = new TestRelayClient(relayUrl, creds.gatewayId, creds.secret);
    await again.connect();
    expect(await again.closed()).toBe(4401);
  });

  it('stops delivering to a revoked gateway’s endpoint: new rows are dead letters with the reason (#18)', async () => {
    let deliveryKey = '';
    const receiver = new TestReceiver(() => [deliveryKey]);
    await receiver.start();
    try {
      const enrolled = await enroll({
        enrollmentToken: await enrollmentToken(),
        gatewayId: 'gw-revoked-endpoint',
        gatewayEndpoint: receiver.url,
        routeKeys: ['revoked-room'],
      });
      expect(enrolled.status).toBe(200);
      const creds = enrolled.json as unknown as Enrolled;
      deliveryKey = creds.deliveryKey;
      const visitor = new WebChatClient(connector.url, 'revoked-room', 'visitor-0042');
      await visitor.open();
      visitor.say('before the revocation');
      await until(() => receiver.deliveries[0], 10_000, 'the first delivery');
      // Its socket closing (4401) says the connector has seen the revocation.
      const socket = new TestRelayClient(
        `${connector.url.replace('http', 'ws')}/relay`,
        creds.gatewayId,
        creds.secret,
      );
      await socket.connect();
      await socket.hello();
      const revoke = await hermes([
        'connector',
        'gateway',
        'revoke',
        'gw-revoked-endpoint',
        '--yes',
        '--db',
        db,
      ]);
      expect(revoke.code, revoke.stderr).toBe(0);
      expect(await socket.closed()).toBe(4401);
      visitor.say('after the revocation');
      const dead = await until(
        async () => {
          const listed = await hermesJson<{ reason: string; gatewayId: string | null }[]>([
            'connector',
            'deliveries',
            '--dead',
            '--db',
            db,
          ]);
          return listed.find((letter) => letter.gatewayId === 'gw-revoked-endpoint');
        },
        20_000,
        'the dead letter',
      );
      expect(dead.reason).toBe(
        'gateway gw-revoked-endpoint is revoked: enroll it again, or bind the route to another gateway',
      );
      expect(receiver.deliveries).toHaveLength(1);
      visitor.close();
    } finally {
      await receiver.stop();
    }
  });

  it('answers enroll errors with the reference status codes', async () => {
    const token = await enrollmentToken();
    expect((await enroll({ enrollmentToken: token, gatewayId: 'gw-x' }, 'hrt_not-a-real-token')).status).toBe(
      401,
    );
    expect((await enroll({ enrollmentToken: token, gatewayId: 'gw-x' })).status).toBe(200);
    const reused = await enroll({ enrollmentToken: token, gatewayId: 'gw-y' });
    expect(reused.status).toBe(403);
    expect(reused.json.error).toMatch(/already used/);
    expect((await enroll({ enrollmentToken: 'hre_unknown', gatewayId: 'gw-y' })).status).toBe(403);
    const malformed = await enroll({ gatewayId: 'has space' });
    expect(malformed.status).toBe(400);
    expect(typeof malformed.json.error).toBe('string');

    const expiredToken = (
      await hermesJson<{ token: string }>([
        'connector',
        'enroll-token',
        'create',
        '--tenant',
        'acme',
        '--ttl',
        '1s',
        '--db',
        db,
      ])
    ).token;
    // The connector runs in its own process with the real clock: let the 1 s token lapse.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await enroll({ enrollmentToken: expiredToken, gatewayId: 'gw-z' })).status).toBe(403);

    const notJson = await fetch(`${connector.url}/relay/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toEqual({ error: expect.any(String) });

    const oversize = await fetch(`${connector.url}/relay/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ enrollmentToken: 'x'.repeat(200_000), gatewayId: 'gw-big' }),
    });
    expect(oversize.status).toBe(413);
    const text = await oversize.text();
    expect(text).not.toMatch(/at .*\.js/);
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`${connector.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${connector.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${connector.url}/metrics`)).text();
    for (const name of [
      'relay_gateway_connections',
      'relay_deliveries_total',
      'relay_delivery_latency_seconds',
      'relay_outbox_depth',
      'relay_op_latency_seconds',
    ]) {
      expect(metrics).toContain(name);
    }
  });
});
