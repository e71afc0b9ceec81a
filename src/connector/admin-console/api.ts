import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { PrivateTargets } from '../../common/ssrf.js';
import { ENROLLMENT_TOKEN_TTL_SECONDS } from '../../protocol/index.js';
import {
  AdminConflictError,
  AdminError,
  AdminNotFoundError,
  type AuditActor,
  addRoute,
  auditViews,
  createdTenantView,
  createEnrollmentToken,
  createTenant,
  deadLetterViews,
  deliveryKeyView,
  deliveryViews,
  discardDeadLetter,
  enrollmentTokenView,
  type GatewayPresence,
  issueTenantToken,
  listGatewaySummaries,
  MAX_LIST_LIMIT,
  outboxDepth,
  overview,
  retryDeadLetter,
  revokeGateway,
  rotateDeliveryKey,
  rotateGatewaySecret,
  routeViews,
  tenantTokenView,
  tenantViews,
} from '../admin.js';
import type { RelayStore } from '../store/types.js';
import type { AdminAuth } from './auth.js';
import type { AdminEvents, AdminSnapshot } from './events.js';

/**
 * The routes under `/admin/api/` (docs/admin-api.md). Each one validates its input with zod, calls
 * the service layer (`../admin.ts`, the same functions behind `hermes connector … --json`) and
 * answers its view; every mutation is audited with actor `admin-api` and the client address.
 */

export const ADMIN_API_PREFIX = '/admin/api';
/** Largest request body the API reads. */
export const ADMIN_BODY_LIMIT = 16 * 1024;

export interface AdminApiOptions {
  store: RelayStore;
  log: Logger;
  auth: AdminAuth;
  version: string;
  instanceId: string;
  startedAt: number;
  presence: GatewayPresence;
  /** Platforms this connector serves (a route for another is refused). */
  platforms: readonly string[];
  allowPrivateTargets: PrivateTargets;
  rotationWindowMs: number;
  events: AdminEvents;
  /** Close the gateway's live sockets here and tell the cluster. */
  onRevoked(gatewayId: string): void;
  /** Drop cached delivery keys here and tell the cluster. */
  onKeysRotated(tenantId: string): void;
  /** A dead letter went back to the outbox: deliver it now. */
  onRequeued(): void;
  now?: () => number;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const limitQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).default(50),
});
const idParam = z.object({ id: z.string().min(1).max(256) });
const tenantParam = z.object({ tenant: z.string().min(1).max(256) });
const confirmBody = z.object({ confirm: z.string().max(256).optional() }).strict();
const emptyBody = z.object({}).strict();

/** The first problem of a failed parse, on one line: `name: Required`. */
function problem(error: z.ZodError): string {
  const [issue] = error.issues;
  if (!issue) return 'invalid input';
  const where = issue.path.join('.');
  return where ? `${where}: ${issue.message}` : issue.message;
}

function parse<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) throw new ApiError(400, `invalid ${what}: ${problem(parsed.error)}`);
  return parsed.data;
}

/** The confirmation of an irreversible action: `{"confirm": "<id>"}` naming the same id. */
function requireConfirm(body: unknown, id: string): void {
  const { confirm } = parse(confirmBody, body, 'body');
  if (confirm !== id) throw new ApiError(400, `confirm by sending {"confirm": "${id}"}`);
}

type SnapshotSource = Pick<
  AdminApiOptions,
  'store' | 'version' | 'instanceId' | 'startedAt' | 'presence' | 'now'
>;

