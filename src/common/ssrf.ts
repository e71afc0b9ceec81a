import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * The rule for fetching from an address someone else named (a gateway's wake URL, later media
 * URLs): public addresses only. Loopback, private, link-local, carrier-grade NAT, multicast,
 * reserved and unspecified ranges are refused, in IPv4 and IPv6 (IPv4-mapped IPv6 included),
 * unless the operator allows private targets. The host is resolved first and every address it
 * resolves to must pass; the caller then connects to a checked address, never re-resolving.
 */

const NON_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NON_PUBLIC.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  NON_PUBLIC.addSubnet(network, prefix, 'ipv6');

/** Is `address` (an IP literal) outside the public internet? Non-IP text counts as not public. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return NON_PUBLIC.check(address, 'ipv4');
  if (family !== 6) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return NON_PUBLIC.check(mapped[1], 'ipv4');
  return NON_PUBLIC.check(address, 'ipv6');
}

export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (host) => lookup(host, { all: true, verbatim: true });

export type TargetCheck = { ok: true; address: string; family: number } | { ok: false; reason: string };

/**
 * Resolve `host` and check every address; the first address to connect to when all pass.
 * `allowPrivate` lets an operator reach targets on their own network (and tests reach 127.0.0.1).
 */
export async function checkFetchTarget(
  host: string,
  options: { allowPrivate: boolean; resolve?: Resolver },
): Promise<TargetCheck> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  let addresses: { address: string; family: number }[];
  try {
    addresses = isIP(bare)
      ? [{ address: bare, family: isIP(bare) }]
      : await (options.resolve ?? systemResolver)(bare);
  } catch {
    return { ok: false, reason: `cannot resolve ${bare}` };
  }
  const [first] = addresses;
  if (!first) return { ok: false, reason: `${bare} has no address` };
  if (!options.allowPrivate) {
    const refused = addresses.find((a) => isNonPublicAddress(a.address));
    if (refused)
      return { ok: false, reason: `${bare} resolves to a non-public address (${refused.address})` };
  }
  return { ok: true, address: first.address, family: first.family };
}
