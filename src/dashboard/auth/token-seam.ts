import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { redact } from '../../auth/secrets.js';
import { bearerToken } from '../../auth/upgrade-token.js';
import { type AuditSink, nullAudit } from './audit.js';
import type { AuthRegistry, TokenRoute } from './registry.js';
import { clientIp, requestPaths } from './request-info.js';
import { authState, ensureAuthDecoration } from './request-state.js';
import { NO_TRUSTED_PROXIES, type TrustedProxies } from './trusted-proxies.js';
import { ProviderError, type TokenPrincipal } from './types.js';

/**
 * The non-interactive bearer seam (lifecycle reference §3.3, with the later scope rule).
 *
 * For a registered token route only: the `Authorization: Bearer` token is offered to every token
 * provider in registration order; the first that recognises it wins. A provider that throws
 * anything but `ProviderError` is logged and skipped. No recognition ⇒ 401 (503 when a provider was
 * unreachable); a recognised principal without the route's scope ⇒ 403. Other routes pass through
 * untouched. Registration never makes a route public, and cookies or the session token are not
 * accepted on a token route.
 */

const UNAUTHENTICATED_BODY = { error: 'unauthenticated', detail: 'Unauthorized' } as const;
const FORBIDDEN_BODY = { error: 'forbidden', detail: 'Forbidden' } as const;

export interface TokenSeamOptions {
  registry: AuthRegistry;
  audit?: AuditSink;
  /** Proxies whose `X-Forwarded-For` entries count for the audit IP (default: none). */
  trustedProxies?: TrustedProxies;
}

/** What the seam did: not a token route, authenticated, or answered with an error. */
export type TokenSeamOutcome = 'passthrough' | 'authenticated' | 'rejected';

export type TokenSeam = (request: FastifyRequest, reply: FastifyReply) => Promise<TokenSeamOutcome>;

/** The token rule that applies to the request: by matched route pattern first, then by decoded path. */
function tokenRouteForRequest(registry: AuthRegistry, request: FastifyRequest): TokenRoute | null {
  const { route, decoded } = requestPaths(request);
  const byRoute = route === undefined ? null : registry.tokenRouteFor(request.method, route);
  return byRoute ?? registry.tokenRouteFor(request.method, decoded);
}

function validPrincipal(value: unknown): value is TokenPrincipal {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.principal === 'string' &&
    v.principal !== '' &&
    Array.isArray(v.scopes) &&
    v.scopes.every((s) => typeof s === 'string')
  );
}

export function createTokenSeam(options: TokenSeamOptions): TokenSeam {
  const { registry } = options;
  const audit = options.audit ?? nullAudit;
  const trusted = options.trustedProxies ?? NO_TRUSTED_PROXIES;

  return async (request, reply) => {
    const rule = tokenRouteForRequest(registry, request);
    if (!rule) return 'passthrough';
    const path = rule.path;
    const ip = clientIp(request, trusted);
    const token = bearerToken(request.headers.authorization) ?? '';

    let principal: TokenPrincipal | null = null;
    let unreachable: string | null = null;
    if (token !== '') {
      for (const provider of registry.listTokenProviders()) {
        try {
          const result = await provider.verifyToken(token);
          if (result === null || result === undefined) continue;
          if (!validPrincipal(result)) {
            request.log.warn(
              { provider: provider.name },
              'token provider returned a malformed principal; skipped',
            );
            continue;
          }
          // A provider speaks only for itself: the provider name is the registered one.
          principal = Object.freeze({
            principal: result.principal,
            provider: provider.name,
            scopes: [...result.scopes],
          });
          break;
        } catch (error) {
          if (error instanceof ProviderError) {
            unreachable ??= provider.name;
            continue;
          }
          const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          request.log.warn(
            { provider: provider.name, error: redact(message, [token]) },
            'token provider failed; skipped',
          );
        }
      }
    }

    reply.header('cache-control', 'no-store');
    if (principal) {
      if (rule.requiredScope !== null && !principal.scopes.includes(rule.requiredScope)) {
        audit.write('token_auth_failure', {
          provider: principal.provider,
          principal: principal.principal,
          reason: 'missing_scope',
          required_scope: rule.requiredScope,
          path,
          ip,
        });
        reply.code(403).send(FORBIDDEN_BODY);
        return 'rejected';
      }
      const state = authState(request);
      state.tokenPrincipal = principal;
      state.tokenAuthenticated = true;
      audit.write('token_auth_success', {
        provider: principal.provider,
        principal: principal.principal,
        path,
        ip,
      });
      return 'authenticated';
    }
    if (unreachable !== null) {
      audit.write('token_auth_failure', { provider: unreachable, reason: 'provider_unreachable', path, ip });
      reply.code(503).send({ detail: `Auth provider '${unreachable}' unreachable` });
      return 'rejected';
    }
    audit.write('token_auth_failure', {
      reason: 'no_provider_recognises_token',
      bearer_present: token !== '',
      path,
      ip,
    });
    reply.code(401).header('www-authenticate', 'Bearer').send(UNAUTHENTICATED_BODY);
    return 'rejected';
  };
}

/** Install only the seam, as an `onRequest` hook (the full chain is `installAuthGates`). */
export function installTokenSeam(app: FastifyInstance, options: TokenSeamOptions): void {
  ensureAuthDecoration(app);
  const seam = createTokenSeam(options);
  app.addHook('onRequest', async (request, reply) => {
    if ((await seam(request, reply)) === 'rejected') return reply;
  });
}
