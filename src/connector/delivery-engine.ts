import { randomBytes, randomFillSync, randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { nowSeconds, signDelivery } from '../auth/index.js';
import { backoffDelay } from '../common/backoff.js';
import { type BoundedCache, boundedCache } from '../common/cache.js';
import { errorMessage } from '../common/errors.js';
import type { TargetGuard } from '../common/ssrf.js';
import {
  buildSessionKey,
  DELIVERY_HTTP_TIMEOUT_MS,
  HEADER_DELIVERY_ID,
  HEADER_SESSION_KEY,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  INTERRUPT_DELIVERY_SUFFIX,
  interruptDeliveryBody,
  type MediaItem,
  messageDeliveryBody,
  messageEventToWire,
  normalizePlatform,
  passthroughDeliveryBody,
  sessionKeyAliases,
} from '../protocol/index.js';
import type { ClusterBus } from './cluster/bus.js';
import type { GatewayConnection, GatewayRegistry } from './gateway-registry.js';
import type { ConnectorMetrics } from './metrics.js';
import {
  INGEST_DEDUPE_TTL_MS,
  type InboundAttachment,
  type IngestOutcome,
  type PlatformInbound,
} from './platforms/types.js';
import { SessionDirectory, type SessionPlacement } from './session-directory.js';
import { postBytes } from './signed-post.js';
import { SocketDelivery, type SocketDeliveryWork, type SocketOutcome } from './socket-delivery.js';
import type {
  ClaimFairness,
  CompletionResult,
  DeliveryKeys,
  DeliveryRecord,
  NewDelivery,
  RelayStore,
  RouteRecord,
} from './store/types.js';

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
  /** The SSRF rule for endpoints, applied on every new connection (default: public addresses only). */
  targets?: TargetGuard | undefined;
  /**
   * False while this instance's own cluster heartbeat may have lapsed (cut off from Redis, still on
   * Postgres): the others may be releasing its claims, so it claims and delivers nothing until its
   * heartbeat is current again (fencing, #18). Unset: always alive (one instance).
   */
  alive?: () => boolean;
  /** Attempts in flight at once (default 128). */
  concurrency?: number;
  /**
   * Attempts in flight at once for one tenant, HTTP and socket alike (default half of
   * `concurrency`, 64 of 128), so one tenant's backlog to a slow endpoint or a gateway slow to
   * acknowledge cannot take every slot (#18): the other half always serves the other tenants.
   * Half, not less: a tenant alone with many sessions and a fast endpoint keeps the throughput it
   * had (a quarter cost a measurable part of it in the delivery bench, see src/connector/README.md).
   */
  tenantConcurrency?: number;
  leaseMs?: number;
  httpTimeoutMs?: number;
  ackTimeoutMs?: number;
  maxAgeMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** How long a tenant's delivery keys are reused (default DELIVERY_KEYS_TTL_MS; 0 = read every time). */
  deliveryKeysTtlMs?: number;
  /** Platforms served here, which a reference gateway may name `relay` in a session key. */
  platforms?: readonly string[];
  /** Whether an event on a route should reach the tenant's agent at all (relevance policies). */
  relevant?: (route: RouteRecord, platform: string, inbound: PlatformInbound) => Promise<boolean>;
  /** Re-host one inbound file for `tenantId` (the media plane); undefined when it could not be. */
  rehost?: (tenantId: string, attachment: InboundAttachment) => Promise<MediaItem | undefined>;
  /** A socket delivery found no socket for its tenant (e.g. to poke an idle gateway awake). */
  onNoSocket?: (delivery: DeliveryRecord) => void;
  now?: () => number;
}

const IDLE_POLL_MS = 1_000;
const MIN_RESCHEDULE_MS = 50;
/**
 * The pump's floor while tenants sit at their cap with due rows left over: those rows wait for
 * their tenant's attempts to finish (which wake the pump), so polling for them faster only runs
 * claims that take nothing. Other tenants' new rows wake the pump themselves.
 */
const CAPPED_RESCHEDULE_MS = 250;
/** An interrupt not delivered within this long is dropped, and until then a repeat is coalesced. */
const INTERRUPT_MAX_AGE_MS = 60_000;
const PENDING_INTERRUPTS_MAX = 100_000;
const NO_SOCKET_RETRY_CAP_MS = 5_000;
/**
 * How long a tenant's delivery keys are reused without asking the store again. A rotation keeps
 * the previous key valid (and signing, see {@link signingKey}) for its window, so keys read up to
 * this long ago sign exactly as fresh ones would; only a rotation with no window at all can sign
 * with the old key for this long, and the gateway's 401 is retried.
 */
const DELIVERY_KEYS_TTL_MS = 1_000;
/** How often a fenced instance looks whether its heartbeat is back. */
const FENCED_POLL_MS = 500;
const DELIVERY_KEYS_CACHE_MAX = 10_000;
/** How long a chat's `recordChat` stands before an event writes it again (its `updated_at`). */
const KNOWN_CHAT_REFRESH_MS = 24 * 3600_000;
/** Rows one group commit writes at most. */
const MAX_GROUP_COMMIT = 512;

