import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { errorMessage } from '../common/errors.js';
import { describeZodError, MANAGE_PATH_PREFIX, POLICY_PATH } from '../protocol/index.js';
import { revokeGateway } from './admin.js';
import { gatewayRequestAuth } from './gateway-auth.js';
import type { GatewayRecord, RelayStore } from './store/types.js';

/**
 * The routes a gateway calls with its upgrade-token bearer (current §11): `POST /relay/policy`, a
 * full replace of what it declares relevant on one platform, and `/manage/*`, of which
 * `deprovision` is implemented (the others' bodies are not public: 501 after authentication).
 * The tenant and instance always come from the authenticated record, never from the body.
 */

export const PolicyDeclarationSchema = z.object({
  platform: z.string().min(1).max(128),
  requireAddress: z.boolean(),
  freeResponseScopes: z.array(z.string().min(1).max(256)).max(200),
  allowOtherBots: z.boolean(),
});

/** What a policy is keyed by besides tenant and platform: the instance, else the gateway itself. */
export function instanceKeyOf(gateway: GatewayRecord): string {
  return gateway.instanceId ?? gateway.id;
}

export interface ManagementOptions {
  store: RelayStore;
  log: Logger;
  allowNonExpiringTokens: boolean;
  now: () => number;
  /** A gateway was revoked here: close its sockets and tell the cluster. */
  onRevoked: (gatewayId: string) => void;
}

const UNIMPLEMENTED_MANAGE_ROUTES = ['link', 'scope', 'scope/release', 'principal', 'dm-default'];

export function registerManagementRoutes(app: FastifyInstance, options: ManagementOptions): void {
  // Authenticated before the body is read, like the enroll and provision routes.
  const { authenticate, gatewayOf } = gatewayRequestAuth(options);

  app.post(POLICY_PATH, { onRequest: authenticate }, async (request, reply) => {
    const parsed = PolicyDeclarationSchema.safeParse(request.body);
    if (!parsed.success) return reply.code(400).send({ error: describeZodError(parsed.error) });
    const gateway = gatewayOf(request);
    const policy = {
      tenantId: gateway.tenantId,
      platform: parsed.data.platform,
      instanceKey: instanceKeyOf(gateway),
      requireAddress: parsed.data.requireAddress,
      freeResponseScopes: [...new Set(parsed.data.freeResponseScopes)],
      allowOtherBots: parsed.data.allowOtherBots,
      updatedAt: options.now(),
    };
    await options.store.putPolicy(policy);
    options.log.info(
      { gatewayId: gateway.id, platform: policy.platform, requireAddress: policy.requireAddress },
      'relevance policy declared',
    );
    return reply.send({ ok: true });
  });

  app.post(`${MANAGE_PATH_PREFIX}/deprovision`, { onRequest: authenticate }, async (request, reply) => {
    const gateway = gatewayOf(request);
    try {
      await revokeGateway(options.store, gateway.id, options.now());
    } catch (error) {
      options.log.error({ gatewayId: gateway.id, err: errorMessage(error) }, 'deprovision failed');
      return reply.code(500).send({ error: 'deprovision failed' });
    }
    options.onRevoked(gateway.id);
    options.log.info({ gatewayId: gateway.id }, 'gateway deprovisioned (revoked)');
    return reply.send({ ok: true, gatewayId: gateway.id });
  });

  for (const route of UNIMPLEMENTED_MANAGE_ROUTES) {
    app.post(`${MANAGE_PATH_PREFIX}/${route}`, { onRequest: authenticate }, async (_request, reply) =>
      reply.code(501).send({ error: `not implemented: ${MANAGE_PATH_PREFIX}/${route}` }),
    );
  }
}
