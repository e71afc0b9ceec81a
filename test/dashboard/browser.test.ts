import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setPassword } from '../../src/dashboard/auth/password-provider.js';
import { DASHBOARD_ASSETS, renderDashboardPage } from '../../src/dashboard/page.js';
import { type RunningDashboard, startDashboard } from '../../src/dashboard/server.js';
import { TEXTS } from '../../src/gateway/sessions.js';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { sharedWebModules } from '../../src/http/static-assets.js';
import {
  collectPageErrors,
  HAS_CHROMIUM,
  launchChromium,
  NO_CHROMIUM_MESSAGE,
  screenshot,
} from '../support/browser.js';
import { freePort } from '../support/ports.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  tempDir,
  until,
} from '../support/processes.js';
import { WebChatClient } from '../support/webchat-client.js';

/**
 * The dashboard page in a real headless Chromium against a real connector process, a real
 * `hermes gateway run` process and the dashboard server: login, live state over SSE, drain and
 * cancel through the confirmation dialogs, the timeline, and the loopback session-token mode.
 */

declare const axe: {
  run(): Promise<{ violations: { id: string; help: string; nodes: { target: unknown }[] }[] }>;
};

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

describe('renderDashboardPage', () => {
  it('escapes the title and version and embeds the session token as inert JSON', () => {
    const html = renderDashboardPage({
      title: '<img src=x onerror=alert(1)>',
      version: '1.0"><script>alert(2)</script>',
      loginRequired: false,
      sessionToken: 'abc</script><script>alert(3)</script>\u2028',
    });
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<script>alert');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    const config = /<script type="application\/json" id="hermes-dashboard-config">(.*?)<\/script>/s.exec(
      html,
    );
    expect(config?.[1]).toBeDefined();
    expect(JSON.parse(config?.[1] ?? '')).toMatchObject({
      loginRequired: false,
      sessionToken: 'abc</script><script>alert(3)</script>\u2028',
    });
  });

  it('omits the token when none is given and references only its own hashed assets', () => {
    const html = renderDashboardPage({ version: '0.1.0', loginRequired: true });
    expect(html).not.toContain('sessionToken');
    const referenced = [...html.matchAll(/(?:href|src)="assets\/([^"]+)"/g)].map((m) => m[1]);
    // The page links its own style sheet and script; the rest are the shared modules they import.
    const shared = Object.keys(sharedWebModules());
    expect([...referenced, ...shared].sort()).toEqual(Object.keys(DASHBOARD_ASSETS).sort());
    for (const name of referenced) {
      const asset = DASHBOARD_ASSETS[name ?? ''];
      expect(name).toMatch(/^dashboard\.[0-9a-f]{12}\.(js|css)$/);
      expect(asset?.type).toMatch(name?.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
    }
    // No HTML sinks for data in the client scripts.
    for (const [name, asset] of Object.entries(DASHBOARD_ASSETS))
      if (name.endsWith('.js'))
        expect(asset.body, name).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });
});

if (!HAS_CHROMIUM) {
  console.warn(NO_CHROMIUM_MESSAGE);
  describe('dashboard in a browser', () => {
    it.skip(NO_CHROMIUM_MESSAGE, () => undefined);
  });
}

