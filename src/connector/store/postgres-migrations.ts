/**
 * Schema migrations for the Postgres store, applied in order and tracked in `schema_migrations`
 * (one row per applied version). The same shape as the SQLite list (`migrations.ts`): 1-based,
 * contiguous, never edited once shipped.
 *
 * Several connector instances may start against one database at once, so {@link migrate} holds a
 * session-level advisory lock while it reads the applied versions and applies the pending ones;
 * a second instance waits, then finds nothing left to do. Each migration runs in its own
 * transaction together with its `schema_migrations` row (Postgres DDL is transactional), so a
 * failing migration leaves the database at the previous version, never half-way.
 *
 * Times are Unix milliseconds in BIGINT columns (the store maps them to JS numbers). Text that is
 * ordered or compared (ids, names, platforms, route keys) uses the "C" collation so listings sort
 * by byte order, like SQLite's BINARY collation, whatever the database's default locale.
 */
import type pg from 'pg';

export interface PostgresMigration {
  /** 1-based and contiguous: the highest applied version equals this once it is applied. */
  version: number;
  description: string;
  sql: string;
}

/** Advisory lock keys (two-int4 form): namespace for this application's locks. */
export const LOCK_NAMESPACE = 0x68726c79; // 'hrly'
/** Second key of the migration lock. Per-session outbox locks use LOCK_NAMESPACE + 1. */
const MIGRATION_LOCK = 0;

export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'initial schema',
    sql: `
      CREATE TABLE tenants (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT COLLATE "C" NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
      );

      CREATE TABLE tenant_tokens (
        token_hash TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        created_at BIGINT NOT NULL
      );
      CREATE INDEX tenant_tokens_tenant ON tenant_tokens(tenant_id);

      CREATE TABLE enrollment_tokens (
        token_hash TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        -- the gateway id that redeemed it; no foreign key: the gateway is created after redemption
        used_by TEXT
      );
      CREATE INDEX enrollment_tokens_tenant ON enrollment_tokens(tenant_id);

      CREATE TABLE gateways (
        id TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        secret TEXT NOT NULL,
        secondary_secret TEXT,
        secondary_expires_at BIGINT,
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        revoked_at BIGINT,
        platform TEXT NOT NULL,
        bot_id TEXT NOT NULL,
        endpoint TEXT NOT NULL DEFAULT '',
        created_at BIGINT NOT NULL,
        last_seen_at BIGINT
      );
      CREATE INDEX gateways_tenant ON gateways(tenant_id);
      CREATE INDEX gateways_revoked_at ON gateways(revoked_at) WHERE revoked_at IS NOT NULL;

      CREATE TABLE delivery_keys (
        tenant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants(id),
        primary_key TEXT NOT NULL,
        secondary_key TEXT,
        secondary_expires_at BIGINT
      );

      CREATE TABLE routes (
        platform TEXT COLLATE "C" NOT NULL,
        route_key TEXT COLLATE "C" NOT NULL,
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        endpoint TEXT NOT NULL DEFAULT '',
        -- no foreign key: a route may name a gateway that enrolls later
        gateway_id TEXT,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (platform, route_key)
      );
      CREATE INDEX routes_tenant ON routes(tenant_id);

      CREATE TABLE chats (
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        chat_id TEXT COLLATE "C" NOT NULL,
        platform TEXT NOT NULL,
        route_key TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, chat_id)
      );

      -- seq comes from an identity sequence (never reused, only grows) and gives the per-session
      -- order; inserts of one (tenant_id, session_key) are serialised by an advisory lock, so seq
      -- order is also commit order within a session. id is the stable delivery id.
      -- head marks the rows the claimer may consider: every interrupt, and the oldest message of
      -- each (tenant_id, session_key). It is maintained under the session's advisory lock on
      -- enqueue and whenever a message row leaves the outbox, and a missing head is restored on
      -- every open. The claim query re-checks "no older message" itself, so a stale TRUE is harmless.
      CREATE TABLE outbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT COLLATE "C" NOT NULL UNIQUE,
        tenant_id TEXT COLLATE "C" NOT NULL,
        gateway_id TEXT,
        session_key TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'interrupt')),
        body TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        last_error TEXT,
        last_status INTEGER,
        claimed_by TEXT,
        claimed_until BIGINT,
        head BOOLEAN NOT NULL DEFAULT TRUE
      );
      CREATE INDEX outbox_session ON outbox(tenant_id, session_key, kind, seq);
      CREATE INDEX outbox_heads ON outbox(seq) WHERE head;
      CREATE INDEX outbox_claimed_by ON outbox(claimed_by) WHERE claimed_by IS NOT NULL;

      CREATE TABLE dead_letters (
        id TEXT COLLATE "C" PRIMARY KEY,
        seq BIGINT NOT NULL,
        tenant_id TEXT COLLATE "C" NOT NULL,
        gateway_id TEXT,
        session_key TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'interrupt')),
        body TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        attempts INTEGER NOT NULL,
        reason TEXT NOT NULL,
        last_status INTEGER,
        dead_at BIGINT NOT NULL
      );
      CREATE INDEX dead_letters_dead_at ON dead_letters(dead_at, seq);

      CREATE TABLE audit (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        event TEXT NOT NULL,
        tenant_id TEXT,
        gateway_id TEXT,
        -- JSON text, kept byte for byte as written (never a secret)
        detail TEXT
      );
      CREATE INDEX audit_at ON audit(at, id);
    `,
  },
  {
    version: 2,
    description: 'chats by platform and chat id (which tenants a chat was delivered to)',
    sql: `CREATE INDEX chats_by_chat ON chats(platform, chat_id, tenant_id);`,
  },
  {
    version: 3,
    description:
      'current relay generation: instance, wake URL, display name, idle flag, identities, policies',
    sql: `
      ALTER TABLE gateways ADD COLUMN instance_id TEXT;
      ALTER TABLE gateways ADD COLUMN wake_url TEXT;
      ALTER TABLE gateways ADD COLUMN display_name TEXT;
      ALTER TABLE gateways ADD COLUMN idle_since BIGINT;

      CREATE TABLE gateway_identities (
        gateway_id TEXT COLLATE "C" NOT NULL REFERENCES gateways(id),
        platform TEXT COLLATE "C" NOT NULL,
        bot_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (gateway_id, platform)
      );
      INSERT INTO gateway_identities (gateway_id, platform, bot_id, created_at)
        SELECT id, platform, bot_id, created_at FROM gateways;

      CREATE TABLE gateway_policies (
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        platform TEXT COLLATE "C" NOT NULL,
        instance_key TEXT COLLATE "C" NOT NULL,
        require_address BOOLEAN NOT NULL,
        free_response_scopes TEXT NOT NULL,
        allow_other_bots BOOLEAN NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, platform, instance_key)
      );
    `,
  },
  {
    version: 4,
    description: 'platform state with an expiry (Discord sessions, interaction capabilities, seen ids)',
    sql: `
      CREATE TABLE platform_state (
        key TEXT COLLATE "C" PRIMARY KEY,
        value TEXT NOT NULL,
        expires_at BIGINT NOT NULL
      );
      CREATE INDEX platform_state_by_expiry ON platform_state(expires_at);
    `,
  },
  {
    version: 5,
    description: 'web-chat history in the store; chats by age (retention)',
    sql: `
      CREATE TABLE webchat_messages (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        chat_id TEXT COLLATE "C" NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        client_id TEXT COLLATE "C",
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (chat_id, id)
      );
      CREATE UNIQUE INDEX webchat_messages_client ON webchat_messages(chat_id, client_id)
        WHERE client_id IS NOT NULL;
      CREATE INDEX webchat_messages_chat ON webchat_messages(chat_id, seq);
      CREATE INDEX webchat_messages_created ON webchat_messages(created_at);
      CREATE INDEX chats_updated ON chats(updated_at);
    `,
  },
];

