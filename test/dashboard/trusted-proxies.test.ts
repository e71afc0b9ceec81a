import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/dashboard/auth/audit.js';
import { installAuthGates } from '../../src/dashboard/auth/gates.js';
import { createPasswordProvider, setPassword } from '../../src/dashboard/auth/password-provider.js';
import { AuthRegistry } from '../../src/dashboard/auth/registry.js';
import { parseTrustedProxyList, trustedProxies } from '../../src/dashboard/auth/trusted-proxies.js';
import { hermes } from '../support/processes.js';
import { auditLines, clock, cookieAttrs, cookieLine, tempHome, testApp } from './helpers.js';

/**
 * `--trust-proxy` with an explicit list of trusted hops (#19): the login rate limit and the audit
 * IP take the address the nearest untrusted hop was seen at, never the client-written leftmost
 * `X-Forwarded-For` entry, and forwarded headers count only from a trusted peer. `app.inject`
 * requests come from 127.0.0.1.
 */

const USER = 'admin';
const PASSWORD = 'correct horse battery staple';

async function dashboard(trustProxy: boolean | string[]) {
  const home = tempHome();
  await setPassword(home, USER, PASSWORD);
  const time = clock();
  const registry = new AuthRegistry();
  registry.register(await createPasswordProvider({ home, env: {}, now: time.now }));
  const { app } = testApp();
  installAuthGates(app, {
    registry,
    bindHost: '0.0.0.0',
    audit: new AuditLog(home),
    env: {},
    now: time.now,
    trustProxy,
  });
  await app.ready();
  const login = (password: string, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url: '/auth/password-login',
      payload: { username: USER, password },
      headers,
    });
  return { home, login };
}

describe('trusted proxy hops', () => {
  it('a client rotating the leftmost X-Forwarded-For entry is still rate-limited by the address its proxy saw', async () => {
    const { login, home } = await dashboard(true);
    for (let i = 0; i < 10; i++) {
      const res = await login(`wrong-${i}`, { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.9` });
      expect(res.statusCode).toBe(401);
    }
    const limited = await login(PASSWORD, { 'x-forwarded-for': '198.51.100.77, 203.0.113.9' });
    expect(limited.statusCode).toBe(429);
    expect(auditLines(home).at(-1)).toMatchObject({ reason: 'rate_limited', ip: '203.0.113.9' });
    // Another client behind the same proxy is not limited.
    expect((await login(PASSWORD, { 'x-forwarded-for': '203.0.113.10' })).statusCode).toBe(200);
  });

  it('several trusted hops are skipped from the right; the first untrusted address is the client', async () => {
    const { login, home } = await dashboard(['127.0.0.1', '10.0.0.0/8']);
    await login(PASSWORD, { 'x-forwarded-for': '198.51.100.1, 203.0.113.5, 10.1.2.3' });
    expect(auditLines(home).at(-1)).toMatchObject({ event: 'login_success', ip: '203.0.113.5' });
  });

  it('a peer that is not a trusted hop cannot set forwarded headers', async () => {
    const { login, home } = await dashboard(['10.0.0.0/8']);
    const res = await login(PASSWORD, { 'x-forwarded-for': '203.0.113.5', 'x-forwarded-proto': 'https' });
    expect(res.statusCode).toBe(200);
    expect(auditLines(home).at(-1)).toMatchObject({ event: 'login_success', ip: '127.0.0.1' });
    expect(cookieAttrs(cookieLine(res, 'hermes_session_at') as string).has('secure')).toBe(false);
  });

  it('parses lists of addresses and CIDR blocks, IPv4-mapped peers included, and names a bad entry', () => {
    expect(parseTrustedProxyList(' 10.0.0.5, 10.1.0.0/16,::1 ')).toEqual(['10.0.0.5', '10.1.0.0/16', '::1']);
    const trusted = trustedProxies(['10.1.0.0/16', '::1']);
    expect(trusted('::ffff:10.1.2.3')).toBe(true);
    expect(trusted('10.2.0.1')).toBe(false);
    expect(trusted('::1')).toBe(true);
    expect(trusted('not-an-ip')).toBe(false);
    expect(() => parseTrustedProxyList('10.0.0.0/33')).toThrow(
      '"10.0.0.0/33" is not an IP address or CIDR block',
    );
    expect(() => parseTrustedProxyList('proxy.example')).toThrow('"proxy.example"');
    expect(() => parseTrustedProxyList(',')).toThrow('expected IP addresses or CIDR blocks');
  });

  it('hermes dashboard --trust-proxy with a bad entry exits 2 with one line', async () => {
    const result = await hermes(['dashboard', '--trust-proxy', '10.0.0.0/99', '--port', '0'], {
      HERMES_HOME: tempHome(),
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(
      'hermes: --trust-proxy: "10.0.0.0/99" is not an IP address or CIDR block',
    );
  });
});
