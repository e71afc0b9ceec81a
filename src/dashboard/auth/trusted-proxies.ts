import type { FastifyRequest } from 'fastify';
import { parseAddressList } from '../../common/ssrf.js';

/**
 * Which reverse proxies the dashboard believes (`--trust-proxy [addresses]`). Only a request whose
 * socket peer is one of them may set `X-Forwarded-Proto`, `-Host` and `-Prefix`, and the client
 * address is found the way proxy-addr does it: walk `X-Forwarded-For` from the right (the entries
 * the trusted hops appended) and take the first address that is not a trusted hop. The leftmost
 * entries are whatever the client wrote, so keying the login rate limit on them would let a
 * client rotate past it. Written here rather than taken from fastify's `trustProxy` because the
 * gates are installed into an app the caller builds, and the rule must hold there too.
 */
export type TrustedProxies = (address: string) => boolean;

/** Trust no proxy: every `X-Forwarded-*` header is ignored. */
export const NO_TRUSTED_PROXIES: TrustedProxies = () => false;

/** `--trust-proxy` without addresses: a reverse proxy on this machine. */
export const LOOPBACK_PROXIES: readonly string[] = ['127.0.0.0/8', '::1/128'];

/**
 * Parse a comma-separated list of IP addresses and CIDR blocks (`10.0.0.5,10.1.0.0/16,::1`) — the
 * same list syntax as `RELAY_ALLOW_PRIVATE_TARGETS`. Throws an Error naming the first bad entry.
 */
export function parseTrustedProxyList(text: string): string[] {
  return parseAddressList(text).text.split(',');
}

/** The predicate for a list from {@link parseTrustedProxyList}; `true` means {@link LOOPBACK_PROXIES}. */
export function trustedProxies(spec: boolean | readonly string[] | undefined): TrustedProxies {
  if (spec === undefined || spec === false) return NO_TRUSTED_PROXIES;
  const list = parseAddressList((spec === true ? LOOPBACK_PROXIES : spec).join(','));
  return (address) => list.has(address.trim());
}

/** True when the request came straight from a trusted proxy (its forwarded headers count). */
export function fromTrustedProxy(request: FastifyRequest, trusted: TrustedProxies): boolean {
  const peer = request.socket?.remoteAddress;
  return peer !== undefined && trusted(peer);
}

/** The client address: the socket peer, or, through trusted hops, the first untrusted forwarder. */
export function forwardedClientIp(request: FastifyRequest, trusted: TrustedProxies): string {
  const peer = request.socket?.remoteAddress ?? request.ip ?? 'unknown';
  if (!trusted(peer)) return peer;
  const header = request.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  let client = peer;
  for (let i = forwarded.length - 1; i >= 0; i--) {
    client = (forwarded[i] as string).slice(0, 64);
    if (!trusted(client)) return client;
  }
  return client;
}
