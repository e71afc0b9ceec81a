import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintUpgradeToken } from '../../src/auth/index.js';
import { FakeTelegram } from '../support/fake-telegram.js';
import {
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';
import { TestReceiver, TestRelayClient } from '../support/test-gateway.js';

/** Telegram through a real connector process, against the local fake Bot API server. */

const dir = tempDir('connector-telegram');
const db = `${dir.path}/connector.db`;
const GROUP = { id: -100555, type: 'supergroup' as const, title: 'Ops room' };
let telegram: FakeTelegram;
let connector: RunningProcess & { url: string };
let receiver: TestReceiver;
let gateway: TestRelayClient;
let gatewaySecret = '';

beforeAll(async () => {
  telegram = await FakeTelegram.start();
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'tg',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'tg',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db, {
    TELEGRAM_BOT_TOKEN: telegram.token,
    TELEGRAM_API_ROOT: telegram.apiRoot,
  });
  let key = '';
  receiver = new TestReceiver(() => [key]);
  await receiver.start();
  const response = await fetch(`${connector.url}/relay/provision`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      gatewayId: 'gw-tg',
      platform: 'telegram',
      gatewayEndpoint: receiver.url,
      routeKeys: [String(GROUP.id)],
    }),
  });
  expect(response.status).toBe(200);
  const creds = (await response.json()) as { secret: string; deliveryKey: string; routeKeys: string[] };
  expect(creds.routeKeys).toEqual([String(GROUP.id)]);
  key = creds.deliveryKey;
  expect(token).toMatch(/^hre_/);
  gatewaySecret = creds.secret;
  gateway = new TestRelayClient(`${connector.url.replace('http', 'ws')}/relay`, 'gw-tg', creds.secret);
  await gateway.connect();
});

afterAll(async () => {
  gateway?.close();
  await connector?.stop();
  await receiver?.stop();
  await telegram?.close();
  dir.remove();
});

