import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/dashboard/auth/audit.js';
import { installAuthGates } from '../../src/dashboard/auth/gates.js';
import {
  createPasswordProvider,
  hashPassword,
  parseScryptHash,
  setPassword,
  verifyPasswordHash,
} from '../../src/dashboard/auth/password-provider.js';
import { AuthRegistry } from '../../src/dashboard/auth/registry.js';
import {
  InvalidCodeError,
  InvalidCredentialsError,
  RefreshExpiredError,
} from '../../src/dashboard/auth/types.js';
import {
  auditLines,
  auditText,
  clock,
  cookieAttrs,
  cookieLine,
  cookiePair,
  setCookies,
  tempHome,
  testApp,
} from './helpers.js';

const USER = 'admin';
const PASSWORD = 'correct horse battery staple';
const HOUR = 3600_000;
const DAY = 24 * HOUR;

async function passwordDashboard(options: { trustProxy?: boolean; bindHost?: string } = {}) {
  const home = tempHome();
  await setPassword(home, USER, PASSWORD);
  const time = clock();
  const provider = await createPasswordProvider({ home, env: {}, now: time.now });
  const registry = new AuthRegistry();
  expect(registry.register(provider)).toBe(true);
  const { app, hits } = testApp();
  const gates = installAuthGates(app, {
    registry,
    bindHost: options.bindHost ?? '0.0.0.0',
    audit: new AuditLog(home),
    env: {},
    now: time.now,
    trustProxy: options.trustProxy,
  });
  await app.ready();
  return { home, time, provider, registry, app, hits, gates };
}

async function login(
  app: Awaited<ReturnType<typeof passwordDashboard>>['app'],
  body: Record<string, unknown>,
  headers = {},
) {
  return app.inject({ method: 'POST', url: '/auth/password-login', payload: body, headers });
}

