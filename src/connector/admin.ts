import { generateSecret, generateToken, hashToken } from '../auth/index.js';
import { checkTargetUrl, type PrivateTargets, type Resolver } from '../common/ssrf.js';
import type {
  DeadLetter,
  DeliveryKeys,
  DeliveryRecord,
  GatewayRecord,
  RelayStore,
  RouteRecord,
  Tenant,
} from './store/types.js';

/**
 * Operator actions behind `hermes connector …`. They act on the store directly; a running
 * connector notices revocations within its poll interval and everything else on next use.
 */

export class AdminError extends Error {}

const TENANT_TOKEN_PREFIX = 'hrt_';
const ENROLLMENT_TOKEN_PREFIX = 'hre_';

async function resolveTenant(store: RelayStore, ref: string): Promise<Tenant> {
  const tenant = (await store.getTenant(ref)) ?? (await store.findTenantByName(ref));
  if (!tenant)
    throw new AdminError(`no tenant with id or name "${ref}" (list them with: hermes connector tenant list)`);
  return tenant;
}

export async function createTenant(
  store: RelayStore,
  name: string,
  now = Date.now(),
): Promise<{ tenant: Tenant; accessToken: string }> {
  if (!/^[\w.@-]{1,64}$/.test(name))
    throw new AdminError('tenant names are 1-64 letters, digits, ".", "@", "_" or "-"');
  if (await store.findTenantByName(name)) throw new AdminError(`a tenant named "${name}" already exists`);
  const tenant = await store.createTenant(name, now);
  const accessToken = generateToken(TENANT_TOKEN_PREFIX);
  await store.addTenantToken(tenant.id, hashToken(accessToken), now);
  await store.audit({ at: now, event: 'tenant_created', tenantId: tenant.id, detail: { name } });
  return { tenant, accessToken };
}

/** A fresh access token for an existing tenant (the old ones keep working). */
export async function issueTenantToken(
  store: RelayStore,
  tenantRef: string,
  now = Date.now(),
): Promise<{ tenant: Tenant; accessToken: string }> {
  const tenant = await resolveTenant(store, tenantRef);
  const accessToken = generateToken(TENANT_TOKEN_PREFIX);
  await store.addTenantToken(tenant.id, hashToken(accessToken), now);
  await store.audit({ at: now, event: 'tenant_token_issued', tenantId: tenant.id });
  return { tenant, accessToken };
}

export async function createEnrollmentToken(
  store: RelayStore,
  tenantRef: string,
  ttlMs: number,
  now = Date.now(),
): Promise<{ tenant: Tenant; token: string; expiresAt: number }> {
  const tenant = await resolveTenant(store, tenantRef);
  const token = generateToken(ENROLLMENT_TOKEN_PREFIX);
  const expiresAt = now + ttlMs;
  await store.createEnrollmentToken(hashToken(token), tenant.id, expiresAt, now);
  await store.audit({
    at: now,
    event: 'enrollment_token_created',
    tenantId: tenant.id,
    detail: { expiresAt },
  });
  return { tenant, token, expiresAt };
}

export async function revokeGateway(
  store: RelayStore,
  gatewayId: string,
  now = Date.now(),
): Promise<GatewayRecord> {
  const gateway = await store.revokeGateway(gatewayId, now);
  if (!gateway)
    throw new AdminError(`no gateway "${gatewayId}" (list them with: hermes connector gateway list)`);
  await store.audit({ at: now, event: 'gateway_revoked', tenantId: gateway.tenantId, gatewayId });
  return gateway;
}

/** New primary secret; the old one stays valid for the rotation window. */
export async function rotateGatewaySecret(
  store: RelayStore,
  gatewayId: string,
  rotationWindowMs: number,
  now = Date.now(),
): Promise<{ gateway: GatewayRecord; secret: string }> {
  const existing = await store.getGateway(gatewayId);
  if (!existing) throw new AdminError(`no gateway "${gatewayId}"`);
  if (existing.revoked)
    throw new AdminError(`gateway "${gatewayId}" is revoked; enroll a new gateway instead`);
  const secret = generateSecret();
  const gateway = await store.putGatewaySecret({
    id: gatewayId,
    tenantId: existing.tenantId,
    secret,
    platform: existing.platform,
    botId: existing.botId,
    endpoint: undefined,
    now,
    rotationWindowMs,
  });
  await store.audit({ at: now, event: 'gateway_secret_rotated', tenantId: gateway.tenantId, gatewayId });
  return { gateway, secret };
}

export async function rotateDeliveryKey(
  store: RelayStore,
  tenantRef: string,
  rotationWindowMs: number,
  now = Date.now(),
): Promise<{ tenant: Tenant; keys: DeliveryKeys }> {
  const tenant = await resolveTenant(store, tenantRef);
  const keys = await store.rotateDeliveryKey(tenant.id, generateSecret(), now, rotationWindowMs);
  await store.audit({ at: now, event: 'delivery_key_rotated', tenantId: tenant.id });
  return { tenant, keys };
}

