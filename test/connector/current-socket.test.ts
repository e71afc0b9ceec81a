import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintUpgradeToken } from '../../src/auth/index.js';
import { checkFetchTarget, isNonPublicAddress } from '../../src/common/ssrf.js';
import { until } from '../support/poll.js';
import { hermesJson, type RunningProcess, startConnectorProcess, tempDir } from '../support/processes.js';
import { TestRelayClient } from '../support/test-gateway.js';
import { WebChatClient } from '../support/webchat-client.js';

/**
 * The connector's socket plane for current-generation gateways (current §4.3, §9), through a real
 * connector process: several identities per socket, tagged outbound frames, going idle, the wake
 * poke and the replay of what arrived meanwhile.
 */

const dir = tempDir('current-socket');
const db = `${dir.path}/connector.db`;
let connector: RunningProcess & { url: string };
let tenantToken: string;
let wakeServer: Server;
let wakeUrl: string;
const wakes: { method: string; body: string; headers: Record<string, unknown> }[] = [];

async function provision(gatewayId: string, extra: Record<string, unknown> = {}) {
  const response = await fetch(`${connector.url}/relay/provision`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ gatewayId, platform: 'webchat', ...extra }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as { secret: string; gatewayId: string };
}

const relayUrl = () => `${connector.url.replace('http', 'ws')}/relay`;

