import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { SqliteInbox } from '../../src/gateway/inbox.js';
import { decodeBase64, readPassthrough } from '../../src/gateway/passthrough.js';
import { type OutboundLink, ReplyChannel, sessionKeyProfile } from '../../src/gateway/replies.js';
import { type RunningGateway, startGateway } from '../../src/gateway/runner.js';
import { SessionManager, TEXTS } from '../../src/gateway/sessions.js';
import { loadGatewayConfig } from '../../src/home/config.js';
import {
  type CapabilityDescriptor,
  DISCORD_INTERACTION_KIND,
  egressDeclined,
  encodeLine,
  FrameDecoder,
  MessageEventSchema,
  type OutboundResult,
  placeholderDescriptor,
} from '../../src/protocol/index.js';
import { until } from '../support/poll.js';

/**
 * Discord interactions end to end on the gateway (current §12, §7.2, §5.1): our real gateway
 * (`startGateway`, echo agent, its inbox and sessions) dialed into a fake connector — a `ws` server
 * on 127.0.0.1 that the test scripts — which sends `passthrough_forward` frames and answers ops.
 */

type Frame = Record<string, unknown> & { type: string };
type Action = Record<string, unknown> & { op: string };

const INTERACTION_TOKEN = 'aW50ZXJhY3Rpb24tdG9rZW4tc2VjcmV0';
const SUPPORTED_OPS = ['send', 'edit', 'typing', 'follow_up', 'send_media', 'prompt', 'react'];

interface FakeConnector {
  url: string;
  /** Every frame the gateway wrote, in order. */
  frames: Frame[];
  /** Every line the gateway wrote, as sent (to look for what must never be there). */
  raw: string[];
  /** How an op is answered (default: success with a message id). */
  answer: (action: Action) => OutboundResult;
  socket(): WebSocket | undefined;
  close(): Promise<void>;
}

