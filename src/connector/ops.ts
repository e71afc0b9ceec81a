import type { Logger } from 'pino';
import { type BoundedCache, boundedCache } from '../common/cache.js';
import { errorMessage } from '../common/errors.js';
import {
  type CapabilityDescriptor,
  type CommandManifest,
  EncodedLine,
  egressDeclined,
  encodeFrame,
  type FollowUpAction,
  failedResult,
  MAX_OUTBOUND_CONTENT_BYTES,
  mediaIdFromUrl,
  type OutboundAction,
  type OutboundResult,
  parseOutboundAction,
  splitMessage,
} from '../protocol/index.js';
import type { MediaStore } from './media.js';
import type { ConnectorMetrics } from './metrics.js';
import { NO_FOLLOW_UP, OP_METHODS, runAction } from './platforms/run-action.js';
import type { PlatformAdapter } from './platforms/types.js';
import type { RelayStore } from './store/types.js';

/**
 * How long an answer "this chat is the tenant's, on this platform" is reused before the store is
 * asked again. So after an operator re-binds a chat's route to another tenant, the previous tenant
 * may still act on that chat for up to this long. Refusals are never cached: a chat that becomes
 * the tenant's (its first message was just delivered) is usable at once.
 */
const CHAT_OWNERSHIP_TTL_MS = 1_000;
/** Bound on remembered answers; the oldest are forgotten first. */
const CHAT_OWNERSHIP_CACHE_MAX = 50_000;

/**
 * Runs gateways' outbound ops on the platforms. A gateway may only act on chats of its own tenant:
 * chats the connector delivered to that tenant (while their route is still the tenant's), or chats
 * whose id is a route key bound to it and that were never delivered to another tenant. Every call
 * resolves to a result; nothing throws back to the socket.
 */
export class OpDispatcher {
  /** `tenant \0 chat \0 platform hint` → the chat's platform, for a while (`options.clock`). */
  private readonly ownership: BoundedCache<string, string>;
  /** Encoded `descriptor` frames by served platform (`descriptorFrame`). */
  private readonly descriptorLines = new Map<string, EncodedLine>();

  constructor(
    private readonly store: RelayStore,
    private readonly adapters: ReadonlyMap<string, PlatformAdapter>,
    private readonly defaultPlatform: string,
    private readonly metrics: ConnectorMetrics,
    private readonly log: Logger,
    private readonly options: {
      ownershipTtlMs?: number;
      clock?: () => number;
      /** The media plane, for `send_media` sources that are re-hosts. */
      media?: MediaStore;
    } = {},
  ) {
    this.ownership = boundedCache({
      max: CHAT_OWNERSHIP_CACHE_MAX,
      ttlMs: options.ownershipTtlMs ?? CHAT_OWNERSHIP_TTL_MS,
      now: options.clock,
    });
  }

  /**
   * The `descriptor` frame for a platform, encoded once: every handshake sends it (current §4.3), and
   * the adapters are fixed for the connector's life and their descriptors constant.
   */
  descriptorFrame(platform: string): EncodedLine {
    let line = this.descriptorLines.get(platform);
    if (!line) {
      line = new EncodedLine(encodeFrame({ type: 'descriptor', descriptor: this.descriptorFor(platform) }));
      this.descriptorLines.set(platform, line);
    }
    return line;
  }

  /** The full descriptor for a platform, with `supported_ops` derived from what the adapter can do. */
  descriptorFor(platform: string): CapabilityDescriptor {
    const adapter = this.adapter(platform);
    const ops = Object.entries(OP_METHODS)
      .filter(([, method]) => adapter[method] !== undefined)
      .map(([op]) => op);
    // In the reference's order: the legacy four first.
    if (adapter.followUp) ops.splice(ops.indexOf('typing') + 1, 0, 'follow_up');
    return { ...adapter.descriptor(), supported_ops: ops };
  }

