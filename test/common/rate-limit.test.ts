import { describe, expect, it } from 'vitest';
import { SlidingWindowLimiter } from '../../src/common/rate-limit.js';

describe('SlidingWindowLimiter', () => {
  it('allows max attempts per window, then says how long to wait until the oldest leaves it', () => {
    let now = 1_000_000;
    const limiter = new SlidingWindowLimiter(3, 60_000, () => now);
    expect([limiter.hit('a'), limiter.hit('a'), limiter.hit('a')]).toEqual([0, 0, 0]);
    expect(limiter.hit('a')).toBe(60);
    expect(limiter.hit('b')).toBe(0); // keys are independent
    now += 30_500;
    expect(limiter.hit('a')).toBe(30); // refused attempts are not counted
    now += 29_500;
    expect(limiter.hit('a')).toBe(0); // the first attempt left the window
  });

  it('checks without counting (retryAfter) and counts without checking (record)', () => {
    let now = 0;
    const limiter = new SlidingWindowLimiter(2, 10_000, () => now);
    expect(limiter.retryAfter('x')).toBe(0);
    expect(limiter.retryAfter('x')).toBe(0);
    limiter.record('x');
    limiter.record('x');
    expect(limiter.retryAfter('x')).toBe(10);
    now = 9_999;
    expect(limiter.retryAfter('x')).toBe(1); // never 0 while still refused
    now = 10_000;
    expect(limiter.retryAfter('x')).toBe(0);
  });

  it('forgets the least recently used keys beyond its bound', () => {
    const limiter = new SlidingWindowLimiter(1, 60_000, () => 0, 2);
    limiter.record('a');
    limiter.record('b');
    limiter.record('c');
    expect(limiter.retryAfter('a')).toBe(0);
    expect(limiter.retryAfter('c')).toBe(60);
  });
});
