import { describe, expect, it } from 'vitest';
import {
  encodeFrame,
  parseConnectorFrame,
  parseGatewayFrame,
  parseMessageEvent,
  sessionSourceToWire,
} from '../../src/protocol/index.js';

// The literal frames of the current contract (§4.2), as a current reference gateway and connector write them.
const HELLO_DISCORD =
  '{"type":"hello","platform":"discord","botId":"app-1","command_manifest":[{"name":"new","description":"Start a new conversation"},{"name":"model","description":"Show or change the model","options":[{"type":3,"name":"name","description":"Model name. Leave empty to see current.","required":false}]}]}';
const OUTBOUND_TAGGED =
  '{"type":"outbound","requestId":"9b1d6c0e3f8a4e52b7c1d2e3f4a5b6c7","action":{"op":"send","chat_id":"tg-1","content":"a telegram reply","reply_to":null,"metadata":{"user_id":"u-1"}},"platform":"telegram","botId":"bot-9"}';
const PASSTHROUGH =
  '{"type":"passthrough_forward","forward":{"platform":"discord","botId":"appShared","method":"POST","path":"/interactions/discord/appShared","headers":[["content-type","application/json"]],"bodyB64":"eyJ0eXBlIjoyfQ=="},"bufferId":"pbuf-7"}';

describe('current-generation frames (§4.2 literals)', () => {
  it('reads a Discord hello with its command manifest, options passed through', () => {
    const parsed = parseGatewayFrame(JSON.parse(HELLO_DISCORD));
    expect(parsed.kind).toBe('frame');
    if (parsed.kind !== 'frame' || parsed.frame.type !== 'hello') throw new Error('not a hello');
    expect(parsed.frame.platform).toBe('discord');
    expect(parsed.frame.command_manifest?.[1]?.options?.[0]).toMatchObject({ type: 3, name: 'name' });
  });

  it('keeps platform and botId on the outbound frame itself', () => {
    const parsed = parseGatewayFrame(JSON.parse(OUTBOUND_TAGGED));
    if (parsed.kind !== 'frame' || parsed.frame.type !== 'outbound') throw new Error('not an outbound');
    expect(parsed.frame.platform).toBe('telegram');
    expect(parsed.frame.botId).toBe('bot-9');
  });

  it('reads going_idle / going_idle_ack and a buffered passthrough_forward', () => {
    expect(parseGatewayFrame({ type: 'going_idle' })).toEqual({
      kind: 'frame',
      frame: { type: 'going_idle' },
    });
    expect(parseConnectorFrame({ type: 'going_idle_ack' })).toEqual({
      kind: 'frame',
      frame: { type: 'going_idle_ack' },
    });
    const parsed = parseConnectorFrame(JSON.parse(PASSTHROUGH));
    if (parsed.kind !== 'frame' || parsed.frame.type !== 'passthrough_forward')
      throw new Error('not a forward');
    expect(parsed.frame.bufferId).toBe('pbuf-7');
    expect(parsed.frame.forward.headers).toEqual([['content-type', 'application/json']]);
    expect(Buffer.from(parsed.frame.forward.bodyB64, 'base64').toString()).toBe('{"type":2}');
  });

  it('writes every connector frame as one line ending in a newline', () => {
    expect(encodeFrame({ type: 'going_idle_ack' })).toBe('{"type":"going_idle_ack"}\n');
  });

  it('reads the current event fields and ignores what it does not know (§5.4, §5.5)', () => {
    const parsed = parseMessageEvent({
      text: 'hi',
      message_type: 'voice',
      message_id: 'm1',
      media_urls: ['https://c/relay/media/a'],
      media: [{ url: 'https://c/relay/media/a', mime: 'audio/ogg', kind: 'voice' }],
      reply_to: { author: 'Alice' },
      context: [{ text: 'earlier', source: { user_name: 'alice' } }],
      prompt_response: { prompt_id: 'a1b2c3d4', option_id: 'deny', prompt_message_id: 'pm55' },
      some_future_field: 1,
      source: { platform: 'discord', chat_id: 'c1', chat_type: 'group', scope_id: 'g1', profile: 'reviewer' },
    });
    if (!parsed.ok) throw new Error(parsed.error);
    expect(parsed.event.message_type).toBe('voice');
    expect(parsed.event.reply_to).toEqual({ author: 'Alice', text: undefined, is_own: undefined });
    expect(parsed.event.context?.[0]?.source.user_name).toBe('alice');
    expect(parsed.event.prompt_response?.option_id).toBe('deny');
    expect(parsed.event.source.profile).toBe('reviewer');
    expect(parsed.event.source.scope_id).toBe('g1');
  });

  it('sends is_bot and message_is_edit as explicit booleans, new source keys only when set', () => {
    const wire = sessionSourceToWire({ platform: 'webchat', chat_id: 'room', profile: 'reviewer' });
    expect(wire).toMatchObject({ is_bot: false, message_is_edit: false, profile: 'reviewer' });
    expect(wire).not.toHaveProperty('prospective_thread_id');
    expect(wire).not.toHaveProperty('one_to_one_verified');
  });
});
