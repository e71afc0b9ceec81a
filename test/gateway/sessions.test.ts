import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import {
  type Agent,
  type AgentAction,
  type AgentTurnInput,
  abortError,
  type ConversationMessage,
  type HistoryStore,
} from '../../src/gateway/agents/types.js';
import type { InboxJournal } from '../../src/gateway/inbox.js';
import { ACTION_TEXTS, type OutboundLink, ReplyChannel } from '../../src/gateway/replies.js';
import { GatewayStoppingError, SessionManager, TEXTS } from '../../src/gateway/sessions.js';
import {
  type CapabilityDescriptor,
  MessageEventSchema,
  type OutboundResult,
  placeholderDescriptor,
} from '../../src/protocol/index.js';
import { until } from '../support/poll.js';

/** SessionManager and streamed replies against a recording link and a controllable agent. */

class RecordingLink implements OutboundLink {
  readonly actions: Record<string, unknown>[] = [];
  private counter = 0;
  constructor(public descriptor: CapabilityDescriptor | undefined) {}
  async send(action: Record<string, unknown>): Promise<OutboundResult> {
    this.actions.push(action);
    return { success: true, message_id: action.op === 'send' ? `m${++this.counter}` : undefined };
  }
  sent(): string[] {
    return this.actions.filter((a) => a.op === 'send').map((a) => a.content as string);
  }
}

class ManualAgent implements Agent {
  readonly name = 'manual';
  readonly calls: AgentTurnInput[] = [];
  private readonly resolvers: ((text: string) => void)[] = [];
  async run(input: AgentTurnInput) {
    this.calls.push(input);
    return new Promise<{ text: string }>((resolve, reject) => {
      input.signal.addEventListener('abort', () => reject(abortError()));
      this.resolvers.push((text) => resolve({ text }));
    });
  }
  finish(index: number, text: string) {
    this.resolvers[index]?.(text);
  }
}

class MemoryHistory implements HistoryStore {
  readonly data = new Map<string, ConversationMessage[]>();
  load(key: string, limit: number) {
    return (this.data.get(key) ?? []).slice(-limit);
  }
  append(key: string, messages: ConversationMessage[]) {
    this.data.set(key, [...(this.data.get(key) ?? []), ...messages]);
  }
  close() {}
}

function event(text: string, chat = 'c1', user = 'u1') {
  return MessageEventSchema.parse({
    text,
    message_id: `in-${text}`,
    source: { platform: 'webchat', chat_id: chat, chat_type: 'dm', user_id: user },
  });
}

function setup(
  options: {
    drain?: boolean;
    shutdown?: 'none' | 'stopping' | 'restarting';
    descriptor?: CapabilityDescriptor;
  } = {},
) {
  const link = new RecordingLink(
    options.descriptor ?? { ...placeholderDescriptor('webchat'), supports_edit: false },
  );
  const agent = new ManualAgent();
  const history = new MemoryHistory();
  const active: number[] = [];
  const state = {
    drain: options.drain ?? false,
    shutdown: options.shutdown ?? ('none' as 'none' | 'stopping' | 'restarting'),
  };
  const manager = new SessionManager({
    agent,
    history,
    replies: new ReplyChannel(link, 'webchat', pino({ level: 'silent' })),
    log: pino({ level: 'silent' }),
    keyOptions: {},
    externalDrainActive: () => state.drain,
    shutdown: () => state.shutdown,
    onActiveChange: (n) => active.push(n),
  });
  return { link, agent, history, manager, active, state };
}

