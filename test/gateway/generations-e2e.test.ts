import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
 * Both protocol generations served by one connector at once, with real processes: a gateway of
 * the June generation (an inbound port: every event a signed HTTP POST) and one of the current
 * generation (no port: every event an `inbound` frame on its socket), each of its own tenant.
 * Each answers its own room's visitors, in order; neither agent ever sees the other's messages.
 */

const dir = tempDir('generations-e2e');
const db = join(dir.path, 'connector.db');
const agentScript = join(dir.path, 'agent.mjs');
// Replies `<name>: <text>` and records every text it was given, one JSON line each.
writeFileSync(
  agentScript,
  `import { appendFileSync } from 'node:fs';
const [name, log] = process.argv.slice(2);
let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => {
  const { messages } = JSON.parse(input);
  const text = messages[messages.length - 1].content;
  appendFileSync(log, JSON.stringify(text) + '\\n');
  process.stdout.write(name + ': ' + text);
});
`,
);

interface Generation {
  name: 'june' | 'current';
  home: string;
  log: string;
  env: NodeJS.ProcessEnv;
  process?: RunningProcess;
}

const generations: Record<'june' | 'current', Generation> = {
  june: { name: 'june', home: join(dir.path, 'june-home'), log: join(dir.path, 'june.log'), env: {} },
  current: {
    name: 'current',
    home: join(dir.path, 'current-home'),
    log: join(dir.path, 'current.log'),
    env: {},
  },
};
let connector: RunningProcess & { url: string };
// Cleared for the enrollment so it writes the home's .env instead of reusing a runner's values.
const RELAY_CREDENTIALS = [
  'GATEWAY_RELAY_URL',
  'GATEWAY_RELAY_ID',
  'GATEWAY_RELAY_SECRET',
  'GATEWAY_RELAY_DELIVERY_KEY',
] as const;

const seenBy = (g: Generation): string[] =>
  readFileSync(g.log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as string);

/** Sum of a connector metric's samples whose labels include all of `labels`. */
async function metricSum(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${connector.url}/metrics`)).text();
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    const set = (match[1] ?? '').split(',');
    if (Object.entries(labels).every(([key, value]) => set.includes(`${key}="${value}"`)))
      sum += Number(match[2]);
  }
  return sum;
}

async function enroll(g: Generation, inboundPort: number | undefined): Promise<void> {
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    `tenant-${g.name}`,
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    `tenant-${g.name}`,
    '--db',
    db,
  ]);
  writeFileSync(g.log, '');
  g.env = {
    HERMES_HOME: g.home,
    HERMES_PORTAL_TOKEN: accessToken,
    HERMES_AGENT: 'command',
    HERMES_AGENT_COMMAND: `${process.execPath} ${agentScript} ${g.name} ${g.log}`,
    GATEWAY_RELAY_INBOUND_HOST: '127.0.0.1',
    GATEWAY_RELAY_INBOUND_PORT: inboundPort === undefined ? '' : String(inboundPort),
    ...Object.fromEntries(RELAY_CREDENTIALS.map((key) => [key, ''])),
  };
  const enrolled = await hermes(
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', `gw-${g.name}`],
    g.env,
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  expect(enrolled.stdout).not.toContain(token);
  for (const key of RELAY_CREDENTIALS) delete g.env[key];
  const route = await hermes([
    'connector',
    'route',
    'add',
    '--tenant',
    `tenant-${g.name}`,
    '--platform',
    'webchat',
    '--key',
    `room-${g.name}`,
    '--gateway',
    `gw-${g.name}`,
    ...(inboundPort === undefined ? [] : ['--endpoint', `http://127.0.0.1:${inboundPort}`]),
    '--db',
    db,
  ]);
  expect(route.code, route.stderr).toBe(0);
  g.process = startHermes(['gateway', 'run'], g.env);
  await g.process.waitFor(/gateway running for/);
  await until(
    () => readRuntimeStatus(g.home)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    `${g.name} gateway connected`,
  );
}

beforeAll(async () => {
  connector = await startConnectorProcess(db);
  await enroll(generations.june, await freePort());
  await enroll(generations.current, undefined);
}, 90_000);

afterAll(async () => {
  for (const g of Object.values(generations)) await g.process?.stop();
  await connector?.stop();
  dir.remove();
});

describe('one connector, a June and a current gateway side by side', () => {
  it('the admin list shows each gateway with its generation', async () => {
    const rows = await hermesJson<{ id: string; generation: string }[]>([
      'connector',
      'gateway',
      'list',
      '--json',
      '--db',
      db,
    ]);
    const generationOf = (id: string) => rows.find((row) => row.id === id)?.generation;
    expect(generationOf('gw-june')).toBe('http');
    expect(generationOf('gw-current')).toBe('socket');
  });

  it('each answers its own tenant’s visitors, in order, and never sees the other’s messages', async () => {
    const june = new WebChatClient(connector.url, 'room-june', 'visitor-june-0001');
    const current = new WebChatClient(connector.url, 'room-current', 'visitor-current-0001');
    await june.open();
    await current.open();
    const rounds = 5;
    for (let i = 0; i < rounds; i++) {
      june.say(`to june ${i}`);
      current.say(`to current ${i}`);
    }
    await until(
      () => (june.agentTexts().length === rounds && current.agentTexts().length === rounds) || undefined,
      30_000,
      'every reply',
    );
    const expected = (name: string) => Array.from({ length: rounds }, (_, i) => `${name}: to ${name} ${i}`);
    expect(june.agentTexts()).toEqual(expected('june'));
    expect(current.agentTexts()).toEqual(expected('current'));
    expect(seenBy(generations.june)).toEqual(Array.from({ length: rounds }, (_, i) => `to june ${i}`));
    expect(seenBy(generations.current)).toEqual(Array.from({ length: rounds }, (_, i) => `to current ${i}`));

    // Each generation was served by its own transport: the June gateway's events as signed POSTs,
    // the current gateway's as frames on its socket (acknowledged by inbound_ack).
    await until(
      async () =>
        (await metricSum('relay_deliveries_total', { outcome: 'delivered', transport: 'http' })) === rounds &&
        (await metricSum('relay_deliveries_total', { outcome: 'delivered', transport: 'socket' })) === rounds,
      15_000,
      'every delivery counted on its transport',
    );
    // Nothing left behind in the connector for either of them.
    await until(async () => (await metricSum('relay_outbox_depth')) === 0, 15_000, 'an empty outbox');
    expect(await metricSum('relay_deliveries_total', { outcome: 'dead' })).toBe(0);
    june.close();
    current.close();
  });
});
