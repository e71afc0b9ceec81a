import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ACTIVITY_CAP, ActivityLog, activityPath, readActivity } from '../../src/home/activity-log.js';
import { tempHome } from './helpers.js';

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