export class DeliveryEngine {
  readonly sessions = new SessionDirectory();
  private readonly store: RelayStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly concurrency: number;
  private readonly tenantConcurrency: number;
  /** Attempt slots taken, by tenant (only tenants with at least one). */
  private readonly tenantInflight = new Map<string, number>();
  /** The last claim left due rows behind because their tenants were at their cap. */
  private capped = false;
  private readonly leaseMs: number;
  private readonly httpTimeoutMs: number;
  private readonly maxAgeMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffCapMs: number;
  /** Reached only through the engine (acknowledge, connectionsReady/Closed, deliverHere). */
  private readonly sockets: SocketDelivery;
  /**
   * Chats recently recorded for their tenant: `recordChat` is written once per chat and day, not
   * per event — often enough that retention (which prunes chats idle for a year) never takes a
   * chat that is still in use.
   */
  private readonly knownChats: BoundedCache<string, true>;
  /**
   * `tenant \0 session key` → until when an interrupt of that session is waiting in the outbox:
   * a repeated `/stop` while one is still on its way adds nothing.
   */
  private readonly pendingInterrupts: BoundedCache<string, true>;
  private readonly keyCache: BoundedCache<string, DeliveryKeys>;
  private readonly keysTtlMs: number;
  /** Gateways known revoked (true) or not (false), asked of the store at most every few seconds. */
  private readonly revokedCache: BoundedCache<string, boolean>;
  /**
   * Ingest group commit: the outbox rows of the events ingested in one event-loop turn are written
   * in one transaction, and each `ingest` resolves only after that commit, so an event is still
   * durable before its platform is acknowledged.
   */
  private readonly enqueues: GroupCommit<NewDelivery, DeliveryRecord>;
  /**
   * Completion write-behind: the rows delivered in one event-loop turn are deleted in one
   * transaction right after it (setImmediate), instead of one commit each. Until that commit the
   * row is still in the outbox, claimed by this instance; a crash in between only means the
   * delivery is sent again once the claim is released or expires, and gateways deduplicate by
   * delivery id (the receiver's memory and the durable inbox). `done` waits for the commit, so
   * `stop()` (which waits for in-flight attempts) never leaves a completion unwritten.
   *
   * Both group commits are started from one `setImmediate` ({@link writeBatches}); on a store with
   * `atomically` (SQLite) the completions and the new rows of one turn share one transaction: one
   * commit, and the WAL pages both touch written once (issue 20: 43 % fewer bytes written and
   * 5–20 % less CPU per row in a store microbenchmark of 16-row batches). Durability is unchanged:
   * no ingest and no completion is answered before that commit.
   */
  private readonly completions: GroupCommit<string, CompletionResult>;
  /** Both group commits are written in one `setImmediate`, so a store can commit them together. */
  private writesScheduled = false;
  private running = false;
  private wasFenced = false;
  private pumping = false;
  private again = false;
  /** A pump is already due at once (a wake does not push it back). */
  private wakeArmed = false;
  /**
   * Due work may be waiting for a free attempt slot (the last claim filled every slot, or a row
   * was queued without a lease): a finished attempt then wakes the pump. Otherwise only attempts
   * that change what is due (a retry, a dead letter, a completion that promoted the next message
   * of its session) do, so delivering at full speed does not run an empty claim per delivery.
   */
  private backlog = false;
  private inflight = 0;
  private timer: NodeJS.Timeout | undefined;
  private idle: Promise<void> = Promise.resolve();
  private settleIdle: (() => void) | undefined;

  constructor(private readonly options: DeliveryEngineOptions) {
    this.store = options.store;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.keysTtlMs = options.deliveryKeysTtlMs ?? DELIVERY_KEYS_TTL_MS;
    this.keyCache = boundedCache({ max: DELIVERY_KEYS_CACHE_MAX, ttlMs: this.keysTtlMs, now: this.now });
    this.knownChats = boundedCache({ max: 100_000, ttlMs: KNOWN_CHAT_REFRESH_MS, now: this.now });
    this.revokedCache = boundedCache({ max: DELIVERY_KEYS_CACHE_MAX, ttlMs: this.keysTtlMs, now: this.now });
    this.pendingInterrupts = boundedCache({
      max: PENDING_INTERRUPTS_MAX,
      ttlMs: INTERRUPT_MAX_AGE_MS,
      now: this.now,
    });
    this.concurrency = options.concurrency ?? 128;
    this.tenantConcurrency = Math.max(
      1,
      Math.min(this.concurrency, options.tenantConcurrency ?? Math.floor(this.concurrency / 2)),
    );
    this.leaseMs = options.leaseMs ?? 60_000;
    this.httpTimeoutMs = options.httpTimeoutMs ?? DELIVERY_HTTP_TIMEOUT_MS;
    this.sockets = new SocketDelivery({
      registry: options.registry,
      sessions: this.sessions,
      log: options.log,
      bus: options.bus,
      metrics: options.metrics,
      ackTimeoutMs: options.ackTimeoutMs,
    });
    this.maxAgeMs = options.maxAgeMs ?? 24 * 3600 * 1000;
    this.backoffBaseMs = options.backoffBaseMs ?? 1_000;
    this.backoffCapMs = options.backoffCapMs ?? 5 * 60 * 1000;
    const { store } = options;
    const schedule = (): void => this.scheduleWrites();
    this.enqueues = new GroupCommit(
      (batch, committed) => this.enqueueLeased(batch, committed),
      (one) => store.enqueueDelivery(one),
      schedule,
    );
    this.completions = new GroupCommit(
      async (ids, committed) => {
        const results = await store.completeDeliveries(ids, options.instanceId);
        await committed;
        return results;
      },
      // Alone (a failed batch is retried one by one), a completion may have promoted a successor.
      async (id) => ({ completed: await store.completeDelivery(id, options.instanceId), promoted: true }),
      schedule,
    );
  }

