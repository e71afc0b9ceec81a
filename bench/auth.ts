import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import {
  generateSecret,
  mintUpgradeToken,
  nowSeconds,
  signDelivery,
  verifyDelivery,
  verifyUpgradeToken,
} from '../src/auth/index.js';
import { encodeFrame, messageDeliveryBody } from '../src/protocol/index.js';
import {
  asyncWorkload,
  type BenchModule,
  type BenchResult,
  compare,
  type RunOptions,
  syncWorkload,
} from './harness.js';
import {
  createBenchTenant,
  enrollBenchGateway,
  InjectAdapter,
  startBenchConnector,
  tempDir,
} from './support.js';

/**
 * Auth hot paths, measured interleaved in the same run against a baseline of the same work done
 * bare:
 *
 * - the whole gateway handshake (authenticated `/relay` upgrade + `hello` → descriptor) against a
 *   bare `ws` upgrade + one round trip of the same sizes (issue 20's replacement target);
 * - `verifyUpgradeToken` and `verifyDelivery` against raw HMAC-SHA256
 *   (`createHmac(...).update(...).digest()`) of the same bytes, with as many HMACs per operation as
 *   the measured call computes. The upgrade-token rows are information only: a 30-byte HMAC against
 *   a whole decode says little, the handshake row is what a gateway sees.
 */

const MODULE = 'auth';
const TARGET = 0.8;
/** Handshakes in flight at once, on each side. */
export const HANDSHAKE_CONCURRENCY = 32;
/**
 * Distinct gateways dialing in turn: more than any per-gateway cache would keep warm, as a fleet
 * dialing in after a restart.
 */
const HANDSHAKE_GATEWAYS = 2048;
const HANDSHAKE_OPTIONS: RunOptions = { warmupMs: 1_000, durationMs: 6_000, slices: 12 };
const DELIVERY_BODY_BYTES = 4096;
const OPTIONS: RunOptions = { warmupMs: 300, durationMs: 2000, slices: 20 };

/** A realistic message delivery body, padded to exactly `bytes` bytes of UTF-8 JSON. */
export function deliveryBody(bytes: number): Buffer {
  const event = {
    text: '',
    message_type: 'text',
    source: {
      platform: 'telegram',
      chat_id: '-1001234567890',
      chat_type: 'group',
      chat_name: 'hermes relay benchmark',
      user_id: '424242',
      user_name: 'bench',
      message_id: '99881',
    },
    message_id: '99881',
    timestamp: new Date(0).toISOString(),
  };
  const delivery = messageDeliveryBody(event, 'dlv_0123456789abcdef');
  const empty = Buffer.byteLength(JSON.stringify(delivery), 'utf8');
  if (empty > bytes) throw new Error(`delivery body skeleton is already ${empty} bytes`);
  const filler = 'The quick brown fox jumps over the lazy dog. ';
  event.text = filler.repeat(Math.ceil((bytes - empty) / filler.length)).slice(0, bytes - empty);
  const body = Buffer.from(JSON.stringify(delivery), 'utf8');
  if (body.length !== bytes) throw new Error(`delivery body is ${body.length} bytes, wanted ${bytes}`);
  return body;
}

function expectOk(what: string, result: { ok: boolean }): void {
  if (!result.ok) throw new Error(`${what}: setup is wrong, verification fails (${JSON.stringify(result)})`);
}

async function upgradeTokenResults(): Promise<BenchResult[]> {
  const primary = generateSecret();
  const secondary = generateSecret(); // the other key of a rotation; does not sign this token
  const gatewayId = 'gw_bench_0123456789';
  const token = mintUpgradeToken(gatewayId, primary);
  const exp = verifyUpgradeToken(token, [primary]);
  expectOk('upgrade token', exp);
  const signed = `${gatewayId}:${exp.ok ? exp.exp : 0}`;
  const single = [primary] as const;
  const rotation = [secondary, primary] as const;
  expectOk('upgrade token, rotation list', verifyUpgradeToken(token, rotation));

  const rawOne = syncWorkload('raw createHmac ×1', () =>
    createHmac('sha256', primary).update(signed).digest(),
  );
  const rawTwo = syncWorkload('raw createHmac ×2', () => {
    createHmac('sha256', secondary).update(signed).digest();
    return createHmac('sha256', primary).update(signed).digest();
  });

  const results: BenchResult[] = [];
  results.push(
    await compare({
      module: MODULE,
      name: 'verifyUpgradeToken, 1 key',
      subject: syncWorkload('verifyUpgradeToken [primary]', () => verifyUpgradeToken(token, single)),
      baseline: rawOne,
      note: 'information (target retired by issue 20: see the handshake row); one HMAC per op on both sides, baseline hashes the same signed string `<gatewayId>:<exp>`',
      options: OPTIONS,
    }),
  );
  results.push(
    await compare({
      module: MODULE,
      name: 'verifyUpgradeToken, rotation [wrong, primary]',
      subject: syncWorkload('verifyUpgradeToken [secondary, primary]', () =>
        verifyUpgradeToken(token, rotation),
      ),
      baseline: rawTwo,
      note: 'information: both candidates are always computed (constant time), so two HMACs per op on both sides',
      options: OPTIONS,
    }),
  );
  return results;
}

