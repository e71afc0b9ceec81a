/** Strict body decoding shared by every HTTP endpoint that reads raw bytes. */

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export type JsonParse = { ok: true; value: unknown } | { ok: false; error: 'not_utf8' | 'not_json' };

/** Decode bytes as strict UTF-8 (no replacement characters) and parse JSON. Never throws. */
export function parseJsonBytes(raw: Uint8Array): JsonParse {
  let text: string;
  try {
    text = strictUtf8.decode(raw);
  } catch {
    return { ok: false, error: 'not_utf8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, error: 'not_json' };
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
