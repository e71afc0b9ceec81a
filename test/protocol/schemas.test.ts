import { describe, expect, it } from 'vitest';
import {
  buildSessionKey,
  type CapabilityDescriptor,
  canonicalWhatsappId,
  connectorHttpBase,
  EnrollRequestSchema,
  EnrollResponseSchema,
  egressDeclined,
  enrollUrl,
  interpretDelivery,
  interruptDeliveryBody,
  isEgressDecline,
  LEGACY_OPS,
  mediaIdFromUrl,
  messageDeliveryBody,
  messageEventToWire,
  normalizePlatform,
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  parseConnectorFrame,
  parseDescriptor,
  parseGatewayFrame,
  parseMessageEvent,
  parseOutboundAction,
  parseRouteKeys,
  placeholderDescriptor,
  provisionUrl,
  readChatInfo,
  relayDialUrl,
  sessionSourceToWire,
  supportedOps,
  supportsCodeBlocks,
  supportsOp,
} from '../../src/protocol/index.js';

/** The June test descriptor (reference §4.4). */
const JUNE: Record<string, unknown> = {
  contract_version: 1,
  platform: 'discord',
  label: 'Discord',
  max_message_length: 2000,
  supports_draft_streaming: false,
  supports_edit: true,
  supports_threads: true,
  markdown_dialect: 'discord',
  len_unit: 'chars',
};
const REQUIRED = Object.keys(JUNE);

function descriptorOf(value: unknown): CapabilityDescriptor {
  const parsed = parseDescriptor(value);
  if (!parsed.ok) throw new Error(`expected a descriptor: ${parsed.error}`);
  return parsed.descriptor;
}

describe('parseDescriptor', () => {
  it('parses the June example and fills the optional defaults', () => {
    const d = descriptorOf(JUNE);
    expect(d).toMatchObject(JUNE);
    expect(d.emoji).toBe('\u{1F50C}');
    expect(d.platform_hint).toBe('');
    expect(d.pii_safe).toBe(false);
    expect(d.supported_ops).toBeUndefined();
  });

  it.each(REQUIRED)('rejects a descriptor without required field %s', (field) => {
    const { [field]: _dropped, ...rest } = JUNE;
    const parsed = parseDescriptor(rest);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toContain(field);
  });

  it.each([
    ['contract_version', '1'],
    ['contract_version', 1.5],
    ['platform', 7],
    ['supports_edit', 'yes'],
    ['len_unit', null],
  ])('rejects a wrongly typed required field %s = %j', (field, value) => {
    expect(parseDescriptor({ ...JUNE, [field]: value }).ok).toBe(false);
  });

  it.each([null, undefined, 'descriptor', 42, [], [JUNE]])(
    'rejects a non-object %j without throwing',
    (value) => {
      const parsed = parseDescriptor(value);
      expect(parsed.ok).toBe(false);
    },
  );

  it('keeps optional fields when they are given', () => {
    const d = descriptorOf({
      ...JUNE,
      emoji: 'X',
      platform_hint: 'hint',
      pii_safe: true,
      supported_ops: ['send'],
    });
    expect(d.emoji).toBe('X');
    expect(d.platform_hint).toBe('hint');
    expect(d.pii_safe).toBe(true);
    expect(d.supported_ops).toEqual(['send']);
  });

  it('defaults optional fields that arrive with the wrong type', () => {
    const d = descriptorOf({ ...JUNE, emoji: 5, platform_hint: null, pii_safe: 'yes' });
    expect(d.emoji).toBe('\u{1F50C}');
    expect(d.platform_hint).toBe('');
    expect(d.pii_safe).toBe(false);
  });

  it('drops unknown keys', () => {
    const d = descriptorOf({ ...JUNE, future_field: { x: 1 }, another: 'y' });
    expect(d).not.toHaveProperty('future_field');
    expect(d).not.toHaveProperty('another');
  });

  it('reads a positive numeric string as its number (current §6: Python keeps "2000" as a string)', () => {
    expect(descriptorOf({ ...JUNE, max_message_length: '2000' }).max_message_length).toBe(2000);
  });

  it.each([0, -5, 'abc', '-3', '0', '', null, Number.NaN, true, {}])(
    'maps max_message_length %j to 4096',
    (value) => {
      expect(descriptorOf({ ...JUNE, max_message_length: value }).max_message_length).toBe(4096);
    },
  );

  it('keeps a positive max_message_length (floored)', () => {
    expect(descriptorOf({ ...JUNE, max_message_length: 4000 }).max_message_length).toBe(4000);
    expect(descriptorOf({ ...JUNE, max_message_length: 1.9 }).max_message_length).toBe(1);
  });

  it('reads len_unit chars/utf16 and measures an unknown unit as utf16', () => {
    expect(descriptorOf({ ...JUNE, len_unit: 'chars' }).len_unit).toBe('chars');
    expect(descriptorOf({ ...JUNE, len_unit: 'utf16' }).len_unit).toBe('utf16');
    expect(descriptorOf({ ...JUNE, len_unit: 'graphemes' }).len_unit).toBe('utf16');
  });

  it('uses the legacy op set when supported_ops is absent or garbage', () => {
    expect([...LEGACY_OPS]).toEqual(['send', 'edit', 'typing', 'follow_up']);
    const legacy = descriptorOf(JUNE);
    expect(supportedOps(legacy)).toEqual(['send', 'edit', 'typing', 'follow_up']);
    expect(supportsOp(legacy, 'edit')).toBe(true);
    expect(supportsOp(legacy, 'get_chat_info')).toBe(false);
    expect(supportedOps(descriptorOf({ ...JUNE, supported_ops: 'send' }))).toEqual(LEGACY_OPS);
  });

  it('uses only the advertised ops when supported_ops is present', () => {
    const d = descriptorOf({ ...JUNE, supported_ops: ['send', 'get_chat_info'] });
    expect(supportedOps(d)).toEqual(['send', 'get_chat_info']);
    expect(supportsOp(d, 'get_chat_info')).toBe(true);
    expect(supportsOp(d, 'edit')).toBe(false);
    expect(supportedOps(descriptorOf({ ...JUNE, supported_ops: [] }))).toEqual([]);
  });

  it('supports code blocks unless the dialect is plain or empty', () => {
    expect(supportsCodeBlocks(descriptorOf(JUNE))).toBe(true);
    expect(supportsCodeBlocks(descriptorOf({ ...JUNE, markdown_dialect: 'plain' }))).toBe(false);
    expect(supportsCodeBlocks(descriptorOf({ ...JUNE, markdown_dialect: '' }))).toBe(false);
  });

  it('has the reference placeholder', () => {
    expect(placeholderDescriptor('telegram')).toMatchObject({
      contract_version: 1,
      platform: 'telegram',
      label: 'Relay',
      max_message_length: 4096,
      supports_draft_streaming: false,
      supports_edit: true,
      supports_threads: false,
      markdown_dialect: 'plain',
      len_unit: 'chars',
    });
    expect(placeholderDescriptor().platform).toBe('relay');
  });
});

