import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The one MAC of the protocol (reference §1): HMAC-SHA256 keyed with the secret string's UTF-8
 * bytes (never hex-decoded), lowercase hex output, verified against a list of candidate secrets.
 */

const SIGNATURE_HEX_CHARS = 64;

/** A secret that is not a string, or only whitespace, counts as unset (reference `is_usable_secret`). */
export function isUsableSecret(secret: unknown): secret is string {
  return typeof secret === 'string' && secret.trim() !== '';
}

export function hmacDigest(message: string | Uint8Array | readonly Uint8Array[], secret: string): Buffer {
  // Keyed by the string itself: node takes its UTF-8 bytes. A cache of KeyObjects (tried in issue
  // 20) saved nothing on a hit and cost ≈ 7 µs on a miss, and kept every recent secret in memory.
  const mac = createHmac('sha256', secret);
  if (typeof message === 'string') mac.update(message, 'utf8');
  else if (message instanceof Uint8Array) mac.update(message);
  else for (const part of message) mac.update(part);
  return mac.digest();
}

export function hmacHex(message: string | Uint8Array | readonly Uint8Array[], secret: string): string {
  return hmacDigest(message, secret).toString('hex');
}

/** Parse a presented signature: exactly 64 hex characters, any case. Anything else is `null`. */
export function parseHexSignature(signature: unknown): Buffer | null {
  if (typeof signature !== 'string' || signature.length !== SIGNATURE_HEX_CHARS) return null;
  // Buffer's hex decoder stops at the first non-hex pair, so 32 bytes means all 64 were hex.
  const bytes = Buffer.from(signature, 'hex');
  return bytes.length === SIGNATURE_HEX_CHARS / 2 ? bytes : null;
}

/**
 * True when any usable secret in the list signs `message` to `signature`. Every candidate is
 * computed and compared in constant time, so timing reveals neither the match nor its position.
 */
export function verifyAgainstList(
  message: string | Uint8Array | readonly Uint8Array[],
  signature: unknown,
  secrets: readonly unknown[],
): boolean {
  const presented = parseHexSignature(signature);
  if (!presented) return false;
  let matched = false;
  for (const secret of secrets) {
    if (!isUsableSecret(secret)) continue;
    if (timingSafeEqual(hmacDigest(message, secret), presented)) matched = true;
  }
  return matched;
}
