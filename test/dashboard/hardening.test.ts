import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startupBanner } from '../../src/cli/dashboard-commands.js';
import { setPassword } from '../../src/dashboard/auth/password-provider.js';
import { DASHBOARD_ASSETS, renderDashboardPage } from '../../src/dashboard/page.js';
import {
  type DashboardOptions,
  loggablePath,
  type RunningDashboard,
  startDashboard,
} from '../../src/dashboard/server.js';
import { readDrainRequest } from '../../src/home/drain-control.js';
import { CLI, until } from '../support/processes.js';
import { auditLines, STRONG_SECRET, tempHome } from './helpers.js';

/**
 * Security defects of the dashboard server, each against the real server on 127.0.0.1: hostile
 * bodies (deep nesting), cross-site request forgery, security headers, trickled bodies, and the
 * session token leaking into a log file.
 */

const USER = 'operator';
const PASSWORD = 'correct horse battery staple';

async function dashboard(
  options: Partial<DashboardOptions> = {},
): Promise<RunningDashboard & { home: string; origin: string }> {
  const home = options.home ?? tempHome();
  const running = await startDashboard({
    host: '127.0.0.1',
    port: 0,
    log: pino({ level: 'silent' }),
    version: 'test',
    restartDrainTimeout: 5,
    env: {},
    ...options,
    home,
  });
  onTestFinished(() => running.stop());
  return Object.assign(running, { home, origin: new URL(running.url).origin });
}

/** A dashboard that needs a cookie login (on loopback, like `--require-login`). */
async function cookieDashboard(): Promise<RunningDashboard & { home: string; origin: string }> {
  const home = tempHome();
  await setPassword(home, USER, PASSWORD);
  return dashboard({ home, requireLogin: true });
}

