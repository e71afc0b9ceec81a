import { setImmediate as yieldTurn } from 'node:timers/promises';
import { generateSecret, generateToken, hashToken } from '../auth/index.js';
import { checkTargetUrl, type PrivateTargets, type Resolver } from '../common/ssrf.js';
import type {
  AuditEvent,
  DeadLetter,
  DeliveryKeys,
  DeliveryRecord,
  GatewayRecord,
  RelayStore,
  RouteRecord,
  Tenant,
} from './store/types.js';

/**
 * The one service layer of connector administration: the operator actions and every JSON view
 * behind `hermes connector … --json` and the admin API (`/admin/api/…`, admin-console/api.ts).
 * Both render what these functions return, so their JSON is the same. They act on the store
 * directly; a running connector notices revocations within its poll interval and everything else
 * on next use.
 */

export class AdminError extends Error {}

/** Bad input that names a thing that does not exist (the API answers 404, the CLI exits 1). */
export class AdminNotFoundError extends AdminError {}

/** The action clashes with what is there (a name taken, a route of another tenant): API 409. */
export class AdminConflictError extends AdminError {}

/** Who did it, written into each mutation's audit detail (`actor`, `address`). */
export interface AuditActor {
  /** `cli`, `admin-api`, or an embedding application's own name. */
  actor: string;
  /** The client address (admin API). */
  address?: string | undefined;
}

function withActor(
  detail: Record<string, unknown> | undefined,
  by: AuditActor | undefined,
): Record<string, unknown> | undefined {
  if (!by) return detail;
  return { ...detail, actor: by.actor, ...(by.address ? { address: by.address } : {}) };
}

async function auditAs(store: RelayStore, event: AuditEvent, by: AuditActor | undefined): Promise<void> {
  const detail = withActor(event.detail, by);
  await store.audit({ ...event, ...(detail ? { detail } : {}) });
}

const TENANT_TOKEN_PREFIX = 'hrt_';
const ENROLLMENT_TOKEN_PREFIX = 'hre_';

async function resolveTenant(store: RelayStore, ref: string): Promise<Tenant> {
  const tenant = (await store.getTenant(ref)) ?? (await store.findTenantByName(ref));
  if (!tenant)
    throw new AdminNotFoundError(
      `no tenant with id or name "${ref}" (list them with: hermes connector tenant list)`,
    );
  return tenant;
}

export async function createTenant(
  store: RelayStore,
  name: string,
  now = Date.now(),
  by?: AuditActor,
): Promise<{ tenant: Tenant; accessToken: string }> {
  if (!/^[\w.@-]{1,64}$/.test(name))
    throw new AdminError('tenant names are 1-64 letters, digits, ".", "@", "_" or "-"');
  if (await store.findTenantByName(name))
    throw new AdminConflictError(`a tenant named "${name}" already exists`);
  const tenant = await store.createTenant(name, now);
  const accessToken = generateToken(TENANT_TOKEN_PREFIX);
  await store.addTenantToken(tenant.id, hashToken(accessToken), now);
  await auditAs(store, { at: now, event: 'tenant_created', tenantId: tenant.id, detail: { name } }, by);
  return { tenant, accessToken };
}

/** A fresh access token for an existing tenant (the old ones keep working). */
export async function issueTenantToken(
  store: RelayStore,
  tenantRef: string,
  now = Date.now(),
  by?: AuditActor,
): Promise<{ tenant: Tenant; accessToken: string }> {
  const tenant = await resolveTenant(store, tenantRef);
  const accessToken = generateToken(TENANT_TOKEN_PREFIX);
  await store.addTenantToken(tenant.id, hashToken(accessToken), now);
  await auditAs(store, { at: now, event: 'tenant_token_issued', tenantId: tenant.id }, by);
  return { tenant, accessToken };
}

export async function createEnrollmentToken(
  store: RelayStore,
  tenantRef: string,
  ttlMs: number,
  now = Date.now(),
  by?: AuditActor,
): Promise<{ tenant: Tenant; token: string; expiresAt: number }> {
  const tenant = await resolveTenant(store, tenantRef);
  const token = generateToken(ENROLLMENT_TOKEN_PREFIX);
  const expiresAt = now + ttlMs;
  await store.createEnrollmentToken(hashToken(token), tenant.id, expiresAt, now);
  await auditAs(
    store,
    { at: now, event: 'enrollment_token_created', tenantId: tenant.id, detail: { expiresAt } },
    by,
  );
  return { tenant, token, expiresAt };
}

