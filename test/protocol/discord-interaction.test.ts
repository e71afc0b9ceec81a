import { describe, expect, it } from 'vitest';
import {
  buildSessionKey,
  type DiscordInteraction,
  discordInteractionEvent,
  messageEventToWire,
  parseConnectorFrame,
  parseDiscordInteraction,
  parseMessageEvent,
  type SessionSourceInit,
} from '../../src/protocol/index.js';

/**
 * The Discord interaction decoder both ends share (current §12): what the gateway runs a turn on,
 * and what the connector binds an interaction's follow-up capability to.
 */

// §4.2: the literal passthrough_forward of the current contract.
const LITERAL_FORWARD =
  '{"type":"passthrough_forward","forward":{"platform":"discord","botId":"appShared","method":"POST","path":"/interactions/discord/appShared","headers":[["content-type","application/json"]],"bodyB64":"eyJ0eXBlIjoyLCJpZCI6ImludGVyYWN0aW9uLTEiLCJjaGFubmVsX2lkIjoiY2hhbi05IiwiZ3VpbGRfaWQiOiJndWlsZC03IiwiZGF0YSI6eyJuYW1lIjoic3VtbWFyaXplIn0sIm1lbWJlciI6eyJ1c2VyIjp7ImlkIjoidXNlci0zIiwidXNlcm5hbWUiOiJiZW4ifX19"},"bufferId":"pbuf-7"}';

const member = { user: { id: 'u1', username: 'ben' } };

function interaction(body: Record<string, unknown>): DiscordInteraction {
  const parsed = parseDiscordInteraction(
    JSON.stringify({ id: 'i1', type: 2, channel_id: 'ch1', guild_id: 'g1', member, ...body }),
  );
  if (!parsed) throw new Error('not an interaction');
  return parsed;
}

const command = (data: Record<string, unknown>) => discordInteractionEvent(interaction({ type: 2, data }));

/** The event a gateway reads, through the wire form an `inbound` frame would carry. */
function wireEvent(init: ReturnType<typeof discordInteractionEvent>) {
  const parsed = parseMessageEvent(messageEventToWire(init));
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.event;
}

/** A text message's source as the connector's Discord adapter builds it for the same place. */
function messageSource(fields: Partial<SessionSourceInit>): SessionSourceInit {
  return { platform: 'discord', user_id: 'u1', message_id: 'm1', is_bot: false, ...fields };
}

describe('the §4.2 literal forward (current §12)', () => {
  it('decodes to /summarize from user-3 in channel chan-9 of guild guild-7', () => {
    const parsed = parseConnectorFrame(JSON.parse(LITERAL_FORWARD));
    if (parsed.kind !== 'frame' || parsed.frame.type !== 'passthrough_forward')
      throw new Error('not a forward');
    const body = Buffer.from(parsed.frame.forward.bodyB64, 'base64');
    const decoded = parseDiscordInteraction(body);
    if (!decoded) throw new Error('not an interaction');
    const event = wireEvent(discordInteractionEvent(decoded, parsed.frame.forward.profile));
    expect(event).toMatchObject({
      text: '/summarize',
      message_type: 'command',
      message_id: 'interaction-1',
      source: {
        platform: 'discord',
        chat_id: 'chan-9',
        chat_type: 'group',
        scope_id: 'guild-7',
        user_id: 'user-3',
        user_name: 'ben',
      },
    });
    // A slash command is no message: nothing to react to or reply to (current §7.5).
    expect(event.source.message_id).toBeUndefined();
    expect(event.source.profile).toBeUndefined();
    expect(buildSessionKey(event.source)).toBe('agent:main:discord:group:chan-9:user-3');
  });
});

describe('application commands (type 2)', () => {
  it('gives scalar option values after the name (current §14 case 44)', () => {
    expect(command({ name: 'model', options: [{ name: 'name', type: 3, value: 'gpt-x' }] }).text).toBe(
      '/model gpt-x',
    );
    expect(command({ name: 'new' })).toMatchObject({ text: '/new', message_type: 'command' });
    expect(
      command({
        name: 'roll',
        options: [
          { name: 'sides', type: 4, value: 20 },
          { name: 'loud', type: 5, value: true },
          { name: 'note', type: 3, value: '  padded  ' },
          { name: 'empty', type: 3, value: '   ' },
        ],
      }).text,
    ).toBe('/roll 20 true padded');
  });

  it('gives a sub-command and a sub-command group their names, then their options', () => {
    expect(
      command({
        name: 'skill',
        options: [{ name: 'run', type: 1, options: [{ name: 'skill', type: 3, value: 'deploy' }] }],
      }).text,
    ).toBe('/skill run deploy');
    expect(
      command({
        name: 'admin',
        options: [
          {
            name: 'user',
            type: 2,
            options: [{ name: 'ban', type: 1, options: [{ name: 'who', type: 6, value: 'u9' }] }],
          },
        ],
      }).text,
    ).toBe('/admin user ban u9');
    // A sub-command without options is just its name.
    expect(command({ name: 'skill', options: [{ name: 'list', type: 1 }] }).text).toBe('/skill list');
  });

  it('skips an option it cannot read instead of dropping them all, and keeps the body as received', () => {
    const options = [
      'junk',
      { name: 'no-type', value: 'x' },
      { name: 'ok', type: 3, value: 'kept', focused: false },
    ];
    const decoded = interaction({ type: 2, data: { name: 'find', options } });
    expect(discordInteractionEvent(decoded).text).toBe('/find kept');
    // What the connector re-serialises to forward: the options exactly as Discord sent them.
    expect(decoded.data?.options).toEqual(options);
  });

  it('reads a command without a name, a ping and an autocomplete as empty text', () => {
    expect(command({})).toMatchObject({ text: '', message_type: 'text' });
    expect(discordInteractionEvent(interaction({ type: 1 }))).toMatchObject({
      text: '',
      message_type: 'text',
    });
    expect(
      discordInteractionEvent(interaction({ type: 4, data: { name: 'model', options: [] } })),
    ).toMatchObject({ text: '', message_type: 'text' });
  });
});

