import { describe, expect, it } from 'vitest';
import { newDeliveryId } from '../../src/connector/delivery-engine.js';

describe('delivery ids (issue 20: time-ordered, so indexes keyed by them append)', () => {
  it('keeps the wire form dlv_ + 24 hex and never repeats within a process, even in one window', () => {
    const now = Date.UTC(2026, 11, 4, 12, 0, 0);
    const ids = Array.from({ length: 65_536 }, () => newDeliveryId(now));
    for (const id of ids.slice(0, 100)) expect(id).toMatch(/^dlv_[0-9a-f]{24}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // 40 random bits each: ids of one window differ beyond the counter too.
    expect(new Set(ids.map((id) => id.slice(-10))).size).toBeGreaterThan(65_000);
  });

  it('sorts by the time it was made in, window by window', () => {
    const start = Date.UTC(2026, 11, 4, 12, 0, 0);
    const ids = Array.from({ length: 1_000 }, (_, i) => newDeliveryId(start + i * 16));
    expect([...ids].sort()).toEqual(ids);
    // Far from 1970 and the 2520s alike the window keeps its ten digits.
    expect(newDeliveryId(Date.UTC(2500, 0, 1))).toMatch(/^dlv_[0-9a-f]{24}$/);
    expect(newDeliveryId(0) < newDeliveryId(start)).toBe(true);
  });
});
