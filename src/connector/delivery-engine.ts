import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { nowSeconds, signDelivery } from '../auth/index.js';
import {
  buildSessionKey,
  DELIVERY_HTTP_TIMEOUT_MS,
  HEADER_DELIVERY_ID,
  HEADER_SESSION_KEY,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  INTERRUPT_DELIVERY_SUFFIX,
  interruptDeliveryBody,
  messageDeliveryBody,
  messageEventToWire,
  normalizePlatform,
} from '../protocol/index.js';
import type { ClusterBus } from './cluster/bus.js';
import type { GatewayConnection, GatewayRegistry } from './gateway-registry.js';
import type { ConnectorMetrics } from './metrics.js';
import type { IngestOutcome, PlatformInbound } from './platforms/types.js';
import { SessionDirectory } from './session-directory.js';
import { postBytes } from './signed-post.js';
import { SocketDelivery } from './socket-delivery.js';
import type { DeliveryKeys, DeliveryRecord, RelayStore } from './store/types.js';

/**
 * The durable delivery path (spec decision 4–5): platform event → route → outbox row (committed
 * before the platform is acknowledged) → signed POST to the tenant endpoint, or an `inbound` frame
 * on the tenant's socket when it has no endpoint → done on success; retries with backoff for 24 h,
 * then dead letter. Per-session order comes from the store's claim rule.
 */

export interface DeliveryEngineOptions {
  store: RelayStore;
  registry: GatewayRegistry;
  metrics: ConnectorMetrics;
  log: Logger;
  instanceId: string;
  /** Set when several connector instances share the work (issue #8). */
  bus?: ClusterBus | undefined;
  concurrency?: number;
  leaseMs?: number;
  httpTimeoutMs?: number;
  ackTimeoutMs?: number;
  maxAgeMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  now?: () => number;
}

const IDLE_POLL_MS = 1_000;
const MIN_RESCHEDULE_MS = 50;
const NO_SOCKET_RETRY_CAP_MS = 5_000;

export class DeliveryEngine {
  readonly sessions = new SessionDirectory();
  private readonly store: RelayStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly httpTimeoutMs: number;
  private readonly maxAgeMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffCapMs: number;
  readonly sockets: SocketDelivery;
  private readonly knownChats = new Set<string>();
  private running = false;
  private pumping = false;
  private again = false;
  private inflight = 0;
  private timer: NodeJS.Timeout | undefined;
  private idle: Promise<void> = Promise.resolve();
  private settleIdle: (() => void) | undefined;

  constructor(private readonly options: DeliveryEngineOptions) {
    this.store = options.store;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.concurrency = options.concurrency ?? 128;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.httpTimeoutMs = options.httpTimeoutMs ?? DELIVERY_HTTP_TIMEOUT_MS;
    this.sockets = new SocketDelivery({
      registry: options.registry,
      sessions: this.sessions,
      log: options.log,
      bus: options.bus,
      ackTimeoutMs: options.ackTimeoutMs,
    });
    this.maxAgeMs = options.maxAgeMs ?? 24 * 3600 * 1000;
    this.backoffBaseMs = options.backoffBaseMs ?? 1_000;
    this.backoffCapMs = options.backoffCapMs ?? 5 * 60 * 1000;
  }

  async start(): Promise<void> {
    // Claims this instance held before a crash or restart are ours to retry now.
    const released = await this.store.releaseClaims(this.options.instanceId, this.now());
    if (released > 0) this.log.info({ released }, 'released outbox claims from the previous run');
    this.running = true;
    this.wake();
  }

