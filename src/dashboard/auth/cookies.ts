import type { FastifyRequest } from 'fastify';
import { fromTrustedProxy, type TrustedProxies } from './trusted-proxies.js';

/**
 * Session cookies (lifecycle reference §3.5). Values are provider tokens; the framework does not
 * sign them. Attributes: HttpOnly, SameSite=Lax, Path=/ (or the reverse-proxy prefix), Secure when
 * the request came over TLS. Name prefix: plain HTTP ⇒ bare name; HTTPS at Path=/ ⇒ `__Host-`;
 * HTTPS under a proxy prefix ⇒ `__Secure-` with `Path=<prefix>`. Readers try `__Host-`,
 * `__Secure-`, then bare; clearing emits Max-Age=0 for every variant.
 */

const ACCESS_COOKIE = 'hermes_session_at';
const REFRESH_COOKIE = 'hermes_session_rt';
/** `_RT_MAX_AGE`: the refresh cookie lives 30 days; the provider's own TTL is the authority. */
const REFRESH_COOKIE_MAX_AGE = 30 * 24 * 60 * 60;
/** Floor for the access cookie's Max-Age. */
const MIN_ACCESS_COOKIE_MAX_AGE = 60;

const MAX_COOKIE_PAIRS = 200;
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 6265 cookie-octet: no CTLs, whitespace, DQUOTE, comma, semicolon or backslash.
const COOKIE_VALUE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*$/;
const PREFIX_SEGMENT = /^[A-Za-z0-9._~!$&'()*+,=:@-]+$/;

/** How cookies are scoped for one request. */
export interface CookieContext {
  /** The request reached us over TLS (directly or via a trusted proxy). */
  readonly secure: boolean;
  /** Normalised reverse-proxy mount prefix (`/hermes`), or '' at the root. */
  readonly prefix: string;
}

export interface CookieAttributes {
  maxAge: number;
  path: string;
  secure: boolean;
  httpOnly?: boolean;
  sameSite?: 'Lax' | 'Strict' | 'None';
}

/**
 * Parse a `Cookie` header into name → value. Tolerant: skips empty and malformed pairs, trims
 * whitespace, strips one pair of surrounding double quotes; the first occurrence of a name wins
 * (the most specific path comes first). Values are not percent-decoded.
 */
export function parseCookieHeader(header: string | readonly string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (header === undefined) return out;
  const text = typeof header === 'string' ? header : header.join('; ');
  let pairs = 0;
  for (const part of text.split(';')) {
    if (++pairs > MAX_COOKIE_PAIRS) break;
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name === '' || !COOKIE_NAME.test(name) || out.has(name)) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.set(name, value);
  }
  return out;
}

/** Serialize one `Set-Cookie` value. Throws on a name or value that would need escaping. */
export function serializeCookie(name: string, value: string, attrs: CookieAttributes): string {
  if (!COOKIE_NAME.test(name)) throw new TypeError(`invalid cookie name: ${JSON.stringify(name)}`);
  if (!COOKIE_VALUE.test(value)) throw new TypeError(`invalid value for cookie ${name}`);
  const parts = [
    `${name}=${value}`,
    `Max-Age=${Math.max(0, Math.floor(attrs.maxAge))}`,
    `Path=${attrs.path}`,
  ];
  if (attrs.maxAge <= 0) parts.push('Expires=Thu, 01 Jan 1970 00:00:00 GMT');
  if (attrs.httpOnly !== false) parts.push('HttpOnly');
  if (attrs.secure) parts.push('Secure');
  parts.push(`SameSite=${attrs.sameSite ?? 'Lax'}`);
  return parts.join('; ');
}

/**
 * Normalise an `X-Forwarded-Prefix` value: `/a/b` with safe segments, no trailing slash, no `.`
 * or `..` segments. Anything else (or absent) ⇒ ''.
 */
export function normalizeForwardedPrefix(raw: string | readonly string[] | undefined): string {
  const value = (typeof raw === 'string' ? raw : raw?.[0])?.split(',')[0]?.trim();
  if (!value || value === '/') return '';
  if (!value.startsWith('/')) return '';
  const segments = value.split('/').slice(1);
  while (segments.length > 0 && segments[segments.length - 1] === '') segments.pop();
  if (segments.length === 0) return '';
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || !PREFIX_SEGMENT.test(s)) return '';
  }
  return `/${segments.join('/')}`;
}