/** The schema version this build expects. */
export const POSTGRES_SCHEMA_VERSION: number = POSTGRES_MIGRATIONS.length;

/**
 * Bring the database behind `client` (connected, not inside a transaction) up to
 * {@link POSTGRES_SCHEMA_VERSION}. Idempotent and safe to run from several processes at once.
 * Refuses a database written by a newer build. Returns the versions it applied.
 */
export async function migratePostgres(
  client: pg.ClientBase,
  migrations: readonly PostgresMigration[] = POSTGRES_MIGRATIONS,
): Promise<number[]> {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${i + 1} is numbered ${m.version}`);
  });
  await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, MIGRATION_LOCK]);
  try {
    await client.query(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`);
    const { rows } = await client.query<{ version: number | null }>(
      'SELECT MAX(version) AS version FROM schema_migrations',
    );
    const current = rows[0]?.version ?? 0;
    if (current > migrations.length) {
      throw new Error(
        `database schema version ${current} is newer than this build supports (${migrations.length}); upgrade hermes-relay`,
      );
    }
    const applied: number[] = [];
    for (const m of migrations.slice(current)) {
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, description) VALUES ($1, $2)', [
          m.version,
          m.description,
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      applied.push(m.version);
    }
    return applied;
  } finally {
    await client
      .query('SELECT pg_advisory_unlock($1, $2)', [LOCK_NAMESPACE, MIGRATION_LOCK])
      .catch(() => undefined);
  }
}