describe('parseGatewayFrame (what the connector reads)', () => {
  it('parses hello, defaulting platform and botId', () => {
    expect(parseGatewayFrame({ type: 'hello', platform: 'discord', botId: 'b1' })).toEqual({
      kind: 'frame',
      frame: { type: 'hello', platform: 'discord', botId: 'b1' },
    });
    expect(parseGatewayFrame({ type: 'hello' })).toEqual({
      kind: 'frame',
      frame: { type: 'hello', platform: 'relay', botId: '' },
    });
  });

  it('parses outbound with a loose action and requires requestId', () => {
    const rid = '0123456789abcdef0123456789abcdef';
    const parsed = parseGatewayFrame({
      type: 'outbound',
      requestId: rid,
      action: { op: 'teleport', to: 'mars' },
    });
    expect(parsed).toEqual({
      kind: 'frame',
      frame: { type: 'outbound', requestId: rid, action: { op: 'teleport', to: 'mars' } },
    });
    expect(parseGatewayFrame({ type: 'outbound', action: { op: 'send' } }).kind).toBe('invalid');
    expect(parseGatewayFrame({ type: 'outbound', requestId: '', action: { op: 'send' } }).kind).toBe(
      'invalid',
    );
    expect(parseGatewayFrame({ type: 'outbound', requestId: rid }).kind).toBe('invalid');
  });

  it('parses interrupt, with reason always present (null when absent)', () => {
    expect(parseGatewayFrame({ type: 'interrupt', session_key: 'k', reason: 'stop' })).toEqual({
      kind: 'frame',
      frame: { type: 'interrupt', session_key: 'k', reason: 'stop' },
    });
    expect(parseGatewayFrame({ type: 'interrupt', session_key: 'k' })).toEqual({
      kind: 'frame',
      frame: { type: 'interrupt', session_key: 'k', reason: null },
    });
    const invalid = parseGatewayFrame({ type: 'interrupt', reason: 'stop' });
    expect(invalid.kind).toBe('invalid');
    if (invalid.kind === 'invalid') {
      expect(invalid.type).toBe('interrupt');
      expect(invalid.error).toContain('session_key');
    }
  });

  it('parses inbound_ack with a string or numeric bufferId', () => {
    expect(parseGatewayFrame({ type: 'inbound_ack', bufferId: 'b-1' }).kind).toBe('frame');
    expect(parseGatewayFrame({ type: 'inbound_ack', bufferId: 7 }).kind).toBe('frame');
    expect(parseGatewayFrame({ type: 'inbound_ack' }).kind).toBe('invalid');
  });

  it.each(['descriptor', 'outbound_result', 'inbound', 'interrupt_inbound'])(
    'ignores an echo of the connector frame type %s',
    (type) => {
      expect(parseGatewayFrame({ type })).toEqual({ kind: 'ignored', type });
    },
  );

  it.each(['ping', 'error', 'toString', '__proto__', 'constructor', 'hasOwnProperty'])(
    'ignores unknown type %s',
    (type) => {
      expect(parseGatewayFrame({ type })).toEqual({ kind: 'ignored', type });
    },
  );

  it('cuts a long unknown type to 64 characters', () => {
    const parsed = parseGatewayFrame({ type: 'z'.repeat(1000) });
    expect(parsed).toEqual({ kind: 'ignored', type: 'z'.repeat(64) });
  });

  it.each([null, undefined, 0, 'hello', [], [{ type: 'hello' }], {}, { type: 5 }, { type: null }])(
    'reports %j as invalid without throwing',
    (value) => {
      const parsed = parseGatewayFrame(value);
      expect(parsed.kind).toBe('invalid');
      if (parsed.kind === 'invalid') expect(parsed.type).toBeUndefined();
    },
  );
});

