import { describe, expect, it } from 'vitest';
import {
  DRAIN_ROUTE,
  DrainSecretProvider,
  registerDrainSecretProvider,
} from '../../src/dashboard/auth/drain-secret-provider.js';
import { installAuthGates } from '../../src/dashboard/auth/gates.js';
import { AuthRegistry } from '../../src/dashboard/auth/registry.js';
import { NotSupportedError } from '../../src/dashboard/auth/types.js';
import { STRONG_SECRET, testApp } from './helpers.js';

const ENV = 'HERMES_DASHBOARD_DRAIN_SECRET';
const SESSION_TOKEN = 'loopback-session-token-for-tests-0123456789';

/** A loopback dashboard with the drain plugin registered from `secret`. */
function drainDashboard(
  secret: string | undefined,
  extra: { scope?: unknown; minSecretChars?: unknown } = {},
) {
  const registry = new AuthRegistry();
  const registration = registerDrainSecretProvider(registry, { env: { [ENV]: secret }, ...extra });
  const { app, hits } = testApp();
  installAuthGates(app, { registry, bindHost: '127.0.0.1', sessionToken: SESSION_TOKEN, env: {} });
  return { registry, registration, app, hits };
}

const WEAK: [string, string | undefined, RegExp][] = [
  ['unset', undefined, /is not set/],
  ['empty', '   ', /is not set/],
  ['42 characters', STRONG_SECRET.slice(0, 42), /too_short/],
  ['15 distinct characters', 'abcdefghijklmno'.repeat(4), /too_few_distinct/],
  ['low entropy (16 distinct, skewed)', `${'a'.repeat(60)}bcdefghijklmnopq`, /low_entropy/],
];

describe('drain-secret provider (reference §3.6)', () => {
  it.each(WEAK)(
    '%s ⇒ skipped with a reason, no token route, requests fail closed',
    async (_label, secret, reason) => {
      const { registry, registration, app, hits } = drainDashboard(secret);
      expect(registration.registered).toBe(false);
      expect(registration.reason).toMatch(reason);
      expect(registration.reason).toContain(ENV);
      if (secret?.trim()) expect(registration.reason).not.toContain(secret.trim());
      expect(registry.list()).toEqual([]);
      expect(registry.skipped()).toEqual([{ name: 'drain-secret', reason: registration.reason }]);
      expect(registry.tokenRouteFor('POST', DRAIN_ROUTE)).toBeNull();

      // Presenting the (weak) secret gets nowhere: the route stays behind the session-token gate.
      const res = await app.inject({
        method: 'POST',
        url: DRAIN_ROUTE,
        headers: { authorization: `Bearer ${secret ?? 'x'}` },
      });
      expect(res.statusCode).toBe(401);
      expect(hits).toEqual([]);
      // A disabled provider recognises nothing, even if registered by mistake.
      expect(registration.provider.verifyToken(secret ?? '')).toBeNull();
    },
  );

  it('strong secret ⇒ registered, drain route opted in with the drain scope', async () => {
    const { registry, registration, app, hits } = drainDashboard(STRONG_SECRET);
    expect(registration.registered).toBe(true);
    expect(registry.listTokenProviders().map((p) => p.name)).toEqual(['drain-secret']);
    expect(registry.sessionProviders()).toEqual([]);
    const rule = registry.tokenRouteFor('POST', DRAIN_ROUTE);
    expect(rule?.requiredScope).toBe('drain');

    const ok = await app.inject({
      method: 'POST',
      url: DRAIN_ROUTE,
      headers: { authorization: `Bearer ${STRONG_SECRET}` },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({
      ok: true,
      principal: 'drain-control',
      token_principal: { principal: 'drain-control', provider: 'drain-secret', scopes: ['drain'] },
    });
    expect(hits).toEqual(['drain']);
  });

  it('wrong, prefixed or extended bearers ⇒ 401; the session token is not accepted on the token route', async () => {
    const { app, hits } = drainDashboard(STRONG_SECRET);
    for (const bearer of [STRONG_SECRET.slice(0, 42), `${STRONG_SECRET}x`, STRONG_SECRET.toLowerCase()]) {
      const res = await app.inject({
        method: 'POST',
        url: DRAIN_ROUTE,
        headers: { authorization: `Bearer ${bearer}` },
      });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ error: 'unauthenticated', detail: 'Unauthorized' });
    }
    for (const headers of [
      { 'x-hermes-session-token': SESSION_TOKEN },
      { authorization: `Bearer ${SESSION_TOKEN}` },
    ]) {
      const res = await app.inject({ method: 'POST', url: DRAIN_ROUTE, headers });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ error: 'unauthenticated', detail: 'Unauthorized' });
    }
    expect(hits).toEqual([]);
  });

  it('honours the scope and min_secret_chars knobs', () => {
    const custom = new DrainSecretProvider({ env: { [ENV]: STRONG_SECRET }, scope: 'maintenance' });
    expect(custom.verifyToken(STRONG_SECRET)?.scopes).toEqual(['maintenance']);
    const blank = new DrainSecretProvider({ env: { [ENV]: STRONG_SECRET }, scope: '  ' });
    expect(blank.scope).toBe('drain');

    const stricter = new DrainSecretProvider({ env: { [ENV]: STRONG_SECRET }, minSecretChars: 64 });
    expect(stricter.lastSkipReason).toMatch(/too_short.*at least 64/);
    const fromYaml = new DrainSecretProvider({ env: { [ENV]: STRONG_SECRET }, minSecretChars: '44' });
    expect(fromYaml.lastSkipReason).toMatch(/at least 44/);
    const junk = new DrainSecretProvider({ env: { [ENV]: STRONG_SECRET }, minSecretChars: 'lots' });
    expect(junk.minSecretChars).toBe(43);
    expect(junk.lastSkipReason).toBeNull();
  });

  it('reads the secret only from HERMES_DASHBOARD_DRAIN_SECRET and trims it', () => {
    const other = new DrainSecretProvider({ env: { HERMES_DRAIN_SECRET: STRONG_SECRET } });
    expect(other.lastSkipReason).toMatch(/is not set/);
    const padded = new DrainSecretProvider({ env: { [ENV]: `  ${STRONG_SECRET}\n` } });
    expect(padded.verifyToken(STRONG_SECRET)?.principal).toBe('drain-control');
  });

  it('is token-only: no sessions, interactive methods unsupported', () => {
    const provider = new DrainSecretProvider({ env: { [ENV]: STRONG_SECRET } });
    expect(provider.supportsSession).toBe(false);
    expect(provider.verifySession(STRONG_SECRET)).toBeNull();
    expect(() => provider.startLogin('/cb')).toThrow(NotSupportedError);
    expect(() => provider.refreshSession('x')).toThrow(NotSupportedError);
  });

  it('a strong drain secret alone does not let a non-loopback dashboard start', async () => {
    const registry = new AuthRegistry();
    registerDrainSecretProvider(registry, { env: { [ENV]: STRONG_SECRET } });
    const { app } = testApp();
    installAuthGates(app, { registry, bindHost: '0.0.0.0', env: {} });
    await expect(app.ready()).rejects.toThrow(/Refusing to bind dashboard to 0\.0\.0\.0/);
  });
});
