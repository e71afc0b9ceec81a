import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { type WebSocket, WebSocketServer } from 'ws';
import { errorMessage } from '../common/errors.js';
import {
  CLOSE_UNAUTHORIZED,
  FrameDecoder,
  FrameWriter,
  failedResult,
  type GatewayFrame,
  HANDSHAKE_TIMEOUT_MS,
  MAX_WS_MESSAGE_BYTES,
  OUTBOUND_OP_TIMEOUT_MS,
  type OutboundResult,
  PING_DEAD_AFTER_MS,
  PING_INTERVAL_MS,
  parseGatewayFrame,
  type UnauthorizedCloseReason,
} from '../protocol/index.js';
import type { DeliveryEngine } from './delivery-engine.js';
import { authenticateGateway, type GatewayAuthentication } from './gateway-auth.js';
import {
  type GatewayConnection,
  type GatewayRegistry,
  identityForTag,
  type SocketIdentity,
  sendFrame,
} from './gateway-registry.js';
import type { ConnectorMetrics } from './metrics.js';
import type { OpDispatcher } from './ops.js';
import type { GatewayRecord, RelayStore } from './store/types.js';

/**
 * The authenticated gateway WebSocket on `/relay` (reference §2, §4; spec decisions 1–2): verify
 * the bearer upgrade token against the gateway's verify list, complete the upgrade either way, and
 * close 4401 on failure; then answer `hello` with a descriptor and every `outbound` with exactly one
 * `outbound_result`.
 */

export interface RelayServerOptions {
  store: RelayStore;
  registry: GatewayRegistry;
  ops: OpDispatcher;
  engine: DeliveryEngine;
  metrics: ConnectorMetrics;
  log: Logger;
  allowNonExpiringTokens: boolean;
  pingIntervalMs?: number;
  revocationPollMs?: number;
  now?: () => number;
}

type Authentication = GatewayAuthentication;

