import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDashboard, startDashboard } from '../../src/dashboard/server.js';
import { readDrainRequest } from '../../src/home/drain-control.js';
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
 * The dashboard API over a real gateway process (itself enrolled with a real connector): status,
 * the drain endpoint cases of lifecycle reference §2.5, the drain-secret token route, and a full
 * drain → quiesce → cancel cycle.
 */

const dir = tempDir('dashboard-api');
const home = join(dir.path, 'home');
const db = join(dir.path, 'connector.db');
const drainSecret = randomBytes(32).toString('base64url');
let connector: RunningProcess & { url: string };
let gateway: RunningProcess;
let open: RunningDashboard;
let secured: RunningDashboard;

const agentScript = join(dir.path, 'agent.mjs');

beforeAll(async () => {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(
    agentScript,
    "let s='';process.stdin.on('data',c=>s+=c);process.stdin.on('end',()=>{const m=JSON.parse(s).messages.at(-1).content;setTimeout(()=>process.stdout.write('done: '+m), m.startsWith('slow')?1500:0)});",
  );
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'dash',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'dash',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db);
  const inbound = await freePort();
  const env = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: accessToken,
    GATEWAY_RELAY_INBOUND_HOST: '127.0.0.1',
    GATEWAY_RELAY_INBOUND_PORT: String(inbound),
    HERMES_AGENT: 'command',
    HERMES_AGENT_COMMAND: `${process.execPath} ${agentScript}`,
  };
  expect(
    (
      await hermes(
        ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-dash'],
        env,
      )
    ).code,
  ).toBe(0);
  expect(
    (
      await hermes([
        'connector',
        'route',
        'add',
        '--tenant',
        'dash',
        '--platform',
        'webchat',
        '--key',
        'dash',
        '--endpoint',
        `http://127.0.0.1:${inbound}`,
        '--db',
        db,
      ])
    ).code,
  ).toBe(0);
  gateway = startHermes(['gateway', 'run'], env);
  await gateway.waitFor(/gateway running for/);
  const log = pino({ level: 'silent' });
  open = await startDashboard({
    home,
    host: '127.0.0.1',
    port: 0,
    log,
    version: 'test',
    restartDrainTimeout: 180,
    env: {},
  });
  secured = await startDashboard({
    home,
    host: '127.0.0.1',
    port: 0,
    log,
    version: 'test',
    restartDrainTimeout: 180,
    env: { HERMES_DASHBOARD_DRAIN_SECRET: drainSecret },
  });
}, 60_000);

afterAll(async () => {
  await open?.stop();
  await secured?.stop();
  await gateway?.stop();
  await connector?.stop();
  dir.remove();
});

async function status(d: RunningDashboard): Promise<Record<string, unknown>> {
  return (await (await fetch(`${d.url}/api/status`)).json()) as Record<string, unknown>;
}

function drain(
  d: RunningDashboard,
  body: string | undefined,
  headers: Record<string, string> = { 'x-hermes-session-token': d.sessionToken },
) {
  return fetch(`${d.url}/api/gateway/drain`, {
    method: 'POST',
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body,
  });
}

describe('dashboard API', () => {
  it('reports liveness from the PID record and the shared busy/drainable derivation', async () => {
    await until(
      async () => ((await status(open)).gateway_state === 'running' ? true : undefined),
      15_000,
      'running',
    );
    const view = await status(open);
    expect(view).toMatchObject({
      version: 'test',
      gateway_running: true,
      gateway_drainable: true,
      gateway_busy: false,
      active_agents: 0,
      restart_drain_timeout: 180,
      auth_required: false,
    });
    expect(view.gateway_pid).toBe(gateway.child.pid);
  });

  it('drain endpoint: missing or invalid JSON means drain; unknown action is 400; cancel reports was_draining', async () => {
    const missing = await drain(open, undefined);
    expect(missing.status).toBe(200);
    expect(await missing.json()).toMatchObject({
      ok: true,
      action: 'drain',
      draining: true,
      suppress_notification: false,
    });
    expect((readDrainRequest(home) as Record<string, unknown>).principal).toBe('dashboard');
    expect((await drain(open, '{not json')).status).toBe(200);
    const unknown = await drain(open, JSON.stringify({ action: 'pause' }));
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(await unknown.json())).toContain(
      "Unknown drain action 'pause'; expected 'drain' or 'cancel'",
    );
    expect(await (await drain(open, JSON.stringify({ action: 'cancel' }))).json()).toEqual({
      ok: true,
      action: 'cancel',
      was_draining: true,
    });
    expect(await (await drain(open, JSON.stringify({ action: 'cancel' }))).json()).toEqual({
      ok: true,
      action: 'cancel',
      was_draining: false,
    });
    expect((await drain(open, JSON.stringify({ action: 'drain' }), {})).status).toBe(401);
  });

  it('with a drain secret, the drain route takes only the bearer and records its principal', async () => {
    expect((await drain(secured, JSON.stringify({ action: 'cancel' }))).status).toBe(401);
    expect(
      (await drain(secured, JSON.stringify({ action: 'cancel' }), { authorization: 'Bearer wrong' })).status,
    ).toBe(401);
    const ok = await drain(secured, JSON.stringify({ action: 'drain' }), {
      authorization: `Bearer ${drainSecret}`,
    });
    expect(ok.status).toBe(200);
    expect((readDrainRequest(home) as Record<string, unknown>).principal).toBe('drain-control');
    const cancelled = await drain(secured, JSON.stringify({ action: 'cancel' }), {
      authorization: `Bearer ${drainSecret}`,
    });
    expect(await cancelled.json()).toEqual({ ok: true, action: 'cancel', was_draining: true });
    const log = readFileSync(join(home, 'logs', 'dashboard-auth.log'), 'utf8');
    expect(log).toContain('token_auth_success');
    expect(log).not.toContain(drainSecret);
  });

  it('end to end: drain while a turn runs → draining, the turn finishes, active_agents 0 → cancel → running', async () => {
    const events: string[] = [];
    const stream = await fetch(`${open.url}/api/events`, {
      headers: { 'x-hermes-session-token': open.sessionToken },
    });
    expect(stream.status).toBe(200);
    const reader = stream.body?.getReader();
    void (async () => {
      const decoder = new TextDecoder();
      for (;;) {
        const chunk = await reader?.read();
        if (!chunk || chunk.done) return;
        events.push(decoder.decode(chunk.value));
      }
    })().catch(() => undefined);

    const visitor = new WebChatClient(connector.url, 'dash', 'visitor-dash01');
    await visitor.open();
    visitor.say('slow work');
    await until(
      async () => ((await status(open)).active_agents === 1 ? true : undefined),
      15_000,
      'turn running',
    );
    expect((await status(open)).gateway_busy).toBe(true);
    await drain(open, JSON.stringify({ action: 'drain' }));
    await until(
      async () => {
        const view = await status(open);
        return view.gateway_state === 'draining' && view.active_agents === 0 ? view : undefined;
      },
      15_000,
      'drained',
    );
    expect(visitor.agentTexts()).toContain('done: slow work');
    await drain(open, JSON.stringify({ action: 'cancel' }));
    await until(
      async () => ((await status(open)).gateway_state === 'running' ? true : undefined),
      5_000,
      'running again',
    );
    await until(
      () => (events.join('').includes('"gateway_state":"draining"') ? true : undefined),
      5_000,
      'draining event',
    );
    expect(events.join('')).toContain('event: action');
    await reader?.cancel();
    visitor.close();
  });
});
