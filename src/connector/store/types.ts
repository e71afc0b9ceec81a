/**
 * The connector's persistent state behind one interface, so SQLite (default) and Postgres
 * (scale-out) are interchangeable without touching callers. Every method is async even where
 * SQLite is synchronous. Times are Unix milliseconds. Secrets handed to the store are stored as-is
 * (they are HMAC keys, spec decision 12); tokens are handed over already hashed.
 */

export interface Tenant {
  id: string;
  name: string;
  createdAt: number;
}

export type EnrollmentTokenRedemption =
  | { ok: true; tenantId: string }
  | { ok: false; reason: 'unknown' | 'used' | 'expired' | 'wrong_tenant' };

export interface GatewayRecord {
  id: string;
  tenantId: string;
  secret: string;
  /** Previous secret, still accepted until `secondaryExpiresAt`. */
  secondarySecret: string | null;
  secondaryExpiresAt: number | null;
  revoked: boolean;
  revokedAt: number | null;
  platform: string;
  botId: string;
  /** Public inbound URL for signed deliveries; '' = outbound-only (WS `inbound` frames). */
  endpoint: string;
  createdAt: number;
  lastSeenAt: number | null;
  /** The agent instance the gateway runs for (provision `instanceId`); null = the gateway itself. */
  instanceId: string | null;
  /** Poked with an unsigned GET when inbound arrives while the gateway is idle; null = none. */
  wakeUrl: string | null;
  /** Reply prefix in multi-agent chats (provision `displayName`, ≤ 64 chars); null = none. */
  displayName: string | null;
  /** Set while the gateway is idle (its `going_idle` was acknowledged): inbound waits in the outbox. */
  idleSince: number | null;
}

/** One platform identity (platform + bot id) a gateway was provisioned or enrolled for. */
export interface GatewayIdentity {
  gatewayId: string;
  platform: string;
  botId: string;
  createdAt: number;
}

/** Provision details that can change without a new secret; a key left out is left as it is. */
export interface GatewayDetails {
  instanceId?: string | null;
  wakeUrl?: string | null;
  displayName?: string | null;
}

/**
 * What a gateway instance declared relevant on one platform (`POST /relay/policy`), keyed by
 * (tenant, platform, instance key); the instance key is the gateway's `instanceId`, else its id.
 */
export interface GatewayPolicy {
  tenantId: string;
  platform: string;
  instanceKey: string;
  requireAddress: boolean;
  freeResponseScopes: string[];
  allowOtherBots: boolean;
  updatedAt: number;
}

/** Outbox rows waiting, per tenant and the gateway they prefer (null = any of the tenant's). */
export interface OutboxCount {
  tenantId: string;
  gatewayId: string | null;
  count: number;
}

export interface DeliveryKeys {
  tenantId: string;
  primary: string;
  secondary: string | null;
  secondaryExpiresAt: number | null;
}

export interface RouteRecord {
  platform: string;
  /** The platform's own discriminator (chat id, guild id, web-chat room); '*' = platform default. */
  routeKey: string;
  tenantId: string;
  /** '' = deliver over the gateway's socket. */
  endpoint: string;
  /** Gateway that declared the route, preferred for socket delivery; null = any of the tenant's. */
  gatewayId: string | null;
  createdAt: number;
}

export type DeliveryKind = 'message' | 'interrupt';

/** One id's outcome in {@link RelayStore.completeDeliveries}. */
export interface CompletionResult {
  /** What `completeDelivery` answers: the row was held by the claimer and is gone now. */
  completed: boolean;
  /** Its removal made the next message of its session eligible for claiming. */
  promoted: boolean;
}

/** Claim-on-enqueue for {@link RelayStore.enqueueDeliveries}. */
export interface EnqueueLease {
  claimer: string;
  now: number;
  leaseMs: number;
  /** Most rows to lease (0 leases none). */
  limit: number;
  /**
   * Per-tenant fairness: most rows to lease for each tenant named here (a tenant not named: no
   * limit of its own), on top of `limit`.
   */
  tenantLimits?: ReadonlyMap<string, number>;
}

