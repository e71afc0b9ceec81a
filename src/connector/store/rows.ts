/**
 * Row shapes of the store tables and their mapping to the `RelayStore` records, shared by the
 * SQLite and Postgres stores (same schema; only booleans differ in representation).
 */
import type {
  AuditEvent,
  ChatRecord,
  DeadLetter,
  DeliveryKeys,
  DeliveryKind,
  DeliveryRecord,
  GatewayDetails,
  GatewayIdentity,
  GatewayPolicy,
  GatewayRecord,
  PruneKind,
  RouteRecord,
  Tenant,
  WebChatEntry,
} from './types.js';

export interface TenantRow {
  id: string;
  name: string;
  created_at: number;
}

export interface EnrollmentRow {
  tenant_id: string;
  expires_at: number;
  used_at: number | null;
}

export interface GatewayRow {
  id: string;
  tenant_id: string;
  secret: string;
  secondary_secret: string | null;
  secondary_expires_at: number | null;
  /** SQLite stores 0/1, Postgres a boolean. */
  revoked: number | boolean;
  revoked_at: number | null;
  platform: string;
  bot_id: string;
  endpoint: string;
  created_at: number;
  last_seen_at: number | null;
  instance_id: string | null;
  wake_url: string | null;
  display_name: string | null;
  idle_since: number | null;
}

export interface GatewayIdentityRow {
  gateway_id: string;
  platform: string;
  bot_id: string;
  created_at: number;
}

export interface PolicyRow {
  tenant_id: string;
  platform: string;
  instance_key: string;
  /** SQLite stores 0/1, Postgres a boolean. */
  require_address: number | boolean;
  /** JSON array of strings. */
  free_response_scopes: string;
  allow_other_bots: number | boolean;
  updated_at: number;
}

export interface DeliveryKeysRow {
  tenant_id: string;
  primary_key: string;
  secondary_key: string | null;
  secondary_expires_at: number | null;
}

export interface RouteRow {
  platform: string;
  route_key: string;
  tenant_id: string;
  endpoint: string;
  gateway_id: string | null;
  created_at: number;
}

export interface ChatRow {
  tenant_id: string;
  chat_id: string;
  platform: string;
  route_key: string;
  updated_at: number;
}

export interface OutboxRow {
  seq: number;
  id: string;
  tenant_id: string;
  gateway_id: string | null;
  session_key: string;
  kind: DeliveryKind;
  body: string;
  endpoint: string;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  last_status: number | null;
  claimed_by: string | null;
  claimed_until: number | null;
  head: number | boolean;
}

export interface DeadLetterRow {
  id: string;
  seq: number;
  tenant_id: string;
  gateway_id: string | null;
  session_key: string;
  kind: DeliveryKind;
  body: string;
  endpoint: string;
  created_at: number;
  attempts: number;
  reason: string;
  last_status: number | null;
  dead_at: number;
}

export interface AuditRow {
  at: number;
  event: string;
  tenant_id: string | null;
  gateway_id: string | null;
  detail: string | null;
}

export const toTenant = (r: TenantRow): Tenant => ({ id: r.id, name: r.name, createdAt: r.created_at });

export const toGateway = (r: GatewayRow): GatewayRecord => ({
  id: r.id,
  tenantId: r.tenant_id,
  secret: r.secret,
  secondarySecret: r.secondary_secret,
  secondaryExpiresAt: r.secondary_expires_at,
  revoked: Boolean(r.revoked),
  revokedAt: r.revoked_at,
  platform: r.platform,
  botId: r.bot_id,
  endpoint: r.endpoint,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  instanceId: r.instance_id,
  wakeUrl: r.wake_url,
  displayName: r.display_name,
  idleSince: r.idle_since,
});

export const toGatewayIdentity = (r: GatewayIdentityRow): GatewayIdentity => ({
  gatewayId: r.gateway_id,
  platform: r.platform,
  botId: r.bot_id,
  createdAt: r.created_at,
});

export const toPolicy = (r: PolicyRow): GatewayPolicy => ({
  tenantId: r.tenant_id,
  platform: r.platform,
  instanceKey: r.instance_key,
  requireAddress: Boolean(r.require_address),
  freeResponseScopes: parseScopes(r.free_response_scopes),
  allowOtherBots: Boolean(r.allow_other_bots),
  updatedAt: r.updated_at,
});

