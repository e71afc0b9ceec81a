import { describe, expect, it } from 'vitest';
import {
  mintUpgradeToken,
  signDelivery,
  verifyAgainstList,
  verifyDelivery,
  verifyUpgradeToken,
} from '../src/auth/index.js';
import {
  buildSessionKey,
  codePointLength,
  messageLength,
  type SessionKeySource,
  utf16Length,
} from '../src/protocol/index.js';
import { loadVectors } from './support/vectors.js';

interface AuthVectors {
  upgradeTokens: { gatewayId: string; exp: number; secret: string; token: string; decoded: string }[];
  upgradeTokenNegative: { why: string; token: string; secret: string; valid: boolean }[];
  deliverySignatures: {
    timestamp: string;
    body_utf8: string;
    body_base64: string;
    key: string;
    signature: string;
  }[];
  deliverySignatureNegative: {
    why: string;
    timestamp: string;
    body_utf8: string;
    key: string;
    signature: string;
  }[];
  replayWindowSeconds: number;
  skew: { timestamp: number; now: number; valid: boolean }[];
  rotation: { keys: string[]; timestamp: string; body_utf8: string; signature: string; valid: boolean };
}

interface KeyVectors {
  sessionKeys: {
    source: Record<string, string>;
    options: { group_sessions_per_user: boolean; thread_sessions_per_user: boolean };
    key: string;
  }[];
  lengths: { text: string; chars: number; utf16: number }[];
}

const auth = loadVectors<AuthVectors>('relay-auth.json');
const keys = loadVectors<KeyVectors>('session-keys-and-lengths.json');
const utf8 = (text: string) => Buffer.from(text, 'utf8');

describe('relay-auth.json: upgrade tokens', () => {
  it.each(auth.upgradeTokens)('mints $decoded', (v) => {
    // Minting at now = exp - 300 with the default TTL gives exactly `exp`; exp 0 means ttl 0.
    const token =
      v.exp === 0
        ? mintUpgradeToken(v.gatewayId, v.secret, 0)
        : mintUpgradeToken(v.gatewayId, v.secret, 300, v.exp - 300);
    expect(token).toBe(v.token);
    expect(Buffer.from(token, 'base64url').toString('utf8')).toBe(v.decoded);
  });

  it.each(auth.upgradeTokens)('verifies $decoded', (v) => {
    const now = v.exp === 0 ? 1_750_000_000 : v.exp;
    const result = verifyUpgradeToken(v.token, [v.secret], now, { allowNonExpiring: true });
    expect(result).toEqual({ ok: true, gatewayId: v.gatewayId, exp: v.exp });
  });

  it.each(auth.upgradeTokenNegative)('rejects: $why', (v) => {
    const result = verifyUpgradeToken(v.token, [v.secret], 1_750_000_000, { allowNonExpiring: true });
    expect(result.ok).toBe(v.valid);
  });
});

describe('relay-auth.json: delivery signatures', () => {
  it.each(auth.deliverySignatures)('signs $body_utf8', (v) => {
    const raw = Buffer.from(v.body_base64, 'base64');
    expect(raw.equals(utf8(v.body_utf8))).toBe(true);
    expect(signDelivery(raw, v.key, v.timestamp)).toBe(v.signature);
    const result = verifyDelivery(raw, v.timestamp, v.signature, [v.key], Number(v.timestamp));
    expect(result).toEqual({ ok: true, timestamp: Number(v.timestamp) });
  });

  it.each(auth.deliverySignatureNegative)('rejects: $why', (v) => {
    const result = verifyDelivery(utf8(v.body_utf8), v.timestamp, v.signature, [v.key], Number(v.timestamp));
    expect(result).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it.each(auth.skew)('replay window: ts $timestamp at now $now → $valid', (v) => {
    const body = utf8('{}');
    const key = auth.deliverySignatures[0]?.key as string;
    const signature = signDelivery(body, key, v.timestamp);
    const result = verifyDelivery(
      body,
      String(v.timestamp),
      signature,
      [key],
      v.now,
      auth.replayWindowSeconds,
    );
    expect(result.ok).toBe(v.valid);
    if (!v.valid) expect(result).toEqual({ ok: false, reason: 'outside_window' });
  });

  it('accepts a signature made with the secondary key of a rotation list', () => {
    const r = auth.rotation;
    const result = verifyDelivery(utf8(r.body_utf8), r.timestamp, r.signature, r.keys, Number(r.timestamp));
    expect(result.ok).toBe(r.valid);
    expect(verifyAgainstList(`${r.timestamp}.${r.body_utf8}`, r.signature, r.keys)).toBe(true);
  });
});

describe('session-keys-and-lengths.json', () => {
  it.each(keys.sessionKeys)('session key $key', (v) => {
    const key = buildSessionKey(v.source as never, {
      groupSessionsPerUser: v.options.group_sessions_per_user,
      threadSessionsPerUser: v.options.thread_sessions_per_user,
    });
    expect(key).toBe(v.key);
  });

  it.each(keys.lengths)('lengths of "$text"', (v) => {
    expect(codePointLength(v.text)).toBe(v.chars);
    expect(utf16Length(v.text)).toBe(v.utf16);
    expect(messageLength(v.text, 'chars')).toBe(v.chars);
    expect(messageLength(v.text, 'utf16')).toBe(v.utf16);
    expect(codePointLength(v.text)).toBe([...v.text].length);
  });
});

describe('session-keys-current.json (current generation, §5.6 worked examples)', () => {
  const current = loadVectors<{ sessionKeys: { source: SessionKeySource; key: string }[] }>(
    'session-keys-current.json',
  );

  it.each(current.sessionKeys)('session key $key', (v) => {
    expect(buildSessionKey(v.source)).toBe(v.key);
  });
});
