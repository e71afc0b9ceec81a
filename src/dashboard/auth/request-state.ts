import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Session, TokenPrincipal } from './types.js';

/**
 * What the auth chain learned about a request (reference `request.state.token_principal`,
 * `token_authenticated`, `session`). Handlers read it through the helpers below.
 */
export interface RequestAuthState {
  /** A token route's bearer was recognised: every later gate lets the request through. */
  tokenAuthenticated: boolean;
  tokenPrincipal: TokenPrincipal | null;
  /** The cookie session (non-loopback binds). */
  session: Session | null;
  /** The per-process session token was presented (loopback binds). */
  sessionTokenAuthenticated: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    dashboardAuth: RequestAuthState | null;
  }
}

/** Add the `dashboardAuth` request decoration once per app. */
export function ensureAuthDecoration(app: FastifyInstance): void {
  if (!app.hasRequestDecorator('dashboardAuth')) app.decorateRequest('dashboardAuth', null);
}

/** The request's auth state, created on first use. */
export function authState(request: FastifyRequest): RequestAuthState {
  let state = request.dashboardAuth;
  if (!state) {
    state = {
      tokenAuthenticated: false,
      tokenPrincipal: null,
      session: null,
      sessionTokenAuthenticated: false,
    };
    request.dashboardAuth = state;
  }
  return state;
}

/** The token principal attached by the seam, or null. */
export function tokenPrincipalOf(request: FastifyRequest): TokenPrincipal | null {
  return request.dashboardAuth?.tokenPrincipal ?? null;
}

/** The cookie session attached by the gate, or null. */
export function sessionOf(request: FastifyRequest): Session | null {
  return request.dashboardAuth?.session ?? null;
}