  /** Stop claiming; wait (bounded) for in-flight attempts, then release what is still held. */
  async stop(graceMs = 5_000): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    if (this.inflight > 0) {
      this.idle = new Promise((resolve) => {
        this.settleIdle = resolve;
      });
      await Promise.race([this.idle, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
    }
    this.sockets.stop();
    await this.store.releaseClaims(this.options.instanceId, this.now());
  }

  /** PlatformContext.ingest: resolves once the event is durably queued. */
  async ingest(platform: string, inbound: PlatformInbound): Promise<IngestOutcome> {
    const { metrics } = this.options;
    try {
      const route = await this.store.findRoute(platform, inbound.routeKey);
      if (!route) {
        metrics.inboundEvents.inc({ platform, outcome: 'no_route' });
        return { ok: false, reason: 'no_route', message: `no route for ${platform} ${inbound.routeKey}` };
      }
      const source = { ...inbound.event.source, platform };
      const sessionKey = buildSessionKey({ ...source, platform: normalizePlatform(platform) });
      const deliveryId = `dlv_${randomBytes(12).toString('hex')}`;
      const event = messageEventToWire({ ...inbound.event, source });
      const body = JSON.stringify(messageDeliveryBody(event, deliveryId));
      const now = this.now();
      const chatId = source.chat_id ?? '';
      const chatKey = `${route.tenantId}\u0000${chatId}`;
      if (!this.knownChats.has(chatKey)) {
        await this.store.recordChat({
          tenantId: route.tenantId,
          platform,
          chatId,
          routeKey: inbound.routeKey,
          updatedAt: now,
        });
        if (this.knownChats.size > 100_000) this.knownChats.clear();
        this.knownChats.add(chatKey);
      }
      await this.store.enqueueDelivery({
        id: deliveryId,
        tenantId: route.tenantId,
        gatewayId: route.gatewayId,
        sessionKey,
        kind: 'message',
        body,
        endpoint: route.endpoint,
        createdAt: now,
      });
      const placement = {
        tenantId: route.tenantId,
        chatId,
        endpoint: route.endpoint,
        gatewayId: route.gatewayId,
      };
      const known = this.sessions.get(sessionKey, route.tenantId);
      this.sessions.remember(sessionKey, placement);
      if (this.options.bus && (known?.chatId !== chatId || known.endpoint !== route.endpoint)) {
        // Other instances may receive this session's `/stop`; they find its placement here.
        this.options.bus
          .rememberSession(sessionKey, placement)
          .catch((error: Error) => this.log.warn({ err: error.message }, 'session placement not shared'));
      }
      metrics.inboundEvents.inc({ platform, outcome: 'queued' });
      this.wake();
      return { ok: true, deliveryId, tenantId: route.tenantId, sessionKey };
    } catch (error) {
      metrics.inboundEvents.inc({ platform, outcome: 'error' });
      this.log.error({ err: (error as Error).message, platform }, 'could not queue inbound event');
      return { ok: false, reason: 'store_error', message: 'could not queue the event' };
    }
  }

  /** Route a gateway's `/stop` for a session to the instance running it (reference §4.6). */
  async enqueueInterrupt(from: GatewayConnection, sessionKey: string, reason: string | null): Promise<void> {
    const placement =
      this.sessions.get(sessionKey, from.tenantId) ??
      (await this.options.bus?.sessionPlacement(from.tenantId, sessionKey).catch(() => null)) ??
      undefined;
    const endpoint = placement?.endpoint ?? (await this.store.getGateway(from.gatewayId))?.endpoint ?? '';
    const deliveryId = `dlv_${randomBytes(12).toString('hex')}`;
    const body = JSON.stringify(
      interruptDeliveryBody(sessionKey, placement?.chatId ?? '', reason ?? 'stop', deliveryId),
    );
    await this.store.enqueueDelivery({
      id: deliveryId,
      tenantId: from.tenantId,
      gatewayId: placement?.gatewayId ?? null,
      sessionKey,
      kind: 'interrupt',
      body,
      endpoint,
      createdAt: this.now(),
    });
    this.wake();
  }

  /** `inbound_ack` from a gateway; only its own tenant's deliveries can be acknowledged. */
  acknowledge(connection: GatewayConnection, bufferId: string | number): void {
    this.sockets.acknowledge(connection, bufferId);
  }

  /** A socket finished its handshake: deliveries waiting for a socket can go now. */
  connectionReady(connection: GatewayConnection): void {
    this.sockets.connectionReady(connection);
    this.wake();
  }

  /** A socket closed: deliveries waiting for its acks are retried elsewhere or later. */
  connectionClosed(connection: GatewayConnection): void {
    this.sockets.connectionClosed(connection);
  }

  wake(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pump(), 0);
  }

  private async pump(): Promise<void> {
    if (this.pumping || !this.running) return;
    this.pumping = true;
    try {
      do {
        this.again = false;
        while (this.running && this.inflight < this.concurrency) {
          const batch = await this.store.claimDueDeliveries(
            this.options.instanceId,
            this.now(),
            Math.min(64, this.concurrency - this.inflight),
            this.leaseMs,
          );
          if (batch.length === 0) break;
          for (const delivery of batch) this.launch(delivery);
        }
      } while (this.again && this.running);
      if (this.running) await this.scheduleNext();
    } catch (error) {
      this.log.error({ err: (error as Error).message }, 'outbox pump failed; retrying');
      if (this.running) this.timer = setTimeout(() => void this.pump(), IDLE_POLL_MS);
    } finally {
      this.pumping = false;
    }
  }

