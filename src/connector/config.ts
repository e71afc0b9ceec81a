import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ROTATION_WINDOW_SECONDS } from '../protocol/index.js';
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
  telegram: { token: string; apiRoot: string | undefined } | undefined;
  rotationWindowMs: number;
  /** Platform for routes declared without one, and the descriptor for gateways saying `relay`. */
  defaultPlatform: string;
  logLevel: string;
  /** How often each gateway endpoint gets a badly signed probe (0 disables). */
  probeIntervalMs: number;
  /** Web-chat socket caps; unset = the adapter's defaults (32 per client address, 10,000 in all). */
  webchat: { maxSocketsPerAddress: number | undefined; maxSockets: number | undefined };
}

const DEFAULT_CONNECTOR_PORT = 8700;
const DEFAULT_DB_PATH = './relay-data/connector.db';

export interface ConnectorFlags {
  host?: string;
  port?: number;
  db?: string;
}

export function connectorConfigFromEnv(env: NodeJS.ProcessEnv, flags: ConnectorFlags = {}): ConnectorConfig {
  const host = flags.host ?? env.RELAY_HOST ?? '127.0.0.1';
  const port = flags.port ?? parsePort(env.RELAY_PORT) ?? DEFAULT_CONNECTOR_PORT;
  const db = flags.db ?? env.RELAY_DB ?? DEFAULT_DB_PATH;
  const telegramToken = env.TELEGRAM_BOT_TOKEN?.trim();
  return {
    host,
    port,
    db: isPostgresUrl(db) || db === ':memory:' ? db : resolve(db),
    redisUrl: env.RELAY_REDIS_URL?.trim() || undefined,
    instanceId: env.RELAY_INSTANCE_ID?.trim() || `${hostname()}:${port || `pid${process.pid}`}`,
    allowNonExpiringTokens: env.RELAY_ALLOW_NON_EXPIRING_TOKENS === '1',
    identityUrl: env.RELAY_IDENTITY_URL?.trim() || undefined,
    telegram: telegramToken
      ? { token: telegramToken, apiRoot: env.TELEGRAM_API_ROOT?.trim() || undefined }
      : undefined,
    rotationWindowMs: ROTATION_WINDOW_SECONDS * 1000,
    defaultPlatform: 'webchat',
    logLevel: env.RELAY_LOG_LEVEL ?? 'info',
    probeIntervalMs: parseSeconds(env.RELAY_PROBE_INTERVAL_SECONDS, 600) * 1000,
    webchat: {
      maxSocketsPerAddress: parseCount(env.RELAY_WEBCHAT_MAX_SOCKETS_PER_IP),
      maxSockets: parseCount(env.RELAY_WEBCHAT_MAX_SOCKETS),
    },
  };
}

export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const port = Number(value);
  return Number.isInteger(port) && port >= 0 && port <= 65535 ? port : undefined;
}

function parseCount(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const count = Number(value);
  return Number.isInteger(count) && count > 0 ? count : undefined;
}

function parseSeconds(value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === '') return fallback;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : fallback;
}