describe.skipIf(!HAS_CHROMIUM)('dashboard in a real browser', () => {
  let dir: { path: string; remove: () => void } | undefined;
  let db = '';
  let home = '';
  const USER = 'operator';
  const PASSWORD = 'correct horse battery staple';
  let connector: (RunningProcess & { url: string }) | undefined;
  let gateway: RunningProcess | undefined;
  let gated: RunningDashboard | undefined;
  let loopback: RunningDashboard | undefined;
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  const visitors: WebChatClient[] = [];

  function dashboardEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, HERMES_HOME: home };
    for (const key of Object.keys(env)) if (key.startsWith('HERMES_DASHBOARD_')) delete env[key];
    return env;
  }

  function start(requireLogin: boolean, port = 0, env: NodeJS.ProcessEnv = {}): Promise<RunningDashboard> {
    return startDashboard({
      home,
      host: '127.0.0.1',
      port,
      log: pino({ level: 'silent' }),
      version: VERSION,
      restartDrainTimeout: 5,
      requireLogin,
      env: { ...dashboardEnv(), ...env },
      renderPage: renderDashboardPage,
      assets: DASHBOARD_ASSETS,
    });
  }

  async function newPage(options: Parameters<Browser['newContext']>[0] = {}): Promise<Page> {
    if (!browser) throw new Error('no browser');
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    return page;
  }

  const badge = (page: Page, label: string) =>
    page.locator('#state-badge').filter({ hasText: new RegExp(`^${label}$`) });
  const timelineEntry = (page: Page, text: string | RegExp) =>
    page.locator('#timeline li').filter({ hasText: text }).first();

  beforeAll(async () => {
    dir = tempDir('dashboard-browser');
    db = join(dir.path, 'connector.db');
    home = join(dir.path, 'home');
    const agentScript = join(dir.path, 'agent.mjs');
    writeFileSync(
      agentScript,
      `let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => {
  const { messages } = JSON.parse(input);
  const last = messages[messages.length - 1].content;
  if (last.startsWith('sleep')) { setTimeout(() => process.stdout.write('slept'), 60_000); return; }
  process.stdout.write('echo: ' + last);
});
`,
    );
    const { accessToken } = await hermesJson<{ accessToken: string }>([
      'connector',
      'tenant',
      'create',
      'dash-e2e',
      '--db',
      db,
    ]);
    const { token } = await hermesJson<{ token: string }>([
      'connector',
      'enroll-token',
      'create',
      '--tenant',
      'dash-e2e',
      '--db',
      db,
    ]);
    connector = await startConnectorProcess(db);
    const inboundPort = await freePort();
    const gatewayEnv: NodeJS.ProcessEnv = {
      HERMES_HOME: home,
      HERMES_PORTAL_TOKEN: accessToken,
      GATEWAY_RELAY_INBOUND_HOST: '127.0.0.1',
      GATEWAY_RELAY_INBOUND_PORT: String(inboundPort),
      HERMES_AGENT: 'command',
      HERMES_AGENT_COMMAND: `${process.execPath} ${agentScript}`,
      HERMES_RESTART_DRAIN_TIMEOUT: '5',
    };
    const enrolled = await hermes(
      ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-dash'],
      {
        ...gatewayEnv,
        GATEWAY_RELAY_URL: '',
        GATEWAY_RELAY_ID: '',
        GATEWAY_RELAY_SECRET: '',
        GATEWAY_RELAY_DELIVERY_KEY: '',
      },
    );
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const route = await hermes([
      'connector',
      'route',
      'add',
      '--tenant',
      'dash-e2e',
      '--platform',
      'webchat',
      '--key',
      'room',
      '--endpoint',
      `http://127.0.0.1:${inboundPort}`,
      '--gateway',
      'gw-dash',
      '--db',
      db,
    ]);
    expect(route.code, route.stderr).toBe(0);
    gateway = startHermes(['gateway', 'run'], gatewayEnv);
    await gateway.waitFor(/gateway running for/);
    await until(
      () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
      15_000,
      'relay connected',
    );
    await setPassword(home, USER, PASSWORD);
    gated = await start(true);
    loopback = await start(false);
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    for (const visitor of visitors) visitor.close();
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await gated?.stop();
    await loopback?.stop();
    await gateway?.stop();
    await connector?.stop();
    dir?.remove();
  }, 30_000);

  it('logs in, shows the live state, drains and cancels through the dialogs, and logs the actions', async () => {
    if (!gated || !connector) throw new Error('setup failed');
    const page = await newPage();
    const errors = collectPageErrors(page);
    const posts: string[] = [];
    page.on('request', (request) => {
      if (request.method() === 'POST') posts.push(new URL(request.url()).pathname);
    });

    // Not signed in: GET / sends the browser to the login form.
    await page.goto(`${gated.url}/`);
    await page.getByLabel('Username').fill(USER);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: /invalid|wrong/i })
      .waitFor();
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();

    await badge(page, 'Running').waitFor();
    await page.locator('#conn').filter({ hasText: 'Live' }).waitFor();
    await page
      .locator('#platforms li')
      .filter({ hasText: 'relay' })
      .filter({ hasText: 'connected' })
      .waitFor();
    expect(await page.locator('#btn-drain').isEnabled()).toBe(true);
    expect(await page.locator('#btn-cancel').isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();

    // A turn in flight shows up as an active turn.
    const busy = new WebChatClient(connector.url, 'room', 'visitor-dash01');
    visitors.push(busy);
    await busy.open();
    busy.say('sleep through the drain');
    await page.locator('#turns-num').filter({ hasText: /^1$/ }).waitFor();
    await timelineEntry(page, 'Active turns 0 → 1').waitFor();

    // Drain: confirmation dialog, then draining with the turn still running.
    await page.getByRole('button', { name: 'Drain', exact: true }).click();
    const drainDialog = page.getByRole('dialog', { name: 'Drain the gateway?' });
    await drainDialog.waitFor();
    expect(await drainDialog.textContent()).toContain('Turns that are already running are allowed to finish');
    await screenshot(page, 'dashboard-dialog.png');
    await drainDialog.getByRole('button', { name: 'Drain', exact: true }).click();
    await badge(page, 'Draining').waitFor();
    await page.locator('#action-result').filter({ hasText: 'Drain requested' }).waitFor();
    await timelineEntry(page, /^\S+\s*Drain requested by \S+/).waitFor();
    await timelineEntry(page, 'State running → draining').waitFor();
    await page.locator('#status-notice').filter({ hasText: 'new turns are refused' }).waitFor();
    expect(await page.locator('#btn-drain').isDisabled()).toBe(true);
    expect(await page.locator('#btn-cancel').isEnabled()).toBe(true);
    expect(readRuntimeStatus(home)?.gateway_state).toBe('draining');

    // The running turn ends; the drain is complete.
    busy.say('/stop');
    await page.locator('#turns-num').filter({ hasText: /^0$/ }).waitFor();
    await page.locator('#status-notice').filter({ hasText: 'Drain complete' }).waitFor();
    await screenshot(page, 'dashboard-draining.png');

    // Restart asks first and does nothing when dismissed.
    await page.getByRole('button', { name: 'Restart' }).click();
    const restartDialog = page.getByRole('dialog', { name: 'Restart the gateway?' });
    await restartDialog.waitFor();
    expect(await restartDialog.textContent()).toContain('waits up to 5 s');
    await restartDialog.getByRole('button', { name: 'Keep as is' }).click();
    await restartDialog.waitFor({ state: 'hidden' });
    expect(posts).not.toContain('/api/gateway/restart');

    // Cancel the drain.
    await page.getByRole('button', { name: 'Cancel drain' }).click();
    const cancelDialog = page.getByRole('dialog', { name: 'Cancel the drain?' });
    await cancelDialog.waitFor();
    await cancelDialog.getByRole('button', { name: 'Cancel drain' }).click();
    await badge(page, 'Running').waitFor();
    await page.locator('#action-result').filter({ hasText: 'Drain cancelled' }).waitFor();
    await timelineEntry(page, /Drain cancelled by \S+/).waitFor();
    await timelineEntry(page, 'State draining → running').waitFor();
    expect(posts.filter((p) => p === '/api/gateway/drain')).toHaveLength(2);

    // Newest first: the cancel comes before the drain.
    const texts = await page.locator('#timeline li .tl-text').allTextContents();
    const cancelAt = texts.findIndex((t) => t.startsWith('Drain cancelled'));
    const drainAt = texts.findIndex((t) => t.startsWith('Drain requested'));
    expect(cancelAt).toBeGreaterThanOrEqual(0);
    expect(cancelAt).toBeLessThan(drainAt);

    await page.mouse.move(0, 0);
    await screenshot(page, 'dashboard.png');

    // Sign out: the page's own login form, its error message, then back in.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#login-view').waitFor();
    await page.locator('#conn').filter({ hasText: 'Signed out' }).waitFor();
    await page.getByLabel('Password').fill('still not it');
    await page.getByLabel('Username').fill(USER);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#login-error').filter({ hasText: 'Wrong username or password.' }).waitFor();
    await screenshot(page, 'dashboard-login.png');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await badge(page, 'Running').waitFor();
    await page.locator('#conn').filter({ hasText: 'Live' }).waitFor();

    expect(errors).toEqual([]);
  }, 90_000);

  it('on a loopback bind, loads without a login and sends the injected session token', async () => {
    if (!loopback) throw new Error('setup failed');
    const page = await newPage({ colorScheme: 'dark', viewport: { width: 390, height: 844 } });
    const errors = collectPageErrors(page);
    const apiRequests: { url: string; token: string | undefined }[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname.startsWith('/api/')) {
        apiRequests.push({ url: request.url(), token: request.headers()['x-hermes-session-token'] });
      }
    });
    await page.goto(`${loopback.url}/`);
    await badge(page, 'Running').waitFor();
    await page.locator('#conn').filter({ hasText: 'Live' }).waitFor();
    await page
      .locator('#status-meta')
      .filter({ hasText: /PID \d+/ })
      .waitFor();
    expect(await page.locator('#login-view').isHidden()).toBe(true);
    expect(await page.getByRole('button', { name: 'Sign out' }).isHidden()).toBe(true);

    const events = apiRequests.find((r) => new URL(r.url).pathname === '/api/events');
    expect(events).toBeDefined();
    expect(new URL(events?.url ?? 'http://x/').searchParams.get('token')).toBeNull();
    for (const request of apiRequests) expect(request.token, request.url).toBe(loopback.sessionToken);

    // Usable at phone width: nothing wider than the viewport.
    const overflow = await page.evaluate(() => {
      const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } })
        .document.documentElement;
      return root.scrollWidth - (globalThis as unknown as { innerWidth: number }).innerWidth;
    });
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, 'dashboard-mobile-dark.png');
    expect(errors).toEqual([]);
  }, 60_000);

  it('shows "reconnecting" when the dashboard goes away and resumes the live stream when it returns', async () => {
    const port = await freePort();
    const env = { HERMES_DASHBOARD_SESSION_TOKEN: 'browser-test-pinned-session-token' };
    let server = await start(false, port, env);
    try {
      const page = await newPage();
      const errors = collectPageErrors(page);
      await page.goto(`${server.url}/`);
      await page.locator('#conn').filter({ hasText: 'Live' }).waitFor();
      await server.stop();
      await page
        .locator('#conn')
        .filter({ hasText: /Reconnecting/ })
        .waitFor();
      await timelineEntry(page, 'Connection to the dashboard lost').waitFor();
      expect(await page.locator('#status-card').getAttribute('class')).toContain('stale');
      server = await start(false, port, env);
      await page.locator('#conn').filter({ hasText: 'Live' }).waitFor({ timeout: 20_000 });
      await timelineEntry(page, 'Reconnected to the dashboard').waitFor();
      await badge(page, 'Running').waitFor();
      expect(await page.locator('#status-card').getAttribute('class')).not.toContain('stale');
      expect(errors).toEqual([]);
    } finally {
      await server.stop();
    }
  }, 60_000);

  async function axeViolations(page: Page): Promise<string[]> {
    if ((await page.evaluate(() => typeof (globalThis as { axe?: unknown }).axe)) === 'undefined')
      await page.addScriptTag({ path: 'node_modules/axe-core/axe.min.js' });
    const result = await page.evaluate(() => axe.run());
    return result.violations.map(
      (v) => `${v.id}: ${v.help} (${JSON.stringify(v.nodes.map((n) => n.target))})`,
    );
  }

  it('lists running turns, stops exactly the one whose Stop is clicked, keeps the activity after a reload, shows the relay; no axe violations', async () => {
    if (!loopback || !connector) throw new Error('setup failed');
    // The page's CSP forbids the injected axe script; this context alone lifts it.
    const page = await newPage({ bypassCSP: true });
    const errors = collectPageErrors(page);
    await page.goto(`${loopback.url}/`);
    await page.locator('#conn').filter({ hasText: 'Live' }).waitFor();

    // The relay card: the generation (this gateway takes signed HTTP deliveries) and the ops the
    // gateway adopted from the descriptor, exactly as it recorded them.
    await page.locator('#relay-generation').filter({ hasText: /^June/ }).waitFor();
    const relay = readRuntimeStatus(home)?.relay;
    expect(relay?.generation).toBe('june');
    expect(relay?.ops.length).toBeGreaterThan(0);
    expect(await page.locator('#relay-ops li').allTextContents()).toEqual(relay?.ops);
    expect(await page.locator('#relay-identities li').count()).toBe(relay?.identities.length);

    const alice = new WebChatClient(connector.url, 'room', 'visitor-turn-a');
    const bob = new WebChatClient(connector.url, 'room', 'visitor-turn-b');
    visitors.push(alice, bob);
    await Promise.all([alice.open(), bob.open()]);
    alice.say('sleep alice');
    bob.say('sleep bob');
    const aliceRow = page.locator('#turns-list li').filter({ hasText: alice.chatId });
    const bobRow = page.locator('#turns-list li').filter({ hasText: bob.chatId });
    await aliceRow.waitFor();
    await bobRow.waitFor();
    expect(await page.locator('#turns-list li').count()).toBe(2);
    expect(await aliceRow.locator('time').getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);

    // No violations at desktop width with turns, relay and activity on screen.
    expect(await axeViolations(page)).toEqual([]);

    // Stop, reached by keyboard: only Alice's turn ends, with the /stop text in her chat.
    const stop = aliceRow.getByRole('button', { name: `Stop the turn in webchat chat ${alice.chatId}` });
    await stop.focus();
    await page.keyboard.press('Enter');
    await aliceRow.waitFor({ state: 'detached' });
    await page.locator('#turns-result').filter({ hasText: 'Stopped the turn' }).waitFor();
    await until(() => (alice.agentTexts().includes(TEXTS.stopped) ? true : undefined), 15_000, 'alice told');
    expect(bob.agentTexts()).not.toContain(TEXTS.stopped);
    expect(await bobRow.count()).toBe(1);
    expect(readRuntimeStatus(home)?.turns?.map((turn) => turn.chat_id)).toEqual([bob.chatId]);
    const stoppedEntry = page
      .locator('#activity li')
      .filter({ hasText: `Turn stopped in webchat ${alice.chatId}` });
    await stoppedEntry.first().waitFor();

    // The gateway's activity is kept: after a reload it is shown again, Bob's turn still listed.
    await page.reload();
    await page.locator('#conn').filter({ hasText: 'Live' }).waitFor();
    await stoppedEntry.first().waitFor();
    await page
      .locator('#activity li')
      .filter({ hasText: `Turn started in webchat ${bob.chatId}` })
      .first()
      .waitFor();
    await bobRow.waitFor();

    // And at phone width: no violations, nothing wider than the viewport.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await axeViolations(page)).toEqual([]);
    // An expression, not a function: this file is type-checked without the DOM lib (tsconfig.test.json).
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await screenshot(page, 'dashboard-turns-mobile.png');

    await bobRow.getByRole('button', { name: /^Stop the turn/ }).click();
    await bobRow.waitFor({ state: 'detached' });
    await page.locator('#turns-empty').waitFor();
    expect(errors).toEqual([]);
  }, 90_000);

  it('shows the error code and a fix for a revoked gateway', async () => {
    if (!loopback) throw new Error('setup failed');
    const page = await newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${loopback.url}/`);
    await page.locator('#platforms li').filter({ hasText: 'connected' }).waitFor();
    const revoke = await hermes(['connector', 'gateway', 'revoke', 'gw-dash', '--yes', '--db', db]);
    expect(revoke.code, revoke.stderr).toBe(0);
    const relay = page.locator('#platforms li').filter({ hasText: 'relay_revoked' });
    await relay.waitFor({ timeout: 20_000 });
    expect(await relay.locator('.pill').textContent()).toBe('failed');
    expect(await relay.locator('.platform-hint').textContent()).toMatch(
      /^How to fix: .*hermes gateway enroll/,
    );
    await timelineEntry(page, /relay: .* → failed \(relay_revoked\)/).waitFor();
    await screenshot(page, 'dashboard-revoked.png');
    expect(errors).toEqual([]);
  }, 60_000);
});