  /**
   * A gateway's `hello` declared slash commands for a platform (current §4.1): the adapter registers
   * them for the tenant's routes there. Fire and forget: a failure is logged, the handshake goes on.
   */
  declareCommands(tenantId: string, platform: string, manifest: CommandManifest): void {
    const adapter = this.adapters.get(platform);
    if (!adapter?.registerCommands) return;
    const register = adapter.registerCommands.bind(adapter);
    void (async () => {
      const routeKeys = (await this.store.listRoutes(tenantId))
        .filter((route) => route.platform === platform)
        .map((route) => route.routeKey);
      await register({ tenantId, routeKeys, manifest });
    })().catch((error: unknown) =>
      this.log.warn({ platform, err: errorMessage(error) }, 'slash commands not registered'),
    );
  }

  /** The platform a gateway fronts: what it said in hello if served here, else its tenant's routes. */
  async platformForHello(tenantId: string, helloPlatform: string): Promise<string> {
    if (this.adapters.has(helloPlatform)) return helloPlatform;
    const routes = await this.store.listRoutes(tenantId);
    const served = routes.find((route) => this.adapters.has(route.platform));
    return served?.platform ?? this.adapter(this.defaultPlatform).name;
  }

  async execute(
    tenantId: string,
    gatewayPlatform: string | undefined,
    rawAction: unknown,
  ): Promise<OutboundResult> {
    const parsed = parseOutboundAction(rawAction);
    if (!parsed.ok) return failedResult(parsed.error);
    const action = parsed.action;
    const started = performance.now();
    let result: OutboundResult;
    try {
      result = await this.run(tenantId, gatewayPlatform, action);
    } catch (error) {
      this.log.warn({ op: action.op, err: errorMessage(error) }, 'platform op failed');
      result = failedResult(`platform error: ${errorMessage(error)}`);
    }
    this.metrics.opLatency.observe(
      { op: action.op, success: String(result.success !== false) },
      (performance.now() - started) / 1000,
    );
    return result;
  }

  private async run(
    tenantId: string,
    gatewayPlatform: string | undefined,
    action: OutboundAction,
  ): Promise<OutboundResult> {
    if (action.op === 'follow_up') return this.followUp(tenantId, action);
    const hint = action.platform ?? gatewayPlatform;
    const platform = await this.chatPlatform(tenantId, action.chat_id, hint);
    if (!platform) return egressDeclined(hint ?? this.defaultPlatform);
    const adapter = this.adapters.get(platform);
    if (!adapter) return failedResult(`platform ${platform} is not served by this connector`);

    // Content is fitted to the platform here; `runAction` calls the adapter.
    switch (action.op) {
      case 'send': {
        if (Buffer.byteLength(action.content, 'utf8') > MAX_OUTBOUND_CONTENT_BYTES) {
          return failedResult(`content exceeds ${MAX_OUTBOUND_CONTENT_BYTES} bytes`);
        }
        return inParts(
          adapter,
          action.content,
          (content) => runAction(adapter, { ...action, content }),
          action.chat_id,
        );
      }
      case 'edit': {
        const { max_message_length: limit, len_unit: unit } = adapter.descriptor();
        // An edit cannot become several messages: keep what fits.
        const content = splitMessage(action.content, limit, unit)[0] ?? '';
        return runAction(adapter, { ...action, content });
      }
      case 'send_media': {
        const problem = this.mediaSourceProblem(tenantId, action.source_url);
        return problem ? failedResult(problem) : runAction(adapter, action);
      }
      default:
        return runAction(adapter, action);
    }
  }

  /**
   * `follow_up` through the adapter named by the kind's prefix (`discord.interaction_token` →
   * discord), which holds the capability; content is fitted like a send's, one follow-up per part.
   */
  private async followUp(tenantId: string, action: FollowUpAction): Promise<OutboundResult> {
    const adapter = this.adapters.get(action.kind.split('.', 1)[0] ?? '');
    if (!adapter?.followUp) return failedResult(NO_FOLLOW_UP);
    if (Buffer.byteLength(action.content, 'utf8') > MAX_OUTBOUND_CONTENT_BYTES)
      return failedResult(`content exceeds ${MAX_OUTBOUND_CONTENT_BYTES} bytes`);
    const followUp = adapter.followUp.bind(adapter);
    return inParts(adapter, action.content, (content) => followUp(tenantId, { ...action, content }));
  }