describe('component presses (type 3)', () => {
  it('turns a press on an hp1: prompt button into the prompt response (current §14 case 36)', () => {
    const event = wireEvent(
      discordInteractionEvent(
        interaction({
          type: 3,
          id: 'press-1',
          message: { id: 'pm55' },
          data: { custom_id: 'hp1:a1b2c3d4:deny' },
        }),
      ),
    );
    expect(event).toMatchObject({
      text: '/deny',
      message_type: 'command',
      message_id: 'press-1',
      prompt_response: { prompt_id: 'a1b2c3d4', option_id: 'deny', prompt_message_id: 'pm55' },
    });
    // The press happened on the prompt's message: that is the source's message (current §12).
    expect(event.source.message_id).toBe('pm55');
    // The gateway's own prompt ids (`<6 hex>.<8 hex>`) decode the same way.
    expect(
      discordInteractionEvent(
        interaction({ type: 3, message: { id: 'pm1' }, data: { custom_id: 'hp1:0a1b2c.deadbeef:once' } }),
      ).prompt_response,
    ).toEqual({ prompt_id: '0a1b2c.deadbeef', option_id: 'once', prompt_message_id: 'pm1' });
  });

  it('names the pressed button’s label from the message Discord sends with the press', () => {
    const message = {
      id: 'pm2',
      components: [
        {
          type: 1,
          components: [
            { type: 2, label: 'Yes', custom_id: 'hp1:0a1b2c.deadbeef:yes' },
            { type: 2, label: 'No', custom_id: 'hp1:0a1b2c.deadbeef:no' },
          ],
        },
      ],
    };
    expect(
      discordInteractionEvent(
        interaction({ type: 3, message, data: { custom_id: 'hp1:0a1b2c.deadbeef:no' } }),
      ).prompt_response,
    ).toEqual({ prompt_id: '0a1b2c.deadbeef', option_id: 'no', prompt_message_id: 'pm2', label: 'No' });
  });

  it('keeps any other custom_id as text, with no prompt response', () => {
    for (const customId of ['inspect', 'hp1:only-two', 'hp1:a:b:c', 'hp2:a:b', 'hp1:bad id:x']) {
      const event = discordInteractionEvent(
        interaction({ type: 3, message: { id: 'm7' }, data: { custom_id: customId } }),
      );
      expect(event).toMatchObject({ text: customId, message_type: 'text' });
      expect(event.prompt_response).toBeUndefined();
    }
  });
});

describe('modal submits (type 5)', () => {
  const expected = 'answer=café 東京\noptional=';

  it('gives custom_id=value lines, from action rows and from labels (current §14 case 45)', () => {
    const legacy = [
      {
        type: 1,
        components: [
          { type: 4, custom_id: 'answer', value: 'café 東京' },
          { type: 4, custom_id: 'optional', value: '' },
        ],
      },
    ];
    const labels = [
      { type: 18, id: 1, component: { type: 4, id: 2, custom_id: 'answer', value: 'café 東京' } },
      { type: 10, id: 5, content: 'a text display gives no line' },
      { type: 18, id: 3, component: { type: 4, id: 4, custom_id: 'optional', value: '' } },
    ];
    for (const components of [legacy, labels]) {
      const event = discordInteractionEvent(
        interaction({ type: 5, data: { custom_id: 'profile-form', components } }),
      );
      expect(event).toMatchObject({ text: expected, message_type: 'text' });
    }
  });

  it('gives a select in a modal its values', () => {
    const components = [
      { type: 18, component: { type: 3, custom_id: 'colours', values: ['red', 'blue'] } },
      { type: 18, component: { type: 3, custom_id: 'none', values: [] } },
    ];
    expect(discordInteractionEvent(interaction({ type: 5, data: { components } })).text).toBe(
      'colours=red,blue\nnone=',
    );
  });
});

