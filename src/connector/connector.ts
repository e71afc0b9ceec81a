import type { AddressInfo } from 'node:net';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { bearerToken } from '../auth/index.js';
import { boundedCache } from '../common/cache.js';
import { errorMessage } from '../common/errors.js';
import { TargetGuard, widerPrivateTargets } from '../common/ssrf.js';
import { installJsonBodyParser } from '../http/json-body.js';
import { installSecurityHeaders } from '../http/security-headers.js';
import { fastifyTimeoutOptions, type ServerTimeouts } from '../http/server-limits.js';
import { MEDIA_PATH, RELAY_WS_PATH } from '../protocol/index.js';
import { livePresence, PresenceRecorder } from './admin.js';
import { registerAdminConsole } from './admin-console/index.js';
import type { ClusterBus, ClusterRequest } from './cluster/bus.js';
import { ClaimReaper } from './cluster/claim-reaper.js';
import { clusterAdapter, runForwardedOp } from './cluster/platform-routing.js';
import { RedisBus } from './cluster/redis-bus.js';
import type { ConnectorConfig } from './config.js';
import { CredentialService } from './credentials.js';
import { DeliveryEngine } from './delivery-engine.js';
import { ForgeryProbe } from './forgery-probe.js';
import { GatewayRegistry } from './gateway-registry.js';
import { IdentityResolver, type IdentityResult } from './identity.js';
import { registerManagementRoutes } from './management.js';
import { MediaStore } from './media.js';
import { registerMediaRoutes } from './media-routes.js';
import { ConnectorMetrics } from './metrics.js';
import { OpDispatcher } from './ops.js';
import type { PlatformAdapter, PlatformContext, PlatformState } from './platforms/types.js';
import { WebChatAdapter } from './platforms/webchat/adapter.js';
import { RelayServer } from './relay-server.js';
import { RelevanceGate } from './relevance.js';
import { RetentionPruner } from './retention.js';
import { isPostgresUrl } from './store/open.js';
import type { DeliveryRecord, RelayStore } from './store/types.js';
import { WakePoker } from './wake.js';

/** A running connector: HTTP API, `/relay` WebSocket, platform adapters and the delivery engine. */
export interface RunningConnector {
  readonly url: string;
  readonly port: number;
  readonly app: FastifyInstance;
  readonly store: RelayStore;
  readonly relay: RelayServer;
  readonly engine: DeliveryEngine;
  readonly metrics: ConnectorMetrics;
  readonly probe: ForgeryProbe;
  /** Set when `RELAY_REDIS_URL` joins this instance to a cluster. */
  readonly bus: ClusterBus | undefined;
  stop(): Promise<void>;
}

export interface StartConnectorOptions {
  config: ConnectorConfig;
  store: RelayStore;
  adapters: PlatformAdapter[];
  log: Logger;
  version: string;
  /** HTTP time limits (tests shorten them). */
  timeouts?: Partial<ServerTimeouts>;
}

const API_BODY_LIMIT = 64 * 1024;
/** How often expired media files are looked for. */
const MEDIA_SWEEP_INTERVAL_MS = 5 * 60_000;