export async function revokeGateway(
  store: RelayStore,
  gatewayId: string,
  now = Date.now(),
  by?: AuditActor,
): Promise<GatewayRecord> {
  const gateway = await store.revokeGateway(gatewayId, now);
  if (!gateway)
    throw new AdminNotFoundError(`no gateway "${gatewayId}" (list them with: hermes connector gateway list)`);
  await auditAs(store, { at: now, event: 'gateway_revoked', tenantId: gateway.tenantId, gatewayId }, by);
  return gateway;
}

/** New primary secret; the old one stays valid for the rotation window. */
export async function rotateGatewaySecret(
  store: RelayStore,
  gatewayId: string,
  rotationWindowMs: number,
  now = Date.now(),
  by?: AuditActor,
): Promise<{ gateway: GatewayRecord; secret: string }> {
  const existing = await store.getGateway(gatewayId);
  if (!existing) throw new AdminNotFoundError(`no gateway "${gatewayId}"`);
  if (existing.revoked)
    throw new AdminConflictError(`gateway "${gatewayId}" is revoked; enroll a new gateway instead`);
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
  await auditAs(
    store,
    { at: now, event: 'gateway_secret_rotated', tenantId: gateway.tenantId, gatewayId },
    by,
  );
  return { gateway, secret };
}

export async function rotateDeliveryKey(
  store: RelayStore,
  tenantRef: string,
  rotationWindowMs: number,
  now = Date.now(),
  by?: AuditActor,
): Promise<{ tenant: Tenant; keys: DeliveryKeys }> {
  const tenant = await resolveTenant(store, tenantRef);
  const keys = await store.rotateDeliveryKey(tenant.id, generateSecret(), now, rotationWindowMs);
  await auditAs(store, { at: now, event: 'delivery_key_rotated', tenantId: tenant.id }, by);
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
  by?: AuditActor,
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
  if (!result.ok)
    throw new AdminConflictError(`route ${input.platform}:${input.routeKey} belongs to another tenant`);
  await auditAs(
    store,
    {
      at: now,
      event: 'route_added',
      tenantId: tenant.id,
      detail: { platform: input.platform, routeKey: input.routeKey },
    },
    by,
  );
  return result.route;
}

export async function listDeliveries(store: RelayStore, limit: number): Promise<DeliveryRecord[]> {
  return store.listDeliveries(limit);
}

export async function listDeadLetters(store: RelayStore, limit: number): Promise<DeadLetter[]> {
  return store.listDeadLetters(limit);
}

export async function retryDeadLetter(
  store: RelayStore,
  id: string,
  now = Date.now(),
  by?: AuditActor,
): Promise<void> {
  if (!(await store.retryDeadLetter(id, now))) throw new AdminNotFoundError(`no dead letter "${id}"`);
  await auditAs(store, { at: now, event: 'dead_letter_requeued', detail: { id } }, by);
}

/** Remove a dead letter for good (it is not delivered). */
export async function discardDeadLetter(
  store: RelayStore,
  id: string,
  now = Date.now(),
  by?: AuditActor,
): Promise<DeadLetter> {
  const dead = await store.discardDeadLetter(id);
  if (!dead)
    throw new AdminNotFoundError(
      `no dead letter "${id}" (list them with: hermes connector deliveries --dead)`,
    );
  await auditAs(
    store,
    {
      at: now,
      event: 'dead_letter_discarded',
      tenantId: dead.tenantId,
      gatewayId: dead.gatewayId,
      detail: { id, reason: dead.reason },
    },
    by,
  );
  return dead;
}

/** One row of `hermes connector gateway list` and of `GET /admin/api/gateways`. */
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
  /** A socket of it is open on some connector instance ({@link GatewayPresence}). */
  connected: boolean;
}

