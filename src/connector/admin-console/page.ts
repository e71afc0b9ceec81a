import type { FastifyInstance } from 'fastify';
import { brandHtml, escapeHtml, htmlDocument } from '../../http/html.js';
import { pageContentSecurityPolicy } from '../../http/security-headers.js';
import {
  readPageStyleSheet,
  readWebAsset,
  registerAssets,
  type StaticAsset,
  sharedWebModules,
  versionedUrl,
} from '../../http/static-assets.js';

/**
 * The `/admin` web page: the HTML shell and its static files under `/admin/assets/`. The browser
 * code lives in `web/` (`admin.ts`, `admin.css`), built into `dist/web/` by `tsconfig.web.json`; no
 * framework, no external network. `admin.css` is served as the shared `base.css` followed by the
 * console's own rules; `admin.js` imports the shared `./sse.js` (and it `./backoff.js`), served
 * beside it. The shell holds no secret and no inline script or style: the
 * page asks for the admin token itself and talks to `/admin/api/` with it (docs/admin-api.md).
 */

/** Where the page's assets are served. */
export const ADMIN_ASSETS_PREFIX = '/admin/assets/';

/** The page's CSP: its own script and style sheet, its own origin for the API, nothing else. */
export const ADMIN_PAGE_CSP = pageContentSecurityPolicy(
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'",
);

let assets: Readonly<Record<string, StaticAsset>> | undefined;

/** The page's static files (name → asset), read on first use and kept. */
export function adminAssets(): Readonly<Record<string, StaticAsset>> {
  assets ??= {
    ...sharedWebModules(),
    'admin.js': readWebAsset('connector/admin-console/web/admin.js'),
    'admin.css': readPageStyleSheet('connector/admin-console/web/admin.css'),
  };
  return assets;
}

function assetUrl(name: string): string {
  const asset = adminAssets()[name];
  if (!asset) throw new Error(`admin asset ${name} is unknown`);
  return versionedUrl(ADMIN_ASSETS_PREFIX, name, asset);
}

/** A table inside its own scrolling box (so a narrow screen scrolls the table, not the page). */
function table(id: string, caption: string, headers: readonly string[]): string {
  const cols = headers.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join('');
  return `<div class="table-wrap" role="region" aria-labelledby="${id}-caption" tabindex="0">
      <table id="${id}">
        <caption id="${id}-caption">${escapeHtml(caption)}</caption>
        <thead><tr>${cols}</tr></thead>
        <tbody></tbody>
      </table>
    </div>
    <p id="${id}-empty" class="empty" hidden></p>`;
}

