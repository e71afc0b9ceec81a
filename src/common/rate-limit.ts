import { type BoundedCache, boundedCache } from './cache.js';

/**
 * At most `max` attempts per key in any `windowMs` (a sliding window: the times of the recent
 * attempts are kept). Keys live in the one bounded cache, so a flood of keys (client addresses)
 * cannot grow it. Used for logins (every attempt counts) and admin tokens (failures count).
 */
export class SlidingWindowLimiter {
  readonly #hits: BoundedCache<string, number[]>;

  constructor(
    readonly max: number,
    readonly windowMs: number,
    readonly now: () => number = Date.now,
    maxKeys = 10_000,
  ) {
    this.#hits = boundedCache({ max: maxKeys });
  }

  /** Seconds until `key` may try again (at least 1), or 0 when it may now. Counts nothing. */
  retryAfter(key: string): number {
    const recent = this.#recent(key, this.now());
    if (recent.length < this.max) return 0;
    const oldest = recent[0] ?? this.now();
    return Math.max(1, Math.ceil((oldest + this.windowMs - this.now()) / 1000));
  }

  /** Count one attempt. */
  record(key: string): void {
    const now = this.now();
    const recent = this.#recent(key, now);
    recent.push(now);
    this.#hits.set(key, recent);
  }

  /** Check, then count an allowed attempt: 0 when allowed, else the seconds to wait. */
  hit(key: string): number {
    const wait = this.retryAfter(key);
    if (wait === 0) this.record(key);
    return wait;
  }

  #recent(key: string, now: number): number[] {
    const since = now - this.windowMs;
    const kept = this.#hits.get(key);
    if (!kept) return [];
    const recent = kept.filter((t) => t > since);
    if (recent.length === 0) this.#hits.delete(key);
    else if (recent.length !== kept.length) this.#hits.set(key, recent);
    return recent;
  }
}