describe('where it happened: the same session as a message from there (current §5.6, §12)', () => {
  it('a guild channel: group, scope_id = the guild, keyed per user like a message', () => {
    const event = wireEvent(command({ name: 'status' }));
    expect(event.source).toMatchObject({ chat_id: 'ch1', chat_type: 'group', scope_id: 'g1', user_id: 'u1' });
    expect(buildSessionKey(event.source)).toBe(
      buildSessionKey(messageSource({ chat_id: 'ch1', chat_type: 'group', scope_id: 'g1' })),
    );
  });

  it('a thread: chat_type thread, thread_id = the thread, parent_chat_id = its channel', () => {
    const event = wireEvent(
      discordInteractionEvent(
        interaction({
          channel_id: 'th1',
          channel: { id: 'th1', type: 11, parent_id: 'ch1', name: 'fix the build' },
          data: { name: 'status' },
        }),
      ),
    );
    expect(event.source).toMatchObject({
      chat_id: 'th1',
      chat_type: 'thread',
      thread_id: 'th1',
      parent_chat_id: 'ch1',
      chat_name: 'fix the build',
      scope_id: 'g1',
    });
    const message = messageSource({
      chat_id: 'th1',
      chat_type: 'thread',
      thread_id: 'th1',
      parent_chat_id: 'ch1',
      scope_id: 'g1',
    });
    expect(buildSessionKey(event.source)).toBe(buildSessionKey(message));
    expect(buildSessionKey(event.source)).toBe('agent:main:discord:thread:th1:th1');
    // Announcement (10) and private (12) threads too; a text channel (0) is not one.
    for (const type of [10, 12]) {
      const other = discordInteractionEvent(
        interaction({ channel_id: 'th1', channel: { id: 'th1', type }, data: { name: 'x' } }),
      );
      expect(other.source.chat_type).toBe('thread');
    }
    const channel = discordInteractionEvent(
      interaction({ channel: { id: 'ch1', type: 0 }, data: { name: 'x' } }),
    );
    expect(channel.source.chat_type).toBe('group');
    expect(channel.source.thread_id).toBeUndefined();
  });

  it('a DM: chat_type dm, the user from `user`, no scope_id', () => {
    const dm = parseDiscordInteraction(
      JSON.stringify({
        id: 'i2',
        type: 2,
        channel_id: 'dm-5',
        user: { id: 'u1', username: 'ben', global_name: 'Ben D' },
        data: { name: 'new' },
      }),
    );
    if (!dm) throw new Error('not an interaction');
    const event = wireEvent(discordInteractionEvent(dm));
    expect(event.source).toMatchObject({
      chat_id: 'dm-5',
      chat_type: 'dm',
      user_id: 'u1',
      user_name: 'Ben D',
      user_handle: 'ben',
    });
    expect(event.source.scope_id).toBeUndefined();
    expect(buildSessionKey(event.source)).toBe(
      buildSessionKey(messageSource({ chat_id: 'dm-5', chat_type: 'dm' })),
    );
    expect(buildSessionKey(event.source)).toBe('agent:main:discord:dm:dm-5');
  });

  it('names the user as a message would (nick, then global name, then username)', () => {
    const event = discordInteractionEvent(
      interaction({
        member: { nick: 'Benny', user: { id: 'u1', username: 'ben', global_name: 'Ben D' } },
        data: { name: 'x' },
      }),
    );
    expect(event.source).toMatchObject({ user_name: 'Benny', user_handle: 'ben' });
  });

  it('puts the forward profile in the source and the key namespace', () => {
    const event = wireEvent(discordInteractionEvent(interaction({ data: { name: 'x' } }), 'reviewer'));
    expect(event.source.profile).toBe('reviewer');
    expect(buildSessionKey(event.source)).toBe(
      buildSessionKey(
        messageSource({ chat_id: 'ch1', chat_type: 'group', scope_id: 'g1', profile: 'reviewer' }),
      ),
    );
    expect(buildSessionKey(event.source)).toBe('agent:reviewer:discord:group:ch1:u1');
  });
});

describe('what is not an interaction', () => {
  it('refuses a body that is not a JSON interaction object', () => {
    for (const body of [
      '',
      'not json',
      '[]',
      '"text"',
      '{"type":2}',
      '{"id":"i1"}',
      '{"id":"i1","type":"2"}',
    ])
      expect(parseDiscordInteraction(body)).toBeUndefined();
    expect(parseDiscordInteraction(new Uint8Array([0xff, 0xfe]))).toBeUndefined();
  });

  it('never puts the interaction token in the event', () => {
    const event = discordInteractionEvent(
      interaction({ token: 'aW50ZXJhY3Rpb24tdG9rZW4', data: { name: 'x' } }),
    );
    expect(JSON.stringify(messageEventToWire(event))).not.toContain('aW50ZXJhY3Rpb24tdG9rZW4');
  });
});
