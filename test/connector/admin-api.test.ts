import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  listGatewaySummaries,
  livePresence,
  PRESENCE_TTL_MS,
  PresenceRecorder,
  storePresence,
} from '../../src/connector/admin.js';
import { AdminTokenError, adminTokenFromEnv } from '../../src/connector/admin-console/auth.js';
import { PostgresStore } from '../../src/connector/store/postgres.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import type { RelayStore } from '../../src/connector/store/types.js';
import { postgresUnavailable, startPostgres } from '../support/postgres.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';
import { TestRelayClient } from '../support/test-gateway.js';

/**
 * The admin API (`/admin/api/…`, docs/admin-api.md) on a real `hermes connector serve` process on
 * 127.0.0.1: off without a token, the bearer check and its failure limit, every route, revoke and
 * discard behind a confirmation, the audit of every action, the event stream, and the same JSON as
 * the CLI's `--json` on the same store.
 */

const dir = tempDir('admin-api');
const db = join(dir.path, 'connector.db');
const tokenFile = join(dir.path, 'admin-token');
const TOKEN = randomBytes(32).toString('base64url');
let connector: RunningProcess & { url: string };
let tenantToken: string;
let acmeId: string;

const api = async (
  path: string,
  init: { method?: string; body?: unknown; raw?: string; token?: string | null } = {},
): Promise<{ status: number; json: unknown; headers: Headers }> => {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? TOKEN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (init.raw !== undefined || init.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = init.raw ?? JSON.stringify(init.body);
  }
  const response = await fetch(`${connector.url}/admin/api${path}`, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    body,
  });
  return { status: response.status, json: await response.json(), headers: response.headers };
};

/** A dead letter written as the delivery engine leaves one (the row, straight into the table). */
function deadLetter(id: string, tenantId: string): void {
  const raw = new Database(db);
  try {
    raw
      .prepare(
        `INSERT INTO dead_letters (id, seq, tenant_id, gateway_id, session_key, kind, body, endpoint, created_at,
                                   attempts, reason, last_status, dead_at)
         VALUES (?, 1, ?, NULL, ?, 'message', '{}', 'http://127.0.0.1:1/relay', ?, 3, 'HTTP 404', 404, ?)`,
      )
      .run(id, tenantId, `s-${id}`, Date.now(), Date.now());
  } finally {
    raw.close();
  }
}

