import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ConversationMessage } from '../../src/gateway/agents/types.js';
import { DEFAULT_MAX_MESSAGES_PER_SESSION, SqliteHistoryStore } from '../../src/gateway/history.js';
import { tempDir } from '../support/processes.js';

const dir = tempDir('history');
afterAll(() => dir.remove());

const open: SqliteHistoryStore[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

let counter = 0;
function openStore(path = join(dir.path, `h${++counter}.db`), maxPerSession?: number) {
  const store = SqliteHistoryStore.open(path, maxPerSession === undefined ? {} : { maxPerSession });
  open.push(store);
  return { store, path };
}

const user = (content: string): ConversationMessage => ({ role: 'user', content });
const assistant = (content: string): ConversationMessage => ({ role: 'assistant', content });

function rowCount(path: string, sessionKey: string): number {
  const db = new Database(path, { readonly: true });
  try {
    const row = db.prepare('SELECT COUNT(*) AS n FROM messages WHERE session_key = ?').get(sessionKey) as {
      n: number;
    };
    return row.n;
  } finally {
    db.close();
  }
}

describe('SqliteHistoryStore', () => {
  it('loads appended messages oldest first, across appends, with roles intact', () => {
    const { store } = openStore();
    store.append('s1', [user('one'), assistant('two')]);
    store.append('s1', [user('three')]);
    store.append('s1', [assistant('four'), { role: 'system', content: 'five' }]);
    expect(store.load('s1', 50)).toEqual([
      user('one'),
      assistant('two'),
      user('three'),
      assistant('four'),
      { role: 'system', content: 'five' },
    ]);
  });

  it('returns only the newest `limit` messages, still oldest first', () => {
    const { store } = openStore();
    store.append('s1', [user('a'), assistant('b'), user('c'), assistant('d')]);
    expect(store.load('s1', 2)).toEqual([user('c'), assistant('d')]);
    expect(store.load('s1', 1)).toEqual([assistant('d')]);
    expect(store.load('s1', 0)).toEqual([]);
    expect(store.load('s1', -3)).toEqual([]);
  });

  it('keeps sessions apart', () => {
    const { store } = openStore();
    store.append('s1', [user('for s1')]);
    store.append('s2', [user('for s2'), assistant('reply s2')]);
    store.append('s1', [assistant('reply s1')]);
    expect(store.load('s1', 10)).toEqual([user('for s1'), assistant('reply s1')]);
    expect(store.load('s2', 10)).toEqual([user('for s2'), assistant('reply s2')]);
    expect(store.load('unknown', 10)).toEqual([]);
  });

  it('prunes a session to its bound on append, deleting the oldest rows', () => {
    const { store, path } = openStore(undefined, 5);
    store.append('s1', [user('m1'), assistant('m2'), user('m3')]);
    store.append('s1', [assistant('m4'), user('m5'), assistant('m6')]);
    store.append('s1', [user('m7'), assistant('m8')]);
    store.append('other', [user('x')]);
    expect(store.load('s1', 100).map((m) => m.content)).toEqual(['m4', 'm5', 'm6', 'm7', 'm8']);
    expect(rowCount(path, 's1')).toBe(5);
    // Pruning one session leaves the others alone.
    expect(rowCount(path, 'other')).toBe(1);
  });

  it('bounds sessions at 200 messages by default', () => {
    const { store, path } = openStore();
    const batch = Array.from({ length: 250 }, (_, i) => user(`m${i}`));
    store.append('s1', batch.slice(0, 120));
    store.append('s1', batch.slice(120));
    const loaded = store.load('s1', 1000);
    expect(DEFAULT_MAX_MESSAGES_PER_SESSION).toBe(200);
    expect(loaded).toHaveLength(200);
    expect(loaded[0]?.content).toBe('m50');
    expect(loaded[199]?.content).toBe('m249');
    expect(rowCount(path, 's1')).toBe(200);
  });

  it('appends a batch atomically: a failing message stores none of the batch', () => {
    const { store } = openStore();
    store.append('s1', [user('kept')]);
    const bad = { role: 'assistant', content: null } as unknown as ConversationMessage;
    expect(() => store.append('s1', [user('lost'), bad])).toThrow();
    expect(store.load('s1', 10)).toEqual([user('kept')]);
  });

  it('keeps history across close and reopen', () => {
    const { store, path } = openStore();
    store.append('s1', [user('before restart'), assistant('noted')]);
    store.close();
    const reopened = openStore(path).store;
    expect(reopened.load('s1', 10)).toEqual([user('before restart'), assistant('noted')]);
    reopened.append('s1', [user('after restart')]);
    expect(reopened.load('s1', 10).map((m) => m.content)).toEqual([
      'before restart',
      'noted',
      'after restart',
    ]);
  });

  it('creates the file (and missing directories) with mode 0600, in WAL mode', () => {
    const path = join(dir.path, 'nested', 'deeper', 'history.db');
    const { store } = openStore(path);
    store.append('s1', [user('secret conversation')]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const index = db
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")
        .all() as { sql: string | null }[];
      expect(index.some((row) => /\(\s*session_key\s*,\s*id\s*\)/.test(row.sql ?? ''))).toBe(true);
    } finally {
      db.close();
    }
  });

  it('tightens a pre-existing file with wider permissions to 0600', () => {
    const path = join(dir.path, 'wide.db');
    writeFileSync(path, '');
    chmodSync(path, 0o644);
    openStore(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('works in memory and close is idempotent', () => {
    const store = SqliteHistoryStore.open(':memory:');
    store.append('s1', [user('hi')]);
    expect(store.load('s1', 5)).toEqual([user('hi')]);
    store.close();
    expect(() => store.close()).not.toThrow();
  });
});
