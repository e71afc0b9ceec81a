import { assessSecretStrength, DEFAULT_MIN_SECRET_CHARS } from '../../auth/secret-strength.js';
import { constantTimeEqual } from '../../auth/secrets.js';
import type { AuthRegistry } from './registry.js';
import {
  type DashboardAuthProvider,
  type LoginStart,
  NotSupportedError,
  type Session,
  type TokenPrincipal,
} from './types.js';

/**
 * The bundled drain-control provider (lifecycle reference §3.6 "drain"): a token-only provider
 * whose single shared secret comes from `HERMES_DASHBOARD_DRAIN_SECRET` and nowhere else. The
 * secret must pass the fail-closed strength gate; otherwise the provider is skipped with a reason
 * and `/api/gateway/drain` is NOT opted in to bearer auth.
 */

const DRAIN_SECRET_ENV = 'HERMES_DASHBOARD_DRAIN_SECRET';
const DRAIN_PROVIDER_NAME = 'drain-secret';
const DRAIN_PRINCIPAL = 'drain-control';
export const DRAIN_ROUTE = '/api/gateway/drain';
/** `dashboard.drain_auth.scope` default. */
const DEFAULT_DRAIN_SCOPE = 'drain';

const GENERATE_HINT =
  "generate one with: node -e \"console.log(require('node:crypto').randomBytes(32).toString('base64url'))\"";

export interface DrainSecretOptions {
  /** Environment to read the secret from (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** `dashboard.drain_auth.scope` (default `drain`). */
  scope?: unknown;
  /** `dashboard.drain_auth.min_secret_chars` (default 43). */
  minSecretChars?: unknown;
}

function resolveScope(value: unknown): string {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : DEFAULT_DRAIN_SCOPE;
}

function resolveMinChars(value: unknown): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n >= 1 ? Math.floor(n) : DEFAULT_MIN_SECRET_CHARS;
}

export class DrainSecretProvider implements DashboardAuthProvider {
  readonly name = DRAIN_PROVIDER_NAME;
  readonly displayName = 'Drain Control (service credential)';
  readonly supportsSession = false;
  readonly supportsPassword = false;
  readonly supportsToken = true;
  readonly lastSkipReason: string | null;
  readonly scope: string;
  readonly minSecretChars: number;
  /** Null whenever the secret is missing or weak: such a provider recognises nothing. */
  readonly #secret: string | null;

  constructor(options: DrainSecretOptions = {}) {
    const env = options.env ?? process.env;
    this.scope = resolveScope(options.scope);
    this.minSecretChars = resolveMinChars(options.minSecretChars);
    const raw = env[DRAIN_SECRET_ENV];
    const secret = typeof raw === 'string' ? raw.trim() : '';
    if (secret === '') {
      this.#secret = null;
      this.lastSkipReason = `${DRAIN_SECRET_ENV} is not set; bearer drain control is disabled`;
      return;
    }
    const strength = assessSecretStrength(secret, this.minSecretChars);
    if (!strength.ok) {
      this.#secret = null;
      this.lastSkipReason = `${DRAIN_SECRET_ENV} is too weak (${strength.reason}: ${strength.detail}); bearer drain control is disabled; ${GENERATE_HINT}`;
      return;
    }
    this.#secret = secret;
    this.lastSkipReason = null;
  }

  verifyToken(bearer: string): TokenPrincipal | null {
    if (this.#secret === null) return null;
    if (!constantTimeEqual(bearer, this.#secret)) return null;
    return { principal: DRAIN_PRINCIPAL, provider: DRAIN_PROVIDER_NAME, scopes: [this.scope] };
  }

  verifySession(_accessToken: string): Session | null {
    return null;
  }

  startLogin(_redirectUri: string): LoginStart {
    throw new NotSupportedError('drain-secret is a service credential, not an interactive login');
  }

  completeLogin(): Session {
    throw new NotSupportedError('drain-secret is a service credential, not an interactive login');
  }

  refreshSession(_refreshToken: string): Session {
    throw new NotSupportedError('drain-secret issues no sessions');
  }

  revokeSession(_refreshToken: string): void {}
}

export interface DrainRegistration {
  /** True when the provider was registered and `/api/gateway/drain` became a token route. */
  readonly registered: boolean;
  readonly provider: DrainSecretProvider;
  /** The skip reason when not registered (never contains the secret). */
  readonly reason: string | null;
}

/**
 * The plugin's `register(ctx)`: build the provider from the environment and, only when it passes
 * the strength gate, register it and opt `/api/gateway/drain` in to bearer auth with the
 * configured scope required. Otherwise the skip reason is recorded in the registry.
 */
export function registerDrainSecretProvider(
  registry: AuthRegistry,
  options: DrainSecretOptions = {},
): DrainRegistration {
  const provider = new DrainSecretProvider(options);
  if (!registry.register(provider)) {
    return { registered: false, provider, reason: provider.lastSkipReason };
  }
  registry.registerTokenRoute(DRAIN_ROUTE, { requiredScope: provider.scope });
  return { registered: true, provider, reason: null };
}
