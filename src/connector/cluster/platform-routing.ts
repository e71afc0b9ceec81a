import type { Logger } from 'pino';
import { errorMessage } from '../../common/errors.js';
import {
  failedResult,
  type OutboundResult,
  OutboundResultSchema,
  parseOutboundAction,
} from '../../protocol/index.js';
import type { ConnectorMetrics } from '../metrics.js';
import { type AdapterAction, OP_METHODS, type OpMethod, runAction } from '../platforms/run-action.js';
import type { PlatformAdapter, PlatformContext } from '../platforms/types.js';
import type { ClusterBus } from './bus.js';

/**
 * Platform connections in a cluster. Two kinds need care:
 * - adapters whose chats live on one instance (a web-chat visitor's socket): an op for a chat
 *   another instance holds is run there;
 * - adapters that must run on one instance at a time (a Telegram bot's long poll): they start
 *   only while this instance holds their lease, and stop when it is lost.
 * Everything else is passed straight through.
 */

const PLATFORM_OP_TIMEOUT_MS = 10_000;
const LEASE_TTL_MS = 6_000;
const LEASE_CHECK_MS = 1_000;

export interface ClusterAdapterOptions {
  bus: ClusterBus;
  log: Logger;
  metrics: ConnectorMetrics;
  leaseTtlMs?: number;
  leaseCheckMs?: number;
}

/**
 * What the cluster adapter does with each adapter member besides the op methods (`OP_METHODS`,
 * all routed to the instance holding the chat). Exhaustive: a member added to `PlatformAdapter`
 * does not compile until it is listed here.
 * - `forward`: the inner adapter's own, bound to it; absent when the inner adapter lacks it;
 * - `cluster`: the cluster adapter's version (start/stop under the lease, with shared chats);
 * - `consumed`: honoured by the cluster adapter and not exposed (it runs the lease itself, so
 *   nothing above it may run the adapter exclusively a second time).
 */
export const CLUSTER_MEMBERS = {
  name: 'forward',
  descriptor: 'forward',
  holdsChat: 'forward',
  registerRoutes: 'forward',
  handleUpgrade: 'forward',
  // Served by any instance: a webhook, a follow-up or a command registration needs no lease.
  attach: 'forward',
  followUp: 'forward',
  registerCommands: 'forward',
  // The parts of one op run where the op runs (Telegram's gates are per instance).
  asOneOp: 'forward',
  start: 'cluster',
  stop: 'cluster',
  exclusiveLease: 'consumed',
} as const satisfies Record<Exclude<keyof PlatformAdapter, OpMethod>, 'forward' | 'cluster' | 'consumed'>;

export function clusterAdapter(inner: PlatformAdapter, options: ClusterAdapterOptions): PlatformAdapter {
  const { bus, log } = options;
  const leaseName = inner.exclusiveLease?.();
  const exclusive = leaseName ? new ExclusiveRunner(inner, leaseName, options) : undefined;

  const routed = async (
    action: AdapterAction,
    local: () => Promise<OutboundResult>,
  ): Promise<OutboundResult> => {
    if (!inner.holdsChat || inner.holdsChat(action.chat_id)) return local();
    let owner: string | null;
    try {
      owner = await bus.chatOwner(inner.name, action.chat_id);
    } catch (error) {
      // Running it here would report success for a message no visitor sees.
      log.warn({ err: errorMessage(error), platform: inner.name }, 'chat owner lookup failed');
      return failedResult('the cluster bus is unreachable; cannot find the instance holding this chat');
    }
    if (!owner || owner === bus.instanceId) return local();
    const reply = await bus.request(
      owner,
      { type: 'platform_op', platform: inner.name, action },
      PLATFORM_OP_TIMEOUT_MS,
    );
    const result = OutboundResultSchema.safeParse(reply);
    options.metrics.busRequests.inc({
      type: 'platform_op',
      outcome: result.success ? 'answered' : 'no_answer',
    });
    if (result.success) return result.data;
    log.warn({ platform: inner.name, owner, op: action.op }, 'instance holding the chat did not answer');
    return failedResult(`connector instance ${owner} holding this chat did not answer`, { ambiguous: true });
  };

  const own: Pick<PlatformAdapter, 'start' | 'stop'> = {
    start: (context) => {
      const shared = shareChats(context, inner.name, bus, log);
      return exclusive ? exclusive.start(shared) : inner.start(shared);
    },
    stop: () => (exclusive ? exclusive.stop() : inner.stop()),
  };
  // Built member by member from the two tables, so no member of the interface is left out; an
  // optional member is present exactly when the inner adapter has it (the descriptor's
  // `supported_ops` is derived from which op methods are present).
  const adapter: Record<string, unknown> = {};
  for (const method of Object.values(OP_METHODS)) {
    if (inner[method] !== undefined)
      adapter[method] = (action: AdapterAction) => routed(action, () => runAction(inner, action));
  }
  for (const [member, treatment] of Object.entries(CLUSTER_MEMBERS)) {
    const key = member as keyof typeof CLUSTER_MEMBERS;
    if (treatment === 'cluster') adapter[key] = own[key as keyof typeof own];
    if (treatment !== 'forward') continue;
    const value: unknown = inner[key];
    if (value !== undefined) adapter[key] = typeof value === 'function' ? value.bind(inner) : value;
  }
  return adapter as unknown as PlatformAdapter;
}

