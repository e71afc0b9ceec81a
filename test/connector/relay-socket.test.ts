import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mintUpgradeToken } from '../../src/auth/index.js';
import { GatewayRegistry, sendFrame } from '../../src/connector/gateway-registry.js';
import { RelayConnection } from '../../src/connector/relay-server.js';
import { COALESCED_MESSAGE_BYTES, encodeFrame } from '../../src/protocol/index.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
} from '../support/processes.js';
import { TestRelayClient } from '../support/test-gateway.js';

/**
 * The `/relay` socket kept small for idle gateways (issue 20): listeners shared by every socket,
 * one decoder for whole-line messages, a frame writer only while frames are on their way, and a
 * gateway's sockets kept without a Set until it has two. These check that the behaviour did not
 * change: split frames still decode, several sockets of one gateway are still all closed 4401 on
 * revocation, frames keep their order.
 */

const dir = tempDir('relay-socket');
const db = `${dir.path}/connector.db`;
let connector: RunningProcess & { url: string };
let tenantToken: string;

/** The gateways as `hermes connector gateway list --json` shows them. */
function gatewayRows(): Promise<{ id: string; lastSeen: string | null }[]> {
  return hermesJson(['connector', 'gateway', 'list', '--json', '--db', db]);
}

async function enroll(gatewayId: string): Promise<string> {
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'sockets',
    '--db',
    db,
  ]);
  const response = await fetch(`${connector.url}/relay/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ enrollmentToken: token, gatewayId }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { secret: string }).secret;
}

const relayUrl = () => `${connector.url.replace('http', 'ws')}/relay`;

/** A raw socket that sends exactly the messages given and collects every message back. */
async function rawSocket(gatewayId: string, secret: string): Promise<{ ws: WebSocket; text: () => string }> {
  const ws = new WebSocket(relayUrl(), {
    headers: { authorization: `Bearer ${mintUpgradeToken(gatewayId, secret)}` },
  });
  let received = '';
  ws.on('message', (data: Buffer) => {
    received += data.toString('utf8');
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, text: () => received };
}

async function until<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - started > 10_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

beforeAll(async () => {
  tenantToken = (
    await hermesJson<{ accessToken: string }>(['connector', 'tenant', 'create', 'sockets', '--db', db])
  ).accessToken;
  connector = await startConnectorProcess(db);
});

afterAll(async () => {
  await connector?.stop();
  dir.remove();
});

describe('/relay sockets (real connector process)', () => {
  it('decodes a frame split across text and binary messages, a UTF-8 character cut in two, while other sockets send whole frames', async () => {
    const secret = await enroll('gw-split');
    const split = await rawSocket('gw-split', secret);
    const whole = await rawSocket('gw-split', secret);
    const hello = Buffer.from(encodeFrame({ type: 'hello', platform: 'relay', botId: 'b\u00e9' }), 'utf8');
    const cut = hello.indexOf(0xc3) + 1; // inside the two bytes of "é"
    split.ws.send(hello.subarray(0, cut), { binary: true });
    // Whole-line messages on another socket in between go through the shared decoder.
    whole.ws.send(encodeFrame({ type: 'hello', platform: 'relay', botId: '' }));
    await until(() => whole.text().includes('"descriptor"'), 'the whole socket descriptor');
    split.ws.send(hello.subarray(cut, cut + 3), { binary: true });
    split.ws.send(hello.subarray(cut + 3).toString('utf8'));
    await until(() => split.text().includes('"descriptor"'), 'the split socket descriptor');
    // The identity arrived intact: an op tagged with it is not refused as unknown.
    split.ws.send(
      encodeFrame({
        type: 'outbound',
        requestId: 'r-split',
        platform: 'relay',
        botId: 'b\u00e9',
        action: { op: 'send', chat_id: 'nowhere', content: 'x' },
      }),
    );
    const result = await until(
      () =>
        split
          .text()
          .split('\n')
          .find((line) => line.includes('"r-split"')),
      'the outbound_result',
    );
    expect(result).not.toContain('said no hello');
    split.ws.close();
    whole.ws.close();
  });

  it('records when each gateway was last seen, for a burst of upgrades written together', async () => {
    const ids = ['gw-seen-1', 'gw-seen-2', 'gw-seen-3'];
    const secrets = await Promise.all(ids.map((id) => enroll(id)));
    const clients = ids.map((id, i) => new TestRelayClient(relayUrl(), id, secrets[i] as string));
    await Promise.all(clients.map((client) => client.connect()));
    const seen = await until(async () => {
      const rows = await gatewayRows();
      const mine = rows.filter((row) => ids.includes(row.id));
      return mine.length === 3 && mine.every((row) => row.lastSeen !== null) && mine;
    }, 'last seen of the three gateways');
    expect(seen.map((row) => row.id).sort()).toEqual(ids);
    for (const client of clients) client.close();
    // Redialling within LAST_SEEN_RESOLUTION_MS (30 s) costs no write: the stored time stays.
    const first = seen.find((row) => row.id === 'gw-seen-1')?.lastSeen;
    const again = new TestRelayClient(relayUrl(), 'gw-seen-1', secrets[0] as string);
    await again.connect();
    await again.hello();
    // A write, were there one, is queued for the end of the accepting turn; the hello's answer
    // comes after it.
    const rows = await gatewayRows();
    expect(rows.find((row) => row.id === 'gw-seen-1')?.lastSeen).toBe(first);
    again.close();
  });

  it('closes every socket of a revoked gateway with 4401, and only those', async () => {
    const secret = await enroll('gw-twice');
    const otherSecret = await enroll('gw-other');
    const first = new TestRelayClient(relayUrl(), 'gw-twice', secret);
    const second = new TestRelayClient(relayUrl(), 'gw-twice', secret);
    const third = new TestRelayClient(relayUrl(), 'gw-twice', secret);
    const other = new TestRelayClient(relayUrl(), 'gw-other', otherSecret);
    for (const client of [first, second, third, other]) {
      await client.connect();
      await client.hello();
    }
    // One of three leaves before the revocation: the other two are still found by gateway.
    first.close();
    expect(await first.closed()).toBe(1005);
    const revoke = await hermes(['connector', 'gateway', 'revoke', 'gw-twice', '--yes', '--db', db]);
    expect(revoke.code).toBe(0);
    expect(await second.closed()).toBe(4401);
    expect(await third.closed()).toBe(4401);
    expect(second.closeReason).toBe('unauthorized');
    expect(other.closeCode).toBeUndefined();
    expect((await other.op({ op: 'typing', chat_id: 'nowhere' })).success).toBe(false);
    other.close();
  });
});

/** A stand-in for the `ws` socket: records what is sent. */
function fakeSocket(): { ws: WebSocket; sent: string[] } {
  const sent: string[] = [];
  const ws = {
    OPEN: 1,
    readyState: 1,
    send: (data: string, done?: (error?: Error) => void) => {
      sent.push(data);
      done?.();
    },
  } as unknown as WebSocket;
  return { ws, sent };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('RelayConnection', () => {
  it('holds a frame writer only while frames are on their way', async () => {
    const { ws, sent } = fakeSocket();
    const connection = new RelayConnection('c_0000000000000001', 'gw', 'tenant', ws, Date.now());
    sendFrame(connection, { type: 'going_idle_ack' });
    const writer = connection.writer;
    sendFrame(connection, { type: 'going_idle_ack' });
    expect(connection.writer).toBe(writer);
    await turn();
    await turn();
    expect(sent).toEqual([encodeFrame({ type: 'going_idle_ack' }).repeat(2)]);
    // Sent: the next frame gets a new writer, and the old one is gone.
    expect(connection.writer).not.toBe(writer);
  });

  it('keeps frame order, and its writer, when a frame over the coalescing limit flushes mid-write', async () => {
    const { ws, sent } = fakeSocket();
    const connection = new RelayConnection('c_0000000000000002', 'gw', 'tenant', ws, Date.now());
    const big = 'x'.repeat(COALESCED_MESSAGE_BYTES);
    sendFrame(connection, { type: 'going_idle_ack' });
    const writer = connection.writer;
    // Flushes the first frame at once, then buffers itself in the same writer.
    sendFrame(connection, {
      type: 'outbound_result',
      requestId: 'r1',
      result: { success: false, error: big },
    });
    await Promise.resolve(); // the microtask that may release the writer
    expect(connection.writer).toBe(writer);
    sendFrame(connection, { type: 'going_idle_ack' });
    await turn();
    await turn();
    const frames = sent
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line).type);
    expect(frames).toEqual(['going_idle_ack', 'outbound_result', 'going_idle_ack']);
  });
});

describe('GatewayRegistry', () => {
  it('finds every socket of a gateway, one or several, and forgets each on removal', () => {
    const registry = new GatewayRegistry();
    const make = (id: string, gatewayId: string) =>
      new RelayConnection(id, gatewayId, 'tenant', fakeSocket().ws, Date.now());
    const a = make('c_a', 'gw-1');
    const b = make('c_b', 'gw-1');
    const c = make('c_c', 'gw-2');
    registry.add(a);
    expect(registry.ofGateway('gw-1')).toEqual([a]);
    registry.add(b);
    registry.add(c);
    expect(registry.ofGateway('gw-1')).toEqual([a, b]);
    expect(registry.ofGateway('gw-2')).toEqual([c]);
    registry.remove(a);
    expect(registry.ofGateway('gw-1')).toEqual([b]);
    registry.remove(b);
    expect(registry.ofGateway('gw-1')).toEqual([]);
    registry.add(a);
    registry.add(a);
    expect(registry.ofGateway('gw-1')).toEqual([a]);
    expect(registry.size).toBe(2);
  });
});
