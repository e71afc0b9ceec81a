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

export interface DecodedUpgradeToken {
  gatewayId: string;
  exp: number;
  signature: string;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const INTEGER = /^-?\d{1,16}$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Structural decoding only; says nothing about authenticity. */
function decodeUpgradeToken(token: unknown): DecodedUpgradeToken | null {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_UPGRADE_TOKEN_CHARS) return null;
  // Buffer's decoder silently skips foreign characters; the alphabet check keeps it honest.
  if (!BASE64URL.test(token) || token.length % 4 === 1) return null;
  const bytes = Buffer.from(token, 'base64url');
  // Only the canonical encoding: stray bits in the last character would give one token many spellings.
  if (bytes.toString('base64url') !== token) return null;
  let raw: string;
  try {
    raw = strictUtf8.decode(bytes);
  } catch {
    return null;
  }
  const parts = raw.split(':');
  if (parts.length < 3) return null;
  const signature = parts[parts.length - 1] as string;
  const expText = parts[parts.length - 2] as string;
  if (!INTEGER.test(expText)) return null;
  const gatewayId = parts.slice(0, -2).join(':');
  return { gatewayId, exp: Number(expText), signature };
}

/**
 * The gatewayId a token claims, WITHOUT verifying it. Only for looking up which secrets to verify
 * against; never treat the result as an identity.
 */
export function peekUnverifiedGatewayId(token: unknown): string | null {
  return decodeUpgradeToken(token)?.gatewayId ?? null;
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

/** Verify a token against the gateway's verify list (primary first, then a secondary in rotation). */
export function verifyUpgradeToken(
  token: unknown,
  verifyList: readonly unknown[],
  now = nowSeconds(),
  policy: UpgradeTokenPolicy = {},
): UpgradeTokenVerification {
  const decoded = decodeUpgradeToken(token);
  if (!decoded) return { ok: false, reason: 'malformed' };
  const { gatewayId, exp, signature } = decoded;
  const skew = policy.skewSeconds ?? UPGRADE_TOKEN_SKEW_SECONDS;
  const maxTtl = policy.maxTtlSeconds ?? UPGRADE_TOKEN_MAX_TTL_SECONDS;
  if (exp === 0) {
    if (!policy.allowNonExpiring) return { ok: false, reason: 'non_expiring', gatewayId };
  } else {
    if (now > exp + skew) return { ok: false, reason: 'expired', gatewayId };
    if (exp - now > maxTtl) return { ok: false, reason: 'exp_too_far', gatewayId };
  }
  if (!verifyList.some(isUsableSecret)) return { ok: false, reason: 'no_secret', gatewayId };
  if (!verifyAgainstList(`${gatewayId}:${exp}`, signature, verifyList)) {
    return { ok: false, reason: 'bad_signature', gatewayId };
  }
  return { ok: true, gatewayId, exp };
}
