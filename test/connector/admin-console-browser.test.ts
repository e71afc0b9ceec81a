import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ASSETS_PREFIX, adminAssets, renderAdminPage } from '../../src/connector/admin-console/page.js';
import { sharedWebModules } from '../../src/http/static-assets.js';
import { collectPageErrors, HAS_CHROMIUM, launchChromium, NO_CHROMIUM_MESSAGE } from '../support/browser.js';
import {
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';
import { TestRelayClient } from '../support/test-gateway.js';

/**
 * The connector admin console page (`/admin`, docs/admin-api.md) in a real headless Chromium
 * against a real `hermes connector serve` process on 127.0.0.1: the token form (a wrong token, a
 * stale one in sessionStorage), the overview, creating a tenant, a gateway connecting shown live
 * without a reload, revoking through the typed-id dialog, keyboard use, 390 px without horizontal
 * page scroll, and axe-core with no violations. Plus the shell's CSP and the assets' types.
 */

declare const axe: {
  run(): Promise<{ violations: { id: string; help: string; nodes: { target: unknown }[] }[] }>;
};

describe('renderAdminPage', () => {
  it('references only its own versioned assets and has no inline script or style', () => {
    const html = renderAdminPage();
    const referenced = [...html.matchAll(/(?:href|src)="\/admin\/assets\/([^"?]+)\?v=([0-9a-f]{12})"/g)].map(
      (m) => `${m[1]}@${m[2]}`,
    );
    const assets = adminAssets();
    // The page links its own style sheet and script; the shared modules are imported by the script.
    const shared = sharedWebModules();
    expect(referenced.sort()).toEqual(
      Object.entries(assets)
        .filter(([name]) => !(name in shared))
        .map(([name, a]) => `${name}@${a.version}`)
        .sort(),
    );
    expect(Object.keys(assets).sort()).toEqual(['admin.css', 'admin.js', ...Object.keys(shared)].sort());
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    // No HTML sinks for data in the browser scripts.
    for (const [name, asset] of Object.entries(assets))
      if (name.endsWith('.js'))
        expect(asset.body, name).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });
});

if (!HAS_CHROMIUM) {
  console.warn(NO_CHROMIUM_MESSAGE);
  describe('admin console in a browser', () => {
    it.skip(NO_CHROMIUM_MESSAGE, () => undefined);
  });
}

