/**
 * The scale-out {@link RelayStore}: one Postgres database shared by any number of connector
 * instances (`RELAY_DB=postgres://…`). Semantics mirror the SQLite reference (`sqlite.ts`),
 * including the notes there on secondaries, lease expiry (`claimedUntil + 1` in `nextDueAt`),
 * late completion by the named claimer, and the 1000-row cap on one claim.
 *
 * Concurrency (READ COMMITTED, the Postgres default):
 * - Every change to which message heads a session's queue (enqueueing a message, completing or
 *   dead-lettering a delivery, retrying a dead letter) first takes a transaction-scoped advisory
 *   lock on its (tenant, session key), then works in fresh statements. So, within one session,
 *   seq order is commit order (no message can later appear *before* one already visible) and the
 *   `head` flag is kept exact.
 * - A claim is one statement: pick due rows with `head` set and no older message of their session
 *   still in the outbox, `FOR UPDATE SKIP LOCKED`, and lease them. Two instances never lease the
 *   same row: the row lock serialises them and the loser either skips the locked row or, once the
 *   winner committed, re-checks the lease on the new row version and drops it. A session's second
 *   message is never claimable while the first is in the outbox, in any instance's snapshot: the
 *   first stays in the outbox (claimed or waiting for a retry) until it is completed or
 *   dead-lettered, and once a snapshot shows it gone it is gone for good. Claims themselves take
 *   no advisory lock and never wait.
 * - Enrollment-token redemption is one conditional UPDATE: a concurrent second redemption waits
 *   for the first's row lock, re-checks `used_at IS NULL` on the committed row and reports `used`.
 * - Migrations run under a session-level advisory lock (see `postgres-migrations.ts`).
 *
 * BIGINT columns (Unix ms, seq, counts) are parsed to JS numbers; a value beyond
 * Number.MAX_SAFE_INTEGER is an error rather than a silently rounded number.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PostgresHousekeeping } from './postgres-housekeeping.js';
import { LOCK_NAMESPACE, migratePostgres } from './postgres-migrations.js';
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
import type {
  AuditEvent,
  ChatRecord,
  ClaimFairness,
  CompletionResult,
  DeadLetter,
  DeliveryKeys,
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

export interface PostgresStoreOptions {
  /** Upper bound on pooled connections (default 10). */
  maxConnections?: number;
  /** Reported in `pg_stat_activity` (default `hermes-relay`). */
  applicationName?: string;
  /** How long to wait for a connection, new or pooled (default 10 000 ms). */
  connectionTimeoutMs?: number;
  /** Idle pooled connections are closed after this long (default 30 000 ms). */
  idleTimeoutMs?: number;
  /**
   * Errors of idle pooled connections (server restart, network loss). The pool drops such a
   * connection by itself; without a listener the error would crash the process. Default: ignore.
   */
  onPoolError?: (error: Error) => void;
}

/** BIGINT → number, refusing values a double cannot hold exactly. */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`BIGINT ${text} does not fit a JS number exactly`);
  return value;
}

/** Per-pool type parsers (the global pg.types registry is left alone for other pg users). */
function typeParsers(): pg.CustomTypesConfig {
  const types = new pg.TypeOverrides();
  types.setTypeParser(pg.types.builtins.INT8, parseInt8);
  return types;
}

/** A LIMIT operand: non-negative integer, or null (no limit) for +Infinity. */
const sqlLimit = (limit: number): number | null =>
  limit === Number.POSITIVE_INFINITY ? null : Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : 0;

/** Upper bound on one claim, as in the SQLite store. */
const MAX_CLAIM = 1000;

/** Transaction attempts on deadlock / serialization failure before the error is surfaced. */
const TX_ATTEMPTS = 3;

/**
 * The advisory-lock key of a (tenant, session key), for `pg_advisory_xact_lock(int4, int4)`.
 * chr(31) separates the parts so ('a', 'bc') and ('ab', 'c') differ; a hash collision between two
 * sessions only serialises their writers, it never breaks ordering.
 */
const sessionLockKey = (tenant: string, session: string): string =>
  `${LOCK_NAMESPACE + 1}, hashtext(${tenant} || chr(31) || ${session})`;

/** Whether the outbox row aliased `o` is the oldest unfinished message of its session (or an interrupt). */
const NO_OLDER_MESSAGE = `(o.kind = 'interrupt' OR NOT EXISTS (
  SELECT 1 FROM outbox p
  WHERE p.tenant_id = o.tenant_id AND p.session_key = o.session_key AND p.kind = 'message' AND p.seq < o.seq
))`;

/**
 * After a row `gone` left the outbox: mark the oldest remaining message of its session as head.
 * Runs in the same statement as the DELETE (whose row the snapshot still shows, hence `<>`).
 */
const PROMOTE_NEXT_HEAD = `promoted AS (
  UPDATE outbox n SET head = TRUE
  FROM gone
  WHERE gone.kind = 'message'
    AND NOT n.head
    AND n.seq = (SELECT MIN(p.seq) FROM outbox p
                 WHERE p.tenant_id = gone.tenant_id AND p.session_key = gone.session_key
                   AND p.kind = 'message' AND p.seq <> gone.seq)
  RETURNING n.seq
)`;

const ENQUEUE_COLUMNS = `id, tenant_id, gateway_id, session_key, kind, body, endpoint, created_at, attempts,
  next_attempt_at, head`;

const isRetryableTxError = (err: unknown): boolean => {
  const code = (err as { code?: unknown }).code;
  return code === '40P01' || code === '40001';
};

