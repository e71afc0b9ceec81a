import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { RelayTransport, type TransportStatus } from '../../src/gateway/transport.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';

/**
 * The 4401 rules of current §8 between a real connector process and our gateway's transport: a
 * token that is only out of date is answered `expired` and never latches, however often; a
 * revocation is answered `unauthorized` and latches on the fresh-token retry.
 */

const dir = tempDir('expired-token-e2e');
const db = `${dir.path}/connector.db`;
let connector: RunningProcess & { url: string };
let tenantToken: string;
const transports: RelayTransport[] = [];

async function provision(gatewayId: string): Promise<{ gatewayId: string; secret: string }> {
  const response = await fetch(`${connector.url}/relay/provision`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ gatewayId, platform: 'webchat' }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { gatewayId: string; secret: string };
}

function dropConnection(t: RelayTransport): void {
  // A network blip: the socket dies under the transport, which dials again on its own.
  (t as unknown as { ws?: WebSocket }).ws?.terminate();
}

beforeAll(async () => {
  tenantToken = (
    await hermesJson<{ accessToken: string }>(['connector', 'tenant', 'create', 'expiry', '--db', db])
  ).accessToken;
  connector = await startConnectorProcess(db);
});

afterAll(async () => {
  for (const t of transports) await t.stop();
  await connector?.stop();
  dir.remove();
});

function start(creds: { gatewayId: string; secret: string }, clockSeconds: () => number) {
  const statuses: TransportStatus[] = [];
  const dials = { waits: 0 };
  const t = new RelayTransport({
    url: `${connector.url.replace('http', 'ws')}/relay`,
    credentials: () => creds,
    platform: 'webchat',
    botId: '',
    log: pino({ level: 'silent' }),
    backoffBaseMs: 20,
    backoffCapMs: 50,
    clockSeconds,
    delay: (ms) => {
      dials.waits++;
      return new Promise((resolve) => setTimeout(resolve, ms));
    },
    onStatus: (status) => statuses.push(status),
  });
  transports.push(t);
  t.start();
  return { t, statuses, dials };
}

describe('4401 from a real connector (current §8)', () => {
  it('an expired-only token never latches: the gateway keeps re-dialing and is back once its clock is right', async () => {
    const creds = await provision('gw-expiry');
    let skewSeconds = 0;
    const { t, statuses, dials } = start(creds, () => Math.floor(Date.now() / 1000) + skewSeconds);
    await until(() => t.connected, 10_000, 'handshake');

    // Two hours slow: every token it mints is out of date when it arrives.
    skewSeconds = -7200;
    dropConnection(t);
    await until(
      () => t.currentStatus.errorCode === 'relay_token_expired' || undefined,
      10_000,
      'an expired refusal',
    );
    const before = dials.waits;
    await until(() => dials.waits >= before + 5 || undefined, 20_000, 'five more dials refused as expired');
    expect(t.currentStatus).toMatchObject({ state: 'retrying', errorCode: 'relay_token_expired' });
    expect(statuses.some((s) => s.state === 'failed')).toBe(false);

    skewSeconds = 0;
    await until(() => t.connected, 10_000, 'connected again');
    expect(t.currentStatus.state).toBe('connected');
  });

  it('a revocation latches: 4401 unauthorized on the live socket, then once more on the fresh-token retry', async () => {
    const creds = await provision('gw-revoked');
    const { t, statuses } = start(creds, () => Math.floor(Date.now() / 1000));
    await until(() => t.connected, 10_000, 'handshake');
    const revoked = await hermes(['connector', 'gateway', 'revoke', 'gw-revoked', '--yes', '--db', db]);
    expect(revoked.code, revoked.stderr).toBe(0);
    await until(() => t.currentStatus.state === 'failed' || undefined, 15_000, 'the latch');
    expect(t.currentStatus.errorCode).toBe('relay_revoked');
    // Latched: no further dial.
    const count = statuses.length;
    await new Promise((resolve) => setTimeout(resolve, 500)); // proving an absence: no re-dial
    expect(statuses.length).toBe(count);
  });
});
