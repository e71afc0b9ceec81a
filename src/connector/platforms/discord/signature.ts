import { createPublicKey, type KeyObject, verify } from 'node:crypto';

/**
 * Discord's interaction signatures: Ed25519 over `X-Signature-Timestamp` + the raw body, with the
 * application's public key from the developer portal (64 hex characters).
 */

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function discordPublicKey(hex: string): KeyObject {
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error('the public key must be 64 hex characters');
  return createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(hex, 'hex')]),
    format: 'der',
    type: 'spki',
  });
}

/** True only for a well-formed signature that verifies; anything missing or malformed is false. */
export function verifyDiscordSignature(
  key: KeyObject,
  signatureHex: string | undefined,
  timestamp: string | undefined,
  body: Buffer,
): boolean {
  if (!signatureHex || !timestamp || !/^[0-9a-f]{128}$/i.test(signatureHex)) return false;
  try {
    return verify(
      null,
      Buffer.concat([Buffer.from(timestamp, 'utf8'), body]),
      key,
      Buffer.from(signatureHex, 'hex'),
    );
  } catch {
    return false;
  }
}

/** How far a signed timestamp may be from our clock: older requests are replays (or a bad clock). */
export const SIGNATURE_WINDOW_SECONDS = 300;

/** True when `timestamp` (unix seconds) is within {@link SIGNATURE_WINDOW_SECONDS} of `nowMs`. */
export function isFreshTimestamp(timestamp: string | undefined, nowMs: number): boolean {
  if (!timestamp || !/^\d{1,12}$/.test(timestamp)) return false;
  return Math.abs(nowMs / 1000 - Number(timestamp)) <= SIGNATURE_WINDOW_SECONDS;
}
