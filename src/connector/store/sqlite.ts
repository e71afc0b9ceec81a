/**
 * The default {@link RelayStore}: one SQLite file (better-sqlite3, WAL) owned by the connector
 * process. Everything is synchronous underneath; the async signatures only match the interface.
 *
 * Notes on semantics the interface leaves to the implementation:
 * - Secondary secrets/keys are returned as stored, even after `secondaryExpiresAt`; callers
 *   compare the expiry with their clock before accepting a secondary.
 * - Outbox eligibility is kept in a `head` column (every interrupt, plus the oldest message of each
 *   (tenant, session key)), so claiming scans one index entry per active session instead of every
 *   queued row. The claim query still checks "no older message of this session" itself, and the
 *   column is recomputed on every open, so a bug in its upkeep cannot reorder a session.
 * - A lease held until `claimedUntil` expires once `now > claimedUntil`; `nextDueAt` therefore
 *   reports `claimedUntil + 1` for a claimed delivery.
 * - `completeDelivery`/`retryDeliveryLater`/`deadLetterDelivery` succeed for the claimer named on
 *   the row, even if its lease has lapsed, as long as no one else has claimed it since.
 * - One `claimDueDeliveries` call leases at most 1000 deliveries, whatever `limit` says.
 * - Writes that read first (claim, complete, redeem, upsert route, ...) run in BEGIN IMMEDIATE
 *   transactions, so they stay atomic even if a second process opens the same file.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { boundedCache } from '../../common/cache.js';
import { type BackgroundCheckpoints, startBackgroundCheckpoints } from '../../common/sqlite-checkpoints.js';
import { migrate } from './migrations.js';
import {
  type AuditRow,
  type ChatRow,
  type DeadLetterRow,
  type DeliveryKeysRow,
  detailColumns,
  type EnrollmentRow,
  type GatewayIdentityRow,
  type GatewayRow,
  type OutboxRow,
  type PolicyRow,
  prefixRange,
  type RouteRow,
  type TenantRow,
  toAudit,
  toChat,
  toDeadLetter,
  toDelivery,
  toDeliveryKeys,
  toGateway,
  toGatewayIdentity,
  toPolicy,
  toRoute,
  toTenant,
} from './rows.js';
import { SqliteHousekeeping } from './sqlite-housekeeping.js';
import type {
  AuditEvent,
  ChatRecord,
  ClaimFairness,
  CompletionResult,
  DeadLetter,
  DeliveryKeys,
  DeliveryKind,
  DeliveryRecord,
  EnqueueLease,
  EnrollmentTokenRedemption,
  GatewayDetails,
  GatewayIdentity,
  GatewayPolicy,
  GatewayRecord,
  NewDelivery,
  OutboxCount,
  PruneKind,
  RelayStore,
  RouteRecord,
  RouteUpsert,
  Tenant,
  WebChatEntry,
} from './types.js';
import { duplicateRecord } from './types.js';

/** Named parameters of the dead-letter insert. */
interface DeadLetterParams {
  id: string;
  seq: number;
  tenantId: string;
  gatewayId: string | null;
  sessionKey: string;
  kind: DeliveryKind;
  body: string;
  endpoint: string;
  createdAt: number;
  attempts: number;
  reason: string;
  lastStatus: number | null;
  deadAt: number;
}

/** The session a removed outbox row belonged to, so the next message can become its head. */
interface SessionRef {
  tenant_id: string;
  session_key: string;
  kind: DeliveryKind;
}

/** True for paths SQLite does not map to a file of that name (in-memory and temporary databases). */
const isFileless = (path: string): boolean => path === '' || path === ':memory:' || path.startsWith('file:');

/** Whether an oldest-message predicate for the row aliased `o` holds (no older message of its session). */
const NO_OLDER_MESSAGE = `(o.kind = 'interrupt' OR NOT EXISTS (
  SELECT 1 FROM outbox p
  WHERE p.tenant_id = o.tenant_id AND p.session_key = o.session_key AND p.kind = 'message' AND p.seq < o.seq
))`;

/** Upper bound on one claim, so a caller's huge limit cannot hold the write lock for long. */
const MAX_CLAIM = 1000;

/** Route lookups remembered (see `#routes`). */
const ROUTE_CACHE_MAX = 10_000;

interface FairHeadsParams {
  now: number;
  limit: number;
  perTenant: number;
  busy: string;
}

export interface SqliteStoreOptions {
  /**
   * WAL checkpoints on a worker thread (`src/common/sqlite-checkpoints.ts`), for a long-running
   * connector; `onError` hears when they fall back to the writer's connection.
   */
  backgroundCheckpoints?: { onError: (message: string) => void };
}

export class SqliteStore implements RelayStore {
  readonly #db: Database.Database;
  #checkpoints: BackgroundCheckpoints | undefined;
  readonly #ping;

  // Tenants
  readonly #insertTenant;
  readonly #getTenant;
  readonly #findTenantByName;
  readonly #listTenants;
  readonly #insertTenantToken;
  readonly #findTenantIdByTokenHash;
  // Enrollment
  readonly #insertEnrollment;
  readonly #getEnrollment;
  readonly #markEnrollmentUsed;
  // Gateways
  readonly #getGateway;
  readonly #listGateways;
  readonly #listGatewaysOfTenant;
  readonly #insertGateway;
  readonly #rotateGateway;
  readonly #revokeGateway;
  readonly #listRevokedSince;
  readonly #touchGateway;
  /** One write per item of a list, all in one transaction; the rows changed (the batch writes). */
  readonly #eachTx;
  readonly #setGatewayIdle;
  readonly #clearGatewayIdle;
  readonly #makeSocketDeliveriesDue;
  readonly #upsertIdentity;
  readonly #listIdentities;
  readonly #listAllIdentities;
  readonly #listIdentitiesOfTenant;
  readonly #upsertPolicy;
  readonly #getPolicy;
  readonly #listPolicies;
  readonly #listPoliciesOfTenant;
  readonly #outboxCounts;
  // Platform state
  readonly #getState;
  readonly #listState;
  readonly #putState;
  readonly #insertState;
  readonly #deleteState;
  readonly #deleteStateHolding;
  readonly #purgeState;
  // Delivery keys
  readonly #getDeliveryKeys;
  readonly #insertDeliveryKeyIfAbsent;
  readonly #rotateDeliveryKey;
  // Routes and chats
  readonly #getRoute;
  readonly #dataVersion;
  /**
   * `platform \0 route key` → the route `findRoute` answers (null: none), valid while this
   * connection changed no route and `PRAGMA data_version` says no other connection committed
   * anything (issue 20: every ingest looks its route up; the pragma costs less than half the
   * select). Bounded: unknown route keys come from the platforms.
   */
  readonly #routes = boundedCache<string, { route: RouteRecord | null }>({ max: ROUTE_CACHE_MAX });
  #routesVersion: number | undefined;
  readonly #insertRoute;
  readonly #updateRoute;
  readonly #listRoutes;
  readonly #listRoutesOfTenant;
  readonly #upsertChat;
  readonly #findChat;
  readonly #chatTenants;
  // Outbox
  readonly #enqueue;
  readonly #insertOutbox;
  readonly #sessionHasMessage;
  /** Due-head selects keyed by LIMIT, which is inlined: a bound LIMIT costs ~10 µs a call here. */
  readonly #dueHeads = boundedCache<number, Database.Statement<{ now: number }, OutboxRow>>({ max: 32 });
  #fairHeads: Database.Statement<FairHeadsParams, OutboxRow> | undefined;
  readonly #claimOne;
  readonly #complete;
  readonly #promoteHead;
  readonly #retryLater;
  readonly #getClaimed;
  readonly #insertDeadLetter;
  readonly #releaseClaims;
  readonly #nextDueAt;
  readonly #outboxDepth;
  readonly #listClaimers;
  readonly #listDeliveries;
  readonly #listDeadLetters;
  readonly #takeDeadLetter;
  // Audit
  readonly #insertAudit;
  readonly #listAudit;
  readonly #listTenantAudit;

