/*
 * The server-rendered login page's script (`GET /login`). A classic script, inlined by the page
 * and allowed by the page's CSP through its hash; its settings come from the inert JSON block
 * `#login-config` (`{provider, next, prefix}`).
 */

interface LoginConfig {
  provider: string;
  next: string;
  prefix: string;
}

{
  const config = JSON.parse(document.getElementById('login-config')?.textContent ?? '{}') as LoginConfig;
  document.getElementById('login')?.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    const error = document.getElementById('error');
    if (error) error.textContent = '';
    try {
      const res = await fetch(`${config.prefix}/auth/password-login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        credentials: 'same-origin',
        body: JSON.stringify({
          provider: config.provider,
          username: data.get('username'),
          password: data.get('password'),
          next: config.next,
        }),
      });
      const body = (await res.json().catch(() => ({}))) as { ok?: boolean; next?: string; detail?: string };
      if (res.ok && body.ok) {
        window.location.assign(config.prefix + (body.next || '/'));
        return;
      }
      if (error) error.textContent = body.detail || 'Sign-in failed';
    } catch {
      if (error) error.textContent = 'Sign-in failed';
    }
  });
}