describe('parseConnectorFrame (what the gateway reads)', () => {
  it('parses a descriptor frame with the descriptor rules applied', () => {
    const parsed = parseConnectorFrame({
      type: 'descriptor',
      descriptor: { ...JUNE, max_message_length: 0, extra: 1 },
    });
    expect(parsed.kind).toBe('frame');
    if (parsed.kind === 'frame' && parsed.frame.type === 'descriptor') {
      expect(parsed.frame.descriptor.max_message_length).toBe(4096);
      expect(parsed.frame.descriptor).not.toHaveProperty('extra');
      expect(parsed.frame.descriptor.emoji).toBe('\u{1F50C}');
    }
  });

  it.each(REQUIRED)('treats a descriptor frame without %s as invalid, like parseDescriptor', (field) => {
    const { [field]: _dropped, ...rest } = JUNE;
    expect(parseConnectorFrame({ type: 'descriptor', descriptor: rest }).kind).toBe('invalid');
  });

  it('parses outbound_result, keeping unknown result keys', () => {
    const parsed = parseConnectorFrame({
      type: 'outbound_result',
      requestId: 'r1',
      result: { success: true, message_id: 99, extra: 'kept' },
    });
    expect(parsed).toEqual({
      kind: 'frame',
      frame: {
        type: 'outbound_result',
        requestId: 'r1',
        result: { success: true, message_id: '99', extra: 'kept' },
      },
    });
    expect(parseConnectorFrame({ type: 'outbound_result', result: {} }).kind).toBe('invalid');
  });

  it('parses inbound with and without bufferId and validates the event', () => {
    const ok = parseConnectorFrame({ type: 'inbound', event: { text: 'hi' }, bufferId: 'b1' });
    expect(ok.kind).toBe('frame');
    if (ok.kind === 'frame' && ok.frame.type === 'inbound') {
      expect(ok.frame.event.text).toBe('hi');
      expect(ok.frame.bufferId).toBe('b1');
    }
    expect(parseConnectorFrame({ type: 'inbound', event: {} }).kind).toBe('frame');
    expect(parseConnectorFrame({ type: 'inbound' }).kind).toBe('invalid');
    expect(parseConnectorFrame({ type: 'inbound', event: 'hi' }).kind).toBe('invalid');
  });

  it('parses interrupt_inbound, coercing chat_id to a string', () => {
    expect(parseConnectorFrame({ type: 'interrupt_inbound', session_key: 'k', chat_id: 5 })).toEqual({
      kind: 'frame',
      frame: { type: 'interrupt_inbound', session_key: 'k', chat_id: '5' },
    });
    expect(parseConnectorFrame({ type: 'interrupt_inbound', session_key: 'k' })).toEqual({
      kind: 'frame',
      frame: { type: 'interrupt_inbound', session_key: 'k', chat_id: '' },
    });
    expect(parseConnectorFrame({ type: 'interrupt_inbound', session_key: '' }).kind).toBe('invalid');
  });

  it.each(['hello', 'outbound', 'interrupt', 'inbound_ack', 'ping', 'valueOf'])('ignores type %s', (type) => {
    expect(parseConnectorFrame({ type })).toEqual({ kind: 'ignored', type });
  });

  it.each([null, 1, 'x', [], {}, { type: {} }])('reports %j as invalid without throwing', (value) => {
    expect(parseConnectorFrame(value).kind).toBe('invalid');
  });
});

