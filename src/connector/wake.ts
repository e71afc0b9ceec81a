import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { boundedCache } from '../common/cache.js';
import { errorMessage } from '../common/errors.js';
import { checkFetchTarget, type PrivateTargets, type Resolver } from '../common/ssrf.js';
import type { GatewayRecord } from './store/types.js';

/**
 * The wake poke (current §9): when inbound arrives for a gateway that went idle, one unsigned GET of
 * its `wakeUrl`, with no body and no tenant data, so whatever suspended it starts it again. At most
 * one per gateway per cooldown (the contract leaves the value open; ours is 30 s), best effort —
 * failures are logged, never retried, and never hold up delivery — and only to public addresses
 * unless the operator allows private ones (`RELAY_ALLOW_PRIVATE_TARGETS`, or the older wake-only
 * `RELAY_WAKE_ALLOW_PRIVATE=1`). Redirects are not followed (a 3xx is just the answer).
 */

export const WAKE_COOLDOWN_MS = 30_000;
const WAKE_TIMEOUT_MS = 5_000;

export interface WakePokerOptions {
  log: Logger;
  /** Which non-public addresses may be poked (`common/ssrf.ts`). */
  allowPrivate: PrivateTargets;
  cooldownMs?: number;
  now?: () => number;
  resolve?: Resolver;
}

export type PokeResult = { sent: true; status: number } | { sent: false; reason: string };

export class WakePoker {
  /** Gateways poked within the cooldown. */
  private readonly recent;

  constructor(private readonly options: WakePokerOptions) {
    this.recent = boundedCache<string, true>({
      max: 100_000,
      ttlMs: options.cooldownMs ?? WAKE_COOLDOWN_MS,
      now: options.now,
    });
  }

  /** Whether a poke for this gateway would be sent now (it is idle, has a URL, and is not cooling down). */
  due(gateway: GatewayRecord): boolean {
    return (
      gateway.idleSince !== null && !!gateway.wakeUrl && !gateway.revoked && !this.recent.has(gateway.id)
    );
  }

  /** Poke once if due; resolves when the attempt is over (callers need not wait for it). */
  async poke(gateway: GatewayRecord): Promise<PokeResult> {
    if (!this.due(gateway) || !gateway.wakeUrl) return { sent: false, reason: 'not due' };
    this.recent.set(gateway.id, true);
    const result = await this.get(gateway.wakeUrl);
    if (result.sent)
      this.options.log.info({ gatewayId: gateway.id, status: result.status }, 'idle gateway poked awake');
    else this.options.log.warn({ gatewayId: gateway.id, reason: result.reason }, 'wake poke not sent');
    return result;
  }

  private async get(wakeUrl: string): Promise<PokeResult> {
    let url: URL;
    try {
      url = new URL(wakeUrl);
    } catch {
      return { sent: false, reason: 'invalid wake URL' };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      return { sent: false, reason: `unsupported scheme ${url.protocol}` };
    const target = await checkFetchTarget(url.hostname, {
      allowPrivate: this.options.allowPrivate,
      resolve: this.options.resolve,
    });
    if (!target.ok) return { sent: false, reason: target.reason };
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      const request = client.request(
        url,
        {
          method: 'GET',
          timeout: WAKE_TIMEOUT_MS,
          headers: { 'user-agent': 'hermes-relay-wake' },
          // Connect to the address that was checked, never to a fresh resolution of the name.
          lookup: ((
            _host: string,
            lookupOptions: { all?: boolean },
            callback: (...args: unknown[]) => void,
          ) =>
            lookupOptions.all
              ? callback(null, [{ address: target.address, family: target.family }])
              : callback(null, target.address, target.family)) as never,
        },
        (response) => {
          response.resume();
          resolve({ sent: true, status: response.statusCode ?? 0 });
        },
      );
      request.on('timeout', () => request.destroy(new Error('timed out')));
      request.on('error', (error) => resolve({ sent: false, reason: errorMessage(error) }));
      request.end();
    });
  }
}
