/**
 * The fail-closed strength gate for shared secrets such as `HERMES_DASHBOARD_DRAIN_SECRET`
 * (lifecycle reference §3.6): at least `minChars` characters (43 ≈ 32 random bytes in base64url),
 * at least 16 distinct characters, and at least 128 bits of total Shannon entropy.
 */

export const DEFAULT_MIN_SECRET_CHARS = 43;
export const MIN_DISTINCT_CHARS = 16;
export const MIN_ENTROPY_BITS = 128;

export type SecretWeakness = 'missing' | 'too_short' | 'too_few_distinct' | 'low_entropy';

export type SecretStrength =
  | { ok: true; chars: number; distinct: number; entropyBits: number }
  | { ok: false; reason: SecretWeakness; detail: string };

/** Total Shannon entropy of the string in bits: length × per-character entropy over code points. */
export function shannonEntropyBits(text: string): number {
  const counts = new Map<string, number>();
  let length = 0;
  for (const ch of text) {
    counts.set(ch, (counts.get(ch) ?? 0) + 1);
    length++;
  }
  if (length === 0) return 0;
  let perChar = 0;
  for (const count of counts.values()) {
    const p = count / length;
    perChar -= p * Math.log2(p);
  }
  return perChar * length;
}

/** Judge a secret. The detail never contains the secret itself. */
export function assessSecretStrength(secret: unknown, minChars = DEFAULT_MIN_SECRET_CHARS): SecretStrength {
  if (typeof secret !== 'string' || secret.trim() === '') {
    return { ok: false, reason: 'missing', detail: 'secret is not set' };
  }
  const chars = [...secret].length;
  const floor = Math.max(1, Math.floor(minChars));
  if (chars < floor) {
    return {
      ok: false,
      reason: 'too_short',
      detail: `secret has ${chars} characters; at least ${floor} required`,
    };
  }
  const distinct = new Set(secret).size;
  if (distinct < MIN_DISTINCT_CHARS) {
    return {
      ok: false,
      reason: 'too_few_distinct',
      detail: `secret has ${distinct} distinct characters; at least ${MIN_DISTINCT_CHARS} required`,
    };
  }
  const entropyBits = shannonEntropyBits(secret);
  if (entropyBits < MIN_ENTROPY_BITS) {
    return {
      ok: false,
      reason: 'low_entropy',
      detail: `secret carries about ${Math.floor(entropyBits)} bits of entropy; at least ${MIN_ENTROPY_BITS} required`,
    };
  }
  return { ok: true, chars, distinct, entropyBits };
}
