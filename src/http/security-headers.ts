import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';

/**
 * Security headers on every answer of every HTTP server of ours (pages, APIs, assets, errors):
 * nothing may be framed (a framed dashboard is a click-jacking target for Drain and Restart),
 * nothing is content-sniffed, no URL leaks in a Referer, and API answers are never cached. A page
 * sets its own Content-Security-Policy (its scripts and styles); everything else gets one that
 * allows nothing.
 */

/** CSP for anything that is not a page: no script, no style, no framing. */
const API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'";

const BASE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/**
 * A page's CSP: `directives` plus `frame-ancestors 'none'` and `base-uri 'none'`, so no page can
 * forget them.
 */
export function pageContentSecurityPolicy(directives: string): string {
  const parts = directives
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part && !/^(frame-ancestors|base-uri)\b/.test(part));
  return [...parts, "base-uri 'none'", "frame-ancestors 'none'"].join('; ');
}

/** Add the headers to every answer of `app`; a route's own CSP or cache-control wins. */
export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(BASE_SECURITY_HEADERS)) reply.header(name, value);
    if (!reply.hasHeader('content-security-policy'))
      reply.header('content-security-policy', API_CONTENT_SECURITY_POLICY);
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
}

/** The same headers for an answer written without fastify (a hijacked stream, plain `node:http`). */
export function securityHeadersFor(response: ServerResponse): void {
  for (const [name, value] of Object.entries(BASE_SECURITY_HEADERS)) response.setHeader(name, value);
  if (!response.hasHeader('content-security-policy'))
    response.setHeader('content-security-policy', API_CONTENT_SECURITY_POLICY);
  if (!response.hasHeader('cache-control')) response.setHeader('cache-control', 'no-store');
}
