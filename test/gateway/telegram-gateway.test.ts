import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { FakeTelegram } from '../support/fake-telegram.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  tempDir,
  until,
} from '../support/processes.js';

/**
 * Telegram end to end: fake Bot API ⇄ real connector ⇄ real outbound-only gateway (deliveries as
 * `inbound` frames over its socket), replying past Telegram's 4096 UTF-16 limit.
 */

const dir = tempDir('gateway-telegram');
const db = join(dir.path, 'connector.db');
const home = join(dir.path, 'home');
const CHAT = { id: 777, type: 'private' as const, first_name: 'Grace' };
let telegram: FakeTelegram;
let connector: RunningProcess & { url: string };
let gateway: RunningProcess;

const agentScript = join(dir.path, 'emoji.mjs');
writeFileSync(
  agentScript,
  `let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => process.stdout.write('😀'.repeat(3000) + ' done'));
`,
);

beforeAll(async () => {
  telegram = await FakeTelegram.start();
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'tg',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'tg',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db, {
    TELEGRAM_BOT_TOKEN: telegram.token,
    TELEGRAM_API_ROOT: telegram.apiRoot,
  });
  const env = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: accessToken,
    GATEWAY_RELAY_PLATFORM: 'telegram',
    HERMES_AGENT: 'command',
    HERMES_AGENT_COMMAND: `${process.execPath} ${agentScript}`,
  };
  const enrolled = await hermes(
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-tg'],
    env,
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  const route = await hermes([
    'connector',
    'route',
    'add',
    '--tenant',
    'tg',
    '--platform',
    'telegram',
    '--key',
    String(CHAT.id),
    '--gateway',
    'gw-tg',
    '--db',
    db,
  ]);
  expect(route.code, route.stderr).toBe(0);
  gateway = startHermes(['gateway', 'run'], env);
  await gateway.waitFor(/gateway running for/);
  await until(
    () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    'relay connected',
  );
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await connector?.stop();
  await telegram?.close();
  dir.remove();
});

describe('Telegram through connector and gateway', () => {
  it('splits a long emoji reply within 4096 UTF-16 units per message', async () => {
    telegram.pushUpdate({
      message: { chat: CHAT, from: { id: 777, is_bot: false, first_name: 'Grace' }, text: 'emoji please' },
    });
    await until(
      () =>
        (telegram.messages.get(String(CHAT.id)) ?? []).some((m) => m.text.includes('done'))
          ? true
          : undefined,
      20_000,
      'reply',
    );
    const sent = telegram.messages.get(String(CHAT.id)) ?? [];
    expect(sent.length).toBeGreaterThanOrEqual(2);
    for (const message of sent) expect(message.text.length).toBeLessThanOrEqual(4096);
    // Measured in UTF-16 the reply needs two messages; counted in code points it would have fit in one.
    const body = sent.map((m) => m.text.replace(/ \(\d+\/\d+\)$/, '')).join('');
    expect(body.replace(/\s/g, '')).toBe(`${'😀'.repeat(3000)}done`);
    for (const message of sent) expect(message.text).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });
});
