import { failedResult, type OutboundAction, type OutboundResult } from '../../protocol/index.js';
import type { PlatformAdapter } from './types.js';

/** The actions a platform adapter runs: every op but `follow_up`, which no platform carries. */
export type AdapterAction = Exclude<OutboundAction, { op: 'follow_up' }>;

/**
 * The adapter method that runs each op. Adding an op to the protocol fails to compile here until
 * it names its method, and the cluster adapter routes exactly the methods listed here.
 */
export const OP_METHODS = {
  send: 'send',
  edit: 'edit',
  typing: 'typing',
  get_chat_info: 'getChatInfo',
  send_media: 'sendMedia',
  prompt: 'prompt',
  react: 'react',
  thread_create: 'createThread',
  thread_rename: 'renameThread',
} as const satisfies { [Op in AdapterAction['op']]: keyof PlatformAdapter };

/** An adapter member that runs an op. */
export type OpMethod = (typeof OP_METHODS)[keyof typeof OP_METHODS];

export const NO_FOLLOW_UP = 'no follow-up capability for this session';

/**
 * The one place an outbound action becomes an adapter call, on this instance or for another one
 * (a forwarded op). The switch is exhaustive over the protocol's ops: a new op does not compile
 * until it is handled here. An optional op the adapter lacks is a failed result, except
 * `get_chat_info`, which answers the reference default (name = chat id, type = dm).
 */
export async function runAction(adapter: PlatformAdapter, action: OutboundAction): Promise<OutboundResult> {
  switch (action.op) {
    case 'send':
      return adapter.send(action);
    case 'edit':
      return adapter.edit ? adapter.edit(action) : unsupported(action.op, adapter);
    case 'typing':
      return adapter.typing ? adapter.typing(action) : unsupported(action.op, adapter);
    case 'get_chat_info':
      return adapter.getChatInfo
        ? adapter.getChatInfo(action)
        : { success: true, chat_info: { name: action.chat_id, type: 'dm' } };
    case 'send_media':
      return adapter.sendMedia ? adapter.sendMedia(action) : unsupported(action.op, adapter);
    case 'prompt':
      return adapter.prompt ? adapter.prompt(action) : unsupported(action.op, adapter);
    case 'react':
      return adapter.react ? adapter.react(action) : unsupported(action.op, adapter);
    case 'thread_create':
      return adapter.createThread ? adapter.createThread(action) : unsupported(action.op, adapter);
    case 'thread_rename':
      return adapter.renameThread ? adapter.renameThread(action) : unsupported(action.op, adapter);
    case 'follow_up':
      return failedResult(NO_FOLLOW_UP);
  }
}

function unsupported(op: string, adapter: PlatformAdapter): OutboundResult {
  return failedResult(`${op} is not supported on ${adapter.name}`);
}
