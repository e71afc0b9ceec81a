import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';

/**
 * A headless Chromium for browser tests: Debian's `chromium` package (CI installs it), driven by
 * playwright-core. No browser download; tests skip when the binary is absent.
 */

export const CHROMIUM_PATH = process.env.HERMES_TEST_CHROMIUM || '/usr/bin/chromium';
export const HAS_CHROMIUM = existsSync(CHROMIUM_PATH);
export const NO_CHROMIUM_MESSAGE = `browser tests skipped: ${CHROMIUM_PATH} not found (install it with \`apt-get install chromium\`, or set HERMES_TEST_CHROMIUM)`;

// Where the browser tests must run (CI, or RELAY_REQUIRE_BROWSER=1), a missing Chromium is an
// error, not a silent skip — as RELAY_REQUIRE_POSTGRES does for the Postgres tests.
if (!HAS_CHROMIUM && (process.env.RELAY_REQUIRE_BROWSER === '1' || isCi(process.env.CI))) {
  throw new Error(
    `the browser tests must run here (RELAY_REQUIRE_BROWSER=1 or CI) but ${CHROMIUM_PATH} was not found: install it with \`apt-get install chromium\`, or set HERMES_TEST_CHROMIUM`,
  );
}

function isCi(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

/** Screenshots and other test output (gitignored). */
export const ARTIFACTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../test-artifacts');

/** Launch with a fresh temporary profile (Playwright creates and removes the user-data dir). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Console errors and uncaught exceptions of a page (resource-load failures excluded). */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      errors.push(`console: ${message.text()}`);
    }
  });
  return errors;
}
