import { generateKeyPairSync, sign } from 'node:crypto';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { connectorConfigFromEnv } from '../../src/connector/config.js';
import { buildAdapters } from '../../src/connector/platforms/build-adapters.js';
import { normaliseDiscordMessage } from '../../src/connector/platforms/discord/inbound.js';
import {
  discordPublicKey,
  isFreshTimestamp,
  verifyDiscordSignature,
} from '../../src/connector/platforms/discord/signature.js';
import {
  INTERACTION_TOKEN_TTL_MS,
  InteractionVault,
  interactionExpiry,
} from '../../src/connector/platforms/discord/vault.js';
import type { PlatformState } from '../../src/connector/platforms/types.js';
import { buildSessionKey, normalizePlatform } from '../../src/protocol/index.js';

const BOT = '900000000000000001';
const APP = '900000000000000001';
const KEY = 'a'.repeat(64);

type Message = Parameters<typeof normaliseDiscordMessage>[0];
const message = (over: Partial<Message> = {}): Message =>
  ({
    id: '1300000000000000001',
    channel_id: '1200000000000000001',
    guild_id: '1100000000000000001',
    type: 0,
    content: 'hello',
    author: { id: '700000000000000001', username: 'alice', global_name: 'Alice', bot: false },
    mentions: [],
    attachments: [],
    timestamp: '2026-12-04T00:00:00.000Z',
    ...over,
  }) as Message;

function memoryState(
  clock: () => number,
): PlatformState & { map: Map<string, { value: string; expiresAt: number }> } {
  const map = new Map<string, { value: string; expiresAt: number }>();
  return {
    map,
    get: async (key) => {
      const entry = map.get(key);
      return entry && entry.expiresAt > clock() ? entry.value : null;
    },
    put: async (key, value, ttlMs) => void map.set(key, { value, expiresAt: clock() + ttlMs }),
    insert: async (key, value, ttlMs) => {
      const entry = map.get(key);
      if (entry && entry.expiresAt > clock()) return false;
      map.set(key, { value, expiresAt: clock() + ttlMs });
      return true;
    },
    delete: async (key) => void map.delete(key),
  };
}

