/**
 * Public paths (lifecycle reference §2.3, `public_paths.py`) and `next=` validation (§2.6).
 */

/** Exact-match public API paths: reachable without the session token or a cookie session. */
const PUBLIC_API_PATHS: ReadonlySet<string> = new Set([
  '/api/status',
  '/api/config/defaults',
  '/api/config/schema',
  '/api/model/info',
  '/api/dashboard/themes',
  '/api/cron/fire',
]);

/** Prefix-match paths the cookie gate lets through (login machinery and static assets). */
const GATE_PUBLIC_PREFIXES: readonly string[] = [
  '/auth/login',
  '/auth/callback',
  '/auth/password-login',
  '/auth/logout',
  '/login',
  '/api/auth/providers',
  '/assets/',
  '/favicon.ico',
  '/ds-assets/',
  '/fonts/',
  '/fonts-terminal/',
  '/icons/',
  '/manifest.webmanifest',
  '/sw.js',
];

/**
 * API paths the loopback session-token gate exempts besides `PUBLIC_API_PATHS`: the provider
 * listing the login page needs. (The other auth routes live outside `/api/`.)
 */
export const LOOPBACK_PUBLIC_API_PATHS: ReadonlySet<string> = new Set([
  ...PUBLIC_API_PATHS,
  '/api/auth/providers',
]);

export function isApiPath(path: string): boolean {
  return path === '/api' || path.startsWith('/api/');
}

export function isGatePublicPath(path: string): boolean {
  return PUBLIC_API_PATHS.has(path) || GATE_PUBLIC_PREFIXES.some((prefix) => path.startsWith(prefix));
}

/**
 * A safe post-login redirect target: a same-origin path, not protocol-relative, not a backslash or
 * control-character trick, and not the login machinery or the API. Anything else ⇒ `/`.
 */
export function safeNext(raw: unknown): string {
  if (typeof raw !== 'string' || raw === '' || raw.length > 2048) return '/';
  if (!raw.startsWith('/') || raw.startsWith('//') || raw.includes('\\')) return '/';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(raw)) return '/';
  const path = raw.split(/[?#]/)[0] ?? '';
  if (path === '/login' || path.startsWith('/login/')) return '/';
  if (path.startsWith('/auth/') || path === '/auth') return '/';
  if (isApiPath(path)) return '/';
  return raw;
}