/**
 * Which gateways have a socket open right now. The rule:
 *
 * - every running connector records, in the store's platform state, `admin:presence:<gateway id>`
 *   = its instance id for each gateway with a socket open on it, renewed every
 *   {@link PRESENCE_REFRESH_MS} and expiring {@link PRESENCE_TTL_MS} later; it removes the record
 *   when the last socket closes (at the next refresh) and when it stops ({@link PresenceRecorder});
 * - a reader with only the store (the CLI, or any instance for the sockets of the others) takes
 *   an unexpired record as connected ({@link storePresence}), so a change shows within a refresh;
 * - the instance answering the admin API knows its own sockets at once: its registry decides for
 *   them, the store for the others ({@link livePresence});
 * - a revoked gateway is never connected.
 */
export interface GatewayPresence {
  connected(gatewayIds: readonly string[], now: number): Promise<Set<string>>;
}

export const PRESENCE_REFRESH_MS = 10_000;
/** Presence records written per transaction, the event loop served between two. */
const PRESENCE_WRITE_CHUNK = 500;
export const PRESENCE_TTL_MS = 30_000;
const PRESENCE_PREFIX = 'admin:presence:';
const presenceKey = (gatewayId: string) => `${PRESENCE_PREFIX}${gatewayId}`;

/** Every live presence record in one query: gateway id → the instance holding its socket. */
async function presenceRecords(store: RelayStore, now: number): Promise<Map<string, string>> {
  const rows = await store.listPlatformState(PRESENCE_PREFIX, now);
  return new Map(rows.map((row) => [row.key.slice(PRESENCE_PREFIX.length), row.value]));
}

/** Presence as the store knows it (the CLI's view; see {@link GatewayPresence}). */
export function storePresence(store: RelayStore): GatewayPresence {
  return {
    connected: async (gatewayIds, now) => {
      if (gatewayIds.length === 0) return new Set();
      const held = await presenceRecords(store, now);
      return new Set(gatewayIds.filter((id) => held.has(id)));
    },
  };
}

/** Presence on a running instance: its own sockets from its registry, the others' from the store. */
export function livePresence(
  store: RelayStore,
  instanceId: string,
  hasSocketHere: (gatewayId: string) => boolean,
): GatewayPresence {
  return {
    connected: async (gatewayIds, now) => {
      const found = new Set(gatewayIds.filter(hasSocketHere));
      if (found.size === gatewayIds.length) return found;
      const held = await presenceRecords(store, now);
      for (const id of gatewayIds) {
        const instance = held.get(id);
        // Our own record of a socket that is gone now is stale until the next refresh.
        if (instance !== undefined && instance !== instanceId) found.add(id);
      }
      return found;
    },
  };
}

/**
 * Keeps this instance's presence records (see {@link GatewayPresence}): one write per connected
 * gateway per refresh (a few hundred to a transaction, the event loop served between two), one
 * delete when its last socket is gone.
 */
export class PresenceRecorder {
  #recorded = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(
    private readonly options: {
      store: RelayStore;
      instanceId: string;
      /** Gateways with a socket open on this instance now. */
      connectedHere: () => Iterable<string>;
      onError: (error: unknown) => void;
      refreshMs?: number;
      now?: () => number;
    },
  ) {}

  start(): void {
    this.refresh();
    this.#timer = setInterval(() => this.refresh(), this.options.refreshMs ?? PRESENCE_REFRESH_MS);
    this.#timer.unref();
  }

  /** Write the current state now (one refresh at a time). */
  refresh(): Promise<void> {
    this.#running = this.#running.then(() => this.#write(new Set(this.options.connectedHere())));
    return this.#running;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#running = this.#running.then(() => this.#write(new Set()));
    await this.#running;
  }

  async #write(current: Set<string>): Promise<void> {
    const { store, instanceId } = this.options;
    const now = (this.options.now ?? Date.now)();
    const expiresAt = now + PRESENCE_TTL_MS;
    try {
      // In chunks of one write each, with the event loop served between them: at 19,000 idle
      // gateways one write per gateway held the loop for 0.6 s every refresh (issue 20).
      const ids = [...current];
      for (let start = 0; start < ids.length; start += PRESENCE_WRITE_CHUNK) {
        const chunk = ids.slice(start, start + PRESENCE_WRITE_CHUNK);
        await store.putPlatformStates(chunk.map(presenceKey), instanceId, expiresAt);
        await yieldTurn();
      }
      // Gone sockets: only our own records go (another instance may hold a socket of it too).
      const gone = [...this.#recorded].filter((id) => !current.has(id));
      for (let start = 0; start < gone.length; start += PRESENCE_WRITE_CHUNK) {
        const chunk = gone.slice(start, start + PRESENCE_WRITE_CHUNK);
        await store.deletePlatformStatesHolding(chunk.map(presenceKey), instanceId);
        await yieldTurn();
      }
      this.#recorded = current;
    } catch (error) {
      this.options.onError(error);
    }
  }
}