/**
 * Bind a route. Its endpoint must be an http(s) URL without credentials whose host is a public
 * address, unless `allowPrivateTargets` (the connector's `RELAY_ALLOW_PRIVATE_TARGETS`) allows it —
 * the same rule the connector applies again on every connection (`common/ssrf.ts`).
 */
export async function addRoute(
  store: RelayStore,
  input: {
    tenantRef: string;
    platform: string;
    routeKey: string;
    endpoint?: string | undefined;
    gatewayId?: string | undefined;
    /** Default: none (public addresses only). */
    allowPrivateTargets?: PrivateTargets | undefined;
    resolve?: Resolver | undefined;
  },
  now = Date.now(),
): Promise<RouteRecord> {
  const tenant = await resolveTenant(store, input.tenantRef);
  const endpoint = (input.endpoint ?? '').trim().replace(/\/+$/, '');
  if (endpoint) {
    const problem = await checkTargetUrl(endpoint, {
      allowPrivate: input.allowPrivateTargets ?? 'none',
      resolve: input.resolve,
    });
    if (problem?.nonPublic)
      throw new AdminError(
        `--endpoint refused: ${problem.reason}${problem.address ? ` (${problem.address})` : ''}; to deliver to private addresses set RELAY_ALLOW_PRIVATE_TARGETS (1, or addresses/CIDR blocks such as 10.0.0.0/8) here and on the connector`,
      );
    if (problem) throw new AdminError(`--endpoint ${problem.reason}`);
  }
  if (!/^[^\s]{1,256}$/.test(input.routeKey))
    throw new AdminError('--key must be 1-256 characters without spaces');
  const result = await store.upsertRoute(
    {
      platform: input.platform,
      routeKey: input.routeKey,
      tenantId: tenant.id,
      endpoint,
      gatewayId: input.gatewayId ?? null,
    },
    now,
  );
  if (!result.ok) throw new AdminError(`route ${input.platform}:${input.routeKey} belongs to another tenant`);
  await store.audit({
    at: now,
    event: 'route_added',
    tenantId: tenant.id,
    detail: { platform: input.platform, routeKey: input.routeKey },
  });
  return result.route;
}

export async function listDeliveries(store: RelayStore, limit: number): Promise<DeliveryRecord[]> {
  return store.listDeliveries(limit);
}

export async function listDeadLetters(store: RelayStore, limit: number): Promise<DeadLetter[]> {
  return store.listDeadLetters(limit);
}

export async function retryDeadLetter(store: RelayStore, id: string, now = Date.now()): Promise<void> {
  if (!(await store.retryDeadLetter(id, now))) throw new AdminError(`no dead letter "${id}"`);
  await store.audit({ at: now, event: 'dead_letter_requeued', detail: { id } });
}

/** One row of `hermes connector gateway list`. */
export interface GatewaySummary {
  id: string;
  tenant: string;
  /** `http`: signed POSTs to its endpoint (June generation); `socket`: everything on its socket. */
  generation: 'http' | 'socket';
  /** `platform:botId` of every identity it was enrolled or provisioned for. */
  identities: string[];
  platform: string;
  endpoint: string;
  /** Since when it has been idle (ISO time), or null when live. */
  idleSince: string | null;
  /** Deliveries waiting in the outbox for it. */
  buffered: number;
  revoked: boolean;
  rotating: boolean;
  lastSeen: string | null;
}

export async function listGatewaySummaries(
  store: RelayStore,
  tenantId?: string,
  now = Date.now(),
): Promise<GatewaySummary[]> {
  const [gateways, counts] = await Promise.all([store.listGateways(tenantId), store.outboxCounts()]);
  const waiting = new Map(counts.map((c) => [`${c.tenantId}\u0000${c.gatewayId ?? ''}`, c.count]));
  const iso = (at: number | null) => (at === null ? null : new Date(at).toISOString());
  const routes = await store.listRoutes(tenantId);
  // Its own endpoint (enroll/provision) or a route naming it that posts to an endpoint.
  const posts = (g: (typeof gateways)[number]) =>
    !!g.endpoint || routes.some((route) => route.gatewayId === g.id && !!route.endpoint);
  return Promise.all(
    gateways.map(async (g) => ({
      id: g.id,
      tenant: g.tenantId,
      generation: posts(g) ? ('http' as const) : ('socket' as const),
      identities: (await store.listGatewayIdentities(g.id)).map((i) => `${i.platform}:${i.botId}`),
      platform: g.platform,
      endpoint: g.endpoint,
      idleSince: iso(g.idleSince),
      buffered: waiting.get(`${g.tenantId}\u0000${g.id}`) ?? 0,
      revoked: g.revoked,
      rotating: g.secondarySecret !== null && (g.secondaryExpiresAt ?? 0) > now,
      lastSeen: iso(g.lastSeenAt),
    })),
  );
}
