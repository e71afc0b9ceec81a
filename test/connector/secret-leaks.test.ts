import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintUpgradeToken } from '../../src/auth/index.js';
import { type FakeDiscord, startFakeDiscord } from '../support/fake-discord.js';
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
import { TestRelayClient } from '../support/test-gateway.js';
import { WebChatClient } from '../support/webchat-client.js';

/**
 * Secrets never printed (#18): one run of connector, gateway and dashboard processes holding every
 * kind of secret — tenant token, enrollment token, gateway secret, delivery key, dashboard session
 * token, drain secret, Telegram and Discord bot tokens, Discord interaction tokens — exercised
 * through their normal paths and their refusals. Then every log line, every file the processes
 * wrote in the gateway home but the secret stores, every `--json` output that does not issue the
 * secret, and every error answer is searched for every secret.
 */

const dir = tempDir('secret-leaks');
const db = join(dir.path, 'connector.db');
const home = join(dir.path, 'home');
let telegram: FakeTelegram;
let discord: FakeDiscord;
let connector: RunningProcess & { url: string };
let gateway: RunningProcess;
let dashboard: RunningProcess & { url?: string };
const secrets: Record<string, string> = {};
/** Everything that must be free of secrets: outputs and answers, named for the failure message. */
const looked: { where: string; text: string }[] = [];

/** A secret the setup recorded: a missing one fails here, not later as a request that is wrong. */
function secret(name: string): string {
  const value = secrets[name];
  if (value === undefined) throw new Error(`the setup recorded no ${name}`);
  return value;
}

beforeAll(async () => {
  telegram = await FakeTelegram.start();
  discord = await startFakeDiscord({ heartbeatIntervalMs: 1_000 });
  secrets.telegramToken = telegram.token;
  secrets.discordToken = discord.token;
  const tenant = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'leaky',
    '--db',
    db,
  ]);
  secrets.tenantToken = tenant.accessToken;
  const enrollment = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'leaky',
    '--db',
    db,
  ]);
  secrets.enrollmentToken = enrollment.token;
  connector = await startConnectorProcess(db, {
    RELAY_LOG_LEVEL: 'debug',
    TELEGRAM_BOT_TOKEN: telegram.token,
    TELEGRAM_API_ROOT: telegram.apiRoot,
    DISCORD_BOT_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_PUBLIC_KEY: discord.publicKeyHex,
    DISCORD_API_ROOT: discord.apiRoot,
  });
  const env = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: tenant.accessToken,
    HERMES_AGENT: 'echo',
    HERMES_LOG_LEVEL: 'debug',
  };
  const enrolled = await hermes(
    [
      'gateway',
      'enroll',
      '--token',
      enrollment.token,
      '--connector-url',
      connector.url,
      '--gateway-id',
      'gw-leaky',
    ],
    env,
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  looked.push({ where: 'gateway enroll output', text: enrolled.stdout + enrolled.stderr });
  const dotEnv = readFileSync(join(home, '.env'), 'utf8');
  secrets.gatewaySecret = /GATEWAY_RELAY_SECRET=(\S+)/.exec(dotEnv)?.[1] ?? '';
  secrets.deliveryKey = /GATEWAY_RELAY_DELIVERY_KEY=(\S+)/.exec(dotEnv)?.[1] ?? '';
  expect(secrets.gatewaySecret.length).toBeGreaterThan(30);
  const route = await hermes([
    'connector',
    'route',
    'add',
    '--tenant',
    'leaky',
    '--platform',
    'webchat',
    '--key',
    'leak-room',
    '--gateway',
    'gw-leaky',
    '--db',
    db,
  ]);
  expect(route.code, route.stderr).toBe(0);
  await hermes([
    'connector',
    'route',
    'add',
    '--tenant',
    'leaky',
    '--platform',
    'discord',
    '--key',
    '*',
    '--gateway',
    'gw-leaky',
    '--db',
    db,
  ]);
  gateway = startHermes(['gateway', 'run'], env);
  await gateway.waitFor(/gateway running for/);
  secrets.sessionToken = randomBytes(32).toString('base64url');
  secrets.drainSecret = randomBytes(40).toString('base64url');
  dashboard = startHermes(['dashboard', '--port', '0'], {
    HERMES_HOME: home,
    HERMES_DASHBOARD_SESSION_TOKEN: secrets.sessionToken,
    HERMES_DASHBOARD_DRAIN_SECRET: secrets.drainSecret,
  });
  const match = await dashboard.waitFor(/dashboard on (http:\/\/127\.0\.0\.1:\d+)\//);
  dashboard.url = match[1];
}, 120_000);

afterAll(async () => {
  await dashboard?.stop();
  await gateway?.stop();
  await connector?.stop();
  await discord?.close();
  await telegram?.close();
  dir.remove();
});

async function answer(where: string, response: Promise<Response>): Promise<number> {
  const got = await response;
  looked.push({ where, text: `${JSON.stringify([...got.headers])} ${await got.text()}` });
  return got.status;
}

