import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeTelegram } from '../support/fake-telegram.js';
import { tempDir, until } from '../support/processes.js';
import { startTelegramStack, type TelegramStack } from '../support/telegram-stack.js';

/**
 * The echo agent's ops on Telegram with real processes (fake Bot API ⇄ connector ⇄ gateway): its
 * picture reaches Telegram as an upload through the media plane, its question as buttons whose
 * press comes back to the agent as `prompt_response`, its reaction on the user's message.
 */

const dir = tempDir('gateway-telegram-ops');
const CHAT = { id: 778, type: 'private' as const, first_name: 'Grace' };
const FROM = { id: 778, is_bot: false, first_name: 'Grace' };
let telegram: FakeTelegram;
let stack: TelegramStack | undefined;

beforeAll(async () => {
  stack = await startTelegramStack({ dir: dir.path, chatId: CHAT.id, agentEnv: { HERMES_AGENT: 'echo' } });
  telegram = stack.telegram;
}, 60_000);

afterAll(async () => {
  await stack?.stop();
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
