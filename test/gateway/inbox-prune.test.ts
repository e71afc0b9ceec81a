import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { SqliteInbox } from '../../src/gateway/inbox.js';
import { MessageEventSchema } from '../../src/protocol/index.js';
import { tempDir } from '../support/processes.js';

const dir = tempDir('inbox-prune');
afterAll(() => dir.remove());
afterEach(() => vi.useRealTimers());

const event = (text: string) =>
  MessageEventSchema.parse({ text, source: { platform: 'webchat', chat_id: 'c' } });

describe('durable inbox prune (issue 20)', () => {
  it('drops entries done over an hour ago, keeps recent and pending ones and their dedupe', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.UTC(2026, 0, 1);
    vi.setSystemTime(start);
    const path = join(dir.path, 'prune.db');
    const inbox = SqliteInbox.open(path);
    const old = inbox.accept('old', 'k', event('old')) as number;
    inbox.done(old);
    inbox.accept('waiting', 'k', event('still pending'));
    vi.setSystemTime(start + 2 * 3600_000);
    const recent = inbox.accept('recent', 'k', event('recent')) as number;
    inbox.done(recent);
    // The prune runs every 500th accept.
    for (let i = 3; i < 500; i++) inbox.accept(`filler-${i}`, 'k', event('x'));
    inbox.close();

    const db = new Database(path, { readonly: true });
    const ids = db.prepare('SELECT delivery_id FROM inbox').pluck().all() as string[];
    db.close();
    expect(ids).not.toContain('old');
    expect(ids).toContain('waiting');
    expect(ids).toContain('recent');
    const reopened = SqliteInbox.open(path);
    expect(reopened.accept('recent', 'k', event('recent again'))).toBeNull();
    expect(reopened.accept('old', 'k', event('old again'))).not.toBeNull();
    reopened.close();
  });

  it('prunes through its own index, not by walking every done row', () => {
    const path = join(dir.path, 'plan.db');
    SqliteInbox.open(path).close();
    const db = new Database(path, { readonly: true });
    const plan = db
      .prepare(
        "EXPLAIN QUERY PLAN DELETE FROM inbox INDEXED BY inbox_done_at WHERE state = 'done' AND done_at < ?",
      )
      .all(0) as { detail: string }[];
    db.close();
    expect(plan.map((step) => step.detail).join('\n')).toMatch(/USING INDEX inbox_done_at \(done_at<\?\)/);
  });
});
