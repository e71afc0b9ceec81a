import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { clearDrainRequest, drainRequested, writeDrainRequest } from '../gateway/drain-control.js';
import {
  AuditLog,
  AuthRegistry,
  createPasswordProvider,
  installAuthGates,
  registerDrainSecretProvider,
  tokenPrincipalOf,
} from './auth/index.js';
import { EventHub } from './events.js';
import { RestartLauncher } from './restart.js';
import { gatewayStatusView } from './status.js';

/**
 * `hermes dashboard` (lifecycle reference §2): status, drain/cancel and restart over one gateway
 * home, behind the auth gates (token seam first, then the loopback session token or cookie login).
 */

export interface DashboardOptions {
  home: string;
  profile?: string | null;
  host: string;
  port: number;
  log: Logger;
  version: string;
  /** Seconds the gateway lets running turns finish on stop/restart (shown in the status). */
  restartDrainTimeout: number;
  env?: NodeJS.ProcessEnv;
  /** Require a cookie login even on a loopback bind. */
  requireLogin?: boolean;
  allowedHosts?: string[];
  trustProxy?: boolean;
  /** `dashboard.drain_auth.{scope,min_secret_chars}` from config.yaml. */
  drainAuth?: { scope?: string; minSecretChars?: number };
  /** The `hermes` entry script used for the restart action (default: this process's). */
  cliPath?: string;
  /** Renders `GET /`; the page module supplies it. */
  renderPage?: (input: {
    sessionToken: string | undefined;
    loginRequired: boolean;
    version: string;
  }) => string;
  assets?: Record<string, { body: string; type: string }>;
}

export interface RunningDashboard {
  url: string;
  sessionToken: string;
  authRequired: boolean;
  app: FastifyInstance;
  stop(): Promise<void>;
}

const BODY_LIMIT = 16 * 1024;

export async function startDashboard(options: DashboardOptions): Promise<RunningDashboard> {
  const { home, log } = options;
  const env = options.env ?? process.env;
  const registry = new AuthRegistry();
  registry.register(await createPasswordProvider({ home, env }));
  const drain = registerDrainSecretProvider(registry, {
    env,
    scope: options.drainAuth?.scope,
    minSecretChars: options.drainAuth?.minSecretChars,
  });
  if (!drain.registered && env.HERMES_DASHBOARD_DRAIN_SECRET) {
    log.warn({ reason: drain.reason }, 'HERMES_DASHBOARD_DRAIN_SECRET ignored');
  }

  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT, forceCloseConnections: true });
  // A missing or unreadable body on the drain route means "drain" (reference §2.5): keep bad JSON
  // from failing the request before the handler sees it.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, body === '' ? undefined : JSON.parse(body as string));
    } catch {
      done(null, undefined);
    }
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) log.error({ err: error.message, url: request.url }, 'dashboard request failed');
    return reply.code(status).send({ detail: status >= 500 ? 'Internal error' : error.message });
  });

  const gates = installAuthGates(app, {
    registry,
    bindHost: options.host,
    requireLogin: options.requireLogin ?? false,
    audit: new AuditLog(home),
    allowedHosts: options.allowedHosts ?? [],
    trustProxy: options.trustProxy ?? false,
    env,
  });
  gates.assertCanStart();

  const snapshot = () => {
    const view = {
      version: options.version,
      ...gatewayStatusView(home),
      restart_drain_timeout: options.restartDrainTimeout,
      ...gates.authStatus(),
    };
    // Host reconnaissance (PID, home path) only on loopback binds (reference §2.4).
    if (!gates.authRequired) return { ...view, hermes_home: home };
    const { gateway_pid: _pid, ...rest } = view;
    return rest;
  };
  const events = new EventHub(home, snapshot);
  const restart = new RestartLauncher(
    home,
    options.cliPath ?? process.argv[1] ?? '',
    options.profile ?? null,
    env,
  );

  app.get('/api/status', async () => snapshot());

  app.get('/api/events', async (request, reply) => {
    if (!gates.isAuthenticated(request)) return reply.code(401).send({ detail: 'Unauthorized' });
    if (!events.add(reply)) return reply.code(503).send({ detail: 'Too many event streams' });
  });

  app.post('/api/gateway/drain', async (request, reply) => {
    if (!gates.isAuthenticated(request)) return reply.code(401).send({ detail: 'Unauthorized' });
    const body = (request.body && typeof request.body === 'object' ? request.body : {}) as Record<
      string,
      unknown
    >;
    const action = body.action === undefined ? 'drain' : body.action;
    const principal = tokenPrincipalOf(request)?.principal ?? 'dashboard';
    if (action === 'cancel') {
      const wasDraining = clearDrainRequest(home);
      events.action({ action: 'cancel', principal, at: new Date().toISOString() });
      return { ok: true, action: 'cancel', was_draining: wasDraining };
    }
    if (action !== 'drain') {
      return reply
        .code(400)
        .send({ detail: `Unknown drain action '${String(action)}'; expected 'drain' or 'cancel'` });
    }
    const suppress = body.suppress_notification === true;
    const marker = writeDrainRequest(home, { principal, suppressNotification: suppress });
    events.action({ action: 'drain', principal, at: new Date().toISOString() });
    return {
      ok: true,
      action: 'drain',
      requested_at: marker.requested_at,
      draining: drainRequested(home),
      suppress_notification: suppress,
    };
  });

  app.post('/api/gateway/restart', async (request, reply) => {
    if (!gates.isAuthenticated(request)) return reply.code(401).send({ detail: 'Unauthorized' });
    try {
      const { action, coalesced } = restart.launch();
      if (!coalesced)
        events.action({
          action: 'restart',
          principal: tokenPrincipalOf(request)?.principal ?? 'dashboard',
          at: new Date().toISOString(),
        });
      return { ok: true, pid: action.pid, name: 'gateway-restart', coalesced };
    } catch (error) {
      return reply.code(500).send({ detail: `Failed to restart gateway: ${(error as Error).message}` });
    }
  });

  for (const [name, asset] of Object.entries(options.assets ?? {})) {
    app.get(`/assets/${name}`, async (_request, reply) =>
      reply.type(asset.type).header('cache-control', 'public, max-age=31536000, immutable').send(asset.body),
    );
  }
  app.get('/', async (_request, reply) => {
    const html = options.renderPage?.({
      sessionToken: gates.authRequired ? undefined : gates.sessionToken,
      loginRequired: gates.authRequired,
      version: options.version,
    });
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(html ?? '<!doctype html><title>hermes dashboard</title><p>hermes dashboard: see /api/status</p>');
  });

  await app.listen({ host: options.host, port: options.port });
  const port = (app.server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  events.start();
  log.info(
    {
      url: `http://${host}:${port}`,
      authRequired: gates.authRequired,
      providers: gates.authStatus().auth_providers,
    },
    'dashboard listening',
  );

  return {
    url: `http://${host}:${port}`,
    sessionToken: gates.sessionToken,
    authRequired: gates.authRequired,
    app,
    stop: async () => {
      events.stop();
      await app.close();
    },
  };
}
