import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeTelegram } from '../support/fake-telegram.js';
import { tempDir, until } from '../support/processes.js';
import { startTelegramStack, type TelegramStack } from '../support/telegram-stack.js';
import { sleep } from './fault-support.js';

/**
 * One chat flooded (issue #18, "Per-chat outbound gate"): the fake Bot API answers every call for
 * chat F with 429 and the seconds left of a flood window (as Telegram does), while 1,000 messages
 * flow in 50 other chats, each through the whole path (update → connector → real gateway with the
 * echo agent → `send` op → Bot API). The same case measures unflooded runs at the same pace just
 * before and just after the flood; the other chats' round trips during the flood are compared with
 * them (a ratio within one run, never a wall-clock bound).
 *
 * The window is 30 s rather than the issue's 60 s, to keep CI time down: it already spans both
 * answers for F. The connector gives an op 25 s to wait for its chat's rate limit, so F's replies in
 * the first 5 s of the window are refused at once (`rate_limited`: nothing sent), and later ones
 * wait and go out after the window, in order. A longer window only adds more immediate refusals.
 */

const ENABLED = process.env.HERMES_FAULTS === '1';
const OTHER_CHATS = 50;
/** One message every 30 ms: ~33 a second, well within what two loaded cores carry end to end. */
const PACE_MS = 30;
/** Unflooded messages, half before and half after the flood. */
const UNFLOODED_MESSAGES = 500;
const FLOODED_MESSAGES = 1_000;
const FLOOD_MS = FLOODED_MESSAGES * PACE_MS;
/** Messages to the flooded chat during the window. */
const HELD_MESSAGES = 20;
const FLOODED = { id: 9_000, type: 'private' as const, first_name: 'Flooded' };
const chatOf = (n: number) => ({ id: 9_100 + n, type: 'private' as const, first_name: `Chat ${n}` });
const userOf = (chat: { id: number; first_name: string }) => ({
  id: chat.id,
  is_bot: false,
  first_name: chat.first_name,
});

interface Pushed {
  chat: number;
  text: string;
  at: number;
}

