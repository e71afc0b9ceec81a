import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { TargetGuard } from '../../src/common/ssrf.js';
import { addRoute, createTenant } from '../../src/connector/admin.js';
import { endpointLabel, ForgeryProbe } from '../../src/connector/forgery-probe.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { InboundReceiver } from '../../src/gateway/receiver.js';

/** The periodic badly-signed probe: a real receiver rejects it; a permissive one is flagged. */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('forgery probe', () => {
  it('reports rejected for a verifying receiver and flags one that accepts a forged delivery', async () => {
    const log = pino({ level: 'silent' });
    const interrupts: string[] = [];
    const receiver = new InboundReceiver({
      host: '127.0.0.1',
      port: 0,
      verifyKeys: () => ['a'.repeat(64)],
      onMessage: async () => undefined,
      onInterrupt: (key) => {
        interrupts.push(key);
      },
      log,
    });
    const good = (await receiver.start()).url;
    cleanups.push(() => receiver.stop());

    const seen: string[] = [];
    const permissive = createServer((request, response) => {
      seen.push(request.url ?? '');
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => permissive.close(() => resolve())));
    const bad = `http://127.0.0.1:${(permissive.address() as AddressInfo).port}`;

    const store = SqliteStore.open(':memory:');
    cleanups.push(() => store.close());
    await createTenant(store, 'good');
    await createTenant(store, 'bad');
    // Both endpoints are on 127.0.0.1: allowed explicitly (SSRF rule, common/ssrf.ts).
    const loopback = { platform: 'webchat', allowPrivateTargets: 'all' } as const;
    await addRoute(store, { tenantRef: 'good', routeKey: 'g', endpoint: good, ...loopback });
    await addRoute(store, { tenantRef: 'bad', routeKey: 'b', endpoint: bad, ...loopback });
    await addRoute(store, { tenantRef: 'bad', platform: 'webchat', routeKey: 's' });

    const metrics = new ConnectorMetrics({ defaultMetrics: false });
    const targets = new TargetGuard({ allowPrivate: 'all' });
    const results = await new ForgeryProbe(store, metrics, log, 0, targets).runOnce();
    expect(results).toEqual(
      expect.arrayContaining([
        { endpoint: good, outcome: 'rejected', status: 401 },
        { endpoint: bad, outcome: 'accepted', status: 200 },
      ]),
    );
    expect(results).toHaveLength(2);
    expect(interrupts).toEqual([]);
    expect(seen).toEqual(['/interrupt']);
    const text = await metrics.registry.metrics();
    expect(text).toContain(`relay_gateway_accepts_forgery{endpoint="${endpointLabel(bad)}"} 1`);
    expect(text).toContain(`relay_gateway_accepts_forgery{endpoint="${endpointLabel(good)}"} 0`);
    expect(text).toMatch(/relay_forgery_probes_total\{outcome="rejected"\} 1/);
    const audit = await store.listAudit(10);
    expect(audit.some((event) => event.event === 'forgery_accepted' && event.detail?.endpoint === bad)).toBe(
      true,
    );
  });
});
