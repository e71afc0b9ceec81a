/**
 * Ops are dispatched in one place (issue #14 §4): `runAction` is the only switch over ops, used by
 * the OpDispatcher and by an instance running an op another one forwarded; the cluster adapter
 * forwards every member of `PlatformAdapter`, so an op added to an adapter reaches it through the
 * cluster path too. The fake adapters are typed `Required<PlatformAdapter>`: a member added to the
 * interface does not compile here until the fake has it, and the loops below then check it.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ClusterBus, ClusterRequest } from '../../src/connector/cluster/bus.js';
import {
  CLUSTER_MEMBERS,
  clusterAdapter,
  runForwardedOp,
} from '../../src/connector/cluster/platform-routing.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import { OpDispatcher } from '../../src/connector/ops.js';
import { type AdapterAction, OP_METHODS, runAction } from '../../src/connector/platforms/run-action.js';
import type { PlatformAdapter, PlatformContext } from '../../src/connector/platforms/types.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import {
  encodeFrame,
  type OutboundResult,
  parseOutboundAction,
  placeholderDescriptor,
} from '../../src/protocol/index.js';

const log = pino({ level: 'silent' });

/** One valid action per adapter op; a new op does not compile here until it has one. */
const SAMPLES: { [Op in AdapterAction['op']]: Extract<AdapterAction, { op: Op }> } = {
  send: { op: 'send', chat_id: 'c1', content: 'hi', reply_to: null, metadata: {} },
  edit: { op: 'edit', chat_id: 'c1', message_id: 'm1', content: 'hi!', metadata: {} },
  typing: { op: 'typing', chat_id: 'c1', metadata: {} },
  get_chat_info: { op: 'get_chat_info', chat_id: 'c1' },
  send_media: {
    op: 'send_media',
    chat_id: 'c1',
    media_kind: 'image',
    source_url: 'https://files.example/cat.png',
    content: 'a cat',
    reply_to: null,
    metadata: {},
  },
  prompt: {
    op: 'prompt',
    chat_id: 'c1',
    content: 'go?',
    prompt_kind: 'approval',
    prompt_id: 'p1',
    options: [{ id: 'once', label: 'Yes' }],
    reply_to: null,
    metadata: {},
  },
  react: { op: 'react', chat_id: 'c1', message_id: 'm1', emoji: '👀', remove: false, metadata: {} },
  thread_create: { op: 'thread_create', chat_id: 'c1', thread_name: 'handoff', metadata: {} },
  thread_rename: {
    op: 'thread_rename',
    chat_id: 'c1',
    message_id: 't1',
    thread_name: 'Renamed',
    metadata: {},
  },
};

interface Call {
  member: string;
  self: unknown;
  args: unknown[];
}

/** An adapter with every member, recording each call (and what `this` was). */
function fullAdapter(name: string, holds: boolean, calls: Call[]): Required<PlatformAdapter> {
  const record = <R>(member: string, result: R) =>
    function (this: unknown, ...args: unknown[]): R {
      calls.push({ member, self: this, args });
      return result;
    };
  const { supported_ops: _, ...descriptor } = placeholderDescriptor(name);
  return {
    name,
    descriptor: record('descriptor', descriptor),
    start: record('start', Promise.resolve()),
    stop: record('stop', Promise.resolve()),
    send: record('send', Promise.resolve({ success: true, message_id: `${name}-sent` })),
    edit: record('edit', Promise.resolve({ success: true, message_id: `${name}-edited` })),
    typing: record('typing', Promise.resolve({ success: true })),
    getChatInfo: record(
      'getChatInfo',
      Promise.resolve({ success: true, chat_info: { name, type: 'group' } }),
    ),
    sendMedia: record('sendMedia', Promise.resolve({ success: true, message_id: `${name}-file` })),
    prompt: record('prompt', Promise.resolve({ success: true, message_id: `${name}-prompt` })),
    react: record('react', Promise.resolve({ success: true })),
    createThread: record('createThread', Promise.resolve({ success: true, thread_id: `${name}-thread` })),
    renameThread: record('renameThread', Promise.resolve({ success: true })),
    holdsChat: record('holdsChat', holds),
    exclusiveLease: record('exclusiveLease', `lease:${name}`),
    registerRoutes: record('registerRoutes', undefined),
    handleUpgrade: record('handleUpgrade', false),
    attach: record('attach', undefined),
    followUp: record('followUp', Promise.resolve({ success: true, message_id: `${name}-follow-up` })),
    registerCommands: record('registerCommands', Promise.resolve()),
    // Generic, so not through `record`: runs the op's work, as an adapter does.
    asOneOp<T>(this: unknown, chatId: string, work: () => Promise<T>): Promise<T> {
      calls.push({ member: 'asOneOp', self: this, args: [chatId, work] });
      return work();
    },
  };
}

