import { z } from 'zod';
import type { MessageEventInit, SessionSourceInit } from './event.js';
import { parseJsonBytes, parseJsonText } from './json.js';
import { decodePromptToken } from './prompts.js';

/**
 * A Discord interaction as the relay reads it (current §12): the connector forwards it as a
 * `passthrough_forward` with the token removed, and both ends derive the same `MessageEvent` from
 * it — the gateway to run a turn, the connector to bind the interaction token to the session the
 * gateway will name in `follow_up`. Only the fields the relay uses are read; the rest is kept.
 */

/** Interaction types (Discord API). */
export const DISCORD_INTERACTION = {
  ping: 1,
  applicationCommand: 2,
  messageComponent: 3,
  autocomplete: 4,
  modalSubmit: 5,
} as const;

/** Channel types that are threads (announcement, public, private). */
const THREAD_CHANNEL_TYPES: ReadonlySet<number> = new Set([10, 11, 12]);

/** The `kind` of a `follow_up` that answers through an interaction token (current §7.2). */
export const DISCORD_INTERACTION_KIND = 'discord.interaction_token';

const snowflake = z.union([z.string(), z.number()]).transform(String);
const DiscordUserSchema = z.looseObject({
  id: snowflake,
  username: z.string().optional().catch(undefined),
  global_name: z.string().nullish().catch(undefined),
  bot: z.boolean().optional().catch(undefined),
});

interface CommandOption {
  type: number;
  name: string;
  value?: unknown;
  options?: CommandOption[];
}
const CommandOptionSchema: z.ZodType<CommandOption> = z.lazy(() =>
  z.looseObject({
    type: z.number(),
    name: z.string(),
    value: z.unknown().optional(),
    options: z.array(CommandOptionSchema).max(25).optional(),
  }),
);

export const DiscordInteractionSchema = z.looseObject({
  id: snowflake,
  type: z.number().int(),
  application_id: snowflake.optional().catch(undefined),
  token: z.string().optional().catch(undefined),
  guild_id: snowflake.optional().catch(undefined),
  channel_id: snowflake.optional().catch(undefined),
  channel: z
    .looseObject({
      id: snowflake,
      type: z.number().optional().catch(undefined),
      parent_id: snowflake.nullish().catch(undefined),
      name: z.string().nullish().catch(undefined),
    })
    .optional()
    .catch(undefined),
  member: z.looseObject({ user: DiscordUserSchema.optional().catch(undefined) }).optional().catch(undefined),
  user: DiscordUserSchema.optional().catch(undefined),
  message: z.looseObject({ id: snowflake }).optional().catch(undefined),
  data: z
    .looseObject({
      name: z.string().optional().catch(undefined),
      custom_id: z.string().optional().catch(undefined),
      options: z.array(CommandOptionSchema).max(25).optional().catch(undefined),
      components: z.array(z.unknown()).max(25).optional().catch(undefined),
    })
    .optional()
    .catch(undefined),
});
export type DiscordInteraction = z.output<typeof DiscordInteractionSchema>;

/** Option types that group others and contribute their own name (sub-command, sub-command group). */
const GROUPING_OPTION_TYPES: ReadonlySet<number> = new Set([1, 2]);

/** `/name v1 v2 …`: scalar options give their value, sub-commands their name and then their own. */
function commandText(name: string, options: readonly CommandOption[] | undefined): string {
  const words: string[] = [];
  const walk = (list: readonly CommandOption[] | undefined) => {
    for (const option of list ?? []) {
      if (GROUPING_OPTION_TYPES.has(option.type)) {
        words.push(option.name);
        walk(option.options);
      } else if (option.value !== undefined && option.value !== null) {
        words.push(String(option.value));
      }
    }
  };
  walk(options);
  return [`/${name}`, ...words].join(' ');
}

