import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/dashboard/auth/audit.js';
import { registerDrainSecretProvider } from '../../src/dashboard/auth/drain-secret-provider.js';
import { DashboardAuthStartupError, installAuthGates } from '../../src/dashboard/auth/gates.js';
import { createPasswordProvider } from '../../src/dashboard/auth/password-provider.js';
import { AuthRegistry } from '../../src/dashboard/auth/registry.js';
import { type DashboardAuthProvider, ProviderError } from '../../src/dashboard/auth/types.js';
import { auditLines, STRONG_SECRET, tempHome, testApp } from './helpers.js';

const TOKEN = 'per-process-session-token-0123456789abcdef';
const UNAUTHORIZED = { detail: 'Unauthorized' };
const INVALID_HOST = {
  detail: 'Invalid Host header. Dashboard requests must use the hostname the server was bound to.',
};

function loopbackDashboard(options: { bindHost?: string; allowedHosts?: string[]; drain?: boolean } = {}) {
  const registry = new AuthRegistry();
  if (options.drain)
    registerDrainSecretProvider(registry, { env: { HERMES_DASHBOARD_DRAIN_SECRET: STRONG_SECRET } });
  const { app, hits } = testApp();
  const gates = installAuthGates(app, {
    registry,
    bindHost: options.bindHost ?? '127.0.0.1',
    allowedHosts: options.allowedHosts,
    sessionToken: TOKEN,
    env: {},
  });
  return { app, hits, gates, registry };
}

describe('loopback session-token gate (reference §2.2)', () => {
  it('requires X-Hermes-Session-Token on /api/*, compared exactly', async () => {
    const { app, hits, gates } = loopbackDashboard();
    expect(gates.authRequired).toBe(false);

    const missing = await app.inject({ url: '/api/secret' });
    expect(missing.statusCode).toBe(401);
    expect(missing.json()).toEqual(UNAUTHORIZED);
    for (const wrong of [`${TOKEN}x`, TOKEN.slice(1), TOKEN.toUpperCase(), '']) {
      const res = await app.inject({ url: '/api/secret', headers: { 'x-hermes-session-token': wrong } });
      expect(res.statusCode).toBe(401);
    }
    expect(hits).toEqual([]);

    const ok = await app.inject({ url: '/api/secret', headers: { 'x-hermes-session-token': TOKEN } });
    expect(ok.statusCode).toBe(200);
    const legacy = await app.inject({ url: '/api/secret', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(legacy.statusCode).toBe(200);
    expect(hits).toEqual(['secret', 'secret']);
  });

  it('takes the token in a header only, on the event stream too: never from the URL', async () => {
    const { app, hits } = loopbackDashboard();
    app.get('/api/events', async () => {
      hits.push('events');
      return 'stream';
    });
    for (const url of [
      `/api/events?token=${TOKEN}`,
      `/api/events?token=${encodeURIComponent(TOKEN)}&x=1`,
      `/api/secret?token=${TOKEN}`,
    ]) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json()).toEqual(UNAUTHORIZED);
    }
    expect(hits).toEqual([]);
    const ok = await app.inject({ url: '/api/events', headers: { 'x-hermes-session-token': TOKEN } });
    expect(ok.statusCode).toBe(200);
    expect(hits).toEqual(['events']);
  });

  it('leaves public API paths, the provider listing and non-API pages open', async () => {
    const { app } = loopbackDashboard();
    expect((await app.inject({ url: '/api/status' })).statusCode).toBe(200);
    // No session providers on this dashboard: 503, but from the route, not the gate.
    const providers = await app.inject({ url: '/api/auth/providers' });
    expect(providers.statusCode).toBe(503);
    expect(providers.json()).toEqual({ detail: 'no auth providers registered' });
    expect((await app.inject({ url: '/' })).statusCode).toBe(200);
  });

  it('gates unknown /api paths and percent-encoded spellings too', async () => {
    const { app, hits } = loopbackDashboard();
    expect((await app.inject({ url: '/api/does-not-exist' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/api/%73ecret' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/%61pi/secret' })).statusCode).toBe(401);
    expect(hits).toEqual([]);
  });

  it('takes the token from HERMES_DASHBOARD_SESSION_TOKEN, else generates one', async () => {
    const { app } = testApp();
    const pinned = installAuthGates(app, {
      registry: new AuthRegistry(),
      bindHost: 'localhost',
      env: { HERMES_DASHBOARD_SESSION_TOKEN: 'pinned-by-desktop-shell' },
    });
    expect(pinned.sessionToken).toBe('pinned-by-desktop-shell');
    const ok = await app.inject({
      url: '/api/secret',
      headers: { 'x-hermes-session-token': 'pinned-by-desktop-shell' },
    });
    expect(ok.statusCode).toBe(200);

    const other = testApp();
    const generated = installAuthGates(other.app, { registry: new AuthRegistry(), bindHost: '::1', env: {} });
    expect(generated.sessionToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(generated.authRequired).toBe(false);
  });

  it('a token-authenticated request needs no session token; a bearer-less one on the token route is refused', async () => {
    const { app, hits } = loopbackDashboard({ drain: true });
    const ok = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `Bearer ${STRONG_SECRET}` },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().principal).toBe('drain-control');
    const noBearer = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { 'x-hermes-session-token': TOKEN },
    });
    expect(noBearer.statusCode).toBe(401);
    expect(noBearer.json()).toEqual({ error: 'unauthenticated', detail: 'Unauthorized' });
    expect(hits).toEqual(['drain']);
  });

  it('works over a real socket on 127.0.0.1', async () => {
    const { app } = loopbackDashboard();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    const base = `http://127.0.0.1:${address.port}`;
    const denied = await fetch(`${base}/api/secret`);
    expect(denied.status).toBe(401);
    expect(await denied.json()).toEqual(UNAUTHORIZED);
    const ok = await fetch(`${base}/api/secret`, { headers: { 'X-Hermes-Session-Token': TOKEN } });
    expect(ok.status).toBe(200);
  });
});

