import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant } from '../../src/connector/admin.js';
import { IdentityResolver } from '../../src/connector/identity.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';

/** RELAY_IDENTITY_URL: the external identity check, kept apart from CLI-created tenants. */

const server = createServer((request, response) => {
  const bearer = request.headers.authorization;
  if (bearer === 'Bearer org-demo')
    return void response.writeHead(200, { 'content-type': 'application/json' }).end('{"org":"demo"}');
  if (bearer === 'Bearer bad-body') return void response.writeHead(200).end('not json');
  response.writeHead(401).end();
});
let url = '';
const log = pino({ level: 'silent' });

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/account`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('external identity', () => {
  it('maps an org to its own tenant, never to a CLI tenant of the same name', async () => {
    const store = SqliteStore.open(':memory:');
    const local = (await createTenant(store, 'demo')).tenant;
    const resolver = new IdentityResolver(store, log, url);
    const first = await resolver.resolve('org-demo');
    const again = await resolver.resolve('org-demo');
    expect(first.ok && again.ok && first.tenantId === again.tenantId).toBe(true);
    expect(first.ok && first.tenantId).not.toBe(local.id);
    expect((await store.findTenantByName('ext:demo'))?.id).toBe(first.ok ? first.tenantId : '');
    expect(await resolver.resolve('nobody')).toMatchObject({ ok: false, status: 401 });
    expect(await resolver.resolve('bad-body')).toMatchObject({ ok: false, status: 401 });
    expect(await resolver.resolve(null)).toMatchObject({ ok: false, status: 401 });
    const unreachable = new IdentityResolver(store, log, 'http://127.0.0.1:1/account');
    expect(await unreachable.resolve('org-demo')).toMatchObject({ ok: false, status: 503 });
    await store.close();
  });
});