describe('SessionManager', () => {
  it('runs one turn per session and queues the rest in order', async () => {
    const { agent, manager, link, history } = setup();
    manager.handleInbound(event('first'));
    manager.handleInbound(event('second'));
    manager.handleInbound(event('other', 'c2'));
    expect(manager.activeCount).toBe(2);
    await until(() => agent.calls.length === 2);
    expect(agent.calls.map((c) => c.message.content)).toEqual(['first', 'other']);
    agent.finish(0, 'reply one');
    await until(() => agent.calls.length === 3);
    expect(agent.calls[2]?.message.content).toBe('second');
    expect(agent.calls[2]?.history).toEqual([
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'reply one' },
    ]);
    agent.finish(1, 'reply other');
    agent.finish(2, 'reply two');
    await until(() => manager.activeCount === 0);
    expect(link.sent()).toEqual(['reply one', 'reply other', 'reply two']);
    expect(history.data.size).toBe(2);
  });

  it('skips loading history for an agent that says it reads none, and still appends the turn', async () => {
    const { agent, manager, history } = setup();
    let loads = 0;
    const load = history.load.bind(history);
    history.load = (key, limit) => {
      loads += 1;
      return load(key, limit);
    };
    manager.handleInbound(event('first'));
    await until(() => agent.calls.length === 1);
    expect(loads).toBe(1);
    agent.finish(0, 'one');
    await until(() => manager.activeCount === 0);
    Object.defineProperty(agent, 'usesHistory', { value: false });
    manager.handleInbound(event('second'));
    await until(() => agent.calls.length === 2);
    expect(loads).toBe(1);
    expect(agent.calls[1]?.history).toEqual([]);
    agent.finish(1, 'two');
    await until(() => manager.activeCount === 0);
    expect(history.data.get([...history.data.keys()][0] as string)).toHaveLength(4);
  });

  it('replies carry the discriminators learned from the inbound: user_id for a DM, scope_id and user_id in a guild (current §14 case 28)', async () => {
    const { agent, manager, link } = setup();
    manager.handleInbound(
      MessageEventSchema.parse({
        text: 'dm',
        message_id: 'in-dm',
        source: { platform: 'discord', chat_id: 'dm-1', chat_type: 'dm', user_id: 'user-42' },
      }),
    );
    manager.handleInbound(
      MessageEventSchema.parse({
        text: 'guild',
        message_id: 'in-guild',
        source: {
          platform: 'discord',
          chat_id: 'chan-1',
          chat_type: 'group',
          user_id: 'user-42',
          scope_id: 'scope-9',
          thread_id: 'th-1',
        },
      }),
    );
    await until(() => agent.calls.length === 2);
    agent.finish(0, 'to the dm');
    agent.finish(1, 'to the guild');
    await until(() => link.sent().length === 2);
    const metadataOf = (chat: string) =>
      link.actions.find((a) => a.op === 'send' && a.chat_id === chat)?.metadata;
    expect(metadataOf('dm-1')).toEqual({ user_id: 'user-42' });
    expect(metadataOf('chan-1')).toEqual({ thread_id: 'th-1', scope_id: 'scope-9', user_id: 'user-42' });
  });

  it('/stop cancels exactly that session and says so', async () => {
    const { agent, manager, link } = setup();
    manager.handleInbound(event('long', 'c1'));
    manager.handleInbound(event('sibling', 'c2'));
    await until(() => agent.calls.length === 2);
    manager.handleInbound(event('/stop', 'c1'));
    await until(() => link.sent().includes(TEXTS.stopped));
    await until(() => manager.activeCount === 1);
    expect(agent.calls[0]?.signal.aborted).toBe(true);
    expect(agent.calls[1]?.signal.aborted).toBe(false);
    manager.handleInbound(event('/stop', 'c3'));
    await until(() => link.sent().includes(TEXTS.nothingToStop));
  });

  it('interrupt deliveries cancel one session by key', async () => {
    const { agent, manager } = setup();
    manager.handleInbound(event('work', 'c9'));
    await until(() => agent.calls.length === 1);
    expect(manager.interrupt('agent:main:webchat:dm:nope')).toBe(false);
    expect(manager.interrupt(manager.sessionKeyOf(event('x', 'c9')))).toBe(true);
    await until(() => manager.activeCount === 0);
  });

  it('external drain refuses new turns with the exact text, lets the running turn finish, and refuses what queued behind it (#18)', async () => {
    const { agent, manager, link, state } = setup();
    manager.handleInbound(event('running', 'c1'));
    await until(() => agent.calls.length === 1);
    state.drain = true;
    manager.handleInbound(event('new', 'c2'));
    manager.handleInbound(event('queued', 'c1'));
    await until(() => link.sent().includes(TEXTS.drainRefusal));
    expect(agent.calls.length).toBe(1);
    manager.handleInbound(event('internal', 'c3'), { internal: true });
    await until(() => agent.calls.length === 2);
    agent.finish(0, 'done');
    // The running turn's answer, then the queued message refused like any new turn.
    await until(() =>
      link.sent().filter((text) => text === TEXTS.drainRefusal).length === 2 ? true : undefined,
    );
    const sent = link.sent();
    expect(sent.indexOf('done')).toBeLessThan(sent.lastIndexOf(TEXTS.drainRefusal));
    expect(agent.calls.map((call) => call.message.content)).toEqual(['running', 'internal']);
    // Drain cancelled: the next message is a turn again.
    state.drain = false;
    agent.finish(1, 'ok');
    manager.handleInbound(event('after the drain', 'c1'));
    await until(() => agent.calls.length === 3);
    expect(agent.calls[2]?.message.content).toBe('after the drain');
  });

  it('while shutting down, new deliveries are refused with an error so the connector keeps them', () => {
    const { manager } = setup({ shutdown: 'stopping' });
    expect(() => manager.handleInbound(event('late'))).toThrow(GatewayStoppingError);
  });

  it('waitIdle reports whether turns finished in time', async () => {
    const { agent, manager } = setup();
    manager.handleInbound(event('slow'));
    await until(() => agent.calls.length === 1);
    expect(await manager.waitIdle(20)).toBe(false);
    agent.finish(0, 'ok');
    expect(await manager.waitIdle(1_000)).toBe(true);
  });
});

