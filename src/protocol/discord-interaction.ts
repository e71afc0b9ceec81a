import { z } from 'zod';
import type { MessageEventInit, SessionSourceInit } from './event.js';
import { parseJsonBytes, parseJsonText } from './json.js';
import { decodePromptToken } from './prompts.js';

/**
 * A Discord interaction as the relay reads it (current §12): the connector forwards it as a
 * `passthrough_forward` with the token removed, and both ends derive the same `MessageEvent` from
 * it — the gateway to run a turn, the connector to bind the interaction token to the session the
 * gateway will name in `follow_up`. Only the fields the relay uses are read; the rest is kept.
 * Reading is lenient field by field (a malformed option or component is skipped, never the whole
 * interaction): only a body without an `id` and an integer `type` is not an interaction.
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
export const DISCORD_THREAD_CHANNEL_TYPES: ReadonlySet<number> = new Set([10, 11, 12]);

/** The `kind` of a `follow_up` that answers through an interaction token (current §7.2). */
export const DISCORD_INTERACTION_KIND = 'discord.interaction_token';

/** Application command option types that group others: SUB_COMMAND (1), SUB_COMMAND_GROUP (2). */
const GROUPING_OPTION_TYPES: ReadonlySet<number> = new Set([1, 2]);
/** A group holds sub-commands, which hold scalars: three levels (Discord API); more is not read. */
const MAX_OPTION_DEPTH = 3;
/** An action row or a label holds the inputs: two levels (Discord API), a little slack beyond. */
const MAX_COMPONENT_DEPTH = 4;
/** Discord caps options per level and components per modal at 25. */
const MAX_LIST = 25;

const snowflake = z.union([z.string(), z.number()]).transform(String);
const DiscordUserSchema = z.looseObject({
  id: snowflake,
  username: z.string().optional().catch(undefined),
  global_name: z.string().nullish().catch(undefined),
  bot: z.boolean().optional().catch(undefined),
});

/** One application command option, as far as the relay reads it. */
interface CommandOption {
  type: number;
  name: string;
  value?: unknown;
  options?: CommandOption[];
}

/** Options as read: entries that are not options are skipped, nesting stops at Discord's depth. */
function readOptions(value: unknown, depth = 1): CommandOption[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const options: CommandOption[] = [];
  for (const item of value.slice(0, MAX_LIST)) {
    if (!item || typeof item !== 'object' || Array.isArray(item)) continue;
    const { type, name, value: optionValue, options: nested } = item as Record<string, unknown>;
    if (typeof type !== 'number') continue;
    const option: CommandOption = { type, name: typeof name === 'string' ? name : '' };
    if (optionValue !== undefined) option.value = optionValue;
    const children = depth < MAX_OPTION_DEPTH ? readOptions(nested, depth + 1) : undefined;
    if (children) option.options = children;
    options.push(option);
  }
  return options;
}

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
  member: z
    .looseObject({
      user: DiscordUserSchema.optional().catch(undefined),
      nick: z.string().nullish().catch(undefined),
    })
    .optional()
    .catch(undefined),
  user: DiscordUserSchema.optional().catch(undefined),
  message: z.looseObject({ id: snowflake }).optional().catch(undefined),
  data: z
    .looseObject({
      name: z.string().optional().catch(undefined),
      custom_id: z.string().optional().catch(undefined),
      // Kept as received (the connector forwards what it parsed); read leniently into words.
      options: z.array(z.unknown()).optional().catch(undefined),
      components: z.array(z.unknown()).max(MAX_LIST).optional().catch(undefined),
    })
    .optional()
    .catch(undefined),
});
export type DiscordInteraction = z.output<typeof DiscordInteractionSchema>;

/** An option value as a word: a trimmed string, a number or a boolean; anything else says nothing. */
function optionWord(value: unknown): string | undefined {
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return undefined;
  const word = String(value).trim();
  return word === '' ? undefined : word;
}

/**
 * `/name v1 v2 …` (current §12): scalar options give their value, a sub-command or sub-command
 * group its name and then its own options; empty values are left out. No name → empty text.
 */
function commandText(name: string, rawOptions: unknown): string {
  const command = name.trim();
  if (command === '') return '';
  const options = readOptions(rawOptions);
  const words: string[] = [];
  const walk = (list: readonly CommandOption[] | undefined) => {
    for (const option of list ?? []) {
      if (GROUPING_OPTION_TYPES.has(option.type)) {
        const sub = option.name.trim();
        if (sub) words.push(sub);
        walk(option.options);
      } else {
        const word = optionWord(option.value);
        if (word !== undefined) words.push(word);
      }
    }
  };
  walk(options);
  return [`/${command}`, ...words].join(' ');
}

/**
 * A modal's inputs as `custom_id=value` lines, in order (current §12): inputs sit in action rows
 * (`components`) or, in newer modals, in labels (`component`). A text input gives its `value`
 * (kept as typed, an empty one as nothing after `=`), a select or file upload its `values` joined
 * with `,`; components without a `custom_id` (text displays) give no line.
 */