/**
 * Per-tenant fairness for {@link RelayStore.claimDueDeliveries}: a tenant gets at most `perTenant`
 * minus its `inflight` rows from one claim, and the rows are taken round-robin across tenants
 * (each tenant's oldest first, then each tenant's second oldest, …), so one tenant's backlog can
 * neither take every free slot nor be handed over only to wait for a slot it may not use.
 */
export interface ClaimFairness {
  perTenant: number;
  /** Attempts the claimer already has in flight, by tenant. */
  inflight: ReadonlyMap<string, number>;
}

export interface NewDelivery {
  id: string;
  tenantId: string;
  gatewayId: string | null;
  sessionKey: string;
  kind: DeliveryKind;
  /** The JSON body, serialised exactly once; these bytes are signed and sent on every attempt. */
  body: string;
  /** '' = socket delivery. */
  endpoint: string;
  createdAt: number;
  /**
   * A platform's own id of what this delivery carries (e.g. a Discord message id): recorded in the
   * platform state in the same transaction as the row, until `until`. While it is recorded, the
   * same key is not queued again, on any instance: the store returns {@link duplicateRecord}.
   * Messages only (an interrupt is never deduplicated).
   */
  dedupe?: { key: string; until: number };
}

export interface DeliveryRecord extends NewDelivery {
  /** Insertion order; per-session ordering follows it. */
  seq: number;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  lastStatus: number | null;
  /** Set while an engine holds the delivery; expires so a crashed holder's work is retried. */
  claimedBy: string | null;
  claimedUntil: number | null;
  /** Not queued: its `dedupe` key was already recorded (`id` is then the first delivery's). */
  duplicate?: true;
}

/** What an enqueue answers for a delivery whose dedupe key was already recorded: nothing queued. */
export function duplicateRecord(delivery: NewDelivery, firstId: string): DeliveryRecord {
  return {
    ...delivery,
    id: firstId,
    seq: 0,
    attempts: 0,
    nextAttemptAt: delivery.createdAt,
    lastError: null,
    lastStatus: null,
    claimedBy: null,
    claimedUntil: null,
    duplicate: true,
  };
}

export interface DeadLetter extends NewDelivery {
  seq: number;
  attempts: number;
  reason: string;
  lastStatus: number | null;
  deadAt: number;
}

export interface AuditEvent {
  at: number;
  event: string;
  tenantId?: string | null;
  gatewayId?: string | null;
  /** Never a secret. */
  detail?: Record<string, unknown>;
}

export interface ChatRecord {
  tenantId: string;
  platform: string;
  chatId: string;
  routeKey: string;
  updatedAt: number;
}

export type RouteUpsert =
  | { ok: true; route: RouteRecord }
  | { ok: false; reason: 'owned_by_other_tenant'; routeKey: string };

export interface RelayStore {
  /** Health probe for /readyz: resolves when the store answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;

  // Tenants and their access tokens (hashed).
  createTenant(name: string, now: number): Promise<Tenant>;
  getTenant(id: string): Promise<Tenant | null>;
  findTenantByName(name: string): Promise<Tenant | null>;
  listTenants(): Promise<Tenant[]>;
  addTenantToken(tenantId: string, tokenHash: string, now: number): Promise<void>;
  findTenantIdByTokenHash(tokenHash: string): Promise<string | null>;

  // Enrollment tokens (hashed, single use).
  createEnrollmentToken(tokenHash: string, tenantId: string, expiresAt: number, now: number): Promise<void>;
  /** Atomically marks the token used by `gatewayId`; a second redemption reports `used`. */
  redeemEnrollmentToken(
    tokenHash: string,
    tenantId: string,
    gatewayId: string,
    now: number,
  ): Promise<EnrollmentTokenRedemption>;