async function enrollGateway(gatewayId: string): Promise<{ gatewayId: string; secret: string }> {
  const minted = await api(`/tenants/acme/enroll-tokens`, { body: {} });
  const response = await fetch(`${connector.url}/relay/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ enrollmentToken: (minted.json as { token: string }).token, gatewayId }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { gatewayId: string; secret: string };
}

const relayUrl = () => `${connector.url.replace('http', 'ws')}/relay`;

beforeAll(async () => {
  const created = await hermesJson<{ id: string; accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'acme',
    '--db',
    db,
  ]);
  tenantToken = created.accessToken;
  acmeId = created.id;
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  connector = await startConnectorProcess(db, {
    RELAY_ADMIN_TOKEN: '',
    RELAY_ADMIN_TOKEN_FILE: tokenFile,
    RELAY_LOG_LEVEL: 'info',
  });
});

afterAll(async () => {
  await connector?.stop();
  dir.remove();
});

describe('the admin token setting', () => {
  it('is read from RELAY_ADMIN_TOKEN or a file; weak, doubled, empty or unreadable settings are refused', () => {
    expect(adminTokenFromEnv({})).toBeUndefined();
    expect(adminTokenFromEnv({ RELAY_ADMIN_TOKEN: TOKEN })).toEqual({
      token: TOKEN,
      source: 'RELAY_ADMIN_TOKEN',
    });
    expect(adminTokenFromEnv({ RELAY_ADMIN_TOKEN_FILE: tokenFile })).toEqual({
      token: TOKEN,
      source: 'RELAY_ADMIN_TOKEN_FILE',
      warning: undefined,
    });
    const shared = join(dir.path, 'shared-token');
    writeFileSync(shared, TOKEN);
    chmodSync(shared, 0o644);
    expect(adminTokenFromEnv({ RELAY_ADMIN_TOKEN_FILE: shared })?.warning).toBe(
      `RELAY_ADMIN_TOKEN_FILE ${shared} can be read by other users (mode 0644): chmod 600 it`,
    );
    const refusals: [NodeJS.ProcessEnv, string][] = [
      [
        { RELAY_ADMIN_TOKEN: 'hunter2' },
        'RELAY_ADMIN_TOKEN is too weak: the token has 7 characters; at least 43 required (make one with: openssl rand -base64 32)',
      ],
      [
        { RELAY_ADMIN_TOKEN: TOKEN, RELAY_ADMIN_TOKEN_FILE: tokenFile },
        'set RELAY_ADMIN_TOKEN or RELAY_ADMIN_TOKEN_FILE, not both',
      ],
      [
        { RELAY_ADMIN_TOKEN_FILE: join(dir.path, 'missing') },
        `RELAY_ADMIN_TOKEN_FILE ${join(dir.path, 'missing')} cannot be read`,
      ],
    ];
    for (const [env, message] of refusals) {
      expect(() => adminTokenFromEnv(env)).toThrow(AdminTokenError);
      expect(() => adminTokenFromEnv(env)).toThrow(message);
    }
    const empty = join(dir.path, 'empty-token');
    writeFileSync(empty, '\n', { mode: 0o600 });
    expect(() => adminTokenFromEnv({ RELAY_ADMIN_TOKEN_FILE: empty })).toThrow(
      `RELAY_ADMIN_TOKEN_FILE ${empty} is empty`,
    );
  });

  it('a weak token stops connector serve with 78 and one line naming the key', async () => {
    const result = await hermes(['connector', 'serve', '--port', '0', '--db', db], {
      RELAY_ADMIN_TOKEN: 'password123',
    });
    expect(result.code).toBe(78);
    expect(result.stderr).toBe(
      'hermes: RELAY_ADMIN_TOKEN is too weak: the token has 11 characters; at least 43 required (make one with: openssl rand -base64 32)\n',
    );
  });
});

/** The two store methods the console added, on both stores. */
async function storeMethods(store: RelayStore): Promise<void> {
  for (const id of ['d1', 'd2']) {
    await store.enqueueDelivery({
      id,
      tenantId: id === 'd1' ? 't_a' : 't_b',
      gatewayId: null,
      sessionKey: id,
      kind: 'message',
      body: '{"x":1}',
      endpoint: '',
      createdAt: 1,
    });
  }
  await store.claimDueDeliveries('c', 10, 10, 1000);
  expect(await store.deadLetterDelivery('d1', 'c', 'HTTP 404', 404, 20)).toBe(true);
  expect(await store.deadLetterDelivery('d2', 'c', 'HTTP 410', 410, 21)).toBe(true);
  const discarded = await store.discardDeadLetter('d1');
  expect(discarded).toMatchObject({
    id: 'd1',
    tenantId: 't_a',
    reason: 'HTTP 404',
    body: '{"x":1}',
    deadAt: 20,
  });
  expect(await store.discardDeadLetter('d1')).toBeNull();
  expect((await store.listDeadLetters(10)).map((d) => d.id)).toEqual(['d2']);
  expect(await store.outboxDepth()).toBe(0);

  await store.audit({ at: 1, event: 'a', tenantId: 't_a' });
  await store.audit({ at: 2, event: 'b', tenantId: 't_b' });
  await store.audit({ at: 3, event: 'c', tenantId: 't_a', detail: { actor: 'cli' } });
  await store.audit({ at: 4, event: 'd' });
  expect((await store.listAudit(10, { tenantId: 't_a' })).map((e) => e.event)).toEqual(['c', 'a']);
  expect((await store.listAudit(1, { tenantId: 't_a' })).map((e) => e.event)).toEqual(['c']);
  expect((await store.listAudit(10)).map((e) => e.event)).toEqual(['d', 'c', 'b', 'a']);
  expect(await store.listAudit(10, { tenantId: 't_none' })).toEqual([]);
}

describe('store: discardDeadLetter and listAudit by tenant', () => {
  it('SqliteStore', async () => {
    const store = SqliteStore.open(':memory:');
    try {
      await storeMethods(store);
    } finally {
      await store.close();
    }
  });

  it.skipIf(postgresUnavailable !== null)('PostgresStore', async () => {
    const server = await startPostgres();
    try {
      const store = await PostgresStore.open(server.url, { maxConnections: 2 });
      try {
        await storeMethods(store);
      } finally {
        await store.close();
      }
    } finally {
      await server.stop();
    }
  });
});

describe('gateway presence (the connected rule)', () => {
  it('instances record their sockets in the shared store; readers see them until they go or expire', async () => {
    const store = SqliteStore.open(':memory:');
    let clock = 1_000_000;
    const now = () => clock;
    const onError = (error: unknown) => {
      throw error;
    };
    const here = { a: ['gw1'], b: ['gw1', 'gw2'] };
    const a = new PresenceRecorder({ store, instanceId: 'A', connectedHere: () => here.a, onError, now });
    const b = new PresenceRecorder({ store, instanceId: 'B', connectedHere: () => here.b, onError, now });
    const connected = async (presence = storePresence(store)) =>
      [...(await presence.connected(['gw1', 'gw2', 'gw3'], clock))].sort();
    try {
      await a.refresh();
      await b.refresh();
      expect(await connected()).toEqual(['gw1', 'gw2']);
      // B's sockets close: its records go at its next refresh; A's next refresh keeps gw1 known.
      here.b = [];
      await b.refresh();
      await a.refresh();
      expect(await connected()).toEqual(['gw1']);
      // On A itself its registry decides for its own sockets (a record of its own may be stale).
      expect(await connected(livePresence(store, 'A', () => false))).toEqual([]);
      expect(await connected(livePresence(store, 'B', () => false))).toEqual(['gw1']);
      expect(await connected(livePresence(store, 'B', (id) => id === 'gw3'))).toEqual(['gw1', 'gw3']);
      // An instance that died without stopping: its records expire.
      clock += PRESENCE_TTL_MS + 1;
      expect(await connected()).toEqual([]);
      await a.refresh();
      expect(await connected()).toEqual(['gw1']);
      await a.stop();
      expect(await connected()).toEqual([]);
    } finally {
      await b.stop();
      await store.close();
    }
  });
});

describe('gateway presence at scale', () => {
  it('writes many records a few hundred to a write, serving the event loop between two', async () => {
    const store = SqliteStore.open(':memory:');
    const ids = Array.from({ length: 1_200 }, (_, i) => `gw${i}`);
    let written = 0;
    const writes: number[] = [];
    const deletes: number[] = [];
    const counting = new Proxy(store, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if (name === 'putPlatformState') throw new Error('one write per gateway');
        if (name === 'putPlatformStates')
          return async (...args: Parameters<SqliteStore['putPlatformStates']>) => {
            writes.push(args[0].length);
            await target.putPlatformStates(...args);
            written += args[0].length;
          };
        if (name === 'deletePlatformStatesHolding')
          return (...args: Parameters<SqliteStore['deletePlatformStatesHolding']>) => {
            deletes.push(args[0].length);
            return target.deletePlatformStatesHolding(...args);
          };
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const recorder = new PresenceRecorder({
      store: counting,
      instanceId: 'A',
      connectedHere: () => ids,
      onError: (error) => {
        throw error;
      },
    });
    const other = new PresenceRecorder({
      store,
      instanceId: 'B',
      connectedHere: () => ['gw7'],
      onError: (error) => {
        throw error;
      },
    });
    try {
      // Before: one awaited write per gateway, all in one stretch of the event loop (0.6 s at
      // 19,000 gateways), so a callback queued first ran only after the last write.
      let writtenWhenServed: number | undefined;
      setImmediate(() => {
        writtenWhenServed = written;
      });
      await recorder.refresh();
      expect(writes).toEqual([500, 500, 200]);
      expect(writtenWhenServed).toBeLessThan(ids.length);
      expect((await storePresence(store).connected(ids, Date.now())).size).toBe(ids.length);
      // Gone sockets: their records go, in stretches too; a record another instance has taken
      // over since stays.
      await other.refresh();
      ids.length = 0;
      await recorder.refresh();
      expect(deletes).toEqual([500, 500, 200]);
      expect([...(await storePresence(store).connected(['gw0', 'gw7', 'gw1199'], Date.now()))]).toEqual([
        'gw7',
      ]);
    } finally {
      await other.stop();
      await recorder.stop();
      await store.close();
    }
  });
});

describe('listGatewaySummaries: a constant number of store queries', () => {
  /** The store with every method call counted by name. */
  function counted(store: RelayStore): { store: RelayStore; calls: Map<string, number> } {
    const calls = new Map<string, number>();
    const proxy = new Proxy(store, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.set(String(name), (calls.get(String(name)) ?? 0) + 1);
          return value.apply(target, args);
        };
      },
    });
    return { store: proxy, calls };
  }

  async function seeded(gateways: number): Promise<{ store: SqliteStore; tenants: string[] }> {
    const store = SqliteStore.open(':memory:');
    const tenants = [(await store.createTenant('acme', 0)).id, (await store.createTenant('globex', 0)).id];
    for (let i = 0; i < gateways; i++) {
      const id = `gw_${String(i).padStart(3, '0')}`;
      await store.putGatewaySecret({
        id,
        tenantId: tenants[i % 2] as string,
        secret: 's',
        platform: 'telegram',
        botId: `b${i}`,
        endpoint: undefined,
        rotationWindowMs: 1000,
        now: 0,
      });
      if (i % 3 === 0) await store.addGatewayIdentity(id, 'discord', `d${i}`, 1);
      if (i % 2 === 0) await store.putPlatformState(`admin:presence:${id}`, 'A', 10_000);
    }
    await store.revokeGateway('gw_000', 5);
    return { store, tenants };
  }

  it('asks the store the same questions for 8 gateways as for 40, and answers each gateway right', async () => {
    const counts: Record<string, number>[] = [];
    for (const n of [8, 40]) {
      const { store, tenants } = await seeded(n);
      try {
        const { store: spy, calls } = counted(store);
        const rows = await listGatewaySummaries(spy, undefined, 1_000);
        expect(rows).toHaveLength(n);
        expect(rows.find((g) => g.id === 'gw_003')).toMatchObject({
          tenant: tenants[1],
          identities: ['telegram:b3', 'discord:d3'],
          connected: false,
        });
        expect(rows.find((g) => g.id === 'gw_002')).toMatchObject({
          identities: ['telegram:b2'],
          connected: true,
        });
        // Revoked: never connected, though its record is there.
        expect(rows.find((g) => g.id === 'gw_000')).toMatchObject({ revoked: true, connected: false });
        // One tenant: only its gateways, with their identities and presence.
        const own = await listGatewaySummaries(store, tenants[0], 1_000);
        expect(own.map((g) => g.tenant)).toEqual(Array(n / 2).fill(tenants[0]));
        expect(own.find((g) => g.id === 'gw_006')).toMatchObject({
          identities: ['telegram:b6', 'discord:d6'],
          connected: true,
        });
        // Expired records are not presence.
        expect((await listGatewaySummaries(store, undefined, 10_000)).some((g) => g.connected)).toBe(false);
        counts.push(Object.fromEntries(calls));
      } finally {
        await store.close();
      }
    }
    expect(counts[1]).toEqual(counts[0]);
    expect(counts[0]).not.toHaveProperty('listGatewayIdentities');
    expect(counts[0]).not.toHaveProperty('getPlatformState');
  });
});

describe('the service layer in the library (hermes-relay/connector)', () => {
  it('exports every admin function and error of admin.ts that embedders use, and not the console', async () => {
    const library: Record<string, unknown> = await import('../../src/connector/index.js');
    const admin: Record<string, unknown> = await import('../../src/connector/admin.js');
    const exported = [
      'AdminError',
      'AdminNotFoundError',
      'AdminConflictError',
      'createTenant',
      'issueTenantToken',
      'createEnrollmentToken',
      'addRoute',
      'revokeGateway',
      'rotateGatewaySecret',
      'rotateDeliveryKey',
      'retryDeadLetter',
      'discardDeadLetter',
      'listDeliveries',
      'listDeadLetters',
      'listGatewaySummaries',
      'storePresence',
      'tenantViews',
      'routeViews',
      'deliveryViews',
      'deadLetterViews',
      'auditViews',
      'outboxDepth',
      'overview',
      'createdTenantView',
      'tenantTokenView',
      'enrollmentTokenView',
      'deliveryKeyView',
      'MAX_LIST_LIMIT',
    ];
    for (const name of exported) expect([name, library[name]]).toEqual([name, admin[name]]);
    // The running connector's own parts stay internal (startConnector mounts the console).
    for (const name of ['registerAdminConsole', 'PresenceRecorder', 'livePresence'])
      expect(library).not.toHaveProperty(name);
  });
});

describe('admin API (real connector process)', () => {
  it('is off without a token: every /admin path answers 404 saying so, and the start-up log says so', async () => {
    const offDb = join(dir.path, 'off.db');
    await hermes(['connector', 'tenant', 'create', 'solo', '--db', offDb]);
    const off = await startConnectorProcess(offDb, {
      RELAY_ADMIN_TOKEN: '',
      RELAY_ADMIN_TOKEN_FILE: '',
      RELAY_LOG_LEVEL: 'info',
    });
    try {
      for (const path of ['/admin', '/admin/', '/admin/api/tenants', '/admin/assets/admin.js']) {
        const response = await fetch(`${off.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(response.status, path).toBe(404);
        expect(await response.json()).toEqual({
          error: 'the admin console is off: set RELAY_ADMIN_TOKEN or RELAY_ADMIN_TOKEN_FILE',
        });
      }
      expect(off.output()).toContain('admin console off: set RELAY_ADMIN_TOKEN or RELAY_ADMIN_TOKEN_FILE');
    } finally {
      await off.stop();
    }
    expect(connector.output()).toContain('"msg":"admin console on /admin"');
    expect(connector.output()).not.toContain(TOKEN);
  });

  it('401 without the token or with a wrong one; the right one passes', async () => {
    expect(await api('/tenants', { token: null })).toMatchObject({
      status: 401,
      json: { error: 'admin token required' },
    });
    expect(await api('/tenants', { token: `${TOKEN}x` })).toMatchObject({
      status: 401,
      json: { error: 'invalid admin token' },
    });
    const listed = await api('/tenants');
    expect(listed.status).toBe(200);
    expect(listed.json).toMatchObject([{ id: acmeId, name: 'acme' }]);
    expect(await api('/no-such-thing')).toMatchObject({
      status: 404,
      json: { error: 'no such admin API route' },
    });
  });

  it('tenants, tokens, enroll tokens, delivery keys: created, validated, one-line errors', async () => {
    const created = await api('/tenants', { body: { name: 'beta' } });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ name: 'beta', accessToken: expect.stringMatching(/^hrt_/) });
    expect(await api('/tenants', { body: { name: 'beta' } })).toMatchObject({
      status: 409,
      json: { error: 'a tenant named "beta" already exists' },
    });
    expect(await api('/tenants', { body: {} })).toMatchObject({
      status: 400,
      json: { error: expect.stringMatching(/^invalid body: name: /) },
    });
    expect(await api('/tenants', { body: { name: 'x', admin: true } })).toMatchObject({ status: 400 });
    expect(await api('/tenants', { body: { name: 'has space' } })).toMatchObject({
      status: 400,
      json: { error: 'tenant names are 1-64 letters, digits, ".", "@", "_" or "-"' },
    });
    expect(await api('/tenants', { raw: '{"name":' })).toMatchObject({
      status: 400,
      json: { error: 'malformed request: invalid JSON body' },
    });
    const big = await api('/tenants', { body: { name: 'a'.repeat(20_000) } });
    expect(big.status).toBe(413);
    expect(big.json).toEqual({ error: 'request body too large (at most 16384 bytes)' });

    const token = await api('/tenants/beta/tokens', { body: {} });
    expect(token).toMatchObject({
      status: 201,
      json: { id: (created.json as { id: string }).id, accessToken: expect.stringMatching(/^hrt_/) },
    });
    expect(await api('/tenants/nobody/tokens', { body: {} })).toMatchObject({
      status: 404,
      json: { error: 'no tenant with id or name "nobody" (list them with: hermes connector tenant list)' },
    });
    const minted = await api('/tenants/acme/enroll-tokens', { body: { ttlSeconds: 3600 } });
    expect(minted.status).toBe(201);
    expect(minted.json).toMatchObject({ tenant: acmeId, token: expect.stringMatching(/^hre_/) });
    const expiresAt = Date.parse((minted.json as { expiresAt: string }).expiresAt);
    expect(Math.abs(expiresAt - (Date.now() + 3_600_000))).toBeLessThan(60_000);
    expect(await api('/tenants/acme/enroll-tokens', { body: { ttlSeconds: 'forever' } })).toMatchObject({
      status: 400,
      json: { error: expect.stringMatching(/^invalid body: ttlSeconds: /) },
    });
    const rotated = await api('/tenants/acme/delivery-key/rotate', { body: {} });
    expect(rotated).toMatchObject({ status: 200, json: { tenant: acmeId, deliveryKey: expect.any(String) } });
  });

  it('the event stream sends a snapshot, then a changed one when a gateway connects', async () => {
    const { gatewayId, secret } = await enrollGateway('gw-sse');
    const controller = new AbortController();
    const response = await fetch(`${connector.url}/admin/api/events`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    const nextSnapshot = async () => {
      for (;;) {
        const end = buffered.indexOf('\n\n');
        if (end >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = /^event: snapshot\ndata: (.*)$/m.exec(block)?.[1];
          if (data)
            return JSON.parse(data) as {
              at: string;
              overview: { gateways: { connected: number } };
              gateways: { id: string; connected: boolean }[];
              outbox: unknown[];
            };
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('the event stream ended');
        buffered += decoder.decode(value, { stream: true });
      }
    };
    try {
      const first = await nextSnapshot();
      expect(first.gateways.find((g) => g.id === gatewayId)).toMatchObject({ connected: false });
      expect(first.overview.gateways.connected).toBe(0);
      const socket = new TestRelayClient(relayUrl(), gatewayId, secret);
      await socket.connect();
      await socket.hello();
      const changed = await nextSnapshot();
      expect(changed.gateways.find((g) => g.id === gatewayId)).toMatchObject({ connected: true });
      expect(changed.overview.gateways.connected).toBe(1);
      expect(Object.keys(changed).sort()).toEqual(['at', 'gateways', 'outbox', 'overview']);
    } finally {
      controller.abort();
    }
  });

  it('gateways with their connection state; rotate; routes; revoke needs the confirmation and closes the socket 4401', async () => {
    const { gatewayId, secret } = await enrollGateway('gw-admin');
    const listed = await api(`/gateways?tenant=${acmeId}`);
    expect((listed.json as { id: string }[]).find((g) => g.id === gatewayId)).toEqual({
      id: gatewayId,
      tenant: acmeId,
      generation: 'socket',
      identities: expect.any(Array),
      platform: expect.any(String),
      endpoint: '',
      idleSince: null,
      buffered: 0,
      revoked: false,
      rotating: false,
      lastSeen: null,
      connected: false,
    });
    const socket = new TestRelayClient(relayUrl(), gatewayId, secret);
    await socket.connect();
    await socket.hello();
    await until(
      async () =>
        ((await api('/gateways')).json as { id: string; connected: boolean }[]).find(
          (g) => g.id === gatewayId,
        )?.connected,
      5_000,
      'gw-admin connected',
    );

    const rotated = await api(`/gateways/${gatewayId}/rotate`, { body: {} });
    expect(rotated).toMatchObject({ status: 200, json: { id: gatewayId, secret: expect.any(String) } });
    expect(
      ((await api('/gateways')).json as { id: string; rotating: boolean }[]).find((g) => g.id === gatewayId)
        ?.rotating,
    ).toBe(true);

    const route = await api('/routes', {
      body: { tenant: 'acme', platform: 'webchat', key: 'room-1', gateway: gatewayId },
    });
    expect(route).toMatchObject({
      status: 201,
      json: { platform: 'webchat', routeKey: 'room-1', tenantId: acmeId, endpoint: '', gatewayId },
    });
    expect(await api('/routes', { body: { tenant: 'acme', platform: 'slack', key: 'C1' } })).toMatchObject({
      status: 400,
      json: { error: 'platform slack: this connector serves webchat' },
    });
    expect(
      await api('/routes', { body: { tenant: 'beta', platform: 'webchat', key: 'room-1' } }),
    ).toMatchObject({
      status: 409,
      json: { error: 'route webchat:room-1 belongs to another tenant' },
    });
    expect((await api('/routes')).json).toMatchObject([{ routeKey: 'room-1' }]);
    expect(await api('/outbox')).toMatchObject({ status: 200, json: [] });
    expect(await api('/deliveries?limit=5')).toMatchObject({ status: 200, json: [] });
    expect(await api('/deliveries?limit=0')).toMatchObject({
      status: 400,
      json: { error: expect.stringMatching(/^invalid query: limit: /) },
    });

    const confirmMessage = `confirm by sending {"confirm": "${gatewayId}"}`;
    expect(await api(`/gateways/${gatewayId}/revoke`, { body: {} })).toMatchObject({
      status: 400,
      json: { error: confirmMessage },
    });
    expect(await api(`/gateways/${gatewayId}/revoke`, { body: { confirm: 'gw-sse' } })).toMatchObject({
      status: 400,
      json: { error: confirmMessage },
    });
    expect(socket.closeCode).toBeUndefined();
    expect(await api('/gateways/gw-nope/revoke', { body: { confirm: 'gw-nope' } })).toMatchObject({
      status: 404,
    });
    const revoked = await api(`/gateways/${gatewayId}/revoke`, { body: { confirm: gatewayId } });
    expect(revoked).toMatchObject({ status: 200, json: { id: gatewayId, revoked: true } });
    expect(await socket.closed()).toBe(4401);
    const after = ((await api('/gateways')).json as { id: string }[]).find((g) => g.id === gatewayId);
    expect(after).toMatchObject({ revoked: true, connected: false });
    expect(await api(`/gateways/${gatewayId}/rotate`, { body: {} })).toMatchObject({
      status: 409,
      json: { error: `gateway "${gatewayId}" is revoked; enroll a new gateway instead` },
    });
  });

  it('dead letters: listed, retried, discarded only with the confirmation', async () => {
    deadLetter('dlv_gone', acmeId);
    deadLetter('dlv_again', acmeId);
    const listed = await api('/dead-letters?limit=10');
    expect((listed.json as { id: string }[]).map((d) => d.id).sort()).toEqual(['dlv_again', 'dlv_gone']);
    expect((listed.json as object[])[0]).not.toHaveProperty('body');
    expect(await api('/overview')).toMatchObject({ json: { deadLetters: 2, tenants: 2 } });

    expect(await api('/dead-letters/dlv_gone/discard', { body: {} })).toMatchObject({
      status: 400,
      json: { error: 'confirm by sending {"confirm": "dlv_gone"}' },
    });
    expect(await api('/dead-letters/dlv_gone/discard', { body: { confirm: 'dlv_gone' } })).toMatchObject({
      status: 200,
      json: { id: 'dlv_gone', discarded: true },
    });
    expect(await api('/dead-letters/dlv_gone/discard', { body: { confirm: 'dlv_gone' } })).toMatchObject({
      status: 404,
    });
    expect(await api('/dead-letters/dlv_again/retry', { body: {} })).toMatchObject({
      status: 200,
      json: { id: 'dlv_again', requeued: true },
    });
    expect(await api('/dead-letters')).toMatchObject({ status: 200, json: [] });
    expect(await api('/dead-letters/dlv_again/retry', { body: {} })).toMatchObject({
      status: 404,
      json: { error: 'no dead letter "dlv_again"' },
    });
  });

  it('the audit log lists every API action with actor admin-api and the client address; filtered by tenant', async () => {
    const audit = (await api('/audit?limit=100')).json as {
      at: string;
      event: string;
      tenantId: string | null;
      gatewayId: string | null;
      detail: Record<string, unknown> | null;
    }[];
    const byApi = audit.filter((e) => e.detail?.actor === 'admin-api');
    for (const event of byApi) expect(event.detail?.address).toBe('127.0.0.1');
    expect(new Set(byApi.map((e) => e.event))).toEqual(
      new Set([
        'tenant_created',
        'tenant_token_issued',
        'enrollment_token_created',
        'delivery_key_rotated',
        'gateway_secret_rotated',
        'route_added',
        'gateway_revoked',
        'dead_letter_discarded',
        'dead_letter_requeued',
      ]),
    );
    expect(audit.find((e) => e.event === 'gateway_revoked')).toMatchObject({
      tenantId: acmeId,
      gatewayId: 'gw-admin',
      detail: { actor: 'admin-api', address: '127.0.0.1' },
    });
    expect(Date.parse(audit[0]?.at ?? '')).toBeGreaterThan(0);
    const beta = (await api('/audit?tenant=beta')).json as { event: string }[];
    expect(beta.map((e) => e.event)).toEqual(['tenant_token_issued', 'tenant_created']);
  });

  it('answers the same JSON as the CLI --json on the same store', async () => {
    deadLetter('dlv_kept', acmeId);
    const pairs: [string, string[]][] = [
      ['/tenants', ['connector', 'tenant', 'list']],
      ['/gateways', ['connector', 'gateway', 'list']],
      ['/routes', ['connector', 'route', 'list']],
      ['/dead-letters?limit=50', ['connector', 'deliveries', '--dead', '--limit', '50']],
      ['/audit?limit=50', ['connector', 'audit', '--limit', '50']],
      ['/audit?limit=50&tenant=beta', ['connector', 'audit', '--limit', '50', '--tenant', 'beta']],
    ];
    // gw-sse is connected: the CLI sees it once this instance has recorded its presence (≤ 10 s).
    await until(
      async () => {
        const cli = await hermesJson<{ id: string; connected: boolean }[]>([
          'connector',
          'gateway',
          'list',
          '--db',
          db,
        ]);
        return cli.find((g) => g.id === 'gw-sse')?.connected;
      },
      15_000,
      'the presence of gw-sse recorded',
      250,
    );
    for (const [path, args] of pairs) {
      const fromApi = await api(path);
      const fromCli = await hermesJson([...args, '--db', db]);
      expect(fromApi.status, path).toBe(200);
      expect(fromApi.json, path).toEqual(fromCli);
    }
    const gateways = (await api('/gateways')).json as { id: string; connected: boolean }[];
    expect(gateways.map((g) => [g.id, g.connected])).toEqual([
      ['gw-sse', true],
      ['gw-admin', false],
    ]);
  });

  it('429 with Retry-After after repeated failures from one address, even for the right token', async () => {
    let last = await api('/overview', { token: 'wrong' });
    for (let attempt = 0; attempt < 12 && last.status !== 429; attempt++)
      last = await api('/overview', { token: 'wrong' });
    expect(last.status).toBe(429);
    expect((last.json as { error: string }).error).toMatch(/^too many failed attempts; retry in \d+ s$/);
    expect(Number(last.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await api('/overview')).status).toBe(429);
  });
});
