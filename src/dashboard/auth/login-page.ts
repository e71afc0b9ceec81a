import { createHash } from 'node:crypto';
import { pageContentSecurityPolicy } from '../../http/security-headers.js';

/**
 * The server-rendered login page (`GET /login`, reference §2.6): no SPA, no external assets.
 *
 * Its one script and one style sheet are constant texts (the per-request values travel in an inert
 * JSON data block), so the page's Content-Security-Policy allows exactly them by hash and nothing
 * else: no nonce, no `'unsafe-inline'`.
 */

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON for embedding inside a <script> element: no `</script>` or `<!--` breakouts. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const CONFIG_ID = 'login-config';

const LOGIN_SCRIPT = `
const cfg = JSON.parse(document.getElementById('${CONFIG_ID}').textContent);
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const data = new FormData(event.target);
  const error = document.getElementById('error');
  error.textContent = '';
  try {
    const res = await fetch(cfg.prefix + '/auth/password-login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      credentials: 'same-origin',
      body: JSON.stringify({ provider: cfg.provider, username: data.get('username'), password: data.get('password'), next: cfg.next }),
    });
    const body = await res.json().catch(() => ({}));
    if (res.ok && body.ok) { window.location.assign(cfg.prefix + (body.next || '/')); return; }
    error.textContent = body.detail || 'Sign-in failed';
  } catch {
    error.textContent = 'Sign-in failed';
  }
});
`;

const LOGIN_STYLE = `
body { font-family: system-ui, sans-serif; max-width: 22rem; margin: 4rem auto; padding: 0 1rem; }
label { display: block; margin: 0.75rem 0; } input { display: block; width: 100%; padding: 0.4rem; }
button { margin-top: 0.5rem; padding: 0.4rem 1rem; } #error { color: #b00020; min-height: 1.2em; }
`;

function sha256Source(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The login page's CSP: its own script and style by hash, requests to its own origin only. */
export const LOGIN_PAGE_CSP = pageContentSecurityPolicy(
  [
    "default-src 'none'",
    `script-src ${sha256Source(LOGIN_SCRIPT)}`,
    `style-src ${sha256Source(LOGIN_STYLE)}`,
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
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hermes dashboard — sign in</title>
<style>${LOGIN_STYLE}</style>
</head>
<body>
<h1>Hermes dashboard</h1>
<p>${title}</p>
${form}
</body>
</html>
`;
}
