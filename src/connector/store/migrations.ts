/**
 * Schema migrations for the SQLite store, applied in order and tracked by `PRAGMA user_version`
 * (migration N sets user_version = N). Each pending migration runs in its own transaction together
 * with the version bump, so a crash leaves the database at the previous version, never half-way.
 * Never edit a shipped migration: append a new one.
 */
import type Database from 'better-sqlite3';

export interface Migration {
  /** 1-based and contiguous: the value `user_version` holds once this migration is applied. */
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial schema',
    sql: `
      CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE tenant_tokens (
        token_hash TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        created_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX tenant_tokens_tenant ON tenant_tokens(tenant_id);

      CREATE TABLE enrollment_tokens (
        token_hash TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        -- the gateway id that redeemed it; no foreign key: the gateway is created after redemption
        used_by TEXT
      ) STRICT;
      CREATE INDEX enrollment_tokens_tenant ON enrollment_tokens(tenant_id);

      CREATE TABLE gateways (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        secret TEXT NOT NULL,
        secondary_secret TEXT,
        secondary_expires_at INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
        revoked_at INTEGER,
        platform TEXT NOT NULL,
        bot_id TEXT NOT NULL,
        endpoint TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER
      ) STRICT;
      CREATE INDEX gateways_tenant ON gateways(tenant_id);
      CREATE INDEX gateways_revoked_at ON gateways(revoked_at) WHERE revoked_at IS NOT NULL;

      CREATE TABLE delivery_keys (
        tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
        primary_key TEXT NOT NULL,
        secondary_key TEXT,
        secondary_expires_at INTEGER
      ) STRICT;

      CREATE TABLE routes (
        platform TEXT NOT NULL,
        route_key TEXT NOT NULL,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        endpoint TEXT NOT NULL DEFAULT '',
        -- no foreign key: a route may name a gateway that enrolls later
        gateway_id TEXT,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (platform, route_key)
      ) STRICT;
      CREATE INDEX routes_tenant ON routes(tenant_id);

      CREATE TABLE chats (
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        chat_id TEXT NOT NULL,
        platform TEXT NOT NULL,
        route_key TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, chat_id)
      ) STRICT;

      -- seq is the rowid (AUTOINCREMENT: never reused, so it only ever grows, even after the
      -- outbox empties) and gives the per-session order. id is the stable delivery id.
      -- head = 1 marks the rows the claimer may consider: every interrupt, and the oldest message
      -- of each (tenant_id, session_key). It is maintained on enqueue and whenever a message row
      -- leaves the outbox, and recomputed on every open.
      CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        gateway_id TEXT,
        session_key TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'interrupt')),
        body TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        last_status INTEGER,
        claimed_by TEXT,
        claimed_until INTEGER,
        head INTEGER NOT NULL DEFAULT 1 CHECK (head IN (0, 1))
      ) STRICT;
      CREATE INDEX outbox_session ON outbox(tenant_id, session_key, kind, seq);
      CREATE INDEX outbox_heads ON outbox(seq) WHERE head = 1;

      CREATE TABLE dead_letters (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        tenant_id TEXT NOT NULL,
        gateway_id TEXT,
        session_key TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'interrupt')),
        body TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        reason TEXT NOT NULL,
        last_status INTEGER,
        dead_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX dead_letters_dead_at ON dead_letters(dead_at, seq);

      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        event TEXT NOT NULL,
        tenant_id TEXT,
        gateway_id TEXT,
        detail TEXT
      ) STRICT;
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
      ALTER TABLE gateways ADD COLUMN idle_since INTEGER;

      CREATE TABLE gateway_identities (
        gateway_id TEXT NOT NULL REFERENCES gateways(id),
        platform TEXT NOT NULL,
        bot_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (gateway_id, platform)
      ) STRICT;
      INSERT INTO gateway_identities (gateway_id, platform, bot_id, created_at)
        SELECT id, platform, bot_id, created_at FROM gateways;

      CREATE TABLE gateway_policies (
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        platform TEXT NOT NULL,
        instance_key TEXT NOT NULL,
        require_address INTEGER NOT NULL CHECK (require_address IN (0, 1)),
        free_response_scopes TEXT NOT NULL,
        allow_other_bots INTEGER NOT NULL CHECK (allow_other_bots IN (0, 1)),
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, platform, instance_key)
      ) STRICT;
    `,
  },
  {
    version: 4,
    description: 'platform state with an expiry (Discord sessions, interaction capabilities, seen ids)',
    sql: `
      CREATE TABLE platform_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX platform_state_by_expiry ON platform_state(expires_at);
    `,
  },
  {
    version: 5,
    description: 'web-chat history in the store; chats by age (retention)',
    sql: `
      CREATE TABLE webchat_messages (
        seq INTEGER PRIMARY KEY,
        chat_id TEXT NOT NULL,
        id TEXT NOT NULL,
        client_id TEXT,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (chat_id, id)
      ) STRICT;
      CREATE UNIQUE INDEX webchat_messages_client ON webchat_messages(chat_id, client_id)
        WHERE client_id IS NOT NULL;
      CREATE INDEX webchat_messages_chat ON webchat_messages(chat_id, seq);
      CREATE INDEX webchat_messages_created ON webchat_messages(created_at);
      CREATE INDEX chats_updated ON chats(updated_at);
    `,
  },
];

/** The schema version this build expects. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/**
 * Bring `db` up to {@link SCHEMA_VERSION}. Idempotent: applied migrations are skipped. Refuses a
 * database written by a newer build rather than guessing at its schema. Returns the versions it
 * applied.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${i + 1} is numbered ${m.version}`);
  });
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(
      `database schema version ${current} is newer than this build supports (${migrations.length}); upgrade hermes-relay`,
    );
  }
  const applied: number[] = [];
  for (const m of migrations.slice(current)) {
    db.transaction(() => {
      // Re-read under the write lock: another process may have migrated since the check above.
      if ((db.pragma('user_version', { simple: true }) as number) >= m.version) return;
      db.exec(m.sql);
      // PRAGMA takes no bound parameters; version is an integer from the list above.
      db.pragma(`user_version = ${Math.trunc(m.version)}`);
      applied.push(m.version);
    }).immediate();
  }
  return applied;
}
