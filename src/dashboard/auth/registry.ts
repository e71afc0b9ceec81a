import { assertProtocolCompliance, type DashboardAuthProvider } from './types.js';

/**
 * The provider registry and the token-route table (lifecycle reference §3.2, §3.3).
 *
 * One registry per dashboard app (the reference's process-global map, made explicit so tests and
 * several apps in one process do not share state). Order is registration order everywhere.
 */

export interface SkippedProvider {
  readonly name: string;
  readonly reason: string;
}

export interface TokenRouteOptions {
  /** HTTP methods the rule applies to (others fall through to the normal gates). Absent: all. */
  readonly methods?: readonly string[];
  /** A scope the principal must carry (⇒ 403 without it). */
  readonly requiredScope?: string;
}

export interface TokenRoute {
  readonly path: string;
  /** Upper-case methods, or null for every method. GET implies HEAD. */
  readonly methods: ReadonlySet<string> | null;
  readonly requiredScope: string | null;
}

export class AuthRegistry {
  readonly #providers = new Map<string, DashboardAuthProvider>();
  readonly #skipped: SkippedProvider[] = [];
  readonly #tokenRoutes = new Map<string, TokenRoute>();

  /**
   * Register a provider. A provider reporting `lastSkipReason` is not registered: the reason is
   * kept (for the fail-closed startup error) and false is returned. Throws `TypeError` on a
   * protocol violation and `Error` on a duplicate name.
   */
  register(provider: DashboardAuthProvider): boolean {
    assertProtocolCompliance(provider);
    if (provider.lastSkipReason !== null) {
      this.#skipped.push({ name: provider.name, reason: provider.lastSkipReason });
      return false;
    }
    if (this.#providers.has(provider.name)) {
      throw new Error(`dashboard auth provider '${provider.name}' is already registered`);
    }
    this.#providers.set(provider.name, provider);
    return true;
  }

  /** Record a provider that could not even be constructed (its plugin's skip reason). */
  recordSkip(name: string, reason: string): void {
    this.#skipped.push({ name, reason });
  }

  get(name: string): DashboardAuthProvider | undefined {
    return this.#providers.get(name);
  }

  /** Every registered provider, in registration order. */
  list(): DashboardAuthProvider[] {
    return [...this.#providers.values()];
  }

  /** Providers with `supportsToken`, in registration order. */
  listTokenProviders(): DashboardAuthProvider[] {
    return this.list().filter((p) => p.supportsToken);
  }

  /** Providers with `supportsSession`, in registration order. */
  sessionProviders(): DashboardAuthProvider[] {
    return this.list().filter((p) => p.supportsSession);
  }

  /** Providers skipped so far, with their reasons. */
  skipped(): SkippedProvider[] {
    return [...this.#skipped];
  }

  /**
   * Opt an exact path in to bearer-token auth. Idempotent for an identical rule; a conflicting
   * re-registration throws. Registration does NOT make the path public: without a recognised
   * bearer the request is refused.
   */
  registerTokenRoute(path: string, options: TokenRouteOptions = {}): TokenRoute {
    if (typeof path !== 'string' || !path.startsWith('/') || /[?#\s]/.test(path)) {
      throw new TypeError(`token route path must be an absolute path without query: ${JSON.stringify(path)}`);
    }
    let methods: Set<string> | null = null;
    if (options.methods !== undefined) {
      methods = new Set(options.methods.map((m) => m.toUpperCase()));
      if (methods.size === 0) throw new TypeError('token route methods must not be empty');
      if (methods.has('GET')) methods.add('HEAD');
    }
    const requiredScope = options.requiredScope ?? null;
    if (requiredScope !== null && (typeof requiredScope !== 'string' || requiredScope === '')) {
      throw new TypeError('token route requiredScope must be a non-empty string');
    }
    const rule: TokenRoute = { path, methods, requiredScope };
    const existing = this.#tokenRoutes.get(path);
    if (existing) {
      if (sameRule(existing, rule)) return existing;
      throw new Error(`token route ${path} is already registered with a different rule`);
    }
    this.#tokenRoutes.set(path, rule);
    return rule;
  }

  /** The token rule for this request, or null when the seam does not apply. */
  tokenRouteFor(method: string, path: string): TokenRoute | null {
    const rule = this.#tokenRoutes.get(path);
    if (!rule) return null;
    if (rule.methods !== null && !rule.methods.has(method.toUpperCase())) return null;
    return rule;
  }

  tokenRoutes(): TokenRoute[] {
    return [...this.#tokenRoutes.values()];
  }
}

function sameRule(a: TokenRoute, b: TokenRoute): boolean {
  if (a.requiredScope !== b.requiredScope) return false;
  if (a.methods === null || b.methods === null) return a.methods === b.methods;
  if (a.methods.size !== b.methods.size) return false;
  for (const m of a.methods) if (!b.methods.has(m)) return false;
  return true;
}