  private scheduleWrites(): void {
    if (this.writesScheduled) return;
    this.writesScheduled = true;
    setImmediate(() => {
      this.writesScheduled = false;
      this.writeBatches();
    });
  }

  /**
   * Write what both group commits gathered this turn: completions first (a session's next row may
   * become its head), then the new rows. With a store that can (`atomically`: SQLite) both go in
   * one transaction, one commit instead of two (issue 20); nobody is answered before that commit.
   */
  private writeBatches(): void {
    const { store } = this;
    if (store.atomically && this.completions.hasWork() && this.enqueues.hasWork()) {
      let settle!: (commit: Promise<void>) => void;
      const committed = new Promise<void>((resolve) => {
        settle = resolve;
      });
      let ran = false;
      const commit = store.atomically(() => {
        ran = true;
        this.completions.start(committed);
        this.enqueues.start(committed);
      });
      settle(commit);
      // Each batch awaits `committed` and takes its failure (retrying its items one by one).
      commit.catch(() => undefined);
      if (ran) return;
      // The transaction could not even begin (the file is locked): each batch on its own.
    }
    this.completions.start(COMMITTED);
    this.enqueues.start(COMMITTED);
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
    this.wakeArmed = false;
    if (this.inflight > 0) {
      this.idle = new Promise((resolve) => {
        this.settleIdle = resolve;
      });
      await Promise.race([this.idle, sleep(graceMs, undefined, { ref: false })]);
    }
    this.sockets.stop();
    await this.store.releaseClaims(this.options.instanceId, this.now());
  }

  /**
   * The group commit of ingested rows, which also leases to this instance the rows it can start at
   * once (up to the free attempt slots), in the same transaction: they skip a separate claim and
   * the pump's timer hop. The slots are taken before the write (the pump may run meanwhile) and
   * the unused ones handed back after it; `ingest` launches each leased row it gets back.
   */
  private async enqueueLeased(batch: NewDelivery[], committed: Promise<void>): Promise<DeliveryRecord[]> {
    let slots =
      this.running && !this.fenced()
        ? Math.max(0, Math.min(batch.length, this.concurrency - this.inflight))
        : 0;
    // Each tenant's share too: no more than its cap minus what it has in flight (#18).
    const tenantLimits = new Map<string, number>();
    if (slots > 0) {
      for (const delivery of batch)
        tenantLimits.set(delivery.tenantId, (tenantLimits.get(delivery.tenantId) ?? 0) + 1);
      let shares = 0;
      for (const [tenantId, wanted] of tenantLimits) {
        const share = Math.max(0, Math.min(wanted, this.tenantConcurrency - this.tenantSlots(tenantId)));
        tenantLimits.set(tenantId, share);
        this.takeTenantSlots(tenantId, share);
        shares += share;
      }
      slots = Math.min(slots, shares);
    }
    this.inflight += slots;
    const leasedBy = new Map<string, number>();
    let leased = 0;
    try {
      const records = await this.store.enqueueDeliveries(
        batch,
        slots > 0
          ? {
              claimer: this.options.instanceId,
              now: this.now(),
              leaseMs: this.leaseMs,
              limit: slots,
              tenantLimits,
            }
          : undefined,
      );
      // Not before the commit: a failed one wrote nothing, so no row is leased (slots handed back).
      await committed;
      for (const record of records)
        if (record.claimedBy === this.options.instanceId && !record.duplicate) {
          leased++;
          leasedBy.set(record.tenantId, (leasedBy.get(record.tenantId) ?? 0) + 1);
        }
      return records;
    } finally {
      this.inflight -= slots - leased;
      for (const [tenantId, share] of tenantLimits)
        this.takeTenantSlots(tenantId, (leasedBy.get(tenantId) ?? 0) - share);
      if (this.inflight === 0) this.settleIdle?.();
    }
  }

  private tenantSlots(tenantId: string): number {
    return this.tenantInflight.get(tenantId) ?? 0;
  }

  /** Take (or, negative, give back) attempt slots of a tenant. */
  private takeTenantSlots(tenantId: string, count: number): void {
    if (count === 0) return;
    const left = this.tenantSlots(tenantId) + count;
    if (left > 0) this.tenantInflight.set(tenantId, left);
    else this.tenantInflight.delete(tenantId);
  }

