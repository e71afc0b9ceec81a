import type { FastifyRequest } from 'fastify';
import { isLoopbackHost } from '../../common/loopback.js';
import { forwardedClientIp, type TrustedProxies } from './trusted-proxies.js';

/** Small request helpers shared by the seam and the gates. */

const WILDCARD_BIND_HOSTS = new Set(['0.0.0.0', '::', '']);

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** True when binding to `host` keeps the dashboard on loopback (no auth gate). */
export function isLoopbackBind(host: string): boolean {
  return isLoopbackHost(host);
}

/** True for the any-address binds (`0.0.0.0`, `::`). */
export function isWildcardBind(host: string): boolean {
  return WILDCARD_BIND_HOSTS.has(stripBrackets(host.trim().toLowerCase()));
}

/**
 * Normalise a host name for comparison with a `Host` header: lower case, IPv6 literals in
 * brackets. Returns null for something that is not a plausible host.
 */
export function normalizeHostName(host: string): string | null {
  const h = stripBrackets(host.trim().toLowerCase());
  if (h === '') return null;
  if (h.includes(':')) return /^[0-9a-f:.]+$/.test(h) ? `[${h}]` : null;
  return /^[a-z0-9._-]+$/.test(h) ? h : null;
}

/**
 * The host name of a `Host` header (port dropped), normalised; null when absent or malformed
 * (userinfo, bad port, junk characters).
 */
export function hostFromHeader(header: string | undefined): string | null {
  if (typeof header !== 'string') return null;
  const value = header.trim().toLowerCase();
  if (value === '') return null;
  let name: string;
  let rest: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) return null;
    name = value.slice(0, close + 1);
    rest = value.slice(close + 1);
  } else {
    const colon = value.indexOf(':');
    name = colon < 0 ? value : value.slice(0, colon);
    rest = colon < 0 ? '' : value.slice(colon);
  }
  if (rest !== '' && !/^:[0-9]{1,5}$/.test(rest)) return null;
  return normalizeHostName(name);
}

/** The path part of the raw request URL, percent-decoded as the router decodes it. */
export function decodedRequestPath(request: FastifyRequest): string {
  const raw = request.url;
  const q = raw.search(/[?#]/);
  const path = q < 0 ? raw : raw.slice(0, q);
  try {
    return decodeURI(path);
  } catch {
    return path;
  }
}

/**
 * The paths to judge a request by: the matched route pattern (what the router will actually run,
 * immune to percent-encoding and case/slash options) and the decoded request path.
 */
export function requestPaths(request: FastifyRequest): { route: string | undefined; decoded: string } {
  const route = request.routeOptions.url;
  return { route: typeof route === 'string' ? route : undefined, decoded: decodedRequestPath(request) };
}

/**
 * Client IP for audit lines and login rate limiting: the socket peer, or behind trusted proxies the
 * address the nearest untrusted hop was seen at (never the client-written leftmost entry).
 */
export function clientIp(request: FastifyRequest, trusted: TrustedProxies): string {
  return forwardedClientIp(request, trusted);
}