export class RelayServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES });
  private readonly now: () => number;
  private pingTimer: NodeJS.Timeout | undefined;
  private revocationTimer: NodeJS.Timeout | undefined;
  private revocationWatermark: number;
  /**
   * Decodes every message that ends a line on a socket with nothing held back (nearly all): after
   * such a message a decoder holds nothing, so one serves them all and a socket keeps its own only
   * while a frame is split across messages.
   */
  private readonly sharedDecoder = new FrameDecoder();
  /** Gateways accepted this turn, their `last_seen_at` not written yet (see `noteSeen`). */
  private readonly seen = new Set<string>();
  /** Sockets whose first hello came this turn, not made ready yet (see `noteReady`). */
  private ready: RelayConnection[] = [];
  /** Idle clears still in flight on a store without `atomically` (see `noteIdleWrite`). */
  private readonly idleWrites = new Map<RelayConnection, Promise<void>>();
  /**
   * The socket listeners, made once for every socket (the socket is `this`, its connection a
   * property of it): per-socket closures are ~100 bytes each with their context.
   */
  private readonly listeners: {
    message: (this: WebSocket, data: Buffer, isBinary: boolean) => void;
    pong: (this: WebSocket) => void;
    error: (this: WebSocket, error: Error) => void;
    close: (this: WebSocket, code: number) => void;
  };

  constructor(private readonly options: RelayServerOptions) {
    this.now = options.now ?? Date.now;
    this.revocationWatermark = this.now();
    const server = this;
    this.listeners = {
      message(data, isBinary) {
        const connection = connectionOf(this);
        if (connection) server.onMessage(connection, data, isBinary);
      },
      pong() {
        const connection = connectionOf(this);
        if (connection) connection.lastPong = server.now();
      },
      error(error) {
        server.options.log.debug(
          { err: error.message, connection: connectionOf(this)?.id },
          'gateway socket error',
        );
      },
      close(code) {
        const connection = connectionOf(this);
        if (connection) server.onClose(connection, code);
      },
    };
  }

  start(): void {
    const pingEvery = this.options.pingIntervalMs ?? PING_INTERVAL_MS;
    const deadAfter = pingEvery * (PING_DEAD_AFTER_MS / PING_INTERVAL_MS);
    this.pingTimer = setInterval(() => this.keepalive(deadAfter), pingEvery);
    this.pingTimer.unref();
    this.revocationTimer = setInterval(() => void this.closeRevoked(), this.options.revocationPollMs ?? 250);
    this.revocationTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.pingTimer);
    clearInterval(this.revocationTimer);
    this.ready = [];
    for (const connection of this.options.registry.all()) connection.writer.flush();
    for (const client of this.wss.clients) client.close(1001, 'connector shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** Take a `/relay` upgrade. Authentication happens before the upgrade completes. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    // A function of the module, not a closure: a closure here would keep the request and `head`
    // alive for as long as the socket (its context holds every local of this function).
    socket.on('error', destroySocket);
    void this.authenticate(request)
      .catch((error: unknown): Authentication => {
        this.options.log.error({ err: errorMessage(error) }, 'gateway authentication failed with an error');
        return { ok: false, reason: 'unauthorized', detail: 'internal error' };
      })
      .then((auth) => {
        if (socket.destroyed) return;
        this.wss.handleUpgrade(request, socket, head, (ws) => {
          // `ws` has its own error listener on the socket from here on.
          socket.off('error', destroySocket);
          if (auth.ok) this.accept(ws, auth.gateway);
          else this.refuse(ws, auth, request);
        });
      });
  }

  /** Close every live socket of a gateway with 4401 (revocation kill switch). */
  closeGateway(gatewayId: string, reason: UnauthorizedCloseReason = 'unauthorized'): number {
    const connections = this.options.registry.ofGateway(gatewayId);
    for (const connection of connections) {
      connection.writer.flush();
      connection.ws.close(CLOSE_UNAUTHORIZED, reason);
    }
    return connections.length;
  }

  private authenticate(request: IncomingMessage): Promise<Authentication> {
    return authenticateGateway(this.options.store, request.headers.authorization, {
      now: this.now(),
      allowNonExpiringTokens: this.options.allowNonExpiringTokens,
    });
  }

  private refuse(
    ws: WebSocket,
    auth: Extract<Authentication, { ok: false }>,
    request: IncomingMessage,
  ): void {
    this.options.metrics.authFailures.inc({ reason: auth.detail.replace(/\s+/g, '_') });
    this.options.log.info(
      { reason: auth.reason, detail: auth.detail, remote: request.socket.remoteAddress },
      'gateway upgrade refused (4401)',
    );
    ws.close(CLOSE_UNAUTHORIZED, auth.reason);
  }

  private accept(ws: WebSocket, gateway: GatewayRecord): void {
    const { registry, metrics, log } = this.options;
    // Only what the socket needs is kept: never the gateway record (its secrets) nor the request.
    const connection = new RelayConnection(nextConnectionId(), gateway.id, gateway.tenantId, ws, this.now());
    (ws as RelayWebSocket)[CONNECTION] = connection;
    registry.add(connection);
    // A socket that never says hello is closed after the handshake timeout (spec §5); the timer
    // goes with the hello, so an established socket holds none.
    connection.helloTimer = setTimeout(closeWithoutHello, HANDSHAKE_TIMEOUT_MS, connection);
    connection.helloTimer.unref();
    metrics.connections.set(registry.size);
    // `lastSeen` is the last connection to within LAST_SEEN_RESOLUTION_MS: a gateway redialling
    // sooner (a reconnect storm, a flapping link) costs no write.
    if (gateway.lastSeenAt === null || this.now() - gateway.lastSeenAt >= LAST_SEEN_RESOLUTION_MS)
      this.noteSeen(gateway.id);
    if (log.isLevelEnabled('info'))
      log.info(
        { gatewayId: gateway.id, tenantId: gateway.tenantId, connection: connection.id },
        'gateway connected',
      );
    ws.on('message', this.listeners.message);
    ws.on('pong', this.listeners.pong);
    ws.on('error', this.listeners.error);
    ws.on('close', this.listeners.close);
  }

  /**
   * `last_seen_at` of the gateways whose sockets were accepted during this event-loop turn, written
   * after it in one store write: one commit (one statement on Postgres) for a burst of upgrades (a
   * reconnect storm) instead of one each. Informational, so a failed write is only logged at debug
   * level, as the write per upgrade it replaces was ignored.
   */
  private noteSeen(gatewayId: string): void {
    if (this.seen.size === 0) setImmediate(() => this.writeSeen());
    this.seen.add(gatewayId);
  }

  private writeSeen(): void {
    const ids = [...this.seen];
    this.seen.clear();
    this.options.store
      .touchGateways(ids, this.now())
      .catch((error: unknown) =>
        this.options.log.debug({ err: errorMessage(error) }, 'last seen not written'),
      );
  }

  /**
   * A socket's first hello: back from idle (current §9), live again, and its buffered inbound goes
   * now, in order. Done after this event-loop turn for every socket that said hello during it, in
   * one transaction where the store can (`atomically`, SQLite): a reconnect storm pays one commit
   * per turn instead of two per socket (issue 20).
   */
  private noteReady(connection: RelayConnection): void {
    if (this.ready.length === 0) setImmediate(() => this.flushReady());
    this.ready.push(connection);
  }

  private flushReady(): void {
    const { store, engine, registry, log } = this.options;
    // A socket that closed meanwhile is not announced: its close has been handled already. One that
    // said going_idle after its hello (same turn) has set its idle mark since: it stays, unannounced.
    const live = this.ready.filter(
      (connection) => registry.get(connection.id) === connection && !connection.idle,
    );
    this.ready = [];
    if (live.length === 0) return;
    try {
      engine.connectionsReady(live);
      const writes = (): void => {
        const cleared = store.clearGatewaysIdle(live.map((connection) => connection.gatewayId));
        for (const connection of live) this.noteIdleWrite(connection, cleared);
        cleared.catch((error: unknown) =>
          log.warn({ err: errorMessage(error), gateways: live.length }, 'idle marks not cleared'),
        );
        engine.releaseWaitingDeliveries(new Set(live.map((connection) => connection.tenantId)));
      };
      if (!store.atomically) writes();
      else
        store.atomically(writes).catch((error: unknown) => {
          // Not begun, or rolled back at the commit: the same writes, each in its own transaction.
          log.warn({ err: errorMessage(error) }, 'ready writes retried outside one transaction');
          try {
            writes();
          } catch (retryError) {
            log.error({ err: errorMessage(retryError) }, 'ready writes failed');
          }
        });
    } catch (error) {
      log.error({ err: errorMessage(error) }, 'sockets not made ready');
    }
  }

  /**
   * A store whose writes may finish out of order (Postgres: a pool) could otherwise apply a
   * `going_idle` before the idle clear of the hello that preceded it; `going_idle` waits for it.
   */
  private noteIdleWrite(connection: RelayConnection, write: Promise<unknown>): void {
    if (this.options.store.atomically) return;
    const settled = write.then(
      () => undefined,
      () => undefined,
    );
    this.idleWrites.set(connection, settled);
    void settled.then(() => {
      if (this.idleWrites.get(connection) === settled) this.idleWrites.delete(connection);
    });
  }

  private onMessage(connection: RelayConnection, data: Buffer, isBinary: boolean): void {
    // Nothing a gateway sends may throw out of this listener: an exception here would end the
    // process, and with it every tenant's sockets.
    try {
      const chunk = isBinary ? data : data.toString('utf8');
      // Ends on a newline: every line in it is complete, and a decoder fed it holds nothing after.
      const endsLine = isBinary ? data[data.length - 1] === NEWLINE : (chunk as string).endsWith('\n');
      let decoder = connection.decoder;
      if (decoder === undefined && !endsLine) {
        decoder = new FrameDecoder();
        connection.decoder = decoder;
      }
      const { values, errors } = (decoder ?? this.sharedDecoder).push(chunk);
      if (endsLine) connection.decoder = undefined;
      for (const error of errors) this.malformed(connection, error.error, error.line);
      for (const value of values) this.onValue(connection, value);
    } catch (error) {
      this.options.log.error(
        { err: errorMessage(error), connection: connection.id },
        'gateway message failed',
      );
    }
  }

  private onClose(connection: RelayConnection, code: number): void {
    const { registry, metrics, engine, log } = this.options;
    clearTimeout(connection.helloTimer);
    connection.helloTimer = undefined;
    registry.remove(connection);
    metrics.connections.set(registry.size);
    engine.connectionClosed(connection);
    if (log.isLevelEnabled('info'))
      log.info({ gatewayId: connection.gatewayId, connection: connection.id, code }, 'gateway disconnected');
  }

  private onValue(connection: RelayConnection, value: unknown): void {
    const parsed = parseGatewayFrame(value);
    if (parsed.kind === 'frame') {
      void this.onFrame(connection, parsed.frame).catch((error: unknown) =>
        this.options.log.error(
          { err: errorMessage(error), connection: connection.id },
          'frame handling failed',
        ),
      );
      return;
    }
    if (parsed.kind === 'ignored') return;
    // Never re-serialise an untrusted value to log it; say what kind of frame it claimed to be.
    this.malformed(connection, parsed.error, `type ${describeType(value)}`);
    // An outbound we cannot read still gets its one result, if it named a request id.
    const requestId = (value as { requestId?: unknown } | null)?.requestId;
    if (parsed.type === 'outbound' && typeof requestId === 'string' && requestId.length <= 256) {
      sendFrame(connection, {
        type: 'outbound_result',
        requestId,
        result: failedResult(`invalid outbound frame: ${parsed.error}`),
      });
    }
  }

  private async onFrame(connection: RelayConnection, frame: GatewayFrame): Promise<void> {
    const { ops, engine } = this.options;
    switch (frame.type) {
      case 'hello': {
        clearTimeout(connection.helloTimer);
        connection.helloTimer = undefined;
        // One descriptor per hello, in hello order (current §4.3); hellos repeated for an identity
        // (a re-sent hello) answer again without adding it twice.
        const served = await ops.platformForHello(connection.tenantId, frame.platform);
        const identity: SocketIdentity = { platform: frame.platform, botId: frame.botId, served };
        // The first as an array of exactly one (a push onto [] reserves room for 17).
        if (connection.identities.length === 0) connection.identities = [identity];
        else if (!connection.identities.some((i) => i.platform === frame.platform && i.botId === frame.botId))
          connection.identities.push(identity);
        connection.platform ??= served;
        sendFrame(connection, ops.descriptorFrame(served));
        if (frame.command_manifest && served === frame.platform)
          ops.declareCommands(connection.tenantId, served, frame.command_manifest);
        if (!connection.handshaken) {
          connection.handshaken = true;
          this.noteReady(connection);
        }
        return;
      }
      case 'going_idle':
        // Keyed by the authenticated record, never by the frame: this socket gets no more live
        // deliveries, and the gateway stays idle (its inbound kept in the outbox) until it dials again.
        connection.idle = true;
        await this.idleWrites.get(connection);
        await this.options.store.setGatewayIdle(connection.gatewayId, this.now());
        this.options.log.info(
          { gatewayId: connection.gatewayId, connection: connection.id },
          'gateway going idle',
        );
        sendFrame(connection, { type: 'going_idle_ack' });
        return;
      case 'outbound': {
        const tag = {
          platform: frame.platform ?? stringField(frame.action, 'platform'),
          botId: frame.botId ?? stringField(frame.action, 'botId'),
        };
        const identity = identityForTag(connection, tag);
        if (!identity && tag.platform) {
          sendFrame(connection, {
            type: 'outbound_result',
            requestId: frame.requestId,
            result: failedResult(
              `this connection said no hello for ${tag.platform}${tag.botId ? ` bot ${tag.botId}` : ''}`,
            ),
          });
          return;
        }
        // A hung platform call still gets its one result, within the op timeout (spec §5).
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<OutboundResult>((resolve) => {
          timer = setTimeout(
            () => resolve(failedResult('platform op timed out', { ambiguous: true })),
            OUTBOUND_OP_TIMEOUT_MS,
          );
        });
        const result = await Promise.race([
          ops.execute(connection.tenantId, identity?.served ?? connection.platform, frame.action),
          timedOut,
        ]);
        clearTimeout(timer);
        sendFrame(connection, { type: 'outbound_result', requestId: frame.requestId, result });
        return;
      }
      case 'interrupt':
        await engine.enqueueInterrupt(connection, frame.session_key, frame.reason);
        return;
      case 'inbound_ack':
        engine.acknowledge(connection, frame.bufferId);
        return;
    }
  }

  /**
   * Count an unreadable frame. The log gets the first one of each window and then one summary per
   * window, never a line per frame; a socket that keeps sending garbage is closed (1008).
   */
  private malformed(connection: RelayConnection, error: string, line: string): void {
    this.options.metrics.malformedFrames.inc();
    connection.budget ??= new MalformedFrameBudget(this.now);
    const verdict = connection.budget.record();
    const fields = { connection: connection.id, gatewayId: connection.gatewayId, error, line };
    if (verdict.log)
      this.options.log.warn(
        verdict.suppressed > 0 ? { ...fields, suppressed: verdict.suppressed } : fields,
        verdict.suppressed > 0
          ? 'malformed frame skipped (more since the last warning)'
          : 'malformed frame skipped',
      );
    if (verdict.close && connection.ws.readyState === connection.ws.OPEN) {
      this.options.log.warn(
        { connection: connection.id, gatewayId: connection.gatewayId, frames: verdict.inWindow },
        'gateway socket closed: too many malformed frames',
      );
      connection.writer.flush();
      connection.ws.close(CLOSE_POLICY_VIOLATION, MALFORMED_FRAMES_CLOSE_REASON);
    }
  }

  private keepalive(deadAfterMs: number): void {
    const now = this.now();
    for (const ws of this.wss.clients) {
      if (now - (connectionOf(ws)?.lastPong ?? now) > deadAfterMs) {
        ws.terminate();
        continue;
      }
      ws.ping();
    }
  }

  private async closeRevoked(): Promise<void> {
    if (this.options.registry.size === 0) {
      this.revocationWatermark = this.now() - 1000;
      return;
    }
    try {
      const since = this.revocationWatermark;
      const revoked = await this.options.store.listRevokedSince(since);
      for (const { id, revokedAt } of revoked) {
        this.options.engine.forgetGateway(id);
        if (this.closeGateway(id) > 0)
          this.options.log.info({ gatewayId: id }, 'revoked gateway disconnected (4401)');
        this.revocationWatermark = Math.max(this.revocationWatermark, revokedAt);
      }
    } catch (error) {
      this.options.log.warn({ err: errorMessage(error) }, 'revocation check failed');
    }
  }
}

