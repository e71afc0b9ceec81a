import { isUtf8 } from 'node:buffer';
import {
  MAX_UPGRADE_TOKEN_CHARS,
  UPGRADE_TOKEN_MAX_TTL_SECONDS,
  UPGRADE_TOKEN_SKEW_SECONDS,
  UPGRADE_TOKEN_TTL_SECONDS,
} from '../protocol/limits.js';
import { hmacHex, isUsableSecret, verifyAgainstList } from './hmac.js';

/**
 * Per-gateway WebSocket upgrade token (reference §2, spec decision 1):
 * base64url-without-padding of `<gatewayId>:<exp>:<hex HMAC of "<gatewayId>:<exp>">`.
 */

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** `ttl <= 0` mints a never-expiring token (exp 0), which connectors refuse by default. */
export function mintUpgradeToken(
  gatewayId: string,
  secret: string,
  ttlSeconds = UPGRADE_TOKEN_TTL_SECONDS,
  now = nowSeconds(),
): string {
  if (!isUsableSecret(secret)) throw new Error('cannot mint an upgrade token without a secret');
  const exp = ttlSeconds > 0 ? Math.floor(now) + Math.floor(ttlSeconds) : 0;
  const signed = `${gatewayId}:${exp}`;
  return Buffer.from(`${signed}:${hmacHex(signed, secret)}`, 'utf8').toString('base64url');
}

/**
 * A token taken apart, NOT verified. Only {@link decodeUnverifiedUpgradeToken} makes one; hand one
 * to nothing but {@link verifyDecodedUpgradeToken} (`signed` is what the signature is checked
 * against, so an object built any other way could pair one gateway's id with another's bytes).
 */
export interface DecodedUpgradeToken {
  readonly gatewayId: string;
  readonly exp: number;
  readonly signature: string;
  /** The UTF-8 bytes of `<gatewayId>:<exp>` that the signature must cover. */
  readonly signed: Uint8Array;
}

const INTEGER = /^-?\d{1,16}$/;
const COLON = 0x3a;

/**
 * Structural decoding only; says nothing about authenticity (the gatewayId it gives is only for
 * looking up which secrets to verify against). Works on the bytes (hot path).
 */
export function decodeUnverifiedUpgradeToken(token: unknown): DecodedUpgradeToken | null {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_UPGRADE_TOKEN_CHARS) return null;
  if (token.length % 4 === 1) return null;
  const bytes = Buffer.from(token, 'base64url');
  // Only the canonical encoding. Buffer's decoder silently skips foreign characters and ignores
  // stray bits in the last character; re-encoding and comparing rejects both.
  if (bytes.toString('base64url') !== token || !isUtf8(bytes)) return null;
  // Split from the right: the gatewayId may itself contain ':'.
  const sigColon = bytes.lastIndexOf(COLON);
  if (sigColon <= 0) return null;
  const expColon = bytes.lastIndexOf(COLON, sigColon - 1);
  if (expColon < 0) return null;
  const expText = bytes.toString('latin1', expColon + 1, sigColon);
  if (!INTEGER.test(expText)) return null;
  const gatewayId = bytes.toString('utf8', 0, expColon);
  const exp = Number(expText);
  // The reference signs the re-rendered integer; for canonical digits that is the bytes as sent.
  const signed =
    String(exp) === expText ? bytes.subarray(0, sigColon) : Buffer.from(`${gatewayId}:${exp}`, 'utf8');
  return { gatewayId, exp, signature: bytes.toString('latin1', sigColon + 1), signed };
}

/**
 * The gatewayId a token claims, WITHOUT verifying it. Only for looking up which secrets to verify
 * against; never treat the result as an identity.
 */
export function peekUnverifiedGatewayId(token: unknown): string | null {
  return decodeUnverifiedUpgradeToken(token)?.gatewayId ?? null;
}

/** Strip an `Authorization` header value down to its bearer token, or null. */
export function bearerToken(header: unknown): string | null {
  if (typeof header !== 'string') return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match ? (match[1] as string) : null;
}

export type UpgradeTokenFailure =
  | 'malformed'
  | 'expired'
  | 'non_expiring'
  | 'exp_too_far'
  | 'no_secret'
  | 'bad_signature';

export type UpgradeTokenVerification =
  | { ok: true; gatewayId: string; exp: number }
  | { ok: false; reason: UpgradeTokenFailure; gatewayId?: string };

export interface UpgradeTokenPolicy {
  /** Seconds a token stays acceptable after `exp` (default 60). */
  skewSeconds?: number;
  /** Largest `exp - now` accepted (default 3600). */
  maxTtlSeconds?: number;
  /** Accept `exp = 0` tokens (default false; `RELAY_ALLOW_NON_EXPIRING_TOKENS=1`). */
  allowNonExpiring?: boolean;
}

/**
 * Verify a token against the gateway's verify list (primary first, then a secondary in rotation).
 * The signature is checked before the time policy, so `expired` (and `exp_too_far`, `non_expiring`)
 * always describe a validly signed token: a connector closes 4401 `"expired"` only for those
 * (current contract §14), and a forger learns nothing from the reason.
 */
export function verifyUpgradeToken(
  token: unknown,
  verifyList: readonly unknown[],
  now = nowSeconds(),
  policy: UpgradeTokenPolicy = {},
): UpgradeTokenVerification {
  return verifyDecodedUpgradeToken(decodeUnverifiedUpgradeToken(token), verifyList, now, policy);
}

/** {@link verifyUpgradeToken} of a token already decoded (the connector decodes once per upgrade). */
export function verifyDecodedUpgradeToken(
  decoded: DecodedUpgradeToken | null,
  verifyList: readonly unknown[],
  now = nowSeconds(),
  policy: UpgradeTokenPolicy = {},
): UpgradeTokenVerification {
  if (!decoded) return { ok: false, reason: 'malformed' };
  const { gatewayId, exp, signature, signed } = decoded;
  const skew = policy.skewSeconds ?? UPGRADE_TOKEN_SKEW_SECONDS;
  const maxTtl = policy.maxTtlSeconds ?? UPGRADE_TOKEN_MAX_TTL_SECONDS;
  if (!verifyList.some(isUsableSecret)) return { ok: false, reason: 'no_secret', gatewayId };
  if (!verifyAgainstList(signed, signature, verifyList)) {
    return { ok: false, reason: 'bad_signature', gatewayId };
  }
  if (exp === 0) {
    if (!policy.allowNonExpiring) return { ok: false, reason: 'non_expiring', gatewayId };
  } else {
    if (now > exp + skew) return { ok: false, reason: 'expired', gatewayId };
    if (exp - now > maxTtl) return { ok: false, reason: 'exp_too_far', gatewayId };
  }
  return { ok: true, gatewayId, exp };
}