/** Log in like the page does; returns the Cookie header value. */
async function login(d: RunningDashboard): Promise<string> {
  const res = await fetch(`${d.url}/auth/password-login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: new URL(d.url).origin },
    body: JSON.stringify({ username: USER, password: PASSWORD }),
  });
  expect(res.status).toBe(200);
  return res.headers
    .getSetCookie()
    .map((line) => line.split(';')[0])
    .join('; ');
}

function post(d: RunningDashboard, path: string, init: { headers?: Record<string, string>; body?: string }) {
  return fetch(`${d.url}${path}`, { method: 'POST', headers: init.headers ?? {}, body: init.body });
}

describe('A. hostile bodies', () => {
  it('a drain body nested 8,000 levels deep is no 500, and the server keeps answering', async () => {
    const d = await dashboard();
    const body = `{"action":${'['.repeat(8000)}${']'.repeat(8000)}}`;
    expect(body.length).toBeLessThan(16 * 1024);
    const res = await post(d, '/api/gateway/drain', {
      headers: { 'content-type': 'application/json', 'x-hermes-session-token': d.sessionToken },
      body,
    });
    expect(res.status).not.toBe(500);
    expect(res.status).toBeLessThan(500);
    // Unreadable (too deeply nested) means "no body", which means drain (reference §2.5).
    expect(await res.json()).toMatchObject({ ok: true, action: 'drain' });
    expect((await fetch(`${d.url}/api/status`)).status).toBe(200);
  });

  it('structured or nested actions within the nesting bound are a 400 that echoes no structure', async () => {
    const d = await dashboard();
    for (const action of [
      '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
      '{"a":{}}',
    ]) {
      const res = await post(d, '/api/gateway/drain', {
        headers: { 'content-type': 'application/json', 'x-hermes-session-token': d.sessionToken },
        body: `{"action":${action}}`,
      });
      expect(res.status, action).toBe(400);
      expect(((await res.json()) as { detail: string }).detail).toMatch(
        /^Unknown drain action '\[(array|object)\]'; expected 'drain' or 'cancel'$/,
      );
    }
    expect((await fetch(`${d.url}/api/status`)).status).toBe(200);
  });

  it('hostile login bodies (deep nesting, prototype keys, wrong types) are 4xx, never 500', async () => {
    const d = await cookieDashboard();
    const bodies = [
      `{"username":${'['.repeat(8000)}${']'.repeat(8000)},"password":"x"}`,
      '{"__proto__":{"admin":true},"username":"a","password":"b"}',
      '{"constructor":{"prototype":{"x":1}},"username":"a","password":"b"}',
      '{"username":1,"password":[]}',
      'null',
      '[]',
      '"x"',
    ];
    for (const body of bodies) {
      const res = await post(d, '/auth/password-login', {
        headers: { 'content-type': 'application/json', origin: d.origin },
        body,
      });
      expect(res.status, body.slice(0, 40)).toBeGreaterThanOrEqual(400);
      expect(res.status, body.slice(0, 40)).toBeLessThan(500);
    }
    expect((await fetch(`${d.url}/api/status`)).status).toBe(200);
  });
});

describe('B. cross-site request forgery', () => {
  it('a cookie-authenticated drain from another origin or another port of this host is refused (403)', async () => {
    const d = await cookieDashboard();
    const cookie = await login(d);
    const port = Number(new URL(d.url).port);
    for (const origin of [
      'http://evil.example',
      `http://127.0.0.1:${port + 1}`,
      'null',
      `https://127.0.0.1:${port}`,
    ]) {
      for (const path of ['/api/gateway/drain', '/api/gateway/restart']) {
        const res = await post(d, path, {
          headers: { cookie, origin, 'content-type': 'text/plain' },
          body: '{"action":"drain"}',
        });
        expect(res.status, `${origin} ${path}`).toBe(403);
        expect(await res.json()).toMatchObject({ error: 'cross_origin_request' });
      }
    }
    // A browser's same-site (another port) or cross-site fetch without an Origin header.
    for (const site of ['same-site', 'cross-site']) {
      const res = await post(d, '/api/gateway/drain', { headers: { cookie, 'sec-fetch-site': site } });
      expect(res.status, site).toBe(403);
    }
    expect(readDrainRequest(d.home)).toBeNull();
    expect(auditLines(d.home).some((line) => line.event === 'csrf_rejected')).toBe(true);
  });

  it('a cookie-authenticated write needs the CSRF token from /api/auth/me', async () => {
    const d = await cookieDashboard();
    const cookie = await login(d);
    const noToken = await post(d, '/api/gateway/drain', {
      headers: { cookie, origin: d.origin, 'content-type': 'application/json' },
      body: '{"action":"drain"}',
    });
    expect(noToken.status).toBe(403);
    expect(await noToken.json()).toMatchObject({ error: 'csrf_token_invalid' });
    const wrong = await post(d, '/api/gateway/restart', {
      headers: { cookie, origin: d.origin, 'x-hermes-csrf-token': 'guess' },
    });
    expect(wrong.status).toBe(403);
    // The session token is not a CSRF token on a cookie-gated dashboard.
    const sessionToken = await post(d, '/api/gateway/drain', {
      headers: { cookie, 'x-hermes-csrf-token': d.sessionToken },
    });
    expect(sessionToken.status).toBe(403);
    expect(readDrainRequest(d.home)).toBeNull();

    const me = await fetch(`${d.url}/api/auth/me`, { headers: { cookie } });
    expect(me.status).toBe(200);
    const csrf = ((await me.json()) as { csrf_token: string }).csrf_token;
    expect(csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(me.headers.get('cache-control')).toBe('no-store');

    const ok = await post(d, '/api/gateway/drain', {
      headers: { cookie, origin: d.origin, 'x-hermes-csrf-token': csrf, 'content-type': 'application/json' },
      body: '{"action":"drain"}',
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ ok: true, action: 'drain', draining: true });
    expect(readDrainRequest(d.home)?.principal).toBe('dashboard');
    // No body and no content type still means drain; a bad body still means drain.
    const empty = await post(d, '/api/gateway/drain', { headers: { cookie, 'x-hermes-csrf-token': csrf } });
    expect(await empty.json()).toMatchObject({ ok: true, action: 'drain' });
    const bad = await post(d, '/api/gateway/drain', {
      headers: { cookie, 'x-hermes-csrf-token': csrf, 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(await bad.json()).toMatchObject({ ok: true, action: 'drain' });
    const cancel = await post(d, '/api/gateway/drain', {
      headers: { cookie, origin: d.origin, 'x-hermes-csrf-token': csrf, 'content-type': 'application/json' },
      body: '{"action":"cancel"}',
    });
    expect(await cancel.json()).toEqual({ ok: true, action: 'cancel', was_draining: true });
    expect(
      auditLines(d.home)
        .map((line) => JSON.stringify(line))
        .join('\n'),
    ).not.toContain(csrf);
  });

  it('writes take only application/json (or no body): text/plain and forms are refused with 415', async () => {
    const d = await cookieDashboard();
    const cookie = await login(d);
    const csrf = (
      (await (await fetch(`${d.url}/api/auth/me`, { headers: { cookie } })).json()) as {
        csrf_token: string;
      }
    ).csrf_token;
    for (const [type, body] of [
      ['text/plain', '{"action":"drain"}'],
      ['text/plain;charset=UTF-8', ''],
      ['application/x-www-form-urlencoded', 'action=drain'],
      ['multipart/form-data; boundary=x', '--x--'],
    ] as const) {
      const res = await post(d, '/api/gateway/drain', {
        headers: { cookie, origin: d.origin, 'x-hermes-csrf-token': csrf, 'content-type': type },
        body,
      });
      expect(res.status, type).toBe(415);
      expect(((await res.json()) as { detail: string }).detail).toContain('application/json');
    }
    // A body without any content type is refused too (an empty one means drain, see above).
    const raw = await rawRequest(
      d,
      `POST /api/gateway/drain HTTP/1.1\r\nHost: ${new URL(d.url).host}\r\nCookie: ${cookie}\r\nX-Hermes-CSRF-Token: ${csrf}\r\nContent-Length: 18\r\nConnection: close\r\n\r\n{"action":"drain"}`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 415 /);
    expect(readDrainRequest(d.home)).toBeNull();
  });

  it('session-token (loopback) and bearer-token writes need no CSRF token, but a foreign Origin is still refused', async () => {
    const d = await dashboard();
    const headers = { 'x-hermes-session-token': d.sessionToken, 'content-type': 'application/json' };
    const foreign = await post(d, '/api/gateway/drain', {
      headers: { ...headers, origin: 'http://localhost:1' },
      body: '{"action":"drain"}',
    });
    expect(foreign.status).toBe(403);
    const same = await post(d, '/api/gateway/drain', {
      headers: { ...headers, origin: d.origin },
      body: '{"action":"drain"}',
    });
    expect(same.status).toBe(200);
    const noOrigin = await post(d, '/api/gateway/drain', { headers, body: '{"action":"cancel"}' });
    expect(await noOrigin.json()).toEqual({ ok: true, action: 'cancel', was_draining: true });

    const secured = await dashboard({ env: { HERMES_DASHBOARD_DRAIN_SECRET: STRONG_SECRET } });
    const bearer = await post(secured, '/api/gateway/drain', {
      headers: { authorization: `Bearer ${STRONG_SECRET}`, 'content-type': 'application/json' },
      body: '{"action":"drain"}',
    });
    expect(bearer.status).toBe(200);
    expect(readDrainRequest(secured.home)?.principal).toBe('drain-control');
  });
});

describe('C. security headers', () => {
  function expectBaseHeaders(headers: Headers, what: string): void {
    expect(headers.get('x-content-type-options'), what).toBe('nosniff');
    expect(headers.get('x-frame-options'), what).toBe('DENY');
    expect(headers.get('referrer-policy'), what).toBe('no-referrer');
    expect(headers.get('content-security-policy'), what).toContain("frame-ancestors 'none'");
  }

  it('on the page, the login page, assets, API answers, errors, 404s and the event stream', async () => {
    const d = await dashboard({ renderPage: renderDashboardPage, assets: DASHBOARD_ASSETS });
    const page = await fetch(`${d.url}/`);
    expect(page.status).toBe(200);
    expectBaseHeaders(page.headers, '/');
    const pageCsp = page.headers.get('content-security-policy') ?? '';
    expect(pageCsp).toContain("script-src 'self'");
    expect(pageCsp).toContain("default-src 'none'");
    expect(pageCsp).not.toContain('unsafe-inline');
    expect(page.headers.get('cache-control')).toBe('no-store');

    const [asset] = Object.keys(DASHBOARD_ASSETS);
    const assetRes = await fetch(`${d.url}/assets/${asset}`);
    expect(assetRes.status).toBe(200);
    expectBaseHeaders(assetRes.headers, 'asset');

    for (const path of ['/api/status', '/api/auth/providers', '/nope', '/api/nope']) {
      const res = await fetch(`${d.url}${path}`);
      expectBaseHeaders(res.headers, path);
      expect(res.headers.get('content-security-policy'), path).toContain("default-src 'none'");
      expect(res.headers.get('cache-control'), path).toBe('no-store');
    }
    const error = await post(d, '/api/gateway/drain', {
      headers: { 'x-hermes-session-token': d.sessionToken, 'content-type': 'text/plain' },
      body: 'x',
    });
    expect(error.status).toBe(415);
    expectBaseHeaders(error.headers, '415');
    const badHost = await rawRequest(
      d,
      'GET /api/status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n',
    );
    expect(badHost).toMatch(/^HTTP\/1\.1 400 /);
    expect(badHost.toLowerCase()).toContain('x-frame-options: deny');

    const controller = new AbortController();
    const stream = await fetch(`${d.url}/api/events`, {
      headers: { 'x-hermes-session-token': d.sessionToken },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    expectBaseHeaders(stream.headers, '/api/events');
    expect(stream.headers.get('cache-control')).toBe('no-store');
    controller.abort();
  });

  it('the login page allows exactly its own inline script and style, by hash', async () => {
    const d = await cookieDashboard();
    const res = await fetch(`${d.url}/login`);
    expect(res.status).toBe(200);
    expectBaseHeaders(res.headers, '/login');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).not.toContain('unsafe-inline');
    const html = await res.text();
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1] ?? '');
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] ?? '');
    expect(scripts).toHaveLength(1);
    expect(styles).toHaveLength(1);
    const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    expect(csp).toContain(`script-src ${hash(scripts[0] ?? '')}`);
    expect(csp).toContain(`style-src ${hash(styles[0] ?? '')}`);
    // Not signed in: the page redirect carries the headers too.
    const redirect = await fetch(`${d.url}/`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expectBaseHeaders(redirect.headers, '302');
  });
});