/** Run an op another instance forwarded, on this instance's own (unwrapped) adapter. */
export async function runForwardedOp(
  adapters: ReadonlyMap<string, PlatformAdapter>,
  platform: string,
  rawAction: unknown,
): Promise<OutboundResult> {
  const adapter = adapters.get(platform);
  if (!adapter) return failedResult(`platform ${platform} is not served by this connector instance`);
  const parsed = parseOutboundAction(rawAction);
  if (!parsed.ok) return failedResult(parsed.error);
  return runAction(adapter, parsed.action);
}

/** Tell the cluster which chats this instance holds, so ops for them are sent here. */
function shareChats(
  context: PlatformContext,
  platform: string,
  bus: ClusterBus,
  log: Logger,
): PlatformContext {
  return {
    ...context,
    chatHeld: (chatId, held) => {
      const change = held ? bus.claimChat(platform, chatId) : bus.releaseChat(platform, chatId);
      change.catch((error: unknown) =>
        log.warn(
          { err: errorMessage(error), platform, chatId },
          'chat ownership not shared with the cluster',
        ),
      );
    },
  };
}

/** Starts the adapter while this instance holds its lease; stops it as soon as the lease is lost. */
class ExclusiveRunner {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  /** Start/stop calls run one after another, never overlapping. */
  private chain: Promise<void> = Promise.resolve();
  private readonly ttlMs: number;
  private readonly checkMs: number;

  constructor(
    private readonly inner: PlatformAdapter,
    private readonly lease: string,
    private readonly options: ClusterAdapterOptions,
  ) {
    this.ttlMs = options.leaseTtlMs ?? LEASE_TTL_MS;
    this.checkMs = options.leaseCheckMs ?? LEASE_CHECK_MS;
  }

  async start(context: PlatformContext): Promise<void> {
    this.stopped = false;
    this.options.metrics.leaseHeld.set({ platform: this.inner.name }, 0);
    await this.check(context);
    const loop = () => {
      this.timer = setTimeout(() => {
        void this.check(context).finally(() => {
          if (!this.stopped) loop();
        });
      }, this.checkMs);
      this.timer.unref();
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.running) this.transition(false, undefined);
    await this.chain;
    await this.options.bus.releaseLease(this.lease).catch(() => undefined);
  }

  private async check(context: PlatformContext): Promise<void> {
    if (this.stopped) return;
    const held = await this.options.bus.holdLease(this.lease, this.ttlMs).catch((error: unknown) => {
      this.options.log.warn({ err: errorMessage(error), lease: this.lease }, 'platform lease check failed');
      return false;
    });
    if (this.stopped) return;
    if (held !== this.running) this.transition(held, context);
    await this.chain;
  }

  private transition(run: boolean, context: PlatformContext | undefined): void {
    const { inner, options } = this;
    this.running = run;
    options.metrics.leaseHeld.set({ platform: inner.name }, run ? 1 : 0);
    options.log.info(
      { platform: inner.name, lease: this.lease },
      run
        ? 'platform lease taken: this instance runs it now'
        : 'platform lease released: another instance runs it',
    );
    this.chain = this.chain
      .then(() => (run && context ? inner.start(context) : inner.stop()))
      .catch((error: unknown) =>
        options.log.error({ err: errorMessage(error), platform: inner.name }, 'platform start/stop failed'),
      );
  }
}
