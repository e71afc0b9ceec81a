import { boundedCache } from '../common/cache.js';
import type { MessageEventInit } from '../protocol/index.js';
import type { PlatformInbound } from './platforms/types.js';
import type { GatewayPolicy, RelayStore, RouteRecord } from './store/types.js';

/**
 * The "relevant" part of the delivery gate (current §11.1, §11.3), applied before an event is
 * queued and so before any wake: irrelevant chatter never reaches or wakes an agent.
 *
 * - No declared policy: relevant, unless another bot wrote it. (The reference connector's default is
 *   mention-gated; ours delivers until a gateway declares otherwise, so existing web-chat and
 *   Telegram setups keep working. A gateway that wants gating declares it, as the reference
 *   gateway does at boot. Bots stay out by default: two agents in one Discord channel must not
 *   answer each other forever.)
 * - Direct messages are always addressed to the agent.
 * - Another bot's message is dropped unless `allowOtherBots`.
 * - With `requireAddress`, a group message must be addressed to the bot (`addressed`, which the
 *   platform adapter decides: a command or a reply to the bot on Telegram, every web-chat message)
 *   or come from a chat or scope listed in `freeResponseScopes`.
 */
export function isRelevant(
  policy: GatewayPolicy | null,
  event: MessageEventInit,
  addressed: boolean,
): boolean {
  const source = event.source;
  if (source.is_bot === true && !policy?.allowOtherBots) return false;
  if (!policy) return true;
  if ((source.chat_type ?? 'dm') === 'dm') return true;
  if (!policy.requireAddress) return true;
  if (addressed) return true;
  const free = new Set(policy.freeResponseScopes);
  return (
    free.has(String(source.chat_id ?? '')) ||
    (source.scope_id !== undefined && free.has(String(source.scope_id))) ||
    (source.parent_chat_id !== undefined && free.has(String(source.parent_chat_id)))
  );
}

/**
 * {@link isRelevant} for the events of a route, with the tenant's declared policies read from the
 * store at most every couple of seconds. A route that names its gateway uses that gateway
 * instance's policy when it declared one; otherwise an event is relevant when it is relevant to
 * any instance of the tenant that declared a policy for the platform.
 */
export class RelevanceGate {
  private readonly policies = boundedCache<string, GatewayPolicy[]>({ max: 10_000, ttlMs: POLICY_CACHE_MS });
  private readonly instanceKeys = boundedCache<string, string>({ max: 10_000, ttlMs: POLICY_CACHE_MS });

  constructor(private readonly store: RelayStore) {}

  async relevant(route: RouteRecord, platform: string, inbound: PlatformInbound): Promise<boolean> {
    const declared = await this.declared(route.tenantId, platform);
    if (declared.length === 0) return isRelevant(null, inbound.event, inbound.addressed === true);
    let candidates = declared;
    if (route.gatewayId) {
      const key = await this.instanceKey(route.gatewayId);
      const own = declared.filter((policy) => policy.instanceKey === key);
      if (own.length > 0) candidates = own;
    }
    return candidates.some((policy) => isRelevant(policy, inbound.event, inbound.addressed === true));
  }

  private async declared(tenantId: string, platform: string): Promise<GatewayPolicy[]> {
    const key = `${tenantId}\u0000${platform}`;
    const cached = this.policies.get(key);
    if (cached) return cached;
    const list = (await this.store.listPolicies(tenantId)).filter((policy) => policy.platform === platform);
    this.policies.set(key, list);
    return list;
  }

  private async instanceKey(gatewayId: string): Promise<string> {
    const cached = this.instanceKeys.get(gatewayId);
    if (cached) return cached;
    const gateway = await this.store.getGateway(gatewayId);
    const key = gateway?.instanceId ?? gatewayId;
    this.instanceKeys.set(gatewayId, key);
    return key;
  }
}

/** A declared policy takes effect within this long on every connector instance. */
const POLICY_CACHE_MS = 2_000;
