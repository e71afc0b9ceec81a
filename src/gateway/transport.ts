import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { isUsableSecret, mintUpgradeToken } from '../auth/index.js';
import { backoffDelay } from '../common/backoff.js';
import { boundedCache } from '../common/cache.js';
import { errorMessage } from '../common/errors.js';
import {
  type CapabilityDescriptor,
  CLOSE_UNAUTHORIZED,
  type CommandManifest,
  FrameDecoder,
  FrameWriter,
  failedResult,
  type GatewayFrameInput,
  HANDSHAKE_TIMEOUT_MS,
  MAX_WS_MESSAGE_BYTES,
  type MessageEvent,
  OUTBOUND_ERRORS,
  OUTBOUND_OP_TIMEOUT_MS,
  type OutboundActionInput,
  type OutboundResult,
  PING_DEAD_AFTER_MS,
  PING_INTERVAL_MS,
  parseConnectorFrame,
  RECONNECT_BASE_MS,
  RECONNECT_CAP_MS,
  RECONNECT_RESET_AFTER_MS,
  relayDialUrl,
} from '../protocol/index.js';
import { passthroughBufferKey, readPassthrough } from './passthrough.js';

/**
 * The gateway's outbound WebSocket to the connector (reference §2, §4; spec decisions 2–3, 5):
 * a fresh upgrade token per dial, `hello` → `descriptor` within 30 s, ops correlated by requestId
 * with a 30 s timeout and never thrown, `inbound` frames acknowledged once handled, and the
 * reconnect / 4401 policy. Owns no business logic: callers get callbacks.
 */

export type TransportState = 'connecting' | 'connected' | 'retrying' | 'failed' | 'stopped';

export interface TransportStatus {
  state: TransportState;
  errorCode: string | null;
  errorMessage: string | null;
}

export interface RelayTransportOptions {
  /** As configured (`ws(s)://…/relay` or `http(s)://host`); normalised before dialing. */
  url: string;
  /** Read on every dial so credentials provisioned or rotated in memory are used at once. */
  credentials: () => { gatewayId?: string | undefined; secret?: string | undefined };
  platform: string;
  botId: string;
  /**
   * Every identity to say `hello` for, in order, on every dial (current §4.3); default: just
   * `platform`/`botId`. With more than one, outbound frames to a chat whose platform is known from
   * its inbound are tagged with that identity.
   */
  identities?: readonly { platform: string; botId: string }[];
  /** Slash commands declared in the `hello` of a Discord identity (current §4.1 `command_manifest`). */
  commandManifest?: CommandManifest;
  log: Logger;
  onDescriptor?: (descriptor: CapabilityDescriptor) => void | Promise<void>;
  /**
   * Resolve once the event is safely handed over; the frame is acknowledged then. `deliveryId` is
   * the delivery's dedupe key: an `inbound` frame's bufferId, `passthrough_buffer:<bufferId>` for a
   * forward (current §5.2), undefined for a live delivery. `via` says how an event that did not come
   * as an `inbound` frame is answered (a Discord interaction: through its follow-up capability).
   */
  onInbound?: (event: MessageEvent, deliveryId: string | undefined, via?: InboundVia) => Promise<void>;
  onInterrupt?: (sessionKey: string, chatId: string) => void;
  onStatus?: (status: TransportStatus) => void;
  handshakeTimeoutMs?: number;
  opTimeoutMs?: number;
  pingIntervalMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Jitter source for the backoff (tests pin it to see the ladder). */
  random?: () => number;
  /** How a wait between dials is spent (tests record the waits instead of sleeping them). */
  delay?: (ms: number) => Promise<void>;
  /** Seconds since the epoch for minting upgrade tokens (tests skew it to get them refused). */
  clockSeconds?: () => number;
}

/** How an event that came as a `passthrough_forward` is answered (current §7.2 `follow_up`). */
export interface InboundVia {
  /** The `follow_up` kind of the capability the connector holds for the event's session. */
  followUpKind: string;
}

const HANDLED_BUFFER_CAP = 10_000;

interface DialOutcome {
  handshaken: boolean;
  code: number;
  reason: string;
  /** From the first descriptor to the close (0 without one): what counts as a stable connection. */
  connectedMs: number;
  error?: string;
}

/** How long `stop()` waits for the connector's `going_idle_ack` before closing anyway (current §3.4). */
const GOING_IDLE_ON_STOP_MS = 2_000;
/** The first re-dial after going dormant (current §3.4). */
const DORMANT_REDIAL_MS = 1_000;