  /**
   * What the claim must respect so that no tenant goes over its cap: nothing when even `limit`
   * rows of the busiest tenant would stay within it (the plain oldest-first claim, the hot path).
   */
  private claimFairness(limit: number): ClaimFairness | undefined {
    let busiest = 0;
    for (const count of this.tenantInflight.values()) if (count > busiest) busiest = count;
    if (busiest + limit <= this.tenantConcurrency) return undefined;
    return { perTenant: this.tenantConcurrency, inflight: this.tenantInflight };
  }

  /** PlatformContext.ingest: resolves once the event is durably queued. */
  async ingest(platform: string, inbound: PlatformInbound): Promise<IngestOutcome> {
    const { metrics } = this.options;
    let leased: DeliveryRecord | undefined;
    try {
      const route = await this.store.findRoute(platform, inbound.routeKey);
      if (!route) {
        metrics.inboundEvents.inc({ platform, outcome: 'no_route' });
        return { ok: false, reason: 'no_route', message: `no route for ${platform} ${inbound.routeKey}` };
      }
      if (this.options.relevant && !(await this.options.relevant(route, platform, inbound))) {
        metrics.inboundEvents.inc({ platform, outcome: 'irrelevant' });
        return { ok: false, reason: 'irrelevant', message: "not relevant under the gateway's policy" };
      }
      if (inbound.passthrough && route.endpoint) {
        metrics.inboundEvents.inc({ platform, outcome: 'unsupported' });
        return {
          ok: false,
          reason: 'unsupported',
          message:
            'a passthrough forward needs a gateway on a socket (current generation); this route posts to an endpoint',
        };
      }
      const source = { ...inbound.event.source, platform };
      const sessionKey = buildSessionKey({ ...source, platform: normalizePlatform(platform) });
      const deliveryId = newDeliveryId();
      const media = await this.rehostAll(route.tenantId, inbound.attachments);
      if (
        inbound.attachments?.length &&
        media.length === 0 &&
        !inbound.event.text.trim() &&
        !inbound.passthrough
      ) {
        // Only files, and none could be stored: nothing is left to give the agent.
        metrics.inboundEvents.inc({ platform, outcome: 'unsupported' });
        return { ok: false, reason: 'unsupported', message: 'the message’s files could not be stored' };
      }
      const event = media.length
        ? { ...inbound.event, source, media_urls: media.map((item) => item.url), media }
        : { ...inbound.event, source };
      await inbound.beforeQueue?.({ tenantId: route.tenantId, sessionKey });
      const body = JSON.stringify(
        inbound.passthrough
          ? passthroughDeliveryBody(inbound.passthrough, deliveryId)
          : messageDeliveryBody(messageEventToWire(event), deliveryId),
      );
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
        this.knownChats.set(chatKey, true);
      }
      const record = await this.enqueues.submit({
        id: deliveryId,
        tenantId: route.tenantId,
        gatewayId: route.gatewayId,
        sessionKey,
        kind: 'message',
        body,
        endpoint: route.endpoint,
        createdAt: now,
        ...(inbound.dedupeKey
          ? { dedupe: { key: inbound.dedupeKey, until: now + (inbound.dedupeTtlMs ?? INGEST_DEDUPE_TTL_MS) } }
          : {}),
      });
      if (record.duplicate) {
        metrics.inboundEvents.inc({ platform, outcome: 'duplicate' });
        return { ok: false, reason: 'duplicate', message: `already queued as ${record.id}` };
      }
      // Leased to us by the group commit, its attempt slot already counted: ours to start (below,
      // once the session's placement is known, which socket delivery reads).
      if (record.claimedBy === this.options.instanceId && record.claimedUntil !== null) leased = record;
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
          .catch((error: unknown) =>
            this.log.warn({ err: errorMessage(error) }, 'session placement not shared'),
          );
      }
      metrics.inboundEvents.inc({ platform, outcome: 'queued' });
      if (leased) {
        const own = leased;
        leased = undefined;
        this.run(own);
      } else {
        this.backlog = true;
        this.wake();
      }
      return {
        ok: true,
        deliveryId,
        tenantId: route.tenantId,
        sessionKey,
        ...(media.length ? { media } : {}),
      };
    } catch (error) {
      metrics.inboundEvents.inc({ platform, outcome: 'error' });
      this.log.error({ err: errorMessage(error), platform }, 'could not queue inbound event');
      return { ok: false, reason: 'store_error', message: 'could not queue the event' };
    } finally {
      // A leased row is committed and holds a slot: it is delivered whatever happened after.
      if (leased) this.run(leased);
    }
  }

  /** Each attachment re-hosted in order; one that fails is dropped (current §7.3), never the event. */
  private async rehostAll(
    tenantId: string,
    attachments: readonly InboundAttachment[] | undefined,
  ): Promise<MediaItem[]> {
    const rehost = this.options.rehost;
    if (!attachments?.length || !rehost) return [];
    const items: MediaItem[] = [];
    for (const attachment of attachments) {
      const item = await rehost(tenantId, attachment).catch((error: unknown) => {
        this.log.warn(
          { kind: attachment.kind, err: errorMessage(error) },
          'attachment not re-hosted; dropped',
        );
        return undefined;
      });
      if (item) items.push(item);
    }
    return items;
  }

  /**
   * A gateway's `interrupt` (June §4.6, current §5.3): routed to the gateway that runs the session,
   * by the path that gateway reads (a signed POST to `<endpoint>/interrupt`, or an
   * `interrupt_inbound` frame on its socket), naming the session as the gateway names it. A reference
   * gateway may name a platform it does not know `relay` ({@link sessionKeyAliases}). A session this
   * connector never delivered (no placement, here or in the cluster) runs nowhere, so its interrupt
   * is dropped; a repeat while one is still pending is coalesced into it.
   */
  async enqueueInterrupt(from: GatewayConnection, sessionKey: string, reason: string | null): Promise<void> {
    const key = `${from.tenantId}\u0000${sessionKey}`;
    if (this.pendingInterrupts.has(key)) {
      this.options.metrics.interruptsDropped.inc({ reason: 'coalesced' });
      return;
    }
    // Known here, found without yielding, so a burst of repeats coalesces into the first.
    const found =
      this.localPlacementOf(from.tenantId, sessionKey) ?? (await this.placementOf(from.tenantId, sessionKey));
    if (!found) {
      this.options.metrics.interruptsDropped.inc({ reason: 'unknown_session' });
      this.log.debug({ gatewayId: from.gatewayId }, 'interrupt for a session never delivered: dropped');
      return;
    }
    const { placement, ownKey } = found;
    this.pendingInterrupts.set(key, true);
    const deliveryId = `dlv_${randomBytes(12).toString('hex')}`;
    // The body names the session as the gateway does; the row is keyed as the connector keys it, so
    // it reaches the socket the session's messages went to.
    const body = JSON.stringify(
      interruptDeliveryBody(sessionKey, placement.chatId, reason ?? 'stop', deliveryId),
    );
    await this.store.enqueueDelivery({
      id: deliveryId,
      tenantId: from.tenantId,
      gatewayId: placement.gatewayId,
      sessionKey: ownKey,
      kind: 'interrupt',
      body,
      endpoint: placement.endpoint,
      createdAt: this.now(),
    });
    this.wake();
  }

  private localPlacementOf(
    tenantId: string,
    sessionKey: string,
  ): { placement: SessionPlacement; ownKey: string } | undefined {
    for (const candidate of sessionKeyAliases(sessionKey, this.options.platforms ?? [])) {
      const placement = this.sessions.get(candidate, tenantId);
      if (placement) return { placement, ownKey: candidate };
    }
    return undefined;
  }

  /** Where a session's messages went, under the key as given or one of its `relay` aliases. */
  private async placementOf(
    tenantId: string,
    sessionKey: string,
  ): Promise<{ placement: SessionPlacement; ownKey: string } | undefined> {
    for (const candidate of sessionKeyAliases(sessionKey, this.options.platforms ?? [])) {
      const placement =
        this.sessions.get(candidate, tenantId) ??
        (await this.options.bus?.sessionPlacement(tenantId, candidate).catch(() => null)) ??
        undefined;
      if (placement) return { placement, ownKey: candidate };
    }
    return undefined;
  }

  /** `inbound_ack` from a gateway; only its own tenant's deliveries can be acknowledged. */
  acknowledge(connection: GatewayConnection, bufferId: string | number): void {
    this.sockets.acknowledge(connection, bufferId);
  }

  /** Sockets finished their handshake: they may receive deliveries, from any instance. */
  connectionsReady(connections: readonly GatewayConnection[]): void {
    for (const connection of connections) this.sockets.connectionReady(connection);
  }

  /**
   * A socket of each of these tenants is ready: their rows waiting out a no-socket backoff need not
   * wait any longer. Only when some were moved is the pump woken: a row already due is on the
   * pump's timer, and a handshake storm must not cost a claim query per socket (issue 20). The
   * store calls are issued at once (synchronously for SQLite), so a caller may run this inside
   * `store.atomically` with its own writes: one commit for a burst of handshakes.
   */
  releaseWaitingDeliveries(tenantIds: Iterable<string>): void {
    const now = this.now();
    for (const tenantId of tenantIds)
      void this.store.makeSocketDeliveriesDue(tenantId, now).then(
        (moved) => {
          if (moved > 0) this.wake();
        },
        (error: unknown) => {
          this.log.warn({ err: errorMessage(error) }, 'waiting deliveries not rescheduled');
          this.wake();
        },
      );
  }

  /** A socket closed: deliveries waiting for its acks are retried elsewhere or later. */
  connectionClosed(connection: GatewayConnection): void {
    this.sockets.connectionClosed(connection);
  }

  /** Another connector instance asks this one to deliver on a socket it holds (cluster bus). */
  deliverHere(connectionId: string, tenantId: string, work: SocketDeliveryWork): Promise<SocketOutcome> {
    return this.sockets.deliverHere(connectionId, tenantId, work);
  }

  wake(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    // Once armed, later wakes leave the timer alone: re-arming it on every wake would keep
    // pushing the pump back for as long as wakes come faster than the timer fires.
    if (this.wakeArmed) return;
    this.wakeArmed = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.wakeArmed = false;
      void this.pump();
    }, 0);
  }

  private async pump(): Promise<void> {
    if (this.pumping || !this.running) return;
    if (this.fenced()) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.pump(), FENCED_POLL_MS);
      return;
    }
    this.pumping = true;
    let failed = false;
    try {
      do {
        this.again = false;
        this.backlog = false;
        while (this.running) {
          if (this.inflight >= this.concurrency) {
            this.backlog = true;
            break;
          }
          const limit = Math.min(64, this.concurrency - this.inflight);
          const fairness = this.claimFairness(limit);
          const batch = await this.store.claimDueDeliveries(
            this.options.instanceId,
            this.now(),
            limit,
            this.leaseMs,
            fairness && { perTenant: fairness.perTenant, inflight: new Map(fairness.inflight) },
          );
          for (const delivery of batch) this.launch(delivery);
          if (batch.length < limit) {
            // Short under per-tenant caps: rows of capped tenants may be left, which a finished
            // attempt of theirs (settled → backlog → wake) lets us claim.
            this.capped = fairness !== undefined && this.anyTenantCapped();
            if (this.capped) this.backlog = true;
            break;
          }
          this.capped = false;
        }
      } while (this.again && this.running);
      if (this.running) await this.scheduleNext();
    } catch (error) {
      this.log.error({ err: errorMessage(error) }, 'outbox pump failed; retrying');
      failed = true;
      if (this.running) this.timer = setTimeout(() => void this.pump(), IDLE_POLL_MS);
    } finally {
      this.pumping = false;
    }
    // A wake that came while the next timer was being worked out must not wait for that timer.
    if (this.again && this.running && !failed) {
      this.again = false;
      this.wake();
    }
  }

  private async scheduleNext(): Promise<void> {
    const next = await this.store.nextDueAt();
    this.options.metrics.outboxDepth.set(await this.store.outboxDepth());
    const until = next === null ? IDLE_POLL_MS : next - this.now();
    // Due rows that could not be claimed wait behind their session's head, whose completion wakes
    // us; the floor keeps that from spinning. The ceiling picks up rows other processes queued.
    const floor = this.capped ? CAPPED_RESCHEDULE_MS : MIN_RESCHEDULE_MS;
    const delay = Math.min(IDLE_POLL_MS, Math.max(floor, until));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pump(), delay);
  }

  private launch(delivery: DeliveryRecord): void {
    this.inflight++;
    this.takeTenantSlots(delivery.tenantId, 1);
    this.run(delivery);
  }

  private anyTenantCapped(): boolean {
    for (const count of this.tenantInflight.values()) if (count >= this.tenantConcurrency) return true;
    return false;
  }

  /** Attempt a delivery whose slot (and its tenant's) is already counted in `inflight`. */
  private run(delivery: DeliveryRecord): void {
    this.attempt(delivery).then(
      (changedDueWork) => this.settled(delivery, changedDueWork),
      (error: unknown) => {
        this.log.error({ err: errorMessage(error), id: delivery.id }, 'delivery attempt failed');
        this.settled(delivery, true);
      },
    );
  }

  private settled(delivery: DeliveryRecord, changedDueWork: boolean): void {
    this.takeTenantSlots(delivery.tenantId, -1);
    this.inflight--;
    if (this.inflight === 0) this.settleIdle?.();
    if (changedDueWork || this.backlog) this.wake();
  }

  /** Resolves to whether the attempt changed what is due (anything but a plain completion). */
  /** True (and said once per spell) while this instance must not claim or deliver. */
  private fenced(): boolean {
    const fenced = this.options.alive ? !this.options.alive() : false;
    if (fenced !== this.wasFenced) {
      this.wasFenced = fenced;
      if (fenced)
        this.log.warn(
          'this instance lost its cluster heartbeat: claiming and delivering nothing until it is back',
        );
      else this.log.info('cluster heartbeat back: delivering again');
    }
    return fenced;
  }

  private async attempt(delivery: DeliveryRecord): Promise<boolean> {
    if (this.fenced()) {
      // Not sent: the row goes back (if it is still ours) for whoever is alive to take it.
      await this.store.retryDeliveryLater(
        delivery.id,
        this.options.instanceId,
        this.now() + FENCED_POLL_MS,
        'the instance holding it lost its cluster heartbeat',
        null,
      );
      return true;
    }
    // A route bound to a revoked gateway delivers nothing more: not to its endpoint (which does
    // not check who sends), not waiting for a socket it will never be allowed to open (#18).
    if (delivery.gatewayId && (await this.isRevoked(delivery.gatewayId)))
      return this.dead(
        delivery,
        `gateway ${delivery.gatewayId} is revoked: enroll it again, or bind the route to another gateway`,
        null,
      );
    return delivery.endpoint ? this.attemptHttp(delivery) : this.attemptSocket(delivery);
  }

  /** A gateway was revoked (here or on another instance): its deliveries stop at once. */
  forgetGateway(gatewayId: string): void {
    this.revokedCache.delete(gatewayId);
  }

  private async isRevoked(gatewayId: string): Promise<boolean> {
    const cached = this.revokedCache.get(gatewayId);
    if (cached !== undefined) return cached;
    const gateway = await this.store.getGateway(gatewayId);
    // A route may name a gateway not enrolled yet: its deliveries wait for it as before.
    const revoked = gateway !== null && gateway.revokedAt !== null;
    if (this.keysTtlMs > 0) this.revokedCache.set(gatewayId, revoked);
    return revoked;
  }

  private async attemptHttp(delivery: DeliveryRecord): Promise<boolean> {
    const keys = await this.deliveryKeys(delivery.tenantId);
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
        [HEADER_SIGNATURE]: signDelivery(body, signingKey(keys, this.now(), delivery.attempts), ts),
        [HEADER_DELIVERY_ID]: delivery.id,
        [HEADER_SESSION_KEY]: delivery.sessionKey,
      },
      this.httpTimeoutMs,
      this.options.targets,
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

  /** The tenant's delivery keys, read from the store at most every {@link DELIVERY_KEYS_TTL_MS}. */
  /** A tenant's delivery key was rotated (cluster event): sign with the stored keys from now on. */
  forgetDeliveryKeys(tenantId: string): void {
    this.keyCache.delete(tenantId);
  }

  private async deliveryKeys(tenantId: string): Promise<DeliveryKeys | null> {
    const cached = this.keyCache.get(tenantId);
    if (cached) return cached;
    const keys = await this.store.getDeliveryKeys(tenantId);
    // A tenant without keys is not remembered: the next attempt asks again.
    if (keys && this.keysTtlMs > 0) this.keyCache.set(tenantId, keys);
    return keys;
  }

  private async attemptSocket(delivery: DeliveryRecord): Promise<boolean> {
    const outcome = await this.sockets.deliver(delivery);
    if (outcome.kind === 'delivered') return this.done(delivery, 'socket');
    // A stored body that makes no valid frame never will: dead-lettered (and logged) at once.
    if (outcome.kind === 'invalid') return this.dead(delivery, outcome.error, null);
    if (outcome.kind === 'no_socket') {
      this.options.onNoSocket?.(delivery);
      return this.retry(delivery, 'no gateway connected', null, undefined, 'socket', NO_SOCKET_RETRY_CAP_MS);
    }
    return this.retry(delivery, outcome.error, null, undefined, 'socket', 1_000);
  }

  /** Resolves to whether the completion made the next message of the session claimable. */
  private async done(delivery: DeliveryRecord, transport: string): Promise<boolean> {
    this.interruptSettled(delivery);
    const { promoted } = await this.completions.submit(delivery.id);
    this.options.metrics.deliveries.inc({ outcome: 'delivered', transport });
    this.options.metrics.deliveryLatency.observe(Math.max(0, this.now() - delivery.createdAt) / 1000);
    return promoted;
  }

  private async retry(
    delivery: DeliveryRecord,
    error: string,
    status: number | null,
    retryAfterMs: number | undefined,
    transport: string,
    capMs = this.backoffCapMs,
  ): Promise<true> {
    const now = this.now();
    if (
      delivery.kind === 'interrupt' &&
      now - delivery.createdAt >= Math.min(this.maxAgeMs, INTERRUPT_MAX_AGE_MS)
    ) {
      // A `/stop` is worth seconds, not a day: a late one would stop a turn the user wants.
      this.interruptSettled(delivery);
      await this.completions.submit(delivery.id);
      this.options.metrics.deliveries.inc({ outcome: 'expired', transport });
      this.log.info({ id: delivery.id, tenantId: delivery.tenantId, error }, 'interrupt expired undelivered');
      return true;
    }
    if (now - delivery.createdAt >= this.maxAgeMs) {
      return this.dead(delivery, `gave up after ${Math.round(this.maxAgeMs / 3600_000)} h: ${error}`, status);
    }
    // Equal jitter: never retry sooner than half the step, spread the rest.
    const exponential = backoffDelay(delivery.attempts, {
      baseMs: this.backoffBaseMs,
      capMs,
      jitter: 'equal',
    });
    const requested = Math.min(retryAfterMs ?? 0, this.backoffCapMs);
    const delay = Math.max(requested, exponential);
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
    return true;
  }

  /** An interrupt left the outbox: the next `/stop` of its session is a new one. */
  private interruptSettled(delivery: DeliveryRecord): void {
    if (delivery.kind === 'interrupt')
      this.pendingInterrupts.delete(`${delivery.tenantId}\u0000${delivery.sessionKey}`);
  }

  private async dead(delivery: DeliveryRecord, reason: string, status: number | null): Promise<true> {
    this.interruptSettled(delivery);
    await this.store.deadLetterDelivery(delivery.id, this.options.instanceId, reason, status, this.now());
    this.options.metrics.deliveries.inc({
      outcome: 'dead',
      transport: delivery.endpoint ? 'http' : 'socket',
    });
    this.log.warn({ id: delivery.id, tenantId: delivery.tenantId, reason }, 'delivery dead-lettered');
    return true;
  }
}

