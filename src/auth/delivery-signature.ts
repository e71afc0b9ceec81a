import { DELIVERY_REPLAY_WINDOW_SECONDS } from '../protocol/limits.js';
import { hmacHex, isUsableSecret, verifyAgainstList } from './hmac.js';
import { nowSeconds } from './upgrade-token.js';

/**
 * Delivery signature (reference §3.2): hex HMAC of `<ts>.` followed by the exact raw body bytes,
 * keyed with the tenant delivery key. Works on bytes only; never on a re-serialised object.
 */

const TIMESTAMP = /^\d{1,15}$/;

function signedParts(rawBody: Uint8Array | string, ts: number): Uint8Array[] {
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
  return [Buffer.from(`${ts}.`, 'utf8'), body];
}

export function signDelivery(
  rawBody: Uint8Array | string,
  key: string,
  ts: number | string = nowSeconds(),
): string {
  if (!isUsableSecret(key)) throw new Error('cannot sign a delivery without a delivery key');
  const timestamp = typeof ts === 'string' ? Number(ts) : Math.floor(ts);
  return hmacHex(signedParts(rawBody, timestamp), key);
}

export type DeliveryFailure =
  | 'no_key'
  | 'missing_headers'
  | 'bad_timestamp'
  | 'outside_window'
  | 'bad_signature';

export type DeliveryVerification = { ok: true; timestamp: number } | { ok: false; reason: DeliveryFailure };

/**
 * The checks of {@link verifyDelivery} that need no body: a usable key, both headers, a canonical
 * timestamp inside the replay window. A receiver runs them before it reads a body, so a request
 * that can never verify costs it no memory.
 */
export function checkDeliveryHeaders(
  timestampHeader: unknown,
  signatureHeader: unknown,
  verifyList: readonly unknown[],
  now = nowSeconds(),
  windowSeconds = DELIVERY_REPLAY_WINDOW_SECONDS,
): DeliveryVerification {
  if (!verifyList.some(isUsableSecret)) return { ok: false, reason: 'no_key' };
  if (
    typeof timestampHeader !== 'string' ||
    typeof signatureHeader !== 'string' ||
    !timestampHeader ||
    !signatureHeader
  ) {
    return { ok: false, reason: 'missing_headers' };
  }
  if (!TIMESTAMP.test(timestampHeader)) return { ok: false, reason: 'bad_timestamp' };
  const timestamp = Number(timestampHeader);
  if (Math.abs(now - timestamp) > windowSeconds) return { ok: false, reason: 'outside_window' };
  return { ok: true, timestamp };
}

/**
 * Verify a delivery. Header values are taken as they come off the request (`string | string[] |
 * undefined`); anything but a single canonical value fails. `no_key` is the fail-closed case of an
 * empty verify list, which the receiver answers differently (reference §3.3).
 */
export function verifyDelivery(
  rawBody: Uint8Array,
  timestampHeader: unknown,
  signatureHeader: unknown,
  verifyList: readonly unknown[],
  now = nowSeconds(),
  windowSeconds = DELIVERY_REPLAY_WINDOW_SECONDS,
): DeliveryVerification {
  const headers = checkDeliveryHeaders(timestampHeader, signatureHeader, verifyList, now, windowSeconds);
  if (!headers.ok) return headers;
  if (!verifyAgainstList(signedParts(rawBody, headers.timestamp), signatureHeader as string, verifyList)) {
    return { ok: false, reason: 'bad_signature' };
  }
  return headers;
}
