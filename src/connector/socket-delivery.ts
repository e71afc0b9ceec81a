import type { Logger } from 'pino';
import { errorMessage } from '../common/errors.js';
import { type DeliveryFrame, deliveryLine, EncodedLine } from '../protocol/index.js';
import type { ClusterBus, SocketAnnouncement } from './cluster/bus.js';
import { type GatewayConnection, type GatewayRegistry, pickForSession } from './gateway-registry.js';
import type { ConnectorMetrics } from './metrics.js';
import type { SessionDirectory } from './session-directory.js';
import type { DeliveryRecord } from './store/types.js';

/**
 * Deliveries for outbound-only gateways (no endpoint): an `inbound` frame on one of the tenant's
 * sockets, acknowledged by `inbound_ack`, or an `interrupt_inbound` frame. The socket may be held
 * by another connector instance; then that instance is asked over the cluster bus to send it.
 */

/** `invalid`: the stored body makes no valid frame, so no attempt can ever deliver it. */
export type SocketOutcome =
  | { kind: 'delivered' }
  | { kind: 'no_socket' }
  | { kind: 'failed'; error: string }
  | { kind: 'invalid'; error: string };

/** A delivery's frame, encoded: its type and its one NDJSON line. */
interface EncodedFrame {
  type: DeliveryFrame['type'];
  line: string;
}

/** The part of a delivery a socket needs; what crosses the bus between instances. */
export type SocketDeliveryWork = Pick<DeliveryRecord, 'id' | 'kind' | 'sessionKey' | 'body'>;

interface PendingAck {
  tenantId: string;
  connectionId: string;
  resolve: (acked: boolean) => void;
  timer: NodeJS.Timeout;
}

export interface SocketDeliveryOptions {
  registry: GatewayRegistry;
  sessions: SessionDirectory;
  log: Logger;
  bus?: ClusterBus | undefined;
  metrics?: ConnectorMetrics | undefined;
  ackTimeoutMs?: number;
}

/** Extra time a remote instance gets beyond the ack timeout before the attempt counts as failed. */
const REMOTE_MARGIN_MS = 5_000;

export class SocketDelivery {
  private readonly pendingAcks = new Map<string, PendingAck>();
  private readonly ackTimeoutMs: number;

  constructor(private readonly options: SocketDeliveryOptions) {
    this.ackTimeoutMs = options.ackTimeoutMs ?? 30_000;
  }

  async deliver(delivery: DeliveryRecord): Promise<SocketOutcome> {
    // Checked (or, for a body in the shape ingest writes, spliced) before looking for a socket.
    const framed = deliveryLine(delivery);
    if (!framed.ok) return { kind: 'invalid', error: framed.error };
    const { registry, sessions, bus } = this.options;
    const placement = sessions.get(delivery.sessionKey, delivery.tenantId);
    const prefer = { connectionId: placement?.connectionId, gatewayId: delivery.gatewayId };
    if (bus) {
      // Every instance chooses among the same sockets (the cluster's directory) by the same rule,
      // so a session keeps landing on one gateway process whichever instance claims its rows.
      const everywhere = await bus.socketsOf(delivery.tenantId).catch((error: unknown) => {
        this.options.log.warn(
          { err: errorMessage(error) },
          'socket directory unavailable; trying local sockets',
        );
        return null;
      });
      const chosen =
        everywhere && pickForSession(everywhere, (s) => s.connectionId, delivery.sessionKey, prefer);
      if (chosen && chosen.instanceId !== bus.instanceId) {
        sessions.noteConnection(delivery.sessionKey, chosen.connectionId);
        return this.forward(chosen, delivery);
      }
      // Ours: that very socket, not a local re-pick (which could choose another gateway process).
      const mine = chosen ? registry.get(chosen.connectionId) : undefined;
      if (mine?.handshaken && !mine.idle && mine.tenantId === delivery.tenantId) {
        sessions.noteConnection(delivery.sessionKey, mine.id);
        return this.sendOn(mine, delivery.id, framed);
      }
    }
    const local = registry.pick(delivery.tenantId, delivery.sessionKey, prefer);
    if (!local) return { kind: 'no_socket' };
    sessions.noteConnection(delivery.sessionKey, local.id);
    return this.sendOn(local, delivery.id, framed);
  }

  private async forward(to: SocketAnnouncement, delivery: DeliveryRecord): Promise<SocketOutcome> {
    const bus = this.options.bus;
    if (!bus) return { kind: 'no_socket' };
    const reply = await bus.request(
      to.instanceId,
      {
        type: 'socket_delivery',
        connectionId: to.connectionId,
        tenantId: delivery.tenantId,
        delivery: {
          id: delivery.id,
          kind: delivery.kind,
          sessionKey: delivery.sessionKey,
          body: delivery.body,
        },
      },
      this.ackTimeoutMs + REMOTE_MARGIN_MS,
    );
    const outcome = parseOutcome(reply);
    this.options.metrics?.busRequests.inc({
      type: 'socket_delivery',
      outcome: outcome ? 'answered' : 'no_answer',
    });
    return outcome ?? { kind: 'failed', error: `no answer from instance ${to.instanceId}` };
  }