/**
 * During a delivery-key rotation window keep signing with the previous key: gateways still hold it,
 * and each one verifies against [new, previous] once updated. The new key signs once the window ends.
 * A gateway enrolled during the window holds only the new key and answers 401, which is retried:
 * so within the window every second attempt of a delivery (`attempt` counts from 1) is signed with
 * the new key, and such a gateway gets it on the first retry instead of a day later.
 */
export function signingKey(keys: DeliveryKeys, now: number, attempt = 1): string {
  const inWindow = keys.secondary !== null && (keys.secondaryExpiresAt ?? 0) > now;
  if (!inWindow) return keys.primary;
  return attempt % 2 === 1 ? (keys.secondary as string) : keys.primary;
}

/**
 * Delivery ids: `dlv_` and 24 hex characters, in time order (issue 20): 10 for the 16 ms window
 * the id was made in, 4 for a per-process counter, 10 (40 bits) from a pooled CSPRNG buffer (one
 * `randomFillSync` per 256 ids). Fully random ids landed on a random leaf of every index keyed by
 * them: the gateway's durable inbox keeps an hour of delivery ids under a UNIQUE index, and each
 * commit of 16 events rewrote ~16 of its pages instead of one (measured: 42 µs per journaled event
 * instead of 22 after six seconds, and the gap grows with the inbox). Ids of one window sort by the
 * counter, so new keys append at the right edge of those indexes.
 *
 * Uniqueness: within a process two ids of one window differ in the counter (65,536 ids per 16 ms
 * before it wraps); across connector instances a clash needs the same window, counter value and
 * 40 random bits. A delivery id names a delivery, it grants nothing (an `inbound_ack` counts only
 * for the socket's own tenant), so ids need not be unguessable; they still carry 40 random bits.
 */
