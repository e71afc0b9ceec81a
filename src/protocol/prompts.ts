/**
 * Prompt callback tokens (current §7.4): `hp1:<prompt_id>:<option_id>`, at most 64 bytes (Telegram's
 * `callback_data` cap, applied on every platform), both ids of `[A-Za-z0-9_.-]{1,32}`. Anything
 * else is a foreign payload, not ours to decode.
 */

export const PROMPT_ID_PATTERN = /^[A-Za-z0-9_.-]{1,32}$/;
export const PROMPT_TOKEN_PREFIX = 'hp1';
export const PROMPT_TOKEN_MAX_BYTES = 64;

export function encodePromptToken(promptId: string, optionId: string): string | undefined {
  if (!PROMPT_ID_PATTERN.test(promptId) || !PROMPT_ID_PATTERN.test(optionId)) return undefined;
  const token = `${PROMPT_TOKEN_PREFIX}:${promptId}:${optionId}`;
  return Buffer.byteLength(token) <= PROMPT_TOKEN_MAX_BYTES ? token : undefined;
}

export function decodePromptToken(token: string): { promptId: string; optionId: string } | undefined {
  const parts = token.split(':');
  if (parts.length !== 3 || parts[0] !== PROMPT_TOKEN_PREFIX) return undefined;
  const [, promptId = '', optionId = ''] = parts;
  if (!PROMPT_ID_PATTERN.test(promptId) || !PROMPT_ID_PATTERN.test(optionId)) return undefined;
  return { promptId, optionId };
}