describe('parseOutboundAction', () => {
  it('parses send, coercing a numeric chat_id and defaulting reply_to and metadata', () => {
    expect(parseOutboundAction({ op: 'send', chat_id: -100123, content: 'hi' })).toEqual({
      ok: true,
      action: { op: 'send', chat_id: '-100123', content: 'hi', reply_to: null, metadata: {} },
    });
    const full = parseOutboundAction({
      op: 'send',
      chat_id: 'c',
      content: 'x',
      reply_to: 12,
      metadata: { thread: 't' },
      platform: 'discord',
      botId: 'b',
    });
    expect(full).toEqual({
      ok: true,
      action: {
        op: 'send',
        chat_id: 'c',
        content: 'x',
        reply_to: '12',
        metadata: { thread: 't' },
        platform: 'discord',
        botId: 'b',
      },
    });
    const nulls = parseOutboundAction({
      op: 'send',
      chat_id: 'c',
      content: 'x',
      reply_to: null,
      metadata: null,
    });
    expect(nulls.ok && nulls.action.op === 'send' && nulls.action.reply_to).toBe(null);
    expect(nulls.ok && nulls.action.op === 'send' && nulls.action.metadata).toEqual({});
  });

  it('rejects send without content or chat_id', () => {
    expect(parseOutboundAction({ op: 'send', chat_id: 'c' }).ok).toBe(false);
    expect(parseOutboundAction({ op: 'send', content: 'x' }).ok).toBe(false);
    expect(parseOutboundAction({ op: 'send', chat_id: true, content: 'x' }).ok).toBe(false);
  });

  it('parses edit', () => {
    expect(parseOutboundAction({ op: 'edit', chat_id: 1, message_id: 2, content: 'new' })).toEqual({
      ok: true,
      action: { op: 'edit', chat_id: '1', message_id: '2', content: 'new', metadata: {} },
    });
    expect(parseOutboundAction({ op: 'edit', chat_id: 1, content: 'new' }).ok).toBe(false);
  });

  it('parses typing, with optional content', () => {
    expect(parseOutboundAction({ op: 'typing', chat_id: 'c' })).toEqual({
      ok: true,
      action: { op: 'typing', chat_id: 'c', metadata: {} },
    });
    expect(parseOutboundAction({ op: 'typing', chat_id: 'c', content: '' })).toEqual({
      ok: true,
      action: { op: 'typing', chat_id: 'c', content: '', metadata: {} },
    });
  });

  it('parses follow_up and requires session_key and kind', () => {
    expect(
      parseOutboundAction({
        op: 'follow_up',
        session_key: 'k',
        kind: 'discord.interaction_token',
        content: 'c',
      }),
    ).toEqual({
      ok: true,
      action: {
        op: 'follow_up',
        session_key: 'k',
        kind: 'discord.interaction_token',
        content: 'c',
        metadata: {},
      },
    });
    const missing = parseOutboundAction({ op: 'follow_up', kind: 'x', content: 'c' });
    expect(missing.ok).toBe(false);
    if (!missing.ok) {
      expect(missing.op).toBe('follow_up');
      expect(missing.error).toContain('session_key');
    }
    expect(parseOutboundAction({ op: 'follow_up', session_key: 'k', kind: '', content: 'c' }).ok).toBe(false);
  });

  it('parses get_chat_info', () => {
    expect(parseOutboundAction({ op: 'get_chat_info', chat_id: 42 })).toEqual({
      ok: true,
      action: { op: 'get_chat_info', chat_id: '42' },
    });
  });

  it('answers an unknown op with an error result, never an exception', () => {
    expect(parseOutboundAction({ op: 'teleport', chat_id: 'c' })).toEqual({
      ok: false,
      op: 'teleport',
      error: 'unsupported op: teleport',
    });
    for (const op of ['toString', '__proto__', 'constructor']) {
      const parsed = parseOutboundAction({ op });
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(parsed.error).toContain('unsupported op');
    }
    const long = parseOutboundAction({ op: 'o'.repeat(500) });
    expect(!long.ok && long.error.length).toBeLessThan(100);
  });

  it.each([null, undefined, 'send', 5, [], [{ op: 'send' }], {}, { op: 5 }])(
    'rejects %j with ok:false and an error',
    (value) => {
      const parsed = parseOutboundAction(value);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(parsed.error).toBeTruthy();
    },
  );
});

describe('readChatInfo', () => {
  it('reads chat_info, else the top level, with the reference defaults', () => {
    expect(readChatInfo({ chat_info: { name: 'Room', type: 'group' } }, 'c')).toEqual({
      name: 'Room',
      type: 'group',
    });
    expect(readChatInfo({ name: 'Top', type: 'channel' }, 'c')).toEqual({ name: 'Top', type: 'channel' });
    expect(readChatInfo({ success: false }, 'c9')).toEqual({ name: 'c9', type: 'dm' });
  });
});

describe('parseMessageEvent', () => {
  it('fills defaults for an empty event', () => {
    const parsed = parseMessageEvent({});
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.event.text).toBe('');
      expect(parsed.event.message_type).toBe('text');
      expect(parsed.event.media_urls).toEqual([]);
      expect(parsed.event.message_id).toBeUndefined();
      expect(parsed.event.source.platform).toBe('relay');
      expect(parsed.event.source.chat_id).toBe('');
      expect(parsed.event.source.chat_type).toBe('dm');
    }
  });

  it.each(['text', 'photo', 'voice', 'command', 'sticker'])('keeps the known message_type %s', (type) => {
    const parsed = parseMessageEvent({ message_type: type });
    expect(parsed.ok && parsed.event.message_type).toBe(type);
  });

  it.each(['gif', '', 'TEXT', 5, null, {}])('reads unknown message_type %j as text', (type) => {
    const parsed = parseMessageEvent({ text: 'x', message_type: type });
    expect(parsed.ok && parsed.event.message_type).toBe('text');
  });

  it('coerces numeric ids to strings and keeps source fields', () => {
    const parsed = parseMessageEvent({
      text: 'hello',
      message_id: 1234,
      reply_to_message_id: '1200',
      media_urls: ['https://x/1.png'],
      source: { platform: 'telegram', chat_id: -100, chat_type: 'group', user_id: 7, guild_id: null },
    });
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.event.message_id).toBe('1234');
      expect(parsed.event.reply_to_message_id).toBe('1200');
      expect(parsed.event.media_urls).toEqual(['https://x/1.png']);
      expect(parsed.event.source).toMatchObject({
        platform: 'telegram',
        chat_id: '-100',
        chat_type: 'group',
        user_id: '7',
      });
      expect(parsed.event.source.guild_id).toBeUndefined();
    }
  });

  it('tolerates garbage in optional places', () => {
    const parsed = parseMessageEvent({ text: 5, media_urls: 'x', source: 'nope' });
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.event.text).toBe('');
      expect(parsed.event.media_urls).toEqual([]);
      expect(parsed.event.source.platform).toBe('relay');
    }
  });

  it.each([null, undefined, 'hi', 3, [], [{}]])('rejects the non-object %j', (value) => {
    const parsed = parseMessageEvent(value);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(/object/);
  });
});

