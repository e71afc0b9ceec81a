import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDelivery } from '../../src/auth/index.js';
import { TEXTS } from '../../src/gateway/sessions.js';
import { clearDrainRequest, writeDrainRequest } from '../../src/home/drain-control.js';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { freePort } from '../support/ports.js';
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
 * A real connector process and a real `hermes gateway run` process, enrolled through the CLI,
 * talking over 127.0.0.1; a web-chat visitor on the other side.
 */

const dir = tempDir('gateway-e2e');
const db = join(dir.path, 'connector.db');
const home = join(dir.path, 'home');
let connector: RunningProcess & { url: string };
let gateway: RunningProcess | undefined;
let inboundPort: number;
let gatewayEnv: NodeJS.ProcessEnv;

// A command agent that reports how much history it was given: proves history survives restarts.
const agentScript = join(dir.path, 'agent.mjs');
writeFileSync(
  agentScript,
  `let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => {
  const { messages } = JSON.parse(input);
  const last = messages[messages.length - 1].content;
  if (last.startsWith('sleep')) { setTimeout(() => process.stdout.write('slept'), 60_000); return; }
  if (last.startsWith('nap')) { setTimeout(() => process.stdout.write('napped'), 3_000); return; }
  if (last === 'emoji') { process.stdout.write('😀'.repeat(3000)); return; }
  process.stdout.write('turn ' + Math.floor(messages.length / 2 + 1) + ': ' + last);
});
`,
);

async function startGatewayProcess(extra: NodeJS.ProcessEnv = {}): Promise<RunningProcess> {
  const proc = startHermes(['gateway', 'run'], { ...gatewayEnv, ...extra });
  await proc.waitFor(/gateway running for/);
  await until(
    () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    'relay connected',
  );
  return proc;
}

function lastAgentText(visitor: WebChatClient): string | undefined {
  return visitor.agentTexts().at(-1);
}

beforeAll(async () => {
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'gw-e2e',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'gw-e2e',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db);
  inboundPort = await freePort();
  gatewayEnv = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: accessToken,
    // No GATEWAY_RELAY_INBOUND_HOST: the receiver binds loopback by default.
    GATEWAY_RELAY_INBOUND_PORT: String(inboundPort),
    HERMES_AGENT: 'command',
    HERMES_AGENT_COMMAND: `${process.execPath} ${agentScript}`,
    HERMES_RESTART_DRAIN_TIMEOUT: '5',
    GATEWAY_RELAY_URL: '',
    GATEWAY_RELAY_ID: '',
    GATEWAY_RELAY_SECRET: '',
    GATEWAY_RELAY_DELIVERY_KEY: '',
  };
  const enrolled = await hermes(
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-real'],
    gatewayEnv,
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  expect(enrolled.stdout).not.toContain(token);
  const route = await hermes([
    'connector',
    'route',
    'add',
    '--tenant',
    'gw-e2e',
    '--platform',
    'webchat',
    '--key',
    'room',
    '--endpoint',
    `http://127.0.0.1:${inboundPort}`,
    '--gateway',
    'gw-real',
    '--db',
    db,
  ]);
  expect(route.code, route.stderr).toBe(0);
  delete gatewayEnv.GATEWAY_RELAY_URL;
  delete gatewayEnv.GATEWAY_RELAY_ID;
  delete gatewayEnv.GATEWAY_RELAY_SECRET;
  delete gatewayEnv.GATEWAY_RELAY_DELIVERY_KEY;
  gateway = await startGatewayProcess();
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await connector?.stop();
  dir.remove();
});

