import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateSecret } from '../../src/auth/index.js';
import { parsePrivateTargets, type Resolver, TargetGuard } from '../../src/common/ssrf.js';
import { addRoute, createTenant } from '../../src/connector/admin.js';
import { DeliveryEngine } from '../../src/connector/delivery-engine.js';
import { GatewayRegistry } from '../../src/connector/gateway-registry.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import { postBytes } from '../../src/connector/signed-post.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { until } from '../support/poll.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
} from '../support/processes.js';

/**
 * The SSRF rule for gateway endpoints (#18): checked when an endpoint is named (`route add`,
 * `/relay/enroll`, `/relay/provision`) and again on every new connection, which goes to the checked
 * address with the URL's own Host; redirects are answers, never followed. Everything here talks to
 * 127.0.0.1 only: names that "resolve" elsewhere are answered by a resolver stub and never dialled.
 */

const log = pino({ level: 'silent' });
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Hit {
  path: string;
  headers: IncomingHttpHeaders;
}

/** A local HTTP server recording what reaches it; `answer` decides the response. */
async function startServer(
  answer: (path: string) => { status: number; headers?: Record<string, string> } = () => ({ status: 200 }),
): Promise<{ url: string; port: number; hits: Hit[] }> {
  const hits: Hit[] = [];
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      hits.push({ path: request.url ?? '', headers: request.headers });
      const { status, headers } = answer(request.url ?? '');
      response.writeHead(status, headers).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, hits };
}

