import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { type PrivateTargets, parsePrivateTargets } from '../common/ssrf.js';
import { MEDIA_TTL_MS, ROTATION_WINDOW_SECONDS } from '../protocol/index.js';
import { AdminTokenError, type AdminTokenSetting, adminTokenFromEnv } from './admin-console/auth.js';
import { DEFAULT_RETENTION_DAYS, daysToMs, type RetentionSettings } from './retention.js';
import { isPostgresUrl } from './store/open.js';

export interface ConnectorConfig {
  host: string;
  port: number;
  /** SQLite file path (default) or `postgres://…` (several instances share it). */
  db: string;
  /** `redis://…`: the cluster bus between instances (docs/deploy.md); unset for one instance. */
  redisUrl: string | undefined;
  /**
   * Stable, unique id of this instance: owns outbox claims (a restart releases its own claims at
   * once) and names its bus inbox. Default `<hostname>:<port>`.
   */
  instanceId: string;
  allowNonExpiringTokens: boolean;
  identityUrl: string | undefined;
  /** `maxRetryAfterSeconds`: `TELEGRAM_MAX_RETRY_AFTER_SECONDS` (unset: the adapter's 60). */
  telegram:
    | { token: string; apiRoot: string | undefined; maxRetryAfterSeconds: number | undefined }
    | undefined;
  /**
   * Discord when `DISCORD_BOT_TOKEN` is set: its settings, or the one problem that keeps the adapter
   * from starting (the other platforms run regardless).
   */
  discord: DiscordConfig | { problem: string } | undefined;
  rotationWindowMs: number;
  /** Platform for routes declared without one, and the descriptor for gateways saying `relay`. */
  defaultPlatform: string;
  logLevel: string;
  /** How often each gateway endpoint gets a badly signed probe (0 disables). */
  probeIntervalMs: number;
  /**
   * Web-chat socket caps (unset = the adapter's defaults: 32 per client address, 10,000 in all) and
   * the per-socket message rate (default 10 messages per 10 s).
   */
  /** Allow wake pokes to private and loopback addresses (`RELAY_WAKE_ALLOW_PRIVATE=1`). */
  wakeAllowPrivate: boolean;
  /** Non-public addresses endpoints and wake URLs may reach ({@link privateTargetsFromEnv}). */
  allowPrivateTargets: PrivateTargets;
  /**
   * Where re-hosted media live (`RELAY_MEDIA_DIR`; default `media/` beside a SQLite file, else
   * `./relay-data/media`). Several instances must share it (a shared volume).
   */
  mediaDir: string;
  /** How long re-hosted media are served (`RELAY_MEDIA_TTL_SECONDS`, default 3600: current §7.3). */
  mediaTtlMs: number;
  /**
   * The connector's address as gateways reach it (`RELAY_PUBLIC_URL`, e.g. `https://relay.example`),
   * for the media URLs in inbound events; default: the address it listens on.
   */
  publicUrl: string | undefined;
  /** How long dead letters, audit events, chats and web-chat history are kept (`RELAY_RETENTION_*_DAYS`). */
  retention: RetentionSettings;
  webchat: {
    maxSocketsPerAddress: number | undefined;
    maxSockets: number | undefined;
    rateLimit: { messages: number; windowMs: number };
  };
  /**
   * The admin console's token (`RELAY_ADMIN_TOKEN`, or the file `RELAY_ADMIN_TOKEN_FILE` names);
   * unset: the console is off (docs/admin-api.md).
   */
  admin?: AdminTokenSetting | undefined;
}

export interface DiscordConfig {
  token: string;
  applicationId: string;
  publicKey: string;
  apiRoot: string | undefined;
  gatewayUrl: string | undefined;
}

/** A setting with a value that cannot be used: the connector refuses to start rather than guess. */
export class ConnectorConfigError extends Error {
  override readonly name = 'ConnectorConfigError';
}