/** The first value of a possibly repeated, possibly comma-separated header. */
export function firstHeaderValue(raw: string | readonly string[] | undefined): string | undefined {
  const value = typeof raw === 'string' ? raw : raw?.[0];
  return value?.split(',')[0]?.trim() || undefined;
}

/**
 * The cookie scope for a request. `secure` when fastify saw TLS (`request.protocol`, which honours
 * `X-Forwarded-Proto` only under fastify's own trustProxy), or when the request came straight from
 * a trusted proxy and its `X-Forwarded-Proto` says https. The prefix comes from
 * `X-Forwarded-Prefix` only from a trusted proxy.
 */
export function cookieContext(request: FastifyRequest, trusted: TrustedProxies): CookieContext {
  const viaProxy = fromTrustedProxy(request, trusted);
  let secure = request.protocol === 'https';
  if (!secure && viaProxy) {
    secure = firstHeaderValue(request.headers['x-forwarded-proto'])?.toLowerCase() === 'https';
  }
  const prefix = viaProxy ? normalizeForwardedPrefix(request.headers['x-forwarded-prefix']) : '';
  return { secure, prefix };
}

/** The cookie name actually written for `base` in this context. */
function cookieName(base: string, ctx: CookieContext): string {
  if (!ctx.secure) return base;
  return ctx.prefix === '' ? `__Host-${base}` : `__Secure-${base}`;
}

/** Read a session cookie, trying `__Host-`, `__Secure-`, then the bare name. */
export function readCookie(cookies: ReadonlyMap<string, string>, base: string): string | null {
  for (const name of [`__Host-${base}`, `__Secure-${base}`, base]) {
    const value = cookies.get(name);
    if (value !== undefined && value !== '') return value;
  }
  return null;
}

export interface SessionCookies {
  accessToken: string | null;
  refreshToken: string | null;
}

export function readSessionCookies(request: FastifyRequest): SessionCookies {
  const cookies = parseCookieHeader(request.headers.cookie);
  return {
    accessToken: readCookie(cookies, ACCESS_COOKIE),
    refreshToken: readCookie(cookies, REFRESH_COOKIE),
  };
}

/**
 * `Set-Cookie` values for a fresh or refreshed session: the access cookie with
 * Max-Age = max(60, expiresAt − now) and, when the provider issued one, the refresh cookie with
 * Max-Age 30 days.
 */
export function sessionSetCookies(
  ctx: CookieContext,
  session: { accessToken: string; refreshToken: string; expiresAt: number },
  nowSeconds: number,
): string[] {
  const path = ctx.prefix === '' ? '/' : ctx.prefix;
  const out = [
    serializeCookie(cookieName(ACCESS_COOKIE, ctx), session.accessToken, {
      maxAge: Math.max(MIN_ACCESS_COOKIE_MAX_AGE, Math.floor(session.expiresAt - nowSeconds)),
      path,
      secure: ctx.secure,
    }),
  ];
  if (session.refreshToken !== '') {
    out.push(
      serializeCookie(cookieName(REFRESH_COOKIE, ctx), session.refreshToken, {
        maxAge: REFRESH_COOKIE_MAX_AGE,
        path,
        secure: ctx.secure,
      }),
    );
  }
  return out;
}

/** `Set-Cookie` values that delete both session cookies in every name/path variant. */
export function clearSessionCookies(ctx: CookieContext): string[] {
  const path = ctx.prefix === '' ? '/' : ctx.prefix;
  const out: string[] = [];
  for (const base of [ACCESS_COOKIE, REFRESH_COOKIE]) {
    out.push(serializeCookie(base, '', { maxAge: 0, path, secure: ctx.secure }));
    if (path !== '/') out.push(serializeCookie(base, '', { maxAge: 0, path: '/', secure: ctx.secure }));
    out.push(serializeCookie(`__Host-${base}`, '', { maxAge: 0, path: '/', secure: true }));
    out.push(serializeCookie(`__Secure-${base}`, '', { maxAge: 0, path, secure: true }));
  }
  return out;
}
