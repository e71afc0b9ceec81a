/** The server-rendered login page (`GET /login`, reference §2.6): no SPA, no external assets. */

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON for embedding inside a <script> element: no `</script>` or `<!--` breakouts. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

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
<script>
const cfg = ${scriptJson({ provider: first.name, next, prefix })};
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
</script>`
    : '<p>No password login is configured. Run <code>hermes dashboard set-password</code> on the host.</p>';
  const title = first ? escapeHtml(first.displayName) : 'Sign in';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hermes dashboard — sign in</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 22rem; margin: 4rem auto; padding: 0 1rem; }
label { display: block; margin: 0.75rem 0; } input { display: block; width: 100%; padding: 0.4rem; }
button { margin-top: 0.5rem; padding: 0.4rem 1rem; } #error { color: #b00020; min-height: 1.2em; }
</style>
</head>
<body>
<h1>Hermes dashboard</h1>
<p>${title}</p>
${form}
</body>
</html>
`;
}