  /**
   * A `send_media` source is a re-host of this tenant (`…/relay/media/{id}`, still there) or a
   * public `https` URL the platform fetches itself; a local path, another scheme or another
   * tenant's id is refused (current §7.2). Undefined when the source is fine.
   */
  private mediaSourceProblem(tenantId: string, sourceUrl: string): string | undefined {
    const id = mediaIdFromUrl(sourceUrl);
    if (id) {
      if (this.options.media?.open(tenantId, id)) return undefined;
      return 'no such media (expired, or never uploaded by this tenant)';
    }
    if (!/^https:\/\/[^/\s]/i.test(sourceUrl) || !URL.canParse(sourceUrl))
      return 'source_url must be a /relay/media re-host URL or an https URL';
    return undefined;
  }

  /** {@link lookUpChatPlatform}, with its positive answers reused for {@link CHAT_OWNERSHIP_TTL_MS}. */
  private async chatPlatform(
    tenantId: string,
    chatId: string,
    hint: string | undefined,
  ): Promise<string | null> {
    const key = `${tenantId}\u0000${chatId}\u0000${hint ?? ''}`;
    const cached = this.ownership.get(key);
    if (cached !== undefined) return cached;
    const platform = await this.lookUpChatPlatform(tenantId, chatId, hint);
    if (platform !== null && (this.options.ownershipTtlMs ?? CHAT_OWNERSHIP_TTL_MS) > 0)
      this.ownership.set(key, platform);
    return platform;
  }

  private async lookUpChatPlatform(
    tenantId: string,
    chatId: string,
    hint: string | undefined,
  ): Promise<string | null> {
    const chat = await this.store.findChat(tenantId, chatId);
    if (chat) {
      // Still this tenant's only while its route is: an operator may have re-bound it elsewhere.
      const route = await this.store.findRoute(chat.platform, chat.routeKey);
      if (route && route.tenantId === tenantId) return chat.platform;
      return null;
    }
    // A chat the tenant was never delivered: writable only through a route bound to exactly that
    // chat id, and never once the chat was delivered to another tenant, whatever routes anyone
    // declared since.
    for (const platform of hint && this.adapters.has(hint) ? [hint] : [...this.adapters.keys()]) {
      const route = await this.store.findRoute(platform, chatId);
      if (!route || route.routeKey !== chatId || route.tenantId !== tenantId) continue;
      const deliveredTo = await this.store.chatTenants(platform, chatId);
      if (deliveredTo.every((other) => other === tenantId)) return platform;
    }
    return null;
  }

  private adapter(platform: string): PlatformAdapter {
    const adapter =
      this.adapters.get(platform) ??
      this.adapters.get(this.defaultPlatform) ??
      this.adapters.values().next().value;
    if (!adapter) throw new Error('no platform adapters configured');
    return adapter;
  }
}

/**
 * Text over the platform's limit as several messages, one call per part, in order, as one op of
 * the chat (`asOneOp`): the result is the first part's (its `message_id`), or the first failure,
 * which stops the rest. A failure after a part was sent says so (`partial`, the first part's
 * `message_id`): it is not the clean "nothing was sent" its code may otherwise mean.
 */
async function inParts(
  adapter: PlatformAdapter,
  text: string,
  sendPart: (content: string) => Promise<OutboundResult>,
  chatId?: string,
): Promise<OutboundResult> {
  const { max_message_length: limit, len_unit: unit } = adapter.descriptor();
  const parts = splitMessage(text, limit, unit);
  const sendAll = async (): Promise<OutboundResult> => {
    let first: OutboundResult | undefined;
    for (const part of parts) {
      const result = await sendPart(part);
      if (result.success === false)
        return first ? { ...result, message_id: first.message_id, partial: true } : result;
      first ??= result;
    }
    return first ?? failedResult('nothing to send');
  };
  return parts.length > 1 && chatId !== undefined && adapter.asOneOp
    ? adapter.asOneOp(chatId, sendAll)
    : sendAll();
}
