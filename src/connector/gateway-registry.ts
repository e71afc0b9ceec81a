import { createHash } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { ConnectorFrameInput, EncodedLine, FrameWriter } from '../protocol/index.js';

/** One authenticated gateway socket. */
export interface GatewayConnection {
  readonly id: string;
  readonly gatewayId: string;
  /** From the stored credential record, never from anything the gateway said. */
  readonly tenantId: string;
  readonly ws: WebSocket;
  /** Frames to `ws`, coalesced per event-loop turn. */
  readonly writer: FrameWriter;
  readonly connectedAt: number;
  /** The platform served for the first `hello` (the socket's default identity), once received. */
  platform: string | undefined;
  /** Every identity the socket said `hello` for, in order; the first is the default (current §4.3). */
  identities: SocketIdentity[];
  handshaken: boolean;
  /** Said `going_idle` (current §9): no live delivery until it reconnects. */
  idle: boolean;
}

/** One `hello`: the platform and bot id as the gateway named them, and the platform served for it. */
export interface SocketIdentity {
  platform: string;
  botId: string;
  served: string;
}

/**
 * The identity an `outbound` frame speaks for: its `platform`/`botId` tag (on the frame, or inside
 * the action as older gateways put it) matched against the socket's hellos; untagged frames speak
 * for the first. Undefined when the tag names no identity of this socket.
 */
export function identityForTag(
  connection: GatewayConnection,
  tag: { platform?: string | undefined; botId?: string | undefined },
): SocketIdentity | undefined {
  const [first] = connection.identities;
  if (tag.platform === undefined || tag.platform === '') return first;
  return connection.identities.find(
    (identity) =>
      (identity.platform === tag.platform || identity.served === tag.platform) &&
      (tag.botId === undefined || tag.botId === '' || identity.botId === tag.botId),
  );
}

/**
 * Every frame the connector writes goes through here: only connector→gateway frames type-check.
 * Queued for the socket (written within this event-loop turn); false if it is not open.
 */
export function sendFrame(
  connection: GatewayConnection,
  frame: ConnectorFrameInput | EncodedLine,
  done?: (error?: Error) => void,
): boolean {
  if (connection.ws.readyState !== connection.ws.OPEN) return false;
  connection.writer.write(frame, done);
  return true;
}

/**
 * Live gateway sockets of this instance, by gateway and by tenant. A gateway almost always has one
 * socket here, so it is kept as itself; a Set only once a second one joins (a Set costs ~150 bytes,
 * at 100k idle gateways 15 MB).
 */
export class GatewayRegistry {
  private readonly byId = new Map<string, GatewayConnection>();
  private readonly byGateway = new Map<string, GatewayConnection | Set<GatewayConnection>>();
  private readonly byTenant = new Map<string, Set<GatewayConnection>>();

  add(connection: GatewayConnection): void {
    this.byId.set(connection.id, connection);
    const held = this.byGateway.get(connection.gatewayId);
    if (held === undefined) this.byGateway.set(connection.gatewayId, connection);
    else if (held instanceof Set) held.add(connection);
    else if (held !== connection) this.byGateway.set(connection.gatewayId, new Set([held, connection]));
    addTo(this.byTenant, connection.tenantId, connection);
  }

  remove(connection: GatewayConnection): void {
    this.byId.delete(connection.id);
    const held = this.byGateway.get(connection.gatewayId);
    if (held === connection) this.byGateway.delete(connection.gatewayId);
    else if (held instanceof Set) {
      held.delete(connection);
      if (held.size === 0) this.byGateway.delete(connection.gatewayId);
    }
    removeFrom(this.byTenant, connection.tenantId, connection);
  }

  get size(): number {
    return this.byId.size;
  }

  get(connectionId: string): GatewayConnection | undefined {
    return this.byId.get(connectionId);
  }

  ofGateway(gatewayId: string): GatewayConnection[] {
    const held = this.byGateway.get(gatewayId);
    if (held === undefined) return [];
    return held instanceof Set ? [...held] : [held];
  }

  all(): IterableIterator<GatewayConnection> {
    return this.byId.values();
  }

  /**
   * The socket that should receive a session's traffic: the one named if it is still open, else
   * the preferred gateway's, else the tenant's — chosen by a hash of the session key so a session
   * keeps landing on the same gateway instance while the set of sockets is unchanged.
   */
  pick(
    tenantId: string,
    sessionKey: string,
    prefer: { connectionId?: string | undefined; gatewayId?: string | null | undefined } = {},
  ): GatewayConnection | undefined {
    const named = prefer.connectionId ? this.byId.get(prefer.connectionId) : undefined;
    if (named?.handshaken && !named.idle && named.tenantId === tenantId) return named;
    return pickForSession(this.ready(this.byTenant.get(tenantId)), (c) => c.id, sessionKey, {
      gatewayId: prefer.gatewayId,
    });
  }

  private ready(set: Set<GatewayConnection> | undefined): GatewayConnection[] {
    return [...(set ?? [])].filter((c) => c.handshaken && !c.idle && c.ws.readyState === c.ws.OPEN);
  }
}

/**
 * The socket that should receive a session's traffic: the one named if present, else one of the
 * preferred gateway's, else any — chosen by a hash of the session key so a session keeps landing
 * on the same gateway instance while the set of sockets is unchanged. Local and remote (other
 * connector instances') sockets are chosen by this one rule.
 */
export function pickForSession<T extends { gatewayId: string }>(
  candidates: readonly T[],
  idOf: (candidate: T) => string,
  sessionKey: string,
  prefer: { connectionId?: string | undefined; gatewayId?: string | null | undefined } = {},
): T | undefined {
  const named = prefer.connectionId ? candidates.find((c) => idOf(c) === prefer.connectionId) : undefined;
  if (named) return named;
  const preferred = prefer.gatewayId ? candidates.filter((c) => c.gatewayId === prefer.gatewayId) : [];
  const pool = [...(preferred.length > 0 ? preferred : candidates)];
  if (pool.length === 0) return undefined;
  pool.sort((a, b) => (idOf(a) < idOf(b) ? -1 : 1));
  const hash = createHash('sha1').update(sessionKey).digest().readUInt32BE(0);
  return pool[hash % pool.length];
}

function addTo(map: Map<string, Set<GatewayConnection>>, key: string, connection: GatewayConnection): void {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(connection);
}

function removeFrom(
  map: Map<string, Set<GatewayConnection>>,
  key: string,
  connection: GatewayConnection,
): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(connection);
  if (set.size === 0) map.delete(key);
}
