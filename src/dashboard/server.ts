import type { AddressInfo } from 'node:net';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { errorMessage } from '../common/errors.js';
import { readActivity } from '../home/activity-log.js';
import { clearDrainRequest, drainRequested, writeDrainRequest } from '../home/drain-control.js';
import { writeTurnStopRequest } from '../home/status-file.js';
import { installJsonBodyParser } from '../http/json-body.js';
import { installSecurityHeaders, pageContentSecurityPolicy } from '../http/security-headers.js';
import { fastifyTimeoutOptions, type ServerTimeouts } from '../http/server-limits.js';
import { registerAssets, type StaticAsset } from '../http/static-assets.js';
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
import { gatewayStatusView, gatewayWorkView } from './status.js';

/**
 * `hermes dashboard` (lifecycle reference §2): status, drain/cancel and restart over one gateway
 * home, behind the auth gates (token seam first, then the loopback session token or cookie login).
 *
 * Hardening (src/http): the shared JSON body parser (nesting-bounded; an unreadable body reaches
 * the drain route as "no body", which means drain, reference §2.5), request/header/idle time
 * limits, security headers on every answer, writes only with an `application/json` body (or none),
 * and the CSRF rules of the auth gates.
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
  /** Reverse proxies to believe: addresses/CIDR blocks, or `true` for loopback (see the gates). */
  trustProxy?: boolean | readonly string[];
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
  /** Static files of the page, served at `/assets/<name>` (content-hashed names: cached for good). */
  assets?: Readonly<Record<string, StaticAsset>>;
  /** Override the server time limits (tests use short ones). */
  timeouts?: Partial<ServerTimeouts>;
}

export interface RunningDashboard {
  url: string;
  sessionToken: string;
  authRequired: boolean;
  app: FastifyInstance;
  stop(): Promise<void>;
}

const BODY_LIMIT = 16 * 1024;

/** `POST /api/turns/stop` body. */
const TurnStopBody = z.object({ session: z.string().min(1).max(512) });
/** How long the stop route waits to see the turn gone before answering `stopped: false`. */
const TURN_STOP_CONFIRM_MS = 5_000;

/**
 * The CSP of `GET /`: the page loads its script and stylesheet from `/assets/` (no inline code)
 * and talks to its own origin only.
 */
const DASHBOARD_PAGE_CSP = pageContentSecurityPolicy(
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'",
);

const UNSUPPORTED_BODY_DETAIL =
  'Unsupported Media Type: write requests take an application/json body (or no body at all)';

