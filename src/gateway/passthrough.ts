import {
  DISCORD_INTERACTION_KIND,
  discordInteractionEvent,
  type MessageEvent,
  messageEventToWire,
  type PassthroughForward,
  parseDiscordInteraction,
  parseMessageEvent,
} from '../protocol/index.js';

/**
 * What a `passthrough_forward` is to this gateway (current §12). A Discord interaction becomes the
 * `MessageEvent` of the place it happened, answered through its interaction's follow-up capability
 * (`followUpKind`); anything else is dropped, with the log level it deserves: another platform's
 * webhook (no handler, as the reference does with Twilio) at debug, a Discord body that is no
 * interaction at warn, an interaction with nothing for an agent (a ping, an autocomplete) at debug.
 * Pure.
 */
export type PassthroughReading =
  | { kind: 'event'; event: MessageEvent; followUpKind: string }
  | { kind: 'drop'; level: 'debug' | 'warn'; reason: string };

export function readPassthrough(forward: PassthroughForward): PassthroughReading {
  if (forward.platform !== 'discord')
    return { kind: 'drop', level: 'debug', reason: 'no handler for this platform' };
  const interaction = parseDiscordInteraction(decodeBase64(forward.bodyB64));
  if (!interaction) return { kind: 'drop', level: 'warn', reason: 'body is not a Discord interaction' };
  const init = discordInteractionEvent(interaction, forward.profile || undefined);
  if (init.text === '' && !init.prompt_response)
    return { kind: 'drop', level: 'debug', reason: 'the interaction carries nothing for an agent' };
  // Through the wire form: exactly the event an `inbound` frame with this source would carry.
  const parsed = parseMessageEvent(messageEventToWire(init));
  if (!parsed.ok) return { kind: 'drop', level: 'warn', reason: `no event: ${parsed.error}` };
  return { kind: 'event', event: parsed.event, followUpKind: DISCORD_INTERACTION_KIND };
}

/** The dedupe key of a buffered forward (current §5.2), apart from the ids of `inbound` frames. */
export function passthroughBufferKey(bufferId: string | number): string {
  return `passthrough_buffer:${bufferId}`;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/**
 * Standard base64, padded or not; anything else (another alphabet, stray characters, a broken
 * length) is malformed and decodes to empty bytes (current §12), never to what a lenient decoder
 * would make of the valid characters in it.
 */
export function decodeBase64(text: string): Uint8Array {
  if (!BASE64.test(text)) return new Uint8Array(0);
  return Buffer.from(text, 'base64');
}