const ID_RANDOM_BYTES = 5;
const ID_WINDOW_MS = 16;
const idPool = Buffer.alloc(ID_RANDOM_BYTES * 256);
let idOffset = idPool.length;
let idCounter = randomInt(0x10000);

/** `dlv_` + window (10 hex) + counter (4 hex) + random (10 hex); exported for its test. */
export function newDeliveryId(now = Date.now()): string {
  if (idOffset >= idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  idCounter = (idCounter + 1) & 0xffff;
  const window = Math.floor(now / ID_WINDOW_MS)
    .toString(16)
    .padStart(10, '0');
  const id = `dlv_${window}${idCounter.toString(16).padStart(4, '0')}${idPool.toString('hex', idOffset, idOffset + ID_RANDOM_BYTES)}`;
  idOffset += ID_RANDOM_BYTES;
  return id;
}

type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

interface Waiter<T, R> {
  item: T;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

/** The commit of a batch written on its own, outside any shared transaction. */
const COMMITTED: Promise<void> = Promise.resolve();

/**
 * Group commit: items submitted during one event-loop turn are written together by `many` (one
 * store transaction, or part of one shared with the other group commit of the engine: `many`
 * makes its store call synchronously and then awaits `committed`, the shared commit), started
 * from the owner's `setImmediate` (`schedule`), so whatever this turn's I/O callbacks and
 * microtasks submit joins the batch. Each submitter's promise settles only after the batch's
 * transaction committed. One batch is written at a time (the next one gathers meanwhile). If a
 * batch fails, its items are retried one by one with `one`, so one bad item fails only its own
 * caller.
 */
class GroupCommit<T, R> {
  private pending: Waiter<T, R>[] = [];
  private writing = false;

  constructor(
    private readonly many: (items: T[], committed: Promise<void>) => Promise<R[]>,
    private readonly one: (item: T) => Promise<R>,
    private readonly schedule: () => void,
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.writing) this.schedule();
    });
  }

  /** A batch can start now: items wait and none is being written. */
  hasWork(): boolean {
    return !this.writing && this.pending.length > 0;
  }

  /** Start writing the pending batch, if any and none is being written; `many` runs at once. */
  start(committed: Promise<void>): void {
    if (this.writing || this.pending.length === 0) return;
    this.writing = true;
    const batch = this.pending.splice(0, MAX_GROUP_COMMIT);
    void this.write(batch, committed);
  }

  private async write(batch: Waiter<T, R>[], committed: Promise<void>): Promise<void> {
    try {
      const outcomes = await this.commit(
        batch.map((waiter) => waiter.item),
        committed,
      );
      batch.forEach((waiter, i) => {
        const outcome = outcomes[i];
        if (outcome?.ok) waiter.resolve(outcome.value);
        else waiter.reject(outcome ? outcome.error : new Error('group commit lost an item'));
      });
    } finally {
      this.writing = false;
      if (this.pending.length > 0) this.schedule();
    }
  }

  private async commit(items: T[], committed: Promise<void>): Promise<Settled<R>[]> {
    try {
      const values = await this.many(items, committed);
      return values.map((value) => ({ ok: true, value }));
    } catch (error) {
      if (items.length === 1) return [{ ok: false, error }];
      const settled = await Promise.allSettled(items.map((item) => this.one(item)));
      return settled.map((result) =>
        result.status === 'fulfilled'
          ? { ok: true, value: result.value }
          : { ok: false, error: result.reason },
      );
    }
  }
}