  // Gateways and their secrets.
  getGateway(id: string): Promise<GatewayRecord | null>;
  listGateways(tenantId?: string): Promise<GatewayRecord[]>;
  /**
   * Create the gateway, or give an existing one (same tenant) a new primary secret, keeping the
   * previous primary as secondary until `now + rotationWindowMs`. The caller has already checked
   * tenant ownership and revocation.
   */
  putGatewaySecret(input: {
    id: string;
    tenantId: string;
    secret: string;
    platform: string;
    botId: string;
    endpoint: string | undefined;
    now: number;
    rotationWindowMs: number;
  }): Promise<GatewayRecord>;
  revokeGateway(id: string, now: number): Promise<GatewayRecord | null>;
  /** Gateways revoked at or after `since` (the connector polls this to close live sockets). */
  listRevokedSince(since: number): Promise<{ id: string; revokedAt: number }[]>;
  /** `last_seen_at` of many gateways in one write (the upgrades of one event-loop turn). */
  touchGateways(ids: readonly string[], now: number): Promise<void>;
  /** Change provision details; null when there is no such gateway. */
  updateGatewayDetails(id: string, details: GatewayDetails): Promise<GatewayRecord | null>;
  /** Mark the gateway idle since `idleSince` (its `going_idle`). */
  setGatewayIdle(id: string, idleSince: number): Promise<void>;
  /**
   * Live again: the idle marks of these gateways cleared in one write (the first hellos of one
   * event-loop turn); a gateway that has none is not written.
   */
  clearGatewaysIdle(ids: readonly string[]): Promise<void>;
  /** Add (or re-point the bot id of) one platform identity; `putGatewaySecret` adds its own. */
  addGatewayIdentity(gatewayId: string, platform: string, botId: string, now: number): Promise<void>;
  /** The gateway's identities, oldest first. */
  listGatewayIdentities(gatewayId: string): Promise<GatewayIdentity[]>;
  /**
   * The identities of every gateway (of one tenant when given), in one query: by gateway id,
   * then each gateway's oldest first (the admin views list thousands of gateways at once).
   */
  listAllGatewayIdentities(tenantId?: string): Promise<GatewayIdentity[]>;

  // Relevance policies declared by gateway instances (full replace per key).
  putPolicy(policy: GatewayPolicy): Promise<void>;
  getPolicy(tenantId: string, platform: string, instanceKey: string): Promise<GatewayPolicy | null>;
  listPolicies(tenantId?: string): Promise<GatewayPolicy[]>;

  // Tenant delivery keys.
  getDeliveryKeys(tenantId: string): Promise<DeliveryKeys | null>;
  /** Returns the existing keys, or stores `candidate` as the primary if the tenant has none. */
  getOrCreateDeliveryKey(tenantId: string, candidate: string): Promise<DeliveryKeys>;
  rotateDeliveryKey(
    tenantId: string,
    next: string,
    now: number,
    rotationWindowMs: number,
  ): Promise<DeliveryKeys>;

  // Routes: platform discriminator → tenant (+ endpoint).
  upsertRoute(route: Omit<RouteRecord, 'createdAt'>, now: number): Promise<RouteUpsert>;
  /** Exact key first, then the platform's '*' default route. */
  findRoute(platform: string, routeKey: string): Promise<RouteRecord | null>;
  listRoutes(tenantId?: string): Promise<RouteRecord[]>;

  // Chats seen per tenant: authorises outbound ops to a chat and tells which platform it is on.
  recordChat(chat: ChatRecord): Promise<void>;
  findChat(tenantId: string, chatId: string): Promise<ChatRecord | null>;
  /** Every tenant a chat of this platform was delivered to, in id order. */
  chatTenants(platform: string, chatId: string): Promise<string[]>;

