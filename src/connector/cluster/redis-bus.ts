import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@redis/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import { backoffDelay } from '../../common/backoff.js';
import { errorMessage } from '../../common/errors.js';
import { redactUrl } from '../../common/redact.js';
import { parseJsonText } from '../../protocol/index.js';
import {
  type ClusterBus,
  type ClusterEvent,
  ClusterEventSchema,
  type ClusterHandlers,
  type ClusterRequest,
  ClusterRequestSchema,
  type SessionPlacementRecord,
  type SocketAnnouncement,
} from './bus.js';

/**
 * The cluster bus on Redis (`RELAY_REDIS_URL`). Requests and replies travel on one pub/sub
 * channel per instance, events on one shared channel; the socket directory, chat owners, session
 * placements, leases and heartbeats are plain keys. Redis holds nothing that cannot be rebuilt:
 * losing it delays cross-instance traffic (deliveries retry) but loses no event, since the outbox
 * lives in Postgres.
 */

export interface RedisBusOptions {
  url: string;
  instanceId: string;
  log: Logger;
  /**
   * Key and channel prefix (default `relay:`; operator commands publish there). Tests use another
   * one to run separate clusters on one server; a deployment uses its own Redis.
   */
  prefix?: string;
  /** How long an instance counts as alive after its last heartbeat (default 10 s). */
  aliveTtlMs?: number;
  connectTimeoutMs?: number;
}

type Client = ReturnType<typeof createClient>;

const EnvelopeSchema = z.discriminatedUnion('k', [
  z.object({ k: z.literal('req'), id: z.string().max(64), from: z.string().max(256), body: z.unknown() }),
  z.object({ k: z.literal('res'), id: z.string().max(64), body: z.unknown() }),
]);

const SocketAnnouncementSchema = z.object({
  instanceId: z.string(),
  connectionId: z.string(),
  gatewayId: z.string(),
  tenantId: z.string(),
});

const PlacementSchema = z.object({
  tenantId: z.string(),
  chatId: z.string(),
  endpoint: z.string(),
  gatewayId: z.string().nullable(),
});

/** Take the key if free, keep it if ours; 1 = held. */
/** Fraction of the alive TTL after the last good heartbeat at which this instance stops claiming. */
const HEARTBEAT_SAFE_FRACTION = 0.6;