/** What `GET /admin/api/events` sends: the overview, each gateway's live state, the outbox. */
export function adminSnapshot(options: SnapshotSource): () => Promise<AdminSnapshot> {
  const { store } = options;
  const now = options.now ?? Date.now;
  return async () => {
    const at = now();
    const summaries = await listGatewaySummaries(store, undefined, at, options.presence);
    const [view, outbox] = await Promise.all([
      overview(store, {
        version: options.version,
        instance: options.instanceId,
        startedAt: options.startedAt,
        now: at,
        gateways: summaries,
      }),
      outboxDepth(store),
    ]);
    return {
      at: new Date(at).toISOString(),
      overview: view,
      gateways: summaries.map((g) => ({
        id: g.id,
        tenant: g.tenant,
        connected: g.connected,
        revoked: g.revoked,
        idleSince: g.idleSince,
        buffered: g.buffered,
        lastSeen: g.lastSeen,
      })),
      outbox,
    };
  };
}

export function registerAdminApi(app: FastifyInstance, options: AdminApiOptions): void {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const actor = (request: FastifyRequest): AuditActor => ({ actor: 'admin-api', address: request.ip });
  const gateways = (tenantId?: string) => listGatewaySummaries(store, tenantId, now(), options.presence);
  const snapshot = adminSnapshot(options);

  app.register(
    async (api) => {
      api.addHook('onRoute', (route) => {
        route.bodyLimit = ADMIN_BODY_LIMIT;
      });
      api.addHook(
        'onRequest',
        options.auth.hook((request, status) =>
          log.info({ address: request.ip, status, path: request.url.split('?', 1)[0] }, 'admin API refused'),
        ),
      );
      api.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
        if (error instanceof ApiError) return reply.code(error.status).send({ error: error.message });
        if (error instanceof AdminNotFoundError) return reply.code(404).send({ error: error.message });
        if (error instanceof AdminConflictError) return reply.code(409).send({ error: error.message });
        if (error instanceof AdminError) return reply.code(400).send({ error: error.message });
        const status = error.statusCode ?? 500;
        if (status >= 500) {
          log.error({ err: error.message, url: request.url }, 'admin API request failed');
          return reply.code(500).send({ error: 'internal error' });
        }
        const message =
          error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
            ? `request body too large (at most ${ADMIN_BODY_LIMIT} bytes)`
            : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
              ? 'expected an application/json body'
              : error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || error instanceof SyntaxError
                ? 'malformed request: invalid JSON body'
                : error.message.split('\n', 1)[0];
        return reply.code(status === 415 ? 400 : status).send({ error: message });
      });
      api.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'no such admin API route' }));
      api.addHook('onSend', async (_request, reply) => {
        reply.header('cache-control', 'no-store');
      });
      // Listeners of the event stream hear of a change at once, not up to CHECK_MS later.
      api.addHook('onResponse', async (request, reply) => {
        if (request.method !== 'GET' && reply.statusCode < 400) options.events.changed();
      });

      api.get('/overview', async () => (await snapshot()).overview);

      api.get('/tenants', async () => tenantViews(store));
      api.post('/tenants', async (request, reply) => {
        const body = parse(z.object({ name: z.string().max(64) }).strict(), request.body, 'body');
        const created = await createTenant(store, body.name, now(), actor(request));
        return reply.code(201).send(createdTenantView(created));
      });
      api.post('/tenants/:tenant/tokens', async (request, reply) => {
        const { tenant } = parse(tenantParam, request.params, 'path');
        parse(emptyBody, request.body, 'body');
        const issued = await issueTenantToken(store, tenant, now(), actor(request));
        return reply.code(201).send(tenantTokenView(issued));
      });
      api.post('/tenants/:tenant/enroll-tokens', async (request, reply) => {
        const { tenant } = parse(tenantParam, request.params, 'path');
        const { ttlSeconds } = parse(
          z
            .object({
              ttlSeconds: z
                .number()
                .int()
                .min(60)
                .max(365 * 86_400)
                .optional(),
            })
            .strict(),
          request.body,
          'body',
        );
        const minted = await createEnrollmentToken(
          store,
          tenant,
          (ttlSeconds ?? ENROLLMENT_TOKEN_TTL_SECONDS) * 1000,
          now(),
          actor(request),
        );
        return reply.code(201).send(enrollmentTokenView(minted));
      });
      api.post('/tenants/:tenant/delivery-key/rotate', async (request) => {
        const { tenant } = parse(tenantParam, request.params, 'path');
        parse(emptyBody, request.body, 'body');
        const rotated = await rotateDeliveryKey(
          store,
          tenant,
          options.rotationWindowMs,
          now(),
          actor(request),
        );
        options.onKeysRotated(rotated.tenant.id);
        return deliveryKeyView(rotated);
      });

      api.get('/gateways', async (request) => {
        const { tenant } = parse(
          z.object({ tenant: z.string().min(1).max(256).optional() }),
          request.query,
          'query',
        );
        return gateways(tenant);
      });
      api.post('/gateways/:id/revoke', async (request) => {
        const { id } = parse(idParam, request.params, 'path');
        if (!(await store.getGateway(id))) throw new AdminNotFoundError(`no gateway "${id}"`);
        requireConfirm(request.body, id);
        const revoked = await revokeGateway(store, id, now(), actor(request));
        options.onRevoked(revoked.id);
        return { id: revoked.id, revoked: true };
      });
      api.post('/gateways/:id/rotate', async (request) => {
        const { id } = parse(idParam, request.params, 'path');
        parse(emptyBody, request.body, 'body');
        const { secret } = await rotateGatewaySecret(
          store,
          id,
          options.rotationWindowMs,
          now(),
          actor(request),
        );
        return { id, secret };
      });

      api.get('/routes', async () => routeViews(store));
      api.post('/routes', async (request, reply) => {
        const body = parse(
          z
            .object({
              tenant: z.string().min(1).max(256),
              platform: z.string().min(1).max(64),
              key: z.string().min(1).max(256),
              endpoint: z.string().max(2048).optional(),
              gateway: z.string().min(1).max(256).optional(),
            })
            .strict(),
          request.body,
          'body',
        );
        if (!options.platforms.includes(body.platform))
          throw new ApiError(
            400,
            `platform ${body.platform}: this connector serves ${options.platforms.join(', ') || 'no platform'}`,
          );
        const route = await addRoute(
          store,
          {
            tenantRef: body.tenant,
            platform: body.platform,
            routeKey: body.key,
            endpoint: body.endpoint,
            gatewayId: body.gateway,
            allowPrivateTargets: options.allowPrivateTargets,
          },
          now(),
          actor(request),
        );
        return reply.code(201).send(route);
      });

      api.get('/outbox', async () => outboxDepth(store));
      api.get('/deliveries', async (request) => {
        const { limit } = parse(limitQuery, request.query, 'query');
        return deliveryViews(store, limit);
      });
      api.get('/dead-letters', async (request) => {
        const { limit } = parse(limitQuery, request.query, 'query');
        return deadLetterViews(store, limit);
      });
      api.post('/dead-letters/:id/retry', async (request) => {
        const { id } = parse(idParam, request.params, 'path');
        parse(emptyBody, request.body, 'body');
        await retryDeadLetter(store, id, now(), actor(request));
        options.onRequeued();
        return { id, requeued: true };
      });
      api.post('/dead-letters/:id/discard', async (request) => {
        const { id } = parse(idParam, request.params, 'path');
        requireConfirm(request.body, id);
        await discardDeadLetter(store, id, now(), actor(request));
        return { id, discarded: true };
      });

      api.get('/audit', async (request) => {
        const query = parse(
          limitQuery.extend({ tenant: z.string().min(1).max(256).optional() }),
          request.query,
          'query',
        );
        return auditViews(store, { limit: query.limit, tenant: query.tenant });
      });

      api.get('/events', async (_request, reply: FastifyReply) => {
        if (!(await options.events.add(reply)))
          return reply.code(429).send({ error: 'too many admin event streams open; close one first' });
      });
    },
    { prefix: ADMIN_API_PREFIX },
  );
}