/** How stale a gateway's stored `last_seen_at` may be before a new connection rewrites it. */
const LAST_SEEN_RESOLUTION_MS = 30_000;

/** Where a socket's connection is kept, for the listeners every socket shares. */
const CONNECTION = Symbol('relay connection');
type RelayWebSocket = WebSocket & { [CONNECTION]?: RelayConnection };
const NEWLINE = 0x0a;

function connectionOf(ws: WebSocket): RelayConnection | undefined {
  return (ws as RelayWebSocket)[CONNECTION];
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

function closeWithoutHello(connection: RelayConnection): void {
  connection.helloTimer = undefined;
  if (!connection.handshaken) connection.ws.close(1008, 'no hello');
}

/**
 * Connection ids: `c_` + 16 hex, unique across the instances of a cluster (the cluster bus names
 * sockets by them): 32 random bits per process, then a counter.
 */
const CONNECTION_ID_PREFIX = `c_${randomBytes(4).toString('hex')}`;
let connectionCounter = 0;
function nextConnectionId(): string {
  connectionCounter = (connectionCounter + 1) % 0x1_0000_0000;
  return CONNECTION_ID_PREFIX + connectionCounter.toString(16).padStart(8, '0');
}

/**
 * One authenticated gateway socket, as small as it can be kept: an idle gateway costs its socket,
 * this object, its identities and its registry entries. The frame writer, the decoder and the
 * malformed-frame budget exist only while in use.
 */
export class RelayConnection implements GatewayConnection {
  platform: string | undefined = undefined;
  identities: SocketIdentity[] = [];
  handshaken = false;
  idle = false;
  lastPong: number;
  helloTimer: NodeJS.Timeout | undefined = undefined;
  /** Only while a frame is split across messages (see `RelayServer.sharedDecoder`). */
  decoder: FrameDecoder | undefined = undefined;
  budget: MalformedFrameBudget | undefined = undefined;
  #writer: ConnectionWriter | undefined = undefined;

  constructor(
    readonly id: string,
    readonly gatewayId: string,
    readonly tenantId: string,
    readonly ws: WebSocket,
    readonly connectedAt: number,
  ) {
    this.lastPong = connectedAt;
  }

  /**
   * Frames to `ws`, coalesced per event-loop turn. Made on first use and let go once everything
   * written went out, so an idle socket holds no writer (~250 bytes with its buffers and callback).
   */
  get writer(): FrameWriter {
    this.#writer ??= new ConnectionWriter(this);
    return this.#writer;
  }

  /** The writer sent all it was given: drop it (the next frame makes a new one). */
  release(writer: ConnectionWriter): void {
    if (this.#writer === writer && writer.flushed === writer.written) this.#writer = undefined;
  }
}

/** A `FrameWriter` that lets its connection drop it once every frame it took has been sent. */
class ConnectionWriter extends FrameWriter {
  /** Frames taken, and how many of them had been taken at the last flush. */
  written = 0;
  flushed = 0;

  constructor(connection: RelayConnection) {
    const self: { writer?: ConnectionWriter } = {};
    super((data, done) => {
      const writer = self.writer as ConnectionWriter;
      writer.flushed = writer.written;
      // Not at once: `write` may flush a full message and then buffer its own frame here.
      queueMicrotask(() => connection.release(writer));
      connection.ws.send(data, done);
    });
    self.writer = this;
  }

  override write(frame: Parameters<FrameWriter['write']>[0], done?: (error?: Error) => void): void {
    super.write(frame, done);
    this.written++;
  }
}

/** WebSocket close code for a socket closed for what it sent (RFC 6455 "policy violation"). */
const CLOSE_POLICY_VIOLATION = 1008;
export const MALFORMED_FRAMES_CLOSE_REASON = 'too many malformed frames';
/** Window over which malformed frames are counted, and at most one warning is logged. */
const MALFORMED_WINDOW_MS = 10_000;
/** More malformed frames than this in one window close the socket. */
const MALFORMED_FRAMES_PER_WINDOW = 100;

/** Per-socket count of malformed frames: when to warn, and when to give up on the socket. */
class MalformedFrameBudget {
  private windowStart = Number.NEGATIVE_INFINITY;
  private inWindow = 0;
  private suppressed = 0;

  constructor(private readonly now: () => number) {}

  record(): { log: boolean; suppressed: number; close: boolean; inWindow: number } {
    const now = this.now();
    if (now - this.windowStart >= MALFORMED_WINDOW_MS) {
      const suppressed = this.suppressed;
      this.windowStart = now;
      this.inWindow = 1;
      this.suppressed = 0;
      return { log: true, suppressed, close: false, inWindow: 1 };
    }
    this.inWindow += 1;
    this.suppressed += 1;
    return {
      log: false,
      suppressed: this.suppressed,
      close: this.inWindow > MALFORMED_FRAMES_PER_WINDOW,
      inWindow: this.inWindow,
    };
  }
}

/** A short, safe description of an untrusted frame: its `type` if it is a short string. */
function describeType(value: unknown): string {
  const type = (value as { type?: unknown } | null)?.type;
  return typeof type === 'string' ? JSON.stringify(type.slice(0, 40)) : typeof type;
}

/** A string field of an untrusted object, or undefined. */
function stringField(value: unknown, key: string): string | undefined {
  const field = (value as Record<string, unknown> | null)?.[key];
  return typeof field === 'string' ? field : undefined;
}
