/**
 * OpDispatcher's chat-ownership check: a positive answer is reused for a short TTL (so an op does
 * not cost two store reads), refusals are never reused, and a chat re-bound to another tenant stops
 * being usable by the previous one once the TTL has passed. The clock is injected.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addRoute, createTenant } from '../../src/connector/admin.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import { OpDispatcher } from '../../src/connector/ops.js';
import type { PlatformAdapter } from '../../src/connector/platforms/types.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { CONTRACT_VERSION, type OutboundResult, type SendAction } from '../../src/protocol/index.js';

class RecordingAdapter implements PlatformAdapter {
  readonly name = 'test';
  readonly sent: SendAction[] = [];
  descriptor() {
    return {
      contract_version: CONTRACT_VERSION,
      platform: 'test',
      label: 'Test',
      max_message_length: 4096,
      supports_draft_streaming: false,
      supports_edit: false,
      supports_threads: false,
      markdown_dialect: 'plain',
      len_unit: 'chars' as const,
      emoji: '',
      platform_hint: '',
      pii_safe: false,
      supports_context: false,
      supports_inchannel_continuable: false,
      supports_block_formatting: false,
    };
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async send(action: SendAction): Promise<OutboundResult> {
    this.sent.push(action);
    return { success: true, message_id: String(this.sent.length) };
  }
}

describe('OpDispatcher chat ownership', () => {
  let store: SqliteStore;
  let adapter: RecordingAdapter;
  let ops: OpDispatcher;
  let now: number;
  let reads: number;
  let alpha: string;
  let beta: string;

  beforeEach(async () => {
    store = SqliteStore.open(':memory:');
    alpha = (await createTenant(store, 'alpha')).tenant.id;
    beta = (await createTenant(store, 'beta')).tenant.id;
    // alpha serves the platform's default route, so it received the chat 'x' through '*'.
    await addRoute(store, { tenantRef: alpha, platform: 'test', routeKey: '*' });
    await store.recordChat({ tenantId: alpha, platform: 'test', chatId: 'x', routeKey: 'x', updatedAt: 1 });
    reads = 0;
    const findChat = store.findChat.bind(store);
    store.findChat = async (tenantId, chatId) => {
      reads++;
      return findChat(tenantId, chatId);
    };
    adapter = new RecordingAdapter();
    now = 10_000;
    ops = new OpDispatcher(
      store,
      new Map([[adapter.name, adapter]]),
      'test',
      new ConnectorMetrics(),
      pino({ level: 'silent' }),
      { ownershipTtlMs: 1_000, clock: () => now },
    );
  });

  afterEach(async () => {
    await store.close();
  });

  const send = (tenantId: string, chatId: string) =>
    ops.execute(tenantId, 'test', { op: 'send', chat_id: chatId, content: 'hi' });

  it('reuses a positive answer within the TTL and asks the store again after it', async () => {
    expect(await send(alpha, 'x')).toMatchObject({ success: true });
    expect(await send(alpha, 'x')).toMatchObject({ success: true });
    expect(reads).toBe(1);
    now += 1_001;
    expect(await send(alpha, 'x')).toMatchObject({ success: true });
    expect(reads).toBe(2);
    expect(adapter.sent).toHaveLength(3);
  });

  it('stops the previous tenant once the TTL has passed after the chat is re-bound', async () => {
    expect(await send(alpha, 'x')).toMatchObject({ success: true });
    // An operator gives chat x its own route, owned by beta.
    await addRoute(store, { tenantRef: beta, platform: 'test', routeKey: 'x' });
    now += 500;
    expect(await send(alpha, 'x')).toMatchObject({ success: true }); // within the TTL (documented)
    now += 501;
    expect(await send(alpha, 'x')).toMatchObject({ success: false });
    expect(await send(alpha, 'x')).toMatchObject({ success: false });
  });

  it('never reuses a refusal: a chat becomes usable as soon as it is the tenant’s', async () => {
    expect(await send(beta, 'y')).toMatchObject({
      success: false,
      code: 'egress_declined',
      error: 'test egress declined: target is not an approved destination for this connection',
    });
    await addRoute(store, { tenantRef: beta, platform: 'test', routeKey: 'y' });
    expect(await send(beta, 'y')).toMatchObject({ success: true });
    // Another tenant is refused for the same chat, whatever was cached for beta.
    expect(await send(alpha, 'y')).toMatchObject({ success: false });
  });
});

describe('OpDispatcher: a long send is one op of its chat (review M1)', () => {
  it("runs every part inside the adapter's asOneOp, and a failure after a sent part says partial", async () => {
    const store = SqliteStore.open(':memory:');
    const tenantId = (await createTenant(store, 'alpha')).tenant.id;
    await addRoute(store, { tenantRef: tenantId, platform: 'test', routeKey: '*' });
    await store.recordChat({ tenantId, platform: 'test', chatId: 'x', routeKey: 'x', updatedAt: 1 });
    const adapter = new RecordingAdapter();
    const units: string[] = [];
    let insideUnit = false;
    const partsInUnit: boolean[] = [];
    Object.assign(adapter, {
      asOneOp: async <T>(chatId: string, work: () => Promise<T>): Promise<T> => {
        units.push(chatId);
        insideUnit = true;
        try {
          return await work();
        } finally {
          insideUnit = false;
        }
      },
    });
    const send = adapter.send.bind(adapter);
    adapter.send = async (action) => {
      partsInUnit.push(insideUnit);
      // The third part is refused: the first two were sent.
      if (adapter.sent.length === 2) return { success: false, error: 'rate limited', code: 'rate_limited' };
      return send(action);
    };
    const ops = new OpDispatcher(
      store,
      new Map([[adapter.name, adapter]]),
      'test',
      new ConnectorMetrics(),
      pino({ level: 'silent' }),
    );
    const result = await ops.execute(tenantId, 'test', {
      op: 'send',
      chat_id: 'x',
      content: 'y'.repeat(4096 * 3),
    });
    expect(units).toEqual(['x']);
    expect(partsInUnit).toEqual([true, true, true]);
    expect(result).toEqual({
      success: false,
      error: 'rate limited',
      code: 'rate_limited',
      message_id: '1',
      partial: true,
    });
    // A text that fits is one call, not wrapped.
    await ops.execute(tenantId, 'test', { op: 'send', chat_id: 'x', content: 'short' });
    expect(units).toEqual(['x']);
    await store.close();
  });
});