describe('gateway against a real connector', () => {
  it('binds its signed-delivery receiver to loopback unless told otherwise (#18)', async () => {
    const listener = await until(
      () => readRuntimeStatus(home)?.platforms.relay?.listener_base ?? undefined,
      10_000,
      'the receiver listening',
    );
    expect(listener).toBe(`http://127.0.0.1:${inboundPort}`);
    expect(gateway?.output()).not.toMatch(/listening beyond this machine/);
  });

  it('stored the enrolled credentials in .env with mode 0600', () => {
    const envFile = join(home, '.env');
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    const text = readFileSync(envFile, 'utf8');
    for (const key of [
      'GATEWAY_RELAY_ID',
      'GATEWAY_RELAY_SECRET',
      'GATEWAY_RELAY_DELIVERY_KEY',
      'GATEWAY_RELAY_URL',
    ])
      expect(text).toContain(key);
  });

  it('answers a web-chat message through signed delivery and the relay socket', async () => {
    const visitor = new WebChatClient(connector.url, 'room', 'visitor-aaaa1');
    await visitor.open();
    visitor.say('hello');
    await until(() => (lastAgentText(visitor) === 'turn 1: hello' ? true : undefined), 15_000, 'agent reply');
    visitor.say('again');
    await until(
      () => (lastAgentText(visitor) === 'turn 2: again' ? true : undefined),
      15_000,
      'second reply with history',
    );
    expect(readRuntimeStatus(home)?.gateway_state).toBe('running');
    visitor.close();
  });

  it('rejects tampered, stale and unsigned deliveries with the reference codes', async () => {
    const key =
      /GATEWAY_RELAY_DELIVERY_KEY=(\S+)/
        .exec(readFileSync(join(home, '.env'), 'utf8'))?.[1]
        ?.replace(/^['"]|['"]$/g, '') ?? '';
    const body = JSON.stringify({
      type: 'message',
      event: { text: 'forged', source: { platform: 'webchat', chat_id: 'x' } },
    });
    const ts = Math.floor(Date.now() / 1000);
    const post = (headers: Record<string, string>, payload = body) =>
      fetch(`http://127.0.0.1:${inboundPort}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: payload,
      });
    const good = signDelivery(Buffer.from(body), key, ts);
    expect(
      (await post({ 'x-relay-timestamp': String(ts), 'x-relay-signature': good }, `${body} `)).status,
    ).toBe(401);
    expect(
      (
        await post({
          'x-relay-timestamp': String(ts - 400),
          'x-relay-signature': signDelivery(Buffer.from(body), key, ts - 400),
        })
      ).status,
    ).toBe(401);
    const unsigned = await post({});
    expect(unsigned.status).toBe(401);
    expect(await unsigned.json()).toEqual({ error: 'invalid delivery signature' });
    const replayId = 'dlv_replay_test';
    const withId = JSON.stringify({
      type: 'message',
      delivery_id: replayId,
      event: {
        text: 'once',
        source: { platform: 'webchat', chat_id: 'wc-room-replay0001', chat_type: 'dm' },
      },
    });
    const sig = signDelivery(Buffer.from(withId), key, ts);
    const first = await post({ 'x-relay-timestamp': String(ts), 'x-relay-signature': sig }, withId);
    expect(first.status).toBe(200);
    const replay = await post({ 'x-relay-timestamp': String(ts), 'x-relay-signature': sig }, withId);
    expect(await replay.json()).toEqual({ ok: true, duplicate: true });
  });

  it('/stop cancels the running turn of that chat only', async () => {
    const visitor = new WebChatClient(connector.url, 'room', 'visitor-stop01');
    const neighbour = new WebChatClient(connector.url, 'room', 'visitor-stop02');
    await visitor.open();
    await neighbour.open();
    visitor.say('sleep please');
    neighbour.say('nap please');
    await until(
      () => (readRuntimeStatus(home)?.active_agents === 2 ? true : undefined),
      15_000,
      'both turns running',
    );
    visitor.say('/stop');
    await until(
      () => (visitor.agentTexts().includes(TEXTS.stopped) ? true : undefined),
      15_000,
      'stopped reply',
    );
    // The other chat's turn was not touched: it runs to its end and replies as usual.
    await until(
      () => (neighbour.agentTexts().includes('napped') ? true : undefined),
      15_000,
      'the neighbour reply',
    );
    expect(neighbour.agentTexts()).not.toContain(TEXTS.stopped);
    expect(visitor.agentTexts()).not.toContain('slept');
    await until(
      () => (readRuntimeStatus(home)?.active_agents === 0 ? true : undefined),
      15_000,
      'turns released',
    );
    visitor.close();
    neighbour.close();
  });

  it('drains: refuses new turns with the exact text, lets the running one finish, and recovers on cancel', async () => {
    const busy = new WebChatClient(connector.url, 'room', 'visitor-drain1');
    const other = new WebChatClient(connector.url, 'room', 'visitor-drain2');
    await busy.open();
    await other.open();
    busy.say('sleep while draining');
    await until(
      () => (readRuntimeStatus(home)?.active_agents === 1 ? true : undefined),
      15_000,
      'turn running',
    );
    writeDrainRequest(home, { principal: 'test' });
    await until(
      () => (readRuntimeStatus(home)?.gateway_state === 'draining' ? true : undefined),
      5_000,
      'draining state',
    );
    other.say('new work');
    await until(
      () => (other.agentTexts().includes(TEXTS.drainRefusal) ? true : undefined),
      15_000,
      'refusal',
    );
    expect(readRuntimeStatus(home)?.active_agents).toBe(1);
    busy.say('/stop'); // the running turn ends (here by /stop, which still works while draining)
    await until(
      () => (readRuntimeStatus(home)?.active_agents === 0 ? true : undefined),
      15_000,
      'active agents 0',
    );
    expect(clearDrainRequest(home)).toBe(true);
    await until(
      () => (readRuntimeStatus(home)?.gateway_state === 'running' ? true : undefined),
      5_000,
      'running again',
    );
    other.say('after drain');
    await until(
      () => (lastAgentText(other) === 'turn 1: after drain' ? true : undefined),
      15_000,
      'accepted again',
    );
    busy.close();
    other.close();
  });

  it('keeps conversation history across a gateway restart', async () => {
    const visitor = new WebChatClient(connector.url, 'room', 'visitor-aaaa1');
    const code = await gateway?.stop('SIGINT');
    expect(code).toBe(0);
    expect(readRuntimeStatus(home)?.gateway_state).toBe('stopped');
    gateway = await startGatewayProcess();
    await visitor.open();
    visitor.say('after restart');
    await until(
      () => (lastAgentText(visitor) === 'turn 3: after restart' ? true : undefined),
      20_000,
      'reply with history',
    );
    visitor.close();
  });

  it('latches a revocation: state failed with relay_revoked and no dial storm', async () => {
    const revoke = await hermes(['connector', 'gateway', 'revoke', 'gw-real', '--yes', '--db', db]);
    expect(revoke.code).toBe(0);
    await until(
      () => (readRuntimeStatus(home)?.platforms.relay?.error_code === 'relay_revoked' ? true : undefined),
      15_000,
      'revoked latch',
    );
    expect(readRuntimeStatus(home)?.platforms.relay?.state).toBe('failed');
    const failuresAt = async () => {
      const metrics = await (await fetch(`${connector.url}/metrics`)).text();
      return [...metrics.matchAll(/relay_gateway_auth_failures_total\{[^}]*\} (\d+)/g)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    };
    const before = await failuresAt();
    // Proving that nothing happens takes a wait: three seconds cover several backoff steps, during
    // which a gateway that had not latched would have re-dialed and been refused again.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await failuresAt()).toBe(before);
  });
});
