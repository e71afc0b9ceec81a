import type { APIAttachment, APIMessage, GatewayMessageCreateDispatchData } from 'discord-api-types/v10';
import {
  DISCORD_THREAD_CHANNEL_TYPES,
  type MessageEventInit,
  type MessageType,
  type SessionSourceInit,
} from '../../../protocol/index.js';
import type { InboundAttachment, PlatformInbound } from '../types.js';

/**
 * A Discord `MESSAGE_CREATE` as the relay's `MessageEvent` (current §5.4–5.5), pure: the channel
 * facts the dispatch lacks (is it a thread, its parent, its name) come from the adapter's cache.
 */

/** What the adapter knows of a channel. */
export interface DiscordChannelFacts {
  type?: number;
  name?: string;
  parentId?: string;
}

/** Discord's "is a voice message" message flag. */
const VOICE_MESSAGE_FLAG = 1 << 13;

/** An attachment to fetch from Discord's CDN (its URL is signed and short-lived: never logged). */
export interface DiscordFile {
  url: string;
  /** Bytes, as Discord says. */
  size?: number;
  kind: InboundAttachment['kind'];
  mime?: string;
  filename?: string;
}

export function discordFiles(message: Pick<APIMessage, 'attachments' | 'flags'>): DiscordFile[] {
  const voice = ((message.flags ?? 0) & VOICE_MESSAGE_FLAG) !== 0;
  return (message.attachments ?? []).map((attachment: APIAttachment) => {
    const mime = attachment.content_type ?? undefined;
    const kind: DiscordFile['kind'] = voice
      ? 'voice'
      : mime?.startsWith('image/')
        ? 'image'
        : mime?.startsWith('video/')
          ? 'video'
          : mime?.startsWith('audio/')
            ? 'audio'
            : 'document';
    return {
      url: attachment.url,
      ...(typeof attachment.size === 'number' ? { size: attachment.size } : {}),
      kind,
      ...(mime ? { mime } : {}),
      ...(attachment.filename ? { filename: attachment.filename } : {}),
    };
  });
}

const MESSAGE_TYPE_OF_KIND: Record<DiscordFile['kind'], MessageType> = {
  image: 'photo',
  voice: 'voice',
  audio: 'audio',
  video: 'video',
  document: 'document',
  sticker: 'sticker',
};

/** `<@id>` and `<@!id>` mentions of the bot, removed from the text the agent reads. */
function withoutMention(content: string, botUserId: string | undefined): string {
  if (!botUserId) return content;
  return content
    .replace(new RegExp(`<@!?${botUserId}>`, 'g'), '')
    .replace(/\s{2,}/g, ' ')
    .trim();
}

/**
 * The routed inbound of a message with the files to re-host, or undefined when there is nothing
 * for an agent (the bot's own message, a system message, no text and no file).
 *
 * - route key: the guild, or the DM channel outside a guild;
 * - `chat_type`: `dm` outside a guild, `thread` in a thread (`thread_id` = the thread,
 *   `parent_chat_id` = its channel), `group` elsewhere; `scope_id` = the guild;
 * - addressed (for `requireAddress`): a DM, a mention of the bot, or a reply to one of its messages.
 */
export function normaliseDiscordMessage(
  message: GatewayMessageCreateDispatchData,
  botUserId: string | undefined,
  channel: DiscordChannelFacts | undefined,
): (PlatformInbound & { files: DiscordFile[] }) | undefined {
  const author = message.author;
  if (botUserId && author.id === botUserId) return undefined;
  // 0 = default, 19 = reply; joins, pins, boosts and the like are not for an agent.
  if (message.type !== 0 && message.type !== 19) return undefined;
  const files = discordFiles(message);
  const text = withoutMention(message.content ?? '', botUserId);
  if (!text && files.length === 0) return undefined;

  const guildId = message.guild_id;
  const inThread = channel?.type !== undefined && DISCORD_THREAD_CHANNEL_TYPES.has(channel.type);
  const source: SessionSourceInit = {
    platform: 'discord',
    chat_id: message.channel_id,
    chat_type: !guildId ? 'dm' : inThread ? 'thread' : 'group',
    user_id: author.id,
    message_id: message.id,
    is_bot: author.bot === true,
    message_is_edit: false,
  };
  const userName = message.member?.nick || author.global_name || author.username;
  if (userName) source.user_name = userName;
  if (author.username) source.user_handle = author.username;
  if (channel?.name) source.chat_name = channel.name;
  if (guildId) source.scope_id = guildId;
  if (inThread) {
    source.thread_id = message.channel_id;
    if (channel?.parentId) source.parent_chat_id = channel.parentId;
  }

  const event: MessageEventInit = {
    text,
    message_type:
      text && files.length === 0
        ? text.startsWith('/')
          ? 'command'
          : 'text'
        : files[0]
          ? MESSAGE_TYPE_OF_KIND[files[0].kind]
          : 'text',
    message_id: message.id,
    source,
  };
  const referenced = message.referenced_message;
  const replyToId = message.message_reference?.message_id ?? referenced?.id;
  if (replyToId) {
    event.reply_to_message_id = replyToId;
    if (referenced) {
      const quoted = referenced.content;
      const quotedAuthor = referenced.author?.global_name || referenced.author?.username;
      event.reply_to = {
        ...(quoted ? { text: quoted } : {}),
        ...(quotedAuthor ? { author: quotedAuthor } : {}),
        is_own: botUserId !== undefined && referenced.author?.id === botUserId,
      };
    }
  }
  const mentioned = botUserId !== undefined && (message.mentions ?? []).some((user) => user.id === botUserId);
  const repliedToBot = botUserId !== undefined && referenced?.author?.id === botUserId;
  return {
    routeKey: guildId ?? message.channel_id,
    event,
    addressed: !guildId || mentioned || repliedToBot,
    files,
  };
}
