import { z } from 'zod';
import { withCompiledParser } from './compiled.js';
import { describeZodError } from './errors.js';

/**
 * Ids arrive as strings from the reference gateway but as numbers from some platforms (Telegram chat
 * ids); they are always strings once parsed. `null` and absent both mean "not set".
 */
export const WireId = z.union([z.string(), z.number()]).transform(String);
const optionalId = z
  .union([z.string(), z.number(), z.null()])
  .optional()
  .catch(undefined)
  .transform((v) => (v === null || v === undefined ? undefined : String(v)));
const optionalText = z
  .string()
  .nullish()
  .catch(undefined)
  .transform((v) => v ?? undefined);
const optionalBool = z.boolean().optional().catch(undefined);

/** SessionSource as zod interprets it: the reference the compiled fast path is tested against. */
export const SessionSourceDefinition = z.object({
  platform: z.string().catch('relay').default('relay'),
  chat_id: optionalId.transform((v) => v ?? ''),
  chat_type: z
    .string()
    .nullish()
    .catch(undefined)
    .transform((v) => v || 'dm'),
  chat_name: optionalText,
  user_id: optionalId,
  user_name: optionalText,
  thread_id: optionalId,
  chat_topic: optionalText,
  user_id_alt: optionalId,
  chat_id_alt: optionalId,
  guild_id: optionalId,
  scope_id: optionalId,
  parent_chat_id: optionalId,
  message_id: optionalId,
  is_bot: optionalBool,
  message_is_edit: optionalBool,
  one_to_one_verified: optionalBool,
  profile: optionalText,
  user_display_name: optionalText,
  user_handle: optionalText,
  auto_thread_created: optionalBool,
  auto_thread_initial_name: optionalText,
  prospective_thread_id: optionalId,
});

/**
 * SessionSource (June reference §7.2; current §5.5 adds profile, auto-thread and author fields),
 * with its compiled fast path (`./compiled.ts`).
 */
export const SessionSourceSchema = withCompiledParser(SessionSourceDefinition);

export type SessionSource = z.output<typeof SessionSourceSchema>;
/** What a connector builds; every field but the platform may be left out. */
export type SessionSourceInit = Partial<SessionSource> & { platform: string };

export const MESSAGE_TYPES = [
  'text',
  'location',
  'photo',
  'video',
  'audio',
  'voice',
  'document',
  'sticker',
  'command',
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];
const messageTypes: ReadonlySet<string> = new Set(MESSAGE_TYPES);

const MediaItemSchema = z.object({
  url: z.string(),
  kind: optionalText,
  mime: optionalText,
  size: z.number().optional().catch(undefined),
  filename: optionalText,
  caption: optionalText,
});
const ContextItemSchema = z.object({
  text: z.string().catch(''),
  source: z
    .object({ user_name: optionalText, user_id: optionalId })
    .catch({ user_name: undefined, user_id: undefined })
    .default({ user_name: undefined, user_id: undefined }),
});
export type MediaItem = z.output<typeof MediaItemSchema>;
export type ContextItem = z.output<typeof ContextItemSchema>;

/** MessageEvent as zod interprets it: the one definition, and the reference of the fast path. */
export const MessageEventDefinition = z.object({
  text: z.string().catch('').default(''),
  // `.optional()`: an absent key must read as `text`, not fail the whole event.
  message_type: z
    .unknown()
    .optional()
    .transform(
      (v): MessageType => (typeof v === 'string' && messageTypes.has(v) ? (v as MessageType) : 'text'),
    ),
  message_id: optionalId,
  reply_to_message_id: optionalId,
  media_urls: z.array(z.string()).catch([]).default([]),
  /** Per-attachment metadata, matched to `media_urls` by URL (current §5.4). */
  media: z.array(MediaItemSchema).optional().catch(undefined),
  reply_to: z
    .object({ text: optionalText, author: optionalText, is_own: optionalBool })
    .optional()
    .catch(undefined),
  /** Read-only channel context, oldest first; never triggers a turn. */
  context: z.array(ContextItemSchema).optional().catch(undefined),
  context_error: optionalBool,
  prompt_response: z
    .looseObject({
      prompt_id: z.string(),
      option_id: z.string(),
      label: optionalText,
      prompt_message_id: optionalId,
    })
    .optional()
    .catch(undefined),
  source: SessionSourceDefinition.catch(() => SessionSourceDefinition.parse({})).default(() =>
    SessionSourceDefinition.parse({}),
  ),
});