/** Percentile by nearest rank. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

describe.runIf(ENABLED)('fault injection: one Telegram chat flooded (real processes)', () => {
  const dir = tempDir('chat-flood');
  let stack: TelegramStack | undefined;
  let telegram: FakeTelegram;

  beforeAll(async () => {
    stack = await startTelegramStack({
      dir: dir.path,
      chatId: FLOODED.id,
      routeKey: '*',
      agentEnv: { HERMES_AGENT: 'echo' },
    });
    telegram = stack.telegram;
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    dir.remove();
  });

  /** When Telegram took the reply to each pushed message (its arrival at the fake Bot API). */
  function replies(pushed: readonly Pushed[]): Map<string, number> {
    const wanted = new Map(pushed.map((p) => [`${p.chat}\u0000echo: ${p.text}`, p]));
    const found = new Map<string, number>();
    for (const call of telegram.calls) {
      if (call.method !== 'sendMessage' || call.status !== 200) continue;
      const p = wanted.get(`${String(call.params.chat_id)}\u0000${String(call.params.text)}`);
      if (p && !found.has(p.text)) found.set(p.text, call.at);
    }
    return found;
  }

  /** Push `count` messages round-robin over the other chats, one every PACE_MS; `beside` each step. */
  async function flow(phase: string, count: number, beside?: (i: number) => void): Promise<Pushed[]> {
    const pushed: Pushed[] = [];
    const start = performance.now();
    for (let i = 0; i < count; i += 1) {
      const wait = start + i * PACE_MS - performance.now();
      if (wait > 0) await sleep(wait);
      beside?.(i);
      const n = i % OTHER_CHATS;
      const chat = chatOf(n);
      const text = `${phase} c${n} m${Math.floor(i / OTHER_CHATS)}`;
      pushed.push({ chat: chat.id, text, at: performance.now() });
      telegram.pushUpdate({ message: { chat, from: userOf(chat), text } });
    }
    await until(
      () => (replies(pushed).size >= pushed.length ? true : undefined),
      120_000,
      `the ${phase} replies`,
      50,
    );
    return pushed;
  }

  const roundTrips = (pushed: readonly Pushed[]): number[] => {
    const found = replies(pushed);
    return pushed.map((p) => (found.get(p.text) as number) - p.at);
  };

  it("keeps the other chats' round trips within 2× of the unflooded run while one chat is flooded", async () => {
    // A first message in every chat, so every session exists before anything is measured.
    await flow('warm', OTHER_CHATS);
    const before = roundTrips(await flow('calm', UNFLOODED_MESSAGES / 2));

    const heldTexts: string[] = [];
    let floodStart = 0;
    const every = FLOODED_MESSAGES / HELD_MESSAGES;
    const flooded = roundTrips(
      await flow('flood', FLOODED_MESSAGES, (i) => {
        if (i === 0) {
          floodStart = performance.now();
          telegram.rateLimitChat(FLOODED.id, { forMs: FLOOD_MS });
        }
        if (i % every === 0) {
          const text = `held m${heldTexts.length}`;
          heldTexts.push(text);
          telegram.pushUpdate({ message: { chat: FLOODED, from: userOf(FLOODED), text } });
        }
      }),
    );
    const after = roundTrips(await flow('after', UNFLOODED_MESSAGES / 2));
    const unflooded = [...before, ...after];

    // Every reply to F is either refused at once (rate_limited, said in the connector's log) or sent
    // after the window; the sent ones in order.
    const refusedSends = () =>
      (stack?.connector.output() ?? '')
        .split('\n')
        .filter((line) => line.includes('telegram outbound op rate limited') && line.includes('"op":"send"'))
        .length;
    const sentToFlooded = () =>
      telegram
        .callsTo('sendMessage')
        .filter((call) => String(call.params.chat_id) === String(FLOODED.id) && call.status === 200);
    await until(
      () => (refusedSends() + sentToFlooded().length >= HELD_MESSAGES ? true : undefined),
      90_000,
      "an answer for each of the flooded chat's messages",
      50,
    );
    const held = sentToFlooded();
    const refused = refusedSends();
    const asked = telegram.rateLimitedCalls(FLOODED.id).length;
    // What the gate held or refused of the other chats: Telegram refused none of their calls, so
    // the connector had no reason to hold any (its log names every chat whose gate closed).
    const otherRefusals = telegram.calls.filter(
      (call) => call.status === 429 && String(call.params.chat_id) !== String(FLOODED.id),
    ).length;
    const gatesClosed = new Set(
      [
        ...(stack?.connector.output() ?? '').matchAll(/"chatId":"(-?\d+)"[^\n]*telegram rate limit \(429\)/g),
      ].map((match) => match[1]),
    );

    const p99Calm = percentile(unflooded, 99);
    const p99Flood = percentile(flooded, 99);
    const p95Calm = percentile(unflooded, 95);
    const p95Flood = percentile(flooded, 95);
    const maxCalm = Math.max(...unflooded);
    const maxFlood = Math.max(...flooded);
    const beyond = (values: number[], limit: number) => values.filter((ms) => ms > limit).length;
    const ms = (value: number) => `${value.toFixed(1)} ms`;
    console.log(
      `[fault] chat flood: one chat answered 429 for ${FLOOD_MS / 1000} s while ${FLOODED_MESSAGES} messages flowed in ${OTHER_CHATS} other chats ` +
        `(update → gateway → reply, one every ${PACE_MS} ms); their round trip p99 ${ms(p99Flood)} flooded vs ${ms(p99Calm)} unflooded ` +
        `(${UNFLOODED_MESSAGES} messages just before and after, same run: ratio ${(p99Flood / p99Calm).toFixed(2)}), ` +
        `p95 ${ms(p95Flood)} vs ${ms(p95Calm)}, p50 ${ms(percentile(flooded, 50))} vs ${ms(percentile(unflooded, 50))}, max ${ms(maxFlood)} vs ${ms(maxCalm)}; ` +
        `delayed beyond 2× the unflooded p99: ${beyond(flooded, 2 * p99Calm)} of ${flooded.length} (unflooded itself: ${beyond(unflooded, 2 * p99Calm)}), ` +
        `beyond 2× the unflooded max: ${beyond(flooded, 2 * maxCalm)}; other chats' calls refused by Telegram ${otherRefusals}, their ops held by a gate 0 (gates closed: ${[...gatesClosed].join(', ') || 'none'}); flooded chat: ${HELD_MESSAGES} messages, ${refused} replies refused at once ` +
        `(rate_limited), ${held.length} sent after the window in order; Telegram was asked ${asked} times for it during the window`,
    );

    expect(flooded).toHaveLength(FLOODED_MESSAGES);
    expect(p99Flood).toBeLessThanOrEqual(2 * p99Calm);
    // No other chat was held: the only gate that closed is F's.
    expect(otherRefusals).toBe(0);
    expect([...gatesClosed]).toEqual([String(FLOODED.id)]);
    // F: both answers happened, each reply exactly one of them, the sent ones in order, after the window.
    expect(refused).toBeGreaterThan(0);
    expect(held.length).toBeGreaterThan(0);
    expect(refused + held.length).toBe(HELD_MESSAGES);
    const sentTexts = held.map((call) => String(call.params.text));
    expect(sentTexts).toEqual(heldTexts.map((text) => `echo: ${text}`).slice(HELD_MESSAGES - held.length));
    for (const call of held) expect(call.at).toBeGreaterThanOrEqual(floodStart + FLOOD_MS);
  });
});
