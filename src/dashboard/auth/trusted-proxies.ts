import { BlockList, isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';

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

/** Unwrap `::ffff:a.b.c.d` so an IPv4 hop matches however the socket reports it. */
function plainAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/**
 * Parse a comma-separated list of IP addresses and CIDR blocks (`10.0.0.5,10.1.0.0/16,::1`).
 * Throws an Error naming the first entry that is neither.
 */
export function parseTrustedProxyList(text: string): string[] {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new Error('expected IP addresses or CIDR blocks, comma-separated');
  for (const entry of entries) {
    const [address = '', prefix, extra] = entry.split('/');
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= max);
    if (family === 0 || !prefixOk || extra !== undefined)
      throw new Error(`"${entry}" is not an IP address or CIDR block`);
  }
  return entries;
}

/** The predicate for a list from {@link parseTrustedProxyList}; `true` means {@link LOOPBACK_PROXIES}. */
export function trustedProxies(spec: boolean | readonly string[] | undefined): TrustedProxies {
  if (spec === undefined || spec === false) return NO_TRUSTED_PROXIES;
  const list = new BlockList();
  for (const entry of spec === true ? LOOPBACK_PROXIES : spec) {
    const [address = '', prefix] = entry.split('/');
    const type = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return (address) => {
    const plain = plainAddress(address.trim());
    const family = isIP(plain);
    return family !== 0 && list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  };
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