/** The stored JSON is written by the store itself; anything unreadable counts as no scopes. */
function parseScopes(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    return [];
  }
}

export const toDeliveryKeys = (r: DeliveryKeysRow): DeliveryKeys => ({
  tenantId: r.tenant_id,
  primary: r.primary_key,
  secondary: r.secondary_key,
  secondaryExpiresAt: r.secondary_expires_at,
});

export const toRoute = (r: RouteRow): RouteRecord => ({
  platform: r.platform,
  routeKey: r.route_key,
  tenantId: r.tenant_id,
  endpoint: r.endpoint,
  gatewayId: r.gateway_id,
  createdAt: r.created_at,
});

export const toChat = (r: ChatRow): ChatRecord => ({
  tenantId: r.tenant_id,
  platform: r.platform,
  chatId: r.chat_id,
  routeKey: r.route_key,
  updatedAt: r.updated_at,
});

export const toDelivery = (r: OutboxRow): DeliveryRecord => ({
  id: r.id,
  tenantId: r.tenant_id,
  gatewayId: r.gateway_id,
  sessionKey: r.session_key,
  kind: r.kind,
  body: r.body,
  endpoint: r.endpoint,
  createdAt: r.created_at,
  seq: r.seq,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  lastStatus: r.last_status,
  claimedBy: r.claimed_by,
  claimedUntil: r.claimed_until,
});

export const toDeadLetter = (r: DeadLetterRow): DeadLetter => ({
  id: r.id,
  tenantId: r.tenant_id,
  gatewayId: r.gateway_id,
  sessionKey: r.session_key,
  kind: r.kind,
  body: r.body,
  endpoint: r.endpoint,
  createdAt: r.created_at,
  seq: r.seq,
  attempts: r.attempts,
  reason: r.reason,
  lastStatus: r.last_status,
  deadAt: r.dead_at,
});

export const toAudit = (r: AuditRow): AuditEvent => {
  const event: AuditEvent = { at: r.at, event: r.event, tenantId: r.tenant_id, gatewayId: r.gateway_id };
  if (r.detail !== null) event.detail = JSON.parse(r.detail) as Record<string, unknown>;
  return event;
};

/** The gateway columns a {@link GatewayDetails} update sets, for the keys it names. */
export function detailColumns(details: GatewayDetails): [string, string | null][] {
  const columns: [string, string | null][] = [];
  if (details.instanceId !== undefined) columns.push(['instance_id', details.instanceId]);
  if (details.wakeUrl !== undefined) columns.push(['wake_url', details.wakeUrl]);
  if (details.displayName !== undefined) columns.push(['display_name', details.displayName]);
  return columns;
}

export interface WebChatRow {
  seq: number;
  chat_id: string;
  id: string;
  client_id: string | null;
  body: string;
  created_at: number;
}

export function toWebChatEntry(row: WebChatRow): WebChatEntry {
  return {
    chatId: row.chat_id,
    id: row.id,
    clientId: row.client_id,
    body: row.body,
    createdAt: row.created_at,
  };
}

/**
 * The table behind each retention kind, its time column, and its key column (Postgres; SQLite
 * uses the rowid). Platform state goes once expired (`expires_at <= cutoff`), the rest once older
 * than the cutoff.
 */
export const PRUNE_TABLES: Readonly<
  Record<PruneKind, { name: string; time: string; key: string; inclusive: boolean }>
> = {
  deadLetters: { name: 'dead_letters', time: 'dead_at', key: 'id', inclusive: false },
  audit: { name: 'audit', time: 'at', key: 'id', inclusive: false },
  chats: { name: 'chats', time: 'updated_at', key: '(tenant_id, chat_id)', inclusive: false },
  platformState: { name: 'platform_state', time: 'expires_at', key: 'key', inclusive: true },
  webchatMessages: { name: 'webchat_messages', time: 'created_at', key: 'seq', inclusive: false },
};

/**
 * The key range `[prefix, end)` holding exactly the keys that start with an ASCII `prefix` under
 * byte order (SQLite's BINARY, Postgres's COLLATE "C"): the end is the prefix with its last
 * character raised by one.
 */
export function prefixRange(prefix: string): [string, string] {
  if (!/^[\x20-\x7e]+$/.test(prefix)) throw new Error('a platform state prefix is printable ASCII');
  return [prefix, prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)];
}
