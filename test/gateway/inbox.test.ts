import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteInbox } from '../../src/gateway/inbox.js';
import { MessageEventSchema } from '../../src/protocol/index.js';
import { tempDir } from '../support/processes.js';

const dir = tempDir('inbox');
afterAll(() => dir.remove());

const event = (text: string) =>
  MessageEventSchema.parse({ text, source: { platform: 'webchat', chat_id: 'c' } });

describe('durable inbox', () => {
  it('dedupes delivery ids across a restart and replays only never-started work, in order', () => {
    const path = join(dir.path, 'inbox.db');
    const first = SqliteInbox.open(path);
    const a = first.accept('d1', 'k', event('a'));
    const b = first.accept('d2', 'k', event('b'));
    const c = first.accept(undefined, 'k', event('c'));
    expect(a).not.toBeNull();
    expect(first.accept('d1', 'k', event('a again'))).toBeNull();
    first.started(a as number);
    first.done(a as number);
    first.started(b as number); // running when the process "dies"
    first.close();

    const second = SqliteInbox.open(path);
    expect(second.accept('d1', 'k', event('replayed after restart'))).toBeNull();
    expect(second.accept('d2', 'k', event('b again'))).toBeNull();
    const { pending, interrupted } = second.recover();
    expect(interrupted).toBe(1);
    expect(pending.map((entry) => entry.event.text)).toEqual(['c']);
    expect(pending[0]?.id).toBe(c);
    second.close();
  });
});

describe('SqliteInbox group commit', () => {
  it('journals a burst in one transaction, durable once committed() resolves', async () => {
    const path = join(dir.path, 'batch.db');
    const inbox = SqliteInbox.open(path);
    const ids = ['b1', 'b2', 'b3'].map((id) => inbox.accept(id, 'agent:main:webchat:dm:c', event(id)));
    expect(ids.every((id) => typeof id === 'number')).toBe(true);
    let durable = false;
    const commit = inbox.committed().then(() => {
      durable = true;
    });
    // Nothing is acknowledged before the burst's commit, which comes after this turn.
    expect(durable).toBe(false);
    await commit;
    expect(durable).toBe(true);
    // Another process opening the file sees all three: they are duplicates there.
    const other = SqliteInbox.open(path);
    expect(['b1', 'b2', 'b3'].map((id) => other.accept(id, 'k', event(id)))).toEqual([null, null, null]);
    await other.committed();
    other.close();
    inbox.close();
  });
});