/** Default web-chat message rate per socket (`RELAY_WEBCHAT_RATE_LIMIT`). */
export const DEFAULT_WEBCHAT_RATE_LIMIT = { messages: 10, windowMs: 10_000 } as const;

const DEFAULT_CONNECTOR_PORT = 8700;
const DEFAULT_DB_PATH = './relay-data/connector.db';

export interface ConnectorFlags {
  host?: string;
  port?: number;
  db?: string;
}

export function connectorConfigFromEnv(env: NodeJS.ProcessEnv, flags: ConnectorFlags = {}): ConnectorConfig {
  const host = flags.host ?? env.RELAY_HOST ?? '127.0.0.1';
  const port = flags.port ?? envPort(env.RELAY_PORT) ?? DEFAULT_CONNECTOR_PORT;
  const db = connectorDbFromEnv(env, flags.db);
  const telegramToken = env.TELEGRAM_BOT_TOKEN?.trim();
  return {
    host,
    port,
    db,
    redisUrl: env.RELAY_REDIS_URL?.trim() || undefined,
    instanceId: env.RELAY_INSTANCE_ID?.trim() || `${hostname()}:${port || `pid${process.pid}`}`,
    allowNonExpiringTokens: parseSwitch(
      'RELAY_ALLOW_NON_EXPIRING_TOKENS',
      env.RELAY_ALLOW_NON_EXPIRING_TOKENS,
    ),
    identityUrl: env.RELAY_IDENTITY_URL?.trim() || undefined,
    telegram: telegramToken
      ? {
          token: telegramToken,
          apiRoot: env.TELEGRAM_API_ROOT?.trim() || undefined,
          maxRetryAfterSeconds: parseCount(
            'TELEGRAM_MAX_RETRY_AFTER_SECONDS',
            env.TELEGRAM_MAX_RETRY_AFTER_SECONDS,
          ),
        }
      : undefined,
    discord: discordConfigFrom(env),
    rotationWindowMs: ROTATION_WINDOW_SECONDS * 1000,
    defaultPlatform: 'webchat',
    logLevel: env.RELAY_LOG_LEVEL ?? 'info',
    wakeAllowPrivate: parseSwitch('RELAY_WAKE_ALLOW_PRIVATE', env.RELAY_WAKE_ALLOW_PRIVATE),
    allowPrivateTargets: privateTargetsFromEnv(env),
    mediaDir: mediaDirFor(env, db),
    mediaTtlMs:
      parseSeconds('RELAY_MEDIA_TTL_SECONDS', env.RELAY_MEDIA_TTL_SECONDS, MEDIA_TTL_MS / 1000) * 1000,
    publicUrl: publicUrlFrom(env.RELAY_PUBLIC_URL),
    probeIntervalMs:
      parseSeconds('RELAY_PROBE_INTERVAL_SECONDS', env.RELAY_PROBE_INTERVAL_SECONDS, 600) * 1000,
    retention: retentionFromEnv(env),
    webchat: {
      maxSocketsPerAddress: parseCount(
        'RELAY_WEBCHAT_MAX_SOCKETS_PER_IP',
        env.RELAY_WEBCHAT_MAX_SOCKETS_PER_IP,
      ),
      maxSockets: parseCount('RELAY_WEBCHAT_MAX_SOCKETS', env.RELAY_WEBCHAT_MAX_SOCKETS),
      rateLimit: parseRate('RELAY_WEBCHAT_RATE_LIMIT', env.RELAY_WEBCHAT_RATE_LIMIT) ?? {
        ...DEFAULT_WEBCHAT_RATE_LIMIT,
      },
    },
    admin: adminSettingFrom(env),
  };
}

function adminSettingFrom(env: NodeJS.ProcessEnv): AdminTokenSetting | undefined {
  try {
    return adminTokenFromEnv(env);
  } catch (error) {
    if (error instanceof AdminTokenError) throw new ConnectorConfigError(error.message);
    throw error;
  }
}

