import type { Logger } from 'pino';
import { hashToken } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import type { RelayStore } from './store/types.js';

/**
 * Who is calling `/relay/enroll` and `/relay/provision` (spec decision 10): a tenant access token
 * this connector issued (stored hashed), or, when `RELAY_IDENTITY_URL` is set, whatever tenant that
 * service vouches for. Never a value the gateway asserts.
 */

export type IdentityResult = { ok: true; tenantId: string } | { ok: false; status: 401 | 503; error: string };

const IDENTITY_TIMEOUT_MS = 10_000;
const MAX_IDENTITY_RESPONSE_BYTES = 64 * 1024;

export class IdentityResolver {
  constructor(
    private readonly store: RelayStore,
    private readonly log: Logger,
    private readonly identityUrl: string | undefined,
  ) {}

  async resolve(bearer: string | null): Promise<IdentityResult> {
    if (!bearer) return { ok: false, status: 401, error: 'missing bearer token' };
    const tenantId = await this.store.findTenantIdByTokenHash(hashToken(bearer));
    if (tenantId) return { ok: true, tenantId };
    if (!this.identityUrl) return { ok: false, status: 401, error: 'caller identity could not be verified' };
    return this.resolveExternally(bearer, this.identityUrl);
  }

  private async resolveExternally(bearer: string, url: string): Promise<IdentityResult> {
    let response: Response;
    try {
      response = await fetch(url, {
        headers: { authorization: `Bearer ${bearer}`, accept: 'application/json' },
        // The bearer must never follow a redirect to another host.
        redirect: 'error',
        signal: AbortSignal.timeout(IDENTITY_TIMEOUT_MS),
      });
    } catch (error) {
      this.log.warn({ err: errorMessage(error) }, 'identity service unreachable');
      return { ok: false, status: 503, error: 'identity service unavailable' };
    }
    if (response.status === 401 || response.status === 403) {
      return { ok: false, status: 401, error: 'caller identity could not be verified' };
    }
    if (response.status !== 200) {
      this.log.warn({ status: response.status }, 'identity service answered an unexpected status');
      return { ok: false, status: 503, error: 'identity service unavailable' };
    }
    const text = await response.text().catch(() => '');
    let tenantName: unknown;
    try {
      if (text.length > MAX_IDENTITY_RESPONSE_BYTES) throw new Error('too large');
      const body = JSON.parse(text) as Record<string, unknown>;
      tenantName = body.tenant ?? body.org;
      if (tenantName && typeof tenantName === 'object') tenantName = (tenantName as { id?: unknown }).id;
    } catch {
      tenantName = undefined;
    }
    if (typeof tenantName !== 'string' && typeof tenantName !== 'number') {
      return { ok: false, status: 401, error: 'caller identity could not be verified' };
    }
    // External tenants live in their own name space: an org called "demo" or "t_…" must never
    // become a tenant created with the CLI.
    const name = `ext:${String(tenantName)}`;
    const existing = await this.store.findTenantByName(name);
    if (existing) return { ok: true, tenantId: existing.id };
    try {
      return { ok: true, tenantId: (await this.store.createTenant(name, Date.now())).id };
    } catch {
      // Another request created it first.
      const raced = await this.store.findTenantByName(name);
      return raced
        ? { ok: true, tenantId: raced.id }
        : { ok: false, status: 503, error: 'identity service unavailable' };
    }
  }
}
