import type { FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken, decodeUnverifiedUpgradeToken, verifyDecodedUpgradeToken } from '../auth/index.js';
import type { UnauthorizedCloseReason } from '../protocol/index.js';
import type { GatewayRecord, RelayStore } from './store/types.js';

/**
 * Who a gateway is, from its upgrade-token bearer (June §2, current §2): the gateway id is peeked
 * from the token, the token verified against that stored record's verify list (primary, plus the
 * previous secret during rotation), and the tenant taken from the record, never from the request.
 * Used by the `/relay` upgrade and by the HTTP routes a gateway calls with the same token
 * (`/relay/policy`, `/manage/*`). Fails closed: anything unexpected is `unauthorized`.
 */

export type GatewayAuthentication =
  | { ok: true; gateway: GatewayRecord }
  | { ok: false; reason: UnauthorizedCloseReason; detail: string };

export async function authenticateGateway(
  store: RelayStore,
  authorization: string | undefined,
  options: { now: number; allowNonExpiringTokens: boolean },
): Promise<GatewayAuthentication> {
  const token = bearerToken(authorization);
  if (!token) return { ok: false, reason: 'unauthorized', detail: 'missing bearer token' };
  // Decoded once: its claimed gatewayId only says which secrets to verify the same bytes against.
  const decoded = decodeUnverifiedUpgradeToken(token);
  if (decoded === null) return { ok: false, reason: 'unauthorized', detail: 'malformed token' };
  const gateway = await store.getGateway(decoded.gatewayId);
  if (!gateway) return { ok: false, reason: 'unauthorized', detail: 'unknown gateway' };
  if (gateway.revoked) return { ok: false, reason: 'unauthorized', detail: 'gateway revoked' };
  const verifyList = [gateway.secret];
  if (gateway.secondarySecret && (gateway.secondaryExpiresAt ?? 0) > options.now)
    verifyList.push(gateway.secondarySecret);
  const result = verifyDecodedUpgradeToken(decoded, verifyList, Math.floor(options.now / 1000), {
    allowNonExpiring: options.allowNonExpiringTokens,
  });
  if (result.ok && result.gatewayId === gateway.id) return { ok: true, gateway };
  // "expired" only for a correctly signed token of a live gateway (current §2).
  const reason = !result.ok && result.reason === 'expired' ? 'expired' : 'unauthorized';
  return { ok: false, reason, detail: result.ok ? 'gateway mismatch' : result.reason };
}

/**
 * The `onRequest` hook of the HTTP routes a gateway calls with its upgrade token (`/relay/policy`,
 * `/manage/*`, `/relay/media`): 401 before any body is read, else the gateway remembered for
 * `gatewayOf` in the handler.
 */
export function gatewayRequestAuth(options: {
  store: RelayStore;
  now: () => number;
  allowNonExpiringTokens: boolean;
}): {
  authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  gatewayOf: (request: FastifyRequest) => GatewayRecord;
} {
  const gateways = new WeakMap<object, GatewayRecord>();
  return {
    authenticate: async (request, reply) => {
      const auth = await authenticateGateway(options.store, request.headers.authorization, {
        now: options.now(),
        allowNonExpiringTokens: options.allowNonExpiringTokens,
      });
      if (!auth.ok) return reply.code(401).header('connection', 'close').send({ error: auth.reason });
      gateways.set(request, auth.gateway);
    },
    gatewayOf: (request) => {
      const gateway = gateways.get(request);
      if (!gateway) throw new Error('route reached without authentication');
      return gateway;
    },
  };
}