export class PostgresStore implements RelayStore {
  readonly #pool: pg.Pool;
  #closed = false;
  /** Web-chat history and retention (`postgres-housekeeping.ts`). */
  readonly #housekeeping: PostgresHousekeeping;

  /**
   * Connect to `url`, bring the schema up to date (safe when several instances start at once) and
   * restore any missing outbox head flag. The pool is closed again if any of that fails.
   */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const max = options.maxConnections ?? 10;
    if (!Number.isInteger(max) || max < 1)
      throw new Error(`maxConnections must be a positive integer, got ${max}`);
    const pool = new pg.Pool({
      connectionString: url,
      max,
      application_name: options.applicationName ?? 'hermes-relay',
      connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
      idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
      types: typeParsers(),
    });
    const onPoolError = options.onPoolError ?? (() => undefined);
    pool.on('error', (error) => onPoolError(error));
    try {
      const client = await pool.connect();
      let failure: Error | undefined;
      try {
        await migratePostgres(client);
        await PostgresStore.#repairHeads(client);
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
        throw err;
      } finally {
        // A failed connection is destroyed rather than returned to the pool.
        client.release(failure);
      }
      return new PostgresStore(pool);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Set `head` on every row that should have it but lacks it (a lost promotion must not strand a
   * session). Only ever sets TRUE: a row that is the oldest of its session in any snapshot stays
   * so, whereas clearing a flag could race with a concurrent completion's promotion. A stale TRUE
   * is harmless because the claim re-checks the head-of-line rule.
   */
  static async #repairHeads(client: pg.ClientBase): Promise<void> {
    await client.query(`UPDATE outbox o SET head = TRUE WHERE NOT o.head AND ${NO_OLDER_MESSAGE}`);
  }

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.#housekeeping = new PostgresHousekeeping(pool);
  }

  /** Run `fn` in one transaction on one pooled connection; retried on deadlock/serialization failure. */
  async #tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.#pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        }
        if (attempt < TX_ATTEMPTS && !broken && isRetryableTxError(err)) continue;
        throw err;
      } finally {
        client.release(broken);
      }
    }
  }

  async #rows<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.#pool.query<R>(sql, params)).rows;
  }

  async #row<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R | undefined> {
    return (await this.#pool.query<R>(sql, params)).rows[0];
  }

  async ping(): Promise<void> {
    await this.#pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  // Tenants

  async createTenant(name: string, now: number): Promise<Tenant> {
    for (;;) {
      const id = `t_${randomBytes(8).toString('hex')}`;
      const row = await this.#row<TenantRow>(
        `INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING RETURNING *`,
        [id, name, now],
      );
      if (row) return toTenant(row);
      if (await this.#row('SELECT 1 FROM tenants WHERE name = $1', [name])) {
        throw new Error(`a tenant named "${name}" already exists`);
      }
      // 64 random bits collided with an existing id: practically never; draw again.
    }
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const row = await this.#row<TenantRow>('SELECT * FROM tenants WHERE id = $1', [id]);
    return row ? toTenant(row) : null;
  }

  async findTenantByName(name: string): Promise<Tenant | null> {
    const row = await this.#row<TenantRow>('SELECT * FROM tenants WHERE name = $1', [name]);
    return row ? toTenant(row) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    return (await this.#rows<TenantRow>('SELECT * FROM tenants ORDER BY created_at, id')).map(toTenant);
  }

  async addTenantToken(tenantId: string, tokenHash: string, now: number): Promise<void> {
    await this.#pool.query(
      'INSERT INTO tenant_tokens (token_hash, tenant_id, created_at) VALUES ($1, $2, $3)',
      [tokenHash, tenantId, now],
    );
  }

  async findTenantIdByTokenHash(tokenHash: string): Promise<string | null> {
    const row = await this.#row<{ tenant_id: string }>(
      'SELECT tenant_id FROM tenant_tokens WHERE token_hash = $1',
      [tokenHash],
    );
    return row?.tenant_id ?? null;
  }

  // Enrollment tokens

  async createEnrollmentToken(
    tokenHash: string,
    tenantId: string,
    expiresAt: number,
    now: number,
  ): Promise<void> {
    await this.#pool.query(
      'INSERT INTO enrollment_tokens (token_hash, tenant_id, expires_at, created_at) VALUES ($1, $2, $3, $4)',
      [tokenHash, tenantId, expiresAt, now],
    );
  }

  async redeemEnrollmentToken(
    tokenHash: string,
    tenantId: string,
    gatewayId: string,
    now: number,
  ): Promise<EnrollmentTokenRedemption> {
    // One conditional UPDATE: under concurrency exactly one caller sees its row come back.
    const redeemed = await this.#row(
      `UPDATE enrollment_tokens SET used_at = $4, used_by = $3
       WHERE token_hash = $1 AND used_at IS NULL AND expires_at >= $4 AND tenant_id = $2
       RETURNING token_hash`,
      [tokenHash, tenantId, gatewayId, now],
    );
    if (redeemed) return { ok: true, tenantId };
    // Refused: tell why, in the reference's order (unknown, used, expired, wrong tenant).
    const token = await this.#row<EnrollmentRow>(
      'SELECT tenant_id, expires_at, used_at FROM enrollment_tokens WHERE token_hash = $1',
      [tokenHash],
    );
    if (!token) return { ok: false, reason: 'unknown' };
    if (token.used_at !== null) return { ok: false, reason: 'used' };
    if (now > token.expires_at) return { ok: false, reason: 'expired' };
    if (token.tenant_id !== tenantId) return { ok: false, reason: 'wrong_tenant' };
    // Unreachable unless the row changed between the two statements; treat it as taken.
    return { ok: false, reason: 'used' };
  }

  // Gateways

  async getGateway(id: string): Promise<GatewayRecord | null> {
    const row = await this.#row<GatewayRow>('SELECT * FROM gateways WHERE id = $1', [id]);
    return row ? toGateway(row) : null;
  }

  async listGateways(tenantId?: string): Promise<GatewayRecord[]> {
    const rows =
      tenantId === undefined
        ? await this.#rows<GatewayRow>('SELECT * FROM gateways ORDER BY created_at, id')
        : await this.#rows<GatewayRow>(
            'SELECT * FROM gateways WHERE tenant_id = $1 ORDER BY created_at, id',
            [tenantId],
          );
    return rows.map(toGateway);
  }

  async putGatewaySecret(input: Parameters<RelayStore['putGatewaySecret']>[0]): Promise<GatewayRecord> {
    return this.#tx(async (client) => {
      const inserted = await client.query<GatewayRow>(
        `INSERT INTO gateways (id, tenant_id, secret, platform, bot_id, endpoint, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING *`,
        [
          input.id,
          input.tenantId,
          input.secret,
          input.platform,
          input.botId,
          input.endpoint ?? '',
          input.now,
        ],
      );
      const created = inserted.rows[0];
      await client.query(
        `INSERT INTO gateway_identities (gateway_id, platform, bot_id, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (gateway_id, platform) DO UPDATE SET bot_id = EXCLUDED.bot_id`,
        [input.id, input.platform, input.botId, input.now],
      );
      if (created) return toGateway(created);
      const existing = await client.query<{ tenant_id: string }>(
        'SELECT tenant_id FROM gateways WHERE id = $1 FOR UPDATE',
        [input.id],
      );
      const owner = existing.rows[0];
      if (!owner) throw new Error(`gateway ${input.id} vanished during rotation`);
      if (owner.tenant_id !== input.tenantId)
        throw new Error(`gateway ${input.id} belongs to another tenant`);
      const rotated = await client.query<GatewayRow>(
        `UPDATE gateways SET
           secondary_secret = secret,
           secondary_expires_at = $3,
           secret = $2,
           platform = $4,
           bot_id = $5,
           endpoint = COALESCE($6::text, endpoint)
         WHERE id = $1 RETURNING *`,
        [
          input.id,
          input.secret,
          input.now + input.rotationWindowMs,
          input.platform,
          input.botId,
          input.endpoint ?? null,
        ],
      );
      const row = rotated.rows[0];
      if (!row) throw new Error(`gateway ${input.id} vanished during rotation`);
      return toGateway(row);
    });
  }

  async revokeGateway(id: string, now: number): Promise<GatewayRecord | null> {
    const row = await this.#row<GatewayRow>(
      'UPDATE gateways SET revoked = TRUE, revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING *',
      [now, id],
    );
    return row ? toGateway(row) : null;
  }

  async listRevokedSince(since: number): Promise<{ id: string; revokedAt: number }[]> {
    return this.#rows<{ id: string; revokedAt: number }>(
      'SELECT id, revoked_at AS "revokedAt" FROM gateways WHERE revoked_at >= $1 ORDER BY revoked_at, id',
      [since],
    );
  }

  async touchGateways(ids: readonly string[], now: number): Promise<void> {
    if (ids.length === 0) return;
    // Rows locked in id order, as `clearGatewaysIdle` does: two such updates of the same gateways
    // running at once (one turn's upgrades and hellos) then wait for each other, never deadlock.
    await this.#pool.query(
      `UPDATE gateways SET last_seen_at = $1
       WHERE id IN (SELECT id FROM gateways WHERE id = ANY($2::text[]) ORDER BY id FOR UPDATE)`,
      [now, ids],
    );
  }

  async updateGatewayDetails(id: string, details: GatewayDetails): Promise<GatewayRecord | null> {
    const columns = detailColumns(details);
    if (columns.length === 0) return this.getGateway(id);
    const sets = columns.map(([column], i) => `${column} = $${i + 2}`);
    const row = await this.#row<GatewayRow>(
      `UPDATE gateways SET ${sets.join(', ')} WHERE id = $1 RETURNING *`,
      [id, ...columns.map(([, value]) => value)],
    );
    return row ? toGateway(row) : null;
  }

  async setGatewayIdle(id: string, idleSince: number): Promise<void> {
    await this.#pool.query('UPDATE gateways SET idle_since = $1 WHERE id = $2', [idleSince, id]);
  }

  async clearGatewaysIdle(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    // A mark that is not there (nearly every first hello) locks and rewrites no row; rows locked
    // in id order (see `touchGateways`).
    await this.#pool.query(
      `UPDATE gateways SET idle_since = NULL
       WHERE id IN (SELECT id FROM gateways WHERE id = ANY($1::text[]) AND idle_since IS NOT NULL
                    ORDER BY id FOR UPDATE)`,
      [ids],
    );
  }

  async addGatewayIdentity(gatewayId: string, platform: string, botId: string, now: number): Promise<void> {
    await this.#pool.query(
      `INSERT INTO gateway_identities (gateway_id, platform, bot_id, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (gateway_id, platform) DO UPDATE SET bot_id = EXCLUDED.bot_id`,
      [gatewayId, platform, botId, now],
    );
  }

  async listGatewayIdentities(gatewayId: string): Promise<GatewayIdentity[]> {
    const rows = await this.#rows<GatewayIdentityRow>(
      'SELECT * FROM gateway_identities WHERE gateway_id = $1 ORDER BY created_at, platform',
      [gatewayId],
    );
    return rows.map(toGatewayIdentity);
  }

  async listAllGatewayIdentities(tenantId?: string): Promise<GatewayIdentity[]> {
    const rows =
      tenantId === undefined
        ? await this.#rows<GatewayIdentityRow>(
            'SELECT * FROM gateway_identities ORDER BY gateway_id, created_at, platform',
          )
        : await this.#rows<GatewayIdentityRow>(
            `SELECT i.* FROM gateway_identities i JOIN gateways g ON g.id = i.gateway_id
             WHERE g.tenant_id = $1 ORDER BY i.gateway_id, i.created_at, i.platform`,
            [tenantId],
          );
    return rows.map(toGatewayIdentity);
  }

  async getPlatformState(key: string, now: number): Promise<string | null> {
    const { rows } = await this.#pool.query<{ value: string }>(
      'SELECT value FROM platform_state WHERE key = $1 AND expires_at > $2',
      [key, now],
    );
    return rows[0]?.value ?? null;
  }

  async putPlatformState(key: string, value: string, expiresAt: number): Promise<void> {
    await this.#pool.query(
      `INSERT INTO platform_state (key, value, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`,
      [key, value, expiresAt],
    );
  }

  async putPlatformStates(keys: readonly string[], value: string, expiresAt: number): Promise<void> {
    if (keys.length === 0) return;
    // DISTINCT: one INSERT … ON CONFLICT may not touch the same row twice.
    await this.#pool.query(
      `INSERT INTO platform_state (key, value, expires_at)
       SELECT DISTINCT key, $2::text, $3::bigint FROM unnest($1::text[]) AS key
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`,
      [keys, value, expiresAt],
    );
  }

  async deletePlatformStatesHolding(keys: readonly string[], value: string): Promise<number> {
    if (keys.length === 0) return 0;
    const result = await this.#pool.query(
      'DELETE FROM platform_state WHERE key = ANY($1::text[]) AND value = $2',
      [keys, value],
    );
    return result.rowCount ?? 0;
  }

  async insertPlatformState(key: string, value: string, expiresAt: number, now: number): Promise<boolean> {
    const result = await this.#pool.query(
      `INSERT INTO platform_state (key, value, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
       WHERE platform_state.expires_at <= $4`,
      [key, value, expiresAt, now],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async deletePlatformState(key: string): Promise<void> {
    await this.#pool.query('DELETE FROM platform_state WHERE key = $1', [key]);
  }

  async listPlatformState(prefix: string, now: number): Promise<{ key: string; value: string }[]> {
    const [from, to] = prefixRange(prefix);
    // key is COLLATE "C": the range is byte order and walks the primary key.
    const { rows } = await this.#pool.query<{ key: string; value: string }>(
      'SELECT key, value FROM platform_state WHERE key >= $1 AND key < $2 AND expires_at > $3 ORDER BY key',
      [from, to, now],
    );
    return rows;
  }

  async purgePlatformState(now: number): Promise<number> {
    const result = await this.#pool.query('DELETE FROM platform_state WHERE expires_at <= $1', [now]);
    return result.rowCount ?? 0;
  }

  async putPolicy(policy: GatewayPolicy): Promise<void> {
    await this.#pool.query(
      `INSERT INTO gateway_policies
         (tenant_id, platform, instance_key, require_address, free_response_scopes, allow_other_bots, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (tenant_id, platform, instance_key) DO UPDATE SET
         require_address = EXCLUDED.require_address,
         free_response_scopes = EXCLUDED.free_response_scopes,
         allow_other_bots = EXCLUDED.allow_other_bots,
         updated_at = EXCLUDED.updated_at`,
      [
        policy.tenantId,
        policy.platform,
        policy.instanceKey,
        policy.requireAddress,
        JSON.stringify(policy.freeResponseScopes),
        policy.allowOtherBots,
        policy.updatedAt,
      ],
    );
  }

  async getPolicy(tenantId: string, platform: string, instanceKey: string): Promise<GatewayPolicy | null> {
    const row = await this.#row<PolicyRow>(
      'SELECT * FROM gateway_policies WHERE tenant_id = $1 AND platform = $2 AND instance_key = $3',
      [tenantId, platform, instanceKey],
    );
    return row ? toPolicy(row) : null;
  }

  async listPolicies(tenantId?: string): Promise<GatewayPolicy[]> {
    const rows =
      tenantId === undefined
        ? await this.#rows<PolicyRow>(
            'SELECT * FROM gateway_policies ORDER BY tenant_id, platform, instance_key',
          )
        : await this.#rows<PolicyRow>(
            'SELECT * FROM gateway_policies WHERE tenant_id = $1 ORDER BY platform, instance_key',
            [tenantId],
          );
    return rows.map(toPolicy);
  }

  // Delivery keys

  async getDeliveryKeys(tenantId: string): Promise<DeliveryKeys | null> {
    const row = await this.#row<DeliveryKeysRow>('SELECT * FROM delivery_keys WHERE tenant_id = $1', [
      tenantId,
    ]);
    return row ? toDeliveryKeys(row) : null;
  }

  async getOrCreateDeliveryKey(tenantId: string, candidate: string): Promise<DeliveryKeys> {
    const inserted = await this.#row<DeliveryKeysRow>(
      `INSERT INTO delivery_keys (tenant_id, primary_key) VALUES ($1, $2)
       ON CONFLICT (tenant_id) DO NOTHING RETURNING *`,
      [tenantId, candidate],
    );
    if (inserted) return toDeliveryKeys(inserted);
    // Keys are never deleted, so the conflicting row is there to read.
    const row = await this.#row<DeliveryKeysRow>('SELECT * FROM delivery_keys WHERE tenant_id = $1', [
      tenantId,
    ]);
    if (!row) throw new Error(`delivery key for ${tenantId} was not stored`);
    return toDeliveryKeys(row);
  }

  async rotateDeliveryKey(
    tenantId: string,
    next: string,
    now: number,
    rotationWindowMs: number,
  ): Promise<DeliveryKeys> {
    // One statement: rotate the existing key, or (no key yet) store the new one as primary.
    const row = await this.#row<DeliveryKeysRow>(
      `INSERT INTO delivery_keys (tenant_id, primary_key) VALUES ($1, $2)
       ON CONFLICT (tenant_id) DO UPDATE SET
         secondary_key = delivery_keys.primary_key,
         secondary_expires_at = $3,
         primary_key = EXCLUDED.primary_key
       RETURNING *`,
      [tenantId, next, now + rotationWindowMs],
    );
    if (!row) throw new Error(`delivery key for ${tenantId} was not stored`);
    return toDeliveryKeys(row);
  }

  // Routes and chats

  async upsertRoute(route: Omit<RouteRecord, 'createdAt'>, now: number): Promise<RouteUpsert> {
    // One statement: insert, or update in place only if the same tenant owns the route.
    const row = await this.#row<RouteRow>(
      `INSERT INTO routes (platform, route_key, tenant_id, endpoint, gateway_id, created_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (platform, route_key) DO UPDATE SET endpoint = EXCLUDED.endpoint, gateway_id = EXCLUDED.gateway_id
       WHERE routes.tenant_id = EXCLUDED.tenant_id
       RETURNING *`,
      [route.platform, route.routeKey, route.tenantId, route.endpoint, route.gatewayId, now],
    );
    if (!row) return { ok: false, reason: 'owned_by_other_tenant', routeKey: route.routeKey };
    return { ok: true, route: toRoute(row) };
  }

  async findRoute(platform: string, routeKey: string): Promise<RouteRecord | null> {
    const row = await this.#row<RouteRow>(
      `SELECT * FROM routes WHERE platform = $1 AND route_key IN ($2, '*')
       ORDER BY route_key = '*' LIMIT 1`,
      [platform, routeKey],
    );
    return row ? toRoute(row) : null;
  }

  async listRoutes(tenantId?: string): Promise<RouteRecord[]> {
    const rows =
      tenantId === undefined
        ? await this.#rows<RouteRow>('SELECT * FROM routes ORDER BY platform, route_key')
        : await this.#rows<RouteRow>(
            'SELECT * FROM routes WHERE tenant_id = $1 ORDER BY platform, route_key',
            [tenantId],
          );
    return rows.map(toRoute);
  }

  async recordChat(chat: ChatRecord): Promise<void> {
    await this.#pool.query(
      `INSERT INTO chats (tenant_id, chat_id, platform, route_key, updated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant_id, chat_id) DO UPDATE SET
         platform = EXCLUDED.platform, route_key = EXCLUDED.route_key, updated_at = EXCLUDED.updated_at`,
      [chat.tenantId, chat.chatId, chat.platform, chat.routeKey, chat.updatedAt],
    );
  }

  async chatTenants(platform: string, chatId: string): Promise<string[]> {
    const { rows } = await this.#pool.query<{ tenant_id: string }>(
      'SELECT tenant_id FROM chats WHERE platform = $1 AND chat_id = $2 ORDER BY tenant_id',
      [platform, chatId],
    );
    return rows.map((row) => row.tenant_id);
  }

  async findChat(tenantId: string, chatId: string): Promise<ChatRecord | null> {
    const row = await this.#row<ChatRow>('SELECT * FROM chats WHERE tenant_id = $1 AND chat_id = $2', [
      tenantId,
      chatId,
    ]);
    return row ? toChat(row) : null;
  }

  // Outbox

  /**
   * Record a delivery's dedupe key within the transaction of `client`; the first delivery's id when
   * the key is already recorded (unexpired), so nothing may be queued.
   */
  async #firstWithKey(client: pg.PoolClient, delivery: NewDelivery): Promise<string | undefined> {
    const dedupe = delivery.dedupe;
    if (!dedupe) return undefined;
    const inserted = await client.query(
      `INSERT INTO platform_state (key, value, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
       WHERE platform_state.expires_at <= $4`,
      [dedupe.key, delivery.id, dedupe.until, delivery.createdAt],
    );
    if ((inserted.rowCount ?? 0) > 0) return undefined;
    const { rows } = await client.query<{ value: string }>(
      'SELECT value FROM platform_state WHERE key = $1',
      [dedupe.key],
    );
    return rows[0]?.value ?? delivery.id;
  }

  async enqueueDelivery(delivery: NewDelivery): Promise<DeliveryRecord> {
    const params = [
      delivery.id,
      delivery.tenantId,
      delivery.gatewayId,
      delivery.sessionKey,
      delivery.kind,
      delivery.body,
      delivery.endpoint,
      delivery.createdAt,
    ];
    if (delivery.kind === 'interrupt') {
      // Interrupts are always eligible and never reorder a session: no lock needed.
      const row = await this.#row<OutboxRow>(
        `INSERT INTO outbox (${ENQUEUE_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $8, TRUE) RETURNING *`,
        params,
      );
      if (!row) throw new Error(`delivery ${delivery.id} was not enqueued`);
      return toDelivery(row);
    }
    return this.#tx(async (client) => {
      // Serialise with the session's other writers, then look at the session afresh.
      await client.query(`SELECT pg_advisory_xact_lock(${sessionLockKey('$1::text', '$2::text')})`, [
        delivery.tenantId,
        delivery.sessionKey,
      ]);
      const first = await this.#firstWithKey(client, delivery);
      if (first !== undefined) return duplicateRecord(delivery, first);
      const { rows } = await client.query<OutboxRow>(
        `INSERT INTO outbox (${ENQUEUE_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $8,
                 NOT EXISTS (SELECT 1 FROM outbox
                             WHERE tenant_id = $2 AND session_key = $4 AND kind = 'message'))
         RETURNING *`,
        params,
      );
      const row = rows[0];
      if (!row) throw new Error(`delivery ${delivery.id} was not enqueued`);
      return toDelivery(row);
    });
  }

  async enqueueDeliveries(
    deliveries: readonly NewDelivery[],
    lease?: EnqueueLease,
  ): Promise<DeliveryRecord[]> {
    if (deliveries.length === 0) return [];
    return this.#tx(async (client) => {
      // Every session's lock first, in one sorted pass (two batches never wait on each other in a
      // cycle), then the rows in the order given, each looking at its session afresh.
      const messages = deliveries.filter((delivery) => delivery.kind === 'message');
      if (messages.length > 0) {
        await client.query(
          `SELECT pg_advisory_xact_lock(${sessionLockKey('s.tenant_id', 's.session_key')})
           FROM (SELECT DISTINCT x.tenant_id, x.session_key,
                        hashtext(x.tenant_id || chr(31) || x.session_key) AS k
                 FROM unnest($1::text[], $2::text[]) AS x(tenant_id, session_key)
                 ORDER BY k) s`,
          [messages.map((d) => d.tenantId), messages.map((d) => d.sessionKey)],
        );
      }
      const records: DeliveryRecord[] = [];
      let leases = lease ? Math.max(0, Math.floor(lease.limit)) : 0;
      // Per-tenant fairness: what each limited tenant may still lease in this batch.
      const tenantLeases = new Map(lease?.tenantLimits);
      for (const delivery of deliveries) {
        const first = await this.#firstWithKey(client, delivery);
        if (first !== undefined) {
          records.push(duplicateRecord(delivery, first));
          continue;
        }
        // $9: this row may be leased if it is eligible (head); the session lock keeps that exact.
        const tenantLeft = tenantLeases.get(delivery.tenantId);
        const mayLease =
          lease !== undefined &&
          leases > 0 &&
          (tenantLeft === undefined || tenantLeft > 0) &&
          delivery.createdAt <= lease.now;
        const { rows } = await client.query<OutboxRow>(
          `INSERT INTO outbox (${ENQUEUE_COLUMNS}, claimed_by, claimed_until)
           SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::bigint,
                  CASE WHEN e.lease THEN 1 ELSE 0 END, $8::bigint, e.head,
                  CASE WHEN e.lease THEN $10::text END, CASE WHEN e.lease THEN $11::bigint END
           FROM (SELECT h.head, h.head AND $9::boolean AS lease
                 FROM (SELECT $5::text = 'interrupt' OR NOT EXISTS (
                         SELECT 1 FROM outbox
                         WHERE tenant_id = $2::text AND session_key = $4::text AND kind = 'message') AS head) h) e
           RETURNING *`,
          [
            delivery.id,
            delivery.tenantId,
            delivery.gatewayId,
            delivery.sessionKey,
            delivery.kind,
            delivery.body,
            delivery.endpoint,
            delivery.createdAt,
            mayLease,
            lease?.claimer ?? null,
            lease ? lease.now + lease.leaseMs : null,
          ],
        );
        const row = rows[0];
        if (!row) throw new Error(`delivery ${delivery.id} was not enqueued`);
        if (row.claimed_by !== null) {
          leases--;
          if (tenantLeft !== undefined) tenantLeases.set(delivery.tenantId, tenantLeft - 1);
        }
        records.push(toDelivery(row));
      }
      return records;
    });
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
    if (fairness) {
      // Round-robin by tenant under per-tenant limits (see ClaimFairness): the ranking runs on the
      // snapshot (a window function cannot sit beside FOR UPDATE), then the rows are locked and
      // every condition re-checked on them as in the plain claim below. A row another claimer
      // holds is skipped, so a claim may return fewer rows; the limits only ever shrink.
      const busy = [...fairness.inflight];
      const rows = await this.#rows<OutboxRow>(
        `WITH busy AS (
           SELECT * FROM unnest($5::text[], $6::int[]) AS b(tenant_id, n)
         ), ranked AS (
           SELECT o.seq, o.tenant_id,
                  ROW_NUMBER() OVER (PARTITION BY o.tenant_id ORDER BY o.seq) AS fair_rank
           FROM outbox o
           WHERE o.head
             AND o.next_attempt_at <= $1
             AND (o.claimed_by IS NULL OR o.claimed_until < $1)
             AND ${NO_OLDER_MESSAGE}
         ), allowed AS (
           SELECT r.seq, r.fair_rank FROM ranked r LEFT JOIN busy b ON b.tenant_id = r.tenant_id
           WHERE r.fair_rank + COALESCE(b.n, 0) <= $7
         ), picked AS MATERIALIZED (
           SELECT o.seq FROM outbox o JOIN allowed a ON a.seq = o.seq
           WHERE o.head
             AND o.next_attempt_at <= $1
             AND (o.claimed_by IS NULL OR o.claimed_until < $1)
             AND ${NO_OLDER_MESSAGE}
           ORDER BY a.fair_rank, o.seq
           LIMIT $4
           FOR UPDATE OF o SKIP LOCKED
         )
         UPDATE outbox o SET claimed_by = $2, claimed_until = $3, attempts = o.attempts + 1
         FROM picked WHERE o.seq = picked.seq
         RETURNING o.*`,
        [
          now,
          claimer,
          now + leaseMs,
          capped,
          busy.map(([tenant]) => tenant),
          busy.map(([, n]) => Math.floor(n)),
          Math.floor(fairness.perTenant),
        ],
      );
      const rank = new Map<string, number>();
      return rows
        .sort((a, b) => a.seq - b.seq)
        .map((row) => {
          // Round-robin order back: each tenant's n-th row after every tenant's (n-1)-th.
          const n = (rank.get(row.tenant_id) ?? 0) + 1;
          rank.set(row.tenant_id, n);
          return { row, n };
        })
        .sort((a, b) => a.n - b.n || a.row.seq - b.row.seq)
        .map(({ row }) => toDelivery(row));
    }
    const rows = await this.#rows<OutboxRow>(
      `WITH picked AS MATERIALIZED (
         SELECT o.seq FROM outbox o
         WHERE o.head
           AND o.next_attempt_at <= $1
           AND (o.claimed_by IS NULL OR o.claimed_until < $1)
           AND ${NO_OLDER_MESSAGE}
         ORDER BY o.seq
         LIMIT $4
         FOR UPDATE OF o SKIP LOCKED
       )
       UPDATE outbox o SET claimed_by = $2, claimed_until = $3, attempts = o.attempts + 1
       FROM picked WHERE o.seq = picked.seq
       RETURNING o.*`,
      [now, claimer, now + leaseMs, capped],
    );
    return rows.sort((a, b) => a.seq - b.seq).map(toDelivery);
  }

  /** Lock the session of outbox row `id` if `claimer` holds it; false if it does not. */
  async #lockClaimedSession(client: pg.PoolClient, id: string, claimer: string): Promise<boolean> {
    const { rows } = await client.query(
      `SELECT pg_advisory_xact_lock(${sessionLockKey('o.tenant_id', 'o.session_key')})
       FROM outbox o WHERE o.id = $1 AND o.claimed_by = $2`,
      [id, claimer],
    );
    return rows.length > 0;
  }

  async completeDelivery(id: string, claimer: string): Promise<boolean> {
    return this.#tx(async (client) => {
      if (!(await this.#lockClaimedSession(client, id, claimer))) return false;
      const { rows } = await client.query(
        `WITH gone AS (
           DELETE FROM outbox WHERE id = $1 AND claimed_by = $2 RETURNING seq, tenant_id, session_key, kind
         ), ${PROMOTE_NEXT_HEAD}
         SELECT seq FROM gone`,
        [id, claimer],
      );
      return rows.length === 1;
    });
  }

  async completeDeliveries(ids: readonly string[], claimer: string): Promise<CompletionResult[]> {
    if (ids.length === 0) return [];
    return this.#tx(async (client) => {
      // Lock the sessions of the rows this claimer holds, in one sorted pass, then complete each
      // row in its own statement so every promotion sees the deletions before it.
      await client.query(
        `SELECT pg_advisory_xact_lock(${sessionLockKey('s.tenant_id', 's.session_key')})
         FROM (SELECT DISTINCT o.tenant_id, o.session_key,
                      hashtext(o.tenant_id || chr(31) || o.session_key) AS k
               FROM outbox o WHERE o.id = ANY($1::text[]) AND o.claimed_by = $2
               ORDER BY k) s`,
        [ids, claimer],
      );
      const results: CompletionResult[] = [];
      for (const id of ids) {
        const { rows } = await client.query<{ completed: boolean; promoted: boolean }>(
          `WITH gone AS (
             DELETE FROM outbox WHERE id = $1 AND claimed_by = $2 RETURNING seq, tenant_id, session_key, kind
           ), ${PROMOTE_NEXT_HEAD}
           SELECT EXISTS (SELECT 1 FROM gone) AS completed, EXISTS (SELECT 1 FROM promoted) AS promoted`,
          [id, claimer],
        );
        results.push({ completed: rows[0]?.completed === true, promoted: rows[0]?.promoted === true });
      }
      return results;
    });
  }

  async retryDeliveryLater(
    id: string,
    claimer: string,
    nextAttemptAt: number,
    error: string,
    status: number | null,
  ): Promise<boolean> {
    const result = await this.#pool.query(
      `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, next_attempt_at = $1, last_error = $2,
                         last_status = $3
       WHERE id = $4 AND claimed_by = $5`,
      [nextAttemptAt, error, status, id, claimer],
    );
    return result.rowCount === 1;
  }

  async deadLetterDelivery(
    id: string,
    claimer: string,
    reason: string,
    status: number | null,
    now: number,
  ): Promise<boolean> {
    return this.#tx(async (client) => {
      if (!(await this.#lockClaimedSession(client, id, claimer))) return false;
      const { rows } = await client.query(
        `WITH gone AS (
           DELETE FROM outbox WHERE id = $1 AND claimed_by = $2 RETURNING *
         ), dead AS (
           INSERT INTO dead_letters (id, seq, tenant_id, gateway_id, session_key, kind, body, endpoint,
                                     created_at, attempts, reason, last_status, dead_at)
           SELECT id, seq, tenant_id, gateway_id, session_key, kind, body, endpoint, created_at, attempts,
                  $3::text, $4::integer, $5::bigint
           FROM gone
           ON CONFLICT (id) DO UPDATE SET
             seq = EXCLUDED.seq, tenant_id = EXCLUDED.tenant_id, gateway_id = EXCLUDED.gateway_id,
             session_key = EXCLUDED.session_key, kind = EXCLUDED.kind, body = EXCLUDED.body,
             endpoint = EXCLUDED.endpoint, created_at = EXCLUDED.created_at, attempts = EXCLUDED.attempts,
             reason = EXCLUDED.reason, last_status = EXCLUDED.last_status, dead_at = EXCLUDED.dead_at
           RETURNING id
         ), ${PROMOTE_NEXT_HEAD}
         SELECT seq FROM gone`,
        [id, claimer, reason, status, now],
      );
      return rows.length === 1;
    });
  }

  async releaseClaims(claimer: string, now: number): Promise<number> {
    const result = await this.#pool.query(
      `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, next_attempt_at = LEAST(next_attempt_at, $1)
       WHERE claimed_by = $2`,
      [now, claimer],
    );
    return result.rowCount ?? 0;
  }

  async listClaimers(): Promise<string[]> {
    const result = await this.#pool.query<{ claimed_by: string }>(
      'SELECT DISTINCT claimed_by FROM outbox WHERE claimed_by IS NOT NULL',
    );
    return result.rows.map((row) => row.claimed_by);
  }

  async nextDueAt(): Promise<number | null> {
    const row = await this.#row<{ due: number | null }>(
      `SELECT MIN(CASE WHEN o.claimed_by IS NULL THEN o.next_attempt_at
                       ELSE GREATEST(o.next_attempt_at, o.claimed_until + 1) END) AS due
       FROM outbox o WHERE o.head AND ${NO_OLDER_MESSAGE}`,
    );
    return row?.due ?? null;
  }

  async outboxDepth(): Promise<number> {
    const row = await this.#row<{ depth: number }>('SELECT COUNT(*) AS depth FROM outbox');
    return row?.depth ?? 0;
  }

  async makeSocketDeliveriesDue(tenantId: string, now: number): Promise<number> {
    const result = await this.#pool.query(
      `UPDATE outbox SET next_attempt_at = $1
       WHERE tenant_id = $2 AND endpoint = '' AND next_attempt_at > $1
         AND (claimed_by IS NULL OR claimed_until < $1)`,
      [now, tenantId],
    );
    return result.rowCount ?? 0;
  }

  async outboxCounts(): Promise<OutboxCount[]> {
    return this.#rows<OutboxCount>(
      `SELECT tenant_id AS "tenantId", gateway_id AS "gatewayId", COUNT(*) AS count
       FROM outbox GROUP BY tenant_id, gateway_id ORDER BY tenant_id, gateway_id NULLS FIRST`,
    );
  }

  async listDeliveries(limit: number): Promise<DeliveryRecord[]> {
    return (
      await this.#rows<OutboxRow>('SELECT * FROM outbox ORDER BY seq DESC LIMIT $1', [sqlLimit(limit)])
    ).map(toDelivery);
  }

  async listDeadLetters(limit: number): Promise<DeadLetter[]> {
    const rows = await this.#rows<DeadLetterRow>(
      'SELECT * FROM dead_letters ORDER BY dead_at DESC, seq DESC LIMIT $1',
      [sqlLimit(limit)],
    );
    return rows.map(toDeadLetter);
  }

  async retryDeadLetter(id: string, now: number): Promise<boolean> {
    return this.#tx(async (client) => {
      const found = await client.query(
        `SELECT pg_advisory_xact_lock(${sessionLockKey('d.tenant_id', 'd.session_key')})
         FROM dead_letters d WHERE d.id = $1`,
        [id],
      );
      if (found.rows.length === 0) return false;
      // Back of the queue: a new seq, due now, a fresh attempt count.
      const { rows } = await client.query(
        `WITH dead AS (DELETE FROM dead_letters WHERE id = $1 RETURNING *)
         INSERT INTO outbox (${ENQUEUE_COLUMNS})
         SELECT d.id, d.tenant_id, d.gateway_id, d.session_key, d.kind, d.body, d.endpoint, d.created_at, 0, $2::bigint,
                d.kind = 'interrupt' OR NOT EXISTS (
                  SELECT 1 FROM outbox p
                  WHERE p.tenant_id = d.tenant_id AND p.session_key = d.session_key AND p.kind = 'message')
         FROM dead d
         RETURNING seq`,
        [id, now],
      );
      return rows.length === 1;
    });
  }

  // Audit

  async audit(event: AuditEvent): Promise<void> {
    await this.#pool.query(
      'INSERT INTO audit (at, event, tenant_id, gateway_id, detail) VALUES ($1, $2, $3, $4, $5)',
      [
        event.at,
        event.event,
        event.tenantId ?? null,
        event.gatewayId ?? null,
        event.detail === undefined ? null : JSON.stringify(event.detail),
      ],
    );
  }

  async discardDeadLetter(id: string): Promise<DeadLetter | null> {
    const rows = await this.#rows<DeadLetterRow>('DELETE FROM dead_letters WHERE id = $1 RETURNING *', [id]);
    const [row] = rows;
    return row ? toDeadLetter(row) : null;
  }

  async listAudit(limit: number, filter: { tenantId?: string | undefined } = {}): Promise<AuditEvent[]> {
    const rows =
      filter.tenantId === undefined
        ? await this.#rows<AuditRow>(
            'SELECT at, event, tenant_id, gateway_id, detail FROM audit ORDER BY at DESC, id DESC LIMIT $1',
            [sqlLimit(limit)],
          )
        : await this.#rows<AuditRow>(
            `SELECT at, event, tenant_id, gateway_id, detail FROM audit WHERE tenant_id = $1
             ORDER BY at DESC, id DESC LIMIT $2`,
            [filter.tenantId, sqlLimit(limit)],
          );
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
