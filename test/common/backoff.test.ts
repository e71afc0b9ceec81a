import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/common/backoff.js';

describe('backoffDelay', () => {
  const policy = { baseMs: 1_000, capMs: 30_000 } as const;

  it('doubles from the base and stops at the cap', () => {
    const steps = [1, 2, 3, 4, 5, 6, 7, 100, 10_000].map((n) =>
      backoffDelay(n, { ...policy, jitter: 'none' }),
    );
    expect(steps).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  });

  it('spreads equal jitter over [step/2, step] and full jitter over [0, step]', () => {
    expect(backoffDelay(3, { ...policy, jitter: 'equal' }, () => 0)).toBe(2_000);
    expect(backoffDelay(3, { ...policy, jitter: 'equal' }, () => 0.999999)).toBeCloseTo(4_000, 0);
    expect(backoffDelay(3, { ...policy, jitter: 'full' }, () => 0)).toBe(0);
    expect(backoffDelay(3, { ...policy, jitter: 'full' }, () => 0.5)).toBe(2_000);
  });

  it('waits nothing for a zero base or cap, and treats attempts below 1 as the first', () => {
    expect(backoffDelay(5, { baseMs: 0, capMs: 30_000, jitter: 'none' })).toBe(0);
    expect(backoffDelay(5, { baseMs: 1_000, capMs: 0, jitter: 'none' })).toBe(0);
    expect(backoffDelay(0, { ...policy, jitter: 'none' })).toBe(1_000);
    expect(backoffDelay(-3, { ...policy, jitter: 'none' })).toBe(1_000);
  });
});