export class RelayTransport {
  private ws: WebSocket | undefined;
  private currentDescriptor: CapabilityDescriptor | undefined;
  /** Descriptors of this connection by platform; the first to arrive is `currentDescriptor`. */
  private readonly descriptors = new Map<string, CapabilityDescriptor>();
  /** A chat's underlying platform, learned from its inbound (`relay` says nothing). */
  private readonly chatPlatforms = boundedCache<string, string>({ max: 10_000 });
  private idleAckWaiter: (() => void) | undefined;
  /** A descriptor arrived on some connection of this transport (sticky; current §8). */
  private everHandshaken = false;
  /** The socket was closed by goIdle: the next dial comes at the dormant cadence. */
  private dormant = false;
  private readonly pending = new Map<
    string,
    { resolve: (result: OutboundResult) => void; timer: NodeJS.Timeout }
  >();
  private stopped = false;
  private attempt = 0;
  private loop: Promise<void> | undefined;
  private wakeSleep: (() => void) | undefined;
  private readonly dialUrl: string;
  private status: TransportStatus = { state: 'connecting', errorCode: null, errorMessage: null };
  /** Buffer ids already handled: a redelivery (which comes soon after the original) is acked, not re-run. */
  private readonly handledBuffers = boundedCache<string, true>({ max: HANDLED_BUFFER_CAP });

  private readonly identities: readonly { platform: string; botId: string }[];

  constructor(private readonly options: RelayTransportOptions) {
    this.dialUrl = relayDialUrl(options.url);
    this.identities =
      options.identities && options.identities.length > 0
        ? options.identities
        : [{ platform: options.platform, botId: options.botId }];
  }

  /** The descriptor the connector sent for `platform`, else the default one. */
  descriptorFor(platform: string | undefined): CapabilityDescriptor | undefined {
    return (platform ? this.descriptors.get(platform) : undefined) ?? this.currentDescriptor;
  }

  /**
   * Scale to zero on purpose (current §9): say `going_idle`, wait for the ack, close the socket
   * without stopping; the supervisor dials again after a second, and the connector replays what
   * arrived meanwhile. False (and still connected) when no ack came within `timeoutMs`.
   */
  async goIdle(timeoutMs = 10_000): Promise<boolean> {
    const ws = this.ws;
    if (!ws || !this.connected) return false;
    const acked = await this.sayGoingIdle(ws, timeoutMs);
    if (acked) {
      this.dormant = true;
      flushFrames(ws);
      ws.close(1000, 'going idle');
    }
    return acked;
  }