async function fakeConnector(): Promise<FakeConnector> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  let current: WebSocket | undefined;
  let counter = 0;
  const fake: FakeConnector = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/relay`,
    frames: [],
    raw: [],
    answer: () => ({ success: true, message_id: `m${++counter}` }),
    socket: () => current,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
  wss.on('connection', (socket) => {
    current = socket;
    const decoder = new FrameDecoder();
    socket.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      fake.raw.push(text);
      for (const value of decoder.push(text).values) {
        const frame = value as Frame;
        fake.frames.push(frame);
        if (frame.type === 'hello') {
          const descriptor: CapabilityDescriptor = {
            ...placeholderDescriptor(String(frame.platform)),
            label: String(frame.platform),
            max_message_length: 2000,
            supported_ops: SUPPORTED_OPS,
          };
          socket.send(encodeLine({ type: 'descriptor', descriptor }));
        }
        if (frame.type === 'going_idle') socket.send(encodeLine({ type: 'going_idle_ack' }));
        if (frame.type === 'outbound')
          socket.send(
            encodeLine({
              type: 'outbound_result',
              requestId: frame.requestId,
              result: fake.answer(frame.action as Action),
            }),
          );
      }
    });
  });
  return fake;
}

interface Harness {
  fake: FakeConnector;
  gateway: RunningGateway;
  logs: Record<string, unknown>[];
  forward(body: unknown, options?: { bufferId?: string; platform?: string; bodyB64?: string }): void;
  actions(op?: string): Action[];
  acks(): unknown[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function harness(): Promise<Harness> {
  const fake = await fakeConnector();
  cleanups.push(() => fake.close());
  const home = mkdtempSync(join(tmpdir(), 'hermes-discord-passthrough-'));
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  const logs: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  const config = loadGatewayConfig({
    home,
    env: {
      GATEWAY_RELAY_URL: fake.url,
      GATEWAY_RELAY_ID: 'gw-discord',
      GATEWAY_RELAY_SECRET: 's'.repeat(43),
      GATEWAY_RELAY_PLATFORMS: 'discord,telegram',
      GATEWAY_RELAY_BOT_IDS: '{"discord":{"botId":"app-1"},"telegram":{"botId":"bot-9"}}',
    },
  });
  const gateway = await startGateway({ config: { ...config, restartDrainTimeoutSeconds: 5 }, log });
  cleanups.push(async () => {
    await gateway.stop();
  });
  await until(() => fake.frames.filter((f) => f.type === 'hello').length >= 2, 10_000, 'the hellos');
  // The descriptors are adopted once the gateway answers nothing more to them: wait for the socket.
  await until(() => fake.socket()?.readyState === 1, 10_000, 'the socket');
  return {
    fake,
    gateway,
    logs,
    forward(body, options = {}) {
      const bodyB64 = options.bodyB64 ?? Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
      const platform = options.platform ?? 'discord';
      fake.socket()?.send(
        encodeLine({
          type: 'passthrough_forward',
          forward: {
            platform,
            botId: platform === 'discord' ? 'app-1' : 'tw-1',
            method: 'POST',
            path: platform === 'discord' ? '/interactions/discord/app-1' : '/webhooks/twilio/x',
            headers: [['content-type', 'application/json']],
            bodyB64,
          },
          ...(options.bufferId ? { bufferId: options.bufferId } : {}),
        }),
      );
    },
    actions: (op) =>
      fake.frames
        .filter((f) => f.type === 'outbound')
        .map((f) => f.action as Action)
        .filter((a) => (op ? a.op === op : a.op !== 'typing')),
    acks: () => fake.frames.filter((f) => f.type === 'inbound_ack').map((f) => f.bufferId),
  };
}

/** A slash command in channel chan-9 of guild guild-7, by user-3 (the §4.2 literal, with options). */
function slash(name: string, id = `i-${name}`, options?: unknown[]) {
  return {
    type: 2,
    id,
    application_id: 'app-1',
    channel_id: 'chan-9',
    guild_id: 'guild-7',
    channel: { id: 'chan-9', type: 0, name: 'general' },
    member: { user: { id: 'user-3', username: 'ben' } },
    data: { name, ...(options ? { options } : {}) },
  };
}

const SESSION = 'agent:main:discord:group:chan-9:user-3';

describe('a Discord interaction runs a turn answered through follow_up (current §12, §7.2)', () => {
  it('one turn, its reply a follow_up naming the session, tagged discord, with no token anywhere', async () => {
    const h = await harness();
    // Whatever the connector leaves in the body, the gateway never sends a token back.
    h.forward(
      {
        ...slash('summarize', 'interaction-1', [{ type: 3, name: 'what', value: 'today' }]),
        token: INTERACTION_TOKEN,
      },
      { bufferId: 'pbuf-7' },
    );
    await until(() => h.actions('follow_up').length >= 1 || undefined, 10_000, 'the follow-up');
    await until(() => h.acks().length >= 1 || undefined, 5_000, 'the ack');
    const frame = h.fake.frames.find((f) => f.type === 'outbound' && (f.action as Action).op === 'follow_up');
    expect(frame).toMatchObject({
      platform: 'discord',
      botId: 'app-1',
      action: {
        op: 'follow_up',
        session_key: SESSION,
        kind: DISCORD_INTERACTION_KIND,
        content: 'echo: /summarize today',
        metadata: { scope_id: 'guild-7', user_id: 'user-3' },
      },
    });
    expect(Object.keys(frame?.action as object).sort()).toEqual([
      'content',
      'kind',
      'metadata',
      'op',
      'session_key',
    ]);
    expect(h.acks()).toEqual(['pbuf-7']);
    // No text went to the chat; only the typing indicator did.
    expect(h.actions('send')).toEqual([]);
    expect(h.actions().map((a) => a.op)).toEqual(['follow_up']);
    for (const line of h.fake.raw) expect(line).not.toContain(INTERACTION_TOKEN);
    // The chat's platform is learned as from an inbound: a send to it is tagged discord.
    const typing = h.fake.frames.find((f) => f.type === 'outbound' && (f.action as Action).op === 'typing');
    if (typing) expect(typing).toMatchObject({ platform: 'discord', botId: 'app-1' });
  });

  it('acks a redelivered bufferId every time and runs it once (current §5.1, §5.2)', async () => {
    const h = await harness();
    const body = slash('status', 'interaction-dup');
    // Two copies back to back (the first not yet acked), then a replay after the ack.
    h.forward(body, { bufferId: 'buffer-1' });
    h.forward(body, { bufferId: 'buffer-1' });
    await until(() => h.acks().length >= 2 || undefined, 5_000, 'two acks');
    await until(() => h.actions('follow_up').length >= 1 || undefined, 10_000, 'the follow-up');
    h.forward(body, { bufferId: 'buffer-1' });
    await until(() => h.acks().length >= 3 || undefined, 5_000, 'the third ack');
    // A live copy after that (no bufferId) marks the end: everything before it was handled.
    h.forward(slash('after', 'interaction-after'));
    await until(() => h.actions('follow_up').length >= 2 || undefined, 10_000, 'the later follow-up');
    expect(h.acks()).toEqual(['buffer-1', 'buffer-1', 'buffer-1']);
    expect(h.actions('follow_up').map((a) => a.content)).toEqual(['echo: /status', 'echo: /after']);
  });

  it('falls back to a send to the chat when the connector holds no capability', async () => {
    const h = await harness();
    h.fake.answer = (action) =>
      action.op === 'follow_up'
        ? { success: false, error: 'no follow-up capability for this session (absent or expired)' }
        : { success: true, message_id: 'sent-1' };
    h.forward(slash('late'));
    await until(() => h.actions('send').length >= 1 || undefined, 10_000, 'the send');
    expect(h.actions().map((a) => a.op)).toEqual(['follow_up', 'send']);
    expect(h.actions('send')[0]).toMatchObject({
      chat_id: 'chan-9',
      content: 'echo: /late',
      // A slash command is no message to reply to.
      reply_to: null,
      metadata: { scope_id: 'guild-7', user_id: 'user-3' },
    });
    expect(
      h.fake.frames.find((f) => f.type === 'outbound' && (f.action as Action).op === 'send'),
    ).toMatchObject({
      platform: 'discord',
    });
  });

  it('does not downgrade an egress decline of the follow_up into a send', async () => {
    const h = await harness();
    h.fake.answer = (action) =>
      action.op === 'follow_up' ? egressDeclined('discord') : { success: true, message_id: 'sent-1' };
    h.forward(slash('declined'));
    await until(
      () =>
        h.logs.some((l) => String(l.msg).includes('declined the reply') && l.code === 'egress_declined') ||
        undefined,
      10_000,
      'the decline logged',
    );
    // The turn is over (the next one in the session runs) and no send ever followed.
    h.fake.answer = () => ({ success: true, message_id: 'ok' });
    h.forward(slash('next'));
    await until(() => h.actions('follow_up').length >= 2 || undefined, 10_000, 'the next follow-up');
    expect(h.actions().map((a) => a.op)).toEqual(['follow_up', 'follow_up']);
  });

  it('keeps other actions on their own ops, and answers a press on its prompt through follow_up', async () => {
    const h = await harness();
    h.forward(slash('ask', 'interaction-ask', [{ type: 3, name: 'question', value: 'Ship it?' }]));
    await until(() => h.actions('prompt').length >= 1 || undefined, 10_000, 'the prompt');
    const prompt = h.actions('prompt')[0] as Action;
    expect(prompt).toMatchObject({ chat_id: 'chan-9', content: 'Ship it?', reply_to: null });
    // The slash command's "thinking…" reply is replaced although the turn only showed buttons.
    await until(() => h.actions('follow_up').length >= 1 || undefined, 10_000, 'the deferred reply replaced');
    expect(h.actions('follow_up')[0]).toMatchObject({ session_key: SESSION, content: '✅ Done.' });

    // Someone else's prompt (another gateway's nonce): consumed silently, but acked.
    const press = (promptId: string, id: string, bufferId: string) =>
      h.forward(
        {
          type: 3,
          id,
          channel_id: 'chan-9',
          guild_id: 'guild-7',
          member: { user: { id: 'user-3', username: 'ben' } },
          message: { id: 'prompt-message-1' },
          data: { custom_id: `hp1:${promptId}:yes`, component_type: 2 },
        },
        { bufferId },
      );
    press('ffffff.00000000', 'press-foreign', 'pb-foreign');
    await until(() => h.acks().includes('pb-foreign') || undefined, 5_000, 'the foreign press acked');
    press(String(prompt.prompt_id), 'press-ours', 'pb-ours');
    await until(() => h.actions('follow_up').length >= 2 || undefined, 10_000, 'the answer');
    expect(h.actions('follow_up')[1]).toMatchObject({ session_key: SESSION, content: 'You chose: yes' });
    // A repeat of our press is ignored too.
    press(String(prompt.prompt_id), 'press-again', 'pb-again');
    await until(() => h.acks().includes('pb-again') || undefined, 5_000, 'the repeat acked');
    h.forward(slash('done', 'interaction-done'));
    await until(() => h.actions('follow_up').length >= 3 || undefined, 10_000, 'the last follow-up');
    expect(h.actions().map((a) => a.op)).toEqual(['prompt', 'follow_up', 'follow_up', 'follow_up']);
  });

  it('runs /stop from a slash command on the running turn of its session', async () => {
    const h = await harness();
    h.forward(slash('slow', 'interaction-slow', [{ type: 3, name: 'args', value: '20 a long reply' }]));
    await until(() => h.actions('typing').length >= 1 || undefined, 10_000, 'the turn running');
    h.forward(slash('stop', 'interaction-stop'));
    await until(() => h.actions('follow_up').length >= 1 || undefined, 10_000, 'the stop answer');
    // "Stopped." (or "Stopped before it started", when /stop beat the agent's start).
    expect(h.actions('follow_up')[0]).toMatchObject({
      session_key: SESSION,
      content: expect.stringMatching(/^⚡ Stopped\./),
    });
    // A streamed reply is not shown live through a follow-up: nothing was sent or edited.
    expect(h.actions().map((a) => a.op)).toEqual(['follow_up']);
  });
});

describe('forwards that are not for a turn are acked and dropped', () => {
  it('drops a non-Discord forward at debug', async () => {
    const h = await harness();
    h.forward({ From: '+15550001' }, { platform: 'twilio', bufferId: 'tw-1' });
    await until(() => h.acks().includes('tw-1') || undefined, 5_000, 'the ack');
    const line = h.logs.find((l) => String(l.msg).startsWith('passthrough forward dropped'));
    expect(line).toMatchObject({ level: 20, platform: 'twilio' });
  });

  it('drops a malformed body at warn, in one line without the body, and keeps running', async () => {
    const h = await harness();
    const bodies = [
      '!!!not base64!!!',
      Buffer.from('not json').toString('base64'),
      Buffer.from('[1]').toString('base64'),
    ];
    for (const [index, bodyB64] of bodies.entries())
      h.forward(undefined, { bodyB64, bufferId: `bad-${index}` });
    await until(() => h.acks().length >= 3 || undefined, 5_000, 'the acks');
    expect(h.acks()).toEqual(['bad-0', 'bad-1', 'bad-2']);
    const warnings = h.logs.filter((l) => String(l.msg).startsWith('passthrough forward dropped'));
    expect(warnings).toHaveLength(3);
    for (const warning of warnings) {
      expect(warning.level).toBe(40);
      const text = JSON.stringify(warning);
      for (const bodyB64 of bodies) expect(text).not.toContain(bodyB64);
      expect(text).not.toContain('not json');
    }
    // A ping (never forwarded in practice) has nothing for an agent: dropped at debug.
    h.forward({ type: 1, id: 'ping-1' }, { bufferId: 'ping' });
    await until(() => h.acks().includes('ping') || undefined, 5_000, 'the ping acked');
    h.forward(slash('alive'));
    await until(() => h.actions('follow_up').length >= 1 || undefined, 10_000, 'a turn after them');
    expect(h.actions().map((a) => a.op)).toEqual(['follow_up']);
  });
});

describe('the pieces', () => {
  it('decodes base64 strictly: malformed is empty bytes (current §14 case 43)', () => {
    expect(Buffer.from(decodeBase64('eyJ0eXBlIjoyfQ==')).toString()).toBe('{"type":2}');
    expect(Buffer.from(decodeBase64('eyJ0eXBlIjoyfQ')).toString()).toBe('{"type":2}');
    for (const bad of ['!!!not base64!!!', 'eyJ0eXBlIjoyfQ=', 'a', 'ab=c', 'eyJ0-XBl'])
      expect(decodeBase64(bad)).toHaveLength(0);
    expect(decodeBase64('')).toHaveLength(0);
  });

  it('reads a forward: the profile carried through, another platform dropped', () => {
    const forward = {
      platform: 'discord',
      botId: 'app-1',
      method: 'POST',
      path: '/interactions/discord/app-1',
      headers: [],
      bodyB64: Buffer.from(JSON.stringify(slash('x'))).toString('base64'),
    };
    const withProfile = readPassthrough({ ...forward, profile: 'reviewer' });
    expect(withProfile.kind === 'event' && withProfile.event.source.profile).toBe('reviewer');
    const without = readPassthrough(forward);
    expect(without.kind === 'event' && without.event.source.profile).toBeUndefined();
    expect(readPassthrough({ ...forward, platform: 'twilio' })).toMatchObject({
      kind: 'drop',
      level: 'debug',
    });
  });

  it('names the profile of a session key in follow_up metadata', () => {
    expect(sessionKeyProfile('agent:main:discord:group:c:u')).toBeUndefined();
    expect(sessionKeyProfile('agent:reviewer:discord:group:c:u')).toBe('reviewer');
    expect(sessionKeyProfile('agent:main~:discord:group:c:u')).toBe('main');
  });

  it('falls back once per lane, never when the connector gave no answer', async () => {
    const sent: Action[] = [];
    let answers: OutboundResult[] = [];
    const link: OutboundLink = {
      descriptor: { ...placeholderDescriptor('discord'), max_message_length: 10 },
      async send(action) {
        sent.push(action as unknown as Action);
        return answers.shift() ?? { success: true, message_id: 'm' };
      },
    };
    const channel = new ReplyChannel(link, 'discord', pino({ level: 'silent' }));
    const target = {
      chatId: 'chan-9',
      replyTo: null,
      metadata: {},
      followUp: { sessionKey: 'agent:reviewer:discord:group:chan-9:u', kind: DISCORD_INTERACTION_KIND },
    };
    // Expired: this part and the next go to the chat; the lane is not asked again.
    answers = [{ success: false, error: 'no follow-up capability for this session' }];
    await channel.sendText(target, 'first part second');
    expect(sent.map((a) => a.op)).toEqual(['follow_up', 'send', 'send']);
    expect(sent[0]?.metadata).toEqual({ profile: 'reviewer' });
    await channel.sendText(target, 'later');
    expect(sent.map((a) => a.op)).toEqual(['follow_up', 'send', 'send', 'send']);

    // Ambiguous (the connector did not answer): it may have been posted, so no send follows.
    sent.length = 0;
    answers = [{ success: false, error: 'relay outbound timed out', ambiguous: true }];
    const fresh = { ...target, followUp: { ...target.followUp } };
    const result = await channel.sendText(fresh, 'hello');
    expect(result).toMatchObject({ success: false, ambiguous: true });
    expect(sent.map((a) => a.op)).toEqual(['follow_up']);
    // No socket: a send would fail the same way, and the lane is tried again next time.
    sent.length = 0;
    answers = [{ success: false, error: 'relay transport not connected' }];
    await channel.sendText(fresh, 'hello');
    await channel.sendText(fresh, 'again');
    expect(sent.map((a) => a.op)).toEqual(['follow_up', 'follow_up']);
  });

  it("while draining: refuses an interaction through follow_up, and stays silent on another gateway's press", async () => {
    const sent: Action[] = [];
    const link: OutboundLink = {
      descriptor: { ...placeholderDescriptor('discord'), supported_ops: SUPPORTED_OPS },
      async send(action) {
        sent.push(action as unknown as Action);
        return { success: true, message_id: 'm' };
      },
    };
    const manager = new SessionManager({
      agent: { name: 'never', run: async () => ({ text: 'not expected' }) },
      history: { load: () => [], append: () => undefined, close: () => undefined },
      replies: new ReplyChannel(link, 'discord', pino({ level: 'silent' })),
      log: pino({ level: 'silent' }),
      keyOptions: {},
      externalDrainActive: () => true,
      shutdown: () => 'none',
      onActiveChange: () => undefined,
    });
    const source = {
      platform: 'discord',
      chat_id: 'chan-9',
      chat_type: 'group',
      scope_id: 'guild-7',
      user_id: 'user-3',
    };
    const foreign = MessageEventSchema.parse({
      text: '/yes',
      message_type: 'command',
      message_id: 'press-1',
      prompt_response: { prompt_id: 'ffffff.00000000', option_id: 'yes', prompt_message_id: 'pm1' },
      source: { ...source, message_id: 'pm1' },
    });
    expect(manager.handleInbound(foreign, { followUpKind: DISCORD_INTERACTION_KIND })).toBe('accepted');
    const command = MessageEventSchema.parse({
      text: '/status',
      message_type: 'command',
      message_id: 'i-1',
      source,
    });
    manager.handleInbound(command, { followUpKind: DISCORD_INTERACTION_KIND });
    await until(() => sent.length >= 1 || undefined, 5_000, 'the refusal');
    expect(sent).toEqual([
      {
        op: 'follow_up',
        session_key: SESSION,
        kind: DISCORD_INTERACTION_KIND,
        content: TEXTS.drainRefusal,
        metadata: { scope_id: 'guild-7', user_id: 'user-3' },
      },
    ]);
  });

  it('keeps how a journaled interaction is answered across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermes-inbox-followup-'));
    try {
      const path = join(dir, 'inbox.db');
      const inbox = SqliteInbox.open(path);
      const event = MessageEventSchema.parse({ text: '/x', source: { platform: 'discord', chat_id: 'c' } });
      inbox.accept('passthrough_buffer:b1', 'k', event, DISCORD_INTERACTION_KIND);
      inbox.accept('b2', 'k', event);
      await inbox.committed();
      inbox.close();
      const reopened = SqliteInbox.open(path);
      expect(reopened.recover().pending.map((entry) => entry.followUpKind)).toEqual([
        DISCORD_INTERACTION_KIND,
        undefined,
      ]);
      reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