/**
 * Only where the store is (`--db`, else `RELAY_DB`, else the default file): what the admin commands
 * need, so a bad setting of the running server does not block them.
 */
export function connectorDbFromEnv(env: NodeJS.ProcessEnv, flag?: string): string {
  const db = flag ?? env.RELAY_DB ?? DEFAULT_DB_PATH;
  return isPostgresUrl(db) || db === ':memory:' ? db : resolve(db);
}

/**
 * `RELAY_RETENTION_DEAD_LETTERS_DAYS`, `_AUDIT_DAYS`, `_CHATS_DAYS`, `_WEBCHAT_DAYS`: days (a
 * fraction allowed), 0 keeps that kind for ever. Also read alone by `hermes connector prune`.
 */
export function retentionFromEnv(env: NodeJS.ProcessEnv): RetentionSettings {
  const days = (name: string, fallback: number): number => {
    const value = env[name];
    if (value === undefined || value.trim() === '') return daysToMs(fallback);
    const parsed = Number(value);
    if (Number.isFinite(parsed) && parsed >= 0) return daysToMs(parsed);
    throw new ConnectorConfigError(
      `${name} must be a number of days (0 keeps them for ever), got ${JSON.stringify(value)}`,
    );
  };
  return {
    deadLettersMs: days('RELAY_RETENTION_DEAD_LETTERS_DAYS', DEFAULT_RETENTION_DAYS.deadLetters),
    auditMs: days('RELAY_RETENTION_AUDIT_DAYS', DEFAULT_RETENTION_DAYS.audit),
    chatsMs: days('RELAY_RETENTION_CHATS_DAYS', DEFAULT_RETENTION_DAYS.chats),
    webchatMessagesMs: days('RELAY_RETENTION_WEBCHAT_DAYS', DEFAULT_RETENTION_DAYS.webchatMessages),
  };
}

/**
 * `DISCORD_BOT_TOKEN`, `DISCORD_APPLICATION_ID`, `DISCORD_PUBLIC_KEY` (and the test overrides
 * `DISCORD_API_ROOT`, `DISCORD_GATEWAY_URL`). Nothing set: no Discord. Set but incomplete or
 * malformed: the problem, in one line naming the variable.
 */
