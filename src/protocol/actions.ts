import { z } from 'zod';
import { describeZodError } from './errors.js';
import { WireId } from './event.js';
import { PROMPT_ID_PATTERN } from './prompts.js';

/** Outbound actions carried in `outbound.action` (reference §4.5), keyed by `op`. */

const metadata = z
  .record(z.string(), z.unknown())
  .nullish()
  .catch(undefined)
  .transform((v) => v ?? {});
const routing = {
  platform: z.string().optional().catch(undefined),
  botId: z.string().optional().catch(undefined),
};

export const SendActionSchema = z.object({
  op: z.literal('send'),
  chat_id: WireId,
  content: z.string(),
  reply_to: z
    .union([z.string(), z.number(), z.null()])
    .optional()
    .transform((v) => (v === null || v === undefined ? null : String(v))),
  metadata,
  ...routing,
});

export const EditActionSchema = z.object({
  op: z.literal('edit'),
  chat_id: WireId,
  message_id: WireId,
  content: z.string(),
  metadata,
  ...routing,
});

/** `content: ""` means "clear the indicator" in later connectors. */
export const TypingActionSchema = z.object({
  op: z.literal('typing'),
  chat_id: WireId,
  content: z.string().optional(),
  // Carries e.g. a forum `thread_id` so the indicator shows in the right topic.
  metadata,
  ...routing,
});

export const FollowUpActionSchema = z.object({
  op: z.literal('follow_up'),
  session_key: z.string().min(1),
  kind: z.string().min(1),
  content: z.string(),
  metadata,
  ...routing,
});

/** What `send_media` can send (current §7.2). */
export const MEDIA_KINDS = ['image', 'voice', 'audio', 'video', 'document'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];

/**
 * A file to the chat (current §7.2): `source_url` is a `/relay/media/{id}` re-host of this
 * connector or a public `https` URL, never a local path; `content` is the caption.
 */
export const SendMediaActionSchema = z.object({
  op: z.literal('send_media'),
  chat_id: WireId,
  media_kind: z.enum(MEDIA_KINDS),
  source_url: z.string().min(1).max(2048),
  content: z.string().max(4096).catch('').default(''),
  reply_to: z
    .union([z.string(), z.number(), z.null()])
    .optional()
    .transform((v) => (v === null || v === undefined ? null : String(v))),
  filename: z.string().max(255).optional().catch(undefined),
  metadata,
  ...routing,
});

/** A choice put to the user as buttons (current §7.4); a press comes back as `prompt_response`. */
export const PromptActionSchema = z.object({
  op: z.literal('prompt'),
  chat_id: WireId,
  content: z.string().max(4096),
  prompt_kind: z.enum(['approval', 'clarify', 'choice']).catch('choice'),
  prompt_id: z.string().regex(PROMPT_ID_PATTERN, 'must be 1–32 of A-Z a-z 0-9 _ . -'),
  options: z
    .array(
      z.object({
        id: z.string().regex(PROMPT_ID_PATTERN, 'must be 1–32 of A-Z a-z 0-9 _ . -'),
        label: z.string().min(1).max(200),
        style: z.enum(['primary', 'success', 'danger', 'secondary']).optional().catch(undefined),
      }),
    )
    .min(1)
    .max(25),
  reply_to: z
    .union([z.string(), z.number(), z.null()])
    .optional()
    .transform((v) => (v === null || v === undefined ? null : String(v))),
  timeout_s: z.number().int().positive().optional().catch(undefined),
  metadata,
  ...routing,
});

/** A reaction on a message (current §7.5); `remove` takes it away. Best effort. */
export const ReactActionSchema = z.object({
  op: z.literal('react'),
  chat_id: WireId,
  message_id: WireId,
  emoji: z.string().min(1).max(32),
  remove: z.boolean().catch(false).default(false),
  metadata,
  ...routing,
});

const threadName = z
  .string()
  .transform((v) => v.replace(/\s+/g, ' ').trim())
  .pipe(z.string().min(1).max(100));

/** A new thread under `chat_id` (current §7.6); the result carries `thread_id`. */
export const ThreadCreateActionSchema = z.object({
  op: z.literal('thread_create'),
  chat_id: WireId,
  thread_name: threadName.catch('handoff').default('handoff'),
  message_id: WireId.optional().catch(undefined),
  metadata,
  ...routing,
});

/** Rename thread `message_id` (current §7.6), optionally only if it still has a given name. */
export const ThreadRenameActionSchema = z.object({
  op: z.literal('thread_rename'),
  chat_id: WireId,
  message_id: WireId,
  thread_name: threadName,
  // A guard that cannot be read refuses the op: dropping it would rename unguarded.
  only_if_current_name: z.string().max(100).optional(),
  only_if_connector_created: z.boolean().optional(),
  metadata,
  ...routing,
});

export const GetChatInfoActionSchema = z.object({
  op: z.literal('get_chat_info'),
  chat_id: WireId,
  ...routing,
});

export const OutboundActionSchema = z.discriminatedUnion('op', [
  SendActionSchema,
  EditActionSchema,
  TypingActionSchema,
  FollowUpActionSchema,
  GetChatInfoActionSchema,
  SendMediaActionSchema,
  PromptActionSchema,
  ReactActionSchema,
  ThreadCreateActionSchema,
  ThreadRenameActionSchema,
]);