  /** Another instance asks this one to deliver on a socket it holds. */
  async deliverHere(
    connectionId: string,
    tenantId: string,
    work: SocketDeliveryWork,
  ): Promise<SocketOutcome> {
    const connection = this.options.registry.get(connectionId);
    if (!connection || connection.tenantId !== tenantId || !connection.handshaken || connection.idle) {
      // A directory entry left by an earlier run of this instance: drop it so it is not chosen again.
      if (!connection)
        await this.options.bus
          ?.withdrawSocket({ instanceId: this.options.bus.instanceId, connectionId, tenantId, gatewayId: '' })
          .catch(() => undefined);
      return { kind: 'no_socket' };
    }
    // The body crossed the bus as text: this instance checks it, as the claiming one did.
    const framed = deliveryLine(work);
    if (!framed.ok) return { kind: 'invalid', error: framed.error };
    return this.sendOn(connection, work.id, framed);
  }

  /** `inbound_ack` from a gateway; only its own tenant's deliveries can be acknowledged. */
  acknowledge(connection: GatewayConnection, bufferId: string | number): void {
    const pending = this.pendingAcks.get(String(bufferId));
    if (!pending || pending.tenantId !== connection.tenantId) return;
    this.settle(String(bufferId), true);
  }

  /** The socket finished its handshake: it may receive deliveries, from any instance. */
  connectionReady(connection: GatewayConnection): void {
    const bus = this.options.bus;
    if (!bus) return;
    bus
      .announceSocket(announcement(connection, bus.instanceId))
      .catch((error: unknown) =>
        this.options.log.warn(
          { err: errorMessage(error), connection: connection.id },
          'socket not announced',
        ),
      );
  }

  /** A socket closed: deliveries waiting for its acks are retried elsewhere or later. */
  connectionClosed(connection: GatewayConnection): void {
    for (const [id, pending] of this.pendingAcks) {
      if (pending.connectionId === connection.id) this.settle(id, false);
    }
    const bus = this.options.bus;
    if (bus && connection.handshaken) {
      bus
        .withdrawSocket(announcement(connection, bus.instanceId))
        .catch((error: unknown) =>
          this.options.log.warn(
            { err: errorMessage(error), connection: connection.id },
            'socket not withdrawn',
          ),
        );
    }
  }

  stop(): void {
    for (const id of [...this.pendingAcks.keys()]) this.settle(id, false);
  }

  /** `id` is the delivery's: the `bufferId` an `inbound` frame is acknowledged by. */
  private async sendOn(
    connection: GatewayConnection,
    id: string,
    frame: EncodedFrame,
  ): Promise<SocketOutcome> {
    if (frame.type === 'interrupt_inbound') {
      // Delivered once the frame is written to the socket, not when it is buffered.
      const written = await new Promise<boolean>((resolve) => {
        const queued = sendLine(connection, frame.line, (error) => resolve(!error));
        if (!queued) resolve(false);
      });
      return written ? { kind: 'delivered' } : { kind: 'failed', error: 'socket closed' };
    }
    let ackTimedOut = false;
    const acked = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        // Only our own entry: a concurrent send of the same delivery may have replaced it.
        if (this.pendingAcks.get(id)?.timer === timer) this.pendingAcks.delete(id);
        ackTimedOut = true;
        resolve(false);
      }, this.ackTimeoutMs);
      this.pendingAcks.set(id, {
        tenantId: connection.tenantId,
        connectionId: connection.id,
        resolve,
        timer,
      });
    });
    const sent = sendLine(connection, frame.line);
    if (!sent) this.settle(id, false);
    if (await acked) return { kind: 'delivered' };
    // No ack while the socket stayed open: a reference (June) gateway, which handles `inbound`
    // frames but never acks them. Re-sending would run the turn again, so the frame counts as
    // delivered. Frames whose socket closed before an ack are redelivered after reconnect.
    if (ackTimedOut && connection.ws.readyState === connection.ws.OPEN) return { kind: 'delivered' };
    return { kind: 'failed', error: 'no inbound_ack' };
  }

  private settle(id: string, acked: boolean): void {
    const pending = this.pendingAcks.get(id);
    if (!pending) return;
    this.pendingAcks.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(acked);
  }
}

/**
 * `sendFrame` for a frame already encoded by `deliveryLine` (built from a frame that type-checks
 * as a connector→gateway frame, or spliced into the same bytes): queued for the socket, false if
 * it is not open.
 */
function sendLine(connection: GatewayConnection, line: string, done?: (error?: Error) => void): boolean {
  if (connection.ws.readyState !== connection.ws.OPEN) return false;
  // Through `write` (not around it), so a writer that counts what it took sees this frame too.
  connection.writer.write(new EncodedLine(line), done);
  return true;
}

function announcement(connection: GatewayConnection, instanceId: string): SocketAnnouncement {
  return {
    instanceId,
    connectionId: connection.id,
    gatewayId: connection.gatewayId,
    tenantId: connection.tenantId,
  };
}

function parseOutcome(reply: unknown): SocketOutcome | undefined {
  const value = reply as { kind?: unknown; error?: unknown } | undefined;
  if (value?.kind === 'delivered' || value?.kind === 'no_socket') return { kind: value.kind };
  if (value?.kind === 'failed' || value?.kind === 'invalid')
    return { kind: value.kind, error: String(value.error ?? value.kind) };
  return undefined;
}
