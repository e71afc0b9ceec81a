import { cspHashSource, escapeHtml, htmlDocument, scriptJson } from '../../http/html.js';
import { pageContentSecurityPolicy } from '../../http/security-headers.js';
import { readWebAsset } from '../../http/static-assets.js';

/**
 * The server-rendered login page (`GET /login`, reference §2.6): no SPA, no external assets.
 *
 * Its one script and one style sheet are constant texts — `src/dashboard/web/login.ts` and
 * `login.css`, read from the browser build once — inlined in the page (the per-request values
 * travel in an inert JSON data block), so the page's Content-Security-Policy allows exactly them by
 * hash and nothing else: no nonce, no `'unsafe-inline'`.
 */

const CONFIG_ID = 'login-config';

const LOGIN_SCRIPT = readWebAsset('dashboard/web/login.js').body;
const LOGIN_STYLE = readWebAsset('dashboard/web/login.css').body;

/** The login page's CSP: its own script and style by hash, requests to its own origin only. */
export const LOGIN_PAGE_CSP = pageContentSecurityPolicy(
  [
    "default-src 'none'",
    `script-src ${cspHashSource(LOGIN_SCRIPT)}`,
    `style-src ${cspHashSource(LOGIN_STYLE)}`,
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
  ].join('; '),
);

export interface LoginPageOptions {
  /** Password-capable session providers, in registration order. */
  providers: readonly { name: string; displayName: string }[];
  /** Validated post-login path. */
  next: string;
  /** Reverse-proxy prefix ('' at the root). */
  prefix: string;
}

export function renderLoginPage(options: LoginPageOptions): string {
  const { providers, next, prefix } = options;
  const first = providers[0];
  const form = first
    ? `<form id="login">
  <label>Username <input name="username" autocomplete="username" required autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
  <p id="error" role="alert"></p>
</form>
<script type="application/json" id="${CONFIG_ID}">${scriptJson({ provider: first.name, next, prefix })}</script>
<script>${LOGIN_SCRIPT}</script>`
    : '<p>No password login is configured. Run <code>hermes dashboard set-password</code> on the host.</p>';
  const title = first ? escapeHtml(first.displayName) : 'Sign in';
  return htmlDocument(
    { title: 'Hermes dashboard — sign in', inlineStyle: LOGIN_STYLE },
    `<h1>Hermes dashboard</h1>
<p>${title}</p>
${form}`,
  );
}