describe('secrets never printed', () => {
  it('uses every secret on its normal path and is refused on the wrong ones', async () => {
    // Web chat → signed delivery and socket → echo reply.
    const visitor = new WebChatClient(connector.url, 'leak-room', 'visitor-leak1');
    await visitor.open();
    visitor.say('hello secrets');
    await until(() => visitor.agentTexts().find((t) => t.includes('hello secrets')), 20_000, 'the echo');
    visitor.close();
    // A Discord slash command, answered through follow_up with its interaction token.
    await discord.waitForReady();
    const slash = await discord.postInteraction(`${connector.url}/discord/interactions`, {
      type: 2,
      guild_id: '1100000000000000001',
      channel_id: '1200000000000000001',
      member: { user: { id: '700000000000000001', username: 'alice' } },
      data: { name: 'help' },
    });
    secrets.interactionToken = slash.interaction.token;
    await until(
      () => discord.followUps.find((f) => f.token === slash.interaction.token),
      20_000,
      'the follow-up',
    );
    // Refusals, each with a secret in the request.
    expect(
      await answer(
        'enroll with a used token',
        fetch(`${connector.url}/relay/enroll`, {
          method: 'POST',
          headers: { authorization: `Bearer ${secrets.tenantToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ enrollmentToken: secrets.enrollmentToken, gatewayId: 'gw-other' }),
        }),
      ),
    ).toBe(403);
    expect(
      await answer(
        'provision with a wrong tenant token',
        fetch(`${connector.url}/relay/provision`, {
          method: 'POST',
          headers: { authorization: `Bearer ${secrets.tenantToken}x`, 'content-type': 'application/json' },
          body: '{}',
        }),
      ),
    ).toBe(401);
    const wrong = new TestRelayClient(
      `${connector.url.replace('http', 'ws')}/relay`,
      'gw-leaky',
      `${secret('gatewaySecret').slice(0, -2)}00`,
    );
    await wrong.connect();
    expect(await wrong.closed()).toBe(4401);
    expect(
      await answer(
        'media with a stale token',
        fetch(`${connector.url}/relay/media`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${mintUpgradeToken('gw-leaky', secret('gatewaySecret'), -3600)}`,
          },
          body: 'x',
        }),
      ),
    ).toBe(401);
    expect(
      await answer(
        'dashboard restart with a wrong session token',
        fetch(`${dashboard.url}/api/gateway/restart`, {
          method: 'POST',
          headers: {
            'x-hermes-session-token': `${secrets.sessionToken}x`,
            'content-type': 'application/json',
          },
          body: '{}',
        }),
      ),
    ).toBe(401);
    expect(
      await answer(
        'dashboard status',
        fetch(`${dashboard.url}/api/status`, {
          headers: { 'x-hermes-session-token': secret('sessionToken') },
        }),
      ),
    ).toBe(200);
    expect(
      await answer(
        'drain with a wrong drain secret',
        fetch(`${dashboard.url}/api/gateway/drain`, {
          method: 'POST',
          headers: { authorization: `Bearer ${secrets.drainSecret}x`, 'content-type': 'application/json' },
          body: '{"action":"cancel"}',
        }),
      ),
    ).toBe(401);
    expect(
      await answer(
        'drain cancel',
        fetch(`${dashboard.url}/api/gateway/drain`, {
          method: 'POST',
          headers: { authorization: `Bearer ${secrets.drainSecret}`, 'content-type': 'application/json' },
          body: '{"action":"cancel"}',
        }),
      ),
    ).toBe(200);
    for (const args of [
      ['connector', 'tenant', 'list', '--db', db],
      ['connector', 'gateway', 'list', '--db', db],
      ['connector', 'route', 'list', '--db', db],
      ['connector', 'deliveries', '--db', db],
      ['connector', 'deliveries', '--dead', '--db', db],
    ]) {
      for (const json of [true, false]) {
        const result = await hermes(json ? [...args, '--json'] : args);
        looked.push({
          where: `hermes ${args.join(' ')}${json ? ' --json' : ''}`,
          text: result.stdout + result.stderr,
        });
      }
    }
    const status = await hermes(['gateway', 'status', '--json'], { HERMES_HOME: home });
    looked.push({ where: 'hermes gateway status --json', text: status.stdout + status.stderr });
  });

  it('finds no secret in any output, log, answer or file but the secret stores', () => {
    looked.push({ where: 'connector output', text: connector.output() });
    looked.push({ where: 'gateway output', text: gateway.output() });
    looked.push({ where: 'dashboard output', text: dashboard.output() });
    // Files in the gateway home; .env (0600) is where the gateway's own secrets live.
    const walk = (path: string): string[] =>
      statSync(path).isDirectory() ? readdirSync(path).flatMap((name) => walk(join(path, name))) : [path];
    for (const file of walk(home)) {
      if (
        file.endsWith('/.env') ||
        file.endsWith('.db') ||
        file.endsWith('.db-wal') ||
        file.endsWith('.db-shm')
      )
        continue;
      looked.push({ where: file, text: readFileSync(file, 'latin1') });
    }
    expect(Object.keys(secrets).sort()).toEqual(
      [
        'deliveryKey',
        'discordToken',
        'drainSecret',
        'enrollmentToken',
        'gatewaySecret',
        'interactionToken',
        'sessionToken',
        'telegramToken',
        'tenantToken',
      ].sort(),
    );
    const leaks = looked.flatMap(({ where, text }) =>
      Object.entries(secrets)
        .filter(([, value]) => value.length >= 8 && text.includes(value))
        .map(([name]) => `${name} in ${where}`),
    );
    expect(leaks).toEqual([]);
    expect(looked.length).toBeGreaterThan(20);
  });
});