describe('D. slow bodies', () => {
  it('a body trickled one byte at a time is cut off after the request time limit', async () => {
    const d = await dashboard({ timeouts: { requestTimeoutMs: 1500 } });
    const { port } = new URL(d.url);
    const socket = connect(Number(port), '127.0.0.1');
    onTestFinished(() => {
      socket.destroy();
    });
    let closed = false;
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `POST /api/gateway/drain HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Hermes-Session-Token: ${d.sessionToken}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    // 60 bytes at one every 500 ms would take 30 s.
    const body = `{"action":"cancel","pad":"${'x'.repeat(33)}"}`;
    let sent = 0;
    const trickle = setInterval(() => {
      if (closed || socket.destroyed || sent >= body.length) return;
      socket.write(`1\r\n${body[sent++]}\r\n`);
    }, 500);
    onTestFinished(() => clearInterval(trickle));
    const started = Date.now();
    await until(() => closed || undefined, 12_000, 'the server to close the trickling socket');
    expect(Date.now() - started).toBeLessThan(12_000);
    expect(sent).toBeLessThan(body.length);
    expect(received).not.toContain('"ok":true');
    expect((await fetch(`${d.url}/api/status`)).status).toBe(200);
  });

  it('an unauthenticated write is answered 401 before its body is read', async () => {
    const d = await dashboard({ timeouts: { requestTimeoutMs: 1500 } });
    const host = new URL(d.url).host;
    // Headers only: the 1,000-byte body never comes, yet the answer does.
    const answer = await rawRequest(
      d,
      `POST /api/gateway/drain HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
      { waitFor: /\r\n\r\n[\s\S]*\}/ },
    );
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
  });
});