function discordConfigFrom(env: NodeJS.ProcessEnv): DiscordConfig | { problem: string } | undefined {
  const token = env.DISCORD_BOT_TOKEN?.trim() ?? '';
  const applicationId = env.DISCORD_APPLICATION_ID?.trim() ?? '';
  const publicKey = env.DISCORD_PUBLIC_KEY?.trim() ?? '';
  if (!token && !applicationId && !publicKey) return undefined;
  if (!token)
    return { problem: 'DISCORD_BOT_TOKEN is not set (DISCORD_APPLICATION_ID or DISCORD_PUBLIC_KEY is)' };
  if (!/^\d{15,25}$/.test(applicationId))
    return {
      problem: applicationId
        ? `DISCORD_APPLICATION_ID must be the application's numeric id, got ${JSON.stringify(applicationId)}`
        : 'DISCORD_APPLICATION_ID is not set (the numeric id on the developer portal’s General Information page)',
    };
  if (!/^[0-9a-f]{64}$/i.test(publicKey))
    return {
      problem: publicKey
        ? 'DISCORD_PUBLIC_KEY must be the 64 hex characters of the application’s public key'
        : 'DISCORD_PUBLIC_KEY is not set (the public key on the developer portal’s General Information page)',
    };
  const url = (name: string, pattern: RegExp): string | { problem: string } | undefined => {
    const value = env[name]?.trim().replace(/\/+$/, '');
    if (!value) return undefined;
    return pattern.test(value) && URL.canParse(value)
      ? value
      : { problem: `${name} must be a URL, got ${JSON.stringify(value)}` };
  };
  const apiRoot = url('DISCORD_API_ROOT', /^https?:\/\//i);
  if (typeof apiRoot === 'object') return apiRoot;
  const gatewayUrl = url('DISCORD_GATEWAY_URL', /^wss?:\/\//i);
  if (typeof gatewayUrl === 'object') return gatewayUrl;
  return { token, applicationId, publicKey, apiRoot, gatewayUrl };
}

/**
 * `RELAY_ALLOW_PRIVATE_TARGETS`: `1` lets endpoints and wake URLs reach every non-public address, a
 * comma-separated list of addresses/CIDR blocks only those; unset, empty or `0`: public addresses
 * only (common/ssrf.ts). Also read by `connector route add`, which checks `--endpoint` the same way.
 */
export function privateTargetsFromEnv(env: NodeJS.ProcessEnv): PrivateTargets {
  try {
    return parsePrivateTargets(env.RELAY_ALLOW_PRIVATE_TARGETS);
  } catch (error) {
    throw new ConnectorConfigError(`RELAY_ALLOW_PRIVATE_TARGETS ${(error as Error).message}`);
  }
}

function publicUrlFrom(value: string | undefined): string | undefined {
  const text = value?.trim().replace(/\/+$/, '');
  if (!text) return undefined;
  if (/^https?:\/\/[^/\s?#]+(\/[^\s?#]*)?$/i.test(text)) return text;
  throw new ConnectorConfigError(`RELAY_PUBLIC_URL must be an http(s) URL, got ${JSON.stringify(value)}`);
}

function mediaDirFor(env: NodeJS.ProcessEnv, db: string): string {
  const configured = env.RELAY_MEDIA_DIR?.trim();
  if (configured) return resolve(configured);
  if (db === ':memory:') return join(tmpdir(), `hermes-relay-media-${process.pid}`);
  return isPostgresUrl(db) ? resolve(dirname(DEFAULT_DB_PATH), 'media') : join(dirname(db), 'media');
}

export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const port = Number(value);
  return Number.isInteger(port) && port >= 0 && port <= 65535 ? port : undefined;
}

function parseCount(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const count = Number(value);
  if (Number.isInteger(count) && count > 0) return count;
  throw new ConnectorConfigError(`${name} must be a whole number above 0, got ${JSON.stringify(value)}`);
}

/** `<messages>/<seconds>`, e.g. `10/10` or `30/10s`: at most that many messages in that window. */
function parseRate(
  name: string,
  value: string | undefined,
): { messages: number; windowMs: number } | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const match = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)\s*s?\s*$/.exec(value);
  const messages = Number(match?.[1]);
  const seconds = Number(match?.[2]);
  if (match && messages > 0 && seconds > 0) return { messages, windowMs: Math.round(seconds * 1000) };
  throw new ConnectorConfigError(
    `${name} must be <messages>/<seconds> with both above 0 (e.g. 10/10), got ${JSON.stringify(value)}`,
  );
}

/** An on/off setting: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; anything else is a typo, not "off". */
function parseSwitch(name: string, value: string | undefined): boolean {
  if (value === undefined || value.trim() === '') return false;
  const word = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(word)) return true;
  if (['0', 'false', 'no', 'off'].includes(word)) return false;
  throw new ConnectorConfigError(
    `${name} must be 1 or 0 (or true/false, yes/no), got ${JSON.stringify(value)}`,
  );
}

function parseSeconds(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === '') return fallback;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  throw new ConnectorConfigError(
    `${name} must be a number of seconds (0 or more), got ${JSON.stringify(value)}`,
  );
}

function envPort(value: string | undefined): number | undefined {
  const port = parsePort(value);
  if (port === undefined && value !== undefined && value.trim() !== '')
    throw new ConnectorConfigError(
      `RELAY_PORT must be a number from 0 to 65535, got ${JSON.stringify(value)}`,
    );
  return port;
}