describe('sessionSourceToWire', () => {
  const ALWAYS = [
    'platform',
    'chat_id',
    'chat_name',
    'chat_type',
    'user_id',
    'user_name',
    'thread_id',
    'chat_topic',
  ];

  it('always sends the eight reference keys, null when unset', () => {
    const wire = sessionSourceToWire({ platform: 'discord' });
    for (const key of ALWAYS) expect(wire).toHaveProperty(key);
    expect(wire).toEqual({
      platform: 'discord',
      chat_id: null,
      chat_name: null,
      chat_type: 'dm',
      user_id: null,
      user_name: null,
      thread_id: null,
      chat_topic: null,
      is_bot: false,
      message_is_edit: false,
    });
  });

  it('sends the optional keys only when truthy', () => {
    const empty = sessionSourceToWire({
      platform: 'discord',
      user_id_alt: '',
      chat_id_alt: '',
      guild_id: '',
      parent_chat_id: undefined,
      message_id: '',
    });
    for (const key of [
      'user_id_alt',
      'chat_id_alt',
      'guild_id',
      'parent_chat_id',
      'message_id',
      'scope_id',
    ]) {
      expect(empty).not.toHaveProperty(key);
    }
    const full = sessionSourceToWire({
      platform: 'discord',
      chat_id: 'chanA',
      chat_type: 'group',
      user_id: 'userX',
      user_id_alt: 'alt',
      chat_id_alt: 'calt',
      guild_id: 'g1',
      parent_chat_id: 'p',
      message_id: 'm',
      is_bot: true,
    });
    expect(full).toMatchObject({
      chat_id: 'chanA',
      chat_type: 'group',
      user_id: 'userX',
      user_id_alt: 'alt',
      chat_id_alt: 'calt',
      guild_id: 'g1',
      parent_chat_id: 'p',
      message_id: 'm',
      is_bot: true,
    });
    // The always-present keys stay present even when others are set.
    expect(full.chat_name).toBeNull();
  });

  it('round-trips through parseMessageEvent via messageEventToWire', () => {
    const wire = messageEventToWire({
      text: 'hi',
      message_id: 'm1',
      source: { platform: 'telegram', chat_id: '555', chat_type: 'dm', user_id: '555' },
    });
    expect(wire).toMatchObject({ text: 'hi', message_type: 'text', message_id: 'm1', media_urls: [] });
    expect(wire).not.toHaveProperty('reply_to_message_id');
    const parsed = parseMessageEvent(JSON.parse(JSON.stringify(wire)));
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.event.source).toMatchObject({ platform: 'telegram', chat_id: '555', user_id: '555' });
      expect(buildSessionKey(parsed.event.source)).toBe('agent:main:telegram:dm:555');
    }
  });
});