describe.skipIf(!HAS_CHROMIUM)('admin console in a real browser', () => {
  const TOKEN = randomBytes(32).toString('base64url');
  let dir: { path: string; remove: () => void } | undefined;
  let db = '';
  let tenantToken = '';
  let connector: (RunningProcess & { url: string }) | undefined;
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  const sockets: TestRelayClient[] = [];

  const base = () => connector?.url ?? '';
  const relayUrl = () => `${base().replace('http', 'ws')}/relay`;

  async function adminPost<T>(path: string, body: unknown): Promise<T> {
    const response = await fetch(`${base()}/admin/api${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status, path).toBeLessThan(300);
    return (await response.json()) as T;
  }

  /** Enroll a gateway of acme as an operator would: an enrollment token, then /relay/enroll. */
  async function enrollGateway(gatewayId: string): Promise<{ gatewayId: string; secret: string }> {
    const { token } = await adminPost<{ token: string }>('/tenants/acme/enroll-tokens', {});
    const response = await fetch(`${base()}/relay/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenantToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ enrollmentToken: token, gatewayId }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { gatewayId: string; secret: string };
  }

  async function newPage(options: Parameters<Browser['newContext']>[0] = {}): Promise<Page> {
    if (!browser) throw new Error('no browser');
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    return page;
  }

  async function signIn(page: Page, token = TOKEN): Promise<void> {
    await page.getByRole('textbox', { name: 'Admin token' }).fill(token);
    await page.getByRole('button', { name: 'Open the console' }).click();
  }

  async function axeViolations(page: Page): Promise<string[]> {
    if ((await page.evaluate(() => typeof (window as { axe?: unknown }).axe)) === 'undefined')
      await page.addScriptTag({ path: 'node_modules/axe-core/axe.min.js' });
    const result = await page.evaluate(() => axe.run());
    return result.violations.map(
      (v) => `${v.id}: ${v.help} (${JSON.stringify(v.nodes.map((n) => n.target))})`,
    );
  }

  beforeAll(async () => {
    dir = tempDir('admin-console-browser');
    db = join(dir.path, 'connector.db');
    const created = await hermesJson<{ id: string; accessToken: string }>([
      'connector',
      'tenant',
      'create',
      'acme',
      '--db',
      db,
    ]);
    tenantToken = created.accessToken;
    connector = await startConnectorProcess(db, { RELAY_ADMIN_TOKEN: TOKEN, RELAY_ADMIN_TOKEN_FILE: '' });
    // Two dead letters, as the delivery engine leaves them, so that table has rows with actions.
    const raw = new Database(db);
    try {
      const insert = raw.prepare(
        `INSERT INTO dead_letters (id, seq, tenant_id, gateway_id, session_key, kind, body, endpoint, created_at,
                                   attempts, reason, last_status, dead_at)
         VALUES (?, ?, ?, NULL, ?, 'message', '{}', 'http://127.0.0.1:1/relay', ?, 3, 'HTTP 404', 404, ?)`,
      );
      insert.run('dl-1', 1, created.id, 's-1', Date.now(), Date.now());
      insert.run('dl-2', 2, created.id, 's-2', Date.now(), Date.now());
    } finally {
      raw.close();
    }
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    for (const socket of sockets) socket.ws?.close();
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await connector?.stop();
    dir?.remove();
  }, 30_000);

  it('serves GET /admin with a strict CSP and the assets with their content types', async () => {
    const response = await fetch(`${base()}/admin`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    const html = await response.text();
    const urls = [...html.matchAll(/(?:href|src)="(\/admin\/assets\/[^"]+)"/g)].map((m) => m[1] as string);
    expect(urls).toHaveLength(2);
    for (const url of urls) {
      expect(url.startsWith(ADMIN_ASSETS_PREFIX)).toBe(true);
      const asset = await fetch(`${base()}${url}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toBe(
        url.includes('.js?') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
      );
      expect(asset.headers.get('cache-control')).toContain('immutable');
    }
    // The shared modules admin.js imports (`./sse.js`, and it `./backoff.js`), beside it.
    for (const name of ['sse.js', 'backoff.js']) {
      const asset = await fetch(`${base()}${ADMIN_ASSETS_PREFIX}${name}`);
      expect(asset.status, name).toBe(200);
      expect(asset.headers.get('content-type'), name).toBe('text/javascript; charset=utf-8');
    }
    expect((await fetch(`${base()}/admin/assets/nope.js`)).status).toBe(404);
  });

  it('token form, overview, a tenant created, a gateway going live without reload, revoke through the dialog, keyboard and 390 px', async () => {
    const page = await newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${base()}/admin`);

    // A wrong token: the form stays, with the API's one-line error.
    await signIn(page, 'not-the-admin-token');
    await page.getByRole('alert').filter({ hasText: 'invalid admin token' }).waitFor();
    expect(await page.locator('#console-view').isHidden()).toBe(true);

    // The right token: the overview.
    await signIn(page);
    await page.locator('#console-view').waitFor();
    await page.locator('#count-tenants').filter({ hasText: /^1$/ }).waitFor();
    await page.locator('#count-dead').filter({ hasText: /^2$/ }).waitFor();
    await page.locator('#live').filter({ hasText: 'Live' }).waitFor();
    await page.locator('#dead tbody tr').filter({ hasText: 'dl-1' }).waitFor();

    // Create a tenant: its access token is shown once; it is listed.
    await page.getByLabel('New tenant name').fill('globex');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    const secretDialog = page.locator('#secret-dialog');
    await page.locator('#secret-dialog[open]').waitFor();
    expect(await page.locator('#secret-value').inputValue()).toMatch(/\S{20,}/);
    await page.keyboard.press('Escape');
    await until(
      async () => !(await secretDialog.evaluate((d: HTMLDialogElement) => d.open)),
      5_000,
      'closed',
    );
    expect(await page.locator('#secret-value').inputValue()).toBe('');
    await page.locator('#tenants tbody tr').filter({ hasText: 'globex' }).waitFor();
    await page.locator('#count-tenants').filter({ hasText: /^2$/ }).waitFor();
    await page.locator('#result').filter({ hasText: 'Tenant globex created.' }).waitFor();

    // A gateway enrolls, then connects: the table and the counts follow from the event stream.
    await page.evaluate(() => {
      (window as { notReloaded?: boolean }).notReloaded = true;
    });
    const { gatewayId, secret } = await enrollGateway('gw-live');
    const row = page.locator('#gateways tbody tr').filter({ hasText: gatewayId });
    const badge = (label: string) =>
      row.locator('[data-field="state"]').filter({ hasText: new RegExp(`^${label}$`) });
    await badge('Not connected').waitFor();
    expect(await page.locator('#count-connected').textContent()).toBe('0');
    const socket = new TestRelayClient(relayUrl(), gatewayId, secret);
    sockets.push(socket);
    await socket.connect();
    await socket.hello();
    await page.locator('#count-connected').filter({ hasText: /^1$/ }).waitFor();
    await badge('Connected').waitFor();
    expect(await page.evaluate(() => (window as { notReloaded?: boolean }).notReloaded)).toBe(true);

    // Keyboard: Tab from the top reaches a button, with a visible focus ring.
    await page.locator('body').focus();
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    let reached: { tag: string; outline: string } | undefined;
    for (let i = 0; i < 10 && !reached; i++) {
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => {
        const a = document.activeElement as HTMLElement | null;
        return a ? { tag: a.tagName, outline: getComputedStyle(a).outlineStyle } : null;
      });
      if (focused?.tag === 'BUTTON') reached = focused;
    }
    expect(reached?.outline).not.toBe('none');

    // The revoke dialog: Escape closes it, changes nothing and gives the focus back.
    const revoke = page.getByRole('button', { name: `Revoke ${gatewayId}` });
    await revoke.focus();
    await page.keyboard.press('Enter');
    const confirm = page.locator('#confirm-dialog');
    await page.getByLabel(`Type ${gatewayId} to confirm`).waitFor();
    await page.keyboard.press('Escape');
    await until(async () => !(await confirm.evaluate((d: HTMLDialogElement) => d.open)), 5_000, 'closed');
    expect(await revoke.evaluate((b) => b === document.activeElement)).toBe(true);
    expect(socket.closeCode).toBeUndefined();

    // Revoke for real: a wrong id is refused in the dialog, the right one revokes; the socket closes 4401.
    await revoke.click();
    await page.getByLabel(`Type ${gatewayId} to confirm`).fill('gw-other');
    await page.getByRole('button', { name: 'Revoke', exact: true }).click();
    await page
      .locator('#confirm-error')
      .filter({ hasText: `Type ${gatewayId} exactly` })
      .waitFor();
    expect(await confirm.evaluate((d: HTMLDialogElement) => d.open)).toBe(true);
    await page.getByLabel(`Type ${gatewayId} to confirm`).fill(gatewayId);
    await page.getByRole('button', { name: 'Revoke', exact: true }).click();
    await page
      .locator('#result')
      .filter({ hasText: `Gateway ${gatewayId} revoked.` })
      .waitFor();
    expect(await socket.closed()).toBe(4401);
    await badge('Revoked').waitFor();
    await page.locator('#count-revoked').filter({ hasText: /^1$/ }).waitFor();
    await page.locator('#count-connected').filter({ hasText: /^0$/ }).waitFor();

    // Another operator revokes a gateway (the API, the CLI): the row follows from the stream.
    const other = await enrollGateway('gw-other-operator');
    const otherBadge = page
      .locator('#gateways tbody tr')
      .filter({ hasText: other.gatewayId })
      .locator('[data-field="state"]');
    await otherBadge.filter({ hasText: /^Not connected$/ }).waitFor();
    await adminPost(`/gateways/${other.gatewayId}/revoke`, { confirm: other.gatewayId });
    await otherBadge.filter({ hasText: /^Revoked$/ }).waitFor();
    await page.locator('#count-revoked').filter({ hasText: /^2$/ }).waitFor();
    expect(await page.evaluate(() => (window as { notReloaded?: boolean }).notReloaded)).toBe(true);

    // 390 px: the tables scroll inside their boxes, the page does not scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(100);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

    // A token that stopped working (kept in sessionStorage): back to the form with the message.
    await page.evaluate(() => sessionStorage.setItem('hermes-admin-token', 'a-stale-token'));
    await page.reload();
    await page.getByRole('alert').filter({ hasText: 'invalid admin token' }).waitFor();
    expect(await page.locator('#console-view').isHidden()).toBe(true);

    expect(errors.filter((e) => !e.includes('401'))).toEqual([]);
  });

  it('dead letters: retry puts one back in the outbox, discard asks for the typed id first', async () => {
    const page = await newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${base()}/admin`);
    await signIn(page);
    const deadRow = (id: string) => page.locator('#dead tbody tr').filter({ hasText: id });
    await deadRow('dl-1').waitFor();
    await deadRow('dl-2').waitFor();

    await page.getByRole('button', { name: 'Retry dl-1' }).click();
    await page.locator('#result').filter({ hasText: 'Dead letter dl-1 is back in the outbox.' }).waitFor();
    expect(await page.locator('#result').getAttribute('data-tone')).toBe('ok');
    // (Its body is no valid frame, so the engine may dead-letter it again at once: the audit tells.)
    await page
      .locator('#audit tbody tr')
      .filter({ hasText: 'dead_letter_requeued' })
      .filter({ hasText: 'dl-1' })
      .waitFor();

    // Discard: Cancel keeps it; the typed id discards it.
    const discard = page.getByRole('button', { name: 'Discard dl-2' });
    await discard.click();
    const confirm = page.locator('#confirm-dialog');
    await page.getByLabel('Type dl-2 to confirm').waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await until(async () => !(await confirm.evaluate((d: HTMLDialogElement) => d.open)), 5_000, 'closed');
    expect(await deadRow('dl-2').count()).toBe(1);
    await discard.click();
    await page.getByLabel('Type dl-2 to confirm').fill('dl-2');
    await page.getByRole('button', { name: 'Discard', exact: true }).click();
    await page.locator('#result').filter({ hasText: 'Dead letter dl-2 discarded.' }).waitFor();
    await deadRow('dl-2').waitFor({ state: 'detached' });

    // A third dead letter, shown after a reload.
    const raw = new Database(db);
    try {
      raw
        .prepare(
          `INSERT INTO dead_letters (id, seq, tenant_id, gateway_id, session_key, kind, body, endpoint, created_at,
                                     attempts, reason, last_status, dead_at)
           SELECT 'dl-3', 3, id, NULL, 's-3', 'message', '{}', 'http://127.0.0.1:1/relay', ?, 3, 'HTTP 404', 404, ?
           FROM tenants WHERE name = 'acme'`,
        )
        .run(Date.now(), Date.now());
    } finally {
      raw.close();
    }
    await page.reload();
    await deadRow('dl-3').waitFor();

    // Another operator was quicker (the stream notices only within 2 s): the API's one-line error
    // is shown and the stale row goes.
    await adminPost('/dead-letters/dl-3/discard', { confirm: 'dl-3' });
    await page.getByRole('button', { name: 'Retry dl-3' }).click();
    await page.locator('#result').filter({ hasText: 'no dead letter "dl-3"' }).waitFor();
    expect(await page.locator('#result').getAttribute('data-tone')).toBe('bad');
    await deadRow('dl-3').waitFor({ state: 'detached' });
    expect(errors.filter((e) => !e.includes('401'))).toEqual([]);
  });

  it('secrets are shown once with a working copy button; routes are added, and an API error is its one line', async () => {
    const page = await newPage();
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    const errors = collectPageErrors(page);
    await page.goto(`${base()}/admin`);
    await signIn(page);
    const acme = page.locator('#tenants tbody tr').filter({ hasText: 'acme' });
    await acme.waitFor();

    // An enrollment token: shown in the dialog with its expiry, copied, gone from the page on close.
    const mint = page.getByRole('button', { name: 'Enrollment token for acme' });
    await mint.click();
    await page.locator('#secret-dialog[open]').waitFor();
    const token = await page.locator('#secret-value').inputValue();
    expect(token.length).toBeGreaterThan(20);
    await expect.poll(() => page.locator('#secret-extra').textContent()).toMatch(/^Valid until /);
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.locator('#secret-status').filter({ hasText: 'Copied to the clipboard.' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(token);
    await page.getByRole('button', { name: 'Done' }).click();
    expect(await page.locator('#secret-dialog').evaluate((d: HTMLDialogElement) => d.open)).toBe(false);
    expect(await page.locator('#secret-value').inputValue()).toBe('');
    expect(await mint.evaluate((b) => b === document.activeElement)).toBe(true);

    // The delivery key: a new one each time.
    await page.getByRole('button', { name: 'Rotate delivery key of acme' }).click();
    await page.locator('#secret-dialog[open]').waitFor();
    const key = await page.locator('#secret-value').inputValue();
    expect(key).not.toBe(token);
    await page.keyboard.press('Escape');
    await page.locator('#audit tbody tr').filter({ hasText: 'delivery_key' }).first().waitFor();

    // Routes: a platform the connector does not serve is refused with the API's line; a good one is listed.
    await page.getByLabel('Tenant', { exact: true }).selectOption({ label: 'acme' });
    await page.getByLabel('Platform', { exact: true }).fill('nope');
    await page.getByLabel('Route key', { exact: true }).fill('room-1');
    await page.getByRole('button', { name: 'Add route' }).click();
    const result = page.locator('#result[data-tone="bad"]');
    await result.filter({ hasText: 'nope' }).waitFor();
    expect((await result.textContent())?.includes('\n')).toBe(false);
    await page.getByLabel('Platform', { exact: true }).fill('webchat');
    await page.getByRole('button', { name: 'Add route' }).click();
    await page.locator('#result').filter({ hasText: 'Route webchat:room-1 added.' }).waitFor();
    await page
      .locator('#routes tbody tr')
      .filter({ hasText: 'room-1' })
      .filter({ hasText: 'acme' })
      .waitFor();

    // The audit log filtered by tenant.
    // (created by another operator: the tenants table follows from the stream)
    await adminPost('/tenants', { name: 'initech' });
    await page.locator('#tenants tbody tr').filter({ hasText: 'initech' }).waitFor();
    await page.getByRole('button', { name: 'Refresh the audit log' }).click();
    const tenantCells = page.locator('#audit tbody tr td:nth-child(3)');
    await tenantCells
      .filter({ hasText: /^initech$/ })
      .first()
      .waitFor();
    await page.getByLabel('Filter by tenant').selectOption({ label: 'acme' });
    await tenantCells
      .filter({ hasText: /^initech$/ })
      .first()
      .waitFor({ state: 'detached' });
    const shown = await tenantCells.allTextContents();
    expect(shown.length).toBeGreaterThan(0);
    expect(new Set(shown)).toEqual(new Set(['acme']));

    // A double click creates one tenant: one request, no "name taken" error.
    const posts: string[] = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url().endsWith('/admin/api/tenants'))
        posts.push(request.url());
    });
    await page.getByLabel('New tenant name').fill('hooli');
    await page.getByRole('button', { name: 'Create tenant' }).dblclick();
    await page.locator('#secret-dialog[open]').waitFor();
    await page.keyboard.press('Escape');
    await page.locator('#tenants tbody tr').filter({ hasText: 'hooli' }).waitFor();
    expect(posts).toHaveLength(1);
    expect(await page.locator('#result').getAttribute('data-tone')).toBe('ok');
    expect(errors.filter((e) => !e.includes('400'))).toEqual([]);
  });

  it('the event stream: "Reconnecting" while it cannot be reached, "Live" again once it can, in a live region', async () => {
    const page = await newPage();
    const errors = collectPageErrors(page);
    const live = page.locator('#live');
    await page.route('**/admin/api/events', (route) => route.abort('connectionrefused'));
    await page.goto(`${base()}/admin`);
    expect(await live.getAttribute('aria-live')).toBe('polite');
    expect(await live.getAttribute('role')).toBe('status');
    await signIn(page);
    await page.locator('#console-view').waitFor();
    await live.filter({ hasText: 'Reconnecting' }).waitFor();
    expect(await live.getAttribute('data-state')).toBe('reconnecting');
    await page.unroute('**/admin/api/events');
    await live.filter({ hasText: 'Live' }).waitFor();
    expect(await live.getAttribute('data-state')).toBe('live');
    expect(errors.filter((e) => !e.includes('ERR_CONNECTION_REFUSED'))).toEqual([]);
  });

  it('axe-core finds no violations on the token form and the console at 1280 and 390 px', async () => {
    // The page's CSP forbids the injected axe script; this context alone lifts it.
    await enrollGateway('gw-axe'); // rows in the gateways table whatever ran before
    const page = await newPage({ bypassCSP: true });
    await page.goto(`${base()}/admin`);
    await page.getByRole('textbox', { name: 'Admin token' }).waitFor();
    expect(await axeViolations(page)).toEqual([]);
    await signIn(page);
    await page.locator('#live').filter({ hasText: 'Live' }).waitFor();
    await page.locator('#tenants tbody tr').first().waitFor();
    await page.locator('#gateways tbody tr').first().waitFor();
    expect(await axeViolations(page)).toEqual([]);
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await axeViolations(page)).toEqual([]);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    // The dark scheme too (its own colours: contrast).
    await page.emulateMedia({ colorScheme: 'dark' });
    expect(await axeViolations(page)).toEqual([]);

    // Sign out: the token leaves the tab, the form comes back (and stays after a reload).
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('textbox', { name: 'Admin token' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('hermes-admin-token'))).toBeNull();
    expect(await page.locator('#console-view').isHidden()).toBe(true);
    expect(await page.locator('#live').textContent()).toBe('Not signed in');
    await page.reload();
    expect(await page.locator('#console-view').isHidden()).toBe(true);
  });
});
