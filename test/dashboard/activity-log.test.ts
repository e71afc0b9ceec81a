import * as fs from 'node:fs';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { ACTIVITY_CAP, ActivityLog, activityPath, readActivity } from '../../src/home/activity-log.js';
import * as atomicFile from '../../src/home/atomic-file.js';
import { tempHome } from './helpers.js';

// The rewrite at the cap reads the file and writes it with writeFileAtomic; tests make each fail once.
vi.mock('../../src/home/atomic-file.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/home/atomic-file.js')>();
  return { ...actual, writeFileAtomic: vi.fn(actual.writeFileAtomic) };
});
vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  return { ...actual, readFileSync: vi.fn(actual.readFileSync) };
});

/** The gateway's activity log on its own: cap, trim, torn lines, file mode. */
describe('activity log', () => {
  const home = () => tempHome();

  it('keeps the newest 200 events and bounds the file at twice that', () => {
    const dir = home();
    const log = new ActivityLog(dir);
    for (let i = 0; i < 1000; i++) log.append({ kind: 'error', detail: `n${i}` }, Date.UTC(2026, 11, 4) + i);
    const events = readActivity(dir);
    expect(events).toHaveLength(ACTIVITY_CAP);
    expect(events[0]?.detail).toBe('n800');
    expect(events.at(-1)?.detail).toBe('n999');
    const lines = readFileSync(activityPath(dir), 'utf8').split('\n').filter(Boolean).length;
    expect(lines).toBeLessThan(ACTIVITY_CAP * 2);
    expect(statSync(activityPath(dir)).mode & 0o777).toBe(0o600);
    expect(new Set(events.map((event) => event.id)).size).toBe(ACTIVITY_CAP);
  });

  it('never holds twice the cap, even when the rewrite at the cap fails', () => {
    const dir = home();
    const errors: unknown[] = [];
    const log = new ActivityLog(dir, (error) => errors.push(error));
    const countLines = () => readFileSync(activityPath(dir), 'utf8').split('\n').filter(Boolean).length;
    for (let i = 0; i < ACTIVITY_CAP * 2 - 1; i++) log.append({ kind: 'error', detail: `n${i}` });
    expect(countLines()).toBe(ACTIVITY_CAP * 2 - 1);
    vi.mocked(atomicFile.writeFileAtomic).mockImplementationOnce(() => {
      throw new Error('disk full');
    });
    // The event that would have been line 400 is not written at all: the file keeps 399 lines.
    expect(log.append({ kind: 'error', detail: 'lost' })).toBeUndefined();
    expect(errors).toHaveLength(1);
    expect(countLines()).toBe(ACTIVITY_CAP * 2 - 1);
    // The next append rewrites: the newest 199 and itself.
    expect(log.append({ kind: 'error', detail: 'kept' })).toBeDefined();
    expect(countLines()).toBe(ACTIVITY_CAP);
    expect(readActivity(dir).at(-1)?.detail).toBe('kept');
    expect(readActivity(dir)[0]?.detail).toBe(`n${ACTIVITY_CAP}`);
  });

  it('keeps the file when it cannot be read at the cap, rather than replacing it with one line', () => {
    const dir = home();
    const errors: unknown[] = [];
    const log = new ActivityLog(dir, (error) => errors.push(error));
    for (let i = 0; i < ACTIVITY_CAP * 2 - 1; i++) log.append({ kind: 'error', detail: `n${i}` });
    vi.mocked(fs.readFileSync).mockImplementationOnce(() => {
      throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
    });
    expect(log.append({ kind: 'error', detail: 'not now' })).toBeUndefined();
    expect(errors).toHaveLength(1);
    const events = readActivity(dir);
    expect(events).toHaveLength(ACTIVITY_CAP);
    expect(events.at(-1)?.detail).toBe(`n${ACTIVITY_CAP * 2 - 2}`);
  });

  it('skips a torn or foreign line, and a new writer continues the count', () => {
    const dir = home();
    new ActivityLog(dir).append({ kind: 'gateway_started' });
    appendFileSync(activityPath(dir), '{"id":"x","at":"2026-12-04T00:00:00Z","kind":"tur');
    appendFileSync(activityPath(dir), '\n{"id":"y","kind":"not_a_kind","at":"2026"}\n');
    const next = new ActivityLog(dir);
    next.append({ kind: 'relay_connected', platform: 'relay' });
    expect(readActivity(dir).map((event) => event.kind)).toEqual(['gateway_started', 'relay_connected']);
  });

  it('cuts a long detail: a detail is a code, never a message', () => {
    const dir = home();
    new ActivityLog(dir).append({ kind: 'error', detail: 'x'.repeat(5000) });
    expect(readActivity(dir)[0]?.detail).toHaveLength(200);
  });
});
