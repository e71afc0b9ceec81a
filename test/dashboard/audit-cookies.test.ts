import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog, formatAuditLine } from '../../src/dashboard/auth/audit.js';
import {
  clearSessionCookies,
  normalizeForwardedPrefix,
  parseCookieHeader,
  readCookie,
  serializeCookie,
  sessionSetCookies,
} from '../../src/dashboard/auth/cookies.js';
import { safeNext } from '../../src/dashboard/auth/paths.js';
import { hostFromHeader, isLoopbackBind } from '../../src/dashboard/auth/request-info.js';
import { auditLines, auditText, tempHome } from './helpers.js';

const FIXED = new Date('2026-06-26T12:00:00.000Z');

describe('audit log (reference §3.7)', () => {
  it('writes one compact JSON object per line with ts and event first', () => {
    const home = tempHome();
    const log = new AuditLog(home, { now: () => FIXED });
    log.write('login_success', { provider: 'basic', user_id: 'admin', ip: '127.0.0.1' });
    log.write('logout', {});
    expect(auditText(home)).toBe(
      '{"ts":"2026-06-26T12:00:00.000Z","event":"login_success","provider":"basic","user_id":"admin","ip":"127.0.0.1"}\n' +
        '{"ts":"2026-06-26T12:00:00.000Z","event":"logout"}\n',
    );
    expect(statSync(join(home, 'logs', 'dashboard-auth.log')).mode & 0o777).toBe(0o600);
  });

  it('drops credential fields (reference list, any case, nested) and cannot be spoofed', () => {
    const home = tempHome();
    const log = new AuditLog(home, { now: () => FIXED });
    log.write('token_auth_failure', {
      access_token: 'AT-SECRET',
      refresh_token: 'RT-SECRET',
      code: 'CODE-SECRET',
      code_verifier: 'VERIFIER-SECRET',
      state: 'STATE-SECRET',
      ticket: 'TICKET-SECRET',
      cookie: 'COOKIE-SECRET',
      Authorization: 'Bearer AUTH-SECRET',
      authorization: 'Bearer AUTH2-SECRET',
      AUTHORIZATION: 'Bearer AUTH3-SECRET',
      password: 'PASSWORD-SECRET',
      nested: { refresh_token: 'NESTED-SECRET', keep: 'visible' },
      ts: 'forged',
      event: 'forged',
      reason: 'no_provider_recognises_token',
    });
    const text = auditText(home);
    expect(text).not.toMatch(/SECRET/);
    expect(auditLines(home)).toEqual([
      {
        ts: '2026-06-26T12:00:00.000Z',
        event: 'token_auth_failure',
        nested: { keep: 'visible' },
        reason: 'no_provider_recognises_token',
      },
    ]);
  });

  it('keeps each record on one line whatever the field values contain', () => {
    const line = formatAuditLine(FIXED, 'login_failure', { reason: 'a\nb\r\n{"event":"login_success"}' });
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toContain('\n');
    expect(JSON.parse(line).event).toBe('login_failure');
  });

  it('never throws, even when the log directory cannot be created', () => {
    const home = tempHome();
    writeFileSync(join(home, 'logs'), 'a file where the directory should be');
    const log = new AuditLog(home);
    expect(() => log.write('login_failure', { reason: 'x' })).not.toThrow();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => new AuditLog(tempHome()).write('logout', circular)).not.toThrow();
  });

  it('rotates at the size limit keeping the configured backups', () => {
    const home = tempHome();
    const log = new AuditLog(home, { maxBytes: 200, backups: 2 });
    for (let i = 0; i < 20; i++) log.write('login_failure', { reason: `attempt-${i}`, pad: 'x'.repeat(60) });
    const files = readdirSync(join(home, 'logs')).sort();
    expect(files).toEqual(['dashboard-auth.log', 'dashboard-auth.log.1', 'dashboard-auth.log.2']);
    expect(auditText(home)).toContain('attempt-19');
  });
});

