import Fastify from 'fastify';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AuditLog } from '../../src/dashboard/auth/audit.js';
import { AuthRegistry } from '../../src/dashboard/auth/registry.js';
import { installTokenSeam } from '../../src/dashboard/auth/token-seam.js';
import { ProviderError, type TokenPrincipal } from '../../src/dashboard/auth/types.js';
import { auditLines, auditText, tempHome, testApp, tokenProvider } from './helpers.js';

const GOOD = 'good-token-0123456789';
const principal = (name: string, scopes = ['drain']): TokenPrincipal => ({
  principal: `${name}-caller`,
  provider: name,
  scopes,
});
const acceptsGood = (name: string, scopes?: string[]) =>
  tokenProvider(name, (bearer) => (bearer === GOOD ? principal(name, scopes) : null));

function seamApp(registry: AuthRegistry, home?: string) {
  const { app, hits } = testApp();
  installTokenSeam(app, { registry, audit: home ? new AuditLog(home) : undefined });
  return { app, hits };
}

const UNAUTHENTICATED = { error: 'unauthenticated', detail: 'Unauthorized' };

describe('token seam (reference §3.3 contract)', () => {
  it('passes unregistered routes through untouched, even with a bearer', async () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain');
    const { app, hits } = seamApp(registry);

    const plain = await app.inject({ method: 'GET', url: '/api/secret' });
    expect(plain.statusCode).toBe(200);
    const withBearer = await app.inject({
      method: 'GET',
      url: '/api/secret',
      headers: { authorization: `Bearer ${GOOD}` },
    });
    expect(withBearer.statusCode).toBe(200);
    expect(hits).toEqual(['secret', 'secret']);
  });

  it('a valid bearer reaches the handler with the principal attached', async () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain');
    const { app } = seamApp(registry);

    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `bearer ${GOOD}` }, // scheme is case-insensitive
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      ok: true,
      principal: 'svc-caller',
      token_principal: { principal: 'svc-caller', provider: 'svc', scopes: ['drain'] },
    });
  });

  it.each([
    ['missing', undefined],
    ['wrong', `Bearer not-${GOOD}`],
    ['empty bearer', 'Bearer '],
    ['other scheme', `Basic ${GOOD}`],
  ])('%s token ⇒ 401 with the exact body, handler not run', async (_label, authorization) => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain');
    const { app, hits } = seamApp(registry);

    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: authorization ? { authorization } : {},
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual(UNAUTHENTICATED);
    expect(hits).toEqual([]);
  });

  it('no token provider registered ⇒ 401 (fail closed)', async () => {
    const registry = new AuthRegistry();
    registry.registerTokenRoute('/api/gateway/drain');
    const { app, hits } = seamApp(registry);
    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `Bearer ${GOOD}` },
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual(UNAUTHENTICATED);
    expect(hits).toEqual([]);
  });

  it('an unreachable provider and no recognition ⇒ 503 naming the provider', async () => {
    const registry = new AuthRegistry();
    registry.register(
      tokenProvider('store', () => {
        throw new ProviderError('connection refused');
      }),
    );
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain');
    const home = tempHome();
    const { app, hits } = seamApp(registry, home);

    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: 'Bearer unknown-token' },
    });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ detail: "Auth provider 'store' unreachable" });
    expect(hits).toEqual([]);
    const line = auditLines(home).at(-1);
    expect(line).toMatchObject({
      event: 'token_auth_failure',
      provider: 'store',
      reason: 'provider_unreachable',
      path: '/api/gateway/drain',
    });
    expect(auditText(home)).not.toContain('unknown-token');
  });

  it('unreachable first, valid second ⇒ 200 from the second provider', async () => {
    const registry = new AuthRegistry();
    registry.register(
      tokenProvider('store', async () => {
        throw new ProviderError('timeout');
      }),
    );
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain');
    const { app } = seamApp(registry);
    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `Bearer ${GOOD}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().token_principal.provider).toBe('svc');
  });

  it('a buggy provider (non-ProviderError) is skipped, not a 503', async () => {
    const registry = new AuthRegistry();
    registry.register(
      tokenProvider('buggy', () => {
        throw new TypeError('oops');
      }),
    );
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain');
    const { app } = seamApp(registry);

    const ok = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `Bearer ${GOOD}` },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().token_principal.provider).toBe('svc');

    const bad = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: 'Bearer nope' },
    });
    expect(bad.statusCode).toBe(401);
    expect(bad.json()).toEqual(UNAUTHENTICATED);
  });

  it('the first provider that recognises the token wins (registration order)', async () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('first'));
    registry.register(acceptsGood('second'));
    registry.registerTokenRoute('/api/gateway/drain');
    const { app } = seamApp(registry);
    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `Bearer ${GOOD}` },
    });
    expect(res.json().token_principal.provider).toBe('first');
  });

  it('a provider cannot claim to be another provider', async () => {
    const registry = new AuthRegistry();
    registry.register(tokenProvider('svc', () => ({ principal: 'x', provider: 'drain-secret', scopes: [] })));
    registry.registerTokenRoute('/api/gateway/drain');
    const { app } = seamApp(registry);
    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: 'Bearer anything' },
    });
    expect(res.json().token_principal.provider).toBe('svc');
  });

  it('a principal without the required scope ⇒ 403 forbidden, audited as missing_scope', async () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('svc', ['read']));
    registry.registerTokenRoute('/api/gateway/drain', { requiredScope: 'drain' });
    const home = tempHome();
    const { app, hits } = seamApp(registry, home);
    const res = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `Bearer ${GOOD}` },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ error: 'forbidden', detail: 'Forbidden' });
    expect(hits).toEqual([]);
    expect(auditLines(home).at(-1)).toMatchObject({
      event: 'token_auth_failure',
      reason: 'missing_scope',
      required_scope: 'drain',
      principal: 'svc-caller',
    });
  });

  it('success is audited without the bearer', async () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain', { requiredScope: 'drain' });
    const home = tempHome();
    const { app } = seamApp(registry, home);
    await app.inject({
      method: 'POST',
      url: '/api/gateway/drain',
      headers: { authorization: `Bearer ${GOOD}` },
    });
    expect(auditLines(home)).toEqual([
      expect.objectContaining({
        event: 'token_auth_success',
        provider: 'svc',
        principal: 'svc-caller',
        path: '/api/gateway/drain',
        ip: '127.0.0.1',
      }),
    ]);
    expect(auditText(home)).not.toContain(GOOD);
  });

  it('cannot be dodged by percent-encoding the path (the router decodes it)', async () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain');
    const { app, hits } = seamApp(registry);
    const res = await app.inject({ method: 'POST', url: '/api/gateway/%64rain' });
    expect(res.statusCode).toBe(401);
    expect(hits).toEqual([]);
  });

  it('follows the router: a lenient trailing-slash option cannot reach the handler without the bearer', async () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/gateway/drain');
    const app = Fastify({ logger: false, routerOptions: { ignoreTrailingSlash: true } });
    onTestFinished(() => app.close());
    const hits: string[] = [];
    app.post('/api/gateway/drain', async () => {
      hits.push('drain');
      return { ok: true };
    });
    installTokenSeam(app, { registry });
    const res = await app.inject({ method: 'POST', url: '/api/gateway/drain/' });
    expect(res.statusCode).toBe(401);
    expect(hits).toEqual([]);
    const ok = await app.inject({
      method: 'POST',
      url: '/api/gateway/drain/',
      headers: { authorization: `Bearer ${GOOD}` },
    });
    expect(ok.statusCode).toBe(200);
  });

  it('a method-scoped rule leaves other methods to the normal gates', async () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('svc'));
    registry.registerTokenRoute('/api/secret', { methods: ['POST'] });
    const { app } = seamApp(registry);
    expect((await app.inject({ method: 'GET', url: '/api/secret' })).statusCode).toBe(200);
    expect(registry.tokenRouteFor('post', '/api/secret')?.path).toBe('/api/secret');
    expect(registry.tokenRouteFor('GET', '/api/secret')).toBeNull();
  });
});

describe('AuthRegistry', () => {
  it('token routes: idempotent for the same rule, conflicting re-registration throws', () => {
    const registry = new AuthRegistry();
    registry.registerTokenRoute('/api/gateway/drain', { requiredScope: 'drain' });
    registry.registerTokenRoute('/api/gateway/drain', { requiredScope: 'drain' });
    expect(registry.tokenRoutes()).toHaveLength(1);
    expect(() => registry.registerTokenRoute('/api/gateway/drain', { requiredScope: 'other' })).toThrow(
      /different rule/,
    );
    expect(() => registry.registerTokenRoute('api/x')).toThrow(TypeError);
    expect(registry.tokenRouteFor('POST', '/api/gateway/drain/')).toBeNull();
  });

  it('keeps registration order, splits token and session providers, rejects duplicates', () => {
    const registry = new AuthRegistry();
    registry.register(acceptsGood('b'));
    registry.register(acceptsGood('a'));
    expect(registry.listTokenProviders().map((p) => p.name)).toEqual(['b', 'a']);
    expect(registry.sessionProviders()).toEqual([]);
    expect(() => registry.register(acceptsGood('a'))).toThrow(/already registered/);
  });

  it('skips a provider that reports a skip reason and keeps the reason', () => {
    const registry = new AuthRegistry();
    const skipped = { ...acceptsGood('svc'), lastSkipReason: 'SVC_SECRET is not set' };
    expect(registry.register(skipped)).toBe(false);
    expect(registry.list()).toEqual([]);
    expect(registry.skipped()).toEqual([{ name: 'svc', reason: 'SVC_SECRET is not set' }]);
  });

  it('rejects providers that violate the protocol', () => {
    const registry = new AuthRegistry();
    expect(() => registry.register({ ...acceptsGood('svc'), name: 'Bad Name' })).toThrow(TypeError);
    expect(() => registry.register({ ...acceptsGood('svc'), supportsToken: false })).toThrow(/neither/);
  });
});
