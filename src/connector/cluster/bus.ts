import { z } from 'zod';

/**
 * What connector instances tell each other when several run behind one address (issue #8). One
 * instance alone needs none of it, so a connector without `RELAY_REDIS_URL` has no bus at all.
 *
 * - socket directory: which instance holds which gateway socket, so an outbox row claimed by one
 *   instance reaches a gateway connected to another;
 * - requests: "send this delivery on your socket", "run this op on your platform connection";
 * - events: revocations and key rotations, acted on by every instance at once;
 * - leases: one instance at a time polls a given Telegram bot;
 * - chat owners: which instance holds a web-chat visitor's socket;
 * - liveness: a dead instance's outbox claims are released by the others.
 */

export interface SocketAnnouncement {
  instanceId: string;
  connectionId: string;
  gatewayId: string;
  tenantId: string;
}

/** Where a session's traffic went, so an interrupt reaches the same place (spec decision 6). */
export interface SessionPlacementRecord {
  tenantId: string;
  chatId: string;
  endpoint: string;
  gatewayId: string | null;
}

export const ClusterEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('revoked'), gatewayId: z.string().max(256) }),
  z.object({ type: z.literal('keys_rotated'), tenantId: z.string().max(256) }),
]);
export type ClusterEvent = z.infer<typeof ClusterEventSchema>;

export const ClusterRequestSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('socket_delivery'),
    connectionId: z.string().max(128),
    tenantId: z.string().max(256),
    delivery: z.object({
      id: z.string().max(128),
      kind: z.enum(['message', 'interrupt']),
      sessionKey: z.string().max(1024),
      body: z.string().max(4 * 1024 * 1024),
    }),
  }),
  z.object({
    type: z.literal('platform_op'),
    platform: z.string().max(64),
    action: z.unknown(),
  }),
]);
export type ClusterRequest = z.infer<typeof ClusterRequestSchema>;

export interface ClusterHandlers {
  /** A request another instance addressed to this one; the value is sent back as the reply. */
  onRequest(request: ClusterRequest): Promise<unknown>;
  onEvent(event: ClusterEvent): void;
}

export interface ClusterBus {
  readonly instanceId: string;
  start(handlers: ClusterHandlers): Promise<void>;
  stop(): Promise<void>;
  /** Resolves when the bus answers a trivial command (readiness). */
  ping(): Promise<void>;

  announceSocket(socket: SocketAnnouncement): Promise<void>;
  withdrawSocket(socket: SocketAnnouncement): Promise<void>;
  /** The tenant's sockets held by live instances, this one included. */
  socketsOf(tenantId: string): Promise<SocketAnnouncement[]>;

  /** Ask `instanceId`; `undefined` when no answer came within `timeoutMs`. */
  request(instanceId: string, request: ClusterRequest, timeoutMs: number): Promise<unknown>;
  publish(event: ClusterEvent): Promise<void>;

  /** Take or keep the named lease for `ttlMs`; false while another live instance holds it. */
  holdLease(name: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string): Promise<void>;

  claimChat(platform: string, chatId: string): Promise<void>;
  releaseChat(platform: string, chatId: string): Promise<void>;
  /** The live instance holding the chat's platform socket, if any. */
  chatOwner(platform: string, chatId: string): Promise<string | null>;

  rememberSession(sessionKey: string, placement: SessionPlacementRecord): Promise<void>;
  sessionPlacement(tenantId: string, sessionKey: string): Promise<SessionPlacementRecord | null>;

  /**
   * False when this instance's own heartbeat may have lapsed (no successful beat for most of the
   * alive TTL): the others may treat it as dead and release its claims.
   */
  heartbeatCurrent(): boolean;

  /** Those of `instanceIds` that are not alive (their heartbeat has lapsed). */
  deadInstances(instanceIds: readonly string[]): Promise<string[]>;
}