/**
 * `z.compile` refuses a `.catch()` whose value is a callback, which `source` needs (a fresh object
 * per event, never one shared). Its twin here: every field of SessionSource catches, so the object
 * rejects only a value that is not an object, and the catch then parses `{}` — exactly what parsing
 * `{}` in place of such a value gives; an absent `source` keeps the same default.
 */
const compilableSource = z
  .preprocess(
    (value) => (value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {}),
    SessionSourceDefinition,
  )
  .default(() => SessionSourceSchema.parse({}));

/**
 * MessageEvent wire form (June §7.1, current §5.4). Unknown message types read as `text`. Parses
 * through a compiled fast path (`./compiled.ts`) proven equal to the interpreted definition;
 * rejections and their messages are the definition's.
 */
/** The twin `z.compile` accepts (see `compilableSource`); frames that carry an event compile with it. */
export const COMPILABLE_MESSAGE_EVENT = MessageEventDefinition.extend({ source: compilableSource });

export const MessageEventSchema = withCompiledParser(MessageEventDefinition, COMPILABLE_MESSAGE_EVENT);

export type MessageEvent = z.output<typeof MessageEventSchema>;

export type EventParse = { ok: true; event: MessageEvent } | { ok: false; error: string };

export function parseMessageEvent(value: unknown): EventParse {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: 'event must be a JSON object' };
  }
  const parsed = MessageEventSchema.safeParse(value);
  return parsed.success
    ? { ok: true, event: parsed.data }
    : { ok: false, error: describeZodError(parsed.error) };
}

const ALWAYS_PRESENT = [
  'platform',
  'chat_id',
  'chat_name',
  'chat_type',
  'user_id',
  'user_name',
  'thread_id',
  'chat_topic',
] as const;
const WHEN_TRUTHY = [
  'user_id_alt',
  'chat_id_alt',
  'guild_id',
  'scope_id',
  'parent_chat_id',
  'message_id',
  'profile',
  'user_display_name',
  'user_handle',
  'auto_thread_initial_name',
  'prospective_thread_id',
] as const;

/**
 * The reference `to_dict` surface: eight keys always present (null when unset), the rest only when
 * truthy, and `is_bot`/`message_is_edit` always sent as booleans (the later wire).
 */
export function sessionSourceToWire(source: SessionSourceInit): Record<string, string | boolean | null> {
  const wire: Record<string, string | boolean | null> = {};
  for (const key of ALWAYS_PRESENT) {
    const value = source[key];
    wire[key] = value === undefined || value === null ? null : String(value);
  }
  wire.chat_type = source.chat_type || 'dm';
  for (const key of WHEN_TRUTHY) {
    const value = source[key];
    if (value) wire[key] = String(value);
  }
  wire.is_bot = source.is_bot === true;
  wire.message_is_edit = source.message_is_edit === true;
  if (source.auto_thread_created === true) wire.auto_thread_created = true;
  if (typeof source.one_to_one_verified === 'boolean') wire.one_to_one_verified = source.one_to_one_verified;
  return wire;
}

export interface MessageEventInit {
  text: string;
  message_type?: MessageType;
  message_id?: string;
  reply_to_message_id?: string;
  media_urls?: string[];
  media?: MediaItem[];
  reply_to?: { text?: string; author?: string; is_own?: boolean };
  context?: ContextItem[];
  /** A button of a prompt was pressed (current §7.4); `text` is then `/<option_id>`. */
  prompt_response?: { prompt_id: string; option_id: string; label?: string; prompt_message_id?: string };
  source: SessionSourceInit;
}

/** The wire form a connector puts in a delivery or `inbound` frame. */
export function messageEventToWire(event: MessageEventInit): Record<string, unknown> {
  const wire: Record<string, unknown> = {
    text: event.text,
    message_type: event.message_type ?? 'text',
  };
  if (event.message_id) wire.message_id = event.message_id;
  if (event.reply_to_message_id) wire.reply_to_message_id = event.reply_to_message_id;
  wire.media_urls = event.media_urls ?? [];
  if (event.media && event.media.length > 0) wire.media = event.media;
  if (event.reply_to) wire.reply_to = event.reply_to;
  if (event.context && event.context.length > 0) wire.context = event.context;
  if (event.prompt_response) wire.prompt_response = event.prompt_response;
  wire.source = sessionSourceToWire(event.source);
  return wire;
}