/** A request path for log lines: never the query, which a careless client may fill with a secret. */
export function loggablePath(url: string): string {
  const cut = url.search(/[?#]/);
  return (cut < 0 ? url : url.slice(0, cut)).slice(0, 512);
}

function isJsonMediaType(header: string): boolean {
  const type = header.split(';')[0]?.trim().toLowerCase();
  return type === 'application/json';
}

/** The unknown-action message without echoing a structure back (reference: `str(action)`). */
function describeAction(action: unknown): string {
  if (typeof action === 'string') return action.length > 100 ? `${action.slice(0, 100)}…` : action;
  if (action === null || typeof action === 'number' || typeof action === 'boolean') return String(action);
  return Array.isArray(action) ? '[array]' : '[object]';
}

export async function startDashboard(options: DashboardOptions): Promise<RunningDashboard> {
  const { home, log } = options;
  const env = options.env ?? process.env;
  const registry = new AuthRegistry();
  const audit = new AuditLog(home);
  registry.register(await createPasswordProvider({ home, env }));
  const drain = registerDrainSecretProvider(registry, {
    env,
    scope: options.drainAuth?.scope,
    minSecretChars: options.drainAuth?.minSecretChars,
  });
  if (!drain.registered && env.HERMES_DASHBOARD_DRAIN_SECRET) {
    log.warn({ reason: drain.reason }, 'HERMES_DASHBOARD_DRAIN_SECRET ignored');
  }

  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    forceCloseConnections: true,
    ...fastifyTimeoutOptions(options.timeouts),
  });
  installSecurityHeaders(app);
  // A missing or unreadable body on the drain route means "drain" (reference §2.5): the shared
  // parser hands such a body (bad JSON, too deeply nested) to the route as undefined.
  installJsonBodyParser(app, { onInvalid: 'undefined' });
  // Only JSON bodies: fastify's text/plain parser would let a cross-site form post reach a route.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const code = typeof error?.statusCode === 'number' ? error.statusCode : 500;
    const status = code >= 400 && code < 600 ? code : 500;
    if (status >= 500)
      log.error(
        { err: error?.message, method: request.method, path: loggablePath(request.url) },
        'dashboard request failed',
      );
    if (reply.sent || reply.raw.headersSent) return;
    return reply.code(status).send({
      detail:
        status >= 500
          ? 'Internal error'
          : status === 415
            ? UNSUPPORTED_BODY_DETAIL
            : String(error?.message ?? 'Bad request').slice(0, 300),
    });
  });

  const gates = installAuthGates(app, {
    registry,
    bindHost: options.host,
    requireLogin: options.requireLogin ?? false,
    audit,
    allowedHosts: options.allowedHosts ?? [],
    trustProxy: options.trustProxy ?? false,
    env,
  });
  gates.assertCanStart();

  // Writes take a JSON body or none (after the gates, so an unauthenticated client learns nothing
  // and no body is read for it).
  app.addHook('onRequest', async (request, reply) => {
    if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') return;
    const type = request.headers['content-type'];
    const length = request.headers['content-length'];
    const hasBody =
      request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    if (type === undefined ? !hasBody : isJsonMediaType(type)) return;
    reply.code(415).send({ detail: UNSUPPORTED_BODY_DETAIL });
    return reply;
  });

  /** Route-level auth, run before the body is read (the gates already refused most requests). */
  const requireAuth = async (request: FastifyRequest, reply: FastifyReply) => {
    if (gates.isAuthenticated(request)) return;
    reply.code(401).send({ detail: 'Unauthorized' });
    return reply;
  };

  /**
   * The status payload. `turns` (session keys, chats) and `relay` go only to authenticated callers
   * (the event stream, or `/api/status` with the session token or a cookie): `/api/status` itself
   * is a public liveness probe (reference §2.3) and must not list who is talking to the agent.
   */
  const snapshot = (withWork = true) => {
    const view = {
      version: options.version,
      ...gatewayStatusView(home),
      ...(withWork ? gatewayWorkView(home) : {}),
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

  app.get('/api/status', async (request) => snapshot(gates.isAuthenticated(request)));

  app.get('/api/activity', { onRequest: requireAuth }, async () => ({ events: readActivity(home) }));

  // Stop one running turn: the gateway takes the request and runs its `/stop` path for the session.
  app.post('/api/turns/stop', { onRequest: requireAuth }, async (request, reply) => {
    const parsed = TurnStopBody.safeParse(request.body);
    if (!parsed.success)
      return reply.code(400).send({ error: 'session: a session key (1–512 characters) is required' });
    const session = parsed.data.session;
    const listed = () => gatewayWorkView(home).turns.some((turn) => turn.session === session);
    if (!listed()) return reply.code(404).send({ error: 'No running turn for this session' });
    const principal = tokenPrincipalOf(request)?.principal ?? 'dashboard';
    const stopRequest = writeTurnStopRequest(home, session, principal);
    audit.write('turn_stop', { principal, session, ip: request.ip });
    events.action({ action: 'stop_turn', principal, session, at: stopRequest.requested_at });
    const deadline = Date.now() + TURN_STOP_CONFIRM_MS;
    while (listed() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    return {
      ok: true,
      action: 'stop_turn',
      session,
      requested_at: stopRequest.requested_at,
      stopped: !listed(),
    };
  });

  app.get('/api/events', { onRequest: requireAuth }, async (_request, reply) => {
    if (!events.add(reply)) return reply.code(503).send({ detail: 'Too many event streams' });
  });

  app.post('/api/gateway/drain', { onRequest: requireAuth }, async (request, reply) => {
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
        .send({ detail: `Unknown drain action '${describeAction(action)}'; expected 'drain' or 'cancel'` });
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

  app.post('/api/gateway/restart', { onRequest: requireAuth }, async (request, reply) => {
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
      return reply.code(500).send({ detail: `Failed to restart gateway: ${errorMessage(error)}` });
    }
  });

  registerAssets(app, '/assets/', options.assets ?? {});
  app.get('/', async (_request, reply) => {
    const html = options.renderPage?.({
      sessionToken: gates.authRequired ? undefined : gates.sessionToken,
      loginRequired: gates.authRequired,
      version: options.version,
    });
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', DASHBOARD_PAGE_CSP)
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
