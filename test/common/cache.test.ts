import { describe, expect, it } from 'vitest';
import { boundedCache } from '../../src/common/cache.js';

describe('boundedCache', () => {
  it('forgets the least recently used entry past max', () => {
    const cache = boundedCache<string, number>({ max: 2 });
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1); // a is now the most recently used
    cache.set('c', 3);
    expect(cache.has('b')).toBe(false);
    expect([...cache.keys()].sort()).toEqual(['a', 'c']);
  });

  it('expires entries once more than ttlMs has passed since they were set, on the injected clock', () => {
    let now = 1_000;
    const cache = boundedCache<string, true>({ max: 10, ttlMs: 500, now: () => now });
    cache.set('k', true);
    now += 500;
    expect(cache.has('k')).toBe(true);
    now += 1;
    expect(cache.has('k')).toBe(false);
    cache.set('k', true); // setting again restarts its time
    now += 499;
    expect(cache.get('k')).toBe(true);
  });

  it('treats a ttl of 0 as no expiry and a max below 1 as 1', () => {
    let now = 0;
    const cache = boundedCache<string, number>({ max: 0, ttlMs: 0, now: () => now });
    cache.set('a', 1);
    now += 10_000_000;
    expect(cache.get('a')).toBe(1);
    cache.set('b', 2);
    expect(cache.size).toBe(1);
  });
});
