import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setPassword } from '../../src/dashboard/auth/password-provider.js';
import { type RunningDashboard, startDashboard } from '../../src/dashboard/server.js';
import { TEXTS } from '../../src/gateway/sessions.js';
import { ACTIVITY_CAP, ActivityLog, activityPath, readActivity } from '../../src/home/activity-log.js';
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
import { auditLines } from './helpers.js';

/**
 * The dashboard shows what the gateway is doing (issue #19): real `hermes connector serve` and
 * `hermes gateway run` processes (outbound-only: deliveries on the socket), a command agent that
 * blocks each turn until the test writes a release file, and the dashboard in-process over the
 * gateway's home. Running turns are listed and one Stop ends exactly that turn the `/stop` way;
 * the activity log survives a restart and stays capped; the relay info is what was adopted.
 */

const dir = tempDir('dashboard-turns');
const home = join(dir.path, 'home');
const db = join(dir.path, 'connector.db');
const release = join(dir.path, 'release');
const agentLog = join(dir.path, 'agent.log');
const agentScript = join(dir.path, 'agent.mjs');

const BLOCKING_AGENT = `import { appendFileSync, existsSync } from 'node:fs';
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const { event } = JSON.parse(input);
  appendFileSync(process.env.TURNS_AGENT_LOG, event.text + '\\n');
  const wait = () => (existsSync(process.env.TURNS_AGENT_RELEASE) ? process.stdout.write('ok ' + event.text) : setTimeout(wait, 50));
  wait();
});
`;

let connector: RunningProcess & { url: string };
let gateway: RunningProcess;
let dashboard: RunningDashboard;
let gatewayEnv: NodeJS.ProcessEnv;
const chats: WebChatClient[] = [];

interface Turn {
  session: string;
  platform: string;
  chat_id: string;
  started_at: string;
  elapsed_s: number;
}

const auth = () => ({ 'x-hermes-session-token': dashboard.sessionToken });

async function status(headers: Record<string, string> = auth()): Promise<Record<string, unknown>> {
  return (await (await fetch(`${dashboard.url}/api/status`, { headers })).json()) as Record<string, unknown>;
}

async function turns(): Promise<Turn[]> {
  return ((await status()).turns ?? []) as Turn[];
}

/** The gateway's dashboard on a random loopback port, as the cases use it. */
function startLoopbackDashboard(extra: { requireLogin?: boolean } = {}) {
  return startDashboard({
    home,
    host: '127.0.0.1',
    port: 0,
    log: pino({ level: 'silent' }),
    version: 'test',
    restartDrainTimeout: 0,
    env: {},
    ...extra,
  });
}

function stopTurn(session: unknown, headers: Record<string, string> = auth()) {
  return fetch(`${dashboard.url}/api/turns/stop`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ session }),
  });
}

async function activity(): Promise<{ id: string; kind: string; session?: string; by?: string }[]> {
  const res = await fetch(`${dashboard.url}/api/activity`, { headers: auth() });
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: { id: string; kind: string }[] }).events;
}

async function startGatewayProcess(): Promise<void> {
  gateway = startHermes(['gateway', 'run'], gatewayEnv);
  await gateway.waitFor(/gateway running for/, 30_000);
  await until(
    () => (readRuntimeStatus(home)?.relay?.ops.length ? true : undefined),
    60_000,
    'relay connected and descriptor adopted',
  );
}

beforeAll(async () => {
  writeFileSync(agentScript, BLOCKING_AGENT);
  writeFileSync(agentLog, '');
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'turns',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'turns',
    '--db',
    db,
  ]);
  const route = await hermes([
    'connector',
    'route',
    'add',
    '--tenant',
    'turns',
    '--platform',
    'webchat',
    '--key',
    'turns',
    '--db',
    db,
  ]);
  expect(route.code, route.stderr).toBe(0);
  connector = await startConnectorProcess(db);
  gatewayEnv = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: accessToken,
    GATEWAY_RELAY_INBOUND_PORT: '',
    HERMES_AGENT: 'command',
    HERMES_AGENT_COMMAND: `${process.execPath} ${agentScript}`,
    TURNS_AGENT_LOG: agentLog,
    TURNS_AGENT_RELEASE: release,
  };
  const enrolled = await hermes(
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-turns'],
    gatewayEnv,
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  await startGatewayProcess();
  dashboard = await startLoopbackDashboard();
}, 120_000);

afterAll(async () => {
  for (const chat of chats) chat.close();
  writeFileSync(release, '');
  await dashboard?.stop();
  await gateway?.stop();
  await connector?.stop();
  dir.remove();
});

