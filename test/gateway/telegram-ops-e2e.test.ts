import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { FakeTelegram } from '../support/fake-telegram.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  tempDir,
  until,
} from '../support/processes.js';

/**
 * The echo agent's ops on Telegram with real processes (fake Bot API ⇄ connector ⇄ gateway): its
 * picture reaches Telegram as an upload through the media plane, its question as buttons whose
 * press comes back to the agent as `prompt_response`, its reaction on the user's message.
 */

const dir = tempDir('gateway-telegram-ops');
const db = join(dir.path, 'connector.db');
const home = join(dir.path, 'home');
const CHAT = { id: 778, type: 'private' as const, first_name: 'Grace' };
const FROM = { id: 778, is_bot: false, first_name: 'Grace' };
let telegram: FakeTelegram;
let connector: RunningProcess & { url: string };
let gateway: RunningProcess;

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
  const env = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: accessToken,
    GATEWAY_RELAY_PLATFORM: 'telegram',
    HERMES_AGENT: 'echo',
  };
  const enrolled = await hermes(
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-tg'],
    env,
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  const route = await hermes([
    'connector',
    'route',
    'add',
    '--tenant',
    'tg',
    '--platform',
    'telegram',
    '--key',
    String(CHAT.id),
    '--gateway',
    'gw-tg',
    '--db',
    db,
  ]);
  expect(route.code, route.stderr).toBe(0);
  gateway = startHermes(['gateway', 'run'], env);
  await gateway.waitFor(/gateway running for/);
  await until(
    () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    'relay connected',
  );
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await connector?.stop();
  await telegram?.close();
  dir.remove();
});

const sent = () => telegram.messages.get(String(CHAT.id)) ?? [];

describe('the echo agent’s ops on Telegram', () => {
  it('/image: the picture arrives at Telegram as an upload of the agent’s PNG, with its caption', async () => {
    telegram.pushUpdate({ message: { chat: CHAT, from: FROM, text: '/image' } });
    const photo = await until(() => sent().find((m) => m.media?.method === 'sendPhoto'), 20_000, 'the photo');
    expect(photo.media?.caption).toBe('A picture from the echo agent');
    expect(photo.media?.filename).toBe('hermes-echo.png');
    expect(photo.media?.bytes?.subarray(1, 4).toString()).toBe('PNG');
    expect(photo.media?.url).toBeUndefined();
  });

  it('/ask: Yes/No buttons; pressing one comes back to the agent, which says what was chosen', async () => {
    telegram.pushUpdate({ message: { chat: CHAT, from: FROM, text: '/ask Ship it?' } });
    const question = await until(() => sent().find((m) => m.text === 'Ship it?'), 20_000, 'the question');
    const keyboard = question.reply_markup as {
      inline_keyboard: { text: string; callback_data: string }[][];
    };
    const yes = keyboard.inline_keyboard.flat().find((b) => b.text === 'Yes');
    expect(yes?.callback_data).toMatch(/^hp1:[0-9a-f]{6}\.[0-9a-f]{8}:yes$/);
    telegram.pushUpdate({
      callback_query: {
        id: 'press-1',
        from: FROM,
        chat_instance: 'ci',
        data: yes?.callback_data,
        message: {
          message_id: question.message_id,
          date: 0,
          chat: CHAT,
          text: 'Ship it?',
          reply_markup: keyboard,
        },
      },
    } as never);
    await until(() => sent().find((m) => m.text === 'You chose: Yes'), 20_000, 'the answer to the press');
    // The same press again is ignored (a repeat): the next message is answered, and nothing
    // about the question was said before it.
    telegram.pushUpdate({
      callback_query: {
        id: 'press-2',
        from: FROM,
        chat_instance: 'ci',
        data: yes?.callback_data,
        message: {
          message_id: question.message_id,
          date: 0,
          chat: CHAT,
          text: 'Ship it?',
          reply_markup: keyboard,
        },
      },
    } as never);
    telegram.pushUpdate({ message: { chat: CHAT, from: FROM, text: 'after the repeat' } });
    await until(() => sent().find((m) => m.text === 'echo: after the repeat'), 20_000, 'the next answer');
    expect(sent().filter((m) => m.text === 'You chose: Yes')).toHaveLength(1);
    expect(sent().some((m) => m.text === 'That question is no longer waiting for an answer.')).toBe(false);
  });

  it('/react: 👍 on the user’s own message', async () => {
    const update = telegram.pushUpdate({ message: { chat: CHAT, from: FROM, text: '/react' } });
    const messageId = update.message?.message_id;
    await until(() => telegram.reactions.get(`${CHAT.id}:${messageId}`), 20_000, 'the reaction');
    expect(telegram.reactions.get(`${CHAT.id}:${messageId}`)).toEqual(['👍']);
  });
});
