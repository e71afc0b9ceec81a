import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { PrivateTargets } from '../../common/ssrf.js';
import type { GatewayPresence } from '../admin.js';
import type { RelayStore } from '../store/types.js';
import { ADMIN_API_PREFIX, adminSnapshot, registerAdminApi } from './api.js';
import { AdminAuth, type AdminTokenSetting } from './auth.js';
import { AdminEvents } from './events.js';
import { registerAdminPage } from './page.js';

/**
 * The connector's admin console: the API under `/admin/api/` and the page at `/admin`, on when an
 * admin token is configured (`RELAY_ADMIN_TOKEN` / `RELAY_ADMIN_TOKEN_FILE`), else off — every
 * `/admin` path then answers 404 saying how to turn it on. docs/admin-api.md.
 */

export const ADMIN_CONSOLE_OFF = 'the admin console is off: set RELAY_ADMIN_TOKEN or RELAY_ADMIN_TOKEN_FILE';

export interface AdminConsoleOptions {
  /** The configured token; undefined turns the console off. */
  admin: AdminTokenSetting | undefined;
  store: RelayStore;
  log: Logger;
  version: string;
  instanceId: string;
  startedAt: number;
  presence: GatewayPresence;
  platforms: readonly string[];
  allowPrivateTargets: PrivateTargets;
  rotationWindowMs: number;
  onRevoked(gatewayId: string): void;
  onKeysRotated(tenantId: string): void;
  onRequeued(): void;
  /** Failed attempts per client address before 429 (default 10 a minute). */
  failureLimit?: { max: number; windowMs: number };
  /** SSE timing (tests shorten it). */
  eventTiming?: { checkMs?: number; pingMs?: number };
  now?: () => number;
}

/** Register the console on the connector's app; true when it is on. Logs which it is. */
export function registerAdminConsole(app: FastifyInstance, options: AdminConsoleOptions): boolean {
  const { log } = options;
  if (!options.admin) {
    const off = async (_request: unknown, reply: { code(n: number): { send(body: unknown): unknown } }) =>
      reply.code(404).send({ error: ADMIN_CONSOLE_OFF });
    app.all('/admin', off);
    app.all('/admin/*', off);
    log.info(`admin console off: set RELAY_ADMIN_TOKEN or RELAY_ADMIN_TOKEN_FILE to turn it on`);
    return false;
  }
  if (options.admin.warning) log.warn(options.admin.warning);
  const auth = new AdminAuth(options.admin.token, {
    limit: options.failureLimit,
    now: options.now,
  });
  const events = new AdminEvents(adminSnapshot(options), log, options.eventTiming);
  app.addHook('onClose', async () => events.stop());
  registerAdminApi(app, { ...options, auth, events });
  registerAdminPage(app);
  log.info({ api: ADMIN_API_PREFIX, tokenFrom: options.admin.source }, 'admin console on /admin');
  return true;
}
