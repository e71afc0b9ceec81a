import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collectPageErrors,
  HAS_CHROMIUM,
  launchChromium,
  NO_CHROMIUM_MESSAGE,
  screenshot,
} from '../support/browser.js';
import { freePortRange } from '../support/ports.js';
import { type RunningProcess, startHermes, tempDir } from '../support/processes.js';

/**
 * The web chat in a real browser against the whole demo (connector + enrolled gateway with the
 * echo agent): send, see the echo, watch a streamed reply grow by edits, stop it with /stop.
 */

const dir = tempDir('webchat-browser');
let demo: RunningProcess | undefined;
let base = 0;

beforeAll(async () => {
  if (!HAS_CHROMIUM) return;
  base = await freePortRange(3);
  demo = startHermes(['demo', '--port-base', String(base), '--data-dir', join(dir.path, 'data')], {
    HERMES_AGENT: 'echo',
  });
  await demo.waitFor(/Press Ctrl-C to stop/, 60_000);
}, 90_000);

afterAll(async () => {
  await demo?.stop('SIGINT');
  dir.remove();
});

describe.skipIf(!HAS_CHROMIUM)(
  `web chat in a browser${HAS_CHROMIUM ? '' : ` (${NO_CHROMIUM_MESSAGE})`}`,
  () => {
    it('chats with the echo agent, streams a reply through edits and stops it', async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
        const errors = collectPageErrors(page);
        await page.goto(`http://127.0.0.1:${base}/chat/demo`);
        await page.locator('#status-text').filter({ hasText: 'connected' }).waitFor();
        await page.locator('#input').fill('Hello from the browser');
        await page.keyboard.press('Enter');
        await page.getByText('echo: Hello from the browser').waitFor();

        await page.locator('#input').fill('/slow 4 one two three four five six');
        await page.keyboard.press('Enter');
        await page.getByText('echo: one two', { exact: false }).first().waitFor();
        await page.locator('#input').fill('/stop');
        await page.keyboard.press('Enter');
        await page.getByText('⚡ Stopped. You can continue this session.').waitFor();
        await page.locator('#input').fill('Markdown **works**: `code`');
        await page.keyboard.press('Enter');
        await page.getByText('echo: Markdown').waitFor();
        await screenshot(page, 'webchat.png');
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  },
);
