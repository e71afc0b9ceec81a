import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeTelegram } from '../support/fake-telegram.js';
import { tempDir, until } from '../support/processes.js';
import { startTelegramStack, type TelegramStack } from '../support/telegram-stack.js';

/**
 * Telegram end to end: fake Bot API ⇄ real connector ⇄ real outbound-only gateway (deliveries as
 * `inbound` frames over its socket), replying past Telegram's 4096 UTF-16 limit.
 */

const dir = tempDir('gateway-telegram');
const CHAT = { id: 777, type: 'private' as const, first_name: 'Grace' };
let telegram: FakeTelegram;
let stack: TelegramStack | undefined;

const agentScript = join(dir.path, 'emoji.mjs');
writeFileSync(
  agentScript,
  `let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => process.stdout.write('😀'.repeat(3000) + ' done'));
`,
);

beforeAll(async () => {
  stack = await startTelegramStack({
    dir: dir.path,
    chatId: CHAT.id,
    agentEnv: { HERMES_AGENT: 'command', HERMES_AGENT_COMMAND: `${process.execPath} ${agentScript}` },
  });
  telegram = stack.telegram;
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  dir.remove();
});

describe('Telegram through connector and gateway', () => {
  it('splits a long emoji reply within 4096 UTF-16 units per message', async () => {
    telegram.pushUpdate({
      message: { chat: CHAT, from: { id: 777, is_bot: false, first_name: 'Grace' }, text: 'emoji please' },
    });
    await until(
      () =>
        (telegram.messages.get(String(CHAT.id)) ?? []).some((m) => m.text.includes('done'))
          ? true
          : undefined,
      20_000,
      'reply',
    );
    const sent = telegram.messages.get(String(CHAT.id)) ?? [];
    expect(sent.length).toBeGreaterThanOrEqual(2);
    for (const message of sent) expect(message.text.length).toBeLessThanOrEqual(4096);
    // Measured in UTF-16 the reply needs two messages; counted in code points it would have fit in one.
    const body = sent.map((m) => m.text.replace(/ \(\d+\/\d+\)$/, '')).join('');
    expect(body.replace(/\s/g, '')).toBe(`${'😀'.repeat(3000)}done`);
    for (const message of sent) expect(message.text).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });
});
