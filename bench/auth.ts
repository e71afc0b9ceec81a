import { createHmac } from 'node:crypto';
import {
  generateSecret,
  mintUpgradeToken,
  nowSeconds,
  signDelivery,
  verifyDelivery,
  verifyUpgradeToken,
} from '../src/auth/index.js';
import { messageDeliveryBody } from '../src/protocol/index.js';
import { type BenchModule, type BenchResult, compare, type RunOptions, syncWorkload } from './harness.js';

/**
 * Auth hot paths against raw HMAC-SHA256 (`createHmac(...).update(...).digest()`) of the same
 * bytes, measured interleaved in the same run. The baseline does as many HMACs per operation as
 * the measured call does with a one-key verify list; the two-key rotation case, which computes
 * every candidate (constant time), is compared against two raw HMACs and reported as information.
 */

const MODULE = 'auth';
const TARGET = 0.8;
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
      target: TARGET,
      note: 'one HMAC per op on both sides; baseline hashes the same signed string `<gatewayId>:<exp>`',
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

export const authBench: BenchModule = {
  name: MODULE,
  description: 'upgrade-token and delivery-signature verification vs raw HMAC-SHA256',
  async run() {
    return [...(await upgradeTokenResults()), ...(await deliveryResults())];
  },
};
