import { closeSync, fchmodSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { isoUtc, writeFileAtomic } from './atomic-file.js';

/**
 * The gateway's activity log, `$HERMES_HOME/activity.jsonl` (mode 0600): the last
 * `ACTIVITY_CAP` (200) events the dashboard shows — turns started/finished/stopped/failed, relay
 * connected/disconnected, drain engaged/released, errors. Metadata only: session keys, platforms,
 * chat ids, durations, error codes; never message text, never a secret.
 *
 * Append-only, trimmed: each event is one `appendFile` of one short line (O(1) on every turn
 * boundary, no read–modify–write of the whole list by a busy gateway), and a reader skips a torn
 * last line. The append that would bring the file to twice the cap is instead an atomic rewrite
 * (`writeFileAtomic`) of the newest `ACTIVITY_CAP` events, this one included, so the file never
 * holds 400 lines, not even for the moment between an append and its trim, and a crash mid-trim
 * leaves either the old or the new file. Readers always return at most the newest 200. One
 * writer per home: the gateway (it holds the home lock).
 */

export const ACTIVITY_FILE_NAME = 'activity.jsonl';
export const ACTIVITY_CAP = 200;
/** A longer detail is cut: a detail is a code or a short reason, never a message. */
const DETAIL_MAX = 200;

export const ACTIVITY_KINDS = [
  'turn_started',
  'turn_finished',
  'turn_stopped',
  'turn_failed',
  'relay_connected',
  'relay_disconnected',
  'drain_engaged',
  'drain_released',
  'gateway_started',
  'gateway_stopping',
  'error',
] as const;
export type ActivityKind = (typeof ACTIVITY_KINDS)[number];

const ActivityEventSchema = z.object({
  id: z.string().max(64),
  at: z.string().max(40),
  kind: z.enum(ACTIVITY_KINDS),
  session: z.string().max(512).optional(),
  platform: z.string().max(64).optional(),
  chat_id: z.string().max(256).optional(),
  by: z.string().max(64).optional(),
  seconds: z.number().nonnegative().optional(),
  detail: z.string().max(DETAIL_MAX).optional(),
});
export type ActivityEvent = z.infer<typeof ActivityEventSchema>;
export type ActivityInput = Omit<ActivityEvent, 'id' | 'at'>;

export function activityPath(home: string): string {
  return join(home, ACTIVITY_FILE_NAME);
}

function parseLines(text: string): ActivityEvent[] {
  const events: ActivityEvent[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const parsed = ActivityEventSchema.safeParse(JSON.parse(line));
      if (parsed.success) events.push(parsed.data);
    } catch {
      // A torn or foreign line: skipped.
    }
  }
  return events;
}

/** The newest `limit` (≤ 200) events, oldest first; never throws (absent or unreadable → []). */
export function readActivity(home: string, limit = ACTIVITY_CAP): ActivityEvent[] {
  let text: string;
  try {
    text = readFileSync(activityPath(home), 'utf8');
  } catch {
    return [];
  }
  const events = parseLines(text);
  return events.slice(-Math.max(0, Math.min(limit, ACTIVITY_CAP)));
}

/** The gateway's appender. Best effort: a failed write never fails a turn (`onError` hears it). */
export class ActivityLog {
  private lines: number;
  private seq = 0;
  private prepared = false;
  private readonly path: string;

  constructor(
    private readonly home: string,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    this.path = activityPath(home);
    let existing = '';
    try {
      existing = readFileSync(this.path, 'utf8');
    } catch {
      // None yet.
    }
    this.lines = existing.split('\n').filter((line) => line.trim() !== '').length;
  }

  append(input: ActivityInput, now: number = Date.now()): ActivityEvent | undefined {
    this.seq += 1;
    const event: ActivityEvent = {
      id: `${now.toString(36)}-${process.pid.toString(36)}-${this.seq.toString(36)}`,
      at: isoUtc(now),
      ...input,
      ...(input.detail !== undefined ? { detail: input.detail.slice(0, DETAIL_MAX) } : {}),
    };
    const line = `${JSON.stringify(event)}\n`;
    try {
      if (this.lines + 1 >= ACTIVITY_CAP * 2) {
        this.rewrite(line);
        return event;
      }
      // The folder and the file's mode are checked on the first append only (the gateway owns its
      // home and is its one writer; a rewrite is 0600 too): appends sit on turn boundaries.
      if (!this.prepared) mkdirSync(this.home, { recursive: true, mode: 0o700 });
      const fd = openSync(this.path, 'a', 0o600);
      try {
        if (!this.prepared) fchmodSync(fd, 0o600);
        this.prepared = true;
        writeSync(fd, line);
      } finally {
        closeSync(fd);
      }
      this.lines += 1;
      return event;
    } catch (error) {
      this.prepared = false; // the folder may have gone: check it again next time
      this.onError(error);
      return undefined;
    }
  }

  /**
   * Replace the file (atomic, 0600) with its newest `ACTIVITY_CAP - 1` events and then `line`. A file
   * that cannot be read (anything but absent) fails the append rather than being replaced by one line.
   */
  private rewrite(line: string): void {
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const kept = parseLines(text).slice(-(ACTIVITY_CAP - 1));
    writeFileAtomic(this.path, kept.map((event) => `${JSON.stringify(event)}\n`).join('') + line, 0o600);
    this.lines = kept.length + 1;
  }
}
