import { generateSecret, hashToken } from '../auth/index.js';
import { checkTargetUrl, type PrivateTargets, type Resolver } from '../common/ssrf.js';
import {
  describeZodError,
  type EnrollRequest,
  EnrollRequestSchema,
  type EnrollResponse,
  type ProvisionRequest,
  ProvisionRequestSchema,
  type ProvisionResponse,
  type ProvisionWithheld,
} from '../protocol/index.js';
import type { IdentityResolver, IdentityResult } from './identity.js';
import type { GatewayRecord, RelayStore } from './store/types.js';

/**
 * `/relay/enroll` and `/relay/provision` (reference §5.1–§5.2): the tenant comes from the verified
 * bearer only; gateway-asserted ids, endpoints and route keys are scoped to that tenant; secrets
 * are returned once. Re-issuing for an existing gatewayId rotates: the previous secret stays valid
 * for the rotation window. The endpoint and wake URL a gateway asserts must be public addresses
 * unless the operator allows private ones (`common/ssrf.ts`): refused with 400 before anything is
 * consumed or written; they are checked again on every connection.
 */

export type CredentialOutcome<T> =
  | { status: 200; body: T }
  | { status: 400 | 401 | 403 | 503; body: { error: string } };

export interface CredentialServiceOptions {
  store: RelayStore;
  identity: IdentityResolver;
  rotationWindowMs: number;
  /** Platform for route keys when the request names none this connector serves. */
  routePlatform: (requested: string | undefined) => string;
  now?: () => number;
  /**
   * Which non-public addresses a `gatewayEndpoint` and a `wakeUrl` may resolve to (default: none),
   * and the resolver (tests pass a stub).
   */
  targets?: { endpoint: PrivateTargets; wake: PrivateTargets; resolve?: Resolver | undefined };
}

/** How long after a secret was issued a new platform joins that boot instead of rotating it. */
const FURTHER_PLATFORM_WINDOW_MS = 120_000;

export class CredentialService {
  private readonly now: () => number;