beforeAll(async () => {
  wakeServer = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on('end', () => {
      wakes.push({ method: request.method ?? '', body, headers: request.headers });
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => wakeServer.listen(0, '127.0.0.1', resolve));
  wakeUrl = `http://127.0.0.1:${(wakeServer.address() as AddressInfo).port}/poke`;
  tenantToken = (
    await hermesJson<{ accessToken: string }>(['connector', 'tenant', 'create', 'current', '--db', db])
  ).accessToken;
  // The wake target is this test's own server on 127.0.0.1, which the SSRF rule refuses by default.
  connector = await startConnectorProcess(db, { RELAY_WAKE_ALLOW_PRIVATE: '1' });
});

afterAll(async () => {
  await connector?.stop();
  await new Promise<void>((resolve) => wakeServer.close(() => resolve()));
  dir.remove();
});

describe('identities on one socket (current §4.3)', () => {
  it('answers each hello with its own full descriptor, in hello order', async () => {
    const creds = await provision('gw-ids');
    const gateway = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await gateway.connect();
    gateway.send({ type: 'hello', platform: 'webchat', botId: 'web-1' });
    gateway.send({ type: 'hello', platform: 'discord', botId: 'app-1' });
    const descriptors = await until(
      () => {
        const found = gateway.frames.filter((f) => f.type === 'descriptor');
        return found.length >= 2 ? found : undefined;
      },
      10_000,
      'two descriptors',
    );
    for (const frame of descriptors) {
      if (frame.type !== 'descriptor') continue;
      expect(frame.descriptor.supported_ops).toEqual(expect.arrayContaining(['send', 'edit', 'typing']));
    }
    expect(descriptors[0]).toMatchObject({ descriptor: { platform: 'webchat' } });

    // A frame tagged with an identity this socket never said hello for is a structured failure.
    const requestId = 'r-wrong-tag';
    gateway.send({
      type: 'outbound',
      requestId,
      action: { op: 'send', chat_id: 'nowhere', content: 'x' },
      platform: 'telegram',
      botId: 'bot-9',
    });
    const refused = await until(
      () => gateway.frames.find((f) => f.type === 'outbound_result' && f.requestId === requestId),
      10_000,
      'result of the mistagged frame',
    );
    expect(refused).toMatchObject({
      result: { success: false, error: 'this connection said no hello for telegram bot bot-9' },
    });

    // A frame tagged with one of its identities is run (and refused only for the unknown chat).
    const result = await gateway.op({
      op: 'send',
      chat_id: 'nowhere',
      content: 'x',
      platform: 'discord',
      botId: 'app-1',
    });
    // The uniform egress refusal of current §7.1 (§14 case 40's text), with its code.
    expect(result).toEqual({
      success: false,
      code: 'egress_declined',
      error: 'discord egress declined: target is not an approved destination for this connection',
    });
    gateway.close();
  });
});

describe('scale to zero (current §9)', () => {
  it('goes idle on going_idle, pokes the wake URL once, and replays the buffered inbound in order on return', async () => {
    const creds = await provision('gw-idle', {
      routeKeys: [],
      instanceId: 'inst-idle',
      wakeUrl,
      displayName: 'Idle Bot',
    });
    await hermesJson<unknown>([
      'connector',
      'route',
      'add',
      '--tenant',
      'current',
      '--platform',
      'webchat',
      '--key',
      'idle-room',
      '--gateway',
      creds.gatewayId,
      '--db',
      db,
    ]);
    const first = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await first.connect();
    await first.hello('webchat');
    first.send({ type: 'going_idle' });
    await until(() => first.frames.find((f) => f.type === 'going_idle_ack'), 10_000, 'going_idle_ack');
    first.close();
    await first.closed();

    const visitor = new WebChatClient(connector.url, 'idle-room', 'visitor-idle1');
    await visitor.open();
    const texts = ['while-asleep-1', 'while-asleep-2', 'while-asleep-3'];
    for (const text of texts) visitor.say(text);
    await until(() => wakes.length >= 1, 15_000, 'the wake poke');
    expect(wakes[0]).toMatchObject({ method: 'GET', body: '' });
    expect(JSON.stringify(wakes[0]?.headers)).not.toMatch(/authorization|x-relay/i);

    const listed = async () =>
      (await hermesJson<Record<string, unknown>[]>(['connector', 'gateway', 'list', '--db', db])).find(
        (row) => row.id === creds.gatewayId,
      );
    expect(await listed()).toMatchObject({
      generation: 'socket',
      identities: ['webchat:'],
      idleSince: expect.any(String),
      buffered: texts.length,
    });

    // Back: the buffered messages arrive on the new socket, in order, each with a bufferId.
    const second = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await second.connect();
    await second.hello('webchat');
    const inbound = await until(
      () => {
        const found = second.frames.filter((f) => f.type === 'inbound');
        return found.length >= texts.length ? found : undefined;
      },
      20_000,
      'the buffered inbound',
    );
    expect(inbound.map((f) => (f.type === 'inbound' ? f.event.text : ''))).toEqual(texts);
    expect(inbound.every((f) => f.type === 'inbound' && typeof f.bufferId === 'string')).toBe(true);
    // One poke per cooldown, however many events arrived while idle.
    expect(wakes).toHaveLength(1);
    expect(await listed()).toMatchObject({ idleSince: null });
    second.close();
    visitor.close();
  });
});

describe('hello and going_idle in one message', () => {
  it('leaves the gateway idle: its first hello is made ready before the going_idle, never after', async () => {
    const creds = await provision('gw-idle-at-once', { routeKeys: [] });
    const client = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await client.connect();
    client.sendTogether({ type: 'hello', platform: 'webchat', botId: '' }, { type: 'going_idle' });
    await until(() => client.frames.find((f) => f.type === 'going_idle_ack'), 10_000, 'going_idle_ack');
    expect(client.frames.map((f) => f.type).sort()).toEqual(['descriptor', 'going_idle_ack']);
    // Read by another process once the socket is gone: the hello's ready work is long done.
    client.close();
    await client.closed();
    const row = (
      await hermesJson<Record<string, unknown>[]>(['connector', 'gateway', 'list', '--db', db])
    ).find((gateway) => gateway.id === creds.gatewayId);
    expect(row).toMatchObject({ idleSince: expect.any(String) });
  });
});

describe('the SSRF rule for addresses others name', () => {
  it('refuses loopback, private, link-local and mapped addresses, and names resolving to them', async () => {
    for (const address of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fe80::1',
      'fc00::1',
      '::ffff:127.0.0.1',
      'not-an-ip',
    ])
      expect(isNonPublicAddress(address), address).toBe(true);
    for (const address of ['93.184.216.34', '1.1.1.1', '2606:4700:4700::1111'])
      expect(isNonPublicAddress(address), address).toBe(false);
    // Never sent anywhere: a resolver stub answers for the name.
    const stub = (answers: string[]) => async () =>
      answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    expect(
      await checkFetchTarget('wake.example', {
        allowPrivate: false,
        resolve: stub(['93.184.216.34', '10.0.0.5']),
      }),
    ).toEqual({
      ok: false,
      reason: 'wake.example resolves to a non-public address',
      address: '10.0.0.5',
    });
    expect(
      await checkFetchTarget('wake.example', { allowPrivate: false, resolve: stub(['93.184.216.34']) }),
    ).toEqual({
      ok: true,
      address: '93.184.216.34',
      family: 4,
    });
    expect(
      await checkFetchTarget('wake.example', { allowPrivate: true, resolve: stub(['10.0.0.5']) }),
    ).toMatchObject({ ok: true });
  });
});