  private async scheduleNext(): Promise<void> {
    const next = await this.store.nextDueAt();
    this.options.metrics.outboxDepth.set(await this.store.outboxDepth());
    const until = next === null ? IDLE_POLL_MS : next - this.now();
    // Due rows that could not be claimed wait behind their session's head, whose completion wakes
    // us; the floor keeps that from spinning. The ceiling picks up rows other processes queued.
    const delay = Math.min(IDLE_POLL_MS, Math.max(MIN_RESCHEDULE_MS, until));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pump(), delay);
  }

  private launch(delivery: DeliveryRecord): void {
    this.inflight++;
    this.attempt(delivery)
      .catch((error: unknown) =>
        this.log.error({ err: (error as Error).message, id: delivery.id }, 'delivery attempt failed'),
      )
      .finally(() => {
        this.inflight--;
        if (this.inflight === 0) this.settleIdle?.();
        this.wake();
      });
  }

  private async attempt(delivery: DeliveryRecord): Promise<void> {
    if (delivery.endpoint) await this.attemptHttp(delivery);
    else await this.attemptSocket(delivery);
  }

  private async attemptHttp(delivery: DeliveryRecord): Promise<void> {
    const keys = await this.store.getDeliveryKeys(delivery.tenantId);
    if (!keys) return this.dead(delivery, 'tenant has no delivery key', null);
    const body = Buffer.from(delivery.body, 'utf8');
    const ts = nowSeconds();
    const url =
      delivery.kind === 'interrupt' ? delivery.endpoint + INTERRUPT_DELIVERY_SUFFIX : delivery.endpoint;
    const outcome = await postBytes(
      url,
      body,
      {
        'content-type': 'application/json',
        [HEADER_TIMESTAMP]: String(ts),
        [HEADER_SIGNATURE]: signDelivery(body, signingKey(keys, this.now()), ts),
        [HEADER_DELIVERY_ID]: delivery.id,
        [HEADER_SESSION_KEY]: delivery.sessionKey,
      },
      this.httpTimeoutMs,
    );
    if (outcome.kind === 'error') return this.retry(delivery, outcome.error, null, undefined, 'http');
    const { status } = outcome;
    if (status >= 200 && status < 300) return this.done(delivery, 'http');
    // 401 is retried: during a key rollout a gateway may not have the key yet.
    if (status === 401 || status === 408 || status === 429 || status >= 500) {
      return this.retry(delivery, `HTTP ${status}`, status, outcome.retryAfterMs, 'http');
    }
    return this.dead(delivery, `HTTP ${status}: ${outcome.body.slice(0, 200)}`, status);
  }

  private async attemptSocket(delivery: DeliveryRecord): Promise<void> {
    const outcome = await this.sockets.deliver(delivery);
    if (outcome.kind === 'delivered') return this.done(delivery, 'socket');
    if (outcome.kind === 'no_socket')
      return this.retry(delivery, 'no gateway connected', null, undefined, 'socket', NO_SOCKET_RETRY_CAP_MS);
    return this.retry(delivery, outcome.error, null, undefined, 'socket', 1_000);
  }

  private async done(delivery: DeliveryRecord, transport: string): Promise<void> {
    await this.store.completeDelivery(delivery.id, this.options.instanceId);
    this.options.metrics.deliveries.inc({ outcome: 'delivered', transport });
    this.options.metrics.deliveryLatency.observe(Math.max(0, this.now() - delivery.createdAt) / 1000);
  }

  private async retry(
    delivery: DeliveryRecord,
    error: string,
    status: number | null,
    retryAfterMs: number | undefined,
    transport: string,
    capMs = this.backoffCapMs,
  ): Promise<void> {
    const now = this.now();
    if (now - delivery.createdAt >= this.maxAgeMs) {
      return this.dead(delivery, `gave up after ${Math.round(this.maxAgeMs / 3600_000)} h: ${error}`, status);
    }
    const exponential = Math.min(capMs, this.backoffBaseMs * 2 ** Math.max(0, delivery.attempts - 1));
    // Equal jitter: never retry sooner than half the step, spread the rest.
    const requested = Math.min(retryAfterMs ?? 0, this.backoffCapMs);
    const delay = Math.max(requested, exponential / 2 + Math.random() * (exponential / 2));
    await this.store.retryDeliveryLater(
      delivery.id,
      this.options.instanceId,
      Math.ceil(now + delay),
      error,
      status,
    );
    this.options.metrics.deliveries.inc({ outcome: 'retry', transport });
    this.log.debug(
      { id: delivery.id, attempts: delivery.attempts, error, delayMs: Math.round(delay) },
      'delivery will be retried',
    );
  }

  private async dead(delivery: DeliveryRecord, reason: string, status: number | null): Promise<void> {
    await this.store.deadLetterDelivery(delivery.id, this.options.instanceId, reason, status, this.now());
    this.options.metrics.deliveries.inc({
      outcome: 'dead',
      transport: delivery.endpoint ? 'http' : 'socket',
    });
    this.log.warn({ id: delivery.id, tenantId: delivery.tenantId, reason }, 'delivery dead-lettered');
  }
}

/**
 * During a delivery-key rotation window keep signing with the previous key: gateways still hold it,
 * and each one verifies against [new, previous] once updated. The new key signs once the window ends.
 */
export function signingKey(keys: DeliveryKeys, now: number): string {
  return keys.secondary && (keys.secondaryExpiresAt ?? 0) > now ? keys.secondary : keys.primary;
}