describe('Discord MESSAGE_CREATE → MessageEvent', () => {
  it('keys a guild message by the guild, as a group chat with scope_id, and marks a mention as addressed', () => {
    const plain = normaliseDiscordMessage(message(), BOT, { type: 0, name: 'general' });
    expect(plain?.routeKey).toBe('1100000000000000001');
    expect(plain?.addressed).toBe(false);
    expect(plain?.event.source).toMatchObject({
      platform: 'discord',
      chat_id: '1200000000000000001',
      chat_type: 'group',
      chat_name: 'general',
      scope_id: '1100000000000000001',
      user_id: '700000000000000001',
      user_name: 'Alice',
      is_bot: false,
      message_is_edit: false,
    });
    const mentioned = normaliseDiscordMessage(
      message({
        content: `<@${BOT}> what time is it?`,
        mentions: [{ id: BOT, username: 'hermes' }] as never,
      }),
      BOT,
      undefined,
    );
    expect(mentioned?.addressed).toBe(true);
    expect(mentioned?.event.text).toBe('what time is it?');
  });

  it('counts a reply to the bot as addressed and carries what was answered', () => {
    const inbound = normaliseDiscordMessage(
      message({
        type: 19,
        message_reference: { message_id: '1300000000000000000' },
        referenced_message: {
          id: '1300000000000000000',
          content: 'earlier answer',
          author: { id: BOT, username: 'hermes' },
        },
      } as never),
      BOT,
      undefined,
    );
    expect(inbound?.addressed).toBe(true);
    expect(inbound?.event.reply_to_message_id).toBe('1300000000000000000');
    expect(inbound?.event.reply_to).toEqual({ text: 'earlier answer', author: 'hermes', is_own: true });
  });

  it('keys a DM by its channel, always addressed, without scope_id', () => {
    const inbound = normaliseDiscordMessage(message({ guild_id: undefined } as never), BOT, undefined);
    expect(inbound?.routeKey).toBe('1200000000000000001');
    expect(inbound?.addressed).toBe(true);
    expect(inbound?.event.source.chat_type).toBe('dm');
    expect(inbound?.event.source.scope_id).toBeUndefined();
  });

  it('keys a thread message as a thread under its parent channel', () => {
    const inbound = normaliseDiscordMessage(message({ channel_id: '1250000000000000001' }), BOT, {
      type: 11,
      name: 'help thread',
      parentId: '1200000000000000001',
    });
    expect(inbound?.event.source).toMatchObject({
      chat_id: '1250000000000000001',
      chat_type: 'thread',
      thread_id: '1250000000000000001',
      parent_chat_id: '1200000000000000001',
    });
  });

  it('drops the bot’s own messages and system messages; marks other bots', () => {
    expect(
      normaliseDiscordMessage(message({ author: { id: BOT, username: 'hermes' } as never }), BOT, undefined),
    ).toBeUndefined();
    expect(normaliseDiscordMessage(message({ type: 7 } as never), BOT, undefined)).toBeUndefined();
    expect(normaliseDiscordMessage(message({ content: '' }), BOT, undefined)).toBeUndefined();
    const other = normaliseDiscordMessage(
      message({ author: { id: '5', username: 'otherbot', bot: true } as never }),
      BOT,
      undefined,
    );
    expect(other?.event.source.is_bot).toBe(true);
  });

  it('lists attachments with their kinds; a voice message is a voice note', () => {
    const inbound = normaliseDiscordMessage(
      message({
        content: '',
        attachments: [
          {
            id: '1',
            filename: 'cat.png',
            size: 3,
            url: 'https://cdn.discordapp.com/a/cat.png',
            proxy_url: '',
            content_type: 'image/png',
          },
          {
            id: '2',
            filename: 'notes.txt',
            size: 3,
            url: 'https://cdn.discordapp.com/a/notes.txt',
            proxy_url: '',
          },
        ],
      }),
      BOT,
      undefined,
    );
    expect(inbound?.event.message_type).toBe('photo');
    expect(inbound?.files.map((file) => [file.kind, file.filename])).toEqual([
      ['image', 'cat.png'],
      ['document', 'notes.txt'],
    ]);
    const voice = normaliseDiscordMessage(
      message({
        content: '',
        flags: 1 << 13,
        attachments: [
          {
            id: '3',
            filename: 'voice-message.ogg',
            size: 3,
            url: 'https://cdn.discordapp.com/v.ogg',
            proxy_url: '',
            content_type: 'audio/ogg',
          },
        ],
      }),
      BOT,
      undefined,
    );
    expect(voice?.event.message_type).toBe('voice');
  });

  it('gives a guild message the session key of the reference (Discord’s guild is not part of it)', () => {
    const inbound = normaliseDiscordMessage(message(), BOT, { type: 0 });
    const source = inbound?.event.source;
    expect(source).toBeDefined();
    if (!source) return;
    expect(buildSessionKey({ ...source, platform: normalizePlatform('discord') })).toBe(
      'agent:main:discord:group:1200000000000000001:700000000000000001',
    );
  });
});

describe('Discord interaction signatures', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const hex = (publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(-32).toString('hex');
  const key = discordPublicKey(hex);
  const body = Buffer.from('{"type":1}');
  const timestamp = '1764800000';
  const signature = sign(null, Buffer.concat([Buffer.from(timestamp), body]), privateKey).toString('hex');

  it('accepts Discord’s signature over timestamp + body', () => {
    expect(verifyDiscordSignature(key, signature, timestamp, body)).toBe(true);
  });

  it('refuses a changed body, a changed timestamp, a malformed or missing signature', () => {
    expect(verifyDiscordSignature(key, signature, timestamp, Buffer.from('{"type":2}'))).toBe(false);
    expect(verifyDiscordSignature(key, signature, '1764800001', body)).toBe(false);
    expect(verifyDiscordSignature(key, signature.slice(2), timestamp, body)).toBe(false);
    expect(verifyDiscordSignature(key, 'zz'.repeat(64), timestamp, body)).toBe(false);
    expect(verifyDiscordSignature(key, undefined, timestamp, body)).toBe(false);
    expect(verifyDiscordSignature(key, signature, undefined, body)).toBe(false);
  });

  it('takes a timestamp within five minutes of the clock, either way', () => {
    const now = 1_764_800_000_000;
    expect(isFreshTimestamp('1764800000', now)).toBe(true);
    expect(isFreshTimestamp('1764800300', now)).toBe(true);
    expect(isFreshTimestamp('1764799699', now)).toBe(false);
    expect(isFreshTimestamp('1764800301', now)).toBe(false);
    expect(isFreshTimestamp('soon', now)).toBe(false);
    expect(isFreshTimestamp(undefined, now)).toBe(false);
  });

  it('refuses a public key that is not 64 hex characters', () => {
    expect(() => discordPublicKey('abc')).toThrow(/64 hex/);
  });
});