describe('Host-header check (DNS rebinding)', () => {
  it.each(['localhost', 'localhost:9119', '127.0.0.1:9119', '[::1]:9119', 'LOCALHOST'])(
    'loopback bind accepts Host %s',
    async (host) => {
      const { app } = loopbackDashboard();
      const res = await app.inject({ url: '/api/status', headers: { host } });
      expect(res.statusCode).toBe(200);
    },
  );

  it.each([
    'evil.example',
    'evil.example:9119',
    '127.0.0.1.evil.example',
    'localhost:notaport',
    'user@localhost',
  ])('loopback bind rejects Host %j with 400', async (host) => {
    const { app, hits } = loopbackDashboard();
    const res = await app.inject({ url: '/', headers: { host } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(INVALID_HOST);
    expect(hits).toEqual([]);
  });

  it('runs before the session-token gate: a rebinding page gets 400 even with the token', async () => {
    const { app } = loopbackDashboard();
    const res = await app.inject({
      url: '/api/secret',
      headers: { host: 'evil.example', 'x-hermes-session-token': TOKEN },
    });
    expect(res.statusCode).toBe(400);
  });

  it('accepts configured extra hosts and an explicit bind host, nothing else', async () => {
    const { app } = loopbackDashboard({ allowedHosts: ['dash.internal'] });
    expect(
      (await app.inject({ url: '/api/status', headers: { host: 'dash.internal:443' } })).statusCode,
    ).toBe(200);
    expect((await app.inject({ url: '/api/status', headers: { host: 'other.internal' } })).statusCode).toBe(
      400,
    );

    const home = tempHome();
    const registry = new AuthRegistry();
    registry.register(
      await createPasswordProvider({
        home,
        env: { HERMES_DASHBOARD_BASIC_AUTH_USERNAME: 'u', HERMES_DASHBOARD_BASIC_AUTH_PASSWORD: 'password1' },
      }),
    );
    const lan = testApp();
    installAuthGates(lan.app, { registry, bindHost: '192.168.1.5', env: {} });
    expect(
      (await lan.app.inject({ url: '/api/status', headers: { host: '192.168.1.5:9119' } })).statusCode,
    ).toBe(200);
    expect((await lan.app.inject({ url: '/api/status', headers: { host: 'evil.example' } })).statusCode).toBe(
      400,
    );
  });

  it('a wildcard bind accepts any host name (the cookie gate protects it)', async () => {
    const home = tempHome();
    const registry = new AuthRegistry();
    registry.register(
      await createPasswordProvider({
        home,
        env: { HERMES_DASHBOARD_BASIC_AUTH_USERNAME: 'u', HERMES_DASHBOARD_BASIC_AUTH_PASSWORD: 'password1' },
      }),
    );
    const { app } = testApp();
    installAuthGates(app, { registry, bindHost: '0.0.0.0', env: {} });
    expect(
      (await app.inject({ url: '/api/status', headers: { host: 'dashboard.example.org' } })).statusCode,
    ).toBe(200);
  });

  it('token-authenticated requests skip the Host check', async () => {
    const { app } = loopbackDashboard({ drain: true });
    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { host: 'gateway.internal', authorization: `Bearer ${STRONG_SECRET}` },
    });
    expect(res.statusCode).toBe(200);
  });
});

