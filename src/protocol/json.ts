/**
 * Strict, bounded JSON decoding shared by every place that parses untrusted bytes or text (frames,
 * HTTP bodies, web-chat messages). Never throws.
 *
 * The nesting bound exists because a parsed value is later walked by recursive code (validators,
 * `JSON.stringify` for a log line or a re-send): V8's `JSON.parse` takes 100,000 nested arrays
 * happily, and the first recursive walk over the result then throws `RangeError` from wherever it
 * runs. Refusing such input before parsing keeps every later walk safe.
 */

import { MAX_JSON_DEPTH } from './limits.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export type JsonParseError = 'not_utf8' | 'not_json' | 'too_deep';
export type JsonParse = { ok: true; value: unknown } | { ok: false; error: JsonParseError };

/** What each {@link JsonParseError} means, for an error answer or a log line. */
export const JSON_PARSE_ERRORS: Readonly<Record<JsonParseError, string>> = {
  not_utf8: 'body is not valid UTF-8',
  not_json: 'invalid JSON',
  too_deep: `JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
};

/** Decode bytes as strict UTF-8 (no replacement characters) and parse bounded JSON. */
export function parseJsonBytes(raw: Uint8Array, maxDepth = MAX_JSON_DEPTH): JsonParse {
  let text: string;
  try {
    text = strictUtf8.decode(raw);
  } catch {
    return { ok: false, error: 'not_utf8' };
  }
  return parseJsonText(text, maxDepth);
}

/** Parse JSON text whose arrays and objects nest at most `maxDepth` levels. */
export function parseJsonText(text: string, maxDepth = MAX_JSON_DEPTH): JsonParse {
  if (jsonDepthExceeds(text, maxDepth)) return { ok: false, error: 'too_deep' };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, error: 'not_json' };
  }
}

/**
 * True when the brackets of `text`, outside string literals, open more than `maxDepth` levels. A
 * linear scan with no allocation; text that is not JSON at all is left to `JSON.parse` to refuse.
 */
export function jsonDepthExceeds(text: string, maxDepth = MAX_JSON_DEPTH): boolean {
  // Fewer opening brackets in all than the bound cannot nest deeper than it. Counting them with
  // the native indexOf settles almost every frame several times faster than the scan below.
  if (text.length <= maxDepth || countOpenings(text, maxDepth + 1) <= maxDepth) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return false;
}

/** `[` and `{` in `text` (inside strings too), counting no further than `limit`. */
function countOpenings(text: string, limit: number): number {
  let count = 0;
  for (let i = text.indexOf('['); i !== -1 && count < limit; i = text.indexOf('[', i + 1)) count++;
  for (let i = text.indexOf('{'); i !== -1 && count < limit; i = text.indexOf('{', i + 1)) count++;
  return count;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