  // Outbox.
  enqueueDelivery(delivery: NewDelivery): Promise<DeliveryRecord>;
  /**
   * Enqueue several deliveries in one transaction (a group commit): every row is committed, in the
   * order given, or none is (the promise rejects). Each row behaves as {@link enqueueDelivery}.
   * With `lease`, the rows that are claimable at once (due at `lease.now` and eligible under the
   * claim rule: an interrupt, or a message with no older message of its session in the outbox) are
   * also leased to `lease.claimer` in the same transaction, as `claimDueDeliveries` at `lease.now`
   * would lease them (attempts 1, claimed until `now + leaseMs`), the first `lease.limit` of them
   * in the order given (and at most `lease.tenantLimits` of a tenant). The returned records show
   * which rows were leased.
   */
  enqueueDeliveries(deliveries: readonly NewDelivery[], lease?: EnqueueLease): Promise<DeliveryRecord[]>;
  /**
   * Claim up to `limit` due deliveries for `claimer` until `now + leaseMs`. Only the oldest
   * unfinished delivery of each (tenant, session key) is eligible, so a session never has two in
   * flight and never overtakes itself. Interrupts are not held back by the messages of their
   * session. Deliveries whose claim has expired are eligible again. Without `fairness` the oldest
   * eligible rows are taken (seq order); with it, see {@link ClaimFairness}.
   */
  claimDueDeliveries(
    claimer: string,
    now: number,
    limit: number,
    leaseMs: number,
    fairness?: ClaimFairness,
  ): Promise<DeliveryRecord[]>;
  completeDelivery(id: string, claimer: string): Promise<boolean>;
  /**
   * {@link completeDelivery} for several ids in one transaction; one result per id, in order. A
   * failure rejects and completes none of them.
   */
  completeDeliveries(ids: readonly string[], claimer: string): Promise<CompletionResult[]>;
  /**
   * Optional (a store whose calls run synchronously underneath: SQLite). Runs `work`, which makes
   * store calls synchronously (it never awaits), in one transaction, each call in a savepoint of
   * its own: one commit for the engine's ingest and completion batches of one event-loop turn
   * instead of two (issue 20). A call that fails inside rolls back alone (its promise rejects);
   * the returned promise settles after the commit and rejects if it failed, in which case nothing
   * `work` did was written, whatever the promises of its calls said: callers must not trust those
   * results before this promise resolved.
   */
  atomically?(work: () => void): Promise<void>;
  retryDeliveryLater(
    id: string,
    claimer: string,
    nextAttemptAt: number,
    error: string,
    status: number | null,
  ): Promise<boolean>;
  deadLetterDelivery(
    id: string,
    claimer: string,
    reason: string,
    status: number | null,
    now: number,
  ): Promise<boolean>;
  /** Release every claim held by `claimer` (clean shutdown), making them due now. */
  releaseClaims(claimer: string, now: number): Promise<number>;
  /** Every claimer currently holding a delivery, so a cluster can release a dead instance's claims. */
  listClaimers(): Promise<string[]>;
  /**
   * Make the tenant's unclaimed socket deliveries (no endpoint) due at `now`: a socket of the tenant
   * just became ready, so rows waiting out a no-socket backoff go at once. Returns how many.
   */
  makeSocketDeliveriesDue(tenantId: string, now: number): Promise<number>;
  /** Earliest `nextAttemptAt` among unclaimed deliveries, so the engine can sleep until then. */
  nextDueAt(): Promise<number | null>;
  outboxDepth(): Promise<number>;
  /** {@link outboxDepth} broken down by tenant and preferred gateway. */
  outboxCounts(): Promise<OutboxCount[]>;
  listDeliveries(limit: number): Promise<DeliveryRecord[]>;
  listDeadLetters(limit: number): Promise<DeadLetter[]>;
  /** Move a dead letter back to the outbox, due now; false if there is no such dead letter. */
  retryDeadLetter(id: string, now: number): Promise<boolean>;
  /** Remove a dead letter for good; the removed row, or null if there is no such dead letter. */
  discardDeadLetter(id: string): Promise<DeadLetter | null>;