describe('interpretDelivery (reference §3.3/§3.4)', () => {
  it('treats the /interrupt path as an interrupt whatever the body type', () => {
    expect(
      interpretDelivery('/interrupt', {
        type: 'message',
        session_key: 'agent:main:x',
        chat_id: 'c1',
        reason: 'stop',
      }),
    ).toEqual({ kind: 'interrupt', sessionKey: 'agent:main:x', chatId: 'c1', deliveryId: undefined });
  });

  it('treats body type interrupt on the root path as an interrupt', () => {
    expect(
      interpretDelivery('/', { type: 'interrupt', session_key: 'k', chat_id: 'c', delivery_id: 'd1' }),
    ).toEqual({
      kind: 'interrupt',
      sessionKey: 'k',
      chatId: 'c',
      deliveryId: 'd1',
    });
  });

  it('falls back to reason for chat_id (the reference quirk), then to ""', () => {
    const fromReason = interpretDelivery('/interrupt', {
      type: 'interrupt',
      session_key: 'k',
      reason: 'stop',
    });
    expect(fromReason).toMatchObject({ kind: 'interrupt', chatId: 'stop' });
    const emptyChat = interpretDelivery('/interrupt', { session_key: 'k', chat_id: '', reason: 'r' });
    expect(emptyChat).toMatchObject({ chatId: 'r' });
    expect(interpretDelivery('/interrupt', { session_key: 'k' })).toMatchObject({ chatId: '' });
    expect(interpretDelivery('/interrupt', { session_key: 'k', chat_id: 5, reason: 6 })).toMatchObject({
      chatId: '',
    });
  });

  it('accepts an interrupt without session key (200, nothing to dispatch)', () => {
    expect(interpretDelivery('/interrupt', {})).toEqual({
      kind: 'interrupt',
      sessionKey: '',
      chatId: '',
      deliveryId: undefined,
    });
    expect(interpretDelivery('/interrupt', ['not', 'an', 'object'])).toMatchObject({
      kind: 'interrupt',
      sessionKey: '',
    });
  });

  it('dispatches a message with its event, ignoring the body type on the root path', () => {
    const result = interpretDelivery('/', {
      type: 'whatever',
      event: { text: 'hi' },
      delivery_id: 'd9',
      extra: 1,
    });
    expect(result.kind).toBe('message');
    if (result.kind === 'message') {
      expect(result.event.text).toBe('hi');
      expect(result.deliveryId).toBe('d9');
    }
    expect(interpretDelivery('/', { event: {} }).kind).toBe('message');
  });

  it.each([
    { type: 'message' },
    { type: 'message', event: null },
    { type: 'message', event: 'hi' },
    { type: 'message', event: [] },
    {},
    [],
    'text',
    null,
  ])('rejects %j on the root path with 400 missing event', (body) => {
    expect(interpretDelivery('/', body)).toEqual({ kind: 'rejected', status: 400, error: 'missing event' });
  });

  it('ignores a non-string delivery_id', () => {
    const result = interpretDelivery('/', { event: {}, delivery_id: 7 });
    expect(result.kind === 'message' && result.deliveryId).toBeUndefined();
  });

  it('builds bodies the interpreter reads back', () => {
    const msg = messageDeliveryBody({ text: 'x' }, 'd1');
    expect(msg).toEqual({ type: 'message', event: { text: 'x' }, delivery_id: 'd1' });
    expect(messageDeliveryBody({ text: 'x' })).not.toHaveProperty('delivery_id');
    const stop = interruptDeliveryBody('k', 'c');
    expect(stop).toEqual({ type: 'interrupt', session_key: 'k', chat_id: 'c', reason: 'stop' });
    expect(interpretDelivery('/', JSON.parse(JSON.stringify(stop)))).toEqual({
      kind: 'interrupt',
      sessionKey: 'k',
      chatId: 'c',
      deliveryId: undefined,
    });
  });
});

describe('enroll and provision schemas', () => {
  const enroll = (gatewayId: unknown, extra: Record<string, unknown> = {}) =>
    EnrollRequestSchema.safeParse({ enrollmentToken: 'tok', gatewayId, ...extra });

  it('accepts printable gateway ids, including colons and unicode', () => {
    for (const id of ['gw-host', 'gw:with:colons', 'gw-caf\u00e9-\u{1F50C}'])
      expect(enroll(id).success).toBe(true);
  });

  it.each(['gw 1', 'gw\t1', 'gw\n1', ' gw', 'gw ', '', 'gw\u00001', 'x'.repeat(129), 5, null])(
    'rejects the gateway id %j',
    (id) => {
      expect(enroll(id).success).toBe(false);
    },
  );

  it('requires an enrollment token', () => {
    expect(EnrollRequestSchema.safeParse({ gatewayId: 'gw' }).success).toBe(false);
    expect(EnrollRequestSchema.safeParse({ enrollmentToken: '', gatewayId: 'gw' }).success).toBe(false);
  });

  it('accepts an http(s) or empty endpoint and strips trailing slashes', () => {
    const https = enroll('gw', { gatewayEndpoint: 'https://gw.example.com/inbound/' });
    expect(https.success && https.data.gatewayEndpoint).toBe('https://gw.example.com/inbound');
    expect(enroll('gw', { gatewayEndpoint: 'http://10.0.0.1:8080' }).success).toBe(true);
    expect(enroll('gw', { gatewayEndpoint: '' }).success).toBe(true);
  });

  it.each([
    'ftp://gw.example.com',
    'ws://gw.example.com',
    'gw.example.com',
    'not a url',
    'javascript:alert(1)',
  ])('rejects the endpoint %s', (endpoint) => {
    expect(enroll('gw', { gatewayEndpoint: endpoint }).success).toBe(false);
    expect(ProvisionRequestSchema.safeParse({ gatewayId: 'gw', gatewayEndpoint: endpoint }).success).toBe(
      false,
    );
  });

  it('defaults the provision body', () => {
    expect(ProvisionRequestSchema.parse({ gatewayId: 'gw-host' })).toEqual({
      gatewayId: 'gw-host',
      platform: 'relay',
      botId: '',
      gatewayEndpoint: '',
      routeKeys: [],
    });
    expect(ProvisionRequestSchema.safeParse({ gatewayId: 'gw host' }).success).toBe(false);
  });

  it('trims route keys in request bodies', () => {
    const parsed = ProvisionRequestSchema.parse({ gatewayId: 'gw', routeKeys: [' guild-1 ', 'guild-2'] });
    expect(parsed.routeKeys).toEqual(['guild-1', 'guild-2']);
  });

  it('reads responses: enroll needs a non-empty secret, provision defaults routeKeys', () => {
    const body = { secret: 's', deliveryKey: 'd', tenant: 't', gatewayId: 'gw' };
    expect(EnrollResponseSchema.safeParse(body).success).toBe(true);
    expect(EnrollResponseSchema.safeParse({ ...body, secret: '' }).success).toBe(false);
    expect(EnrollResponseSchema.safeParse({ deliveryKey: 'd', tenant: 't', gatewayId: 'gw' }).success).toBe(
      false,
    );
    expect(ProvisionResponseSchema.parse(body).routeKeys).toEqual([]);
  });

  it('parseRouteKeys trims and drops empties (reference §5.4)', () => {
    expect(parseRouteKeys('guild-1, guild-2 ,, guild-3')).toEqual(['guild-1', 'guild-2', 'guild-3']);
    expect(parseRouteKeys('')).toEqual([]);
    expect(parseRouteKeys(' , ,')).toEqual([]);
    expect(parseRouteKeys(undefined)).toEqual([]);
    expect(parseRouteKeys(null)).toEqual([]);
    expect(parseRouteKeys([' a ', '', 'b'])).toEqual(['a', 'b']);
  });
});