describe('dashboard: running turns, per-turn Stop, activity, relay', () => {
  it('lists the running turns; Stop ends exactly that one turn with the /stop text', async () => {
    const alice = new WebChatClient(connector.url, 'turns', 'visitor-alice');
    const bob = new WebChatClient(connector.url, 'turns', 'visitor-bob');
    chats.push(alice, bob);
    await Promise.all([alice.open(), bob.open()]);
    alice.say('a1');
    bob.say('b1');
    await until(
      async () => ((await turns()).length === 2 ? true : undefined),
      30_000,
      'two running turns listed',
    );
    await until(
      () => (readFileSync(agentLog, 'utf8').split('\n').filter(Boolean).length === 2 ? true : undefined),
      30_000,
      'both turns reached the agent',
    );
    const listed = await turns();
    const aliceTurn = listed.find((turn) => turn.chat_id === alice.chatId);
    const bobTurn = listed.find((turn) => turn.chat_id === bob.chatId);
    expect(aliceTurn).toBeDefined();
    expect(bobTurn).toBeDefined();
    for (const turn of [aliceTurn, bobTurn] as Turn[]) {
      expect(turn.platform).toBe('webchat');
      expect(turn.session).toContain(turn.chat_id);
      expect(new Date(turn.started_at).toISOString()).toBe(turn.started_at);
      expect(turn.elapsed_s).toBeGreaterThanOrEqual(0);
    }

    // The public status probe does not say who is talking to the agent.
    const anonymous = await status({});
    expect(anonymous.active_agents).toBe(2);
    expect(anonymous).not.toHaveProperty('turns');
    expect(anonymous).not.toHaveProperty('relay');

    // Stop is a dashboard mutation: refused without the token; unknown turn → 404 {error}.
    expect((await stopTurn(aliceTurn?.session, {})).status).toBe(401);
    const unknown = await stopTurn('agent:main:webchat:dm:nobody');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error?: string }).error).toMatch(/no running turn/i);
    expect((await stopTurn('')).status).toBe(400);
    // A cross-site write is refused before anything is read.
    expect((await stopTurn(aliceTurn?.session, { ...auth(), origin: 'http://evil.example' })).status).toBe(
      403,
    );
    expect(existsSync(release)).toBe(false);

    const stopped = await stopTurn(aliceTurn?.session);
    expect(stopped.status).toBe(200);
    expect(await stopped.json()).toMatchObject({ ok: true, session: aliceTurn?.session, stopped: true });
    await until(
      () => (alice.agentTexts().includes(TEXTS.stopped) ? true : undefined),
      15_000,
      'alice told the turn stopped',
    );
    // Bob's turn is still running: listed, and not answered.
    const after = await turns();
    expect(after.map((turn) => turn.session)).toEqual([bobTurn?.session]);
    expect(bob.agentTexts()).toEqual([]);
    expect(existsSync(release)).toBe(false);

    writeFileSync(release, '');
    await until(
      () => (bob.agentTexts().includes('ok b1') ? true : undefined),
      30_000,
      'bob answered once released',
    );
    expect(alice.agentTexts()).not.toContain('ok a1');
    await until(async () => ((await turns()).length === 0 ? true : undefined), 15_000, 'no turns left');

    const events = await activity();
    const kinds = (session: string | undefined) =>
      events.filter((event) => event.session === session).map((event) => [event.kind, event.by]);
    expect(kinds(aliceTurn?.session)).toEqual([
      ['turn_started', undefined],
      ['turn_stopped', 'stop'],
    ]);
    expect(kinds(bobTurn?.session)).toEqual([
      ['turn_started', undefined],
      ['turn_finished', undefined],
    ]);
    // Metadata only: no message text in the log.
    const raw = readFileSync(activityPath(home), 'utf8');
    expect(raw).not.toContain('ok b1');
    expect(raw).not.toMatch(/"a1"|"b1"/);
  }, 120_000);

  it('shows the relay generation, identities and the op list adopted from the descriptor', async () => {
    const relay = (await status()).relay as {
      generation: string;
      inbound: string;
      identities: {
        platform: string;
        bot_id: string;
        descriptor_platform: string | null;
        label: string | null;
        ops: string[] | null;
      }[];
      ops: string[];
      contract_version: number | null;
    };
    expect(relay.generation).toBe('current');
    expect(relay.inbound).toBe('socket');
    expect(relay.identities).toHaveLength(1);
    const [identity] = relay.identities;
    // The connector's web-chat descriptor answered the gateway's hello.
    expect(identity).toMatchObject({ platform: 'relay', descriptor_platform: 'webchat', label: 'Web chat' });
    // The default descriptor's op list, as the gateway adopted it for its one identity.
    expect(relay.ops).toEqual(identity?.ops);
    expect(relay.ops).toEqual(expect.arrayContaining(['send', 'edit', 'typing']));
    expect(relay.contract_version).toEqual(expect.any(Number));
    expect(readRuntimeStatus(home)?.relay).toEqual(relay);
  });

  it('keeps the activity across a gateway restart, capped at 200, in a 0600 file', async () => {
    const before = await activity();
    expect(before.length).toBeGreaterThan(0);
    await gateway.stop();
    // Fill the log well past the cap while the gateway is down (the gateway is its one writer).
    const filler = new ActivityLog(home);
    for (let i = 0; i < 390; i++) filler.append({ kind: 'error', detail: `filler ${i}` });
    await startGatewayProcess();
    await until(
      async () => ((await activity()).some((event) => event.kind === 'relay_connected') ? true : undefined),
      30_000,
      'the new run logged',
    );
    const events = await activity();
    expect(events).toHaveLength(ACTIVITY_CAP);
    expect(events.at(-1)?.kind).toBe('relay_connected');
    expect(events.some((event) => event.kind === 'gateway_started')).toBe(true);
    // The file itself was trimmed when it reached twice the cap.
    const lines = readFileSync(activityPath(home), 'utf8').split('\n').filter(Boolean).length;
    expect(lines).toBeLessThan(ACTIVITY_CAP * 2);
    expect(readActivity(home)).toEqual(events);
    expect(statSync(activityPath(home)).mode & 0o777).toBe(0o600);
  }, 120_000);

  it('a cookie session stops a turn only with the CSRF token and its own origin; the stop is audited; a restarted dashboard shows the same activity', async () => {
    rmSync(release, { force: true });
    await setPassword(home, 'operator', 'correct horse battery staple');
    const gated = await startLoopbackDashboard({ requireLogin: true });
    try {
      const origin = new URL(gated.url).origin;
      const login = await fetch(`${gated.url}/auth/password-login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin },
        body: JSON.stringify({ username: 'operator', password: 'correct horse battery staple' }),
      });
      expect(login.status).toBe(200);
      const cookie = login.headers
        .getSetCookie()
        .map((line) => line.split(';')[0])
        .join('; ');
      const me = (await (await fetch(`${gated.url}/api/auth/me`, { headers: { cookie } })).json()) as {
        csrf_token: string;
      };
      expect(me.csrf_token).toEqual(expect.any(String));

      const carol = new WebChatClient(connector.url, 'turns', 'visitor-carol');
      chats.push(carol);
      await carol.open();
      carol.say('c1');
      await until(
        async () => ((await turns()).find((turn) => turn.chat_id === carol.chatId) ? true : undefined),
        30_000,
        "carol's turn listed",
      );
      const session = (await turns()).find((turn) => turn.chat_id === carol.chatId)?.session;
      const stopWith = (headers: Record<string, string>) =>
        fetch(`${gated.url}/api/turns/stop`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', cookie, ...headers },
          body: JSON.stringify({ session }),
        });

      // Without the CSRF token, or from another origin: refused, and the turn keeps running.
      const noCsrf = await stopWith({ origin });
      expect(noCsrf.status).toBe(403);
      expect(((await noCsrf.json()) as { error?: string }).error).toBe('csrf_token_invalid');
      const foreign = await stopWith({ origin: 'http://evil.example', 'x-hermes-csrf-token': me.csrf_token });
      expect(foreign.status).toBe(403);
      expect((await turns()).map((turn) => turn.session)).toContain(session);
      const stopsOf = () =>
        auditLines(home).filter((line) => line.event === 'turn_stop' && line.session === session);
      expect(stopsOf()).toEqual([]);

      const stopped = await stopWith({ origin, 'x-hermes-csrf-token': me.csrf_token });
      expect(stopped.status).toBe(200);
      expect(await stopped.json()).toMatchObject({ ok: true, session, stopped: true });
      await until(
        () => (carol.agentTexts().includes(TEXTS.stopped) ? true : undefined),
        15_000,
        'carol told the turn stopped',
      );
      expect(stopsOf()).toHaveLength(1);
    } finally {
      await gated.stop();
      writeFileSync(release, '');
    }

    // The activity lives in the gateway home: a restarted dashboard answers the same list.
    await until(
      async () =>
        (await activity()).some((event) => event.kind === 'turn_stopped' && event.by === 'stop')
          ? true
          : undefined,
      15_000,
      'the stop logged',
    );
    const before = await activity();
    await dashboard.stop();
    dashboard = await startLoopbackDashboard();
    expect(await activity()).toEqual(before);
    expect(before.length).toBeLessThanOrEqual(200);
  }, 120_000);
});
