import { createHmac, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { constantTimeEqual, generateToken } from '../../auth/secrets.js';
import { bearerToken } from '../../auth/upgrade-token.js';
import { SlidingWindowLimiter } from '../../common/rate-limit.js';
import { type AuditSink, nullAudit } from './audit.js';
import {
  type CookieContext,
  clearSessionCookies,
  cookieContext,
  firstHeaderValue,
  readSessionCookies,
  sessionSetCookies,
} from './cookies.js';
import { LOGIN_PAGE_CSP, renderLoginPage } from './login-page.js';
import { isApiPath, isGatePublicPath, LOOPBACK_PUBLIC_API_PATHS, safeNext } from './paths.js';
import type { AuthRegistry } from './registry.js';
import {
  clientIp,
  decodedRequestPath,
  hostFromHeader,
  isLoopbackBind,
  isWildcardBind,
  normalizeHostName,
  requestPaths,
} from './request-info.js';
import { authState, ensureAuthDecoration } from './request-state.js';
import { createTokenSeam } from './token-seam.js';
import { fromTrustedProxy, trustedProxies } from './trusted-proxies.js';
import {
  type DashboardAuthProvider,
  InvalidCredentialsError,
  ProviderError,
  RefreshExpiredError,
  type Session,
} from './types.js';

/**
 * The dashboard's auth middleware chain (lifecycle reference §2.1–§2.3, §2.6, §3.3–§3.5), as one
 * fastify `onRequest` hook plus the auth routes:
 *
 *   1. token seam — registered token routes only; bearer or refusal (401/403/503);
 *   2. Host-header check against DNS rebinding (400);
 *   3. loopback bind — the per-process session token (`X-Hermes-Session-Token`, or the legacy
 *      `Authorization: Bearer`) for `/api/*` except the public paths (401);
 *   4. non-loopback bind — a cookie session from a session provider, refreshed transparently
 *      (401 JSON for `/api/*`, 302 to the login page otherwise); the app refuses to start when no
 *      session provider is registered.
 *
 * Token-authenticated requests skip 2–4.
 *
 * Cross-site request forgery (not in the reference, which leaves it to SameSite=Lax cookies): a
 * write (any method but GET/HEAD/OPTIONS) whose `Origin` is present and is not the dashboard's
 * own origin (scheme + host + port of the request's Host), or whose `Sec-Fetch-Site` says
 * `cross-site`/`same-site`, is refused with 403 right after the Host check. A cookie-authenticated
 * write to `/api/*` must also carry `X-Hermes-CSRF-Token`: a per-session value the page reads from
 * `GET /api/auth/me` (`csrf_token`), which a page of another origin cannot read. Bearer-token and
 * session-token requests carry their credential in a header a foreign page cannot set, so they
 * need no CSRF token.
 */

const SESSION_TOKEN_HEADER = 'x-hermes-session-token';
/** The anti-CSRF header of cookie-authenticated API writes (value from `GET /api/auth/me`). */
const CSRF_TOKEN_HEADER = 'x-hermes-csrf-token';
/** `error` of the 403 answer to a cookie-authenticated write without a valid CSRF token. */
const CSRF_ERROR = 'csrf_token_invalid';
/** `error` of the 403 answer to a write from another origin. */
const CROSS_ORIGIN_ERROR = 'cross_origin_request';
const SESSION_TOKEN_ENV = 'HERMES_DASHBOARD_SESSION_TOKEN';
const INVALID_HOST_MESSAGE =
  'Invalid Host header. Dashboard requests must use the hostname the server was bound to.';
const LOOPBACK_HOST_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** The fail-closed startup error (non-loopback bind without a session provider). */
export class DashboardAuthStartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DashboardAuthStartupError';
  }
}