describe('streamed replies', () => {
  it('streams into one message with edits when the platform supports them, and splits what outgrows it', async () => {
    const descriptor = {
      ...placeholderDescriptor('webchat'),
      supports_edit: true,
      max_message_length: 50,
      supported_ops: ['send', 'edit'],
    };
    const { agent, manager, link } = setup({ descriptor });
    manager.handleInbound(event('go'));
    await until(() => agent.calls.length === 1);
    agent.calls[0]?.onProgress?.('Hello');
    await until(() => link.sent().length === 1);
    agent.calls[0]?.onProgress?.('Hello there');
    const final = `Hello there. ${'word '.repeat(20)}`.trim();
    agent.finish(0, final);
    await until(() => manager.activeCount === 0);
    const edits = link.actions.filter((a) => a.op === 'edit');
    expect(edits.length).toBeGreaterThanOrEqual(1);
    expect(edits.every((e) => e.message_id === 'm1')).toBe(true);
    const shown = [edits.at(-1)?.content as string, ...link.sent().slice(1)];
    for (const chunk of shown) expect(chunk.length).toBeLessThanOrEqual(50);
    expect(shown.length).toBeGreaterThan(1);
  });
});

describe('SessionManager and the durable inbox', () => {
  class RecordingJournal {
    readonly log: string[] = [];
    private next = 0;
    accept() {
      this.next += 1;
      this.log.push(`accept ${this.next}`);
      return this.next;
    }
    started(id: number) {
      this.log.push(`started ${id}`);
    }
    done(id: number) {
      this.log.push(`done ${id}`);
    }
    committed(): Promise<void> {
      return Promise.resolve();
    }
  }

  function withJournal<J extends InboxJournal>(agent: Agent, journal: J) {
    const manager = new SessionManager({
      agent,
      history: new MemoryHistory(),
      replies: new ReplyChannel(
        new RecordingLink(placeholderDescriptor('webchat')),
        'webchat',
        pino({ level: 'silent' }),
      ),
      log: pino({ level: 'silent' }),
      keyOptions: {},
      externalDrainActive: () => false,
      shutdown: () => 'none',
      onActiveChange: () => undefined,
      journal,
    });
    return { journal, manager };
  }

  it('hands the agent an event only once its inbox row is committed, and never when the commit fails', async () => {
    const commits: { resolve: () => void; reject: (error: Error) => void }[] = [];
    class HeldJournal extends RecordingJournal {
      override committed(): Promise<void> {
        return new Promise((resolve, reject) => commits.push({ resolve, reject }));
      }
    }
    const agent = new ManualAgent();
    const { manager } = withJournal(agent, new HeldJournal());
    manager.handleInbound(event('kept', 'c1'));
    manager.handleInbound(event('lost commit', 'c2'));
    expect(manager.activeCount).toBe(2);
    // Journaled but not committed: a crash now must find no turn begun.
    await new Promise((resolve) => setImmediate(resolve));
    expect(agent.calls).toHaveLength(0);
    commits[0]?.resolve();
    commits[1]?.reject(new Error('disk I/O error'));
    await until(() => agent.calls.length === 1);
    expect(agent.calls[0]?.message.content).toBe('kept');
    await until(() => manager.activeCount === 1);
    expect(agent.calls).toHaveLength(1);
    agent.finish(0, 'done');
    await until(() => manager.activeCount === 0);
  });

  it('an agent that reports the handover: the turn counts as started only when it is handed over', async () => {
    let handOver: (() => void) | undefined;
    let finish: ((text: string) => void) | undefined;
    const agent: Agent = {
      name: 'piped',
      reportsHandover: true,
      run: (input) =>
        new Promise((resolve) => {
          handOver = input.onHandedOver;
          finish = (text) => resolve({ text });
        }),
    };
    const { journal, manager } = withJournal(agent, new RecordingJournal());
    manager.handleInbound(event('hello'));
    await until(() => handOver !== undefined);
    // Running but not handed over: a crash now leaves it pending, so it is replayed.
    expect(journal.log).toEqual(['accept 1']);
    handOver?.();
    handOver?.();
    expect(journal.log).toEqual(['accept 1', 'started 1']);
    finish?.('hi');
    await until(() => journal.log.includes('done 1'));
  });

  it('any other agent: the turn counts as started when the agent is called', async () => {
    const agent = new ManualAgent();
    const { journal, manager } = withJournal(agent, new RecordingJournal());
    manager.handleInbound(event('hello'));
    await until(() => agent.calls.length === 1);
    expect(journal.log).toEqual(['accept 1', 'started 1']);
    agent.finish(0, 'hi');
    await until(() => journal.log.includes('done 1'));
  });
});