  constructor(private readonly options: CredentialServiceOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Who is calling, from the bearer alone: the routes ask this before they read a body, so an
   * unauthenticated client cannot make the connector read (or wait for) one.
   */
  identify(bearer: string | null): Promise<IdentityResult> {
    return this.options.identity.resolve(bearer);
  }

  async enroll(identity: IdentityResult, rawBody: unknown): Promise<CredentialOutcome<EnrollResponse>> {
    if (!identity.ok) return { status: identity.status, body: { error: identity.error } };
    const parsed = EnrollRequestSchema.safeParse(rawBody);
    if (!parsed.success) return badRequest(describeZodError(parsed.error));
    const request: EnrollRequest = parsed.data;
    const { store } = this.options;
    const tenantId = identity.tenantId;
    const now = this.now();
    const refused = await this.targetRefused(request, tenantId, 'enroll_refused');
    if (refused) return refused;

    const platform = this.options.routePlatform(undefined);
    const routeKeys = request.routeKeys ?? [];
    const conflict =
      (await this.gatewayConflict(request.gatewayId, tenantId)) ??
      (await this.routeConflict(tenantId, platform, routeKeys));
    if (conflict) return conflict;
    const redemption = await store.redeemEnrollmentToken(
      hashToken(request.enrollmentToken),
      tenantId,
      request.gatewayId,
      now,
    );
    if (!redemption.ok) {
      await store.audit({
        at: now,
        event: 'enroll_refused',
        tenantId,
        gatewayId: request.gatewayId,
        detail: { reason: redemption.reason },
      });
      return { status: 403, body: { error: enrollmentTokenError(redemption.reason) } };
    }
    const routeError = await this.writeRoutes(
      tenantId,
      request.gatewayId,
      platform,
      routeKeys,
      request.gatewayEndpoint,
    );
    if (routeError) return routeError;
    const issued = await this.issue(tenantId, request.gatewayId, platform, '', request.gatewayEndpoint, now);
    await this.storeDetails(request);
    await store.audit({
      at: now,
      event: 'gateway_enrolled',
      tenantId,
      gatewayId: request.gatewayId,
      detail: { routeKeys: request.routeKeys?.length ?? 0 },
    });
    return { status: 200, body: issued };
  }

  /** `instanceId`, `wakeUrl`, `displayName` as given; an absent key leaves the stored value. */
  private async storeDetails(request: EnrollRequest | ProvisionRequest): Promise<void> {
    const details = {
      ...(request.instanceId !== undefined ? { instanceId: request.instanceId } : {}),
      ...(request.wakeUrl !== undefined ? { wakeUrl: request.wakeUrl } : {}),
      ...(request.displayName !== undefined ? { displayName: request.displayName } : {}),
    };
    if (Object.keys(details).length > 0)
      await this.options.store.updateGatewayDetails(request.gatewayId, details);
  }

  async provision(
    identity: IdentityResult,
    rawBody: unknown,
  ): Promise<CredentialOutcome<ProvisionResponse | ProvisionWithheld>> {
    if (!identity.ok) return { status: identity.status, body: { error: identity.error } };
    const parsed = ProvisionRequestSchema.safeParse(rawBody);
    if (!parsed.success) return badRequest(describeZodError(parsed.error));
    const request: ProvisionRequest = parsed.data;
    const tenantId = identity.tenantId;
    const now = this.now();
    const refused = await this.targetRefused(request, tenantId, 'provision_refused');
    if (refused) return refused;

    const platform = this.options.routePlatform(request.platform);
    // Route keys only take effect together with an endpoint (reference §5.2).
    const routeKeys = request.gatewayEndpoint ? request.routeKeys : [];
    const conflict =
      (await this.gatewayConflict(request.gatewayId, tenantId)) ??
      (await this.routeConflict(tenantId, platform, routeKeys));
    if (conflict) return conflict;
    const routeError = await this.writeRoutes(
      tenantId,
      request.gatewayId,
      platform,
      routeKeys,
      request.gatewayEndpoint,
    );
    if (routeError) return routeError;
    const existing = await this.options.store.getGateway(request.gatewayId);
    let issued: EnrollResponse | null = null;
    if (existing && (await this.isFurtherPlatform(existing, request.platform, now))) {
      // Another platform of the boot that was just issued a secret: one gateway, one secret.
      await this.options.store.addGatewayIdentity(request.gatewayId, request.platform, request.botId, now);
    } else {
      issued = await this.issue(
        tenantId,
        request.gatewayId,
        request.platform,
        request.botId,
        request.gatewayEndpoint,
        now,
      );
    }
    await this.storeDetails(request);
    await this.options.store.audit({
      at: now,
      event: 'gateway_provisioned',
      tenantId,
      gatewayId: request.gatewayId,
      detail: { routeKeys: routeKeys.length, platform: request.platform, secretIssued: issued !== null },
    });
    if (!issued)
      return {
        status: 200,
        body: { secretIssued: false, tenant: tenantId, gatewayId: request.gatewayId, routeKeys },
      };
    return { status: 200, body: { ...issued, routeKeys } };
  }

  /**
   * A provision for a platform this gateway does not front yet, within
   * {@link FURTHER_PLATFORM_WINDOW_MS} of its last secret: the next platform of a multi-platform
   * boot (which provisions once per platform, in order). A boot's first call names a platform the
   * gateway already fronts, so a gateway that restarted (keeping its credentials only in memory)
   * is issued a secret again.
   */
  private async isFurtherPlatform(gateway: GatewayRecord, platform: string, now: number): Promise<boolean> {
    const identities = await this.options.store.listGatewayIdentities(gateway.id);
    if (identities.some((identity) => identity.platform === platform)) return false;
    const lastIssued =
      gateway.secondaryExpiresAt !== null
        ? gateway.secondaryExpiresAt - this.options.rotationWindowMs
        : gateway.createdAt;
    return now - lastIssued <= FURTHER_PLATFORM_WINDOW_MS;
  }

  /**
   * A `gatewayEndpoint` or `wakeUrl` this connector will not connect to: 400 with the field and
   * the reason (the host, never the URL, which may carry a secret), audited.
   */
  private async targetRefused(
    request: EnrollRequest | ProvisionRequest,
    tenantId: string,
    event: 'enroll_refused' | 'provision_refused',
  ): Promise<CredentialOutcome<never> | null> {
    const targets = this.options.targets ?? { endpoint: 'none', wake: 'none' };
    const checks: [string, string | undefined, PrivateTargets][] = [
      ['gatewayEndpoint', request.gatewayEndpoint, targets.endpoint],
      ['wakeUrl', request.wakeUrl, targets.wake],
    ];
    for (const [field, url, allowPrivate] of checks) {
      if (!url) continue;
      const problem = await checkTargetUrl(url, { allowPrivate, resolve: targets.resolve });
      if (!problem) continue;
      const error = problem.nonPublic
        ? `${field} refused: ${problem.reason}; this connector reaches private addresses only when its operator allows them (RELAY_ALLOW_PRIVATE_TARGETS)`
        : `${field} ${problem.reason}`;
      await this.options.store.audit({
        at: this.now(),
        event,
        tenantId,
        gatewayId: request.gatewayId,
        detail: {
          reason: `${field}: ${problem.reason}`,
          ...(problem.address ? { address: problem.address } : {}),
        },
      });
      return { status: 400, body: { error } };
    }
    return null;
  }

  private async gatewayConflict(
    gatewayId: string,
    tenantId: string,
  ): Promise<CredentialOutcome<never> | null> {
    const existing = await this.options.store.getGateway(gatewayId);
    if (!existing) return null;
    if (existing.tenantId !== tenantId)
      return { status: 403, body: { error: 'gatewayId is registered to another tenant' } };
    if (existing.revoked) {
      return { status: 403, body: { error: 'gateway is revoked; enroll under a new gatewayId' } };
    }
    return null;
  }

  /**
   * A gateway's self-asserted route keys may only take what nobody else has: a key that already
   * resolves to another tenant (bound to it, or caught by its `*` default route) or that names a
   * chat already delivered to another tenant is the operator's to bind (`connector route add`).
   * Checked before anything is consumed or written, so a refused request changes nothing.
   */
  private async routeConflict(
    tenantId: string,
    platform: string,
    routeKeys: readonly string[],
  ): Promise<CredentialOutcome<never> | null> {
    const { store } = this.options;
    for (const routeKey of routeKeys) {
      const existing = await store.findRoute(platform, routeKey);
      if (existing && existing.tenantId !== tenantId) {
        return {
          status: 403,
          body: {
            error:
              existing.routeKey === routeKey
                ? `route key ${routeKey} belongs to another tenant`
                : `route key ${routeKey} is routed to another tenant by the operator's default route; only the operator can bind it`,
          },
        };
      }
      const deliveredTo = await store.chatTenants(platform, routeKey);
      if (deliveredTo.some((other) => other !== tenantId)) {
        return {
          status: 403,
          body: {
            error: `route key ${routeKey} names a chat of another tenant; only the operator can bind it`,
          },
        };
      }
    }
    return null;
  }

  private async writeRoutes(
    tenantId: string,
    gatewayId: string,
    platform: string,
    routeKeys: readonly string[],
    endpoint: string | undefined,
  ): Promise<CredentialOutcome<never> | null> {
    const { store } = this.options;
    const now = this.now();
    for (const routeKey of routeKeys) {
      const result = await store.upsertRoute(
        { platform, routeKey, tenantId, endpoint: endpoint ?? '', gatewayId },
        now,
      );
      if (!result.ok)
        return { status: 403, body: { error: `route key ${result.routeKey} belongs to another tenant` } };
    }
    return null;
  }

  private async issue(
    tenantId: string,
    gatewayId: string,
    platform: string,
    botId: string,
    endpoint: string | undefined,
    now: number,
  ): Promise<EnrollResponse> {
    const { store, rotationWindowMs } = this.options;
    const secret = generateSecret();
    await store.putGatewaySecret({
      id: gatewayId,
      tenantId,
      secret,
      platform,
      botId,
      endpoint,
      now,
      rotationWindowMs,
    });
    const keys = await store.getOrCreateDeliveryKey(tenantId, generateSecret());
    return { secret, deliveryKey: keys.primary, tenant: tenantId, gatewayId };
  }
}

function badRequest(detail: string): CredentialOutcome<never> {
  return { status: 400, body: { error: `malformed request: ${detail}` } };
}

function enrollmentTokenError(reason: 'unknown' | 'used' | 'expired' | 'wrong_tenant'): string {
  switch (reason) {
    case 'used':
      return 'enrollment token already used';
    case 'expired':
      return 'enrollment token expired';
    case 'wrong_tenant':
      return 'enrollment token belongs to a different tenant';
    default:
      return 'enrollment token invalid';
  }
}
