import { describe, expect, it } from 'vitest';
import { isRelevant, RelevanceGate } from '../../src/connector/relevance.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import type { GatewayPolicy, RouteRecord } from '../../src/connector/store/types.js';
import type { MessageEventInit } from '../../src/protocol/index.js';

const policy = (over: Partial<GatewayPolicy> = {}): GatewayPolicy => ({
  tenantId: 't',
  platform: 'telegram',
  instanceKey: 'inst',
  requireAddress: true,
  freeResponseScopes: ['c-help'],
  allowOtherBots: false,
  updatedAt: 0,
  ...over,
});
const group = (chat: string, extra: Partial<MessageEventInit['source']> = {}): MessageEventInit => ({
  text: 'chatter',
  source: { platform: 'telegram', chat_id: chat, chat_type: 'group', ...extra },
});

describe('isRelevant (current §11.1)', () => {
  it('lets everything through when no policy is declared, except other bots', () => {
    expect(isRelevant(null, group('c1'), false)).toBe(true);
    expect(isRelevant(null, group('c1', { is_bot: false }), false)).toBe(true);
    expect(isRelevant(null, group('c1', { is_bot: true }), false)).toBe(false);
    expect(isRelevant(null, group('c1', { is_bot: true }), true)).toBe(false);
  });

  it('gates group chatter on being addressed, except in free-response scopes; DMs always pass', () => {
    expect(isRelevant(policy(), group('c1'), false)).toBe(false);
    expect(isRelevant(policy(), group('c1'), true)).toBe(true);
    expect(isRelevant(policy(), group('c-help'), false)).toBe(true);
    expect(isRelevant(policy(), group('c9', { scope_id: 'c-help' }), false)).toBe(true);
    expect(
      isRelevant(
        policy(),
        { text: 'hi', source: { platform: 'telegram', chat_id: 'u1', chat_type: 'dm' } },
        false,
      ),
    ).toBe(true);
    expect(isRelevant(policy({ requireAddress: false }), group('c1'), false)).toBe(true);
  });

  it('drops other bots unless allowed, even when addressed', () => {
    expect(isRelevant(policy(), group('c1', { is_bot: true }), true)).toBe(false);
    expect(isRelevant(policy({ allowOtherBots: true }), group('c1', { is_bot: true }), true)).toBe(true);
  });
});

describe('RelevanceGate', () => {
  it("applies the route's own gateway instance's policy, else any declaring instance's", async () => {
    const store = SqliteStore.open(':memory:');
    try {
      const tenant = await store.createTenant('acme', 0);
      await store.putGatewaySecret({
        id: 'gw-a',
        tenantId: tenant.id,
        secret: 's',
        platform: 'telegram',
        botId: '',
        endpoint: '',
        now: 0,
        rotationWindowMs: 0,
      });
      await store.updateGatewayDetails('gw-a', { instanceId: 'inst-a' });
      await store.putPolicy(policy({ tenantId: tenant.id, instanceKey: 'inst-a' }));
      await store.putPolicy(policy({ tenantId: tenant.id, instanceKey: 'inst-b', requireAddress: false }));
      const gate = new RelevanceGate(store);
      const route = (gatewayId: string | null): RouteRecord => ({
        platform: 'telegram',
        routeKey: 'c1',
        tenantId: tenant.id,
        endpoint: '',
        gatewayId,
        createdAt: 0,
      });
      const chatter = { routeKey: 'c1', event: group('c1') };
      expect(await gate.relevant(route('gw-a'), 'telegram', chatter)).toBe(false);
      expect(await gate.relevant(route(null), 'telegram', chatter)).toBe(true);
      expect(await gate.relevant(route('gw-a'), 'telegram', { ...chatter, addressed: true })).toBe(true);
      expect(await gate.relevant(route('gw-a'), 'webchat', chatter)).toBe(true);
    } finally {
      await store.close();
    }
  });
});