function modalText(components: readonly unknown[] | undefined): string {
  const lines: string[] = [];
  const visit = (list: readonly unknown[] | undefined, depth: number) => {
    if (depth > MAX_COMPONENT_DEPTH) return;
    for (const item of (list ?? []).slice(0, MAX_LIST)) {
      if (!item || typeof item !== 'object') continue;
      const component = item as {
        custom_id?: unknown;
        value?: unknown;
        values?: unknown;
        components?: unknown;
        component?: unknown;
      };
      if (Array.isArray(component.components)) visit(component.components, depth + 1);
      else if (component.component && typeof component.component === 'object')
        visit([component.component], depth + 1);
      else if (typeof component.custom_id === 'string') {
        const value =
          typeof component.value === 'string'
            ? component.value
            : Array.isArray(component.values)
              ? component.values.filter((v) => typeof v === 'string').join(',')
              : '';
        lines.push(`${component.custom_id}=${value}`);
      }
    }
  };
  visit(components, 1);
  return lines.join('\n');
}

/**
 * Where an interaction happened, as a session source, by the same rules as a message in that place
 * (so both reach the same session, current §5.6): `dm` outside a guild; in a guild a thread channel
 * (types 10–12) is `thread` with `thread_id` = the thread and `parent_chat_id` = its channel,
 * anything else `group`; `chat_id` = the channel, `scope_id` = the guild; the user who acted
 * (`member.user` in a guild, `user` in a DM) named as a message's author is. For a component press
 * `source.message_id` is the message the component is on; a command has no message.
 */
export function discordInteractionSource(
  interaction: DiscordInteraction,
  profile?: string,
): SessionSourceInit {
  const channelId = interaction.channel_id ?? interaction.channel?.id ?? '';
  const user = interaction.member?.user ?? interaction.user;
  const guildId = interaction.guild_id;
  const inThread =
    guildId !== undefined &&
    interaction.channel?.type !== undefined &&
    DISCORD_THREAD_CHANNEL_TYPES.has(interaction.channel.type);
  const source: SessionSourceInit = {
    platform: 'discord',
    chat_id: channelId,
    chat_type: !guildId ? 'dm' : inThread ? 'thread' : 'group',
    is_bot: user?.bot === true,
    message_is_edit: false,
  };
  if (inThread) {
    source.thread_id = channelId;
    if (interaction.channel?.parent_id) source.parent_chat_id = interaction.channel.parent_id;
  }
  if (interaction.channel?.name) source.chat_name = interaction.channel.name;
  if (guildId) source.scope_id = guildId;
  if (user) {
    source.user_id = user.id;
    const name = interaction.member?.nick || user.global_name || user.username;
    if (name) source.user_name = name;
    if (user.username) source.user_handle = user.username;
  }
  if (interaction.type === DISCORD_INTERACTION.messageComponent && interaction.message)
    source.message_id = interaction.message.id;
  if (profile) source.profile = profile;
  return source;
}

/**
 * The `MessageEvent` of an interaction (current §12): a slash command as `/name args` (a command),
 * a button press as its `custom_id` — or, for one of our prompt buttons (`hp1:`), as the prompt
 * response with text `/<option>` — a modal as its fields, anything else (a ping, an autocomplete)
 * as empty text. The interaction id is the event's `message_id` (its dedupe key).
 */
export function discordInteractionEvent(interaction: DiscordInteraction, profile?: string): MessageEventInit {
  const source = discordInteractionSource(interaction, profile);
  const base = { message_id: interaction.id, source };
  const data = interaction.data;
  switch (interaction.type) {
    case DISCORD_INTERACTION.applicationCommand: {
      const text = commandText(data?.name ?? '', data?.options);
      return { ...base, text, message_type: text ? 'command' : 'text' };
    }
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
          ...labelOf(interaction.message, customId),
        },
      };
    }
    case DISCORD_INTERACTION.modalSubmit:
      return { ...base, text: modalText(data?.components), message_type: 'text' };
    default:
      return { ...base, text: '', message_type: 'text' };
  }
}

/** The label of the pressed button, read from the message Discord sends along with a press. */
function labelOf(message: Record<string, unknown> | undefined, customId: string): { label?: string } {
  const rows = message?.components;
  if (!Array.isArray(rows)) return {};
  for (const row of rows) {
    const buttons = (row as { components?: unknown } | null)?.components;
    if (!Array.isArray(buttons)) continue;
    for (const button of buttons) {
      const { custom_id: id, label } = (button ?? {}) as { custom_id?: unknown; label?: unknown };
      if (id === customId && typeof label === 'string' && label) return { label };
    }
  }
  return {};
}

/** Parse an interaction body; undefined when it is not a JSON interaction object. */
export function parseDiscordInteraction(body: Uint8Array | string): DiscordInteraction | undefined {
  const json = typeof body === 'string' ? parseJsonText(body) : parseJsonBytes(body);
  if (!json.ok) return undefined;
  const parsed = DiscordInteractionSchema.safeParse(json.value);
  return parsed.success ? parsed.data : undefined;
}
