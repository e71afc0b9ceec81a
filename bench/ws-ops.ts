import { join } from 'node:path';
import { addRoute } from '../src/connector/admin.js';
import { RelayTransport } from '../src/gateway/transport.js';
import { encodeFrame } from '../src/protocol/index.js';
import { asyncWorkload, type BenchModule, type BenchResult, compare, type RunOptions } from './harness.js';
import {
  createBenchTenant,
  enrollBenchGateway,
  InjectAdapter,
  silentLog,
  startBareWsPair,
  startBenchConnector,
  tempDir,
  waitFor,
} from './support.js';

/**
 * WebSocket op round trip: the gateway's `RelayTransport.send({op:'send', …})` → the connector's
 * `/relay` socket → tenant check (the chat is recorded for the gateway's tenant) → a platform
 * adapter whose `send` resolves at once → `outbound_result` → the promise resolves. Baseline: a
 * bare `ws` client and server in the same process exchanging messages of the same byte sizes at
 * the same concurrency, correlated by a fixed-width id (no JSON, no checks).
 */

const MODULE = 'ws-ops';
const IN_FLIGHT = 32;
const CONTENT_CHARS = 256;
const TARGET = 0.7;
const OPTIONS: RunOptions = { warmupMs: 1_000, durationMs: 4_000, slices: 10, maxOps: 500_000 };
const CHAT_ID = 'bench-chat-0001';

/** Byte sizes of a request and result frame as the transport and the connector write them. */
function frameSizes(content: string): { request: number; result: number } {
  const requestId = 'f'.repeat(32); // randomUUID without dashes
  const request = encodeFrame({
    type: 'outbound',
    requestId,
    action: { op: 'send', chat_id: CHAT_ID, content },
  });
  const result = encodeFrame({
    type: 'outbound_result',
    requestId,
    result: { success: true, message_id: '100000' },
  });
  return { request: Buffer.byteLength(request), result: Buffer.byteLength(result) };
}

async function run(): Promise<BenchResult[]> {
  const dir = tempDir('ws-ops');
  const adapter = new InjectAdapter('bench');
  const { connector, store, relayUrl } = await startBenchConnector(join(dir.path, 'connector.db'), [adapter]);
  const tenant = await createBenchTenant(store, 'bench-ws');
  const gatewayId = 'gw-bench-ws';
  const secret = await enrollBenchGateway(store, tenant.tenantId, gatewayId);
  // The chat belongs to the tenant, as if the connector had delivered a message from it over the
  // tenant's route (ops re-check that the route still belongs to the tenant, so it must exist).
  await addRoute(store, { tenantRef: tenant.tenantId, platform: 'bench', routeKey: 'room' });
  await store.recordChat({
    tenantId: tenant.tenantId,
    platform: 'bench',
    chatId: CHAT_ID,
    routeKey: 'room',
    updatedAt: Date.now(),
  });

  const transport = new RelayTransport({
    url: relayUrl,
    credentials: () => ({ gatewayId, secret }),
    platform: 'bench',
    botId: '',
    log: silentLog,
  });
  transport.start();
  await waitFor(() => transport.connected, 10_000, 'relay handshake');

  const content = 'c'.repeat(CONTENT_CHARS);
  const action = { op: 'send' as const, chat_id: CHAT_ID, content };
  const first = await transport.send(action);
  if (first.success === false) throw new Error(`setup is wrong, the op fails: ${first.error}`);
  let failures = 0;
  const subject = asyncWorkload(
    `RelayTransport.send → connector → adapter → outbound_result, ${IN_FLIGHT} in flight`,
    async () => {
      const result = await transport.send(action);
      if (result.success === false) {
        failures++;
        throw new Error(`op failed: ${result.error}`);
      }
    },
    IN_FLIGHT,
  );

  const sizes = frameSizes(content);
  const bare = await startBareWsPair(sizes.request, sizes.result, 'client');
  const baseline = asyncWorkload(
    `bare ws ${sizes.request} B → ${sizes.result} B, ${IN_FLIGHT} in flight`,
    () => bare.exchange(),
    IN_FLIGHT,
  );

  try {
    const result = await compare({
      module: MODULE,
      name: `op round trip, send ${CONTENT_CHARS} chars, ${IN_FLIGHT} in flight`,
      subject,
      baseline,
      target: TARGET,
      note: `frames ${sizes.request} B out, ${sizes.result} B back on both sides; ${failures} failed ops`,
      options: OPTIONS,
    });
    return [result];
  } finally {
    await bare.close();
    await transport.stop();
    await connector.stop();
    dir.remove();
  }
}

export const wsOpsBench: BenchModule = {
  name: MODULE,
  description: 'WebSocket op round trip: RelayTransport.send → connector → no-op adapter → outbound_result',
  run,
};