export async function startConnector(options: StartConnectorOptions): Promise<RunningConnector> {
  const { config, store, log } = options;
  const startedAt = Date.now();
  const metrics = new ConnectorMetrics({
    version: options.version,
    platforms: options.adapters.map((adapter) => adapter.name),
  });
  const bus = config.redisUrl
    ? await RedisBus.connect({
        url: config.redisUrl,
        instanceId: config.instanceId,
        log: log.child({ part: 'bus' }),
      })
    : undefined;
  // Web-chat history lives in the store: the same on every instance, kept across restarts.
  for (const adapter of options.adapters) if (adapter instanceof WebChatAdapter) adapter.useStore(store);
  const ownAdapters = new Map(options.adapters.map((adapter) => [adapter.name, adapter]));
  const served = bus
    ? options.adapters.map((adapter) =>
        clusterAdapter(adapter, {
          bus,
          metrics,
          log: log.child({ part: 'cluster', platform: adapter.name }),
        }),
      )
    : options.adapters;
  const adapters = new Map(served.map((adapter) => [adapter.name, adapter]));
  const registry = new GatewayRegistry();
  const media = new MediaStore(config.mediaDir, { ttlMs: config.mediaTtlMs });
  // The address gateways fetch re-hosted media from: RELAY_PUBLIC_URL, else where we listen.
  let publicBase = config.publicUrl ?? '';
  // The SSRF rule for endpoints (deliveries and probes); wake URLs also honour the older wake-only setting.
  const targets = new TargetGuard({ allowPrivate: config.allowPrivateTargets });
  const wakeTargets = widerPrivateTargets(config.allowPrivateTargets, config.wakeAllowPrivate);
  const engine = new DeliveryEngine({
    targets,
    store,
    registry,
    metrics,
    log: log.child({ part: 'delivery' }),
    instanceId: config.instanceId,
    bus,
    ...(bus ? { alive: () => bus.heartbeatCurrent() } : {}),
    platforms: [...ownAdapters.keys()],
    onNoSocket: (delivery) => wakeIdle(delivery),
    relevant: (route, platform, inbound) => relevance.relevant(route, platform, inbound),
    rehost: async (tenantId, attachment) => {
      const source = await attachment.open();
      // A refused or failed copy leaves the source unread: it is drained (not destroyed: a web-chat
      // upload's request must still carry its answer), and a platform download that fails later
      // has a listener, so its error cannot be uncaught.
      source.on('error', () => undefined);
      let put: Awaited<ReturnType<MediaStore['put']>>;
      try {
        put = await media.put(tenantId, source, {
          contentType: attachment.mime ?? 'application/octet-stream',
          filename: attachment.filename ?? '',
        });
      } finally {
        if (!source.readableEnded) source.resume();
      }
      if (!put.ok) {
        log.warn({ kind: attachment.kind, reason: put.reason }, 'attachment not re-hosted; dropped');
        return undefined;
      }
      return {
        url: `${publicBase}${MEDIA_PATH}/${put.id}`,
        kind: attachment.kind,
        mime: attachment.mime,
        size: put.size,
        filename: attachment.filename,
        caption: undefined,
      };
    },
  });
  const relevance = new RelevanceGate(store);
  const poker = new WakePoker({ log: log.child({ part: 'wake' }), allowPrivate: wakeTargets });
  // Looked up at most every few seconds per tenant and gateway, not on every retry of every row.
  const recentlyChecked = boundedCache<string, true>({ max: 100_000, ttlMs: 5_000 });
  const wakeIdle = (delivery: DeliveryRecord): void => {
    const key = `${delivery.tenantId}\u0000${delivery.gatewayId ?? ''}`;
    if (recentlyChecked.has(key)) return;
    recentlyChecked.set(key, true);
    void (async () => {
      const candidates = delivery.gatewayId
        ? [await store.getGateway(delivery.gatewayId)]
        : await store.listGateways(delivery.tenantId);
      for (const gateway of candidates)
        if (gateway && gateway.tenantId === delivery.tenantId && poker.due(gateway)) void poker.poke(gateway);
    })().catch((error: unknown) =>
      log.warn({ err: errorMessage(error) }, 'idle gateways not checked for a wake poke'),
    );
  };
  const ops = new OpDispatcher(store, adapters, config.defaultPlatform, metrics, log.child({ part: 'ops' }), {
    media,
  });
  const relay = new RelayServer({
    store,
    registry,
    ops,
    engine,
    metrics,
    log: log.child({ part: 'relay' }),
    allowNonExpiringTokens: config.allowNonExpiringTokens,
  });
  const credentials = new CredentialService({
    store,
    identity: new IdentityResolver(store, log.child({ part: 'identity' }), config.identityUrl),
    rotationWindowMs: config.rotationWindowMs,
    targets: { endpoint: config.allowPrivateTargets, wake: wakeTargets },
    routePlatform: (requested) =>
      requested && adapters.has(requested)
        ? requested
        : adapters.has(config.defaultPlatform)
          ? config.defaultPlatform
          : (served[0]?.name ?? config.defaultPlatform),
  });

  // Ready only between a complete start and the beginning of a stop, so a balancer sends nothing
  // to an instance whose adapters and engine are not running.
  let ready = false;
  let stopping: Promise<void> | undefined;
  const app = Fastify({
    logger: false,
    bodyLimit: API_BODY_LIMIT,
    forceCloseConnections: true,
    ...fastifyTimeoutOptions(options.timeouts),
  });
  installErrorHandling(app, log);
  installJsonBodyParser(app);
  installSecurityHeaders(app);

  // The caller is identified from its bearer before the body is read (onRequest runs first), so a
  // refused caller never gets to send (or trickle) a body.
  const identities = new WeakMap<object, IdentityResult>();
  const identify = async (request: FastifyRequest, reply: FastifyReply) => {
    const identity = await credentials.identify(bearerToken(request.headers.authorization));
    if (!identity.ok)
      return reply.code(identity.status).header('connection', 'close').send({ error: identity.error });
    identities.set(request, identity);
  };
  const identityOf = (request: FastifyRequest): IdentityResult =>
    identities.get(request) ?? { ok: false, status: 401, error: 'unauthorized' };
  app.post('/relay/enroll', { onRequest: identify }, async (request, reply) => {
    const outcome = await credentials.enroll(identityOf(request), request.body);
    return reply.code(outcome.status).send(outcome.body);
  });
  app.post('/relay/provision', { onRequest: identify }, async (request, reply) => {
    const outcome = await credentials.provision(identityOf(request), request.body);
    return reply.code(outcome.status).send(outcome.body);
  });
  registerManagementRoutes(app, {
    store,
    log: log.child({ part: 'manage' }),
    allowNonExpiringTokens: config.allowNonExpiringTokens,
    now: Date.now,
    onRevoked: (gatewayId) => {
      relay.closeGateway(gatewayId);
      void bus
        ?.publish({ type: 'revoked', gatewayId })
        .catch((error: unknown) =>
          log.warn({ err: errorMessage(error) }, 'revocation not published to the cluster'),
        );
    },
  });
  registerMediaRoutes(app, {
    store,
    media,
    log: log.child({ part: 'media' }),
    allowNonExpiringTokens: config.allowNonExpiringTokens,
    now: Date.now,
  });
  // Which gateways have a socket open (admin.ts GatewayPresence): ours from the registry, recorded
  // in the store for the CLI and the other instances.
  const socketOpen = (c: { ws: { readyState: number; OPEN: number } }) => c.ws.readyState === c.ws.OPEN;
  const presence = new PresenceRecorder({
    store,
    instanceId: config.instanceId,
    connectedHere: () => [...registry.all()].filter(socketOpen).map((c) => c.gatewayId),
    onError: (error) => log.warn({ err: errorMessage(error) }, 'gateway presence not recorded'),
  });
  registerAdminConsole(app, {
    admin: config.admin,
    store,
    log: log.child({ part: 'admin' }),
    version: options.version,
    instanceId: config.instanceId,
    startedAt,
    presence: livePresence(store, config.instanceId, (id) => registry.ofGateway(id).some(socketOpen)),
    platforms: [...adapters.keys()],
    allowPrivateTargets: config.allowPrivateTargets,
    rotationWindowMs: config.rotationWindowMs,
    onRevoked: (gatewayId) => {
      engine.forgetGateway(gatewayId);
      relay.closeGateway(gatewayId);
      void bus
        ?.publish({ type: 'revoked', gatewayId })
        .catch((error: unknown) =>
          log.warn({ err: errorMessage(error) }, 'revocation not published to the cluster'),
        );
    },
    onKeysRotated: (tenantId) => {
      engine.forgetDeliveryKeys(tenantId);
      void bus
        ?.publish({ type: 'keys_rotated', tenantId })
        .catch((error: unknown) =>
          log.warn({ err: errorMessage(error) }, 'key rotation not published to the cluster'),
        );
    },
    onRequeued: () => engine.wake(),
  });
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_request, reply) => {
    if (!ready) return reply.code(503).send({ ok: false, error: stopping ? 'shutting down' : 'starting' });
    try {
      await store.ping();
    } catch {
      return reply.code(503).send({ ok: false, error: 'store unreachable' });
    }
    try {
      await bus?.ping();
    } catch {
      return reply.code(503).send({ ok: false, error: 'redis unreachable' });
    }
    return { ok: true };
  });
  // Read at scrape time: the outbox and dead letters (shared store), this instance's web-chat sockets.
  metrics.sampleWith(async () => metrics.outboxDepth.set(await store.outboxDepth()));
  metrics.sampleWith(async () =>
    metrics.deadLetters.set(await store.countPrunable('deadLetters', Number.MAX_SAFE_INTEGER)),
  );
  metrics.sampleWith(() =>
    metrics.webchatConnections.set(
      options.adapters.reduce((n, a) => n + (a instanceof WebChatAdapter ? a.openSocketCount : 0), 0),
    ),
  );
  app.get('/metrics', async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.render()),
  );
  app.get('/', async () => ({
    name: 'hermes-relay connector',
    version: options.version,
    platforms: [...adapters.keys()],
    relay: RELAY_WS_PATH,
  }));
  for (const adapter of served) await adapter.registerRoutes?.(app);

  app.server.on('upgrade', (request, socket, head) => {
    const path = (request.url ?? '/').split('?', 1)[0];
    if (path === RELAY_WS_PATH) return relay.handleUpgrade(request, socket, head);
    for (const adapter of served) if (adapter.handleUpgrade?.(request, socket, head)) return;
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  await app.listen({ host: config.host, port: config.port });
  const port = (app.server.address() as AddressInfo).port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}`;
  publicBase ||= url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');

  const reaper = bus
    ? new ClaimReaper(store, bus, metrics, log.child({ part: 'cluster' }), () => engine.wake())
    : undefined;
  try {
    await bus?.start({
      onRequest: (request: ClusterRequest) =>
        request.type === 'socket_delivery'
          ? engine.deliverHere(request.connectionId, request.tenantId, request.delivery)
          : runForwardedOp(ownAdapters, request.platform, request.action),
      onEvent: (event) => {
        if (event.type === 'keys_rotated') return engine.forgetDeliveryKeys(event.tenantId);
        engine.forgetGateway(event.gatewayId);
        if (relay.closeGateway(event.gatewayId) > 0)
          log.info({ gatewayId: event.gatewayId }, 'revoked gateway disconnected (4401)');
      },
    });
  } catch (error) {
    await app.close();
    await bus?.stop();
    throw error;
  }

  const platformState: PlatformState = {
    get: (key) => store.getPlatformState(key, Date.now()),
    put: (key, value, ttlMs) => store.putPlatformState(key, value, Date.now() + ttlMs),
    insert: (key, value, ttlMs) => {
      const now = Date.now();
      return store.insertPlatformState(key, value, now + ttlMs, now);
    },
    delete: (key) => store.deletePlatformState(key),
  };
  const contextFor = (adapter: PlatformAdapter): PlatformContext => ({
    ingest: (inbound) => engine.ingest(adapter.name, inbound),
    log: log.child({ platform: adapter.name }),
    // The tenant was checked when the op was accepted (OpDispatcher).
    openMedia: (id) => media.openUnscoped(id),
    state: platformState,
  });
  const started: PlatformAdapter[] = [];
  try {
    for (const adapter of served) {
      const context = contextFor(adapter);
      adapter.attach?.(context);
      await adapter.start(context);
      started.push(adapter);
    }
  } catch (error) {
    for (const adapter of started) await adapter.stop().catch(() => undefined);
    await app.close();
    await bus?.stop();
    throw error;
  }
  relay.start();
  await engine.start();
  reaper?.start();
  presence.start();
  const probe = new ForgeryProbe(
    store,
    metrics,
    log.child({ part: 'probe' }),
    config.probeIntervalMs,
    targets,
  );
  probe.start();
  // Expired media go at start and then every few minutes (a GET of an expired id removes it too).
  const sweepMedia = () => {
    const removed = media.sweep();
    if (removed > 0) log.info({ removed }, 'expired media removed');
    store
      .purgePlatformState(Date.now())
      .catch((error: unknown) =>
        log.warn({ err: errorMessage(error) }, 'expired platform state not removed'),
      );
  };
  sweepMedia();
  const mediaSweeper = setInterval(sweepMedia, MEDIA_SWEEP_INTERVAL_MS);
  mediaSweeper.unref();
  // Old dead letters, audit events, chats, web-chat history, expired platform state (retention.ts).
  const pruner = new RetentionPruner({
    store,
    settings: config.retention,
    log: log.child({ part: 'retention' }),
  });
  pruner.start();
  log.info(
    {
      url,
      platforms: [...adapters.keys()],
      db: isPostgresUrl(config.db) ? 'postgres' : config.db,
      instance: config.instanceId,
      cluster: bus ? 'redis' : 'none',
    },
    'connector listening',
  );

  ready = true;
  return {
    url,
    port,
    app,
    store,
    relay,
    engine,
    metrics,
    probe,
    bus,
    stop: () => {
      ready = false;
      stopping ??= (async () => {
        probe.stop();
        clearInterval(mediaSweeper);
        await pruner.stop();
        reaper?.stop();
        for (const adapter of started)
          await adapter
            .stop()
            .catch((error: unknown) => log.warn({ err: errorMessage(error) }, 'adapter stop failed'));
        await relay.stop();
        await presence.stop();
        await engine.stop();
        await app.close();
        await bus?.stop();
        await store.close();
        log.info('connector stopped');
      })();
      return stopping;
    },
  };
}

/** Every error answers `{"error": …}` with a 4xx/5xx status; no stack trace ever leaves the process. */
function installErrorHandling(app: FastifyInstance, log: Logger): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) {
      log.error({ err: error.message, url: request.url }, 'request failed');
      return reply.code(status).send({ error: 'internal error' });
    }
    const message =
      error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'request body too large'
        : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'expected an application/json body'
          : error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
              error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
              error instanceof SyntaxError
            ? 'malformed request: invalid JSON body'
            : error.message;
    return reply.code(status === 415 ? 400 : status).send({ error: message });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not found' }));
}