async function deliveryResults(): Promise<BenchResult[]> {
  const key = generateSecret();
  const body = deliveryBody(DELIVERY_BODY_BYTES);
  const ts = String(nowSeconds());
  const signature = signDelivery(body, key, ts);
  const single = [key] as const;
  expectOk('delivery', verifyDelivery(body, ts, signature, single));

  return [
    await compare({
      module: MODULE,
      name: `verifyDelivery, ${DELIVERY_BODY_BYTES / 1024} KiB JSON, 1 key`,
      subject: syncWorkload('verifyDelivery [key]', () => verifyDelivery(body, ts, signature, single)),
      baseline: syncWorkload('raw createHmac ×1', () =>
        createHmac('sha256', key).update(`${ts}.`).update(body).digest(),
      ),
      target: TARGET,
      note: 'one HMAC per op on both sides over `<ts>.` + the same 4096-byte body',
      options: OPTIONS,
    }),
  ];
}

/**
 * One gateway handshake as a gateway sees it: dial with the bearer upgrade token, send `hello` on
 * open, resolve on the first message back (the descriptor), then drop the socket. The same
 * function dials the bare baseline with the same headers and the same `hello`.
 */
function handshake(url: string, authorization: string, hello: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization }, perMessageDeflate: false });
    let settled = false;
    ws.on('open', () => ws.send(hello));
    ws.once('message', (data: Buffer) => {
      settled = true;
      ws.terminate();
      resolve(data.length);
    });
    ws.on('error', (error) => {
      if (!settled) reject(error);
    });
    ws.on('close', (code) => {
      if (!settled) reject(new Error(`socket closed with ${code} before the first reply`));
    });
  });
}

/**
 * The handshake row's setup, shared with `profile-handshake.ts`: a connector in process on a SQLite
 * file with `HANDSHAKE_GATEWAYS` enrolled gateways, and a bare `ws` server answering `hello` with
 * a reply of the descriptor's size. `relay()` and `bare()` each run one handshake, the next gateway
 * in turn.
 */
export interface HandshakeRig {
  relay(): Promise<number>;
  bare(): Promise<number>;
  readonly hello: string;
  readonly descriptorBytes: number;
  close(): Promise<void>;
}

export async function startHandshakeRig(): Promise<HandshakeRig> {
  const dir = tempDir('handshake');
  const adapter = new InjectAdapter('bench');
  const { connector, store, relayUrl } = await startBenchConnector(join(dir.path, 'connector.db'), [adapter]);
  let bare: WebSocketServer | undefined;
  const close = async (): Promise<void> => {
    if (bare) {
      const server = bare;
      for (const ws of server.clients) ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await connector.stop();
    dir.remove();
  };
  try {
    const tenant = await createBenchTenant(store, 'bench-handshake');
    const authorizations: string[] = [];
    for (let i = 0; i < HANDSHAKE_GATEWAYS; i++) {
      const gatewayId = `gw-handshake-${String(i).padStart(4, '0')}`;
      const secret = await enrollBenchGateway(store, tenant.tenantId, gatewayId);
      authorizations.push(`Bearer ${mintUpgradeToken(gatewayId, secret)}`);
    }
    const hello = encodeFrame({ type: 'hello', platform: 'bench', botId: '' });
    const descriptorBytes = await handshake(relayUrl, authorizations[0] as string, hello);

    const reply = 'd'.repeat(descriptorBytes);
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    bare = server;
    server.on('connection', (ws) => {
      ws.on('message', () => ws.send(reply));
      ws.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const bareUrl = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/relay`;

    let nextRelay = 0;
    let nextBare = 0;
    const authorizationFor = (i: number): string => authorizations[i % HANDSHAKE_GATEWAYS] as string;
    return {
      relay: () => handshake(relayUrl, authorizationFor(nextRelay++), hello),
      bare: () => handshake(bareUrl, authorizationFor(nextBare++), hello),
      hello,
      descriptorBytes,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

async function handshakeResults(): Promise<BenchResult[]> {
  const rig = await startHandshakeRig();
  try {
    return [
      await compare({
        module: MODULE,
        name: 'gateway handshake: upgrade (token verified, gateway looked up) + hello → descriptor',
        subject: asyncWorkload('connector /relay', () => rig.relay(), HANDSHAKE_CONCURRENCY),
        baseline: asyncWorkload(
          `bare ws upgrade + one round trip (${rig.hello.length} B → ${rig.descriptorBytes} B)`,
          () => rig.bare(),
          HANDSHAKE_CONCURRENCY,
        ),
        target: TARGET,
        note: `handshakes per second, ${HANDSHAKE_CONCURRENCY} in flight, ${HANDSHAKE_GATEWAYS} gateways in turn; the client (same process) dials both alike, same headers and message sizes; each socket is dropped after its first reply`,
        options: HANDSHAKE_OPTIONS,
      }),
    ];
  } finally {
    await rig.close();
  }
}

export const authBench: BenchModule = {
  name: MODULE,
  description:
    'gateway handshake vs a bare ws upgrade; upgrade-token and delivery-signature verification vs raw HMAC-SHA256',
  async run() {
    return [...(await handshakeResults()), ...(await upgradeTokenResults()), ...(await deliveryResults())];
  },
};
