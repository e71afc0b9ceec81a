import { join } from 'node:path';
import { addRoute } from '../src/connector/admin.js';
import { SqliteInbox } from '../src/gateway/inbox.js';
import { RelayTransport } from '../src/gateway/transport.js';
import { buildSessionKey, encodeFrame } from '../src/protocol/index.js';
import { asyncWorkload, type BenchModule, type BenchResult, compare, type RunOptions } from './harness.js';
import {
  createBenchTenant,
  deliveryBodyBytes,
  enrollBenchGateway,
  InjectAdapter,
  sessionIngest,
  silentLog,
  sizedEvent,
  startBareWsPair,
  startBenchConnector,
  tempDir,
  waitFor,
} from './support.js';

/**
 * Durable inbound over the gateway's socket (the current generation's only inbound path): an event
 * injected through a platform adapter is routed and committed to the connector's outbox (a real
 * SQLite file), claimed, sent as an `inbound` frame on the gateway's `/relay` socket, journaled in
 * the gateway's durable inbox (a real SQLite file) by the real `RelayTransport`, acknowledged with
 * `inbound_ack`, and its outbox row completed. One operation is one event, timed from `ingest` to
 * the row's completion. Baseline: a bare `ws` pair in the same process, the server sending frames
 * of the same size and the client answering with an ack of the same size, at the same concurrency.
 */

const MODULE = 'ws-inbound';
export const SESSIONS = 64;
const BODY_BYTES = 1024;
const RATIO_TARGET = 0.5;
const ABSOLUTE_TARGET = 15_000;
const OPTIONS: RunOptions = { warmupMs: 1_000, durationMs: 5_000, slices: 10, maxOps: 250_000 };

/** Byte sizes of an `inbound` frame carrying a 1 KiB event, and of its `inbound_ack`. */
function frameSizes(): { inbound: number; ack: number } {
  const bufferId = `dlv_${'0'.repeat(24)}`;
  const body = JSON.parse(deliveryBodyBytes(sizedEvent('bench-session-0', BODY_BYTES)).toString('utf8'));
  const inbound = encodeFrame({ type: 'inbound', event: body.event, bufferId });
  const ack = encodeFrame({ type: 'inbound_ack', bufferId });
  return { inbound: Buffer.byteLength(inbound), ack: Buffer.byteLength(ack) };
}

/** The subject's setup, shared with `profile-ws-inbound.ts` (the same path, without the baseline). */
export interface InboundRig {
  /** One event on session `session` (0 ≤ session < SESSIONS), from `ingest` to the completed row. */
  deliverOne(session: number): Promise<void>;
  readonly journaled: number;
  readonly failed: number;
  close(): Promise<void>;
}

export async function startInboundRig(): Promise<InboundRig> {
  const dir = tempDir('ws-inbound');
  const adapter = new InjectAdapter('bench');
  const { connector, store, relayUrl } = await startBenchConnector(join(dir.path, 'connector.db'), [adapter]);
  const tenant = await createBenchTenant(store, 'bench-ws-inbound');
  const gatewayId = 'gw-bench-ws-inbound';
  const secret = await enrollBenchGateway(store, tenant.tenantId, gatewayId);
  // No endpoint: the tenant's deliveries ride its gateway's socket.
  await addRoute(store, { tenantRef: tenant.tenantId, platform: 'bench', routeKey: 'room' });
  const ingest = sessionIngest(adapter, store, SESSIONS, BODY_BYTES);

  // What the gateway runtime does before acknowledging: journal the event durably, keyed by its
  // delivery id, then hand it over (here: nothing to run, so the entry is done at once).
  const inbox = SqliteInbox.open(join(dir.path, 'inbox.db'));
  let journaled = 0;
  const transport = new RelayTransport({
    url: relayUrl,
    credentials: () => ({ gatewayId, secret }),
    platform: 'bench',
    botId: '',
    log: silentLog,
    onInbound: async (event, bufferId) => {
      const id = inbox.accept(bufferId, buildSessionKey(event.source), event);
      if (id !== null) {
        journaled++;
        inbox.done(id);
      }
      // As the runtime does: acknowledged once the burst's journal commit is done.
      await inbox.committed();
    },
  });
  transport.start();
  await waitFor(() => transport.connected, 10_000, 'relay handshake');

  return {
    deliverOne: (session) => ingest.deliverOne(session),
    get journaled() {
      return journaled;
    },
    get failed() {
      return ingest.failed;
    },
    async close() {
      await transport.stop();
      await connector.stop();
      inbox.close();
      dir.remove();
    },
  };
}

async function run(): Promise<BenchResult[]> {
  const rig = await startInboundRig();
  const free = Array.from({ length: SESSIONS }, (_, i) => i);
  const subject = asyncWorkload(
    `connector outbox → inbound frame → gateway inbox → inbound_ack, ${SESSIONS} sessions`,
    async () => {
      const session = free.pop();
      if (session === undefined) throw new Error('more workers than sessions');
      try {
        await rig.deliverOne(session);
      } finally {
        free.push(session);
      }
    },
    SESSIONS,
  );

  const sizes = frameSizes();
  const bare = await startBareWsPair(sizes.inbound, sizes.ack, 'server');
  const baseline = asyncWorkload(
    `bare ws ${sizes.inbound} B → ${sizes.ack} B ack, ${SESSIONS} in flight`,
    () => bare.exchange(),
    SESSIONS,
  );

  try {
    const result = await compare({
      module: MODULE,
      name: `durable socket inbound, ${BODY_BYTES / 1024} KiB events, ${SESSIONS} sessions`,
      subject,
      baseline,
      target: RATIO_TARGET,
      options: OPTIONS,
    });
    const absoluteOk = result.figure.opsPerSec >= ABSOLUTE_TARGET;
    const { p50Us, p99Us } = result.figure;
    const ms = (us: number | undefined): string => (us === undefined ? '?' : (us / 1000).toFixed(2));
    result.note =
      `ratio target >= ${RATIO_TARGET} and absolute target >= ${ABSOLUTE_TARGET} events/s ` +
      `(${absoluteOk ? 'met' : 'missed'}); latency = ingest call → outbox row completed after the ` +
      `inbound_ack; frames ${sizes.inbound} B in, ${sizes.ack} B ack on both sides`;
    if (!absoluteOk) result.status = 'BELOW';
    console.log(
      `  ws-inbound: ${result.figure.opsPerSec.toFixed(0)} events/s (absolute target >= ${ABSOLUTE_TARGET}: ` +
        `${absoluteOk ? 'met' : 'MISSED'}), ingest → completion p50 ${ms(p50Us)} ms, p99 ${ms(p99Us)} ms, ` +
        `${rig.failed} failed ingests, ${rig.journaled} journaled`,
    );
    return [result];
  } finally {
    await bare.close();
    await rig.close();
  }
}

export const wsInboundBench: BenchModule = {
  name: MODULE,
  description: 'durable socket inbound: outbox → inbound frame → gateway inbox journal → inbound_ack',
  run,
};
