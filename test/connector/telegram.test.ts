import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  normaliseTelegramUpdate,
  TELEGRAM_NO_ROUTE_NOTICE,
  TelegramAdapter,
  type TelegramAdapterOptions,
} from '../../src/connector/platforms/telegram.js';
import type { IngestOutcome, PlatformContext, PlatformInbound } from '../../src/connector/platforms/types.js';
import {
  type EditAction,
  parseDescriptor,
  parseOutboundAction,
  type SendAction,
  type TypingAction,
} from '../../src/protocol/index.js';
import { type FakeChat, FakeTelegram, type FakeUser, markdownV2Error } from '../support/fake-telegram.js';
import { until } from '../support/poll.js';

// --- harness ---------------------------------------------------------------------------------------

function memoryLog() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  const log = pino({ level: 'debug' }, stream);
  const entries = () =>
    lines.map((line) => JSON.parse(line) as { level: number; msg: string; [k: string]: unknown });
  return { log, text: () => lines.join(''), entries };
}

type IngestBehaviour = (inbound: PlatformInbound, attempt: number) => IngestOutcome | Promise<IngestOutcome>;

const stored = (): IngestOutcome => ({ ok: true, deliveryId: 'd', tenantId: 't', sessionKey: 'k' });

/** A PlatformContext that records every ingest attempt and lets a test wait for them. */
function recordingContext(log: PlatformContext['log'], behaviour: IngestBehaviour = stored) {
  const attempts: PlatformInbound[] = [];
  const accepted: PlatformInbound[] = [];
  const waiters: { check: () => boolean; resolve: () => void }[] = [];
  const wake = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i];
      if (waiter?.check()) {
        waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  };
  const context: PlatformContext = {
    log,
    async ingest(inbound) {
      attempts.push(inbound);
      const attempt = attempts.filter((a) => a.event.message_id === inbound.event.message_id).length;
      try {
        const outcome = await behaviour(inbound, attempt);
        if (outcome.ok) accepted.push(inbound);
        return outcome;
      } finally {
        wake();
      }
    },
  };
  const until = (check: () => boolean) =>
    new Promise<void>((resolve) => {
      if (check()) resolve();
      else waiters.push({ check, resolve });
    });
  return {
    context,
    attempts,
    accepted,
    untilAttempts: (n: number) => until(() => attempts.length >= n),
    untilAccepted: (n: number) => until(() => accepted.length >= n),
  };
}

const fakes: FakeTelegram[] = [];
const adapters: TelegramAdapter[] = [];

afterEach(async () => {
  await Promise.all(adapters.splice(0).map((adapter) => adapter.stop()));
  await Promise.all(fakes.splice(0).map((fake) => fake.close()));
});

async function setup(options: Partial<TelegramAdapterOptions> = {}) {
  const fake = await FakeTelegram.start();
  fakes.push(fake);
  const memory = memoryLog();
  const adapter = new TelegramAdapter({
    token: fake.token,
    apiRoot: fake.apiRoot,
    log: memory.log,
    pollTimeoutSeconds: 1,
    backoff: { initialMs: 5, maxMs: 20 },
    ...options,
  });
  adapters.push(adapter);
  return { fake, adapter, memory };
}

const alice: FakeUser = {
  id: 111,
  is_bot: false,
  first_name: 'Alice',
  last_name: 'Liddell',
  username: 'alice',
};
const bob: FakeUser = { id: 222, is_bot: false, first_name: 'Bob', last_name: 'Builder' };
const dmChat: FakeChat = {
  id: 111,
  type: 'private',
  first_name: 'Alice',
  last_name: 'Liddell',
  username: 'alice',
};
const groupChat: FakeChat = { id: -4001, type: 'group', title: 'Team' };
const forumChat: FakeChat = { id: -1001234, type: 'supergroup', title: 'Forum', is_forum: true };
const channelChat: FakeChat = { id: -1009999, type: 'channel', title: 'News' };

const send = (input: Record<string, unknown>): SendAction => {
  const parsed = parseOutboundAction({ op: 'send', reply_to: null, metadata: {}, ...input });
  if (!parsed.ok || parsed.action.op !== 'send') throw new Error('bad send action');
  return parsed.action;
};
const edit = (input: Record<string, unknown>): EditAction => {
  const parsed = parseOutboundAction({ op: 'edit', ...input });
  if (!parsed.ok || parsed.action.op !== 'edit') throw new Error('bad edit action');
  return parsed.action;
};