/** A modal's text inputs as `custom_id=value` lines, in order. */
function modalText(components: readonly unknown[] | undefined): string {
  const lines: string[] = [];
  const visit = (list: readonly unknown[] | undefined) => {
    for (const item of list ?? []) {
      if (!item || typeof item !== 'object') continue;
      const component = item as { custom_id?: unknown; value?: unknown; components?: unknown; component?: unknown };
      if (Array.isArray(component.components)) visit(component.components);
      else if (component.component && typeof component.component === 'object') visit([component.component]);
      else if (typeof component.custom_id === 'string')
        lines.push(`${component.custom_id}=${typeof component.value === 'string' ? component.value : ''}`);
    }
  };
  visit(components);
  return lines.join('\n');
}

/**
 * Where an interaction happened, as a session source: the channel, `group` in a guild and `dm`
 * outside one, a thread keyed as a thread under its parent, `scope_id` = the guild, the user who
 * acted. The same rules as for a message in that place, so both reach the same session.
 */
export function discordInteractionSource(interaction: DiscordInteraction, profile?: string): SessionSourceInit {
  const channelId = interaction.channel_id ?? interaction.channel?.id ?? '';
  const user = interaction.member?.user ?? interaction.user;
  const inThread = interaction.channel?.type !== undefined && THREAD_CHANNEL_TYPES.has(interaction.channel.type);
  const source: SessionSourceInit = {
    platform: 'discord',
    chat_id: channelId,
    chat_type: inThread ? 'thread' : interaction.guild_id ? 'group' : 'dm',
    is_bot: user?.bot === true,
    message_is_edit: false,
  };
  if (inThread) {
    source.thread_id = channelId;
    if (interaction.channel?.parent_id) source.parent_chat_id = interaction.channel.parent_id;
  }
  if (interaction.channel?.name) source.chat_name = interaction.channel.name;
  if (interaction.guild_id) source.scope_id = interaction.guild_id;
  if (user) {
    source.user_id = user.id;
    const name = user.global_name || user.username;
    if (name) source.user_name = name;
  }
  if (interaction.type === DISCORD_INTERACTION.messageComponent && interaction.message)
    source.message_id = interaction.message.id;
  if (profile) source.profile = profile;
  return source;
}

/**
 * The `MessageEvent` of an interaction (current §12): a slash command as `/name args` (a command),
 * a button press as its `custom_id` — or, for one of our prompt buttons (`hp1:`), as the prompt
 * response with text `/<option>` — a modal as its fields, anything else as empty text. The
 * interaction id is the event's `message_id` (its dedupe key).
 */
export function discordInteractionEvent(interaction: DiscordInteraction, profile?: string): MessageEventInit {
  const source = discordInteractionSource(interaction, profile);
  const base = { message_id: interaction.id, source };
  const data = interaction.data;
  switch (interaction.type) {
    case DISCORD_INTERACTION.applicationCommand:
      return { ...base, text: commandText(data?.name ?? '', data?.options), message_type: 'command' };
    case DISCORD_INTERACTION.messageComponent: {
      const customId = data?.custom_id ?? '';
      const token = decodePromptToken(customId);
      if (!token) return { ...base, text: customId, message_type: 'text' };
      return {
        ...base,
        text: `/${token.optionId}`,
        message_type: 'command',
        prompt_response: {
          prompt_id: token.promptId,
          option_id: token.optionId,
          ...(interaction.message ? { prompt_message_id: interaction.message.id } : {}),
        },
      };
    }
    case DISCORD_INTERACTION.modalSubmit:
      return { ...base, text: modalText(data?.components), message_type: 'text' };
    default:
      return { ...base, text: '', message_type: 'text' };
  }
}

/** Parse an interaction body; undefined when it is not a JSON interaction object. */
export function parseDiscordInteraction(body: Uint8Array | string): DiscordInteraction | undefined {
  const json = typeof body === 'string' ? parseJsonText(body) : parseJsonBytes(body);
  if (!json.ok) return undefined;
  const parsed = DiscordInteractionSchema.safeParse(json.value);
  return parsed.success ? parsed.data : undefined;
}
