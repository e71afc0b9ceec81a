import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { addRoute } from '../src/connector/admin.js';
import { endpointLabel } from '../src/connector/forgery-probe.js';
import { InboundReceiver } from '../src/gateway/receiver.js';
import type { BenchModule, BenchResult } from './harness.js';
import {
  createBenchTenant,
  InjectAdapter,
  manualMeasurement,
  silentLog,
  startBenchConnector,
  tempDir,
} from './support.js';

/**
 * Negative probe (issue #9 item 6): the connector's periodic badly signed delivery to every gateway
 * endpoint, run `ROUNDS` times against two endpoints of the same connector:
 * - a real gateway receiver (`InboundReceiver`), which must answer 401 every time and dispatch
 *   nothing, leaving `relay_gateway_accepts_forgery` at 0 for it;
 * - the baseline, a careless receiver that answers 200 to anything, which the probe must flag
 *   (`relay_gateway_accepts_forgery` = 1 for it) — proof the probe can tell the two apart.
 * PASS when every probe of the real receiver was rejected and the careless one was flagged.
 */

const MODULE = 'probe';
const ROUNDS = 200;

async function run(): Promise<BenchResult[]> {
  const dir = tempDir('probe');
  const adapter = new InjectAdapter('bench');
  const { connector, store } = await startBenchConnector(join(dir.path, 'connector.db'), [adapter]);
  let dispatched = 0;
  const receiver = new InboundReceiver({
    host: '127.0.0.1',
    port: 0,
    verifyKeys: () => [tenant.deliveryKey],
    onMessage: async () => {
      dispatched++;
    },
    onInterrupt: () => {
      dispatched++;
    },
    log: silentLog,
  });
  const careless = createServer((request, response) => {
    request.resume();
    request.on('end', () =>
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
    );
  });
  const tenant = await createBenchTenant(store, 'bench-probe');
  const other = await createBenchTenant(store, 'bench-probe-careless');
  try {
    const { url: receiverUrl } = await receiver.start();
    await new Promise<void>((resolve) => careless.listen(0, '127.0.0.1', resolve));
    const carelessUrl = `http://127.0.0.1:${(careless.address() as AddressInfo).port}`;
    await addRoute(store, {
      tenantRef: tenant.tenantId,
      platform: 'bench',
      routeKey: 'room',
      endpoint: receiverUrl,
      allowPrivateTargets: 'all',
    });
    await addRoute(store, {
      tenantRef: other.tenantId,
      platform: 'bench',
      routeKey: 'lax',
      endpoint: carelessUrl,
      allowPrivateTargets: 'all',
    });

    const outcomes = { real: new Map<string, number>(), careless: new Map<string, number>() };
    const realMs: number[] = [];
    const carelessMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now();
      const results = await connector.probe.runOnce();
      const elapsed = performance.now() - started;
      for (const result of results) {
        const side = result.endpoint === receiverUrl ? 'real' : 'careless';
        outcomes[side].set(result.outcome, (outcomes[side].get(result.outcome) ?? 0) + 1);
      }
      // One round probes both endpoints one after the other; split the time evenly for the rows.
      realMs.push(elapsed / 2);
      carelessMs.push(elapsed / 2);
    }
    const flag = async (url: string) =>
      ((await connector.metrics.forgeryAccepted.get()).values.find(
        (v) => v.labels.endpoint === endpointLabel(url),
      )?.value ?? -1) as number;
    const realFlag = await flag(receiverUrl);
    const carelessFlag = await flag(carelessUrl);
    const rejected = outcomes.real.get('rejected') ?? 0;
    const pass = rejected === ROUNDS && dispatched === 0 && realFlag === 0 && carelessFlag === 1;
    const total = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const describe = (m: Map<string, number>) =>
      [...m].map(([outcome, count]) => `${count} ${outcome}`).join(', ') || 'none';
    console.log(
      `  probe: real receiver ${describe(outcomes.real)} of ${ROUNDS} (dispatched ${dispatched}, flag ${realFlag}); ` +
        `careless receiver ${describe(outcomes.careless)} (flag ${carelessFlag}) → ${pass ? 'every probe rejected' : 'FAILED'}`,
    );
    return [
      {
        module: MODULE,
        name: `forgery probe, ${ROUNDS} rounds: real receiver rejected / careless one flagged (rate = probes/s)`,
        figure: manualMeasurement('InboundReceiver (verifies signatures)', ROUNDS, total(realMs)),
        baseline: manualMeasurement('careless receiver (200 to anything)', ROUNDS, total(carelessMs)),
        ratio: rejected / ROUNDS,
        ratioIqr: [rejected / ROUNDS, rejected / ROUNDS],
        target: 1,
        status: pass ? 'PASS' : 'BELOW',
        note:
          `real receiver: ${describe(outcomes.real)}, dispatched ${dispatched}, relay_gateway_accepts_forgery ${realFlag}; ` +
          `careless receiver: ${describe(outcomes.careless)}, relay_gateway_accepts_forgery ${carelessFlag}; ` +
          'ratio column = share of probes the real receiver rejected (target: all, and the careless one flagged)',
      },
    ];
  } finally {
    await receiver.stop();
    await new Promise<void>((resolve) => careless.close(() => resolve()));
    await connector.stop();
    dir.remove();
  }
}

export const probeBench: BenchModule = {
  name: MODULE,
  description: 'negative probe: badly signed deliveries rejected by a real receiver, a careless one flagged',
  run,
};