describe('egress declines (current §7.1; §14 case 40)', () => {
  const DECLINE = {
    success: false,
    code: 'egress_declined',
    error: 'discord egress declined: target is not an approved destination for this connection',
  };
  const target = { chatId: 'chan-1', replyTo: null, metadata: {} };

  function decliningLink(declineOps: string[]) {
    const link = new RecordingLink({ ...placeholderDescriptor('discord'), supports_edit: true });
    const send = link.send.bind(link);
    link.send = async (action: Record<string, unknown>) => {
      const result = await send(action);
      return declineOps.includes(String(action.op)) ? DECLINE : result;
    };
    return link;
  }

  it('a declined send reports the error once and sends no further chunk or other op', async () => {
    const link = decliningLink(['send']);
    const warnings: unknown[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
    const channel = new ReplyChannel(link, 'discord', log);
    const result = await channel.sendText(target, 'x'.repeat(9_000));
    expect(result).toEqual(DECLINE);
    expect(link.actions.map((a) => a.op)).toEqual(['send']);
    expect(warnings).toHaveLength(1);
  });

  it('a declined final edit of a streamed reply is not downgraded into a plain send', async () => {
    const link = decliningLink(['edit']);
    const channel = new ReplyChannel(link, 'discord', pino({ level: 'silent' }));
    const stream = channel.stream(target);
    stream.update('partial');
    await until(() => link.actions.length === 1);
    await stream.finish('the whole answer');
    expect(link.actions.map((a) => a.op)).toEqual(['send', 'edit']);
  });
});

describe('agent actions (current §6 gates, §7.2–§7.5)', () => {
  const target = { chatId: 'c1', replyTo: 'in-1', metadata: {} };
  const inbound = MessageEventSchema.parse({
    text: 'x',
    message_id: 'in-1',
    source: { platform: 'telegram', chat_id: 'c1' },
  });
  const png = { bytes: Buffer.from('png bytes'), filename: 'a.png', mime: 'image/png' };
  const all: AgentAction[] = [
    { kind: 'media', mediaKind: 'image', file: png, caption: 'a picture' },
    {
      kind: 'media',
      mediaKind: 'document',
      file: { url: 'https://files.example/r.pdf' },
      caption: 'the report',
    },
    {
      kind: 'prompt',
      text: 'Ship it?',
      options: [
        { id: 'yes', label: 'Yes' },
        { id: 'no', label: 'No' },
      ],
    },
    { kind: 'react', emoji: '👍' },
  ];
  const uploads: string[] = [];
  const uploader = {
    upload: async (file: { filename: string }) => {
      uploads.push(file.filename);
      return { ok: true as const, url: `http://relay.test/relay/media/${'a'.repeat(32)}` };
    },
  };

  it('uses each op the descriptor advertises: an upload then send_media, a URL as it is, prompt, react', async () => {
    const link = new RecordingLink({
      ...placeholderDescriptor('telegram'),
      supported_ops: ['send', 'edit', 'typing', 'send_media', 'prompt', 'react'],
    });
    const channel = new ReplyChannel(link, 'telegram', pino({ level: 'silent' }), uploader);
    await channel.perform(target, inbound, all);
    expect(link.actions.map((a) => a.op)).toEqual(['send_media', 'send_media', 'prompt', 'react']);
    expect(link.actions[0]).toMatchObject({
      media_kind: 'image',
      source_url: `http://relay.test/relay/media/${'a'.repeat(32)}`,
      content: 'a picture',
      filename: 'a.png',
    });
    expect(link.actions[1]).toMatchObject({
      source_url: 'https://files.example/r.pdf',
      content: 'the report',
    });
    expect(link.actions[2]).toMatchObject({
      content: 'Ship it?',
      options: [
        { id: 'yes', label: 'Yes' },
        { id: 'no', label: 'No' },
      ],
      timeout_s: 3600,
    });
    expect(String(link.actions[2]?.prompt_id)).toMatch(/^[0-9a-f]{6}\.[0-9a-f]{8}$/);
    expect(link.actions[3]).toMatchObject({ message_id: 'in-1', emoji: '👍', remove: false });
    expect(uploads).toEqual(['a.png']);
    expect(channel.promptAnswered(String(link.actions[2]?.prompt_id))).toBe('waiting');
    // A repeat, or another gateway's prompt (another nonce), is ignored.
    expect(channel.promptAnswered(String(link.actions[2]?.prompt_id))).toBe('ignore');
    expect(channel.promptAnswered('ffffff.00000000')).toBe('ignore');
    channel.close();
  });

  it('says in text what a chat without those ops cannot show, and sends nothing it does not advertise', async () => {
    const link = new RecordingLink({
      ...placeholderDescriptor('webchat'),
      supported_ops: ['send', 'edit', 'typing'],
    });
    const channel = new ReplyChannel(link, 'webchat', pino({ level: 'silent' }), uploader);
    uploads.length = 0;
    await channel.perform(target, inbound, all);
    expect(link.actions.map((a) => a.op)).toEqual(['send', 'send', 'send']);
    expect(link.sent()).toEqual([
      ACTION_TEXTS.cannotShowFiles('a.png'),
      'the report\nhttps://files.example/r.pdf',
      'Ship it?\n/yes — Yes\n/no — No',
    ]);
    expect(uploads).toEqual([]);
  });

  it('a thread: thread_create where advertised, else said in text', async () => {
    const forum = new RecordingLink({
      ...placeholderDescriptor('telegram'),
      supported_ops: ['send', 'thread_create'],
    });
    await new ReplyChannel(forum, 'telegram', pino({ level: 'silent' })).perform(target, inbound, [
      { kind: 'thread', name: 'Fix the build' },
    ]);
    expect(forum.actions).toEqual([
      expect.objectContaining({ op: 'thread_create', chat_id: 'c1', thread_name: 'Fix the build' }),
    ]);
    const flat = new RecordingLink({ ...placeholderDescriptor('webchat'), supported_ops: ['send'] });
    await new ReplyChannel(flat, 'webchat', pino({ level: 'silent' })).perform(target, inbound, [
      { kind: 'thread', name: 'Fix the build' },
    ]);
    expect(flat.sent()).toEqual([ACTION_TEXTS.noThreads]);
  });

  it('a prompt nobody answers says so after its timeout, and a late press is told it is too late', async () => {
    vi.useFakeTimers();
    try {
      const link = new RecordingLink({
        ...placeholderDescriptor('telegram'),
        supported_ops: ['send', 'prompt'],
      });
      const channel = new ReplyChannel(link, 'telegram', pino({ level: 'silent' }));
      await channel.perform(target, inbound, [
        { kind: 'prompt', text: 'Ship it?', options: [{ id: 'yes', label: 'Yes' }], timeoutSeconds: 60 },
      ]);
      const promptId = String(link.actions[0]?.prompt_id);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(link.sent()).toEqual([ACTION_TEXTS.noLongerWaiting('Ship it?')]);
      expect(channel.promptAnswered(promptId)).toBe('expired');
    } finally {
      vi.useRealTimers();
    }
  });
});
