import { brandHtml, escapeHtml, htmlDocument } from '../http/html.js';
import {
  readPageStyleSheet,
  readWebAsset,
  type StaticAsset,
  sharedWebModules,
} from '../http/static-assets.js';

/**
 * The dashboard web page (`GET /`): the HTML document, plus its stylesheet and script served from
 * `/assets/` under content-hashed names (so they can be cached forever). The browser code lives in
 * `web/` (`app.ts`, `app.css`), built into `dist/web/` by `tsconfig.web.json`; no framework, no
 * bundler, no external network. The style sheet is the shared `base.css` followed by `app.css`;
 * the script imports the shared `./sse.js` (which imports `./backoff.js`), served beside it.
 *
 * The server-side values (title, version, session token) are escaped here; the session token and
 * the other settings reach the script through an inert JSON block (`#hermes-dashboard-config`). No
 * inline script or style: the server's Content-Security-Policy allows only `'self'`.
 */

export interface DashboardPageOptions {
  /** Product name in the header and the window title. */
  title?: string;
  /** The per-process loopback session token; omitted on gated (login) binds. */
  sessionToken?: string | undefined;
  /** True when the API needs a cookie login. */
  loginRequired: boolean;
  version: string;
}

const DEFAULT_DASHBOARD_TITLE = 'Hermes Relay';

const DASHBOARD_JS = readWebAsset('dashboard/web/app.js');
const DASHBOARD_CSS = readPageStyleSheet('dashboard/web/app.css');
const JS_NAME = `dashboard.${DASHBOARD_JS.version}.js`;
const CSS_NAME = `dashboard.${DASHBOARD_CSS.version}.css`;

/**
 * Static files for `GET /assets/<name>`: the page's style sheet and script under content-hashed
 * names (cached forever), and the shared modules the script imports (`sse.js`, `backoff.js`:
 * revalidated on each use).
 */
export const DASHBOARD_ASSETS: Readonly<Record<string, StaticAsset>> = {
  ...sharedWebModules(),
  [CSS_NAME]: DASHBOARD_CSS,
  [JS_NAME]: DASHBOARD_JS,
};

