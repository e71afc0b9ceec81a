import { LRUCache } from 'lru-cache';

/**
 * The one bounded cache: least-recently-used eviction past `max` entries, and with `ttlMs`, entries
 * that expire once more than that has passed since they were set (0: never). `now` replaces the clock (tests pass a fake one; it must
 * be monotonic like `performance.now`). Every in-memory map that could otherwise grow with traffic —
 * ids, keys, placements, lookups — is one of these.
 */
export interface BoundedCacheOptions {
  max: number;
  ttlMs?: number | undefined;
  now?: (() => number) | undefined;
}

export type BoundedCache<K extends {}, V extends {}> = LRUCache<K, V>;

export function boundedCache<K extends {}, V extends {}>(options: BoundedCacheOptions): BoundedCache<K, V> {
  const max = Math.max(1, Math.floor(options.max));
  if (!options.ttlMs || options.ttlMs <= 0) return new LRUCache<K, V>({ max });
  return new LRUCache<K, V>({
    max,
    ttl: options.ttlMs,
    // Check expiry against the clock on every read, so an injected clock is followed exactly.
    ttlResolution: 0,
    ...(options.now ? { perf: { now: options.now } } : {}),
  });
}
