import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  tempDir,
  until,
} from '../support/processes.js';
import { WebChatClient } from '../support/webchat-client.js';

/**
 * Scale to zero by hand, with real processes (current §9): `hermes gateway enroll --wake-url`
 * registers where to poke, `hermes gateway idle` stops the gateway saying `going_idle`, a message
 * that arrives meanwhile is kept and pokes the wake URL once, and the next start takes it.
 */

const dir = tempDir('idle-e2e');
const db = join(dir.path, 'connector.db');
const home = join(dir.path, 'home');
let connector: RunningProcess & { url: string };
let gateway: RunningProcess | undefined;
let wakeServer: Server;
const pokes: string[] = [];
let gatewayEnv: NodeJS.ProcessEnv;

async function startGateway(): Promise<RunningProcess> {
  const proc = startHermes(['gateway', 'run'], gatewayEnv);
  await proc.waitFor(/gateway running for/);
  await until(
    () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    'relay connected',
  );
  return proc;
}

interface GatewayRow {
  id: string;
  idleSince: string | null;
}

beforeAll(async () => {
  wakeServer = createServer((req, res) => {
    pokes.push(`${req.method} ${req.url}`);
    res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => wakeServer.listen(0, '127.0.0.1', resolve));
  const wakeUrl = `http://127.0.0.1:${(wakeServer.address() as AddressInfo).port}/poke`;

  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'idle',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'idle',
    '--db',
    db,
  ]);
  // The wake URL is on 127.0.0.1: the connector refuses private addresses unless told otherwise.
  connector = await startConnectorProcess(db, { RELAY_WAKE_ALLOW_PRIVATE: '1' });
  gatewayEnv = { HERMES_HOME: home, HERMES_PORTAL_TOKEN: accessToken, GATEWAY_RELAY_INBOUND_PORT: '' };
  const enrolled = await hermes(
    [
      'gateway',
      'enroll',
      '--token',
      token,
      '--connector-url',
      connector.url,
      '--gateway-id',
      'gw-idle',
      '--wake-url',
      wakeUrl,
    ],
    gatewayEnv,
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  const route = await hermes([
    'connector',
    'route',
    'add',
    '--tenant',
    'idle',
    '--platform',
    'webchat',
    '--key',
    'sleepy',
    '--gateway',
    'gw-idle',
    '--db',
    db,
  ]);
  expect(route.code, route.stderr).toBe(0);
  gateway = await startGateway();
}, 90_000);

afterAll(async () => {
  await gateway?.stop();
  await connector?.stop();
  await new Promise<void>((resolve) => wakeServer.close(() => resolve()));
  dir.remove();
});

describe('hermes gateway idle', () => {
  it('goes idle, keeps what arrives, pokes the wake URL once, and delivers it on the next start', async () => {
    const visitor = new WebChatClient(connector.url, 'sleepy', 'visitor-idle-0001');
    await visitor.open();
    visitor.say('before');
    await until(() => visitor.agentTexts().includes('echo: before') || undefined, 15_000, 'first reply');

    const idle = await hermes(['gateway', 'idle'], gatewayEnv);
    expect(idle.code, idle.stderr).toBe(0);
    expect(idle.stdout).toContain('✓ Gateway idle');
    await gateway?.stop(); // already gone: `idle` waited for the exit
    gateway = undefined;
    const status = await hermesJson<{ gateway_state: string; exit_reason: string | null }>(
      ['gateway', 'status', '--json'],
      gatewayEnv,
    );
    expect(status).toMatchObject({ running: false, gateway_state: 'stopped', exit_reason: 'idle' });
    const rows = await hermesJson<GatewayRow[]>(['connector', 'gateway', 'list', '--json', '--db', db]);
    const row = rows.find((r) => r.id === 'gw-idle');
    expect(row?.idleSince).toBeTruthy();

    // Two messages while idle: kept, one poke (the cooldown holds the second).
    visitor.say('while asleep 1');
    visitor.say('while asleep 2');
    await until(() => pokes.length >= 1 || undefined, 15_000, 'the wake poke');
    expect(pokes).toEqual(['GET /poke']);
    expect(visitor.agentTexts()).toEqual(['echo: before']);

    gateway = await startGateway();
    await until(
      () => visitor.agentTexts().length === 3 || undefined,
      20_000,
      'the backlog delivered after the start',
    );
    expect(visitor.agentTexts()).toEqual(['echo: before', 'echo: while asleep 1', 'echo: while asleep 2']);
    expect(pokes).toHaveLength(1);
    visitor.close();
  });

  it('says so when no gateway is running', async () => {
    const other = await hermes(['gateway', 'idle'], { HERMES_HOME: join(dir.path, 'empty-home') });
    expect(other.stdout).toContain('✗ No gateway running for this profile');
  });
});