describe('fail-closed start on non-loopback binds', () => {
  it('refuses to start with no session provider, quoting the skip reasons', async () => {
    const home = tempHome();
    const registry = new AuthRegistry();
    registry.register(await createPasswordProvider({ home, env: {} })); // no password ⇒ skipped
    registerDrainSecretProvider(registry, { env: {} }); // unset ⇒ skipped
    const { app } = testApp();
    const gates = installAuthGates(app, { registry, bindHost: '0.0.0.0', env: {} });

    expect(() => gates.assertCanStart()).toThrow(DashboardAuthStartupError);
    let message = '';
    try {
      gates.assertCanStart();
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(
      'Refusing to bind dashboard to 0.0.0.0 — the OAuth auth gate engages on non-loopback binds, but no auth providers are registered.',
    );
    expect(message).toContain('basic: no dashboard password is set');
    expect(message).toContain('drain-secret: HERMES_DASHBOARD_DRAIN_SECRET is not set');
    await expect(app.listen({ host: '127.0.0.1', port: 0 })).rejects.toThrow(DashboardAuthStartupError);
  });

  it('an RFC 1918 address is not loopback', async () => {
    const { app } = testApp();
    const gates = installAuthGates(app, { registry: new AuthRegistry(), bindHost: '10.0.0.2', env: {} });
    expect(gates.authRequired).toBe(true);
    await expect(app.ready()).rejects.toThrow(/Refusing to bind dashboard to 10\.0\.0\.2/);
  });

  it('a loopback bind starts without any provider', async () => {
    const { app } = testApp();
    const gates = installAuthGates(app, { registry: new AuthRegistry(), bindHost: '127.0.0.1', env: {} });
    expect(() => gates.assertCanStart()).not.toThrow();
    await expect(app.ready()).resolves.toBeDefined();
  });

  it('a token-authenticated request passes the cookie gate on a gated bind', async () => {
    const home = tempHome();
    const registry = new AuthRegistry();
    registry.register(
      await createPasswordProvider({
        home,
        env: { HERMES_DASHBOARD_BASIC_AUTH_USERNAME: 'u', HERMES_DASHBOARD_BASIC_AUTH_PASSWORD: 'password1' },
      }),
    );
    registerDrainSecretProvider(registry, { env: { HERMES_DASHBOARD_DRAIN_SECRET: STRONG_SECRET } });
    const { app, hits } = testApp();
    installAuthGates(app, { registry, bindHost: '0.0.0.0', env: {} });
    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `Bearer ${STRONG_SECRET}` },
    });
    expect(res.statusCode).toBe(200);
    expect(hits).toEqual(['drain']);
  });

  it('requireLogin tightens a loopback bind to cookie login (and refuses to start without a provider)', async () => {
    const { app } = testApp();
    const gates = installAuthGates(app, {
      registry: new AuthRegistry(),
      bindHost: '127.0.0.1',
      requireLogin: true,
      env: {},
    });
    expect(gates.authRequired).toBe(true);
    expect(() => gates.assertCanStart()).toThrow(
      /Refusing to bind dashboard to 127\.0\.0\.1 — a login is required/,
    );

    const home = tempHome();
    const registry = new AuthRegistry();
    registry.register(
      await createPasswordProvider({
        home,
        env: { HERMES_DASHBOARD_BASIC_AUTH_USERNAME: 'u', HERMES_DASHBOARD_BASIC_AUTH_PASSWORD: 'password1' },
      }),
    );
    const strict = testApp();
    const strictGates = installAuthGates(strict.app, {
      registry,
      bindHost: '127.0.0.1',
      requireLogin: true,
      sessionToken: TOKEN,
      env: {},
    });
    const res = await strict.app.inject({ url: '/api/secret', headers: { 'x-hermes-session-token': TOKEN } });
    expect(res.statusCode).toBe(401);
    expect(res.json().reason).toBe('no_cookie');
    expect(strictGates.sessionToken).toBe(TOKEN);
  });
});

describe('cookie gate with an unreachable session provider', () => {
  function sessionProvider(name: string, verify: () => never): DashboardAuthProvider {
    return {
      name,
      displayName: name,
      supportsSession: true,
      supportsPassword: false,
      supportsToken: false,
      lastSkipReason: null,
      startLogin: () => ({ redirectUrl: '/x', cookiePayload: {} }),
      completeLogin: verify,
      verifySession: verify,
      refreshSession: verify,
      revokeSession: () => {},
      verifyToken: () => null,
    };
  }

  it('answers 503 naming the provider and keeps the cookies', async () => {
    const home = tempHome();
    const registry = new AuthRegistry();
    registry.register(
      sessionProvider('idp', () => {
        throw new ProviderError('down');
      }),
    );
    const { app, hits } = testApp();
    installAuthGates(app, { registry, bindHost: '0.0.0.0', env: {}, audit: new AuditLog(home) });
    for (const cookie of ['hermes_session_at=some-token', 'hermes_session_rt=some-refresh']) {
      const res = await app.inject({ url: '/api/secret', headers: { cookie } });
      expect(res.statusCode, cookie).toBe(503);
      expect(res.json()).toEqual({ detail: "Auth provider 'idp' unreachable" });
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    expect(hits).toEqual([]);
    expect(auditLines(home).map((l) => l.event)).toEqual(['session_verify_failure']);
  });
});