describe('Telegram through the connector', () => {
  it('adopts the Telegram descriptor: utf16, 4096, markdown_v2', async () => {
    const descriptor = await gateway.hello('telegram');
    expect(descriptor).toMatchObject({
      platform: 'telegram',
      len_unit: 'utf16',
      max_message_length: 4096,
      markdown_dialect: 'markdown_v2',
    });
  });

  it('delivers a group message with per-user session fields and sends the reply split at 4096 UTF-16 units', async () => {
    telegram.pushUpdate({
      message: { chat: GROUP, from: { id: 42, is_bot: false, first_name: 'Ada' }, text: 'status?' },
    });
    const delivery = await until(() => receiver.deliveries[0], 10_000, 'telegram delivery');
    const event = delivery.body.event as { text: string; source: Record<string, unknown> };
    expect(event.text).toBe('status?');
    expect(event.source).toMatchObject({
      platform: 'telegram',
      chat_id: String(GROUP.id),
      chat_type: 'group',
      user_id: '42',
    });
    expect(delivery.headers['x-relay-session-key']).toBe(`agent:main:telegram:group:${GROUP.id}:42`);

    // 3,000 emoji are 6,000 UTF-16 units (3,000 code points): over Telegram's limit only in its unit.
    const long = '😀'.repeat(3_000);
    const result = await gateway.op({
      op: 'send',
      chat_id: String(GROUP.id),
      content: long,
      reply_to: null,
      metadata: {},
    });
    expect(result.success).toBe(true);
    const sent = telegram.messages.get(String(GROUP.id)) ?? [];
    expect(sent.length).toBeGreaterThanOrEqual(2);
    for (const message of sent) expect(message.text.length).toBeLessThanOrEqual(4096);
    expect(sent.map((m) => m.text.replace(/ \(\d+\/\d+\)$/, '')).join('')).toBe(long);
  });

  it('refuses ops on a Telegram chat that is not routed to this tenant', async () => {
    const result = await gateway.op({ op: 'send', chat_id: '999999', content: 'hi' });
    expect(result).toMatchObject({ success: false });
    expect(telegram.callsTo('sendMessage').some((call) => String(call.params.chat_id) === '999999')).toBe(
      false,
    );
  });

  it('re-hosts a photo and a voice note: the gateway gets /relay/media URLs whose bytes match, never the bot token', async () => {
    const picture = randomBytes(70_000);
    const voice = randomBytes(9_000);
    const photoId = telegram.addFile(picture, 'jpg');
    const voiceId = telegram.addFile(voice, 'oga');
    const before = receiver.deliveries.length;
    telegram.pushUpdate({
      message: {
        chat: GROUP,
        from: { id: 42, is_bot: false, first_name: 'Ada' },
        caption: 'look',
        photo: [
          { file_id: 'small-unused', file_unique_id: 's', width: 90, height: 90 },
          { file_id: photoId, file_unique_id: 'p', width: 800, height: 600 },
        ],
      },
    });
    telegram.pushUpdate({
      message: {
        chat: GROUP,
        from: { id: 42, is_bot: false, first_name: 'Ada' },
        voice: { file_id: voiceId, file_unique_id: 'v', duration: 2, mime_type: 'audio/ogg' },
      },
    });
    await until(() => receiver.deliveries.length >= before + 2 || undefined, 15_000, 'both deliveries');
    type Media = { url: string; kind: string; mime: string; size: number };
    const events = receiver.deliveries
      .slice(before)
      .map(
        (d) => d.body.event as { text: string; message_type: string; media_urls: string[]; media: Media[] },
      );
    expect(events.map((e) => [e.message_type, e.text])).toEqual([
      ['photo', 'look'],
      ['voice', ''],
    ]);
    const bearer = `Bearer ${mintUpgradeToken('gw-tg', gatewaySecret)}`;
    for (const [event, bytes, kind] of [
      [events[0], picture, 'image'],
      [events[1], voice, 'voice'],
    ] as const) {
      expect(event?.media_urls).toHaveLength(1);
      const url = event?.media_urls[0] ?? '';
      expect(url).toMatch(new RegExp(`^${connector.url}/relay/media/[0-9a-f]{32}$`));
      expect(event?.media[0]).toMatchObject({ url, kind, size: bytes.length });
      const fetched = await fetch(url, { headers: { authorization: bearer } });
      expect(fetched.status).toBe(200);
      expect(Buffer.from(await fetched.arrayBuffer()).equals(bytes)).toBe(true);
    }
    // Only the largest photo size was downloaded, and the token is nowhere a gateway or a log sees.
    expect(telegram.downloads.filter((d) => d.status === 200)).toHaveLength(2);
    const secretPart = telegram.token.split(':')[1] as string;
    expect(JSON.stringify(receiver.deliveries)).not.toContain(secretPart);
    expect(connector.output()).not.toContain(secretPart);
  });

  it('send_media: a re-host is uploaded to Telegram byte for byte, a public https URL is handed over, anything else refused', async () => {
    const descriptor = await gateway.hello('telegram');
    expect(descriptor.supported_ops).toContain('send_media');
    const bearer = `Bearer ${mintUpgradeToken('gw-tg', gatewaySecret)}`;
    const picture = randomBytes(40_000);
    const uploaded = await fetch(`${connector.url}/relay/media`, {
      method: 'POST',
      headers: { authorization: bearer, 'content-type': 'image/png', 'x-media-filename': 'chart.png' },
      body: picture,
    });
    const { id } = (await uploaded.json()) as { id: string };
    const chat = String(GROUP.id);
    const viaRehost = await gateway.op({
      op: 'send_media',
      chat_id: chat,
      media_kind: 'image',
      source_url: `${connector.url}/relay/media/${id}`,
      content: 'the chart',
      reply_to: null,
      metadata: {},
    });
    expect(viaRehost, JSON.stringify(viaRehost)).toMatchObject({ success: true });
    const viaUrl = await gateway.op({
      op: 'send_media',
      chat_id: chat,
      media_kind: 'document',
      source_url: 'https://files.example/report.pdf',
      content: '',
      reply_to: null,
      metadata: {},
    });
    expect(viaUrl).toMatchObject({ success: true });
    const files = (telegram.messages.get(chat) ?? []).flatMap((m) => (m.media ? [m.media] : []));
    expect(files[0]).toMatchObject({ method: 'sendPhoto', filename: 'chart.png', caption: 'the chart' });
    expect(files[0]?.bytes?.equals(picture)).toBe(true);
    expect(files[1]).toEqual({ method: 'sendDocument', url: 'https://files.example/report.pdf' });

    for (const [source_url, error] of [
      ['file:///etc/passwd', 'source_url must be a /relay/media re-host URL or an https URL'],
      ['http://files.example/x.png', 'source_url must be a /relay/media re-host URL or an https URL'],
      [
        `${connector.url}/relay/media/${'0'.repeat(32)}`,
        'no such media (expired, or never uploaded by this tenant)',
      ],
    ]) {
      const refused = await gateway.op({
        op: 'send_media',
        chat_id: chat,
        media_kind: 'image',
        source_url,
        metadata: {},
      });
      expect(refused).toEqual({ success: false, error });
    }
    expect((telegram.messages.get(chat) ?? []).filter((m) => m.media)).toHaveLength(2);
  });

  it('prompt: buttons carrying hp1 tokens; a press comes back as prompt_response from the presser, is answered, and a foreign payload is dropped', async () => {
    const chat = String(GROUP.id);
    const descriptor = await gateway.hello('telegram');
    expect(descriptor.supported_ops).toEqual(expect.arrayContaining(['prompt', 'react']));
    const asked = await gateway.op({
      op: 'prompt',
      chat_id: chat,
      content: 'Deploy to production?',
      prompt_kind: 'approval',
      prompt_id: 'a1b2c3.d4e5f6a7',
      options: [
        { id: 'once', label: 'Yes, once', style: 'primary' },
        { id: 'deny', label: 'No', style: 'danger' },
      ],
      reply_to: null,
      metadata: {},
    });
    expect(asked).toMatchObject({ success: true });
    const promptMessage = (telegram.messages.get(chat) ?? []).find((m) => m.text === 'Deploy to production?');
    expect(promptMessage?.reply_markup).toEqual({
      inline_keyboard: [
        [{ text: 'Yes, once', callback_data: 'hp1:a1b2c3.d4e5f6a7:once' }],
        [{ text: 'No', callback_data: 'hp1:a1b2c3.d4e5f6a7:deny' }],
      ],
    });
    const tooLong = await gateway.op({
      op: 'prompt',
      chat_id: chat,
      content: 'x',
      prompt_id: 'p'.repeat(32),
      options: [{ id: 'o'.repeat(32), label: 'x' }],
      metadata: {},
    });
    expect(tooLong).toMatchObject({ success: false, error: expect.stringContaining('at most 64 bytes') });

    const before = receiver.deliveries.length;
    const promptAsSeen = {
      message_id: Number(asked.message_id),
      date: 0,
      chat: GROUP,
      text: 'Deploy to production?',
      reply_markup: promptMessage?.reply_markup,
    };
    telegram.pushUpdate({
      callback_query: {
        id: 'cbq-1',
        from: { id: 77, is_bot: false, first_name: 'Grace' },
        chat_instance: 'ci',
        data: 'not-ours',
        message: promptAsSeen,
      },
    } as never);
    telegram.pushUpdate({
      callback_query: {
        id: 'cbq-2',
        from: { id: 77, is_bot: false, first_name: 'Grace' },
        chat_instance: 'ci',
        data: 'hp1:a1b2c3.d4e5f6a7:deny',
        message: promptAsSeen,
      },
    } as never);
    const delivery = await until(() => receiver.deliveries[before], 10_000, 'the press');
    expect(delivery.body.event).toMatchObject({
      text: '/deny',
      message_type: 'command',
      prompt_response: {
        prompt_id: 'a1b2c3.d4e5f6a7',
        option_id: 'deny',
        label: 'No',
        prompt_message_id: String(asked.message_id),
      },
      source: { chat_id: chat, user_id: '77' },
    });
    await until(
      () => telegram.callsTo('answerCallbackQuery').length >= 2 || undefined,
      10_000,
      'both answered',
    );
    expect(receiver.deliveries.length).toBe(before + 1);

    // react on the prompt message: Telegram's list only; an empty set removes.
    const reacted = await gateway.op({
      op: 'react',
      chat_id: chat,
      message_id: asked.message_id,
      emoji: '👀',
      remove: false,
    });
    expect(reacted).toEqual({ success: true });
    expect(telegram.reactions.get(`${chat}:${asked.message_id}`)).toEqual(['👀']);
    const invalid = await gateway.op({
      op: 'react',
      chat_id: chat,
      message_id: asked.message_id,
      emoji: '✅',
      remove: false,
    });
    expect(invalid).toMatchObject({ success: false, error: expect.stringContaining('REACTION_INVALID') });
    await gateway.op({ op: 'react', chat_id: chat, message_id: asked.message_id, emoji: '👀', remove: true });
    expect(telegram.reactions.get(`${chat}:${asked.message_id}`)).toEqual([]);
  });
});