describe('scrypt password hashes', () => {
  it('uses the reference format and parameters, and verifies', async () => {
    const hash = await hashPassword(PASSWORD);
    expect(hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    const parsed = parseScryptHash(hash);
    expect(parsed?.salt).toHaveLength(16);
    expect(parsed?.dk).toHaveLength(32);
    expect(await verifyPasswordHash(PASSWORD, hash)).toBe(true);
    expect(await verifyPasswordHash(`${PASSWORD} `, hash)).toBe(false);
    expect(await hashPassword(PASSWORD)).not.toBe(hash); // fresh salt
  });

  it('rejects malformed or unreasonable hashes', async () => {
    const salt = Buffer.alloc(16, 1).toString('base64');
    const dk = Buffer.alloc(32, 2).toString('base64');
    expect(parseScryptHash(`scrypt$16384$8$1$${salt}$${dk}`)).not.toBeNull();
    for (const bad of [
      `bcrypt$16384$8$1$${salt}$${dk}`,
      `scrypt$16385$8$1$${salt}$${dk}`, // not a power of two
      `scrypt$${2 ** 24}$8$1$${salt}$${dk}`, // too costly
      `scrypt$16384$8$1$${salt}`,
      `scrypt$16384$8$1$${salt}$not base64!`,
      '',
    ]) {
      expect(parseScryptHash(bad)).toBeNull();
      expect(await verifyPasswordHash(PASSWORD, bad)).toBe(false);
    }
  });
});

describe('setPassword and the auth file', () => {
  it('writes dashboard-auth.json 0600 atomically with the hash and a signing secret', async () => {
    const home = tempHome();
    await setPassword(home, USER, PASSWORD);
    const path = join(home, 'dashboard-auth.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(path, 'utf8'));
    expect(stored.username).toBe(USER);
    expect(stored.password_hash).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(Buffer.from(stored.secret, 'base64')).toHaveLength(32);
    expect(readFileSync(path, 'utf8')).not.toContain(PASSWORD);
    expect(readdirSync(home).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses unusable usernames and passwords without echoing them', async () => {
    const home = tempHome();
    await expect(setPassword(home, '', PASSWORD)).rejects.toThrow(/username/);
    await expect(setPassword(home, 'a\u0007b', PASSWORD)).rejects.toThrow(/username/);
    const short = 'hunter2';
    await expect(setPassword(home, USER, short)).rejects.toThrow(/at least|8/);
    await expect(setPassword(home, USER, short)).rejects.not.toThrow(short);
  });

  it('without a password the provider is skipped with a set-password hint', async () => {
    const home = tempHome();
    const provider = await createPasswordProvider({ home, env: {} });
    expect(provider.lastSkipReason).toMatch(/hermes dashboard set-password/);
    const registry = new AuthRegistry();
    expect(registry.register(provider)).toBe(false);
    expect(registry.skipped()[0]?.name).toBe('basic');
  });

  it('a corrupt auth file skips the provider (fail closed) and is left alone', async () => {
    const home = tempHome();
    writeFileSync(join(home, 'dashboard-auth.json'), '{not json');
    const provider = await createPasswordProvider({ home, env: {} });
    expect(provider.lastSkipReason).toMatch(/not valid JSON/);
    expect(readFileSync(join(home, 'dashboard-auth.json'), 'utf8')).toBe('{not json');
  });

  it('env overrides: plaintext password and username from the reference env keys', async () => {
    const home = tempHome();
    const provider = await createPasswordProvider({
      home,
      env: {
        HERMES_DASHBOARD_BASIC_AUTH_USERNAME: 'ops',
        HERMES_DASHBOARD_BASIC_AUTH_PASSWORD: 'from-env-pass',
      },
    });
    expect(provider.lastSkipReason).toBeNull();
    expect((await provider.completeLogin({ username: 'ops', password: 'from-env-pass' })).userId).toBe('ops');
    // The signing secret was persisted (0600) so sessions survive a restart.
    const stored = JSON.parse(readFileSync(join(home, 'dashboard-auth.json'), 'utf8'));
    expect(Buffer.from(stored.secret, 'base64')).toHaveLength(32);
    expect(stored.password_hash).toBeUndefined();
    expect(statSync(join(home, 'dashboard-auth.json')).mode & 0o777).toBe(0o600);
  });

  it('HERMES_DASHBOARD_BASIC_AUTH_TTL_SECONDS sets the access TTL (floor 60 s)', async () => {
    const home = tempHome();
    await setPassword(home, USER, PASSWORD);
    const time = clock();
    const nowS = Math.floor(time.now() / 1000);
    const short = await createPasswordProvider({
      home,
      env: { HERMES_DASHBOARD_BASIC_AUTH_TTL_SECONDS: '5' },
      now: time.now,
    });
    expect((await short.completeLogin({ username: USER, password: PASSWORD })).expiresAt).toBe(nowS + 60);
    const configured = await createPasswordProvider({
      home,
      env: { HERMES_DASHBOARD_BASIC_AUTH_TTL_SECONDS: '' },
      config: { session_ttl_seconds: 900 },
      now: time.now,
    });
    expect((await configured.completeLogin({ username: USER, password: PASSWORD })).expiresAt).toBe(
      nowS + 900,
    );
  });

  it('a configured signing secret shorter than 16 bytes is refused', async () => {
    const home = tempHome();
    await setPassword(home, USER, PASSWORD);
    const provider = await createPasswordProvider({
      home,
      env: { HERMES_DASHBOARD_BASIC_AUTH_SECRET: 'short' },
    });
    expect(provider.lastSkipReason).toMatch(/16 bytes/);
  });
});

describe('password provider sessions', () => {
  it('wrong username and wrong password both fail with InvalidCredentialsError', async () => {
    const { provider } = await passwordDashboard();
    await expect(provider.completeLogin({ username: 'root', password: PASSWORD })).rejects.toThrow(
      InvalidCredentialsError,
    );
    await expect(provider.completeLogin({ username: USER, password: 'nope' })).rejects.toThrow(
      InvalidCredentialsError,
    );
  });

  it('tokens are base64url(JSON || HMAC-SHA256), 12 h access / 30 d refresh, tamper-evident', async () => {
    const { provider, time } = await passwordDashboard();
    const session = await provider.completeLogin({ username: USER, password: PASSWORD });
    const nowS = Math.floor(time.now() / 1000);
    expect(session.expiresAt).toBe(nowS + 43_200);
    const raw = Buffer.from(session.accessToken, 'base64url');
    expect(JSON.parse(raw.subarray(0, raw.length - 32).toString())).toEqual({
      sub: USER,
      kind: 'access',
      exp: nowS + 43_200,
    });
    const rt = Buffer.from(session.refreshToken, 'base64url');
    expect(JSON.parse(rt.subarray(0, rt.length - 32).toString()).exp).toBe(nowS + 30 * 86_400);

    expect(provider.verifySession(session.accessToken)?.userId).toBe(USER);
    // A refresh token is not an access token and vice versa.
    expect(provider.verifySession(session.refreshToken)).toBeNull();
    expect(() => provider.refreshSession(session.accessToken)).toThrow(InvalidCodeError);
    // Flip one bit of the JSON: the MAC no longer matches.
    const forged = Buffer.from(raw);
    forged[2] = (forged[2] ?? 0) ^ 1;
    expect(provider.verifySession(forged.toString('base64url'))).toBeNull();
    // Forged claims with a wrong MAC.
    const json = Buffer.from(JSON.stringify({ sub: USER, kind: 'access', exp: nowS + 10 ** 9 }));
    expect(provider.verifySession(Buffer.concat([json, Buffer.alloc(32)]).toString('base64url'))).toBeNull();

    time.advance(12 * HOUR + 1000);
    expect(provider.verifySession(session.accessToken)).toBeNull();
    const refreshed = provider.refreshSession(session.refreshToken);
    expect(provider.verifySession(refreshed.accessToken)?.userId).toBe(USER);
    time.advance(30 * DAY);
    expect(() => provider.refreshSession(session.refreshToken)).toThrow(RefreshExpiredError);
  });

  it('sessions survive a restart; set-password signs everyone out', async () => {
    const { provider, home, time } = await passwordDashboard();
    const session = await provider.completeLogin({ username: USER, password: PASSWORD });
    const restarted = await createPasswordProvider({ home, env: {}, now: time.now });
    expect(restarted.verifySession(session.accessToken)?.userId).toBe(USER);
    await setPassword(home, USER, 'a brand new password');
    const afterReset = await createPasswordProvider({ home, env: {}, now: time.now });
    expect(afterReset.verifySession(session.accessToken)).toBeNull();
    expect(() => afterReset.refreshSession(session.refreshToken)).toThrow(InvalidCodeError);
  });
});

describe('auth routes with the password provider (non-loopback bind)', () => {
  it('login sets HttpOnly/SameSite=Lax/Path=/ cookies with the token TTLs, then the session works', async () => {
    const { app, hits, home } = await passwordDashboard();
    const res = await login(app, {
      provider: 'basic',
      username: USER,
      password: PASSWORD,
      next: '/sessions',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: true, next: '/sessions' });

    const at = cookieLine(res, 'hermes_session_at');
    const rt = cookieLine(res, 'hermes_session_rt');
    expect(at).toBeDefined();
    expect(rt).toBeDefined();
    const atAttrs = cookieAttrs(at as string);
    expect(atAttrs.get('max-age')).toBe('43200');
    expect(atAttrs.get('path')).toBe('/');
    expect(atAttrs.get('samesite')).toBe('Lax');
    expect(atAttrs.has('httponly')).toBe(true);
    expect(atAttrs.has('secure')).toBe(false); // plain HTTP
    expect(cookieAttrs(rt as string).get('max-age')).toBe(String(30 * 86_400));

    const secret = await app.inject({ url: '/api/secret', headers: { cookie: cookiePair(at) } });
    expect(secret.statusCode).toBe(200);
    expect(secret.json()).toEqual({ secret: true, user: USER });
    const me = await app.inject({ url: '/api/auth/me', headers: { cookie: cookiePair(at) } });
    expect(me.json()).toMatchObject({ user_id: USER, provider: 'basic', display_name: USER });
    expect(hits).toEqual(['secret']);
    expect(auditLines(home).map((l) => l.event)).toEqual(['login_success']);
    expect(auditLines(home)[0]).toMatchObject({ provider: 'basic', user_id: USER, ip: '127.0.0.1' });
  });

  it('behind a trusted TLS proxy the cookies are Secure and __Host- prefixed', async () => {
    const { app } = await passwordDashboard({ trustProxy: true });
    const res = await login(app, { username: USER, password: PASSWORD }, { 'x-forwarded-proto': 'https' });
    expect(res.statusCode).toBe(200);
    const at = cookieLine(res, '__Host-hermes_session_at');
    expect(at).toBeDefined();
    expect(cookieAttrs(at as string).has('secure')).toBe(true);
    expect(cookieAttrs(at as string).get('path')).toBe('/');
    expect(cookieLine(res, 'hermes_session_at')).toBeUndefined();
    // The prefixed cookie is read back.
    const ok = await app.inject({ url: '/api/secret', headers: { cookie: cookiePair(at) } });
    expect(ok.statusCode).toBe(200);
  });

  it('an untrusted X-Forwarded-Proto does not make cookies Secure', async () => {
    const { app } = await passwordDashboard({ trustProxy: false });
    const res = await login(app, { username: USER, password: PASSWORD }, { 'x-forwarded-proto': 'https' });
    expect(cookieAttrs(cookieLine(res, 'hermes_session_at') as string).has('secure')).toBe(false);
  });

  it('wrong password ⇒ 401 Invalid credentials, audited without the password', async () => {
    const { app, home } = await passwordDashboard();
    const attempt = 'Tr0ub4dor&3-wrong';
    const res = await login(app, { provider: 'basic', username: USER, password: attempt });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ detail: 'Invalid credentials' });
    expect(setCookies(res)).toEqual([]);
    const lines = auditLines(home);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      event: 'login_failure',
      provider: 'basic',
      reason: 'invalid_credentials',
    });
    expect(typeof lines[0]?.ts).toBe('string');
    expect(auditText(home)).not.toContain(attempt);
    expect(auditText(home)).not.toContain(PASSWORD);
  });

  it('unknown provider ⇒ 404, missing fields ⇒ 400, open-redirect next ⇒ /', async () => {
    const { app } = await passwordDashboard();
    const unknown = await login(app, { provider: 'nous', username: USER, password: PASSWORD });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ detail: 'Unknown provider' });
    expect((await login(app, { username: USER })).statusCode).toBe(400);
    for (const next of [
      '//evil.example',
      '/\\evil.example',
      'https://evil.example',
      '/api/secret',
      '/login',
      '/auth/logout',
    ]) {
      const res = await login(app, { username: USER, password: PASSWORD, next });
      expect(res.json()).toEqual({ ok: true, next: '/' });
    }
  });

  it('rate-limits login attempts per IP: the 11th within 60 s ⇒ 429', async () => {
    const { app, time } = await passwordDashboard();
    for (let i = 0; i < 10; i++) {
      expect((await login(app, { username: USER, password: `wrong-${i}` })).statusCode).toBe(401);
    }
    const limited = await login(app, { username: USER, password: PASSWORD });
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    time.advance(61_000);
    expect((await login(app, { username: USER, password: PASSWORD })).statusCode).toBe(200);
  });

  it('an expired access cookie is refreshed transparently with rotated cookies', async () => {
    const { app, time, hits, home } = await passwordDashboard();
    const res = await login(app, { username: USER, password: PASSWORD });
    const cookie = `${cookiePair(cookieLine(res, 'hermes_session_at'))}; ${cookiePair(cookieLine(res, 'hermes_session_rt'))}`;
    time.advance(13 * HOUR);

    const refreshed = await app.inject({ url: '/api/secret', headers: { cookie } });
    expect(refreshed.statusCode).toBe(200);
    expect(hits).toEqual(['secret']);
    const newAt = cookieLine(refreshed, 'hermes_session_at');
    expect(newAt).toBeDefined();
    expect(cookiePair(newAt)).not.toBe(cookiePair(cookieLine(res, 'hermes_session_at')));
    expect(cookieAttrs(newAt as string).get('max-age')).toBe('43200');
    expect(auditLines(home).at(-1)).toMatchObject({
      event: 'refresh_success',
      provider: 'basic',
      user_id: USER,
    });

    // The rotated access cookie works on its own.
    const again = await app.inject({ url: '/api/secret', headers: { cookie: cookiePair(newAt) } });
    expect(again.statusCode).toBe(200);
    expect(cookieLine(again, 'hermes_session_at')).toBeUndefined();
  });

  it('only a refresh cookie is enough to get a new session', async () => {
    const { app } = await passwordDashboard();
    const res = await login(app, { username: USER, password: PASSWORD });
    const only = await app.inject({
      url: '/api/secret',
      headers: { cookie: cookiePair(cookieLine(res, 'hermes_session_rt')) },
    });
    expect(only.statusCode).toBe(200);
    expect(cookieLine(only, 'hermes_session_at')).toBeDefined();
  });

  it('an expired refresh cookie ⇒ 401 session_expired, cookies cleared, audited', async () => {
    const { app, time, hits, home } = await passwordDashboard();
    const res = await login(app, { username: USER, password: PASSWORD });
    const cookie = `${cookiePair(cookieLine(res, 'hermes_session_at'))}; ${cookiePair(cookieLine(res, 'hermes_session_rt'))}`;
    time.advance(31 * DAY);
    const denied = await app.inject({ url: '/api/secret?x=1', headers: { cookie } });
    expect(denied.statusCode).toBe(401);
    expect(denied.json()).toEqual({
      error: 'session_expired',
      detail: 'Unauthorized',
      reason: 'invalid_or_expired_session',
      login_url: '/login?next=%2Fapi%2Fsecret%3Fx%3D1',
    });
    const cleared = cookieLine(denied, 'hermes_session_at');
    expect(cleared && cookieAttrs(cleared).get('max-age')).toBe('0');
    expect(cookieAttrs(cookieLine(denied, 'hermes_session_rt') as string).get('max-age')).toBe('0');
    expect(hits).toEqual([]);
    const events = auditLines(home).map((l) => l.event);
    expect(events).toEqual(['login_success', 'refresh_failure', 'session_rejected']);
  });

  it('logout clears both cookies and redirects to /login', async () => {
    const { app, home } = await passwordDashboard();
    const res = await login(app, { username: USER, password: PASSWORD });
    const cookie = `${cookiePair(cookieLine(res, 'hermes_session_at'))}; ${cookiePair(cookieLine(res, 'hermes_session_rt'))}`;
    const out = await app.inject({ method: 'POST', url: '/auth/logout', headers: { cookie } });
    expect(out.statusCode).toBe(302);
    expect(out.headers.location).toBe('/login');
    for (const name of [
      'hermes_session_at',
      'hermes_session_rt',
      '__Host-hermes_session_at',
      '__Host-hermes_session_rt',
    ]) {
      const line = cookieLine(out, name);
      expect(line, name).toBeDefined();
      expect(cookieAttrs(line as string).get('max-age')).toBe('0');
    }
    expect(auditLines(home).at(-1)).toMatchObject({ event: 'logout', user_id: USER, provider: 'basic' });
    expect(auditText(home)).not.toContain(cookiePair(cookieLine(res, 'hermes_session_at')).split('=')[1]);
  });

  it('without a cookie: /api/* ⇒ 401 unauthenticated JSON, pages ⇒ 302 to the login page', async () => {
    const { app, hits } = await passwordDashboard();
    const api = await app.inject({ url: '/api/secret' });
    expect(api.statusCode).toBe(401);
    expect(api.json()).toEqual({
      error: 'unauthenticated',
      detail: 'Unauthorized',
      reason: 'no_cookie',
      login_url: '/login?next=%2Fapi%2Fsecret',
    });
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(302);
    expect(page.headers.location).toBe('/login?next=%2F');
    const garbage = await app.inject({
      url: '/api/secret',
      headers: { cookie: 'hermes_session_at=garbage' },
    });
    expect(garbage.statusCode).toBe(401);
    expect(garbage.json().error).toBe('session_expired');
    expect(hits).toEqual([]);
  });

  it('public paths and the login machinery stay reachable; providers are listed', async () => {
    const { app } = await passwordDashboard();
    expect((await app.inject({ url: '/api/status' })).statusCode).toBe(200);
    const providers = await app.inject({ url: '/api/auth/providers' });
    expect(providers.json()).toEqual({
      providers: [{ name: 'basic', display_name: 'Username & Password', supports_password: true }],
    });
    const page = await app.inject({ url: '/login?next=%2Fsessions' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('/auth/password-login');
    expect(page.body).toContain('"next":"/sessions"');
    const start = await app.inject({ url: '/auth/login?provider=basic&next=%2Fsessions' });
    expect(start.statusCode).toBe(302);
    expect(start.headers.location).toBe('/login?next=%2Fsessions');
    expect((await app.inject({ url: '/auth/login?provider=nope' })).statusCode).toBe(404);
  });

  it('the session-token header is not a substitute for a cookie on a gated bind', async () => {
    const { app, gates } = await passwordDashboard();
    const res = await app.inject({
      url: '/api/secret',
      headers: { 'x-hermes-session-token': gates.sessionToken },
    });
    expect(res.statusCode).toBe(401);
    expect(gates.authRequired).toBe(true);
    expect(gates.authStatus()).toEqual({
      auth_required: true,
      auth_providers: ['basic'],
      auth_flows: ['cookie'],
    });
  });
});