// --- inbound ---------------------------------------------------------------------------------------

describe('TelegramAdapter inbound', () => {
  it('normalises dm, group, forum, edited, captioned, media-only and command messages and ingests them in order', async () => {
    const { fake, adapter, memory } = await setup();
    const ctx = recordingContext(memory.log);

    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'hello' } });
    fake.pushUpdate({ message: { chat: groupChat, from: alice, text: 'from alice' } });
    const fromBob = fake.pushUpdate({ message: { chat: groupChat, from: bob, text: 'from bob' } });
    // In a forum topic, a message that is not a reply points at the topic's creation message (id 42).
    fake.pushUpdate({
      message: {
        message_id: 50,
        chat: forumChat,
        from: bob,
        text: 'in topic',
        message_thread_id: 42,
        is_topic_message: true,
        reply_to_message: { message_id: 42 },
      },
    });
    fake.pushUpdate({
      edited_message: { message_id: 1, chat: dmChat, from: alice, text: 'hello (edited)', edit_date: 2 },
    });
    // No text, but a file: ingested with the file to re-host (current §7.3).
    fake.pushUpdate({ message: { chat: dmChat, from: alice, voice: { file_id: 'v' } } });
    fake.pushUpdate({ message: { chat: dmChat, from: alice, photo: [{ file_id: 'p' }], caption: 'a cat' } });
    fake.pushUpdate({
      message: { chat: groupChat, from: bob, text: '/stop now', reply_to_message: { message_id: 3 } },
    });
    fake.pushUpdate({
      message: { chat: groupChat, from: bob, document: { file_id: 'd' }, caption: 'report' },
    });

    await adapter.start(ctx.context);
    await ctx.untilAccepted(9);

    expect(ctx.attempts.map((a) => a.event.text)).toEqual([
      'hello',
      'from alice',
      'from bob',
      'in topic',
      'hello (edited)',
      '',
      'a cat',
      '/stop now',
      'report',
    ]);
    // Only the command is addressed to the bot (no reply to it in this script).
    expect(ctx.attempts.map((a) => a.addressed)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
      false,
      true,
      false,
    ]);
    // Every update carries its id as the dedupe key (a re-sent update is one event), never the token.
    expect(ctx.attempts.map((a) => a.dedupeKey)).toEqual(
      ctx.attempts.map((_, i) =>
        expect.stringMatching(new RegExp(`^telegram:[0-9a-f]{16}:update:${i + 1}$`)),
      ),
    );
    expect(ctx.attempts[0]).toEqual({
      routeKey: '111',
      addressed: false,
      dedupeKey: expect.any(String),
      event: {
        text: 'hello',
        message_type: 'text',
        message_id: '1',
        source: {
          platform: 'telegram',
          chat_id: '111',
          chat_type: 'dm',
          chat_name: 'Alice Liddell',
          user_id: '111',
          user_name: 'alice',
          message_id: '1',
          is_bot: false,
          message_is_edit: false,
        },
      },
    });
    expect(ctx.attempts[2]).toEqual({
      routeKey: '-4001',
      addressed: false,
      dedupeKey: expect.any(String),
      event: {
        text: 'from bob',
        message_type: 'text',
        message_id: String(fromBob.message?.message_id),
        source: {
          platform: 'telegram',
          chat_id: '-4001',
          chat_type: 'group',
          chat_name: 'Team',
          user_id: '222',
          user_name: 'Bob Builder',
          message_id: String(fromBob.message?.message_id),
          is_bot: false,
          message_is_edit: false,
        },
      },
    });
    expect(ctx.attempts[1]?.event.source).toMatchObject({
      chat_type: 'group',
      user_id: '111',
      user_name: 'alice',
    });
    expect(ctx.attempts[3]).toEqual({
      routeKey: '-1001234',
      addressed: false,
      dedupeKey: expect.any(String),
      event: {
        text: 'in topic',
        message_type: 'text',
        message_id: '50',
        source: {
          platform: 'telegram',
          chat_id: '-1001234',
          chat_type: 'forum',
          thread_id: '42',
          chat_name: 'Forum',
          user_id: '222',
          user_name: 'Bob Builder',
          message_id: '50',
          is_bot: false,
          message_is_edit: false,
        },
      },
    });
    expect(ctx.attempts[4]?.event).toMatchObject({
      text: 'hello (edited)',
      message_id: '1',
      source: { chat_type: 'dm', message_is_edit: true },
    });
    expect(ctx.attempts[5]?.event).toMatchObject({ text: '', message_type: 'voice' });
    expect(ctx.attempts[5]?.attachments?.map((a) => [a.kind, a.mime])).toEqual([['voice', 'audio/ogg']]);
    expect(ctx.attempts[6]?.event).toMatchObject({ text: 'a cat', message_type: 'photo' });
    expect(ctx.attempts[6]?.attachments?.map((a) => a.kind)).toEqual(['image']);
    expect(ctx.attempts[7]?.event).toMatchObject({
      text: '/stop now',
      message_type: 'command',
      reply_to_message_id: '3',
    });
    expect(ctx.attempts[8]?.event).toMatchObject({ text: 'report', message_type: 'document' });

    const polls = fake.callsTo('getUpdates');
    expect(polls[0]?.params).toEqual({
      timeout: 1,
      allowed_updates: ['message', 'edited_message', 'callback_query'],
    });

    await adapter.stop();
    // Everything was acknowledged: nothing is served again.
    expect(fake.pendingUpdates).toEqual([]);
  });

  it('carries what a reply answers: its text, its author and whether it was the bot’s (current §5.4)', () => {
    const reply = normaliseTelegramUpdate(
      {
        update_id: 1,
        message: {
          message_id: 9,
          date: 0,
          chat: groupChat,
          from: alice,
          text: 'yes, that',
          reply_to_message: {
            message_id: 8,
            date: 0,
            chat: groupChat,
            from: { id: 1000, is_bot: true, first_name: 'Bot', username: 'fake_bot' },
            text: 'Which one?',
          },
        },
      } as never,
      1000,
    );
    expect(reply?.event.reply_to).toEqual({ text: 'Which one?', author: 'fake_bot', is_own: true });
    expect(reply?.addressed).toBe(true);
  });

  it('maps the other chat kinds: a plain supergroup is a group, a channel is a channel, a bot is a bot', () => {
    const base = { message_id: 9, date: 0 };
    const supergroup = normaliseTelegramUpdate({
      update_id: 1,
      message: {
        ...base,
        chat: { id: -100555, type: 'supergroup', title: 'Big' },
        from: { id: 5, is_bot: true, first_name: 'Helper' },
        text: 'x',
        message_thread_id: 8, // a reply thread in a non-forum supergroup is not a topic
      },
    } as never);
    expect(supergroup?.event.source).toMatchObject({
      chat_type: 'group',
      user_name: 'Helper',
      is_bot: true,
    });
    expect(supergroup?.event.source.thread_id).toBeUndefined();
    const channel = normaliseTelegramUpdate({
      update_id: 2,
      message: { ...base, chat: channelChat, sender_chat: channelChat, text: 'post' },
    } as never);
    expect(channel).toMatchObject({ routeKey: '-1009999', event: { source: { chat_type: 'channel' } } });
    expect(normaliseTelegramUpdate({ update_id: 3, callback_query: {} } as never)).toBeUndefined();
  });

  it('does not advance past an update until ingest resolves: store errors and throws make it come again', async () => {
    const { fake, adapter, memory } = await setup();
    const ctx = recordingContext(memory.log, (inbound, attempt) => {
      if (inbound.event.text !== 'two') return stored();
      if (attempt === 1) return { ok: false, reason: 'store_error', message: 'disk full' };
      if (attempt === 2) throw new Error('database is locked');
      return stored();
    });
    const one = fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'one' } });
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'two' } });
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'three' } });

    await adapter.start(ctx.context);
    await ctx.untilAccepted(3);
    await adapter.stop();

    expect(ctx.attempts.map((a) => a.event.text)).toEqual(['one', 'two', 'two', 'two', 'three']);
    expect(ctx.accepted.map((a) => a.event.text)).toEqual(['one', 'two', 'three']);
    // After each failure the batch is fetched again from the failed update, not beyond it.
    const offsets = fake.callsTo('getUpdates').map((call) => call.params.offset);
    expect(offsets.slice(0, 3)).toEqual([undefined, one.update_id + 1, one.update_id + 1]);
    expect(fake.pendingUpdates).toEqual([]);
    expect(memory.text()).toContain('disk full');
  });

  it('a restarted adapter gets exactly the updates that were not stored before the stop', async () => {
    const { fake, adapter, memory } = await setup();
    const failing = recordingContext(memory.log, (inbound) =>
      inbound.event.text === 'one' ? stored() : { ok: false, reason: 'store_error', message: 'store down' },
    );
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'one' } });
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'two' } });
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'three' } });
    await adapter.start(failing.context);
    await failing.untilAttempts(4); // one, two (fails), two (fails again)…
    await adapter.stop();
    expect(failing.accepted.map((a) => a.event.text)).toEqual(['one']);

    const restarted = new TelegramAdapter({
      token: fake.token,
      apiRoot: fake.apiRoot,
      log: memory.log,
      pollTimeoutSeconds: 1,
    });
    adapters.push(restarted);
    const healthy = recordingContext(memory.log);
    await restarted.start(healthy.context);
    await healthy.untilAccepted(2);
    await restarted.stop();
    expect(healthy.attempts.map((a) => a.event.text)).toEqual(['two', 'three']);
  });

  it('answers an unrouted chat once, logs it once per chat, and moves on', async () => {
    const { fake, adapter, memory } = await setup();
    const ctx = recordingContext(memory.log, () => ({ ok: false, reason: 'no_route', message: 'no route' }));
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'anyone?' } });
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'hello??' } });
    fake.pushUpdate({
      message: { chat: forumChat, from: bob, text: 'topic', message_thread_id: 7, is_topic_message: true },
    });

    await adapter.start(ctx.context);
    await ctx.untilAttempts(3);
    await fake.waitForCalls('sendMessage', 2);
    await adapter.stop();

    expect(ctx.attempts).toHaveLength(3); // no retries: no_route acknowledges the update
    expect(fake.callsTo('sendMessage').map((call) => call.params)).toEqual([
      { chat_id: '111', text: TELEGRAM_NO_ROUTE_NOTICE },
      { chat_id: '-1001234', text: TELEGRAM_NO_ROUTE_NOTICE, message_thread_id: 7 },
    ]);
    const warnings = memory.entries().filter((e) => e.level === 40 && String(e.msg).includes('no route'));
    expect(warnings.map((e) => e.chatId)).toEqual(['111', '-1001234']);
    expect(fake.pendingUpdates).toEqual([]);
  });

  it('backs off and recovers from HTTP errors, dropped connections and 429', async () => {
    const { fake, adapter, memory } = await setup();
    const ctx = recordingContext(memory.log);
    fake.failNext('getUpdates', 500, 'Internal Server Error');
    fake.dropNext('getUpdates');
    fake.failNext('getUpdates', 429, 'Too Many Requests: retry after 0', { retry_after: 0 });
    fake.failNext('getUpdates', 409, 'Conflict: terminated by other getUpdates request');
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'still there' } });

    await adapter.start(ctx.context);
    await ctx.untilAccepted(1);
    await adapter.stop();

    expect(
      fake
        .callsTo('getUpdates')
        .map((call) => call.status)
        .slice(0, 5),
    ).toEqual([500, 0, 429, 409, 200]);
    expect(ctx.accepted.map((a) => a.event.text)).toEqual(['still there']);
    expect(memory.entries().filter((e) => e.level === 40).length).toBeGreaterThanOrEqual(4);
    expect(adapter.state).toBe('stopped');
  });

  it('stops polling on 401 without throwing, with a clear error', async () => {
    const fake = await FakeTelegram.start();
    fakes.push(fake);
    const memory = memoryLog();
    const wrongToken = '999999:WRONG-token_zyxwvutsrqponmlkjihgfedcba';
    const adapter = new TelegramAdapter({
      token: wrongToken,
      apiRoot: fake.apiRoot,
      log: memory.log,
      pollTimeoutSeconds: 1,
      backoff: { initialMs: 5, maxMs: 20 },
    });
    adapters.push(adapter);
    const ctx = recordingContext(memory.log);

    await adapter.start(ctx.context);
    await adapter.pollingEnded();

    expect(adapter.state).toBe('unauthorized');
    expect(fake.callsTo('getUpdates').map((call) => call.status)).toEqual([401]);
    const errors = memory.entries().filter((e) => e.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toMatch(/401.*TELEGRAM_BOT_TOKEN/);
    await expect(adapter.stop()).resolves.toBeUndefined();
    expect(memory.text()).not.toContain(wrongToken);
  });

  it('stop() aborts a pending long poll instead of waiting for it to time out', async () => {
    // A 60 s poll: without the abort, stop() would outlive the test timeout.
    const { fake, adapter, memory } = await setup({ pollTimeoutSeconds: 60 });
    const ctx = recordingContext(memory.log);
    await adapter.start(ctx.context);
    await fake.waitForCalls('getUpdates', 1);
    await until(() => fake.pollPending);

    await adapter.stop();

    await until(() => !fake.pollPending);
    // The fake never answered it: the client went away.
    expect(fake.callsTo('getUpdates').map((call) => call.status)).toEqual([0]);
    expect(adapter.state).toBe('stopped');
    // Pushed after the stop: not ingested.
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'late' } });
    expect(ctx.attempts).toEqual([]);
  });

  it('never logs the bot token, even when grammY errors carry the request URL', async () => {
    const { fake, adapter, memory } = await setup();
    const ctx = recordingContext(memory.log, (inbound) =>
      inbound.event.text === 'bad' ? Promise.reject(new Error(`boom at /bot${fake.token}/x`)) : stored(),
    );
    fake.dropNext('getUpdates'); // node-fetch's error message contains the full URL, token included
    fake.pushUpdate({ message: { chat: dmChat, from: alice, text: 'bad' } });
    await adapter.start(ctx.context);
    await ctx.untilAttempts(1);
    await adapter.send(send({ chat_id: '404404', content: 'x' })); // chat not found
    fake.addChat(dmChat);
    fake.dropNext('sendMessage');
    const dropped = await adapter.send(send({ chat_id: '111', content: 'x' }));
    await adapter.stop();

    expect(dropped.success).toBe(false);
    expect(dropped.error).toContain('[redacted]');
    expect(dropped.error).not.toContain(fake.token);
    const logs = memory.text();
    expect(logs).toContain('[redacted]'); // the URL was logged, with the token cut out
    expect(logs).not.toContain(fake.token);
    expect(logs).not.toContain(fake.token.split(':')[1] as string);
  });
});