describe('connector URLs (reference §5.1–§5.2)', () => {
  it.each([
    ['wss://c.example/relay', 'https://c.example/relay/provision'],
    ['ws://c.example/relay', 'http://c.example/relay/provision'],
    ['https://c.example', 'https://c.example/relay/provision'],
    ['https://c.example/', 'https://c.example/relay/provision'],
    ['wss://c.example/relay/', 'https://c.example/relay/provision'],
    ['http://h:1', 'http://h:1/relay/provision'],
  ])('provisionUrl(%s) = %s', (configured, expected) => {
    expect(provisionUrl(configured)).toBe(expected);
  });

  it.each([
    ['wss://c.example/relay', 'https://c.example/relay/enroll'],
    ['ws://127.0.0.1:8700/relay', 'http://127.0.0.1:8700/relay/enroll'],
    ['https://c.example', 'https://c.example/relay/enroll'],
  ])('enrollUrl(%s) = %s', (configured, expected) => {
    expect(enrollUrl(configured)).toBe(expected);
  });

  it.each([
    ['http://h:1', 'ws://h:1/relay'],
    ['https://c.example', 'wss://c.example/relay'],
    ['https://c.example/', 'wss://c.example/relay'],
    ['wss://c.example/relay', 'wss://c.example/relay'],
    ['wss://c.example/relay/', 'wss://c.example/relay'],
    ['ws://h:1', 'ws://h:1/relay'],
    ['HTTPS://C.example', 'wss://C.example/relay'],
  ])('relayDialUrl(%s) = %s', (configured, expected) => {
    expect(relayDialUrl(configured)).toBe(expected);
  });

  it('connectorHttpBase strips the relay path', () => {
    expect(connectorHttpBase('wss://c.example/relay')).toBe('https://c.example');
    expect(connectorHttpBase('  https://c.example/  ')).toBe('https://c.example');
  });
});

