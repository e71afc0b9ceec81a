import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { boundedCache } from './cache.js';

/**
 * The rule for connecting to an address someone else named (a gateway's delivery endpoint or wake
 * URL, an operator's `route add --endpoint`): public addresses only. Loopback, private, link-local,
 * carrier-grade NAT, unique-local, multicast, reserved and unspecified ranges are refused, in IPv4
 * and IPv6 (IPv4-mapped IPv6 included), unless the operator allows private targets — all of them,
 * or those in a list of addresses and CIDR blocks ({@link parsePrivateTargets}). The host is
 * resolved first and every address it resolves to must pass; the caller then connects to a checked
 * address, never re-resolving (so a name cannot be re-pointed between the check and the connect).
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
  // Unspecified, loopback and the deprecated IPv4-compatible block (`::a.b.c.d`).
  ['::', 96],
  // IPv4-translated (`::ffff:0:a.b.c.d`, SIIT), and NAT64 — well-known and local-use prefixes —
  // which reach internal IPv4 addresses where deployed.
  ['::ffff:0:0:0', 96],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001:db8::', 32],
  // 6to4 embeds an IPv4 address (`2002:7f00:1::` is 127.0.0.1's).
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  // Site-local (deprecated, still routed inside some networks).
  ['fec0::', 10],
  ['ff00::', 8],
] as const)
  NON_PUBLIC.addSubnet(network, prefix, 'ipv6');

/** `::ffff:a.b.c.d` → `a.b.c.d`, so an IPv4 address is judged the same however it is written. */
function plainAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/** Is `address` (an IP literal) outside the public internet? Non-IP text counts as not public. */
export function isNonPublicAddress(address: string): boolean {
  const plain = plainAddress(address);
  const family = isIP(plain);
  if (family === 4) return NON_PUBLIC.check(plain, 'ipv4');
  if (family !== 6) return true;
  return NON_PUBLIC.check(plain, 'ipv6');
}

/**
 * Which non-public addresses the operator allows: `none` (the default), `all`, or the addresses in
 * a list of IPs and CIDR blocks. A boolean means none or all.
 */
export type PrivateTargets = 'none' | 'all' | AddressList | boolean;

/** A parsed list of IP addresses and CIDR blocks; `text` is the list as configured. */
export interface AddressList {
  readonly text: string;
  has(address: string): boolean;
}

/**
 * Parse a comma-separated list of IP addresses and CIDR blocks (`127.0.0.1/32,10.0.0.0/8,::1`).
 * A bare address is that one address. Throws an Error naming the first entry that is neither.
 */
