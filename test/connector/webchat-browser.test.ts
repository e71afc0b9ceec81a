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

    it('shows the agent’s picture inline, its question as buttons whose press reaches the agent, a visitor’s file reaching the agent, and a reaction', async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage({ viewport: { width: 900, height: 800 } });
        const errors = collectPageErrors(page);
        await page.goto(`http://127.0.0.1:${base}/chat/demo`);
        await page.locator('#status-text').filter({ hasText: 'connected' }).waitFor();

        await page.locator('#input').fill('/image');
        await page.keyboard.press('Enter');
        const picture = page.locator('.attachment img');
        await picture.waitFor();
        // Loaded from the connector's /chat/file/… route: a real image with its pixels.
        await page.waitForFunction(() => {
          const image = document.querySelector<HTMLImageElement>('.attachment img');
          return image?.complete === true && image.naturalWidth === 16;
        });
        expect(await picture.getAttribute('alt')).toBe('hermes-echo.png');

        await page.locator('#input').fill('/ask Ship it?');
        await page.keyboard.press('Enter');
        await page.getByRole('button', { name: 'Yes' }).click();
        await page.locator('.prompt-chosen', { hasText: 'You chose: Yes' }).waitFor();
        // The agent's answer to the press (it got prompt_response), and the buttons are done.
        await page.locator('.msg.agent .bubble', { hasText: /^\s*You chose: Yes\s*$/ }).waitFor();
        expect(await page.getByRole('button', { name: 'No' }).isDisabled()).toBe(true);

        // A file from the visitor: through the connector's media plane to the gateway, which
        // fetched it for the agent (the echo agent names it and its size).
        await page.locator('#input').fill('my notes');
        await page.locator('#file').setInputFiles({
          name: 'notes.txt',
          mimeType: 'text/plain',
          buffer: Buffer.from('twelve bytes'),
        });
        await page.getByText('echo: my notes — received notes.txt (12 bytes)').waitFor();

        // The visitor's own picture shows inline once the connector has it.
        await page.locator('#file').setInputFiles({
          name: 'dot.png',
          mimeType: 'image/png',
          buffer: Buffer.from(
            'iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAFklEQVR4nGPQztlAEmIY1TCqYfhqAABTXEcQu0W6kQAAAABJRU5ErkJggg==',
            'base64',
          ),
        });
        await page.waitForFunction(() => {
          const image = document.querySelector<HTMLImageElement>('.msg.user .attachment img');
          return image?.complete === true && image.naturalWidth === 16;
        });

        await page.locator('#input').fill('/react');
        await page.keyboard.press('Enter');
        await page.locator('.msg.user .reactions', { hasText: '👍' }).waitFor();
        await screenshot(page, 'webchat-ops.png');
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    });

    it('renders tables, quotes, numbered lists and code, and never runs markup from a reply', async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
        const errors = collectPageErrors(page);
        const dialogs: string[] = [];
        page.on('dialog', (dialog) => {
          dialogs.push(dialog.message());
          void dialog.dismiss();
        });
        const say = async (text: string) => {
          await page.locator('#input').fill(text);
          await page.keyboard.press('Enter');
        };
        await page.goto(`http://127.0.0.1:${base}/chat/demo`);
        await page.locator('#status-text').filter({ hasText: 'connected' }).waitFor();

        await say(
          'Hostile <script>window.pwned = 1; alert(1)</script> <img src=x onerror="window.pwned = 2; alert(2)"> ' +
            '[link](javascript:window.pwned=3) <a href="javascript:alert(4)">raw</a> ' +
            '<iframe src="javascript:alert(5)"></iframe> <svg onload="alert(6)"></svg> ![i](https://example.com/i.png)',
        );
        const hostile = page.locator('.msg.agent .bubble').filter({ hasText: 'echo: Hostile' });
        await hostile.waitFor();
        expect(await hostile.textContent()).toContain('<script>window.pwned = 1; alert(1)</script>');

        await say(
          'Table:\n\n| Name | Count |\n|:--|--:|\n| apples | 3 |\n| pears | 12 |\n\n' +
            '> a quoted line\n\n1. first\n2. second\n3. third\n\n```sh\nls -la\n```',
        );
        const rich = page.locator('.msg.agent .bubble').filter({ hasText: 'echo: Table:' });
        await rich.locator('table').waitFor();
        expect(await rich.locator('th').allTextContents()).toEqual(['Name', 'Count']);
        expect(await rich.locator('td.md-align-right').allTextContents()).toEqual(['3', '12']);
        expect(await rich.locator('blockquote').textContent()).toContain('a quoted line');
        expect(await rich.locator('ol > li').allTextContents()).toEqual(['first', 'second', 'third']);
        expect(await rich.locator('.md-code .md-lang').textContent()).toBe('sh');
        expect(await rich.locator('.md-code pre code').textContent()).toBe('ls -la');
        await rich.locator('.md-copy').waitFor();

        const agent = page.locator('.msg.agent .bubble');
        expect(await agent.locator('script, img, iframe, svg, object, embed, style').count()).toBe(0);
        expect(await agent.locator('[onerror], [onload], [onclick], [style], [src]').count()).toBe(0);
        expect(await agent.locator('a').count()).toBe(1);
        expect(await agent.locator('a').getAttribute('href')).toBe('https://example.com/i.png');
        expect(await agent.locator('a').getAttribute('rel')).toContain('noopener noreferrer');
        expect(await agent.locator('a').getAttribute('target')).toBe('_blank');
        expect(await page.evaluate(() => (globalThis as { pwned?: unknown }).pwned)).toBeUndefined();
        await screenshot(page, 'webchat-markdown.png');
        expect(dialogs).toEqual([]);
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  },
);