/** The work `asOneOp` is given in the forwarding check (one function, so the args compare equal). */
const ONE_OP_WORK = async (): Promise<OutboundResult> => ({ success: true });

/** Two connector instances on one in-memory bus; `B` holds every chat. */
function cluster() {
  const handlers = new Map<string, (request: ClusterRequest) => Promise<unknown>>();
  const busOf = (instanceId: string): ClusterBus =>
    ({
      instanceId,
      chatOwner: async () => 'B',
      // Requests cross the bus as JSON, as with Redis.
      request: async (to: string, request: ClusterRequest) =>
        handlers.get(to)?.(JSON.parse(JSON.stringify(request)) as ClusterRequest),
      holdLease: async () => true,
      releaseLease: async () => undefined,
      claimChat: async () => undefined,
      releaseChat: async () => undefined,
    }) as Partial<ClusterBus> as ClusterBus;
  const options = (instanceId: string) => ({
    bus: busOf(instanceId),
    log,
    metrics: new ConnectorMetrics(),
    leaseCheckMs: 60_000,
  });
  return { handlers, options };
}

describe('runAction', () => {
  it('runs each op on its adapter method, with the action as given', async () => {
    const calls: Call[] = [];
    const adapter = fullAdapter('p', true, calls);
    for (const [op, method] of Object.entries(OP_METHODS)) {
      const action = SAMPLES[op as AdapterAction['op']];
      calls.length = 0;
      await runAction(adapter, action);
      expect(calls).toEqual([{ member: method, self: adapter, args: [action] }]);
    }
  });

  it('answers an op the adapter lacks as before, and follow_up with no capability', async () => {
    const send = async (): Promise<OutboundResult> => ({ success: true });
    const { supported_ops: _, ...descriptor } = placeholderDescriptor('bare');
    const bare: PlatformAdapter = {
      name: 'bare',
      descriptor: () => descriptor,
      start: async () => undefined,
      stop: async () => undefined,
      send,
    };
    expect(await runAction(bare, SAMPLES.edit)).toEqual({
      success: false,
      error: 'edit is not supported on bare',
    });
    expect(await runAction(bare, SAMPLES.typing)).toEqual({
      success: false,
      error: 'typing is not supported on bare',
    });
    expect(await runAction(bare, SAMPLES.get_chat_info)).toEqual({
      success: true,
      chat_info: { name: 'c1', type: 'dm' },
    });
    const followUp = parseOutboundAction({ op: 'follow_up', session_key: 'k', kind: 'x', content: '' });
    if (!followUp.ok) throw new Error(followUp.error);
    expect(await runAction(bare, followUp.action)).toEqual({
      success: false,
      error: 'no follow-up capability for this session',
    });
  });
});