describe('E. the session token stays out of log files', () => {
  it('`hermes dashboard` writing to a log file never writes the token there', async () => {
    const home = tempHome();
    mkdirSync(join(home, 'logs'), { recursive: true });
    const logFile = join(home, 'logs', 'dashboard.log');
    const fd = openSync(logFile, 'a', 0o600);
    const token = 'pinned-session-token-for-the-log-test-0123456789';
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HERMES_HOME: home,
      HERMES_DASHBOARD_SESSION_TOKEN: token,
    };
    for (const key of Object.keys(env))
      if (key.startsWith('HERMES_DASHBOARD_') && key !== 'HERMES_DASHBOARD_SESSION_TOKEN') delete env[key];
    // stdout and stderr both to the file, as a service manager or the demo's logs would have it.
    const child = spawn(process.execPath, [CLI, 'dashboard', '--port', '0', '--verbose'], {
      env,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    });
    const url = await until(
      () => /dashboard on (http:\/\/127\.0\.0\.1:\d+)\//.exec(readFileSync(logFile, 'utf8'))?.[1],
      20_000,
      'the dashboard to start',
    );
    // The token works, on the event stream too (in its header; a query-string token is refused).
    const drained = await fetch(`${url}/api/gateway/drain`, {
      method: 'POST',
      headers: { 'x-hermes-session-token': token, 'content-type': 'application/json' },
      body: '{"action":"cancel"}',
    });
    expect(drained.status).toBe(200);
    const controller = new AbortController();
    const stream = await fetch(`${url}/api/events`, {
      headers: { 'x-hermes-session-token': token },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    controller.abort();
    expect((await fetch(`${url}/api/events?token=${token}`)).status).toBe(401);
    await fetch(`${url}/api/events?token=${token}x`);
    child.kill('SIGTERM');
    await exited;
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain('dashboard on');
    expect(log).not.toContain(token);
    expect(log).toContain('API session token: not shown (output is not a terminal)');
    const audit = join(home, 'logs', 'dashboard-auth.log');
    if (existsSync(audit)) expect(readFileSync(audit, 'utf8')).not.toContain(token);
  });

  it('the banner shows the token on a terminal only; logged paths drop the query', () => {
    const running = { url: 'http://127.0.0.1:9119', authRequired: false, sessionToken: 'tok-123' };
    expect(startupBanner(running, { terminal: true, env: {} })).toContain('tok-123');
    expect(startupBanner(running, { terminal: false, env: {} })).not.toContain('tok-123');
    expect(startupBanner({ ...running, authRequired: true }, { terminal: true, env: {} })).not.toContain(
      'tok-123',
    );
    expect(loggablePath('/api/events?token=tok-123')).toBe('/api/events');
    expect(loggablePath('/api/events#token=tok-123')).toBe('/api/events');
  });
});

/** Send raw bytes and collect the answer until the server closes (or `waitFor` matches). */
function rawRequest(d: RunningDashboard, bytes: string, options: { waitFor?: RegExp } = {}): Promise<string> {
  const { hostname, port } = new URL(d.url);
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(Number(port), hostname);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer; got so far: ${text.slice(0, 500)}`));
    }, 10_000);
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    };
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8');
      if (options.waitFor?.test(text)) finish();
    });
    socket.on('close', finish);
    socket.on('error', () => undefined);
    socket.write(bytes);
  });
}