export type SendAction = z.output<typeof SendActionSchema>;
export type EditAction = z.output<typeof EditActionSchema>;
export type TypingAction = z.output<typeof TypingActionSchema>;
export type FollowUpAction = z.output<typeof FollowUpActionSchema>;
export type GetChatInfoAction = z.output<typeof GetChatInfoActionSchema>;
export type SendMediaAction = z.output<typeof SendMediaActionSchema>;
export type PromptAction = z.output<typeof PromptActionSchema>;
export type ReactAction = z.output<typeof ReactActionSchema>;
export type ThreadCreateAction = z.output<typeof ThreadCreateActionSchema>;
export type ThreadRenameAction = z.output<typeof ThreadRenameActionSchema>;
export type OutboundAction = z.output<typeof OutboundActionSchema>;
export type OutboundActionInput = z.input<typeof OutboundActionSchema>;

const schemasByOp: Record<string, z.ZodType> = {
  send: SendActionSchema,
  edit: EditActionSchema,
  typing: TypingActionSchema,
  follow_up: FollowUpActionSchema,
  get_chat_info: GetChatInfoActionSchema,
  send_media: SendMediaActionSchema,
  prompt: PromptActionSchema,
  react: ReactActionSchema,
  thread_create: ThreadCreateActionSchema,
  thread_rename: ThreadRenameActionSchema,
};

export type ActionParse =
  | { ok: true; action: OutboundAction }
  | { ok: false; op: string | undefined; error: string };

/** Validate an action. An unknown op is an error result, never an exception. */
export function parseOutboundAction(value: unknown): ActionParse {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, op: undefined, error: 'action must be a JSON object' };
  }
  const op = (value as { op?: unknown }).op;
  if (typeof op !== 'string') return { ok: false, op: undefined, error: 'action.op must be a string' };
  // Own keys only: `toString`, `constructor` and friends are unknown ops, not prototype methods.
  const schema = Object.hasOwn(schemasByOp, op) ? schemasByOp[op] : undefined;
  if (!schema) return { ok: false, op, error: `unsupported op: ${op.slice(0, 64)}` };
  const parsed = schema.safeParse(value);
  return parsed.success
    ? { ok: true, action: parsed.data as OutboundAction }
    : { ok: false, op, error: `invalid ${op} action: ${describeZodError(parsed.error)}` };
}

/**
 * `outbound_result.result`. One loose shape for every op: `get_chat_info` answers either
 * `{chat_info:{name,type}}` or top-level `{name,type}`; later connectors add `ambiguous`.
 */
export const OutboundResultSchema = z.looseObject({
  success: z.boolean().optional(),
  message_id: WireId.optional().catch(undefined),
  error: z.string().optional().catch(undefined),
  ambiguous: z.boolean().optional().catch(undefined),
  /** A machine-readable failure kind, e.g. {@link EGRESS_DECLINED_CODE}. */
  code: z.string().optional().catch(undefined),
  chat_info: z
    .looseObject({ name: z.string().optional(), type: z.string().optional() })
    .optional()
    .catch(undefined),
  name: z.string().optional().catch(undefined),
  type: z.string().optional().catch(undefined),
});

export type OutboundResult = z.output<typeof OutboundResultSchema>;

export function failedResult(error: string, extra: { ambiguous?: boolean } = {}): OutboundResult {
  return { success: false, error, ...extra };
}

/** The `code` of a connector's egress refusal (current §7.1). */
export const EGRESS_DECLINED_CODE = 'egress_declined';

/**
 * The `code` of an op refused because its chat is rate limited by the platform and the wait would
 * outlast the op timeout (our addition: the contract has the open `code` field but no such value).
 * Definite — nothing was sent, never `ambiguous` — with the platform's wait in `retry_after` seconds.
 */
export const RATE_LIMITED_CODE = 'rate_limited';

/**
 * The connector's refusal of an op on a chat that is not the gateway's to act on: one uniform text,
 * so it tells nothing about whose the chat is (current §7.1).
 */
export function egressDeclined(platform: string): OutboundResult {
  return {
    success: false,
    code: EGRESS_DECLINED_CODE,
    error: `${platform} egress declined: target is not an approved destination for this connection`,
  };
}

/**
 * A definite refusal: the code, or the text `egress declined:` in any case. A result marked
 * `ambiguous` is never one (the op may have run). Current §14 case 41.
 */
export function isEgressDecline(result: OutboundResult): boolean {
  if (result.success !== false || result.ambiguous === true) return false;
  return result.code === EGRESS_DECLINED_CODE || /egress declined:/i.test(result.error ?? '');
}

export interface ChatInfo {
  name: string;
  type: string;
}

/** Gateway reading of a `get_chat_info` result (reference §4.5): defaults name=chat_id, type=dm. */
export function readChatInfo(result: OutboundResult, chatId: string): ChatInfo {
  const info = result.chat_info ?? result;
  return { name: info.name || chatId, type: info.type || 'dm' };
}