/** A resolver whose answer for `gw.test` the test changes; any other name does not exist. */
function switchable(initial: string): Resolver & { answer: string; calls: number } {
  const state = Object.assign(
    async (host: string) => {
      state.calls++;
      if (host !== 'gw.test') throw Object.assign(new Error(`ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return [{ address: state.answer, family: 4 }];
    },
    { answer: initial, calls: 0 },
  );
  return state;
}

const body = Buffer.from('{"probe":true}');

describe('the signed POST (connect time)', () => {
  it('connects to the checked address with the URL’s Host header, never resolving the name again', async () => {
    const server = await startServer();
    const resolver = switchable('127.0.0.1');
    const guard = new TargetGuard({ allowPrivate: parsePrivateTargets('127.0.0.1/32'), resolve: resolver });
    // `gw.test` exists only in the stub: a second, system resolution would fail the request.
    const outcome = await postBytes(`http://gw.test:${server.port}/hook`, body, {}, 5_000, guard);
    expect(outcome).toMatchObject({ kind: 'response', status: 200 });
    expect(server.hits).toEqual([expect.objectContaining({ path: '/hook' })]);
    expect(server.hits[0]?.headers.host).toBe(`gw.test:${server.port}`);
    expect(resolver.calls).toBe(1);
  });

  it('never hands a connection opened under one rule to a caller under another', async () => {
    const server = await startServer();
    const url = `http://gw.test:${server.port}/hook`;
    const lenient = new TargetGuard({
      allowPrivate: parsePrivateTargets('127.0.0.1/32'),
      resolve: switchable('127.0.0.1'),
    });
    expect(await postBytes(url, body, {}, 5_000, lenient)).toMatchObject({ kind: 'response', status: 200 });
    // Same host and port, a connection to it pooled: a stricter rule still resolves and refuses.
    const strict = new TargetGuard({ allowPrivate: 'none', resolve: switchable('127.0.0.1') });
    expect(await postBytes(url, body, {}, 5_000, strict)).toMatchObject({
      kind: 'error',
      error: expect.stringContaining('gw.test resolves to a non-public address (127.0.0.1)'),
    });
    expect(server.hits).toHaveLength(1);
  });

  it('refuses a loopback literal without the setting and an allow-list that does not name it', async () => {
    const server = await startServer();
    const target = `${server.url}/hook`;
    expect(await postBytes(target, body, {}, 5_000)).toEqual({
      kind: 'error',
      error:
        'endpoint refused: 127.0.0.1 is not a public address (private targets need RELAY_ALLOW_PRIVATE_TARGETS)',
      timedOut: false,
    });
    const tenOnly = new TargetGuard({ allowPrivate: parsePrivateTargets('10.0.0.0/8') });
    expect(await postBytes(target, body, {}, 5_000, tenOnly)).toMatchObject({
      kind: 'error',
      error: expect.stringContaining('127.0.0.1 is not a public address'),
    });
    const withCredentials = `http://user:hunter2@127.0.0.1:${server.port}/hook`;
    const allowAll = new TargetGuard({ allowPrivate: 'all' });
    const refused = await postBytes(withCredentials, body, {}, 5_000, allowAll);
    expect(refused).toEqual({
      kind: 'error',
      error: 'endpoint URL must not carry credentials (user:password@)',
      timedOut: false,
    });
    expect(JSON.stringify(refused)).not.toContain('hunter2');
    expect(server.hits).toEqual([]);
  });

  it('treats a 3xx as the answer: the redirect is not followed', async () => {
    const elsewhere = await startServer();
    const redirecting = await startServer(() => ({
      status: 302,
      headers: { location: `${elsewhere.url}/stolen` },
    }));
    const guard = new TargetGuard({ allowPrivate: parsePrivateTargets('127.0.0.1/32') });
    const outcome = await postBytes(`${redirecting.url}/hook`, body, {}, 5_000, guard);
    expect(outcome).toMatchObject({ kind: 'response', status: 302 });
    expect(redirecting.hits).toHaveLength(1);
    expect(elsewhere.hits).toEqual([]);
  });

  it('a name re-pointed to a private address after route add is refused at delivery and retried; delivered once it points back', async () => {
    const server = await startServer();
    const dir = tempDir('ssrf-engine');
    cleanups.push(() => dir.remove());
    const store = SqliteStore.open(join(dir.path, 'connector.db'));
    cleanups.push(() => store.close());
    const { tenant } = await createTenant(store, 'acme');
    await store.getOrCreateDeliveryKey(tenant.id, generateSecret());
    // At `route add` the name is public (the stub; nothing is sent there).
    const resolver = switchable('93.184.216.34');
    const endpoint = `http://gw.test:${server.port}/hook`;
    await addRoute(store, {
      tenantRef: tenant.id,
      platform: 'test',
      routeKey: 'room',
      endpoint,
      resolve: resolver,
    });
    // By the time of delivery it points into the private network.
    resolver.answer = '10.0.0.5';
    const engine = new DeliveryEngine({
      store,
      registry: new GatewayRegistry(),
      metrics: new ConnectorMetrics({ defaultMetrics: false }),
      log,
      instanceId: 'ssrf-a',
      backoffBaseMs: 20,
      backoffCapMs: 40,
      // Loopback allowed (where the test's server really is); 10.0.0.0/8 is not. Judged afresh each time.
      targets: new TargetGuard({
        allowPrivate: parsePrivateTargets('127.0.0.1/32'),
        resolve: resolver,
        ttlMs: 0,
      }),
    });
    await engine.start();
    cleanups.push(() => engine.stop(1_000));
    const outcome = await engine.ingest('test', {
      routeKey: 'room',
      event: { text: 'hello', source: { platform: 'test', chat_id: 'c1', chat_type: 'dm', user_id: 'u1' } },
    });
    expect(outcome.ok).toBe(true);
    const pending = await until(
      async () => (await store.listDeliveries(10)).find((row) => row.attempts >= 2),
      10_000,
      'retried refusals',
    );
    expect(pending.lastError).toBe(
      'endpoint refused: gw.test resolves to a non-public address (10.0.0.5) (private targets need RELAY_ALLOW_PRIVATE_TARGETS)',
    );
    expect(await store.listDeadLetters(10)).toEqual([]);
    expect(server.hits).toEqual([]);
    // DNS points back at an allowed address: the same row is delivered, once.
    resolver.answer = '127.0.0.1';
    await until(() => (server.hits.length === 1 ? true : undefined), 10_000, 'delivery after the flip back');
    await until(
      async () => ((await store.listDeliveries(10)).length === 0 ? true : undefined),
      10_000,
      'row done',
    );
    expect(server.hits[0]?.headers.host).toBe(`gw.test:${server.port}`);
  });
});

describe('when an endpoint is named (real processes)', () => {
  const dir = tempDir('ssrf-connector');
  const db = `${dir.path}/connector.db`;
  let connector: RunningProcess & { url: string };
  let tenantToken: string;
  // No private target for endpoints; the older wake-only setting is still honoured for wake URLs.
  const strict = { RELAY_ALLOW_PRIVATE_TARGETS: '', RELAY_WAKE_ALLOW_PRIVATE: '1' };

  beforeAll(async () => {
    tenantToken = (
      await hermesJson<{ accessToken: string }>(['connector', 'tenant', 'create', 'acme', '--db', db])
    ).accessToken;
    connector = await startConnectorProcess(db, strict);
  });
  afterAll(async () => {
    await connector?.stop();
    dir.remove();
  });

  const post = async (path: string, payload: Record<string, unknown>) => {
    const response = await fetch(`${connector.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  };
  const enrollmentToken = async () =>
    (
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

  it('refuses a 127.0.0.1 gatewayEndpoint at enroll with 400 {error}, consuming nothing', async () => {
    const token = await enrollmentToken();
    const refused = await post('/relay/enroll', {
      enrollmentToken: token,
      gatewayId: 'gw-private',
      gatewayEndpoint: 'http://127.0.0.1:9/hermes',
      routeKeys: ['room-private'],
    });
    expect(refused).toEqual({
      status: 400,
      json: {
        error:
          'gatewayEndpoint refused: 127.0.0.1 is not a public address; this connector reaches private addresses only when its operator allows them (RELAY_ALLOW_PRIVATE_TARGETS)',
      },
    });
    // Nothing written, the single-use token still unused: the same token enrolls without an endpoint.
    const routes = await hermesJson<{ routeKey: string }[]>(['connector', 'route', 'list', '--db', db]);
    expect(routes.map((route) => route.routeKey)).not.toContain('room-private');
    const accepted = await post('/relay/enroll', { enrollmentToken: token, gatewayId: 'gw-private' });
    expect(accepted.status).toBe(200);
  });

  it('refuses a private endpoint and credentials at provision; a wake URL follows the wake setting', async () => {
    const refused = await post('/relay/provision', {
      gatewayId: 'gw-prov',
      gatewayEndpoint: 'http://[::ffff:127.0.0.1]:9/hermes',
      routeKeys: ['room-prov'],
    });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatch(/^gatewayEndpoint refused: .* is not a public address; /);
    // A name is refused without telling the tenant what it resolves to (review L4: no DNS oracle).
    const named = await post('/relay/provision', {
      gatewayId: 'gw-prov',
      gatewayEndpoint: 'http://localhost:9/hermes',
    });
    expect(named.status).toBe(400);
    expect(named.json.error).toMatch(
      /^gatewayEndpoint refused: localhost resolves to a non-public address; /,
    );
    expect(named.json.error).not.toMatch(/127\.0\.0\.1|::1/);
    const withCredentials = await post('/relay/provision', {
      gatewayId: 'gw-prov',
      gatewayEndpoint: 'https://hook:s3cr3t-value@gw.example/hermes',
    });
    expect(withCredentials).toEqual({
      status: 400,
      json: { error: 'gatewayEndpoint must not carry credentials (user:password@)' },
    });
    // RELAY_WAKE_ALLOW_PRIVATE=1 still lets a wake URL on this machine through (wake only).
    const wake = await post('/relay/provision', {
      gatewayId: 'gw-prov',
      gatewayEndpoint: '',
      wakeUrl: 'http://127.0.0.1:9/poke',
    });
    expect(wake.status).toBe(200);
    const gateways = await hermesJson<{ id: string; endpoint: string }[]>([
      'connector',
      'gateway',
      'list',
      '--db',
      db,
    ]);
    expect(gateways.find((gateway) => gateway.id === 'gw-prov')?.endpoint).toBe('');
  });

  it('route add through the built CLI: refused without the setting, accepted when it names the address', async () => {
    const args = ['connector', 'route', 'add', '--tenant', 'acme', '--platform', 'webchat', '--db', db];
    const refused = await hermes([...args, '--key', 'r1', '--endpoint', 'http://127.0.0.1:9/hook'], strict);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([
      'hermes: --endpoint refused: 127.0.0.1 is not a public address; to deliver to private addresses set RELAY_ALLOW_PRIVATE_TARGETS (1, or addresses/CIDR blocks such as 10.0.0.0/8) here and on the connector',
    ]);
    const withCredentials = await hermes(
      [...args, '--key', 'r1', '--endpoint', 'http://ops:t0ps3cret@gw.example/hook'],
      strict,
    );
    expect(withCredentials.stderr).toBe('hermes: --endpoint must not carry credentials (user:password@)\n');
    const badSetting = await hermes([...args, '--key', 'r1', '--endpoint', 'http://127.0.0.1:9/hook'], {
      RELAY_ALLOW_PRIVATE_TARGETS: 'localhost',
    });
    expect(badSetting.code).toBe(1);
    expect(badSetting.stderr.trim().split('\n')).toHaveLength(1);
    expect(badSetting.stderr).toContain('RELAY_ALLOW_PRIVATE_TARGETS must be 1');
    // An allow-list that does not name the address refuses it too (the rule itself: test/common/ssrf).
    const otherBlock = await hermes([...args, '--key', 'r1', '--endpoint', 'http://127.0.0.1:9/hook'], {
      RELAY_ALLOW_PRIVATE_TARGETS: '10.0.0.0/8',
    });
    expect(otherBlock.code).toBe(1);
    let routes = await hermesJson<{ routeKey: string }[]>(['connector', 'route', 'list', '--db', db]);
    expect(routes.map((route) => route.routeKey)).not.toContain('r1');

    const allowed = await hermes([...args, '--key', 'r1', '--endpoint', 'http://127.0.0.1:9/hook'], {
      RELAY_ALLOW_PRIVATE_TARGETS: '127.0.0.1/32',
    });
    expect(allowed.code, allowed.stderr).toBe(0);
    routes = await hermesJson<{ routeKey: string }[]>(['connector', 'route', 'list', '--db', db]);
    expect(routes.map((route) => route.routeKey)).toContain('r1');
  }, 180_000);

  it('a connector with a malformed setting refuses to start, in one line naming it', async () => {
    const failed = await hermes(['connector', 'serve', '--port', '0', '--db', db], {
      RELAY_ALLOW_PRIVATE_TARGETS: '10.0.0.0/40',
    });
    // EX_CONFIG, like every other bad setting of `connector serve`.
    expect(failed.code).toBe(78);
    expect(failed.stderr.trim().split('\n')).toEqual([
      'hermes: RELAY_ALLOW_PRIVATE_TARGETS must be 1 (every private address) or a comma-separated list of IP addresses and CIDR blocks (e.g. 127.0.0.1/32,10.0.0.0/8): "10.0.0.0/40" is not an IP address or CIDR block',
    ]);
  });
});