describe('interaction capability vault', () => {
  it('resolves a bound token for its tenant only, until it expires after 15 minutes', async () => {
    let now = 1_000_000;
    const state = memoryState(() => now);
    const vault = new InteractionVault(state, APP, () => now);
    await vault.bind('agent:main:discord:group:c:u', {
      tenantId: 't_a',
      token: 'secret-token',
      interactionId: 'i1',
      originalPending: true,
    });
    expect((await vault.resolve('t_a', 'agent:main:discord:group:c:u'))?.token).toBe('secret-token');
    expect(await vault.resolve('t_b', 'agent:main:discord:group:c:u')).toBeUndefined();
    expect(await vault.resolve('t_a', 'agent:main:discord:group:c:other')).toBeUndefined();
    now += INTERACTION_TOKEN_TTL_MS;
    expect(await vault.resolve('t_a', 'agent:main:discord:group:c:u')).toBeUndefined();
  });

  it('counts the 15 minutes from when Discord made the interaction (its snowflake)', () => {
    const created = Date.UTC(2026, 11, 4, 12, 0, 0);
    const id = ((BigInt(created) - 1_420_070_400_000n) << 22n).toString();
    expect(interactionExpiry(id, created + 60_000)).toBe(created + INTERACTION_TOKEN_TTL_MS);
    expect(interactionExpiry('not-a-snowflake', 5)).toBe(5 + INTERACTION_TOKEN_TTL_MS);
  });

  it('answers each deferred reply in turn, then posts to the newest; a replayed bind changes nothing', async () => {
    let now = 0;
    const state = memoryState(() => now);
    const vault = new InteractionVault(state, APP, () => now);
    const bind = (id: string, pending: boolean) =>
      vault.bind('k', { tenantId: 't', token: `tok-${id}`, interactionId: id, originalPending: pending });
    await bind('first', true);
    await bind('press', false);
    await bind('second', true);
    expect((await vault.resolve('t', 'k'))?.interactionId).toBe('first');
    now = 60_000;
    await vault.markOriginalAnswered('k', 'first');
    await bind('first', true);
    expect((await vault.resolve('t', 'k'))?.interactionId).toBe('second');
    await vault.markOriginalAnswered('k', 'second');
    const last = await vault.resolve('t', 'k');
    expect(last).toMatchObject({ interactionId: 'second', originalPending: false });
    expect(last?.expiresAt).toBe(INTERACTION_TOKEN_TTL_MS);
  });
});

describe('Discord configuration', () => {
  const complete = { DISCORD_BOT_TOKEN: 'tok', DISCORD_APPLICATION_ID: APP, DISCORD_PUBLIC_KEY: KEY };

  it('is off with nothing set, on with the three settings', () => {
    expect(connectorConfigFromEnv({}).discord).toBeUndefined();
    expect(connectorConfigFromEnv(complete).discord).toMatchObject({
      token: 'tok',
      applicationId: APP,
      publicKey: KEY,
    });
  });

  it('names the one setting that is missing or malformed', () => {
    const problem = (env: NodeJS.ProcessEnv) => {
      const discord = connectorConfigFromEnv(env).discord;
      return discord && 'problem' in discord ? discord.problem : undefined;
    };
    expect(problem({ ...complete, DISCORD_BOT_TOKEN: '' })).toMatch(/DISCORD_BOT_TOKEN is not set/);
    expect(problem({ ...complete, DISCORD_APPLICATION_ID: '' })).toMatch(/DISCORD_APPLICATION_ID is not set/);
    expect(problem({ ...complete, DISCORD_APPLICATION_ID: 'my-app' })).toMatch(/numeric id/);
    expect(problem({ ...complete, DISCORD_PUBLIC_KEY: 'xyz' })).toMatch(
      /DISCORD_PUBLIC_KEY must be the 64 hex/,
    );
    expect(problem({ ...complete, DISCORD_API_ROOT: 'ftp://x' })).toMatch(/DISCORD_API_ROOT must be a URL/);
  });

  it('leaves Discord out with one error line and keeps the other platforms', () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const adapters = buildAdapters(connectorConfigFromEnv({ ...complete, DISCORD_PUBLIC_KEY: 'short' }), log);
    expect(adapters.map((adapter) => adapter.name)).toEqual(['webchat']);
    const errors = lines
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toMatch(/^Discord not started: DISCORD_PUBLIC_KEY/);
    expect(lines.join('')).not.toContain('tok"');
  });
});