// --- outbound --------------------------------------------------------------------------------------

describe('TelegramAdapter outbound', () => {
  it('describes itself as Telegram with MarkdownV2 and UTF-16 lengths', async () => {
    const { adapter } = await setup();
    const descriptor = adapter.descriptor();
    expect(descriptor).toMatchObject({
      contract_version: 1,
      platform: 'telegram',
      label: 'Telegram',
      max_message_length: 4096,
      supports_draft_streaming: false,
      supports_edit: true,
      supports_threads: true,
      markdown_dialect: 'markdown_v2',
      len_unit: 'utf16',
      emoji: '✈️',
      pii_safe: false,
      supports_context: false,
      supports_inchannel_continuable: false,
      supports_block_formatting: false,
    });
    expect(descriptor.platform_hint).toContain('MarkdownV2');
    expect(parseDescriptor(descriptor)).toMatchObject({ ok: true, descriptor });
  });

  it('threads are forum topics: created with the name, renamed unguarded only, refused where the chat is no forum', async () => {
    const { fake, adapter } = await setup();
    fake.addChat(forumChat);
    fake.addChat(groupChat);
    const action = (input: Record<string, unknown>) => {
      const parsed = parseOutboundAction({ metadata: {}, ...input });
      if (!parsed.ok) throw new Error(parsed.error);
      return parsed.action as never;
    };
    const created = await adapter.createThread(
      action({ op: 'thread_create', chat_id: '-1001234', thread_name: '  fix   the build ' }),
    );
    expect(created).toMatchObject({ success: true, thread_id: expect.stringMatching(/^\d+$/) });
    expect(fake.topics.get(`-1001234:${created.thread_id}`)).toBe('fix the build');
    const renamed = await adapter.renameThread(
      action({
        op: 'thread_rename',
        chat_id: '-1001234',
        message_id: created.thread_id,
        thread_name: 'Fix the build',
      }),
    );
    expect(renamed).toEqual({ success: true });
    expect(fake.topics.get(`-1001234:${created.thread_id}`)).toBe('Fix the build');
    const guarded = await adapter.renameThread(
      action({
        op: 'thread_rename',
        chat_id: '-1001234',
        message_id: created.thread_id,
        thread_name: 'Other',
        only_if_current_name: 'Hermes',
      }),
    );
    expect(guarded).toMatchObject({ success: false, error: expect.stringContaining('guarded rename') });
    expect(fake.topics.get(`-1001234:${created.thread_id}`)).toBe('Fix the build');
    const notForum = await adapter.createThread(action({ op: 'thread_create', chat_id: '-4001' }));
    expect(notForum).toMatchObject({ success: false, error: expect.stringContaining('not a forum') });
  });

  it('sends as MarkdownV2 with reply parameters and the thread id from metadata', async () => {
    const { fake, adapter } = await setup();
    fake.addChat(forumChat);
    const result = await adapter.send(
      send({ chat_id: '-1001234', content: 'Hi *there*', reply_to: '5', metadata: { thread_id: '42' } }),
    );
    const plain = await adapter.send(
      send({ chat_id: -1001234, content: 'second', metadata: { thread_id: 'not-a-number' } }),
    );

    expect(fake.callsTo('sendMessage').map((call) => call.params)).toEqual([
      {
        chat_id: '-1001234',
        text: 'Hi *there*',
        parse_mode: 'MarkdownV2',
        reply_parameters: { message_id: 5, allow_sending_without_reply: true },
        message_thread_id: 42,
      },
      { chat_id: '-1001234', text: 'second', parse_mode: 'MarkdownV2' },
    ]);
    const sent = fake.messages.get('-1001234') ?? [];
    expect(result).toEqual({ success: true, message_id: String(sent[0]?.message_id) });
    expect(plain).toEqual({ success: true, message_id: String(sent[1]?.message_id) });
    expect(sent[0]).toMatchObject({ text: 'Hi *there*', message_thread_id: 42 });
  });

  it('falls back to plain text once when Telegram cannot parse the MarkdownV2', async () => {
    const { fake, adapter } = await setup();
    fake.addChat(dmChat);
    const result = await adapter.send(send({ chat_id: '111', content: 'Done. 100% sure!' }));
    expect(result.success).toBe(true);
    expect(fake.callsTo('sendMessage').map((call) => [call.params.parse_mode, call.status])).toEqual([
      ['MarkdownV2', 400],
      [undefined, 200],
    ]);
    expect(fake.messages.get('111')).toMatchObject([{ text: 'Done. 100% sure!', edits: 0 }]);
    expect(fake.messages.get('111')?.[0]?.parse_mode).toBeUndefined();

    // Only once: a second parse error is the result, and other 400s are not retried at all.
    fake.failNext('sendMessage', 400, "Bad Request: can't parse entities: Unsupported start tag");
    fake.failNext('sendMessage', 400, "Bad Request: can't parse entities: Unsupported start tag");
    const twice = await adapter.send(send({ chat_id: '111', content: 'fine' }));
    expect(twice).toMatchObject({ success: false, error: expect.stringContaining("can't parse entities") });
    const missing = await adapter.send(send({ chat_id: '5555', content: 'Done.' }));
    expect(missing).toMatchObject({ success: false, error: expect.stringContaining('chat not found') });
    expect(fake.callsTo('sendMessage')).toHaveLength(5);
  });

  it('edits with the same fallback and treats "message is not modified" as success', async () => {
    const { fake, adapter } = await setup();
    fake.addChat(groupChat);
    const first = await adapter.send(send({ chat_id: '-4001', content: 'draft' }));
    const messageId = first.message_id as string;

    const edited = await adapter.edit(
      edit({ chat_id: '-4001', message_id: messageId, content: 'final *answer*' }),
    );
    expect(edited).toEqual({ success: true, message_id: messageId });
    expect(fake.callsTo('editMessageText').at(-1)?.params).toEqual({
      chat_id: '-4001',
      message_id: Number(messageId),
      text: 'final *answer*',
      parse_mode: 'MarkdownV2',
    });

    const same = await adapter.edit(
      edit({ chat_id: '-4001', message_id: messageId, content: 'final *answer*' }),
    );
    expect(same).toEqual({ success: true, message_id: messageId });
    expect(fake.callsTo('editMessageText').at(-1)?.params.parse_mode).toBe('MarkdownV2');
    expect(fake.callsTo('editMessageText').at(-1)?.status).toBe(400);

    const fallback = await adapter.edit(
      edit({ chat_id: '-4001', message_id: messageId, content: 'v2.0 is out!' }),
    );
    expect(fallback.success).toBe(true);
    expect(fake.messages.get('-4001')).toMatchObject([{ text: 'v2.0 is out!', edits: 2 }]);
    expect(fake.messages.get('-4001')?.[0]?.parse_mode).toBeUndefined();

    const unknown = await adapter.edit(edit({ chat_id: '-4001', message_id: '999', content: 'x' }));
    expect(unknown).toMatchObject({
      success: false,
      error: expect.stringContaining('message to edit not found'),
    });
    const calls = fake.callsTo('editMessageText').length;
    const notAnId = await adapter.edit(edit({ chat_id: '-4001', message_id: 'abc', content: 'x' }));
    expect(notAnId.success).toBe(false);
    expect(fake.callsTo('editMessageText')).toHaveLength(calls);
  });

  it('sends typing, with a thread id when given, and clears without a call', async () => {
    const { fake, adapter } = await setup();
    fake.addChat(forumChat);
    expect(await adapter.typing({ op: 'typing', chat_id: '-1001234', metadata: {} })).toEqual({
      success: true,
    });
    const withThread = { op: 'typing', chat_id: '-1001234', metadata: { thread_id: 42 } } as TypingAction;
    expect(await adapter.typing(withThread)).toEqual({ success: true });
    expect(await adapter.typing({ op: 'typing', chat_id: '-1001234', content: '', metadata: {} })).toEqual({
      success: true,
    });
    expect(fake.callsTo('sendChatAction').map((call) => call.params)).toEqual([
      { chat_id: '-1001234', action: 'typing' },
      { chat_id: '-1001234', action: 'typing', message_thread_id: 42 },
    ]);
    const unknown = await adapter.typing({ op: 'typing', chat_id: '31337', metadata: {} });
    expect(unknown).toMatchObject({ success: false, error: expect.stringContaining('chat not found') });
  });

  it('answers get_chat_info from getChat with the chat type mapped', async () => {
    const { fake, adapter } = await setup();
    for (const chat of [dmChat, groupChat, forumChat, channelChat]) fake.addChat(chat);
    fake.addChat({ id: -100777, type: 'supergroup', title: 'Plain super' });
    const info = async (chatId: string) => adapter.getChatInfo({ op: 'get_chat_info', chat_id: chatId });

    expect(await info('111')).toEqual({ success: true, chat_info: { name: 'Alice Liddell', type: 'dm' } });
    expect(await info('-4001')).toEqual({ success: true, chat_info: { name: 'Team', type: 'group' } });
    expect(await info('-100777')).toEqual({
      success: true,
      chat_info: { name: 'Plain super', type: 'group' },
    });
    expect(await info('-1001234')).toEqual({ success: true, chat_info: { name: 'Forum', type: 'forum' } });
    expect(await info('-1009999')).toEqual({ success: true, chat_info: { name: 'News', type: 'channel' } });
    expect(fake.callsTo('getChat').map((call) => call.params.chat_id)).toEqual([
      '111',
      '-4001',
      '-100777',
      '-1001234',
      '-1009999',
    ]);
    expect(await info('42')).toMatchObject({
      success: false,
      error: expect.stringContaining('chat not found'),
    });
  });
});

describe('fake Telegram MarkdownV2 check', () => {
  it('accepts valid MarkdownV2 and refuses what Telegram refuses', () => {
    expect(
      markdownV2Error('*bold* _it_ __u__ ~s~ ||sp|| `a.b` [l\\.](https://x.y/z) \\. \\!'),
    ).toBeUndefined();
    expect(markdownV2Error('```js\nconst a = 1 + 2;\n```')).toBeUndefined();
    expect(markdownV2Error('> quoted')).toBeUndefined();
    expect(markdownV2Error('Hello!')).toMatch(/Character '!' is reserved/);
    expect(markdownV2Error('snake_case')).toMatch(/Can't find end of Italic entity/);
    expect(markdownV2Error('a > b')).toMatch(/Character '>' is reserved/);
    expect(markdownV2Error('`open')).toMatch(/Code entity/);
  });
});
