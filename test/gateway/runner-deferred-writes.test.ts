import { afterEach, describe, expect, it, vi } from 'vitest';
import { ACTIVE_STATUS_COALESCE_MS, activeTurnsStatus } from '../../src/gateway/runner.js';

afterEach(() => vi.useRealTimers());

const fakeTimers = () =>
  vi.useFakeTimers({
    toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'],
  });

/** A fake gateway: its running count, whether it drains, and what reached the status file. */
function rig() {
  const state = { running: 0, urgent: false, written: [] as number[] };
  const writer = activeTurnsStatus({
    write: () => state.written.push(state.running),
    urgent: () => state.urgent,
  });
  const boundary = (delta: number) => {
    state.running += delta;
    writer.changed();
  };
  return { state, writer, boundary };
}

describe('turn boundaries in gateway_state.json (issue 20 latency)', () => {
  it('while running, writes a boundary after the message path, then at most once per window', () => {
    fakeTimers();
    const { state, boundary } = rig();
    boundary(+1);
    // Not in the message path that made the boundary: on the next setImmediate.
    expect(state.written).toEqual([]);
    vi.advanceTimersByTime(0);
    expect(state.written).toEqual([1]);
    // Boundaries within the window share one write at its end, with the count as it is then.
    for (let i = 0; i < 50; i++) {
      boundary(+1);
      if (i % 2 === 1) boundary(-1);
    }
    vi.advanceTimersByTime(ACTIVE_STATUS_COALESCE_MS - 1);
    expect(state.written).toEqual([1]);
    vi.advanceTimersByTime(1);
    expect(state.written).toEqual([1, 26]);
    // Quiet for longer than a window: the next boundary is written at once again.
    vi.advanceTimersByTime(10 * ACTIVE_STATUS_COALESCE_MS);
    expect(state.written).toEqual([1, 26]);
    boundary(-26);
    vi.advanceTimersByTime(0);
    expect(state.written).toEqual([1, 26, 0]);
  });

  it('while draining or stopping, writes every boundary at once and drops a pending coalesced write', () => {
    fakeTimers();
    const { state, boundary } = rig();
    boundary(+1);
    boundary(+1);
    state.urgent = true;
    boundary(-1);
    boundary(-1);
    expect(state.written).toEqual([1, 0]);
    vi.advanceTimersByTime(10 * ACTIVE_STATUS_COALESCE_MS);
    expect(state.written).toEqual([1, 0]);
  });

  it('cancel drops a pending write (the gateway stops and writes its final state itself)', () => {
    fakeTimers();
    const { state, writer, boundary } = rig();
    boundary(+1);
    writer.cancel();
    vi.advanceTimersByTime(10 * ACTIVE_STATUS_COALESCE_MS);
    expect(state.written).toEqual([]);
  });
});