export async function listGatewaySummaries(
  store: RelayStore,
  tenantId?: string,
  now = Date.now(),
  presence: GatewayPresence = storePresence(store),
): Promise<GatewaySummary[]> {
  // A constant number of queries however many gateways there are (the admin event stream runs
  // this every 2 s): gateways, outbox counts, routes, identities, presence.
  const [gateways, counts, routes, identities] = await Promise.all([
    store.listGateways(tenantId),
    store.outboxCounts(),
    store.listRoutes(tenantId),
    store.listAllGatewayIdentities(tenantId),
  ]);
  const waiting = new Map(counts.map((c) => [`${c.tenantId}\u0000${c.gatewayId ?? ''}`, c.count]));
  const iso = (at: number | null) => (at === null ? null : new Date(at).toISOString());
  const live = await presence.connected(
    gateways.filter((g) => !g.revoked).map((g) => g.id),
    now,
  );
  const identitiesOf = new Map<string, string[]>();
  for (const i of identities) {
    const list = identitiesOf.get(i.gatewayId) ?? [];
    list.push(`${i.platform}:${i.botId}`);
    identitiesOf.set(i.gatewayId, list);
  }
  // Its own endpoint (enroll/provision) or a route naming it that posts to an endpoint.
  const routedToEndpoint = new Set(routes.filter((r) => !!r.endpoint && r.gatewayId).map((r) => r.gatewayId));
  const posts = (g: (typeof gateways)[number]) => !!g.endpoint || routedToEndpoint.has(g.id);
  return gateways.map((g) => ({
    id: g.id,
    tenant: g.tenantId,
    generation: posts(g) ? ('http' as const) : ('socket' as const),
    identities: identitiesOf.get(g.id) ?? [],
    platform: g.platform,
    endpoint: g.endpoint,
    idleSince: iso(g.idleSince),
    buffered: waiting.get(`${g.tenantId}\u0000${g.id}`) ?? 0,
    revoked: g.revoked,
    rotating: g.secondarySecret !== null && (g.secondaryExpiresAt ?? 0) > now,
    lastSeen: iso(g.lastSeenAt),
    connected: !g.revoked && live.has(g.id),
  }));
}

// Views: what `--json` prints and the admin API answers.

/** An instant as the CLI has always printed it: ISO 8601 to the second. */
const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** `tenant create --json`, `POST /admin/api/tenants` (the token is shown this once). */
export const createdTenantView = (created: { tenant: Tenant; accessToken: string }) => ({
  id: created.tenant.id,
  name: created.tenant.name,
  accessToken: created.accessToken,
});

/** `tenant token --json`, `POST /admin/api/tenants/:tenant/tokens`. */
export const tenantTokenView = (issued: { tenant: Tenant; accessToken: string }) => ({
  id: issued.tenant.id,
  accessToken: issued.accessToken,
});

/** `enroll-token create --json`, `POST /admin/api/tenants/:tenant/enroll-tokens`. */
export const enrollmentTokenView = (minted: { tenant: Tenant; token: string; expiresAt: number }) => ({
  tenant: minted.tenant.id,
  token: minted.token,
  expiresAt: isoSeconds(minted.expiresAt),
});

/** `delivery-key rotate --json`, `POST /admin/api/tenants/:tenant/delivery-key/rotate`. */
export const deliveryKeyView = (rotated: { tenant: Tenant; keys: DeliveryKeys }) => ({
  tenant: rotated.tenant.id,
  deliveryKey: rotated.keys.primary,
});

/** `tenant list --json`, `GET /admin/api/tenants`. */
export async function tenantViews(store: RelayStore): Promise<Tenant[]> {
  return store.listTenants();
}

/** `route list --json`, `GET /admin/api/routes`. */
export async function routeViews(store: RelayStore): Promise<RouteRecord[]> {
  return store.listRoutes();
}

/** An outbox row without its body (the message itself stays out of listings). */
export type DeliveryView = Omit<DeliveryRecord, 'body'>;
export type DeadLetterView = Omit<DeadLetter, 'body'>;