export interface AuthGateOptions {
  registry: AuthRegistry;
  /** The host the dashboard binds to; decides loopback (session token) vs gated (cookie login). */
  bindHost: string;
  /** Require a cookie login even on a loopback bind (the gate can only be tightened, never loosened). */
  requireLogin?: boolean;
  audit?: AuditSink;
  /** Extra host names accepted in the Host header (e.g. a reverse proxy's public name). */
  allowedHosts?: readonly string[];
  /**
   * Reverse proxies whose `X-Forwarded-Proto`, `-Host`, `-Prefix` and `-For` count: a list of
   * addresses and CIDR blocks, or `true` for a proxy on this machine (loopback). Default none.
   */
  trustProxy?: boolean | readonly string[];
  /** The per-process session token; default `HERMES_DASHBOARD_SESSION_TOKEN`, else random. */
  sessionToken?: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Register the auth routes (default true). */
  routes?: boolean;
  /** Serve `GET /login` (default true; turn off when the app renders its own). */
  loginPage?: boolean;
  /** Login attempts per client IP per window (reference: 10 per 60 s). */
  loginRateLimit?: { max: number; windowMs: number };
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

export interface AuthStatus {
  auth_required: boolean;
  /** Every registered provider name, token-only ones included. */
  auth_providers: string[];
  auth_flows: string[];
}

export interface AuthGates {
  /** True on non-loopback binds: the cookie gate is authoritative. */
  readonly authRequired: boolean;
  readonly bindHost: string;
  /** The per-process session token (inject it into the SPA only when `authRequired` is false). */
  readonly sessionToken: string;
  /** Throws `DashboardAuthStartupError` on a gated bind with no session provider. Also runs on ready. */
  assertCanStart(): void;
  /** The auth fields of `GET /api/status`. */
  authStatus(): AuthStatus;
  /**
   * Reference `_require_token` for sensitive handlers: token-authenticated, or (gated) a cookie
   * session, or (loopback) the session token was presented.
   */
  isAuthenticated(request: FastifyRequest): boolean;
}

const loginBody = z.object({
  provider: z.string().max(64).optional().nullable(),
  username: z.string().max(512),
  password: z.string().max(8192),
  next: z.string().max(4096).optional().nullable(),
});

function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value !== '' ? value : undefined;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True for methods that may change state (the CSRF rules apply to them). */
function isWriteMethod(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

/** The request is for an API path (by its decoded path or the route the router matched). */
function isApiRequest(request: FastifyRequest): boolean {
  const { route, decoded } = requestPaths(request);
  return isApiPath(decoded) || (route !== undefined && isApiPath(route));
}

/** `scheme://host[:port]` of an http(s) URL or Origin value, normalised; null when it is none. */
function originOf(value: string): string | null {
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return url.origin;
  } catch {
    return null;
  }
}

export function installAuthGates(app: FastifyInstance, options: AuthGateOptions): AuthGates {
  const { registry } = options;
  const audit = options.audit ?? nullAudit;
  const trusted = trustedProxies(options.trustProxy);
  const now = options.now ?? Date.now;
  const env = options.env ?? process.env;
  const bindHost = options.bindHost;
  const authRequired = options.requireLogin === true || !isLoopbackBind(bindHost);
  const sessionToken = nonEmpty(options.sessionToken) ?? nonEmpty(env[SESSION_TOKEN_ENV]) ?? generateToken();
  const limiter = new SlidingWindowLimiter(
    options.loginRateLimit?.max ?? 10,
    options.loginRateLimit?.windowMs ?? 60_000,
    now,
  );

  // Host names accepted in the Host header. A wildcard bind accepts any name unless extra names
  // were configured (reference: 0.0.0.0/:: ⇒ any).
  const extraHosts = (options.allowedHosts ?? [])
    .map(normalizeHostName)
    .filter((h): h is string => h !== null);
  const anyHost = isWildcardBind(bindHost) && extraHosts.length === 0;
  const allowedHosts = new Set<string>([...LOOPBACK_HOST_NAMES, ...extraHosts]);
  const boundName = normalizeHostName(bindHost);
  if (boundName && !isWildcardBind(bindHost)) allowedHosts.add(boundName);

  const seam = createTokenSeam({ registry, audit, trustedProxies: trusted });
  const nowSeconds = () => Math.floor(now() / 1000);
  // Per-process key of the CSRF tokens: a dashboard restart invalidates them (the page fetches a
  // fresh one when a write is refused), never the cookie sessions.
  const csrfKey = randomBytes(32);

  /** The CSRF token of a cookie session: bound to its user, unguessable without the key. */
  function csrfTokenFor(session: Session): string {
    return createHmac('sha256', csrfKey)
      .update(`hermes-dashboard-csrf\n${session.provider}\n${session.userId}`)
      .digest('base64url');
  }

  function assertCanStart(): void {
    if (!authRequired || registry.sessionProviders().length > 0) return;
    const skipped = registry.skipped();
    const reasons =
      skipped.length > 0
        ? ` Skipped providers: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}.`
        : '';
    const why = isLoopbackBind(bindHost)
      ? 'a login is required on this bind'
      : 'the OAuth auth gate engages on non-loopback binds';
    throw new DashboardAuthStartupError(
      `Refusing to bind dashboard to ${bindHost} — ${why}, but no auth providers are registered.${reasons} ` +
        `Set a password with \`hermes dashboard set-password\`${isLoopbackBind(bindHost) ? '' : ', or bind to 127.0.0.1'}.`,
    );
  }

  ensureAuthDecoration(app);
  app.addHook('onReady', async () => {
    assertCanStart();
  });

  // --- gate 2: Host header ------------------------------------------------------------------
  function hostAllowed(request: FastifyRequest): boolean {
    if (anyHost) return true;
    const host = hostFromHeader(request.headers.host);
    return host !== null && allowedHosts.has(host);
  }

  // --- cross-origin writes -------------------------------------------------------------------
  /** This dashboard's own origin as the browser sees it: scheme + the request's Host. */
  function ownOrigin(request: FastifyRequest): string | null {
    const forwarded = fromTrustedProxy(request, trusted)
      ? firstHeaderValue(request.headers['x-forwarded-host'])
      : undefined;
    const host = forwarded ?? request.headers.host;
    if (typeof host !== 'string' || hostFromHeader(host) === null) return null;
    return originOf(`${cookieContext(request, trusted).secure ? 'https' : 'http'}://${host.trim()}`);
  }

  /** Null when the write may proceed, else why it is refused. */
  function crossOriginReason(request: FastifyRequest): string | null {
    const site = firstHeaderValue(request.headers['sec-fetch-site'])?.toLowerCase();
    if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site: ${site}`;
    const origin = request.headers.origin;
    if (origin === undefined) return null;
    const expected = ownOrigin(request);
    const presented = typeof origin === 'string' ? originOf(origin.trim()) : null;
    if (presented !== null && expected !== null && presented === expected) return null;
    if (presented !== null && expected !== null && presented.replace(/^https:/, 'http:') === expected)
      return 'Origin is https but the request reached the dashboard over http; behind a TLS reverse proxy, run with --trust-proxy';
    return 'Origin does not match this dashboard';
  }

  function refuseCrossOrigin(request: FastifyRequest, reply: FastifyReply, reason: string): void {
    audit.write('csrf_rejected', {
      reason,
      method: request.method,
      path: decodedRequestPath(request),
      ip: clientIp(request, trusted),
    });
    reply
      .code(403)
      .header('cache-control', 'no-store')
      .send({
        error: CROSS_ORIGIN_ERROR,
        detail: `Cross-origin request refused (${reason}): writes must come from this dashboard's own pages.`,
      });
  }

  /** A cookie-authenticated API write must carry the session's CSRF token. */
  function csrfTokenValid(request: FastifyRequest, session: Session): boolean {
    const presented = request.headers[CSRF_TOKEN_HEADER];
    return typeof presented === 'string' && constantTimeEqual(presented, csrfTokenFor(session));
  }

  // --- gate 3: loopback session token ------------------------------------------------------
  function loopbackGate(request: FastifyRequest, reply: FastifyReply): boolean {
    const { route, decoded } = requestPaths(request);
    const api = isApiPath(decoded) || (route !== undefined && isApiPath(route));
    if (!api) return true;
    const publicPath =
      LOOPBACK_PUBLIC_API_PATHS.has(decoded) && (route === undefined || LOOPBACK_PUBLIC_API_PATHS.has(route));
    // Headers only, the event stream included (the page reads it with fetch): never the URL.
    const header = request.headers[SESSION_TOKEN_HEADER];
    const presented =
      typeof header === 'string' ? header : (bearerToken(request.headers.authorization) ?? '');
    if (presented !== '' && constantTimeEqual(presented, sessionToken)) {
      authState(request).sessionTokenAuthenticated = true;
      return true;
    }
    // A public path answers anyone; with the token (above) it may show more (`/api/status`).
    if (publicPath) return true;
    reply.code(401).send({ detail: 'Unauthorized' });
    return false;
  }

  // --- gate 4: cookie sessions ---------------------------------------------------------------
  function unauthenticated(
    request: FastifyRequest,
    reply: FastifyReply,
    ctx: CookieContext,
    api: boolean,
    reason: string,
  ): void {
    const loginUrl = `${ctx.prefix}/login?next=${encodeURIComponent(request.url)}`;
    reply.header('cache-control', 'no-store');
    if (api) {
      reply.code(401).send({
        error: reason === 'invalid_or_expired_session' ? 'session_expired' : 'unauthenticated',
        detail: 'Unauthorized',
        reason,
        login_url: loginUrl,
      });
    } else {
      reply.code(302).header('location', loginUrl).send();
    }
  }

  async function cookieGate(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const { route, decoded } = requestPaths(request);
    const api = isApiPath(decoded) || (route !== undefined && isApiPath(route));
    // Public by its path, unless the router resolved it to a non-public API handler.
    const publicPath =
      isGatePublicPath(decoded) && (route === undefined || isGatePublicPath(route) || !isApiPath(route));
    if (publicPath) return true;

    const ctx = cookieContext(request, trusted);
    const ip = clientIp(request, trusted);
    const { accessToken, refreshToken } = readSessionCookies(request);
    if (!accessToken && !refreshToken) {
      unauthenticated(request, reply, ctx, api, 'no_cookie');
      return false;
    }
    const providers = registry.sessionProviders();

    let session: Session | null = null;
    if (accessToken) {
      let unreachable: string | null = null;
      for (const provider of providers) {
        try {
          session = (await provider.verifySession(accessToken)) ?? null;
          if (session) break;
        } catch (error) {
          if (error instanceof ProviderError) {
            audit.write('session_verify_failure', {
              provider: provider.name,
              reason: 'provider_unreachable',
              path: decoded,
              ip,
            });
            unreachable ??= provider.name;
          } else {
            request.log.warn({ provider: provider.name, error: errorName(error) }, 'verifySession failed');
          }
        }
      }
      if (!session && unreachable !== null) {
        reply.code(503).send({ detail: `Auth provider '${unreachable}' unreachable` });
        return false;
      }
    }

    if (!session && refreshToken) {
      let refreshed: Session | null = null;
      let unreachable: string | null = null;
      for (const provider of providers) {
        try {
          refreshed = await provider.refreshSession(refreshToken);
          if (refreshed) break;
        } catch (error) {
          if (error instanceof RefreshExpiredError) {
            audit.write('refresh_failure', {
              provider: provider.name,
              reason: 'refresh_expired',
              path: decoded,
              ip,
            });
            break;
          }
          if (error instanceof ProviderError) unreachable ??= provider.name;
          // InvalidCodeError: not this provider's token; try the next one.
        }
      }
      if (refreshed) {
        authState(request).session = refreshed;
        reply.header('set-cookie', sessionSetCookies(ctx, refreshed, nowSeconds()));
        audit.write('refresh_success', {
          provider: refreshed.provider,
          user_id: refreshed.userId,
          path: decoded,
          ip,
        });
        return true;
      }
      if (unreachable !== null) {
        // Keep the cookies: an outage must not sign everyone out.
        reply.code(503).send({ detail: `Auth provider '${unreachable}' unreachable` });
        return false;
      }
    }

    if (!session) {
      audit.write('session_rejected', { reason: 'invalid_or_expired_session', path: decoded, ip });
      reply.header('set-cookie', clearSessionCookies(ctx));
      unauthenticated(request, reply, ctx, api, 'invalid_or_expired_session');
      return false;
    }
    authState(request).session = session;
    return true;
  }

  app.addHook('onRequest', async (request, reply) => {
    authState(request);
    // 1. token seam
    if ((await seam(request, reply)) === 'rejected') return reply;
    if (authState(request).tokenAuthenticated) return;
    // 2. Host header
    if (!hostAllowed(request)) {
      reply.code(400).send({ detail: INVALID_HOST_MESSAGE });
      return reply;
    }
    // Writes from another origin (a foreign site, another port of this host).
    const write = isWriteMethod(request.method);
    if (write) {
      const reason = crossOriginReason(request);
      if (reason !== null) {
        refuseCrossOrigin(request, reply, reason);
        return reply;
      }
    }
    // 3. / 4.
    if (!authRequired) {
      if (!loopbackGate(request, reply)) return reply;
    } else if (!(await cookieGate(request, reply))) {
      return reply;
    }
    // A cookie session authenticated an API write: it must also carry the CSRF token.
    const session = authState(request).session;
    if (write && session !== null && isApiRequest(request) && !csrfTokenValid(request, session)) {
      audit.write('csrf_rejected', {
        reason: 'missing_or_invalid_csrf_token',
        method: request.method,
        path: decodedRequestPath(request),
        ip: clientIp(request, trusted),
      });
      reply
        .code(403)
        .header('cache-control', 'no-store')
        .send({
          error: CSRF_ERROR,
          detail: `Missing or invalid ${CSRF_TOKEN_HEADER} header: cookie-authenticated writes need the csrf_token from GET /api/auth/me.`,
        });
      return reply;
    }
  });

  if (options.routes !== false) installAuthRoutes(app, options.loginPage !== false);

  function passwordProviders(): DashboardAuthProvider[] {
    return registry.sessionProviders().filter((p) => p.supportsPassword);
  }

  function installAuthRoutes(instance: FastifyInstance, loginPage: boolean): void {
    if (loginPage) {
      instance.get('/login', async (request, reply) => {
        const query = request.query as Record<string, unknown>;
        const ctx = cookieContext(request, trusted);
        reply
          .header('cache-control', 'no-store')
          .header('content-security-policy', LOGIN_PAGE_CSP)
          .type('text/html; charset=utf-8');
        return renderLoginPage({
          providers: passwordProviders().map((p) => ({ name: p.name, displayName: p.displayName })),
          next: safeNext(query.next),
          prefix: ctx.prefix,
        });
      });
    }

    instance.get('/api/auth/providers', async (_request, reply) => {
      const providers = registry.sessionProviders();
      reply.header('cache-control', 'no-store');
      if (providers.length === 0) return reply.code(503).send({ detail: 'no auth providers registered' });
      return {
        providers: providers.map((p) => ({
          name: p.name,
          display_name: p.displayName,
          supports_password: p.supportsPassword,
        })),
      };
    });

    instance.get('/auth/login', async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const name = typeof query.provider === 'string' ? query.provider : '';
      const provider = registry.get(name);
      const ctx = cookieContext(request, trusted);
      reply.header('cache-control', 'no-store');
      // Only password providers are bundled; redirect (OAuth) providers would start here.
      if (!provider?.supportsSession || !provider.supportsPassword) {
        return reply.code(404).send({ detail: 'Unknown provider' });
      }
      audit.write('login_start', { provider: provider.name, ip: clientIp(request, trusted) });
      const next = safeNext(query.next);
      const location = `${ctx.prefix}/login${next === '/' ? '' : `?next=${encodeURIComponent(next)}`}`;
      return reply.code(302).header('location', location).send();
    });

    instance.post('/auth/password-login', async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const ip = clientIp(request, trusted);
      const retryAfter = limiter.hit(ip);
      if (retryAfter > 0) {
        audit.write('login_failure', { reason: 'rate_limited', ip });
        return reply
          .code(429)
          .header('retry-after', String(retryAfter))
          .send({ detail: 'Too many login attempts; try again later' });
      }
      const parsed = loginBody.safeParse(request.body);
      if (!parsed.success) return reply.code(400).send({ detail: 'username and password are required' });
      const body = parsed.data;
      const provider = body.provider ? registry.get(body.provider) : passwordProviders()[0];
      if (!provider?.supportsSession || !provider.supportsPassword) {
        return reply.code(404).send({ detail: 'Unknown provider' });
      }
      let session: Session;
      try {
        session = await provider.completeLogin({ username: body.username, password: body.password });
      } catch (error) {
        if (error instanceof InvalidCredentialsError) {
          audit.write('login_failure', { provider: provider.name, reason: 'invalid_credentials', ip });
          return reply.code(401).send({ detail: 'Invalid credentials' });
        }
        if (error instanceof ProviderError) {
          audit.write('login_failure', { provider: provider.name, reason: 'provider_unreachable', ip });
          return reply.code(503).send({ detail: `Auth provider '${provider.name}' unreachable` });
        }
        audit.write('login_failure', {
          provider: provider.name,
          reason: 'error',
          error: errorName(error),
          ip,
        });
        request.log.error({ provider: provider.name, error: errorName(error) }, 'password login failed');
        return reply.code(500).send({ detail: 'Login failed' });
      }
      const ctx = cookieContext(request, trusted);
      reply.header('set-cookie', sessionSetCookies(ctx, session, nowSeconds()));
      audit.write('login_success', { provider: provider.name, user_id: session.userId, ip });
      return { ok: true, next: safeNext(body.next) };
    });

    instance.post('/auth/logout', async (request, reply) => {
      const ctx = cookieContext(request, trusted);
      const { accessToken, refreshToken } = readSessionCookies(request);
      let userId: string | null = null;
      let providerName: string | null = null;
      for (const provider of registry.sessionProviders()) {
        if (accessToken && userId === null) {
          try {
            const s = await provider.verifySession(accessToken);
            if (s) {
              userId = s.userId;
              providerName = provider.name;
            }
          } catch {
            // best effort
          }
        }
        if (refreshToken) {
          try {
            await provider.revokeSession(refreshToken);
          } catch {
            // revokeSession must not throw; ignore a provider that does
          }
        }
      }
      audit.write('logout', { provider: providerName, user_id: userId, ip: clientIp(request, trusted) });
      return reply
        .code(302)
        .header('cache-control', 'no-store')
        .header('set-cookie', clearSessionCookies(ctx))
        .header('location', `${ctx.prefix}/login`)
        .send();
    });

    instance.get('/api/auth/me', async (request, reply) => {
      const session = request.dashboardAuth?.session ?? null;
      reply.header('cache-control', 'no-store');
      if (!session) return reply.code(401).send({ detail: 'Unauthorized' });
      return {
        user_id: session.userId,
        email: session.email,
        display_name: session.displayName,
        org_id: session.orgId,
        provider: session.provider,
        expires_at: session.expiresAt,
        // For the page's writes (header X-Hermes-CSRF-Token); another origin cannot read it.
        csrf_token: csrfTokenFor(session),
      };
    });
  }

  return {
    authRequired,
    bindHost,
    sessionToken,
    assertCanStart,
    authStatus: () => ({
      auth_required: authRequired,
      auth_providers: registry.list().map((p) => p.name),
      auth_flows: ['cookie'],
    }),
    isAuthenticated(request) {
      const state = request.dashboardAuth;
      if (!state) return false;
      if (state.tokenAuthenticated) return true;
      return authRequired ? state.session !== null : state.sessionTokenAuthenticated;
    },
  };
}