describe('the management plane (current §11)', () => {
  const post = (path: string, token: string | null, body: unknown) =>
    fetch(`${connector.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });

  it("takes a policy only with the gateway's own upgrade token, and validates it", async () => {
    const creds = await provision('gw-policy', { instanceId: 'inst-policy' });
    const policy = {
      platform: 'telegram',
      requireAddress: true,
      freeResponseScopes: ['c-help'],
      allowOtherBots: false,
    };
    expect((await post('/relay/policy', null, policy)).status).toBe(401);
    expect(
      (await post('/relay/policy', mintUpgradeToken(creds.gatewayId, 'x'.repeat(64)), policy)).status,
    ).toBe(401);
    const token = () => mintUpgradeToken(creds.gatewayId, creds.secret);
    const bad = await post('/relay/policy', token(), { ...policy, requireAddress: 'yes' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/requireAddress/);
    const good = await post('/relay/policy', token(), policy);
    expect(good.status).toBe(200);
    expect(await good.json()).toEqual({ ok: true });
  });

  it('deprovision revokes: the next upgrade is refused 4401 unauthorized; other manage routes are 501', async () => {
    const creds = await provision('gw-deprov');
    const token = () => mintUpgradeToken(creds.gatewayId, creds.secret);
    const link = await post('/manage/link', token(), {});
    expect(link.status).toBe(501);
    expect(await link.json()).toEqual({ error: 'not implemented: /manage/link' });
    const done = await post('/manage/deprovision', token(), {});
    expect(done.status).toBe(200);
    expect(await done.json()).toEqual({ ok: true, gatewayId: creds.gatewayId });
    const after = new TestRelayClient(relayUrl(), creds.gatewayId, creds.secret);
    await after.connect();
    expect(await after.closed()).toBe(4401);
    expect(after.closeReason).toBe('unauthorized');
    expect((await post('/manage/deprovision', token(), {})).status).toBe(401);
  });
});

describe('provision, current generation (§10.2)', () => {
  it('adds each further platform of a boot under one gateway without a new secret, and issues one again on the next boot', async () => {
    const first = await provision('gw-multi', {
      platform: 'webchat',
      botId: 'web-1',
      displayName: '  Ops Bot  ',
    });
    expect(first.secret).toEqual(expect.any(String));
    const second = await fetch(`${connector.url}/relay/provision`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ gatewayId: 'gw-multi', platform: 'telegram', botId: 'bot-9' }),
    });
    expect(second.status).toBe(200);
    const withheld = (await second.json()) as Record<string, unknown>;
    expect(withheld).toMatchObject({ secretIssued: false, gatewayId: 'gw-multi', routeKeys: [] });
    expect(withheld).not.toHaveProperty('secret');
    expect(withheld).not.toHaveProperty('deliveryKey');
    // The first platform's secret still opens the socket.
    const gateway = new TestRelayClient(relayUrl(), 'gw-multi', first.secret);
    await gateway.connect();
    await gateway.hello('webchat', 'web-1');
    gateway.close();
    const listed = (
      await hermesJson<Record<string, unknown>[]>(['connector', 'gateway', 'list', '--db', db])
    ).find((row) => row.id === 'gw-multi');
    expect(listed).toMatchObject({ identities: ['webchat:web-1', 'telegram:bot-9'] });
    // A reboot provisions its first platform again: a platform it already fronts gets a secret.
    const reboot = await provision('gw-multi', { platform: 'webchat', botId: 'web-1' });
    expect(reboot.secret).toEqual(expect.any(String));
    expect(reboot.secret).not.toBe(first.secret);
  });

  it('refuses a display name over 64 characters and a wake URL that is not http(s), with a clear error', async () => {
    const post = (extra: Record<string, unknown>) =>
      fetch(`${connector.url}/relay/provision`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ gatewayId: 'gw-bad-values', platform: 'webchat', ...extra }),
      });
    const long = await post({ displayName: 'x'.repeat(65) });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: string }).error).toMatch(/displayName.*64/);
    const wake = await post({ wakeUrl: 'file:///etc/passwd' });
    expect(wake.status).toBe(400);
    expect(((await wake.json()) as { error: string }).error).toMatch(/wakeUrl/);
  });
});
