import { afterEach, describe, expect, it, vi } from 'vitest';
import { ACTIVE_STATUS_COALESCE_MS, activeTurnsStatus, deferredActivity } from '../../src/gateway/runner.js';
import type { ActivityInput } from '../../src/home/activity-log.js';

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

describe('activity log appends (issue 20 latency)', () => {
  it('are made after the message path, in order, with the time each event happened', () => {
    vi.useFakeTimers({ toFake: ['setImmediate', 'clearImmediate', 'Date'] });
    vi.setSystemTime(1_000);
    const appended: { input: ActivityInput; at: number | undefined }[] = [];
    const activity = deferredActivity({
      append: (input: ActivityInput, now?: number) => {
        appended.push({ input, at: now });
        return undefined;
      },
    });
    activity.append({ kind: 'turn_started', session: 's', platform: 'webchat', chat_id: 'c' });
    vi.setSystemTime(1_005);
    activity.append({
      kind: 'turn_finished',
      session: 's',
      platform: 'webchat',
      chat_id: 'c',
      seconds: 0.005,
    });
    expect(appended).toEqual([]);
    vi.advanceTimersByTime(0);
    expect(appended.map((a) => [a.input.kind, a.at])).toEqual([
      ['turn_started', 1_000],
      ['turn_finished', 1_005],
    ]);
  });

  it('flush appends what is queued at once, and nothing twice', () => {
    vi.useFakeTimers({ toFake: ['setImmediate', 'clearImmediate'] });
    const kinds: string[] = [];
    const activity = deferredActivity({
      append: (input: ActivityInput) => {
        kinds.push(input.kind);
        return undefined;
      },
    });
    activity.append({ kind: 'gateway_stopping', detail: 'shutdown' });
    activity.flush();
    expect(kinds).toEqual(['gateway_stopping']);
    vi.advanceTimersByTime(0);
    expect(kinds).toEqual(['gateway_stopping']);
  });
});
