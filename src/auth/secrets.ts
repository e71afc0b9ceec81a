import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Secret generation, storage hashes and constant-time comparison. */

/** A per-gateway secret or delivery key: 64 lowercase hex characters (256 bits), like the fixtures. */
export function generateSecret(): string {
  return randomBytes(32).toString('hex');
}

/**
 * A bearer-style token: `prefix` + 43 base64url characters (256 bits). The prefix (e.g. `hrt_`)
 * lets operators and secret scanners recognise what leaked.
 */
export function generateToken(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** SHA-256 hex of a token, for storing enrollment and tenant tokens (spec decision 12). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Constant-time string equality. Both sides are hashed first so neither the content nor the
 * length of the expected value leaks through timing.
 */
export function constantTimeEqual(presented: unknown, expected: string): boolean {
  if (typeof presented !== 'string') return false;
  // UTF-16 code units, not UTF-8: UTF-8 maps every lone surrogate to U+FFFD, so distinct strings could match.
  const a = createHash('sha256').update(presented, 'utf16le').digest();
  const b = createHash('sha256').update(expected, 'utf16le').digest();
  return timingSafeEqual(a, b) && presented.length === expected.length;
}

export { redact } from '../common/redact.js';