const HOLD_LEASE = `
local v = redis.call('GET', KEYS[1])
if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;

/** Delete the key only if it still holds our value. */
const DELETE_IF_OURS = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const DAY_SECONDS = 24 * 3600;
const DEFAULT_PREFIX = 'relay:';

function safeJson(text: string): unknown {
  const parsed = parseJsonText(text);
  return parsed.ok ? parsed.value : undefined;
}

export class RedisBus implements ClusterBus {
  private readonly prefix: string;
  private readonly aliveTtlMs: number;
  private readonly pending = new Map<string, { resolve: (value: unknown) => void; timer: NodeJS.Timeout }>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** When the last successful heartbeat was sent (0: none yet). */
  /** When the last heartbeat that reached Redis was sent, on the monotonic clock (a wall-clock step must not un-fence or fence this instance). */
  private lastBeatAt = Number.NEGATIVE_INFINITY;
  private handlers: ClusterHandlers | undefined;
  private stopped = false;
  /** This process's heartbeat value, telling it apart from another process using the same id. */
  private readonly nonce = `${process.pid}:${randomBytes(6).toString('hex')}`;

  private constructor(
    private readonly options: RedisBusOptions,
    private readonly client: Client,
    private readonly subscriber: Client,
  ) {
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.aliveTtlMs = options.aliveTtlMs ?? 10_000;
  }

  /** Connect (command and subscriber connections); rejects with a readable error if Redis is unreachable. */
  static async connect(options: RedisBusOptions): Promise<RedisBus> {
    const client = await connectClient(options.url, options.log, options.connectTimeoutMs ?? 10_000);
    let subscriber: Client;
    try {
      subscriber = await connectClient(options.url, options.log, options.connectTimeoutMs ?? 10_000);
    } catch (error) {
      client.destroy();
      throw error;
    }
    return new RedisBus(options, client, subscriber);
  }

  get instanceId(): string {
    return this.options.instanceId;
  }

  async start(handlers: ClusterHandlers): Promise<void> {
    this.handlers = handlers;
    // The id first: until it is ours, requests on its inbox belong to whoever holds it.
    await this.claimIdentity();
    await this.subscriber.subscribe(this.inbox(this.instanceId), (message) => this.onDirect(message));
    await this.subscriber.subscribe(this.key('events'), (message) => this.onEvent(message));
    this.heartbeat = setInterval(
      () => {
        this.beat().catch((error: unknown) =>
          this.options.log.warn({ err: errorMessage(error) }, 'cluster heartbeat failed'),
        );
      },
      Math.max(100, Math.floor(this.aliveTtlMs / 5)),
    );
    this.heartbeat.unref();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.resolve(undefined);
      this.pending.delete(id);
    }
    // Gone now, not in 10 s: the others release our claims and stop routing to us at once.
    await this.client
      .eval(DELETE_IF_OURS, { keys: [this.key(`alive:${this.instanceId}`)], arguments: [this.nonce] })
      .catch(() => undefined);
    await Promise.allSettled([this.subscriber.close(), this.client.close()]);
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async announceSocket(socket: SocketAnnouncement): Promise<void> {
    await this.client.hSet(
      this.key(`sockets:${socket.tenantId}`),
      socket.connectionId,
      JSON.stringify(socket),
    );
  }

  async withdrawSocket(socket: SocketAnnouncement): Promise<void> {
    await this.client.hDel(this.key(`sockets:${socket.tenantId}`), socket.connectionId);
  }

  async socketsOf(tenantId: string): Promise<SocketAnnouncement[]> {
    const raw = await this.client.hGetAll(this.key(`sockets:${tenantId}`));
    const sockets: SocketAnnouncement[] = [];
    for (const value of Object.values(raw)) {
      const parsed = SocketAnnouncementSchema.safeParse(safeJson(value));
      if (parsed.success && parsed.data.tenantId === tenantId) sockets.push(parsed.data);
    }
    const dead = new Set(await this.deadInstances([...new Set(sockets.map((s) => s.instanceId))]));
    if (dead.size === 0) return sockets;
    const stale = sockets.filter((s) => dead.has(s.instanceId)).map((s) => s.connectionId);
    await this.client.hDel(this.key(`sockets:${tenantId}`), stale).catch(() => undefined);
    return sockets.filter((s) => !dead.has(s.instanceId));
  }

  async request(instanceId: string, request: ClusterRequest, timeoutMs: number): Promise<unknown> {
    const id = randomBytes(12).toString('hex');
    const answer = new Promise<unknown>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, timer });
    });
    // Not awaited: a stalled Redis must not outlast `timeoutMs`.
    this.client
      .publish(this.inbox(instanceId), JSON.stringify({ k: 'req', id, from: this.instanceId, body: request }))
      .then(
        (receivers) => {
          if (receivers === 0) this.answer(id, undefined);
        },
        (error: unknown) => {
          this.options.log.warn({ err: errorMessage(error), instanceId }, 'cluster request not sent');
          this.answer(id, undefined);
        },
      );
    return answer;
  }

  async publish(event: ClusterEvent): Promise<void> {
    await this.client.publish(this.key('events'), JSON.stringify(event));
  }

  async holdLease(name: string, ttlMs: number): Promise<boolean> {
    const held = await this.client.eval(HOLD_LEASE, {
      keys: [this.key(`lease:${name}`)],
      arguments: [this.instanceId, String(Math.max(1, Math.floor(ttlMs)))],
    });
    return held === 1;
  }

  async releaseLease(name: string): Promise<void> {
    await this.client.eval(DELETE_IF_OURS, {
      keys: [this.key(`lease:${name}`)],
      arguments: [this.instanceId],
    });
  }

  async claimChat(platform: string, chatId: string): Promise<void> {
    await this.client.set(this.key(`chat:${platform}:${chatId}`), this.instanceId, {
      expiration: { type: 'EX', value: DAY_SECONDS },
    });
  }

  async releaseChat(platform: string, chatId: string): Promise<void> {
    await this.client.eval(DELETE_IF_OURS, {
      keys: [this.key(`chat:${platform}:${chatId}`)],
      arguments: [this.instanceId],
    });
  }

  async chatOwner(platform: string, chatId: string): Promise<string | null> {
    const owner = await this.client.get(this.key(`chat:${platform}:${chatId}`));
    if (typeof owner !== 'string') return null;
    return (await this.deadInstances([owner])).length === 0 ? owner : null;
  }

  async rememberSession(sessionKey: string, placement: SessionPlacementRecord): Promise<void> {
    await this.client.set(
      this.key(`session:${placement.tenantId}:${sessionKey}`),
      JSON.stringify(placement),
      {
        expiration: { type: 'EX', value: DAY_SECONDS },
      },
    );
  }

  async sessionPlacement(tenantId: string, sessionKey: string): Promise<SessionPlacementRecord | null> {
    const raw = await this.client.get(this.key(`session:${tenantId}:${sessionKey}`));
    if (typeof raw !== 'string') return null;
    const parsed = PlacementSchema.safeParse(safeJson(raw));
    return parsed.success && parsed.data.tenantId === tenantId ? parsed.data : null;
  }

  async deadInstances(instanceIds: readonly string[]): Promise<string[]> {
    if (instanceIds.length === 0) return [];
    const values = await this.client.mGet(instanceIds.map((id) => this.key(`alive:${id}`)));
    return instanceIds.filter((_, index) => values[index] === null || values[index] === undefined);
  }

  private async beat(): Promise<void> {
    const started = performance.now();
    await this.client.set(this.key(`alive:${this.instanceId}`), this.nonce, {
      expiration: { type: 'PX', value: this.aliveTtlMs },
    });
    // The key lives from when it was written, at the latest `started` + TTL.
    this.lastBeatAt = Math.max(this.lastBeatAt, started);
  }

  heartbeatCurrent(): boolean {
    // A margin before the key can expire: the others wait the full TTL before releasing claims.
    return performance.now() - this.lastBeatAt < this.aliveTtlMs * HEARTBEAT_SAFE_FRACTION;
  }

  /**
   * Two live processes with one instance id would release each other's claims and share an inbox.
   * A previous run of this instance that crashed is waited out (its heartbeat lapses); a live one
   * is refused.
   */
  private async claimIdentity(): Promise<void> {
    const key = this.key(`alive:${this.instanceId}`);
    const deadline = Date.now() + this.aliveTtlMs + 2_000;
    for (;;) {
      const started = performance.now();
      const taken = await this.client.set(key, this.nonce, {
        condition: 'NX',
        expiration: { type: 'PX', value: this.aliveTtlMs },
      });
      if (taken === 'OK') {
        this.lastBeatAt = started;
        return;
      }
      if (Date.now() > deadline)
        throw new Error(
          `another connector instance with id "${this.instanceId}" is running on this cluster; give each instance its own RELAY_INSTANCE_ID`,
        );
      await sleep(250);
    }
  }

  private onDirect(message: string): void {
    const parsed = EnvelopeSchema.safeParse(safeJson(message));
    if (!parsed.success) {
      this.options.log.warn('malformed cluster message ignored');
      return;
    }
    const envelope = parsed.data;
    if (envelope.k === 'res') {
      this.answer(envelope.id, envelope.body);
      return;
    }
    void this.serve(envelope.id, envelope.from, envelope.body);
  }

  private async serve(id: string, from: string, body: unknown): Promise<void> {
    const request = ClusterRequestSchema.safeParse(body);
    let reply: unknown;
    if (!request.success) {
      reply = { error: 'malformed request' };
    } else {
      try {
        reply = await this.handlers?.onRequest(request.data);
      } catch (error) {
        this.options.log.error({ err: errorMessage(error) }, 'cluster request failed');
        reply = { error: 'request failed' };
      }
    }
    if (this.stopped) return;
    await this.client
      .publish(this.inbox(from), JSON.stringify({ k: 'res', id, body: reply ?? null }))
      .catch((error: unknown) =>
        this.options.log.warn({ err: errorMessage(error) }, 'cluster reply not sent'),
      );
  }

  private onEvent(message: string): void {
    const parsed = ClusterEventSchema.safeParse(safeJson(message));
    if (!parsed.success) {
      this.options.log.warn('malformed cluster event ignored');
      return;
    }
    this.handlers?.onEvent(parsed.data);
  }

  private answer(id: string, body: unknown): void {
    const waiter = this.pending.get(id);
    if (!waiter) return;
    this.pending.delete(id);
    clearTimeout(waiter.timer);
    waiter.resolve(body);
  }

  private inbox(instanceId: string): string {
    return this.key(`to:${instanceId}`);
  }

  private key(name: string): string {
    return `${this.prefix}${name}`;
  }
}

/** Publish one cluster event and disconnect (operator commands that run outside a connector). */
export async function publishClusterEvent(url: string, event: ClusterEvent, log: Logger): Promise<void> {
  const client = await connectClient(url, log, 5_000);
  try {
    await client.publish(`${DEFAULT_PREFIX}events`, JSON.stringify(event));
  } finally {
    await client.close().catch(() => client.destroy());
  }
}

async function connectClient(url: string, log: Logger, timeoutMs: number): Promise<Client> {
  let lastErrorAt = 0;
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: Math.min(timeoutMs, 5_000),
      reconnectStrategy: (retries: number) =>
        backoffDelay(retries + 1, { baseMs: 100, capMs: 2_000, jitter: 'none' }),
    },
  });
  client.on('error', (error: Error) => {
    // Reconnecting produces an error per try; one line every 10 s is enough to see the outage.
    const now = Date.now();
    if (now - lastErrorAt < 10_000) return;
    lastErrorAt = now;
    log.warn({ err: error.message, redis: redactUrl(url) }, 'redis connection problem; retrying');
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`cannot reach Redis at ${redactUrl(url)} (RELAY_REDIS_URL)`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    client.destroy();
    const message = errorMessage(error);
    throw new Error(
      message.includes('cannot reach Redis')
        ? message
        : `cannot reach Redis at ${redactUrl(url)} (RELAY_REDIS_URL): ${message}`,
    );
  } finally {
    clearTimeout(timer);
  }
  return client as Client;
}