/** The page for `GET /` (relative asset and API URLs, so it also works under a path prefix). */
export function renderDashboardPage(options: DashboardPageOptions): string {
  const title = options.title?.trim() || DEFAULT_DASHBOARD_TITLE;
  const config = {
    title,
    version: options.version,
    loginRequired: options.loginRequired,
    ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
  };
  return htmlDocument(
    {
      title,
      stylesheets: [`assets/${CSS_NAME}`],
      modules: [`assets/${JS_NAME}`],
      config: { id: 'hermes-dashboard-config', value: config },
      noReferrer: true,
      noFavicon: true,
    },
    `<a class="skip" href="#main">Skip to content</a>
<header class="topbar">
  ${brandHtml(title, 'Gateway dashboard', { extra: `<span class="version" title="Dashboard version">v${escapeHtml(options.version)}</span>` })}
  <div id="conn" class="stream-state" data-state="connecting" role="status" aria-live="polite" aria-label="Connection">
    <span class="dot" aria-hidden="true"></span><span id="conn-text">Connecting</span><span id="conn-detail" aria-hidden="true">…</span>
  </div>
  <button id="logout" type="button" class="btn small" hidden>Sign out</button>
</header>
<div id="banner" class="banner" hidden><p id="banner-text" class="tone-bad" role="alert"></p></div>
<main id="main" tabindex="-1">
  <p id="loading-view" class="loading" hidden>Loading…</p>

  <section id="login-view" class="card login-card" aria-labelledby="login-title" hidden>
    <h2 id="login-title">Sign in</h2>
    <p class="lead">Sign in to see and manage the gateway.</p>
    <p id="login-note" class="hint"></p>
    <form id="login-form" novalidate>
      <div class="field">
        <label for="username">Username</label>
        <input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required>
      </div>
      <div class="field">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>
      </div>
      <button id="login-submit" type="submit" class="btn primary">Sign in</button>
      <p id="login-error" class="form-error" role="alert"></p>
    </form>
  </section>

  <div id="dashboard-view" class="layout" hidden>
    <section id="status-card" class="card" aria-labelledby="status-title">
      <div class="card-head">
        <div>
          <h2 id="status-title">Gateway</h2>
          <p id="status-meta" class="meta"></p>
        </div>
        <p><span class="sr-only">Gateway state: </span><span id="state-badge" class="badge tone-idle">Unknown</span></p>
      </div>
      <div class="status-body">
        <div class="status-main">
          <p class="turns"><span id="turns-num" class="num">–</span> <span id="turns-lbl" class="lbl">active turns</span></p>
          <dl class="facts">
            <div><dt>Running</dt><dd id="fact-running">–</dd></div>
            <div><dt>Busy</dt><dd id="fact-busy">–</dd></div>
            <div><dt>Drainable</dt><dd id="fact-drainable">–</dd></div>
            <div><dt>Sessions (last hour)</dt><dd id="fact-sessions">–</dd></div>
            <div><dt>Restart drain timeout</dt><dd id="fact-timeout">–</dd></div>
            <div id="fact-exit-row" hidden><dt>Exit reason</dt><dd id="fact-exit"></dd></div>
          </dl>
        </div>
        <p id="status-notice" class="notice" hidden></p>
      </div>
      <div class="actions" role="group" aria-labelledby="actions-title">
        <h3 id="actions-title" class="sr-only">Gateway actions</h3>
        <div class="buttons">
          <button id="btn-drain" type="button" class="btn primary" disabled>Drain</button>
          <button id="btn-cancel" type="button" class="btn" disabled>Cancel drain</button>
          <button id="btn-restart" type="button" class="btn danger" disabled>Restart</button>
        </div>
        <p id="action-hint" class="hint"></p>
        <p id="action-result" class="result" role="status" aria-live="polite"></p>
      </div>
    </section>

    <section id="turns-card" class="card turns-card" aria-labelledby="running-title">
      <div class="card-head"><h2 id="running-title">Running turns</h2><span class="muted head-note">Stop acts like /stop in that chat</span></div>
      <ul id="turns-list" class="turn-list" aria-label="Turns running now"></ul>
      <p id="turns-empty" class="empty">No turns running.</p>
      <p id="turns-result" class="result" role="status" aria-live="polite"></p>
    </section>

    <section id="relay-card" class="card" aria-labelledby="relay-title">
      <div class="card-head"><h2 id="relay-title">Relay</h2></div>
      <dl id="relay-facts" class="facts relay-facts" hidden>
        <div><dt>Generation</dt><dd id="relay-generation">–</dd></div>
        <div><dt>Contract version</dt><dd id="relay-contract">–</dd></div>
      </dl>
      <h3 id="relay-identities-title" class="relay-sub" hidden>Identities on the socket</h3>
      <ul id="relay-identities" class="relay-identities" aria-labelledby="relay-identities-title"></ul>
      <h3 id="relay-ops-title" class="relay-sub" hidden>Ops adopted from the descriptor</h3>
      <ul id="relay-ops" class="ops" aria-labelledby="relay-ops-title"></ul>
      <p id="relay-empty" class="empty">No relay handshake yet.</p>
    </section>

    <section class="card activity-card" aria-labelledby="activity-title">
      <div class="card-head"><h2 id="activity-title">Gateway activity</h2><span class="muted head-note">last 200, newest first</span></div>
      <div id="activity-log" role="log" aria-live="polite" aria-labelledby="activity-title">
        <ol id="activity" class="timeline" tabindex="0" aria-label="Gateway activity, newest first"></ol>
      </div>
      <p id="activity-empty" class="empty">No gateway activity recorded yet.</p>
    </section>

    <section class="card" aria-labelledby="platforms-title">
      <div class="card-head"><h2 id="platforms-title">Platforms</h2></div>
      <ul id="platforms" class="platforms"></ul>
      <p id="platforms-empty" class="empty">No platforms reported yet.</p>
    </section>

    <section class="card timeline-card" aria-labelledby="timeline-title">
      <div class="card-head"><h2 id="timeline-title">This page</h2><span class="muted head-note">newest first</span></div>
      <ol id="timeline" class="timeline" aria-label="Recent activity, newest first"></ol>
      <p id="timeline-empty" class="empty">Waiting for the first update…</p>
    </section>
  </div>
</main>
<div id="announcer" class="sr-only" role="status" aria-live="polite" aria-atomic="true"></div>
<dialog id="confirm" aria-labelledby="confirm-title" aria-describedby="confirm-body">
  <form method="dialog">
    <h2 id="confirm-title">Confirm</h2>
    <div id="confirm-body" class="dialog-body"></div>
    <div class="dialog-actions">
      <button id="confirm-dismiss" type="submit" value="cancel" class="btn">Keep as is</button>
      <button id="confirm-ok" type="submit" value="confirm" class="btn primary">Confirm</button>
    </div>
  </form>
</dialog>
<noscript><p class="loading">This dashboard needs JavaScript. The raw status is at <a href="api/status">api/status</a>.</p></noscript>`,
  );
}
