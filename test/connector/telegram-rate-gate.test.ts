import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChatRateGates, ChatRateLimited } from '../../src/connector/platforms/telegram.js';
import type { OutboundResult } from '../../src/protocol/index.js';
import { FakeTelegram } from '../support/fake-telegram.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';
import { TestRelayClient } from '../support/test-gateway.js';

/**
 * Telegram's flood control per chat (issue #18): a 429 with `retry_after` for one chat holds that
 * chat's ops only, in order; other chats and the long poll go on; an op that cannot be sent within
 * the op timeout is answered `rate_limited` at once.
 */

// ---------------------------------------------------------------------------------------------
// The gate itself, on a fake clock

/** A stand-in for Telegram's 429: the gate reads its seconds through `retryAfterOf`. */
class TooMany extends Error {
  constructor(readonly retryAfter: number) {
    super(`429 retry after ${retryAfter}`);
  }
}

describe('ChatRateGates (fake clock)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const gates = (options: { maxRetryAfterMs?: number; waitBudgetMs?: number } = {}) =>
    new ChatRateGates({
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      waitBudgetMs: options.waitBudgetMs ?? 25_000,
      retryAfterOf: (err) => (err instanceof TooMany ? err.retryAfter : undefined),
      now: () => Date.now(),
    });

  /** An op that records each attempt and is refused while `refusals` lasts for its chat. */
  function platform() {
    const attempts: string[] = [];
    const refusals = new Map<string, number[]>();
    let sending = 0;
    let mostAtOnce = 0;
    const op = (chat: string, label: string) => async () => {
      attempts.push(label);
      const refusal = refusals.get(chat)?.shift();
      if (refusal !== undefined) throw new TooMany(refusal);
      sending += 1;
      mostAtOnce = Math.max(mostAtOnce, sending);
      await Promise.resolve();
      sending -= 1;
      return label;
    };
    return { attempts, refusals, op, mostAtOnce: () => mostAtOnce };
  }

  it("holds only the limited chat's ops, retries after retry_after and sends the queue in order, then forgets the chat", async () => {
    const gate = gates();
    const telegram = platform();
    telegram.refusals.set('A', [3]);
    const settled: string[] = [];
    const track = (promise: Promise<string>) => promise.then((label) => settled.push(label));
    const a1 = track(gate.run('A', telegram.op('A', 'a1')));
    await vi.advanceTimersByTimeAsync(0);
    const queued = ['a2', 'a3', 'a4'].map((label) => track(gate.run('A', telegram.op('A', label))));
    await track(gate.run('B', telegram.op('B', 'b1')));
    expect(gate.isClosed('A')).toBe(true);
    expect(gate.isClosed('B')).toBe(false);
    await vi.advanceTimersByTimeAsync(2_999);
    // Nothing of A was attempted again before its retry_after; B was not held at all.
    expect(telegram.attempts).toEqual(['a1', 'b1']);
    expect(settled).toEqual(['b1']);
    await vi.advanceTimersByTimeAsync(1);
    await Promise.all([a1, ...queued]);
    expect(telegram.attempts).toEqual(['a1', 'b1', 'a1', 'a2', 'a3', 'a4']);
    expect(settled).toEqual(['b1', 'a1', 'a2', 'a3', 'a4']);
    expect(telegram.mostAtOnce()).toBe(1);
    expect(gate.size).toBe(0);
  });

  it('keeps the parts of one held op together: another op of the chat never lands between them (review M1)', async () => {
    const gate = gates();
    const telegram = platform();
    telegram.refusals.set('A', [3]);
    const settled: string[] = [];
    const long = gate.hold('A', async () => {
      settled.push(await gate.run('A', telegram.op('A', 'A.part1')));
      settled.push(await gate.run('A', telegram.op('A', 'A.part2')));
    });
    await vi.advanceTimersByTimeAsync(50);
    const other = gate.run('A', telegram.op('A', 'B')).then((label) => settled.push(label));
    await vi.advanceTimersByTimeAsync(3_000);
    await Promise.all([long, other]);
    expect(settled).toEqual(['A.part1', 'A.part2', 'B']);
    expect(gate.size).toBe(0);
  });

  it("spends one wait budget on all parts of a held op: a later part is refused, never sent past the op's budget (review M1)", async () => {
    const gate = gates({ waitBudgetMs: 2_000, maxRetryAfterMs: 1_500 });
    const telegram = platform();
    telegram.refusals.set('A', [1]);
    const sent: [string, number][] = [];
    const start = Date.now();
    const op = (label: string) => async () => {
      const result = await telegram.op('A', label)();
      sent.push([result, Date.now() - start]);
      return result;
    };
    const long = gate.hold('A', async () => {
      await gate.run('A', op('part1'));
      telegram.refusals.set('A', [1.5]);
      await gate.run('A', op('part2'));
    });
    const outcome = long.then(
      () => 'sent',
      (err: unknown) => err,
    );
    await vi.advanceTimersByTimeAsync(5_000);
    // part1 waited 1 s and was sent; part2's 429 needs 1.5 s more with 1 s left of the op's 2 s:
    // refused (with a fresh budget per part it would have been sent at 2.5 s).
    expect(sent).toEqual([['part1', 1_000]]);
    expect(await outcome).toBeInstanceOf(ChatRateLimited);
    expect(telegram.attempts).toEqual(['part1', 'part1', 'part2']);
  });

  it('waits a retry_after above the cap only up to the cap, then asks again', async () => {
    const gate = gates({ maxRetryAfterMs: 2_000 });
    const telegram = platform();
    telegram.refusals.set('A', [3_600]);
    const sent = gate.run('A', telegram.op('A', 'a1'));
    await vi.advanceTimersByTimeAsync(1_999);
    expect(telegram.attempts).toEqual(['a1']);
    await vi.advanceTimersByTimeAsync(1);
    await expect(sent).resolves.toBe('a1');
    expect(telegram.attempts).toEqual(['a1', 'a1']);
  });

  it('refuses at once, with the wait, an op whose retry_after exceeds its budget, and the ops behind it', async () => {
    const gate = gates({ waitBudgetMs: 25_000 });
    const telegram = platform();
    telegram.refusals.set('A', [40]);
    const first = gate.run('A', telegram.op('A', 'a1'));
    await expect(first).rejects.toBeInstanceOf(ChatRateLimited);
    await expect(first).rejects.toMatchObject({
      retryAfterSeconds: 40,
      message: 'rate limited by Telegram: retry after 40 s',
    });
    await vi.advanceTimersByTimeAsync(10_000);
    // The gate is still closed for 30 s: a later op is refused without asking Telegram.
    await expect(gate.run('A', telegram.op('A', 'a2'))).rejects.toMatchObject({ retryAfterSeconds: 30 });
    expect(telegram.attempts).toEqual(['a1']);
    await vi.advanceTimersByTimeAsync(30_000);
    await expect(gate.run('A', telegram.op('A', 'a3'))).resolves.toBe('a3');
    expect(gate.size).toBe(0);
  });

  it('answers an op queued behind a slow send when its budget runs out, and never sends it', async () => {
    const gate = gates({ waitBudgetMs: 25_000 });
    const telegram = platform();
    // a1 is refused once for 3 s, then its call hangs for 40 s: a2, queued behind it, cannot go.
    let a1Calls = 0;
    const a1 = gate.run('A', async () => {
      a1Calls += 1;
      if (a1Calls === 1) throw new TooMany(3);
      await new Promise((resolve) => setTimeout(resolve, 40_000));
      return 'a1';
    });
    await vi.advanceTimersByTimeAsync(0);
    const a2Outcome = gate.run('A', telegram.op('A', 'a2')).then(
      () => 'sent',
      (err: unknown) => err,
    );
    await vi.advanceTimersByTimeAsync(24_999);
    expect(telegram.attempts).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(await a2Outcome).toMatchObject({ name: 'ChatRateLimited', retryAfterSeconds: 1 });
    await vi.advanceTimersByTimeAsync(20_000);
    await expect(a1).resolves.toBe('a1');
    expect(telegram.attempts).toEqual([]);
    expect(gate.size).toBe(0);
  });

  it('tells the ops queued behind an op what its new 429 means for them', async () => {
    const gate = gates({ waitBudgetMs: 25_000 });
    const telegram = platform();
    // a1 is refused for 10 s, then for 10 s, then for 10 s: a2 cannot go within its 25 s.
    telegram.refusals.set('A', [10, 10, 10]);
    const a1 = gate.run('A', telegram.op('A', 'a1'));
    const a1Outcome = a1.catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(0);
    const a2Outcome = gate.run('A', telegram.op('A', 'a2')).catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(20_000);
    // The third refusal (at 20 s) closes the gate until 30 s: beyond both budgets.
    expect(await a2Outcome).toMatchObject({ name: 'ChatRateLimited', retryAfterSeconds: 10 });
    expect(await a1Outcome).toMatchObject({ name: 'ChatRateLimited', retryAfterSeconds: 10 });
    expect(telegram.attempts).toEqual(['a1', 'a1', 'a1']);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(gate.size).toBe(0);
  });

  it('does not retry an error that is not a 429', async () => {
    const gate = gates();
    let attempts = 0;
    await expect(
      gate.run('A', async () => {
        attempts += 1;
        throw new Error('network error after sending');
      }),
    ).rejects.toThrow('network error after sending');
    expect(attempts).toBe(1);
    expect(gate.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Through a real connector process, the fake Bot API and a gateway on the socket

const dir = tempDir('telegram-rate-gate');
const db = join(dir.path, 'connector.db');
const chat = (id: number, title: string) => ({ id, type: 'supergroup' as const, title });
const A = chat(-100901, 'Flooded');
const B = chat(-100902, 'Busy');
const C = chat(-100903, 'Long wait');
const D = chat(-100904, 'Absurd wait');
const FROM = { id: 4242, is_bot: false, first_name: 'Ada' };
/** The cap the connector runs with: above the 25 s wait budget, far below Telegram's worst. */
const CAP_SECONDS = 30;

let telegram: FakeTelegram;
let connector: RunningProcess & { url: string };
let gateway: TestRelayClient;
let counter = 0;

/** An op on the gateway's socket, awaited however long the connector takes (up to its 30 s). */
function op(action: Record<string, unknown>): Promise<OutboundResult> {
  const requestId = `rg${++counter}`;
  gateway.send({ type: 'outbound', requestId, action });
  return until(
    () => {
      const frame = gateway.frames.find(
        (f) => f.type === 'outbound_result' && (f as { requestId: string }).requestId === requestId,
      );
      return frame ? (frame as { result: OutboundResult }).result : undefined;
    },
    40_000,
    `result of ${requestId}`,
  );
}

const send = (to: { id: number }, content: string) =>
  op({ op: 'send', chat_id: String(to.id), content, reply_to: null, metadata: {} });

describe('Telegram per-chat rate gate through the connector', () => {
  beforeAll(async () => {
    telegram = await FakeTelegram.start();
    for (const known of [A, B, C, D]) telegram.addChat(known);
    const { accessToken } = await hermesJson<{ accessToken: string }>([
      'connector',
      'tenant',
      'create',
      'tg',
      '--db',
      db,
    ]);
    connector = await startConnectorProcess(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.apiRoot,
      TELEGRAM_MAX_RETRY_AFTER_SECONDS: String(CAP_SECONDS),
    });
    const response = await fetch(`${connector.url}/relay/provision`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ gatewayId: 'gw-gate', platform: 'telegram' }),
    });
    expect(response.status).toBe(200);
    const { secret } = (await response.json()) as { secret: string };
    for (const routed of [A, B, C, D]) {
      const route = await hermes([
        'connector',
        'route',
        'add',
        '--tenant',
        'tg',
        '--platform',
        'telegram',
        '--key',
        String(routed.id),
        '--gateway',
        'gw-gate',
        '--db',
        db,
      ]);
      expect(route.code, route.stderr).toBe(0);
    }
    gateway = new TestRelayClient(`${connector.url.replace('http', 'ws')}/relay`, 'gw-gate', secret);
    await gateway.connect();
    await gateway.hello('telegram');
  }, 60_000);

  afterAll(async () => {
    gateway?.close();
    await connector?.stop();
    await telegram?.close();
    dir.remove();
  });

  it("holds the flooded chat's ops while another chat's ops and inbound messages go on, then sends them in order", async () => {
    // Flood control for A until it is lifted below: every call for A is answered 429, retry after 1 s.
    telegram.rateLimitChat(A.id, { retryAfter: 1 });
    const events: string[] = [];
    const track = (name: string, result: Promise<OutboundResult>) =>
      result.then((value) => {
        events.push(name);
        return value;
      });
    const texts = ['a1', 'a2', 'a3', 'a4', 'a5'];
    const first = track('A', send(A, 'a1'));
    await telegram.waitUntil(() => telegram.rateLimitedCalls(A.id).length >= 1);
    // a2…a5 reach a chat whose gate is closed: they queue behind a1.
    const queued = texts.slice(1).map((text) => track('A', send(A, text)));

    const others = await Promise.all(['b1', 'b2', 'b3', 'b4', 'b5'].map((text) => track('B', send(B, text))));
    expect(others.map((r) => r.success)).toEqual([true, true, true, true, true]);
    // Inbound from both chats, the flooded one included, is polled and delivered meanwhile.
    const inboundBefore = gateway.frames.filter((f) => f.type === 'inbound').length;
    for (const [from, text] of [
      [A, 'from a'],
      [B, 'from b'],
      [A, 'again from a'],
    ] as const)
      telegram.pushUpdate({ message: { chat: from, from: FROM, text } });
    await until(
      () => gateway.frames.filter((f) => f.type === 'inbound').length >= inboundBefore + 3 || undefined,
      15_000,
      'three inbound messages',
    );
    events.push('inbound');

    // All of that happened while A was still held: Telegram has refused every call for A so far.
    expect(events).not.toContain('A');
    expect(telegram.messages.get(String(A.id))).toBeUndefined();
    // Only the op at the head asks Telegram again; the queued ones wait without calls.
    const probes = telegram.rateLimitedCalls(A.id).map((call) => call.params.text);
    expect(new Set(probes)).toEqual(new Set(['a1']));

    telegram.clearRateLimit(A.id);
    const held = await Promise.all([first, ...queued]);
    expect(held.map((r) => r.success)).toEqual([true, true, true, true, true]);
    expect((telegram.messages.get(String(A.id)) ?? []).map((m) => m.text)).toEqual(texts);
    // Every B result and the inbound came before the first of A's.
    expect(events.slice(0, 6)).toEqual(['B', 'B', 'B', 'B', 'B', 'inbound']);
  });

  it('answers "rate limited" at once when retry_after exceeds the op timeout, and asks Telegram nothing more for that chat meanwhile', async () => {
    telegram.rateLimitChat(C.id, { retryAfter: 27, calls: 1 });
    const result = await send(C, 'c1');
    expect(result).toEqual({
      success: false,
      code: 'rate_limited',
      error: 'rate limited by Telegram: retry after 27 s',
      retry_after: 27,
    });
    const callsToC = () => telegram.calls.filter((call) => String(call.params.chat_id) === String(C.id));
    expect(callsToC()).toHaveLength(1);
    const again = await op({ op: 'typing', chat_id: String(C.id), content: 'typing' });
    expect(again).toMatchObject({ success: false, code: 'rate_limited' });
    expect(again.ambiguous).toBeUndefined();
    expect(callsToC()).toHaveLength(1);
    // Another chat is not affected.
    expect((await send(B, 'b after c')).success).toBe(true);
  });

  it('cuts an absurd retry_after to TELEGRAM_MAX_RETRY_AFTER_SECONDS', async () => {
    telegram.rateLimitChat(D.id, { retryAfter: 5_827, calls: 1 });
    // Capped at 30 s, which is still beyond the op's 25 s wait budget: refused, saying 30.
    expect(await send(D, 'd1')).toMatchObject({
      success: false,
      code: 'rate_limited',
      error: `rate limited by Telegram: retry after ${CAP_SECONDS} s`,
      retry_after: CAP_SECONDS,
    });
  });

  it('refuses to start with a TELEGRAM_MAX_RETRY_AFTER_SECONDS it cannot use, naming it', async () => {
    const result = await hermes(['connector', 'serve', '--port', '0', '--db', join(dir.path, 'bad.db')], {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.apiRoot,
      TELEGRAM_MAX_RETRY_AFTER_SECONDS: 'soon',
    });
    // 78 (EX_CONFIG): `connector serve` refuses a bad setting that way (systemd does not retry it).
    expect(result.code).toBe(78);
    expect(result.stderr).toBe(
      'hermes: TELEGRAM_MAX_RETRY_AFTER_SECONDS must be a whole number above 0, got "soon"\n',
    );
  });
});