  private sayGoingIdle(ws: WebSocket, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleAckWaiter = undefined;
        resolve(false);
      }, timeoutMs);
      this.idleAckWaiter = () => {
        clearTimeout(timer);
        this.idleAckWaiter = undefined;
        resolve(true);
      };
      writeFrame(ws, { type: 'going_idle' }, (error) => {
        if (error) this.idleAckWaiter?.();
      });
    });
  }

  get descriptor(): CapabilityDescriptor | undefined {
    return this.currentDescriptor;
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN && this.currentDescriptor !== undefined;
  }

  get currentStatus(): TransportStatus {
    return this.status;
  }

  /** Start the dial/reconnect supervisor. Resolves at once; use `onDescriptor` to learn of the handshake. */
  start(): void {
    this.loop ??= this.supervise();
  }

  async stop(): Promise<void> {
    // A planned stop says going_idle first (best effort): the connector keeps what arrives meanwhile.
    const ws = this.ws;
    if (ws && this.connected && !this.stopped) await this.sayGoingIdle(ws, GOING_IDLE_ON_STOP_MS);
    this.stopped = true;
    this.wakeSleep?.();
    if (this.ws) flushFrames(this.ws);
    this.ws?.close(1000, 'gateway stopping');
    this.failPending(OUTBOUND_ERRORS.closedAfterWrite, { ambiguous: true });
    await this.loop;
    this.setStatus('stopped', null, null);
  }

  /** Run one outbound op. Never throws: failures are `{success:false, error}` results. */
  send(action: OutboundActionInput): Promise<OutboundResult> {
    const ws = this.ws;
    if (this.stopped) return Promise.resolve(failedResult(OUTBOUND_ERRORS.closed));
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.currentDescriptor) {
      return Promise.resolve(failedResult(OUTBOUND_ERRORS.notConnected));
    }
    const requestId = randomUUID().replace(/-/g, '');
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        // The frame was written, so the op may or may not have happened.
        resolve(failedResult(OUTBOUND_ERRORS.timedOut, { ambiguous: true }));
      }, this.options.opTimeoutMs ?? OUTBOUND_OP_TIMEOUT_MS);
      this.pending.set(requestId, { resolve, timer });
      writeFrame(ws, { type: 'outbound', requestId, action, ...this.tagFor(action) }, (error) => {
        if (!error) return;
        clearTimeout(timer);
        this.pending.delete(requestId);
        resolve(failedResult(`${OUTBOUND_ERRORS.sendFailed}: ${error.message}`));
      });
    });
  }

  /**
   * The identity an outbound frame speaks for, when this gateway fronts several (current §4.3): the
   * chat's platform learned from its inbound, with that identity's bot id; `get_chat_info` and
   * chats of unknown platform go untagged (the connector's default, the first hello).
   */
  private tagFor(action: OutboundActionInput): { platform?: string; botId?: string } {
    if (this.identities.length < 2 || action.op === 'get_chat_info') return {};
    const platform =
      action.op === 'follow_up' ? action.kind.split('.')[0] : this.chatPlatforms.get(String(action.chat_id));
    const identity = this.identities.find((i) => i.platform === platform);
    return identity ? { platform: identity.platform, botId: identity.botId } : {};
  }

  /** Fire-and-forget `/stop` egress; `reason` is always present on the wire (null when none). */
  sendInterrupt(sessionKey: string, reason: string | null): boolean {
    if (!this.connected) return false;
    if (this.ws) writeFrame(this.ws, { type: 'interrupt', session_key: sessionKey, reason });
    return true;
  }

  private async supervise(): Promise<void> {
    // Set after a post-handshake 4401: the next connection decides between a blip and a revocation.
    let revocationSuspected = false;
    while (!this.stopped) {
      this.setStatus(
        this.attempt === 0 ? 'connecting' : 'retrying',
        this.status.errorCode,
        this.status.errorMessage,
      );
      const outcome = await this.dialOnce();
      if (this.stopped) break;
      if (outcome.handshaken) this.everHandshaken = true;
      // A connection that lived a minute from its first descriptor resets the ladder (current §3.6).
      if (outcome.connectedMs >= (RECONNECT_RESET_AFTER_MS as number)) this.attempt = 0;

      if (this.dormant) {
        // Gone idle on purpose (goIdle): dial again at the dormant cadence; the connector replays.
        this.dormant = false;
        this.setStatus('retrying', 'relay_idle', 'idle; re-dialing to collect what arrived');
        await this.sleep(DORMANT_REDIAL_MS);
        continue;
      }
      if (outcome.code === CLOSE_UNAUTHORIZED && this.everHandshaken) {
        // Current §8: "expired" is never a revocation; anything else is one strike, and a second
        // on the connection that the fresh-token re-dial opened latches the revocation.
        if (outcome.reason === 'expired') {
          revocationSuspected = false;
          this.setStatus(
            'retrying',
            'relay_token_expired',
            'upgrade token expired; re-dialing with a fresh one',
          );
        } else if (revocationSuspected) {
          this.options.log.error(
            'relay credential revoked (4401 twice); not reconnecting. Re-enroll this gateway to restore it.',
          );
          this.setStatus('failed', 'relay_revoked', 'the connector revoked this gateway (4401)');
          return;
        } else {
          revocationSuspected = true;
          this.options.log.warn(
            { reason: outcome.reason },
            'connector closed the relay with 4401; re-dialing once with a fresh token',
          );
          this.setStatus(
            'retrying',
            'relay_unauthorized',
            `closed 4401 (${outcome.reason || 'unauthorized'})`,
          );
          continue;
        }
      } else if (outcome.code === CLOSE_UNAUTHORIZED) {
        // Before any handshake ever: a cold start or a not-yet-provisioned race, so retry with backoff.
        this.setStatus(
          'retrying',
          'relay_unauthorized',
          `upgrade refused with 4401 (${outcome.reason || 'unauthorized'})`,
        );
      } else {
        if (outcome.handshaken) revocationSuspected = false;
        const code = outcome.handshaken ? 'relay_disconnected' : 'relay_unreachable';
        this.setStatus('retrying', code, outcome.error ?? `connection closed (${outcome.code})`);
      }
      await this.sleep(this.nextBackoff());
    }
  }

  /** Current §3.6: the attempt-th step of 1 s → 30 s, uniform in [step/2, step]. */
  private nextBackoff(): number {
    this.attempt = Math.min(this.attempt + 1, 31);
    return backoffDelay(
      this.attempt,
      {
        baseMs: this.options.backoffBaseMs ?? RECONNECT_BASE_MS,
        capMs: this.options.backoffCapMs ?? RECONNECT_CAP_MS,
        jitter: 'equal',
      },
      this.options.random,
    );
  }

  private sleep(ms: number): Promise<void> {
    if (this.options.delay) return this.options.delay(ms);
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleep = done;
    });
  }

  private dialOnce(): Promise<DialOutcome> {
    const { gatewayId, secret } = this.options.credentials();
    const headers: Record<string, string> = {};
    // Both or nothing (reference §5.4): an unauthenticated dial is for dev connectors only.
    if (gatewayId && isUsableSecret(secret))
      headers.authorization = `Bearer ${mintUpgradeToken(gatewayId, secret, undefined, this.options.clockSeconds?.())}`;
    const log = this.options.log;
    return new Promise((resolve) => {
      let handshaken = false;
      let handshakenAt = 0;
      let lastError: string | undefined;
      let pongAt = Date.now();
      const ws = new WebSocket(this.dialUrl, {
        headers,
        maxPayload: MAX_WS_MESSAGE_BYTES,
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      });
      this.ws = ws;
      const decoder = new FrameDecoder();
      let handshakeTimer: NodeJS.Timeout | undefined;
      let pingTimer: NodeJS.Timeout | undefined;

      ws.on('open', () => {
        // One hello per identity, back to back; every dial starts from no descriptors (current §3.6).
        this.descriptors.clear();
        const manifest = this.options.commandManifest;
        for (const identity of this.identities)
          writeFrame(ws, {
            type: 'hello',
            platform: identity.platform,
            botId: identity.botId,
            // Only Discord has the field (current §4.1); elsewhere the hello stays byte-identical.
            ...(identity.platform === 'discord' && manifest?.length ? { command_manifest: manifest } : {}),
          });
        handshakeTimer = setTimeout(() => {
          lastError = 'no descriptor within the handshake timeout';
          log.warn('connector sent no descriptor in time; reconnecting');
          ws.terminate();
        }, this.options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
        const pingEvery = this.options.pingIntervalMs ?? PING_INTERVAL_MS;
        const deadAfter = pingEvery * (PING_DEAD_AFTER_MS / PING_INTERVAL_MS);
        pingTimer = setInterval(() => {
          if (Date.now() - pongAt > deadAfter) {
            lastError = 'no pong from the connector';
            ws.terminate();
            return;
          }
          ws.ping();
        }, pingEvery);
      });
      ws.on('pong', () => {
        pongAt = Date.now();
      });
      ws.on('message', (data: Buffer, isBinary) => {
        const { values, errors } = decoder.push(isBinary ? data : data.toString('utf8'));
        for (const error of errors)
          log.warn({ error: error.error }, 'malformed frame from the connector skipped');
        for (const value of values) {
          const parsed = parseConnectorFrame(value);
          if (parsed.kind === 'invalid') {
            log.warn({ type: parsed.type, error: parsed.error }, 'invalid frame from the connector skipped');
            continue;
          }
          if (parsed.kind === 'ignored') continue;
          const frame = parsed.frame;
          switch (frame.type) {
            case 'descriptor':
              clearTimeout(handshakeTimer);
              this.descriptors.set(frame.descriptor.platform, frame.descriptor);
              // The first descriptor of a connection is its default (current §4.3).
              if (!handshaken) this.currentDescriptor = frame.descriptor;
              if (!handshaken) {
                handshaken = true;
                handshakenAt = Date.now();
                this.setStatus('connected', null, null);
                log.info(
                  {
                    platform: frame.descriptor.platform,
                    limit: frame.descriptor.max_message_length,
                    unit: frame.descriptor.len_unit,
                  },
                  'relay connected; descriptor adopted',
                );
              }
              void Promise.resolve(this.options.onDescriptor?.(frame.descriptor)).catch((error: unknown) =>
                log.error({ err: errorMessage(error) }, 'descriptor handler failed'),
              );
              break;
            case 'outbound_result': {
              const waiter = this.pending.get(frame.requestId);
              if (!waiter) break; // unknown or late: ignored (reference §4.2)
              this.pending.delete(frame.requestId);
              clearTimeout(waiter.timer);
              waiter.resolve(frame.result);
              break;
            }
            case 'inbound':
              this.admit(ws, frame.event, frame.bufferId, frame.bufferId);
              break;
            case 'interrupt_inbound':
              this.options.onInterrupt?.(frame.session_key, frame.chat_id);
              break;
            case 'going_idle_ack':
              this.idleAckWaiter?.();
              break;
            case 'passthrough_forward': {
              // Current §12: a Discord interaction runs like an `inbound` of its place and is acked
              // the same way; anything else is acked and dropped, its body never logged.
              const reading = readPassthrough(frame.forward);
              if (reading.kind === 'event') {
                const key = frame.bufferId === undefined ? undefined : passthroughBufferKey(frame.bufferId);
                this.admit(ws, reading.event, frame.bufferId, key, { followUpKind: reading.followUpKind });
                break;
              }
              log[reading.level](
                { platform: frame.forward.platform, path: frame.forward.path, bufferId: frame.bufferId },
                `passthrough forward dropped: ${reading.reason}`,
              );
              if (frame.bufferId !== undefined)
                writeFrame(ws, { type: 'inbound_ack', bufferId: frame.bufferId });
              break;
            }
          }
        }
      });
      ws.on('unexpected-response', (_request, response) => {
        lastError = `connector answered the upgrade with HTTP ${response.statusCode}`;
        ws.terminate();
      });
      ws.on('error', (error) => {
        lastError = error.message;
      });
      ws.on('close', (code, reasonBuffer) => {
        clearTimeout(handshakeTimer);
        clearInterval(pingTimer);
        if (this.ws === ws) this.ws = undefined;
        this.currentDescriptor = undefined;
        this.descriptors.clear();
        this.failPending(OUTBOUND_ERRORS.connectionLost);
        const reason = reasonBuffer.toString('utf8');
        if (handshaken) log.info({ code, reason }, 'relay connection closed');
        resolve({
          handshaken,
          code,
          reason,
          connectedMs: handshakenAt ? Date.now() - handshakenAt : 0,
          error: lastError,
        });
      });
    });
  }

  /**
   * Hand an event over (an `inbound` frame's, or a forward's) and ack its `bufferId` once the
   * handler has admitted it (current §5.1). A redelivery of one already admitted (its ack was lost)
   * is acked again and not run again; a handler that fails leaves it unacked, to be redelivered.
   */
  private admit(
    ws: WebSocket,
    event: MessageEvent,
    bufferId: string | number | undefined,
    dedupeKey: string | number | undefined,
    via?: InboundVia,
  ): void {
    const log = this.options.log;
    const source = event.source;
    // Only a gateway fronting several identities tags its outbound frames by the chat's platform.
    if (this.identities.length > 1 && source.platform && source.platform !== 'relay' && source.chat_id)
      this.chatPlatforms.set(source.chat_id, source.platform);
    const key = dedupeKey === undefined ? undefined : String(dedupeKey);
    if (bufferId !== undefined && key !== undefined && this.handledBuffers.has(key)) {
      writeFrame(ws, { type: 'inbound_ack', bufferId });
      return;
    }
    void (this.options.onInbound?.(event, key, via) ?? Promise.resolve()).then(
      () => {
        if (bufferId === undefined || key === undefined) return;
        this.rememberBuffer(key);
        if (ws.readyState === WebSocket.OPEN) writeFrame(ws, { type: 'inbound_ack', bufferId });
      },
      (error: unknown) =>
        log.error({ err: errorMessage(error) }, 'inbound frame not handled; the connector will redeliver it'),
    );
  }

  private rememberBuffer(id: string): void {
    this.handledBuffers.set(id, true);
  }

  private failPending(error: string, extra: { ambiguous?: boolean } = {}): void {
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.resolve(failedResult(error, extra));
      this.pending.delete(id);
    }
  }

  private setStatus(state: TransportState, errorCode: string | null, errorMessage: string | null): void {
    const changed =
      state !== this.status.state ||
      errorCode !== this.status.errorCode ||
      errorMessage !== this.status.errorMessage;
    this.status = { state, errorCode, errorMessage };
    if (changed) this.options.onStatus?.(this.status);
  }
}

/** Every frame the gateway writes goes through here: only gateway→connector frames type-check. */
/** Frames to one socket, coalesced per event-loop turn (acks of a burst leave as one message). */
const writers = new WeakMap<WebSocket, FrameWriter>();

function writeFrame(ws: WebSocket, frame: GatewayFrameInput, done?: (error?: Error) => void): void {
  let writer = writers.get(ws);
  if (!writer) {
    writer = new FrameWriter((data, sent) => ws.send(data, sent));
    writers.set(ws, writer);
  }
  writer.write(frame, done);
}

/** Send what is queued for `ws` now: before a close, so no written frame is left behind. */
function flushFrames(ws: WebSocket): void {
  writers.get(ws)?.flush();
}
