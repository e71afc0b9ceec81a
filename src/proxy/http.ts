import { isIP } from 'node:net';

/** Wire helpers for the proxy: hop-by-hop filtering, `/v1/<path>` matching, OpenAI-style errors. */

/** RFC 9110 §7.6.1 hop-by-hop headers (plus the legacy `proxy-connection`); never forwarded. */
const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Headers the proxy sets itself on the upstream request (the client's values are dropped). */
const REQUEST_HEADERS_REPLACED: ReadonlySet<string> = new Set([
  'authorization',
  'host',
  'content-length',
  'expect',
]);

/** Names listed in a `Connection` header are hop-by-hop for that message too. */
function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    if ((rawHeaders[index] ?? '').toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[index + 1] ?? '').split(',')) {
      const name = token.trim().toLowerCase();
      if (name) tokens.add(name);
    }
  }
  return tokens;
}

/** `rawHeaders` (flat name/value list) minus hop-by-hop headers and `extra` (lower-case names). */
function filterHeaders(rawHeaders: readonly string[], extra: ReadonlySet<string> = new Set()): string[] {
  const listed = connectionTokens(rawHeaders);
  const kept: string[] = [];
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(lower) || listed.has(lower) || extra.has(lower)) continue;
    kept.push(name, rawHeaders[index + 1] ?? '');
  }
  return kept;
}

/** Client request headers to forward: no hop-by-hop, no Authorization/Host/Content-Length/Expect. */
export function forwardRequestHeaders(rawHeaders: readonly string[]): string[] {
  return filterHeaders(rawHeaders, REQUEST_HEADERS_REPLACED);
}

/** Upstream response headers to return to the client: everything but hop-by-hop headers. */
export function forwardResponseHeaders(rawHeaders: readonly string[]): string[] {
  return filterHeaders(rawHeaders);
}

/** The request target split into path and query (`?…` kept verbatim, '' when absent). */
export function splitTarget(target: string): { pathname: string; search: string } {
  const mark = target.indexOf('?');
  return mark < 0
    ? { pathname: target, search: '' }
    : { pathname: target.slice(0, mark), search: target.slice(mark) };
}

/**
 * The upstream-relative tail of a `/v1/<path>` request when `<path>` is one of `allowed` or below
 * one (`/models/<id>`), else null. Dot segments, empty segments, backslashes and encoded slashes are
 * refused, so a path cannot climb out of an allowed prefix at the upstream. The tail is returned
 * as sent (still percent-encoded).
 */
export function allowedTail(pathname: string, allowed: readonly string[]): string | null {
  if (!pathname.startsWith('/v1/')) return null;
  const tail = pathname.slice(3);
  for (const segment of tail.slice(1).split('/')) {
    if (segment === '' || segment.includes('\\')) return null;
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return null;
    }
    if (decoded === '.' || decoded === '..' || decoded.includes('/') || decoded.includes('\\')) return null;
  }
  return allowed.some((path) => tail === path || tail.startsWith(`${path}/`)) ? tail : null;
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; code: string };
}

/** The OpenAI error envelope the proxy answers with. */
export function openAiError(message: string, type: string, code: string): OpenAiErrorBody {
  return { error: { message, type, code } };
}

export { isLoopbackHost } from '../common/loopback.js';

/** `http://host:port` for a bound address (IPv6 in brackets). */
export function httpUrl(host: string, port: number): string {
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  return `http://${isIP(bare) === 6 ? `[${bare}]` : bare}:${port}`;
}