/** The page for `GET /admin`. */
export function renderAdminPage(): string {
  return htmlDocument(
    {
      title: 'Hermes Relay · Connector admin',
      stylesheets: [assetUrl('admin.css')],
      modules: [assetUrl('admin.js')],
      noReferrer: true,
      noFavicon: true,
    },
    `<a class="skip" href="#main">Skip to content</a>
<header class="topbar">
  ${brandHtml('Connector admin', 'Hermes Relay', { subtitleId: 'meta' })}
  <p id="live" class="stream-state" data-state="off" role="status" aria-live="polite"><span class="dot" aria-hidden="true"></span><span id="live-text">Not signed in</span></p>
  <button id="sign-out" type="button" class="btn small" hidden>Sign out</button>
</header>
<main id="main" tabindex="-1">
  <section id="login-view" class="card login-card" aria-labelledby="login-title">
    <h2 id="login-title">Admin token</h2>
    <p class="lead">Enter the connector's admin token (<code>RELAY_ADMIN_TOKEN</code>). It is kept in this tab only and sent as a bearer token.</p>
    <form id="token-form" novalidate>
      <div class="field">
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="off" autocapitalize="none" spellcheck="false" required aria-describedby="token-error">
      </div>
      <button id="token-submit" type="submit" class="btn primary">Open the console</button>
      <p id="token-error" class="form-error" role="alert"></p>
    </form>
  </section>

  <div id="console-view" class="layout" hidden>
    <p id="result" class="result" role="status" aria-live="polite"></p>

    <section class="card wide" aria-labelledby="overview-title">
      <h2 id="overview-title">Overview</h2>
      <dl id="counts" class="counts">
        <div><dt>Tenants</dt><dd id="count-tenants">–</dd></div>
        <div><dt>Gateways</dt><dd id="count-gateways">–</dd></div>
        <div><dt>Connected</dt><dd id="count-connected">–</dd></div>
        <div><dt>Idle</dt><dd id="count-idle">–</dd></div>
        <div><dt>Revoked</dt><dd id="count-revoked">–</dd></div>
        <div><dt>Outbox</dt><dd id="count-outbox">–</dd></div>
        <div><dt>Dead letters</dt><dd id="count-dead">–</dd></div>
      </dl>
    </section>

    <section class="card wide" aria-labelledby="gateways-title">
      <h2 id="gateways-title">Gateways</h2>
      ${table('gateways', 'Gateways with their connection state; connection, last seen and buffered update live', ['Gateway', 'Tenant', 'Generation', 'Identities', 'State', 'Last seen', 'Buffered', 'Actions'])}
    </section>

    <section class="card wide" aria-labelledby="tenants-title">
      <h2 id="tenants-title">Tenants</h2>
      <form id="tenant-form" class="inline-form" novalidate>
        <div class="field">
          <label for="tenant-name">New tenant name</label>
          <input id="tenant-name" name="name" autocomplete="off" spellcheck="false" required>
        </div>
        <button type="submit" class="btn primary">Create tenant</button>
      </form>
      ${table('tenants', 'Tenants and their credentials', ['Name', 'Id', 'Created', 'Actions'])}
    </section>

    <section class="card" aria-labelledby="routes-title">
      <h2 id="routes-title">Routes</h2>
      <form id="route-form" class="grid-form" novalidate>
        <div class="field"><label for="route-tenant">Tenant</label><select id="route-tenant" name="tenant" required></select></div>
        <div class="field"><label for="route-platform">Platform</label><input id="route-platform" name="platform" autocomplete="off" spellcheck="false" required></div>
        <div class="field"><label for="route-key">Route key</label><input id="route-key" name="key" autocomplete="off" spellcheck="false" required></div>
        <div class="field"><label for="route-endpoint">Endpoint (optional)</label><input id="route-endpoint" name="endpoint" type="url" autocomplete="off" spellcheck="false"></div>
        <div class="field"><label for="route-gateway">Gateway (optional)</label><input id="route-gateway" name="gateway" autocomplete="off" spellcheck="false"></div>
        <button type="submit" class="btn primary">Add route</button>
      </form>
      ${table('routes', 'Routes by platform and key', ['Platform', 'Route key', 'Tenant', 'Endpoint', 'Gateway', 'Created'])}
    </section>

    <section class="card" aria-labelledby="outbox-title">
      <h2 id="outbox-title">Outbox</h2>
      ${table('outbox', 'Deliveries waiting, per tenant and gateway (updates live)', ['Tenant', 'Gateway', 'Waiting'])}
    </section>

    <section class="card wide" aria-labelledby="dead-title">
      <h2 id="dead-title">Dead letters</h2>
      ${table('dead', 'Dead letters, newest first', ['Id', 'Tenant', 'Kind', 'Reason', 'Attempts', 'Dead since', 'Actions'])}
    </section>

    <section class="card wide" aria-labelledby="audit-title">
      <h2 id="audit-title">Audit log</h2>
      <div class="toolbar">
        <div class="field"><label for="audit-tenant">Filter by tenant</label><select id="audit-tenant"><option value="">All tenants</option></select></div>
        <button id="audit-refresh" type="button" class="btn small">Refresh the audit log</button>
      </div>
      ${table('audit', 'Audit log, newest first (last 100 events)', ['When', 'Event', 'Tenant', 'Gateway', 'Detail'])}
    </section>
  </div>
</main>

<dialog id="confirm-dialog" aria-labelledby="confirm-title" aria-describedby="confirm-body">
  <form id="confirm-form" novalidate>
    <h2 id="confirm-title">Confirm</h2>
    <p id="confirm-body" class="dialog-body"></p>
    <div class="field">
      <label id="confirm-label" for="confirm-input">Type the id to confirm</label>
      <input id="confirm-input" autocomplete="off" autocapitalize="none" spellcheck="false" aria-describedby="confirm-error">
    </div>
    <p id="confirm-error" class="form-error" role="alert"></p>
    <div class="dialog-actions">
      <button id="confirm-cancel" type="button" class="btn">Cancel</button>
      <button id="confirm-ok" type="submit" class="btn danger">Confirm</button>
    </div>
  </form>
</dialog>

<dialog id="secret-dialog" aria-labelledby="secret-title" aria-describedby="secret-note">
  <h2 id="secret-title">New secret</h2>
  <p id="secret-note" class="dialog-body">Shown this once: copy it now.</p>
  <label for="secret-value" id="secret-label">Secret</label>
  <div class="secret-row">
    <input id="secret-value" readonly spellcheck="false">
    <button id="secret-copy" type="button" class="btn">Copy</button>
  </div>
  <p id="secret-extra" class="hint"></p>
  <p id="secret-status" class="hint" role="status" aria-live="polite"></p>
  <div class="dialog-actions">
    <button id="secret-close" type="button" class="btn primary">Done</button>
  </div>
</dialog>
<noscript><p class="empty">The admin console needs JavaScript. The API is documented in docs/admin-api.md.</p></noscript>`,
  );
}

/**
 * Serve the page at `GET /admin` (and `/admin/`) with its CSP, and its assets under
 * `/admin/assets/` (linked with `?v=<hash>`, so cached for good). Called by `registerAdminConsole`
 * only when the console is on.
 */
export function registerAdminPage(app: FastifyInstance): void {
  const files = adminAssets();
  const html = renderAdminPage();
  const page = async (_request: unknown, reply: import('fastify').FastifyReply) =>
    reply
      .header('content-security-policy', ADMIN_PAGE_CSP)
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(html);
  app.get('/admin', page);
  app.get('/admin/', page);
  registerAssets(app, ADMIN_ASSETS_PREFIX, files);
}