  readonly #createTenantTx;
  readonly #redeemTx;
  readonly #putGatewaySecretTx;
  readonly #getOrCreateDeliveryKeyTx;
  readonly #rotateDeliveryKeyTx;
  readonly #upsertRouteTx;
  readonly #claimTx;
  readonly #enqueueManyTx;
  readonly #enqueueOneTx;
  readonly #completeTx;
  readonly #completeManyTx;
  readonly #deadLetterTx;
  readonly #retryDeadLetterTx;
  readonly #atomicTx;
  /** Web-chat history and retention (`sqlite-housekeeping.ts`). */
  readonly #housekeeping;

  /**
   * Open (creating if needed) the database at `path` and bring its schema up to date. For a file
   * path, the parent directory is created with mode 0700 and the database file with mode 0600
   * before SQLite touches it; `:memory:` gives a private in-memory store (tests).
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    if (!isFileless(path)) {
      const dir = dirname(path);
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
      // Create the file ourselves so it never exists with wider permissions, then tighten a
      // pre-existing one too: it holds gateway secrets and delivery keys (spec decision 12).
      closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
    }
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      if (!isFileless(path)) {
        for (const extra of [`${path}-wal`, `${path}-shm`]) if (existsSync(extra)) chmodSync(extra, 0o600);
      }
      migrate(db);
      const store = new SqliteStore(db);
      if (options.backgroundCheckpoints && !isFileless(path))
        store.#checkpoints = startBackgroundCheckpoints(db, path, options.backgroundCheckpoints);
      return store;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#ping = db.prepare('SELECT 1');

    this.#insertTenant = db.prepare<[string, string, number]>(
      'INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)',
    );
    this.#getTenant = db.prepare<[string], TenantRow>('SELECT * FROM tenants WHERE id = ?');
    this.#findTenantByName = db.prepare<[string], TenantRow>('SELECT * FROM tenants WHERE name = ?');
    this.#listTenants = db.prepare<[], TenantRow>('SELECT * FROM tenants ORDER BY created_at, id');
    this.#insertTenantToken = db.prepare<[string, string, number]>(
      'INSERT INTO tenant_tokens (token_hash, tenant_id, created_at) VALUES (?, ?, ?)',
    );
    this.#findTenantIdByTokenHash = db
      .prepare<[string], string>('SELECT tenant_id FROM tenant_tokens WHERE token_hash = ?')
      .pluck();

    this.#insertEnrollment = db.prepare<[string, string, number, number]>(
      'INSERT INTO enrollment_tokens (token_hash, tenant_id, expires_at, created_at) VALUES (?, ?, ?, ?)',
    );
    this.#getEnrollment = db.prepare<[string], EnrollmentRow>(
      'SELECT tenant_id, expires_at, used_at FROM enrollment_tokens WHERE token_hash = ?',
    );
    this.#markEnrollmentUsed = db.prepare<[number, string, string]>(
      'UPDATE enrollment_tokens SET used_at = ?, used_by = ? WHERE token_hash = ? AND used_at IS NULL',
    );

    this.#getGateway = db.prepare<[string], GatewayRow>('SELECT * FROM gateways WHERE id = ?');
    this.#listGateways = db.prepare<[], GatewayRow>('SELECT * FROM gateways ORDER BY created_at, id');
    this.#listGatewaysOfTenant = db.prepare<[string], GatewayRow>(
      'SELECT * FROM gateways WHERE tenant_id = ? ORDER BY created_at, id',
    );
    this.#insertGateway = db.prepare<
      {
        id: string;
        tenantId: string;
        secret: string;
        platform: string;
        botId: string;
        endpoint: string;
        now: number;
      },
      GatewayRow
    >(
      `INSERT INTO gateways (id, tenant_id, secret, platform, bot_id, endpoint, created_at)
       VALUES (@id, @tenantId, @secret, @platform, @botId, @endpoint, @now) RETURNING *`,
    );
    this.#rotateGateway = db.prepare<
      {
        id: string;
        secret: string;
        secondaryExpiresAt: number;
        platform: string;
        botId: string;
        endpoint: string | null;
      },
      GatewayRow
    >(
      `UPDATE gateways SET
         secondary_secret = secret,
         secondary_expires_at = @secondaryExpiresAt,
         secret = @secret,
         platform = @platform,
         bot_id = @botId,
         endpoint = COALESCE(@endpoint, endpoint)
       WHERE id = @id RETURNING *`,
    );
    this.#revokeGateway = db.prepare<[number, string], GatewayRow>(
      'UPDATE gateways SET revoked = 1, revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING *',
    );
    this.#listRevokedSince = db.prepare<[number], { id: string; revokedAt: number }>(
      'SELECT id, revoked_at AS revokedAt FROM gateways WHERE revoked_at >= ? ORDER BY revoked_at, id',
    );
    this.#touchGateway = db.prepare<[number, string]>('UPDATE gateways SET last_seen_at = ? WHERE id = ?');
    this.#setGatewayIdle = db.prepare<[number, string]>('UPDATE gateways SET idle_since = ? WHERE id = ?');
    // Every first hello clears the idle mark; almost always there is none, and an UPDATE that
    // matches no row writes no page (a handshake-rate cost, issue 20).
    this.#clearGatewayIdle = db.prepare<[string]>(
      'UPDATE gateways SET idle_since = NULL WHERE id = ? AND idle_since IS NOT NULL',
    );
    this.#eachTx = db.transaction((items: readonly string[], write: (item: string) => number): number => {
      let changed = 0;
      for (const item of items) changed += write(item);
      return changed;
    });
    this.#makeSocketDeliveriesDue = db.prepare<{ now: number; tenantId: string }>(
      `UPDATE outbox SET next_attempt_at = @now
       WHERE tenant_id = @tenantId AND endpoint = '' AND next_attempt_at > @now
         AND (claimed_by IS NULL OR claimed_until < @now)`,
    );
    this.#upsertIdentity = db.prepare<[string, string, string, number]>(
      `INSERT INTO gateway_identities (gateway_id, platform, bot_id, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (gateway_id, platform) DO UPDATE SET bot_id = excluded.bot_id`,
    );
    this.#listIdentities = db.prepare<[string], GatewayIdentityRow>(
      'SELECT * FROM gateway_identities WHERE gateway_id = ? ORDER BY created_at, platform',
    );
    this.#listAllIdentities = db.prepare<[], GatewayIdentityRow>(
      'SELECT * FROM gateway_identities ORDER BY gateway_id, created_at, platform',
    );
    this.#listIdentitiesOfTenant = db.prepare<[string], GatewayIdentityRow>(
      `SELECT i.* FROM gateway_identities i JOIN gateways g ON g.id = i.gateway_id
       WHERE g.tenant_id = ? ORDER BY i.gateway_id, i.created_at, i.platform`,
    );
    this.#getState = db.prepare<[string, number], { value: string }>(
      'SELECT value FROM platform_state WHERE key = ? AND expires_at > ?',
    );
    this.#listState = db.prepare<[string, string, number], { key: string; value: string }>(
      'SELECT key, value FROM platform_state WHERE key >= ? AND key < ? AND expires_at > ? ORDER BY key',
    );
    this.#putState = db.prepare<[string, string, number]>(
      `INSERT INTO platform_state (key, value, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
    );
    this.#insertState = db.prepare<[string, string, number, number]>(
      `INSERT INTO platform_state (key, value, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
       WHERE platform_state.expires_at <= ?`,
    );
    this.#deleteState = db.prepare<[string]>('DELETE FROM platform_state WHERE key = ?');
    this.#deleteStateHolding = db.prepare<[string, string]>(
      'DELETE FROM platform_state WHERE key = ? AND value = ?',
    );
    this.#purgeState = db.prepare<[number]>('DELETE FROM platform_state WHERE expires_at <= ?');
    this.#upsertPolicy = db.prepare<[string, string, string, number, string, number, number]>(
      `INSERT INTO gateway_policies
         (tenant_id, platform, instance_key, require_address, free_response_scopes, allow_other_bots, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant_id, platform, instance_key) DO UPDATE SET
         require_address = excluded.require_address,
         free_response_scopes = excluded.free_response_scopes,
         allow_other_bots = excluded.allow_other_bots,
         updated_at = excluded.updated_at`,
    );
    this.#getPolicy = db.prepare<[string, string, string], PolicyRow>(
      'SELECT * FROM gateway_policies WHERE tenant_id = ? AND platform = ? AND instance_key = ?',
    );
    this.#listPolicies = db.prepare<[], PolicyRow>(
      'SELECT * FROM gateway_policies ORDER BY tenant_id, platform, instance_key',
    );
    this.#listPoliciesOfTenant = db.prepare<[string], PolicyRow>(
      'SELECT * FROM gateway_policies WHERE tenant_id = ? ORDER BY platform, instance_key',
    );
    this.#outboxCounts = db.prepare<[], OutboxCount>(
      `SELECT tenant_id AS tenantId, gateway_id AS gatewayId, COUNT(*) AS count
       FROM outbox GROUP BY tenant_id, gateway_id ORDER BY tenant_id, gateway_id`,
    );

    this.#getDeliveryKeys = db.prepare<[string], DeliveryKeysRow>(
      'SELECT * FROM delivery_keys WHERE tenant_id = ?',
    );
    this.#insertDeliveryKeyIfAbsent = db.prepare<[string, string]>(
      'INSERT INTO delivery_keys (tenant_id, primary_key) VALUES (?, ?) ON CONFLICT (tenant_id) DO NOTHING',
    );
    this.#rotateDeliveryKey = db.prepare<
      { next: string; expiresAt: number; tenantId: string },
      DeliveryKeysRow
    >(
      `UPDATE delivery_keys SET secondary_key = primary_key, secondary_expires_at = @expiresAt, primary_key = @next
       WHERE tenant_id = @tenantId RETURNING *`,
    );

    this.#getRoute = db.prepare<[string, string], RouteRow>(
      'SELECT * FROM routes WHERE platform = ? AND route_key = ?',
    );
    this.#dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.#insertRoute = db.prepare<[string, string, string, string, string | null, number], RouteRow>(
      `INSERT INTO routes (platform, route_key, tenant_id, endpoint, gateway_id, created_at)
       VALUES (?, ?, ?, ?, ?, ?) RETURNING *`,
    );
    this.#updateRoute = db.prepare<[string, string | null, string, string], RouteRow>(
      'UPDATE routes SET endpoint = ?, gateway_id = ? WHERE platform = ? AND route_key = ? RETURNING *',
    );
    this.#listRoutes = db.prepare<[], RouteRow>('SELECT * FROM routes ORDER BY platform, route_key');
    this.#listRoutesOfTenant = db.prepare<[string], RouteRow>(
      'SELECT * FROM routes WHERE tenant_id = ? ORDER BY platform, route_key',
    );
    this.#upsertChat = db.prepare<[string, string, string, string, number]>(
      `INSERT INTO chats (tenant_id, chat_id, platform, route_key, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (tenant_id, chat_id) DO UPDATE SET
         platform = excluded.platform, route_key = excluded.route_key, updated_at = excluded.updated_at`,
    );
    this.#findChat = db.prepare<[string, string], ChatRow>(
      'SELECT * FROM chats WHERE tenant_id = ? AND chat_id = ?',
    );
    this.#chatTenants = db
      .prepare<[string, string], string>(
        'SELECT tenant_id FROM chats WHERE platform = ? AND chat_id = ? ORDER BY tenant_id',
      )
      .pluck();

    this.#enqueue = db.prepare<
      {
        id: string;
        tenantId: string;
        gatewayId: string | null;
        sessionKey: string;
        kind: DeliveryKind;
        body: string;
        endpoint: string;
        createdAt: number;
        nextAttemptAt: number;
        attempts: number;
      },
      OutboxRow
    >(
      `INSERT INTO outbox (id, tenant_id, gateway_id, session_key, kind, body, endpoint, created_at,
                           attempts, next_attempt_at, head)
       VALUES (@id, @tenantId, @gatewayId, @sessionKey, @kind, @body, @endpoint, @createdAt,
               @attempts, @nextAttemptAt,
               CASE WHEN @kind = 'interrupt' THEN 1
                    WHEN EXISTS (SELECT 1 FROM outbox
                                 WHERE tenant_id = @tenantId AND session_key = @sessionKey AND kind = 'message')
                    THEN 0 ELSE 1 END)
       RETURNING *`,
    );
    // The batch path: head and lease worked out in code, no row read back (the caller has it all).
    // Positional parameters: binding them is measurably cheaper than named ones.
    this.#insertOutbox = db.prepare<
      [
        id: string,
        tenantId: string,
        gatewayId: string | null,
        sessionKey: string,
        kind: DeliveryKind,
        body: string,
        endpoint: string,
        createdAt: number,
        attempts: number,
        nextAttemptAt: number,
        head: number,
        claimedBy: string | null,
        claimedUntil: number | null,
      ]
    >(
      `INSERT INTO outbox (id, tenant_id, gateway_id, session_key, kind, body, endpoint, created_at,
                           attempts, next_attempt_at, head, claimed_by, claimed_until)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#sessionHasMessage = db
      .prepare<[string, string], number>(
        "SELECT 1 FROM outbox WHERE tenant_id = ? AND session_key = ? AND kind = 'message' LIMIT 1",
      )
      .pluck();
    this.#claimOne = db.prepare<[string, number, number]>(
      'UPDATE outbox SET claimed_by = ?, claimed_until = ?, attempts = attempts + 1 WHERE seq = ?',
    );
    this.#complete = db.prepare<[string, string], SessionRef>(
      'DELETE FROM outbox WHERE id = ? AND claimed_by = ? RETURNING tenant_id, session_key, kind',
    );
    this.#promoteHead = db.prepare<[string, string]>(
      `UPDATE outbox SET head = 1
       WHERE seq = (SELECT seq FROM outbox WHERE tenant_id = ? AND session_key = ? AND kind = 'message'
                    ORDER BY seq LIMIT 1)
         AND head = 0`,
    );
    this.#retryLater = db.prepare<[number, string, number | null, string, string]>(
      `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, next_attempt_at = ?, last_error = ?,
                         last_status = ?
       WHERE id = ? AND claimed_by = ?`,
    );
    this.#getClaimed = db.prepare<[string, string], OutboxRow>(
      'SELECT * FROM outbox WHERE id = ? AND claimed_by = ?',
    );
    this.#insertDeadLetter = db.prepare<DeadLetterParams>(
      `INSERT OR REPLACE INTO dead_letters (id, seq, tenant_id, gateway_id, session_key, kind, body, endpoint,
                                           created_at, attempts, reason, last_status, dead_at)
       VALUES (@id, @seq, @tenantId, @gatewayId, @sessionKey, @kind, @body, @endpoint, @createdAt, @attempts,
               @reason, @lastStatus, @deadAt)`,
    );
    this.#releaseClaims = db.prepare<[number, string]>(
      `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, next_attempt_at = MIN(next_attempt_at, ?)
       WHERE claimed_by = ?`,
    );
    this.#nextDueAt = db
      .prepare<[], number | null>(
        `SELECT MIN(CASE WHEN claimed_by IS NULL THEN next_attempt_at
                         ELSE MAX(next_attempt_at, claimed_until + 1) END)
         FROM outbox WHERE head = 1`,
      )
      .pluck();
    this.#outboxDepth = db.prepare<[], number>('SELECT COUNT(*) FROM outbox').pluck();
    this.#listClaimers = db
      .prepare<[], string>('SELECT DISTINCT claimed_by FROM outbox WHERE claimed_by IS NOT NULL')
      .pluck();
    this.#listDeliveries = db.prepare<[number], OutboxRow>('SELECT * FROM outbox ORDER BY seq DESC LIMIT ?');
    this.#listDeadLetters = db.prepare<[number], DeadLetterRow>(
      'SELECT * FROM dead_letters ORDER BY dead_at DESC, seq DESC LIMIT ?',
    );
    this.#takeDeadLetter = db.prepare<[string], DeadLetterRow>(
      'DELETE FROM dead_letters WHERE id = ? RETURNING *',
    );

    this.#insertAudit = db.prepare<[number, string, string | null, string | null, string | null]>(
      'INSERT INTO audit (at, event, tenant_id, gateway_id, detail) VALUES (?, ?, ?, ?, ?)',
    );
    this.#listAudit = db.prepare<[number], AuditRow>(
      'SELECT at, event, tenant_id, gateway_id, detail FROM audit ORDER BY at DESC, id DESC LIMIT ?',
    );
    this.#listTenantAudit = db.prepare<[string, number], AuditRow>(
      `SELECT at, event, tenant_id, gateway_id, detail FROM audit WHERE tenant_id = ?
       ORDER BY at DESC, id DESC LIMIT ?`,
    );

    this.#createTenantTx = db.transaction((name: string, now: number): Tenant => {
      if (this.#findTenantByName.get(name)) throw new Error(`a tenant named "${name}" already exists`);
      for (;;) {
        const id = `t_${randomBytes(8).toString('hex')}`;
        if (this.#getTenant.get(id)) continue; // 64 random bits: practically never
        this.#insertTenant.run(id, name, now);
        return { id, name, createdAt: now };
      }
    });

    this.#redeemTx = db.transaction(
      (tokenHash: string, tenantId: string, gatewayId: string, now: number): EnrollmentTokenRedemption => {
        const token = this.#getEnrollment.get(tokenHash);
        if (!token) return { ok: false, reason: 'unknown' };
        if (token.used_at !== null) return { ok: false, reason: 'used' };
        if (now > token.expires_at) return { ok: false, reason: 'expired' };
        if (token.tenant_id !== tenantId) return { ok: false, reason: 'wrong_tenant' };
        if (this.#markEnrollmentUsed.run(now, gatewayId, tokenHash).changes !== 1) {
          return { ok: false, reason: 'used' };
        }
        return { ok: true, tenantId };
      },
    );

    this.#putGatewaySecretTx = db.transaction((input: Parameters<RelayStore['putGatewaySecret']>[0]) => {
      const existing = this.#getGateway.get(input.id);
      if (!existing) {
        const row = this.#insertGateway.get({
          id: input.id,
          tenantId: input.tenantId,
          secret: input.secret,
          platform: input.platform,
          botId: input.botId,
          endpoint: input.endpoint ?? '',
          now: input.now,
        });
        if (!row) throw new Error(`gateway ${input.id} was not inserted`);
        this.#upsertIdentity.run(input.id, input.platform, input.botId, input.now);
        return toGateway(row);
      }
      if (existing.tenant_id !== input.tenantId) {
        throw new Error(`gateway ${input.id} belongs to another tenant`);
      }
      const row = this.#rotateGateway.get({
        id: input.id,
        secret: input.secret,
        secondaryExpiresAt: input.now + input.rotationWindowMs,
        platform: input.platform,
        botId: input.botId,
        endpoint: input.endpoint ?? null,
      });
      if (!row) throw new Error(`gateway ${input.id} vanished during rotation`);
      this.#upsertIdentity.run(input.id, input.platform, input.botId, input.now);
      return toGateway(row);
    });

    this.#getOrCreateDeliveryKeyTx = db.transaction((tenantId: string, candidate: string): DeliveryKeys => {
      this.#insertDeliveryKeyIfAbsent.run(tenantId, candidate);
      const row = this.#getDeliveryKeys.get(tenantId);
      if (!row) throw new Error(`delivery key for ${tenantId} was not stored`);
      return toDeliveryKeys(row);
    });

    this.#rotateDeliveryKeyTx = db.transaction(
      (tenantId: string, next: string, now: number, rotationWindowMs: number): DeliveryKeys => {
        const rotated = this.#rotateDeliveryKey.get({ next, expiresAt: now + rotationWindowMs, tenantId });
        if (rotated) return toDeliveryKeys(rotated);
        // No key yet: the new one simply becomes the primary.
        this.#insertDeliveryKeyIfAbsent.run(tenantId, next);
        const row = this.#getDeliveryKeys.get(tenantId);
        if (!row) throw new Error(`delivery key for ${tenantId} was not stored`);
        return toDeliveryKeys(row);
      },
    );

    this.#upsertRouteTx = db.transaction(
      (route: Omit<RouteRecord, 'createdAt'>, now: number): RouteUpsert => {
        const existing = this.#getRoute.get(route.platform, route.routeKey);
        if (existing && existing.tenant_id !== route.tenantId) {
          return { ok: false, reason: 'owned_by_other_tenant', routeKey: route.routeKey };
        }
        const row = existing
          ? this.#updateRoute.get(route.endpoint, route.gatewayId, route.platform, route.routeKey)
          : this.#insertRoute.get(
              route.platform,
              route.routeKey,
              route.tenantId,
              route.endpoint,
              route.gatewayId,
              now,
            );
        if (!row) throw new Error(`route ${route.platform}/${route.routeKey} was not stored`);
        return { ok: true, route: toRoute(row) };
      },
    );

    // One transaction: pick the due heads (in seq order, or round-robin by tenant under per-tenant
    // limits) and lease them.
    this.#claimTx = db.transaction(
      (claimer: string, now: number, until: number, limit: number, fairness: ClaimFairness | undefined) => {
        const rows = fairness
          ? this.#fairHeadsSelect().all({
              now,
              limit,
              perTenant: Math.floor(fairness.perTenant),
              busy: JSON.stringify([...fairness.inflight]),
            })
          : this.#dueHeadsSelect(limit).all({ now });
        for (const row of rows) this.#claimOne.run(claimer, until, row.seq);
        return rows.map((row) =>
          toDelivery({ ...row, claimed_by: claimer, claimed_until: until, attempts: row.attempts + 1 }),
        );
      },
    );

    this.#enqueueOneTx = db.transaction((delivery: NewDelivery) => this.#enqueueRow(delivery));
    this.#enqueueManyTx = db.transaction(
      (deliveries: readonly NewDelivery[], lease: EnqueueLease | undefined): DeliveryRecord[] => {
        let leases = lease ? Math.max(0, Math.floor(lease.limit)) : 0;
        // Per-tenant fairness: what each limited tenant may still lease in this batch.
        const tenantLeases = new Map(lease?.tenantLimits);
        return deliveries.map((delivery): DeliveryRecord => {
          const first = this.#firstWithKey(delivery);
          if (first !== undefined) return duplicateRecord(delivery, first);
          // Eligible at once: what the enqueue statement's CASE computes for `head`.
          const head =
            delivery.kind === 'interrupt' ||
            this.#sessionHasMessage.get(delivery.tenantId, delivery.sessionKey) === undefined;
          const tenantLeft = tenantLeases.get(delivery.tenantId);
          const leased =
            lease !== undefined &&
            leases > 0 &&
            (tenantLeft === undefined || tenantLeft > 0) &&
            head &&
            delivery.createdAt <= lease.now;
          if (leased) {
            leases--;
            if (tenantLeft !== undefined) tenantLeases.set(delivery.tenantId, tenantLeft - 1);
          }
          const claimedBy = leased ? lease.claimer : null;
          const claimedUntil = leased ? lease.now + lease.leaseMs : null;
          const attempts = leased ? 1 : 0;
          const { lastInsertRowid } = this.#insertOutbox.run(
            delivery.id,
            delivery.tenantId,
            delivery.gatewayId,
            delivery.sessionKey,
            delivery.kind,
            delivery.body,
            delivery.endpoint,
            delivery.createdAt,
            attempts,
            delivery.createdAt,
            head ? 1 : 0,
            claimedBy,
            claimedUntil,
          );
          return {
            id: delivery.id,
            tenantId: delivery.tenantId,
            gatewayId: delivery.gatewayId,
            sessionKey: delivery.sessionKey,
            kind: delivery.kind,
            body: delivery.body,
            endpoint: delivery.endpoint,
            createdAt: delivery.createdAt,
            seq: Number(lastInsertRowid),
            attempts,
            nextAttemptAt: delivery.createdAt,
            lastError: null,
            lastStatus: null,
            claimedBy,
            claimedUntil,
          };
        });
      },
    );

    this.#completeTx = db.transaction(
      (id: string, claimer: string): boolean => this.#completeRow(id, claimer).completed,
    );

    // Many completions, one commit: the WAL pages the deletes share are written once.
    this.#completeManyTx = db.transaction((ids: readonly string[], claimer: string): CompletionResult[] =>
      ids.map((id) => this.#completeRow(id, claimer)),
    );

    this.#deadLetterTx = db.transaction(
      (id: string, claimer: string, reason: string, status: number | null, now: number): boolean => {
        const row = this.#getClaimed.get(id, claimer);
        if (!row) return false;
        this.#insertDeadLetter.run({
          id: row.id,
          seq: row.seq,
          tenantId: row.tenant_id,
          gatewayId: row.gateway_id,
          sessionKey: row.session_key,
          kind: row.kind,
          body: row.body,
          endpoint: row.endpoint,
          createdAt: row.created_at,
          attempts: row.attempts,
          reason,
          lastStatus: status,
          deadAt: now,
        });
        return this.#completeRow(id, claimer).completed;
      },
    );

    this.#retryDeadLetterTx = db.transaction((id: string, now: number): boolean => {
      const dead = this.#takeDeadLetter.get(id);
      if (!dead) return false;
      this.#enqueue.get({
        id: dead.id,
        tenantId: dead.tenant_id,
        gatewayId: dead.gateway_id,
        sessionKey: dead.session_key,
        kind: dead.kind,
        body: dead.body,
        endpoint: dead.endpoint,
        createdAt: dead.created_at,
        nextAttemptAt: now,
        attempts: 0,
      });
      return true;
    });

    this.#atomicTx = db.transaction((work: () => void): void => work());

    this.#housekeeping = new SqliteHousekeeping(db);
    this.#repairHeads();
  }

  /** Delete a claimed row and promote the next message of its session; runs inside a transaction. */
  #completeRow(id: string, claimer: string): CompletionResult {
    const removed = this.#complete.get(id, claimer);
    if (!removed) return { completed: false, promoted: false };
    const promoted =
      removed.kind === 'message' && this.#promoteHead.run(removed.tenant_id, removed.session_key).changes > 0;
    return { completed: true, promoted };
  }

  /**
   * Record a delivery's dedupe key (inside the caller's transaction); the first delivery's id when
   * the key is already recorded, so nothing may be queued.
   */
  #firstWithKey(delivery: NewDelivery): string | undefined {
    const dedupe = delivery.dedupe;
    if (!dedupe) return undefined;
    if (this.#insertState.run(dedupe.key, delivery.id, dedupe.until, delivery.createdAt).changes > 0)
      return undefined;
    return this.#getState.get(dedupe.key, delivery.createdAt)?.value ?? delivery.id;
  }

  #enqueueRow(delivery: NewDelivery): DeliveryRecord {
    const first = this.#firstWithKey(delivery);
    if (first !== undefined) return duplicateRecord(delivery, first);
    const row = this.#enqueue.get({
      id: delivery.id,
      tenantId: delivery.tenantId,
      gatewayId: delivery.gatewayId,
      sessionKey: delivery.sessionKey,
      kind: delivery.kind,
      body: delivery.body,
      endpoint: delivery.endpoint,
      createdAt: delivery.createdAt,
      nextAttemptAt: delivery.createdAt,
      attempts: 0,
    });
    if (!row) throw new Error(`delivery ${delivery.id} was not enqueued`);
    return toDelivery(row);
  }

  #dueHeadsSelect(limit: number): Database.Statement<{ now: number }, OutboxRow> {
    let statement = this.#dueHeads.get(limit);
    if (!statement) {
      statement = this.#db.prepare<{ now: number }, OutboxRow>(
        `SELECT o.* FROM outbox o INDEXED BY outbox_heads
         WHERE o.head = 1
           AND o.next_attempt_at <= @now
           AND (o.claimed_by IS NULL OR o.claimed_until < @now)
           AND ${NO_OLDER_MESSAGE}
         ORDER BY o.seq LIMIT ${Math.trunc(limit)}`,
      );
      this.#dueHeads.set(limit, statement);
    }
    return statement;
  }

  /**
   * The due heads under per-tenant limits: each tenant's rows ranked oldest first, a tenant's
   * rank plus what it already has in flight (`busy`, JSON `[[tenant, n], …]`) at most `perTenant`,
   * taken round-robin (every tenant's first, then every tenant's second, …).
   */
  #fairHeadsSelect(): Database.Statement<FairHeadsParams, OutboxRow> {
    this.#fairHeads ??= this.#db.prepare<FairHeadsParams, OutboxRow>(
      `WITH busy (tenant_id, n) AS (
         SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(@busy)),
       ranked AS (
         SELECT o.*, ROW_NUMBER() OVER (PARTITION BY o.tenant_id ORDER BY o.seq) AS fair_rank
         FROM outbox o INDEXED BY outbox_heads
         WHERE o.head = 1
           AND o.next_attempt_at <= @now
           AND (o.claimed_by IS NULL OR o.claimed_until < @now)
           AND ${NO_OLDER_MESSAGE})
       SELECT r.* FROM ranked r LEFT JOIN busy b ON b.tenant_id = r.tenant_id
       WHERE r.fair_rank + COALESCE(b.n, 0) <= @perTenant
       ORDER BY r.fair_rank, r.seq LIMIT @limit`,
    );
    return this.#fairHeads;
  }

  /** Recompute `head` for every outbox row (cheap; run on open so the column can never drift). */
  #repairHeads(): void {
    this.#db.exec(`
      UPDATE outbox AS t SET head = calc.head
      FROM (SELECT o.seq AS seq, ${NO_OLDER_MESSAGE} AS head FROM outbox o) AS calc
      WHERE t.seq = calc.seq AND t.head != calc.head`);
  }

  async ping(): Promise<void> {
    this.#ping.get();
  }

  async close(): Promise<void> {
    // The worker's connection first: the last one to close checkpoints the whole log and removes it.
    await this.#checkpoints?.stop();
    if (this.#db.open) this.#db.close();
  }

  /** The background checkpoints, when this store runs them. */
  get checkpoints(): BackgroundCheckpoints | undefined {
    return this.#checkpoints;
  }

  async createTenant(name: string, now: number): Promise<Tenant> {
    return this.#createTenantTx.immediate(name, now);
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const row = this.#getTenant.get(id);
    return row ? toTenant(row) : null;
  }

  async findTenantByName(name: string): Promise<Tenant | null> {
    const row = this.#findTenantByName.get(name);
    return row ? toTenant(row) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    return this.#listTenants.all().map(toTenant);
  }

  async addTenantToken(tenantId: string, tokenHash: string, now: number): Promise<void> {
    this.#insertTenantToken.run(tokenHash, tenantId, now);
  }

  async findTenantIdByTokenHash(tokenHash: string): Promise<string | null> {
    return this.#findTenantIdByTokenHash.get(tokenHash) ?? null;
  }

  async createEnrollmentToken(
    tokenHash: string,
    tenantId: string,
    expiresAt: number,
    now: number,
  ): Promise<void> {
    this.#insertEnrollment.run(tokenHash, tenantId, expiresAt, now);
  }

  async redeemEnrollmentToken(
    tokenHash: string,
    tenantId: string,
    gatewayId: string,
    now: number,
  ): Promise<EnrollmentTokenRedemption> {
    return this.#redeemTx.immediate(tokenHash, tenantId, gatewayId, now);
  }

  async getGateway(id: string): Promise<GatewayRecord | null> {
    const row = this.#getGateway.get(id);
    return row ? toGateway(row) : null;
  }

  async listGateways(tenantId?: string): Promise<GatewayRecord[]> {
    const rows = tenantId === undefined ? this.#listGateways.all() : this.#listGatewaysOfTenant.all(tenantId);
    return rows.map(toGateway);
  }

  async putGatewaySecret(input: Parameters<RelayStore['putGatewaySecret']>[0]): Promise<GatewayRecord> {
    return this.#putGatewaySecretTx.immediate(input);
  }

  async revokeGateway(id: string, now: number): Promise<GatewayRecord | null> {
    const row = this.#revokeGateway.get(now, id);
    return row ? toGateway(row) : null;
  }

  async listRevokedSince(since: number): Promise<{ id: string; revokedAt: number }[]> {
    return this.#listRevokedSince.all(since);
  }

  async touchGateways(ids: readonly string[], now: number): Promise<void> {
    // One statement is its own transaction; BEGIN and COMMIT around it would only add two.
    if (ids.length === 1) this.#touchGateway.run(now, ids[0] as string);
    else if (ids.length > 1) this.#eachTx.immediate(ids, (id) => this.#touchGateway.run(now, id).changes);
  }

  async updateGatewayDetails(id: string, details: GatewayDetails): Promise<GatewayRecord | null> {
    const sets: string[] = [];
    const values: (string | null)[] = [];
    for (const [column, value] of detailColumns(details)) {
      sets.push(`${column} = ?`);
      values.push(value);
    }
    if (sets.length > 0)
      this.#db.prepare(`UPDATE gateways SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
    return this.getGateway(id);
  }

  async setGatewayIdle(id: string, idleSince: number): Promise<void> {
    this.#setGatewayIdle.run(idleSince, id);
  }

  async clearGatewaysIdle(ids: readonly string[]): Promise<void> {
    if (ids.length === 1) this.#clearGatewayIdle.run(ids[0] as string);
    else if (ids.length > 1) this.#eachTx.immediate(ids, (id) => this.#clearGatewayIdle.run(id).changes);
  }

  async addGatewayIdentity(gatewayId: string, platform: string, botId: string, now: number): Promise<void> {
    this.#upsertIdentity.run(gatewayId, platform, botId, now);
  }

  async listGatewayIdentities(gatewayId: string): Promise<GatewayIdentity[]> {
    return this.#listIdentities.all(gatewayId).map(toGatewayIdentity);
  }

  async listAllGatewayIdentities(tenantId?: string): Promise<GatewayIdentity[]> {
    const rows =
      tenantId === undefined ? this.#listAllIdentities.all() : this.#listIdentitiesOfTenant.all(tenantId);
    return rows.map(toGatewayIdentity);
  }

  async putPolicy(policy: GatewayPolicy): Promise<void> {
    this.#upsertPolicy.run(
      policy.tenantId,
      policy.platform,
      policy.instanceKey,
      policy.requireAddress ? 1 : 0,
      JSON.stringify(policy.freeResponseScopes),
      policy.allowOtherBots ? 1 : 0,
      policy.updatedAt,
    );
  }

  async getPolicy(tenantId: string, platform: string, instanceKey: string): Promise<GatewayPolicy | null> {
    const row = this.#getPolicy.get(tenantId, platform, instanceKey);
    return row ? toPolicy(row) : null;
  }

  async listPolicies(tenantId?: string): Promise<GatewayPolicy[]> {
    const rows = tenantId === undefined ? this.#listPolicies.all() : this.#listPoliciesOfTenant.all(tenantId);
    return rows.map(toPolicy);
  }

  async getPlatformState(key: string, now: number): Promise<string | null> {
    return this.#getState.get(key, now)?.value ?? null;
  }

  async putPlatformState(key: string, value: string, expiresAt: number): Promise<void> {
    this.#putState.run(key, value, expiresAt);
  }

  async putPlatformStates(keys: readonly string[], value: string, expiresAt: number): Promise<void> {
    if (keys.length > 0)
      this.#eachTx.immediate(keys, (key) => this.#putState.run(key, value, expiresAt).changes);
  }

  async deletePlatformStatesHolding(keys: readonly string[], value: string): Promise<number> {
    return this.#eachTx.immediate(keys, (key) => this.#deleteStateHolding.run(key, value).changes);
  }

  async insertPlatformState(key: string, value: string, expiresAt: number, now: number): Promise<boolean> {
    return this.#insertState.run(key, value, expiresAt, now).changes > 0;
  }

  async deletePlatformState(key: string): Promise<void> {
    this.#deleteState.run(key);
  }

  async listPlatformState(prefix: string, now: number): Promise<{ key: string; value: string }[]> {
    const [from, to] = prefixRange(prefix);
    return this.#listState.all(from, to, now);
  }

  async purgePlatformState(now: number): Promise<number> {
    return this.#purgeState.run(now).changes;
  }

  async getDeliveryKeys(tenantId: string): Promise<DeliveryKeys | null> {
    const row = this.#getDeliveryKeys.get(tenantId);
    return row ? toDeliveryKeys(row) : null;
  }

  async getOrCreateDeliveryKey(tenantId: string, candidate: string): Promise<DeliveryKeys> {
    return this.#getOrCreateDeliveryKeyTx.immediate(tenantId, candidate);
  }

  async rotateDeliveryKey(
    tenantId: string,
    next: string,
    now: number,
    rotationWindowMs: number,
  ): Promise<DeliveryKeys> {
    return this.#rotateDeliveryKeyTx.immediate(tenantId, next, now, rotationWindowMs);
  }

  async upsertRoute(route: Omit<RouteRecord, 'createdAt'>, now: number): Promise<RouteUpsert> {
    try {
      return this.#upsertRouteTx.immediate(route, now);
    } finally {
      // This connection's own writes leave data_version alone.
      this.#routes.clear();
    }
  }

  async findRoute(platform: string, routeKey: string): Promise<RouteRecord | null> {
    const version = this.#dataVersion.get();
    if (version !== this.#routesVersion) {
      this.#routes.clear();
      this.#routesVersion = version;
    }
    const key = `${platform}\u0000${routeKey}`;
    const cached = this.#routes.get(key);
    if (cached) return cached.route && { ...cached.route };
    // Two primary-key lookups: cheaper than one `IN (?, '*')` query, which sorts (every ingest and
    // op runs this).
    const row = this.#getRoute.get(platform, routeKey) ?? this.#getRoute.get(platform, '*');
    const route = row ? toRoute(row) : null;
    this.#routes.set(key, { route });
    return route && { ...route };
  }

  async listRoutes(tenantId?: string): Promise<RouteRecord[]> {
    const rows = tenantId === undefined ? this.#listRoutes.all() : this.#listRoutesOfTenant.all(tenantId);
    return rows.map(toRoute);
  }

  async recordChat(chat: ChatRecord): Promise<void> {
    this.#upsertChat.run(chat.tenantId, chat.chatId, chat.platform, chat.routeKey, chat.updatedAt);
  }

  async chatTenants(platform: string, chatId: string): Promise<string[]> {
    return this.#chatTenants.all(platform, chatId);
  }

  async findChat(tenantId: string, chatId: string): Promise<ChatRecord | null> {
    const row = this.#findChat.get(tenantId, chatId);
    return row ? toChat(row) : null;
  }

  async enqueueDelivery(delivery: NewDelivery): Promise<DeliveryRecord> {
    return delivery.dedupe ? this.#enqueueOneTx.immediate(delivery) : this.#enqueueRow(delivery);
  }

  async enqueueDeliveries(
    deliveries: readonly NewDelivery[],
    lease?: EnqueueLease,
  ): Promise<DeliveryRecord[]> {
    if (deliveries.length === 0) return [];
    return this.#enqueueManyTx.immediate(deliveries, lease);
  }

  async claimDueDeliveries(
    claimer: string,
    now: number,
    limit: number,
    leaseMs: number,
    fairness?: ClaimFairness,
  ): Promise<DeliveryRecord[]> {
    const capped = Math.min(Math.floor(limit), MAX_CLAIM);
    if (!(capped > 0)) return [];
    return this.#claimTx.immediate(claimer, now, now + leaseMs, capped, fairness);
  }

  async completeDelivery(id: string, claimer: string): Promise<boolean> {
    return this.#completeTx.immediate(id, claimer);
  }

  async completeDeliveries(ids: readonly string[], claimer: string): Promise<CompletionResult[]> {
    if (ids.length === 0) return [];
    return this.#completeManyTx.immediate(ids, claimer);
  }

  async atomically(work: () => void): Promise<void> {
    // The calls' own transactions nest as savepoints (better-sqlite3), one commit for them all.
    this.#atomicTx.immediate(work);
  }

  async retryDeliveryLater(
    id: string,
    claimer: string,
    nextAttemptAt: number,
    error: string,
    status: number | null,
  ): Promise<boolean> {
    return this.#retryLater.run(nextAttemptAt, error, status, id, claimer).changes === 1;
  }

  async deadLetterDelivery(
    id: string,
    claimer: string,
    reason: string,
    status: number | null,
    now: number,
  ): Promise<boolean> {
    return this.#deadLetterTx.immediate(id, claimer, reason, status, now);
  }

  async releaseClaims(claimer: string, now: number): Promise<number> {
    return this.#releaseClaims.run(now, claimer).changes;
  }

  async listClaimers(): Promise<string[]> {
    return this.#listClaimers.all();
  }

  async nextDueAt(): Promise<number | null> {
    return this.#nextDueAt.get() ?? null;
  }

  async outboxDepth(): Promise<number> {
    return this.#outboxDepth.get() ?? 0;
  }

  async makeSocketDeliveriesDue(tenantId: string, now: number): Promise<number> {
    return this.#makeSocketDeliveriesDue.run({ now, tenantId }).changes;
  }

  async outboxCounts(): Promise<OutboxCount[]> {
    return this.#outboxCounts.all();
  }

  async listDeliveries(limit: number): Promise<DeliveryRecord[]> {
    return this.#listDeliveries.all(Math.max(0, Math.floor(limit))).map(toDelivery);
  }

  async listDeadLetters(limit: number): Promise<DeadLetter[]> {
    return this.#listDeadLetters.all(Math.max(0, Math.floor(limit))).map(toDeadLetter);
  }

  async retryDeadLetter(id: string, now: number): Promise<boolean> {
    return this.#retryDeadLetterTx.immediate(id, now);
  }

  async audit(event: AuditEvent): Promise<void> {
    this.#insertAudit.run(
      event.at,
      event.event,
      event.tenantId ?? null,
      event.gatewayId ?? null,
      event.detail === undefined ? null : JSON.stringify(event.detail),
    );
  }

  async discardDeadLetter(id: string): Promise<DeadLetter | null> {
    const row = this.#takeDeadLetter.get(id);
    return row ? toDeadLetter(row) : null;
  }

  async listAudit(limit: number, filter: { tenantId?: string | undefined } = {}): Promise<AuditEvent[]> {
    const count = Math.max(0, Math.floor(limit));
    const rows =
      filter.tenantId === undefined
        ? this.#listAudit.all(count)
        : this.#listTenantAudit.all(filter.tenantId, count);
    return rows.map(toAudit);
  }

  async appendWebChatMessage(
    entry: WebChatEntry,
    keep: number,
  ): Promise<{ entry: WebChatEntry; inserted: boolean }> {
    return this.#housekeeping.append(entry, keep);
  }

  async getWebChatMessage(chatId: string, id: string): Promise<WebChatEntry | null> {
    return this.#housekeeping.get(chatId, id);
  }

  async listWebChatMessages(chatId: string, limit: number): Promise<WebChatEntry[]> {
    return this.#housekeeping.list(chatId, limit);
  }

  async replaceWebChatMessage(
    chatId: string,
    id: string,
    previousBody: string,
    body: string,
  ): Promise<boolean> {
    return this.#housekeeping.replace(chatId, id, previousBody, body);
  }

  async deleteWebChatMessages(chatId: string, ids: readonly string[]): Promise<number> {
    return this.#housekeeping.delete(chatId, ids);
  }

  async countPrunable(kind: PruneKind, before: number): Promise<number> {
    return this.#housekeeping.countPrunable(kind, before);
  }

  async prune(kind: PruneKind, before: number, limit: number): Promise<number> {
    return this.#housekeeping.prune(kind, before, limit);
  }
}