describe('clusterAdapter', () => {
  it('forwards every member of the adapter to the inner one, except what it consumes', async () => {
    const calls: Call[] = [];
    const inner = fullAdapter('p', true, calls);
    const wrapped = clusterAdapter(inner, cluster().options('A')) as unknown as Record<string, unknown>;
    const context: PlatformContext = {
      ingest: async () => ({ ok: false, reason: 'no_route', message: '' }),
      log,
    };
    const argsFor = (member: string): unknown[] => {
      const op = Object.entries(OP_METHODS).find(([, method]) => method === member)?.[0];
      if (op) return [SAMPLES[op as AdapterAction['op']]];
      if (member === 'start') return [context];
      if (member === 'stop') return [];
      if (member === 'asOneOp') return ['c1', ONE_OP_WORK];
      return [`arg-${member}`];
    };
    // The one member not exposed: the cluster adapter runs the lease itself.
    const consumed = Object.entries(CLUSTER_MEMBERS).filter(([, how]) => how === 'consumed');
    expect(consumed.map(([member]) => member)).toEqual(['exclusiveLease']);
    for (const member of Object.keys(inner)) {
      const treatment = (CLUSTER_MEMBERS as Record<string, string>)[member];
      if (treatment === 'consumed') {
        expect(wrapped[member], member).toBeUndefined();
        continue;
      }
      const value = (inner as unknown as Record<string, unknown>)[member];
      if (typeof value !== 'function') {
        expect(wrapped[member], member).toBe(value);
        continue;
      }
      expect(typeof wrapped[member], `${member} is not forwarded`).toBe('function');
      calls.length = 0;
      await (wrapped[member] as (...args: unknown[]) => unknown)(...argsFor(member));
      const reached = calls.filter((call) => call.member === member);
      expect(reached, `${member} did not reach the inner adapter`).toHaveLength(1);
      expect(reached[0]?.self).toBe(inner);
      if (member === 'start') expect(reached[0]?.args[0]).toMatchObject({ ingest: context.ingest });
      else expect(reached[0]?.args).toEqual(argsFor(member));
    }
    await (wrapped.stop as () => Promise<void>)();
  });

  it('has an optional op exactly when the inner adapter has it, so the descriptor is the same', async () => {
    const { supported_ops: _, ...descriptor } = placeholderDescriptor('few');
    const few: PlatformAdapter = {
      name: 'few',
      descriptor: () => descriptor,
      start: async () => undefined,
      stop: async () => undefined,
      send: async () => ({ success: true }),
      typing: async () => ({ success: true }),
    };
    const wrapped = clusterAdapter(few, cluster().options('A'));
    expect(Object.keys(wrapped).sort()).toEqual(['descriptor', 'name', 'send', 'start', 'stop', 'typing']);
    const store = SqliteStore.open(':memory:');
    try {
      const dispatcher = (adapter: PlatformAdapter) =>
        new OpDispatcher(store, new Map([['few', adapter]]), 'few', new ConnectorMetrics(), log);
      expect(dispatcher(wrapped).descriptorFor('few')).toEqual(dispatcher(few).descriptorFor('few'));
      expect(dispatcher(wrapped).descriptorFor('few').supported_ops).toEqual(['send', 'typing']);
      // The handshake sends the frame encoded once per platform: the same bytes as encoding it each time.
      const ops = dispatcher(few);
      const line = ops.descriptorFrame('few');
      expect(line.line).toBe(encodeFrame({ type: 'descriptor', descriptor: ops.descriptorFor('few') }));
      expect(ops.descriptorFrame('few')).toBe(line);
    } finally {
      await store.close();
    }
  });

  it('runs every op on the instance holding the chat, through the bus and runForwardedOp', async () => {
    const { handlers, options } = cluster();
    const callsA: Call[] = [];
    const callsB: Call[] = [];
    const innerA = fullAdapter('p', false, callsA);
    const innerB = fullAdapter('p', true, callsB);
    handlers.set('B', async (request) =>
      request.type === 'platform_op'
        ? runForwardedOp(new Map([['p', innerB]]), request.platform, request.action)
        : undefined,
    );
    const onA = clusterAdapter(innerA, options('A'));
    for (const [op, method] of Object.entries(OP_METHODS)) {
      const action = SAMPLES[op as AdapterAction['op']];
      callsA.length = 0;
      callsB.length = 0;
      const result = await runAction(onA, action);
      const expected = await (innerB[method] as (a: AdapterAction) => Promise<OutboundResult>)(action);
      expect(result, op).toEqual(expected);
      // B ran it (once above for the expectation, once through the bus), A only asked holdsChat.
      expect(callsB.filter((call) => call.member === method)).toHaveLength(2);
      expect(callsB.find((call) => call.member === method)?.args).toEqual([action]);
      expect(callsA.map((call) => call.member)).toEqual(['holdsChat']);
    }
  });
});
