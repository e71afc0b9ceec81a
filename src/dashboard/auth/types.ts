/**
 * The dashboard auth provider contract (lifecycle reference §3.1, `base.py`).
 *
 * A provider is either a *session* provider (interactive login → cookie session), a *token*
 * provider (non-interactive `Authorization: Bearer` on registered token routes), or both.
 * Providers that cannot run (no password set, weak secret, …) report `lastSkipReason`; the
 * registry then skips them and keeps the reason for the fail-closed startup error.
 */

export type Awaitable<T> = T | Promise<T>;

/** An authenticated browser session. Tokens are opaque to the framework. */
export interface Session {
  readonly userId: string;
  readonly email: string | null;
  readonly displayName: string | null;
  readonly orgId: string | null;
  /** Name of the provider that issued the session. */
  readonly provider: string;
  /** Unix seconds at which the access token expires. */
  readonly expiresAt: number;
  readonly accessToken: string;
  /** Empty when the provider issues no refresh token. */
  readonly refreshToken: string;
}

/** Who called a token route (reference `TokenPrincipal`). */
export interface TokenPrincipal {
  /** Opaque caller id, e.g. `drain-control`. */
  readonly principal: string;
  /** Name of the provider that recognised the bearer. */
  readonly provider: string;
  readonly scopes: string[];
}

/** Where to send the browser to start an interactive login, plus cookies to set (≤ 10 min TTL). */
export interface LoginStart {
  readonly redirectUrl: string;
  readonly cookiePayload: Readonly<Record<string, string>>;
}

export interface PasswordCredentials {
  readonly username: string;
  readonly password: string;
}

/** The identity provider or backing store is unreachable (⇒ 503). The only error `verifyToken` may throw. */
export class ProviderError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProviderError';
  }
}

/** A code, state or token this provider cannot verify (⇒ 400, or "not mine" during refresh). */
export class InvalidCodeError extends Error {
  constructor(message = 'invalid code or token', options?: ErrorOptions) {
    super(message, options);
    this.name = 'InvalidCodeError';
  }
}

/** Wrong username or password (⇒ generic 401 `Invalid credentials`). */
export class InvalidCredentialsError extends Error {
  constructor(message = 'Invalid credentials', options?: ErrorOptions) {
    super(message, options);
    this.name = 'InvalidCredentialsError';
  }
}

/** The refresh token was recognised by this provider but is expired or revoked. */
export class RefreshExpiredError extends Error {
  constructor(message = 'refresh token expired', options?: ErrorOptions) {
    super(message, options);
    this.name = 'RefreshExpiredError';
  }
}

/** An interactive method called on a provider that does not support it (reference `NotImplementedError`). */
export class NotSupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotSupportedError';
  }
}

/**
 * The provider interface (reference `DashboardAuthProvider` ABC). Every method may be sync or async.
 *
 * - `verifySession` returns null for unknown/expired tokens and throws `ProviderError` only when
 *   the backing store is unreachable.
 * - `refreshSession` throws `RefreshExpiredError` for a token it issued that is no longer valid,
 *   `InvalidCodeError` for a token it does not recognise, `ProviderError` when unreachable.
 * - `revokeSession` never throws.
 * - `verifyToken` compares in constant time, returns null for any token it does not recognise and
 *   throws `ProviderError` only for a backing-store outage.
 */
export interface DashboardAuthProvider {
  readonly name: string;
  readonly displayName: string;
  readonly supportsSession: boolean;
  readonly supportsPassword: boolean;
  readonly supportsToken: boolean;
  /** Why this provider cannot run (null when it can). Never contains a secret. */
  readonly lastSkipReason: string | null;

  startLogin(redirectUri: string): Awaitable<LoginStart>;
  completeLogin(credentials: PasswordCredentials): Awaitable<Session>;
  verifySession(accessToken: string): Awaitable<Session | null>;
  refreshSession(refreshToken: string): Awaitable<Session>;
  revokeSession(refreshToken: string): Awaitable<void>;
  verifyToken(bearer: string): Awaitable<TokenPrincipal | null>;
}

const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const METHODS = [
  'startLogin',
  'completeLogin',
  'verifySession',
  'refreshSession',
  'revokeSession',
  'verifyToken',
] as const;

/**
 * Reference `assert_protocol_compliance`: a non-empty lowercase name, a display name, boolean
 * capability flags, every method present, and at least one capability. Throws `TypeError`.
 */
export function assertProtocolCompliance(provider: unknown): asserts provider is DashboardAuthProvider {
  if (typeof provider !== 'object' || provider === null) {
    throw new TypeError('dashboard auth provider must be an object');
  }
  const p = provider as Record<string, unknown>;
  if (typeof p.name !== 'string' || !PROVIDER_NAME.test(p.name)) {
    throw new TypeError('dashboard auth provider name must match [a-z0-9][a-z0-9_-]*');
  }
  if (typeof p.displayName !== 'string' || p.displayName.trim() === '') {
    throw new TypeError(`dashboard auth provider '${p.name}' needs a display name`);
  }
  for (const flag of ['supportsSession', 'supportsPassword', 'supportsToken'] as const) {
    if (typeof p[flag] !== 'boolean') {
      throw new TypeError(`dashboard auth provider '${p.name}': ${flag} must be a boolean`);
    }
  }
  for (const method of METHODS) {
    if (typeof p[method] !== 'function') {
      throw new TypeError(`dashboard auth provider '${p.name}' lacks ${method}()`);
    }
  }
  if (p.lastSkipReason !== null && typeof p.lastSkipReason !== 'string') {
    throw new TypeError(`dashboard auth provider '${p.name}': lastSkipReason must be a string or null`);
  }
  if (!p.supportsSession && !p.supportsToken) {
    throw new TypeError(`dashboard auth provider '${p.name}' supports neither sessions nor tokens`);
  }
  if (p.supportsPassword && !p.supportsSession) {
    throw new TypeError(`dashboard auth provider '${p.name}': password login needs session support`);
  }
}