describe('cookies (reference §3.5)', () => {
  it('parses Cookie headers robustly', () => {
    const cookies = parseCookieHeader(
      ' a=1; b="two" ;; junk ; =nameless; bad name=x; a=shadowed; hermes_session_at=tok.en_-; e=; f=x=y',
    );
    expect(cookies.get('a')).toBe('1');
    expect(cookies.get('b')).toBe('two');
    expect(cookies.get('hermes_session_at')).toBe('tok.en_-');
    expect(cookies.get('e')).toBe('');
    expect(cookies.get('f')).toBe('x=y');
    expect(cookies.has('junk')).toBe(false);
    expect(cookies.has('bad name')).toBe(false);
    expect(parseCookieHeader(undefined).size).toBe(0);
    expect(parseCookieHeader('__proto__=x').get('__proto__')).toBe('x');
  });

  it('reads __Host-, then __Secure-, then the bare name; ignores empty values', () => {
    expect(
      readCookie(
        parseCookieHeader('hermes_session_at=bare; __Host-hermes_session_at=host'),
        'hermes_session_at',
      ),
    ).toBe('host');
    expect(
      readCookie(
        parseCookieHeader('hermes_session_at=bare; __Secure-hermes_session_at=sec'),
        'hermes_session_at',
      ),
    ).toBe('sec');
    expect(readCookie(parseCookieHeader('hermes_session_at='), 'hermes_session_at')).toBeNull();
  });

  it('serializes with HttpOnly, SameSite=Lax, Path and Max-Age; refuses injectable values', () => {
    expect(serializeCookie('n', 'v', { maxAge: 60, path: '/', secure: false })).toBe(
      'n=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax',
    );
    expect(() => serializeCookie('n', 'v; Domain=evil', { maxAge: 1, path: '/', secure: false })).toThrow();
    expect(() =>
      serializeCookie('n', 'a\r\nSet-Cookie: x=y', { maxAge: 1, path: '/', secure: false }),
    ).toThrow();
  });

  it('session cookies: access Max-Age = max(60, exp − now), refresh only when present, prefix under a proxy', () => {
    const [at, rt] = sessionSetCookies(
      { secure: false, prefix: '' },
      { accessToken: 'A', refreshToken: 'R', expiresAt: 1030 },
      1000,
    );
    expect(at).toBe('hermes_session_at=A; Max-Age=60; Path=/; HttpOnly; SameSite=Lax');
    expect(rt).toBe('hermes_session_rt=R; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax');
    expect(
      sessionSetCookies(
        { secure: false, prefix: '' },
        { accessToken: 'A', refreshToken: '', expiresAt: 5000 },
        1000,
      ),
    ).toEqual(['hermes_session_at=A; Max-Age=4000; Path=/; HttpOnly; SameSite=Lax']);
    const [proxied] = sessionSetCookies(
      { secure: true, prefix: '/hermes' },
      { accessToken: 'A', refreshToken: '', expiresAt: 5000 },
      1000,
    );
    expect(proxied).toBe(
      '__Secure-hermes_session_at=A; Max-Age=4000; Path=/hermes; HttpOnly; Secure; SameSite=Lax',
    );
    const cleared = clearSessionCookies({ secure: false, prefix: '' });
    expect(cleared).toHaveLength(6);
    expect(cleared.every((c) => c.includes('Max-Age=0'))).toBe(true);
  });

  it('normalises X-Forwarded-Prefix and refuses path tricks', () => {
    expect(normalizeForwardedPrefix('/hermes/')).toBe('/hermes');
    expect(normalizeForwardedPrefix('/a/b')).toBe('/a/b');
    for (const bad of ['hermes', '//evil', '/a/../b', '/a b', '/a;b=c', '/']) {
      expect(normalizeForwardedPrefix(bad)).toBe('');
    }
  });
});

describe('host and path helpers', () => {
  it('parses Host headers', () => {
    expect(hostFromHeader('LocalHost:9119')).toBe('localhost');
    expect(hostFromHeader('[::1]:80')).toBe('[::1]');
    expect(hostFromHeader('')).toBeNull();
    expect(hostFromHeader(undefined)).toBeNull();
    expect(hostFromHeader('a:b:c')).toBeNull();
    expect(hostFromHeader('[::1')).toBeNull();
  });

  it('classifies loopback binds like the reference', () => {
    for (const h of ['127.0.0.1', 'localhost', '::1', '[::1]']) expect(isLoopbackBind(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.168.1.2', '127.0.0.2', 'example.org'])
      expect(isLoopbackBind(h)).toBe(false);
  });

  it('validates next= targets', () => {
    expect(safeNext('/sessions?x=1')).toBe('/sessions?x=1');
    for (const bad of [
      undefined,
      '',
      'x',
      '//e.org',
      '/\\e.org',
      '/login',
      '/login?next=/',
      '/auth/x',
      '/api',
      '/api/x',
      '/a\nb',
    ]) {
      expect(safeNext(bad)).toBe('/');
    }
  });
});