describe('buildSessionKey: extra cases (reference §7.3)', () => {
  it('canonicalises WhatsApp ids', () => {
    expect(canonicalWhatsappId('+1555:3@s.whatsapp.net')).toBe('1555');
    expect(canonicalWhatsappId(' 1555@s.whatsapp.net ')).toBe('1555');
    expect(canonicalWhatsappId('1555')).toBe('1555');
  });

  it('uses the canonical WhatsApp chat id in a DM', () => {
    expect(
      buildSessionKey({ platform: 'whatsapp', chat_type: 'dm', chat_id: '+1555:3@s.whatsapp.net' }),
    ).toBe('agent:main:whatsapp:dm:1555');
    expect(
      buildSessionKey({
        platform: 'whatsapp',
        chat_type: 'dm',
        chat_id: '',
        user_id: '+1666@s.whatsapp.net',
      }),
    ).toBe('agent:main:whatsapp:dm:1666');
  });

  it('uses the canonical WhatsApp participant in a group, and a custom canonicaliser when given', () => {
    const source = {
      platform: 'whatsapp',
      chat_type: 'group',
      chat_id: 'grp@g.us',
      user_id: '+1777:2@s.whatsapp.net',
    };
    expect(buildSessionKey(source)).toBe('agent:main:whatsapp:group:grp@g.us:1777');
    expect(buildSessionKey(source, { canonicalWhatsapp: () => 'mapped' })).toBe(
      'agent:main:whatsapp:group:grp@g.us:mapped',
    );
    // A canonicaliser that yields nothing keeps the raw participant id.
    expect(buildSessionKey(source, { canonicalWhatsapp: () => '' })).toBe(
      'agent:main:whatsapp:group:grp@g.us:+1777:2@s.whatsapp.net',
    );
  });

  it('does not canonicalise ids on other platforms', () => {
    expect(buildSessionKey({ platform: 'signal', chat_type: 'dm', chat_id: '+1555@x' })).toBe(
      'agent:main:signal:dm:+1555@x',
    );
  });

  it('appends the thread id to DM keys', () => {
    expect(buildSessionKey({ platform: 'telegram', chat_type: 'dm', chat_id: '555', thread_id: '7' })).toBe(
      'agent:main:telegram:dm:555:7',
    );
    expect(buildSessionKey({ platform: 'telegram', chat_type: 'dm', user_id: '9', thread_id: '7' })).toBe(
      'agent:main:telegram:dm:9:7',
    );
    expect(buildSessionKey({ platform: 'telegram', chat_type: 'dm', thread_id: '7' })).toBe(
      'agent:main:telegram:dm:7',
    );
  });

  it('prefers user_id_alt for DMs without a chat id', () => {
    expect(
      buildSessionKey({ platform: 'signal', chat_type: 'dm', user_id: '+1555', user_id_alt: 'uuid-1' }),
    ).toBe('agent:main:signal:dm:uuid-1');
  });

  it('treats a missing chat_type as dm', () => {
    expect(buildSessionKey({ platform: 'telegram', chat_id: '555' })).toBe('agent:main:telegram:dm:555');
    expect(buildSessionKey({ platform: 'telegram', chat_type: null, chat_id: '555' })).toBe(
      'agent:main:telegram:dm:555',
    );
  });

  it('leaves the participant out of a group key when there is none', () => {
    expect(buildSessionKey({ platform: 'discord', chat_type: 'group', chat_id: 'chanA' })).toBe(
      'agent:main:discord:group:chanA',
    );
    expect(buildSessionKey({ platform: 'discord', chat_type: 'group', chat_id: 'chanA', user_id: '' })).toBe(
      'agent:main:discord:group:chanA',
    );
  });

  it('omits an empty chat id in a group key', () => {
    expect(buildSessionKey({ platform: 'discord', chat_type: 'channel', user_id: 'u' })).toBe(
      'agent:main:discord:channel:u',
    );
  });

  it('isolates thread participants only when asked', () => {
    const thread = { platform: 'discord', chat_type: 'thread', chat_id: 'p', thread_id: 'T1', user_id: 'u' };
    expect(buildSessionKey(thread)).toBe('agent:main:discord:thread:p:T1');
    expect(buildSessionKey(thread, { threadSessionsPerUser: true })).toBe('agent:main:discord:thread:p:T1:u');
    expect(buildSessionKey(thread, { groupSessionsPerUser: false, threadSessionsPerUser: true })).toBe(
      'agent:main:discord:thread:p:T1',
    );
  });
});

describe('current §14 literal cases on the shared protocol', () => {
  it('case 24: a descriptor with supports_context and an unknown future field parses', () => {
    const parsed = descriptorOf({
      ...placeholderDescriptor('discord'),
      supports_context: true,
      some_future_field: 123,
    });
    expect(parsed.supports_context).toBe(true);
    expect(parsed).not.toHaveProperty('some_future_field');
  });

  it('case 26: a source of {}, {platform:"relay"} or {platform:"not_a_platform"} keys as relay', () => {
    for (const source of [{}, { platform: 'relay' }, { platform: 'not_a_platform' }]) {
      const parsed = parseMessageEvent({ text: 'x', source });
      expect(parsed.ok && normalizePlatform(parsed.event.source.platform)).toBe('relay');
    }
  });

  it('case 41: an egress decline is the code or the text "egress declined:" in any case, never an ambiguous result', () => {
    expect(isEgressDecline({ success: false, code: 'egress_declined' })).toBe(true);
    expect(
      isEgressDecline({
        success: false,
        error: 'DISCORD EGRESS DECLINED: target is not an approved destination for this connection',
      }),
    ).toBe(true);
    expect(isEgressDecline({ success: false, error: 'discord egress declined: x', ambiguous: true })).toBe(
      false,
    );
    expect(isEgressDecline({ success: false, error: 'file too large' })).toBe(false);
    expect(isEgressDecline({ success: true, code: 'egress_declined' })).toBe(false);
    expect(egressDeclined('discord')).toEqual({
      success: false,
      code: 'egress_declined',
      error: 'discord egress declined: target is not an approved destination for this connection',
    });
  });

  it('reads a media id only from an exact /relay/media/<id> path, and refuses a thread rename whose guard cannot be read', () => {
    const id = 'ab'.repeat(16);
    expect(mediaIdFromUrl(`https://conn.example/relay/media/${id}`)).toBe(id);
    for (const url of [
      `https://x.example/prefix/relay/media/${id}`,
      `https://conn.example/relay/media/${id}/more`,
      `file:///relay/media/${id}`,
      'not a url',
    ])
      expect(mediaIdFromUrl(url), url).toBeUndefined();
    const rename = (guard: unknown) =>
      parseOutboundAction({
        op: 'thread_rename',
        chat_id: 'c',
        message_id: 't',
        thread_name: 'x',
        only_if_current_name: guard,
      });
    expect(rename('Hermes').ok).toBe(true);
    expect(rename(42).ok).toBe(false);
    expect(rename('n'.repeat(101)).ok).toBe(false);
  });
});