export function parseAddressList(text: string): AddressList {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new Error('expected IP addresses or CIDR blocks, comma-separated');
  const list = new BlockList();
  for (const entry of entries) {
    const [written = '', prefix, extra] = entry.split('/');
    const address = plainAddress(written);
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= max);
    if (family === 0 || !prefixOk || extra !== undefined)
      throw new Error(`"${entry}" is not an IP address or CIDR block`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return {
    text: entries.join(','),
    has: (candidate) => {
      const plain = plainAddress(candidate);
      const family = isIP(plain);
      return family !== 0 && list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/**
 * A private-targets setting (`RELAY_ALLOW_PRIVATE_TARGETS`): unset, empty or `0` allows none, `1`
 * allows every non-public address, anything else is a list for {@link parseAddressList}. Throws an
 * Error (the problem, without the setting's name) for a list entry that is not an address or block.
 */
export function parsePrivateTargets(value: string | undefined): PrivateTargets {
  const text = value?.trim() ?? '';
  if (text === '' || text === '0') return 'none';
  if (text === '1') return 'all';
  try {
    return parseAddressList(text);
  } catch (error) {
    throw new Error(
      `must be 1 (every private address) or a comma-separated list of IP addresses and CIDR blocks (e.g. 127.0.0.1/32,10.0.0.0/8): ${(error as Error).message}`,
    );
  }
}

/** The wider of two settings (`all` beats a list beats none); lists are not merged. */
export function widerPrivateTargets(a: PrivateTargets, b: PrivateTargets): PrivateTargets {
  const rank = (p: PrivateTargets) => (p === 'all' || p === true ? 2 : p === 'none' || p === false ? 0 : 1);
  return rank(b) > rank(a) ? b : a;
}

/** May `address` be connected to under `allowed`? Public addresses always may. */
export function addressAllowed(address: string, allowed: PrivateTargets): boolean {
  if (!isNonPublicAddress(address)) return true;
  if (allowed === 'all' || allowed === true) return true;
  if (allowed === 'none' || allowed === false) return false;
  return allowed.has(address);
}

export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (host) => lookup(host, { all: true, verbatim: true });

export type TargetCheck =
  | { ok: true; address: string; family: number }
  | {
      ok: false;
      /** One line for whoever named the target: the host, never the address a name resolved to. */
      reason: string;
      unresolved?: true;
      /** The refused address a name resolved to: for the operator's log and audit only. */
      address?: string;
    };

/** The host of a URL without IPv6 brackets. */
function bareHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function judge(
  host: string,
  addresses: { address: string; family: number }[],
  allowed: PrivateTargets,
): TargetCheck {
  const [first] = addresses;
  if (!first) return { ok: false, reason: `${host} has no address`, unresolved: true };
  const refused = addresses.find((a) => !addressAllowed(a.address, allowed));
  if (refused)
    return {
      ok: false,
      ...(refused.address === host
        ? { reason: `${host} is not a public address` }
        : // The address stays out of the reason: telling a tenant what an internal name resolves to
          // would make the connector a DNS oracle for the operator's network.
          { reason: `${host} resolves to a non-public address`, address: refused.address }),
    };
  return { ok: true, address: first.address, family: first.family };
}

/** The verdict for an IP literal (no resolution needed), else undefined. */
export function checkLiteral(host: string, allowed: PrivateTargets): TargetCheck | undefined {
  const bare = bareHost(host);
  const family = isIP(bare);
  return family === 0 ? undefined : judge(bare, [{ address: bare, family }], allowed);
}

/**
 * Resolve `host` and check every address; the addresses to connect to when all pass.
 * `allowPrivate` lets an operator reach targets on their own network (and tests reach 127.0.0.1).
 */
export async function checkFetchTarget(
  host: string,
  options: { allowPrivate: PrivateTargets; resolve?: Resolver | undefined },
): Promise<TargetCheck> {
  const literal = checkLiteral(host, options.allowPrivate);
  if (literal) return literal;
  const bare = bareHost(host);
  let addresses: { address: string; family: number }[];
  try {
    addresses = await (options.resolve ?? systemResolver)(bare);
  } catch {
    return { ok: false, reason: `cannot resolve ${bare}`, unresolved: true };
  }
  return judge(bare, addresses, options.allowPrivate);
}

/**
 * What is wrong with `value` as a URL to connect to, or undefined: it must be an absolute http(s)
 * URL with a host and without credentials (`user:password@` would be sent along and shown wherever
 * the URL is listed). The URL itself is never repeated: it may carry a secret.
 */
export function targetUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (url.username !== '' || url.password !== '') return 'must not carry credentials (user:password@)';
  if (url.hostname === '') return 'has no host';
  return undefined;
}

/**
 * The check when a URL is registered (enroll, provision, `route add`): its shape, then the address
 * rule. A name that does not resolve now (or not within `timeoutMs`) is let through — it is checked
 * again on every connection, and DNS for a new endpoint may come later — while a literal or a name
 * resolving to a refused address is refused. Undefined when fine, else the reason (one line) and
 * whether it is the address rule (`nonPublic`) rather than the URL's shape.
 */
export async function checkTargetUrl(
  value: string,
  options: { allowPrivate: PrivateTargets; resolve?: Resolver | undefined; timeoutMs?: number },
): Promise<{ reason: string; nonPublic: boolean; address?: string } | undefined> {
  const problem = targetUrlProblem(value);
  if (problem) return { reason: problem, nonPublic: false };
  const host = new URL(value).hostname;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<TargetCheck>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, reason: 'resolution timed out', unresolved: true }),
      options.timeoutMs ?? 3_000,
    );
  });
  try {
    const check = await Promise.race([checkFetchTarget(host, options), timeout]);
    if (check.ok || check.unresolved) return undefined;
    return { reason: check.reason, nonPublic: true, ...(check.address ? { address: check.address } : {}) };
  } finally {
    clearTimeout(timer);
  }
}

export interface TargetGuardOptions {
  allowPrivate: PrivateTargets;
  resolve?: Resolver | undefined;
  /** How long a host's verdict is reused (default {@link TARGET_CHECK_TTL_MS}; 0: check every time). */
  ttlMs?: number | undefined;
  now?: (() => number) | undefined;
}

/** How long a resolved host's verdict is reused before it is resolved and judged again. */
export const TARGET_CHECK_TTL_MS = 10_000;

/**
 * {@link checkFetchTarget} for a hot path: the verdict per host is kept for a short TTL (a
 * resolution that failed is not kept) and concurrent checks of one host share one resolution.
 */
export class TargetGuard {
  readonly allowPrivate: PrivateTargets;
  private readonly verdicts;
  /** IP-literal verdicts never change; kept because a BlockList lookup costs microseconds. */
  private readonly literals = boundedCache<string, TargetCheck>({ max: 4096 });
  private readonly pending = new Map<string, Promise<TargetCheck>>();
  private readonly ttlMs: number;

  constructor(private readonly options: TargetGuardOptions) {
    this.allowPrivate = options.allowPrivate;
    this.ttlMs = options.ttlMs ?? TARGET_CHECK_TTL_MS;
    this.verdicts = boundedCache<string, TargetCheck>({ max: 4096, ttlMs: this.ttlMs, now: options.now });
  }

  /** The verdict when known without resolving (an IP literal, or a fresh cached verdict). */
  known(host: string): TargetCheck | undefined {
    const cached = this.literals.get(host) ?? (this.ttlMs > 0 ? this.verdicts.get(host) : undefined);
    if (cached) return cached;
    const literal = checkLiteral(host, this.allowPrivate);
    if (literal) this.literals.set(host, literal);
    return literal;
  }

  check(host: string): Promise<TargetCheck> {
    const known = this.known(host);
    if (known) return Promise.resolve(known);
    let inFlight = this.pending.get(host);
    if (!inFlight) {
      inFlight = checkFetchTarget(host, this.options).then((verdict) => {
        this.pending.delete(host);
        if (this.ttlMs > 0 && !(!verdict.ok && verdict.unresolved)) this.verdicts.set(host, verdict);
        return verdict;
      });
      this.pending.set(host, inFlight);
    }
    return inFlight;
  }
}