  // Platform state: small values with an expiry that every connector instance reads (a Discord
  // shard's resumable session, interaction capabilities, message ids already ingested).
  /** The value under `key`, or null when absent or expired at `now`. */
  getPlatformState(key: string, now: number): Promise<string | null>;
  putPlatformState(key: string, value: string, expiresAt: number): Promise<void>;
  /**
   * Every key set to the same `value` until `expiresAt` in one write: one transaction, one
   * statement on Postgres (issue 20: presence records of thousands of gateways every 10 s).
   */
  putPlatformStates(keys: readonly string[], value: string, expiresAt: number): Promise<void>;
  /** Store `value` unless a live (unexpired at `now`) value is there; true when stored. */
  insertPlatformState(key: string, value: string, expiresAt: number, now: number): Promise<boolean>;
  deletePlatformState(key: string): Promise<void>;
  /**
   * Delete those of `keys` whose value is still `value` (compare and delete, in one write: a key
   * another writer has taken since stays); returns how many went.
   */
  deletePlatformStatesHolding(keys: readonly string[], value: string): Promise<number>;
  /**
   * Every live (unexpired at `now`) entry whose key starts with `prefix`, in one query, by key.
   * The prefix is ASCII (a key range on the primary key, so it does not scan the table).
   */
  listPlatformState(prefix: string, now: number): Promise<{ key: string; value: string }[]>;
  /** Remove entries expired at `now`; returns how many. */
  purgePlatformState(now: number): Promise<number>;

  // Audit log.
  audit(event: AuditEvent): Promise<void>;
  /** The newest `limit` events, newest first; with `tenantId`, only that tenant's. */
  listAudit(limit: number, filter?: { tenantId?: string | undefined }): Promise<AuditEvent[]>;

  // Web-chat history: each chat's messages, shared by every instance and kept across restarts.
  /**
   * Store a chat's message and drop the chat's oldest beyond the newest `keep`, in one transaction.
   * A `clientId` the chat already has stores nothing: the stored entry is answered with
   * `inserted: false` (one visitor's message re-sent, on any instance).
   */
  appendWebChatMessage(
    entry: WebChatEntry,
    keep: number,
  ): Promise<{ entry: WebChatEntry; inserted: boolean }>;
  getWebChatMessage(chatId: string, id: string): Promise<WebChatEntry | null>;
  /** The chat's newest `limit` messages, oldest first. */
  listWebChatMessages(chatId: string, limit: number): Promise<WebChatEntry[]>;
  /** Replace a message's body if it is still `previousBody` (compare-and-set); true when replaced. */
  replaceWebChatMessage(chatId: string, id: string, previousBody: string, body: string): Promise<boolean>;
  deleteWebChatMessages(chatId: string, ids: readonly string[]): Promise<number>;

  // Retention (src/connector/retention.ts): rows of a kind older than a cutoff.
  /** How many rows of `kind` {@link prune} would remove for `before`. */
  countPrunable(kind: PruneKind, before: number): Promise<number>;
  /**
   * Remove at most `limit` of the oldest rows of `kind` from before `before` (dead letters by when
   * they died, audit events by time, chats by their last record, web-chat messages by when they were
   * sent, platform state by expiry: `expires_at <= before`), in one short transaction; returns how
   * many. Idempotent: instances pruning at once remove each row once.
   */
  prune(kind: PruneKind, before: number, limit: number): Promise<number>;
}

/** One stored web-chat message. */
export interface WebChatEntry {
  chatId: string;
  /** The message id (the adapter's, shown to the visitor and sent to the agent as `message_id`). */
  id: string;
  /** The visitor's own id for the message (the browser's `clientId`), unique per chat; or null. */
  clientId: string | null;
  /** The message as the adapter serialised it (JSON). */
  body: string;
  createdAt: number;
}

/** What retention prunes, one setting each. */
export type PruneKind = 'deadLetters' | 'audit' | 'chats' | 'platformState' | 'webchatMessages';
export const PRUNE_KINDS: readonly PruneKind[] = [
  'deadLetters',
  'audit',
  'chats',
  'platformState',
  'webchatMessages',
];