/** Most rows a listing answers. */
export const MAX_LIST_LIMIT = 10_000;
const clampLimit = (limit: number) => Math.max(1, Math.min(MAX_LIST_LIMIT, Math.floor(limit) || 50));

/** `deliveries --json`, `GET /admin/api/deliveries`: newest first. */
export async function deliveryViews(store: RelayStore, limit: number): Promise<DeliveryView[]> {
  return (await store.listDeliveries(clampLimit(limit))).map(({ body: _body, ...rest }) => rest);
}

/** `deliveries --dead --json`, `GET /admin/api/dead-letters`: newest first. */
export async function deadLetterViews(store: RelayStore, limit: number): Promise<DeadLetterView[]> {
  return (await store.listDeadLetters(clampLimit(limit))).map(({ body: _body, ...rest }) => rest);
}

/** One audit event as `audit --json` and `GET /admin/api/audit` show it. */
export interface AuditView {
  at: string;
  event: string;
  tenantId: string | null;
  gatewayId: string | null;
  detail: Record<string, unknown> | null;
}

/** `audit --json`, `GET /admin/api/audit`: newest first; `tenant` is an id or a name. */
export async function auditViews(
  store: RelayStore,
  options: { limit: number; tenant?: string | undefined },
): Promise<AuditView[]> {
  const tenantId = options.tenant === undefined ? undefined : (await resolveTenant(store, options.tenant)).id;
  const events = await store.listAudit(clampLimit(options.limit), { tenantId });
  return events.map((e) => ({
    at: new Date(e.at).toISOString(),
    event: e.event,
    tenantId: e.tenantId ?? null,
    gatewayId: e.gatewayId ?? null,
    detail: e.detail ?? null,
  }));
}

/** Outbox depth per tenant and preferred gateway (`gatewayId` null: any of the tenant's). */
export interface OutboxDepthView {
  tenantId: string;
  /** The tenant's name. */
  tenant: string;
  gatewayId: string | null;
  count: number;
}

/** `GET /admin/api/outbox`: the deepest first. */
export async function outboxDepth(store: RelayStore): Promise<OutboxDepthView[]> {
  const [counts, tenants] = await Promise.all([store.outboxCounts(), store.listTenants()]);
  const names = new Map(tenants.map((t) => [t.id, t.name]));
  return counts
    .map((c) => ({
      tenantId: c.tenantId,
      tenant: names.get(c.tenantId) ?? c.tenantId,
      gatewayId: c.gatewayId,
      count: c.count,
    }))
    .sort(
      (a, b) =>
        b.count - a.count ||
        a.tenantId.localeCompare(b.tenantId) ||
        (a.gatewayId ?? '').localeCompare(b.gatewayId ?? ''),
    );
}

export interface OverviewView {
  version: string;
  instance: string;
  uptimeSeconds: number;
  tenants: number;
  gateways: { total: number; connected: number; idle: number; revoked: number };
  outbox: { depth: number };
  deadLetters: number;
}

/** `GET /admin/api/overview`: the counts at a glance. */
export async function overview(
  store: RelayStore,
  options: {
    version: string;
    instance: string;
    startedAt: number;
    now?: number;
    presence?: GatewayPresence;
    /** The gateway summaries when the caller has them already. */
    gateways?: GatewaySummary[];
  },
): Promise<OverviewView> {
  const now = options.now ?? Date.now();
  const [tenants, gateways, depth, deadLetters] = await Promise.all([
    store.listTenants(),
    options.gateways ?? listGatewaySummaries(store, undefined, now, options.presence ?? storePresence(store)),
    store.outboxDepth(),
    store.countPrunable('deadLetters', Number.MAX_SAFE_INTEGER),
  ]);
  const active = gateways.filter((g) => !g.revoked);
  return {
    version: options.version,
    instance: options.instance,
    uptimeSeconds: Math.max(0, Math.floor((now - options.startedAt) / 1000)),
    tenants: tenants.length,
    gateways: {
      total: gateways.length,
      connected: active.filter((g) => g.connected).length,
      idle: active.filter((g) => g.idleSince !== null).length,
      revoked: gateways.length - active.length,
    },
    outbox: { depth },
    deadLetters,
  };
}
