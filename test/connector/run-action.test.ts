/**
 * Ops are dispatched in one place (issue #14 §4): `runAction` is the only switch over ops, used by
 * the OpDispatcher and by an instance running an op another one forwarded; the cluster adapter
 * forwards every member of `PlatformAdapter`, so an op added to an adapter reaches it through the
 * cluster path too. The fake adapters are typed `Required<PlatformAdapter>`: a member added to the
 * interface does not compile here until the fake has it, and the loops below then check it.
 */
import { describe, expect, it } from 'vitest';
import { type AdapterAction, OP_METHODS, runAction } from '../../src/connector/platforms/run-action.js';
import type { PlatformAdapter } from '../../src/connector/platforms/types.js';
import { type OutboundResult, parseOutboundAction, placeholderDescriptor } from '../../src/protocol/index.js';

/** One valid action per adapter op; a new op does not compile here until it has one. */
const SAMPLES: { [Op in AdapterAction['op']]: Extract<AdapterAction, { op: Op }> } = {
  send: { op: 'send', chat_id: 'c1', content: 'hi', reply_to: null, metadata: {} },
  edit: { op: 'edit', chat_id: 'c1', message_id: 'm1', content: 'hi!', metadata: {} },
  typing: { op: 'typing', chat_id: 'c1', metadata: {} },
  get_chat_info: { op: 'get_chat_info', chat_id: 'c1' },
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
    holdsChat: record('holdsChat', holds),
    exclusiveLease: record('exclusiveLease', `lease:${name}`),
    registerRoutes: record('registerRoutes', undefined),
    handleUpgrade: record('handleUpgrade', false),
  };
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
