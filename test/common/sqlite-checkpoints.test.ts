import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackgroundCheckpoints } from '../../src/common/sqlite-checkpoints.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { until } from '../support/poll.js';
import { tempDir } from '../support/processes.js';

// vitest runs the TypeScript sources, next to which no compiled worker script sits: these cases
// name the one `npm run build` (the test script's first step) puts in dist/.
const WORKER = new URL('../../dist/src/common/wal-checkpoint-worker.js', import.meta.url);

const dir = tempDir('sqlite-checkpoints');
afterAll(() => dir.remove());

function walDatabase(name: string): { db: Database.Database; path: string } {
  const path = join(dir.path, name);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  return { db, path };
}

const autocheckpoint = (db: Database.Database): number =>
  db.pragma('wal_autocheckpoint', { simple: true }) as number;

describe('WAL checkpoints on a worker thread (issue 20)', () => {
  it('copies committed frames back while the writer keeps only a safety net, and hands it back at stop', async () => {
    const { db, path } = walDatabase('busy.db');
    const errors: string[] = [];
    const checkpoints = startBackgroundCheckpoints(db, path, {
      workerUrl: WORKER,
      onError: (message) => errors.push(message),
    });
    try {
      expect(checkpoints.active).toBe(true);
      expect(autocheckpoint(db)).toBe(10_000);
      const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
      // Far fewer pages than the safety net: the writer never checkpoints these itself.
      for (let i = 0; i < 200; i++) db.transaction(() => insert.run('x'.repeat(2_000)))();
      await until(() => checkpoints.stats.checkpointed > 0, 10_000, 'a background checkpoint');
      expect(checkpoints.stats.checkpoints).toBeGreaterThan(0);
      expect(checkpoints.stats.checkpointed).toBeLessThanOrEqual(checkpoints.stats.log);
      await until(() => checkpoints.stats.checkpointed === checkpoints.stats.log, 10_000, 'the whole log');
      // The database file alone, without its log, has every row: the pages were copied into it.
      const copy = join(dir.path, 'busy-copy.db');
      copyFileSync(path, copy);
      const alone = new Database(copy, { readonly: true });
      expect((alone.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n).toBe(200);
      alone.close();
    } finally {
      await checkpoints.stop();
    }
    expect(checkpoints.active).toBe(false);
    expect(autocheckpoint(db)).toBe(1_000);
    expect(errors).toEqual([]);
    db.close();
  });

  it('leaves checkpoints on the writer without a worker script, or for a database in memory', async () => {
    const { db, path } = walDatabase('no-worker.db');
    const missing = startBackgroundCheckpoints(db, path, {
      workerUrl: pathToFileURL(join(dir.path, 'absent-worker.js')),
    });
    expect(missing.active).toBe(false);
    expect(autocheckpoint(db)).toBe(1_000);
    await missing.stop();
    const memory = new Database(':memory:');
    expect(startBackgroundCheckpoints(memory, ':memory:', { workerUrl: WORKER }).active).toBe(false);
    memory.close();
    db.close();
  });

  it('gives the writer its checkpoints back, and says so, when the worker fails', async () => {
    const { db, path } = walDatabase('failing.db');
    const broken = join(dir.path, 'broken-worker.mjs');
    writeFileSync(broken, "throw new Error('no checkpoints today');\n");
    const errors: string[] = [];
    const checkpoints = startBackgroundCheckpoints(db, path, {
      workerUrl: pathToFileURL(broken),
      onError: (message) => errors.push(message),
    });
    await until(() => errors.length > 0, 10_000, 'the worker error');
    expect(errors[0]).toContain('no checkpoints today');
    expect(checkpoints.active).toBe(false);
    expect(autocheckpoint(db)).toBe(1_000);
    await checkpoints.stop();
    db.close();
  });

  it('is off for a store opened without it, from the TypeScript sources, and stops with the store', async () => {
    const path = join(dir.path, 'store.db');
    const plain = SqliteStore.open(path);
    expect(plain.checkpoints).toBeUndefined();
    await plain.close();
    const store = SqliteStore.open(path, { backgroundCheckpoints: { onError: () => undefined } });
    // No compiled worker next to src/common: the store checkpoints as before.
    expect(store.checkpoints?.active).toBe(false);
    await store.close();
  });
});
