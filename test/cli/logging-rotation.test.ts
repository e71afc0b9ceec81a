import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rotateByCopy, rotateLogFile, watchInheritedLog } from '../../src/home/log-rotation.js';
import { tempDir } from '../support/processes.js';

/** Size-based rotation of the detached gateway's log (src/home/log-rotation.ts). */

const dir = tempDir('log-rotation');
afterAll(() => dir.remove());

let n = 0;
function freshLog(content: string): string {
  const folder = join(dir.path, `g${++n}`);
  mkdirSync(folder, { recursive: true });
  const path = join(folder, 'gateway.log');
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

describe('rotateLogFile (before the detached gateway opens it)', () => {
  it('leaves a small file alone, renames a full one to .1 and keeps only N older files', () => {
    const path = freshLog('x'.repeat(10));
    expect(rotateLogFile(path, { maxBytes: 100, keep: 3 })).toBe(false);
    expect(existsSync(`${path}.1`)).toBe(false);

    for (const round of [1, 2, 3, 4, 5]) {
      writeFileSync(path, `round ${round} `.padEnd(120, '.'), { mode: 0o600 });
      expect(rotateLogFile(path, { maxBytes: 100, keep: 3 })).toBe(true);
      expect(existsSync(path)).toBe(false);
    }
    // The newest is .1; three kept; round 1 and 2 are gone.
    expect(readFileSync(`${path}.1`, 'utf8')).toMatch(/^round 5 /);
    expect(readFileSync(`${path}.2`, 'utf8')).toMatch(/^round 4 /);
    expect(readFileSync(`${path}.3`, 'utf8')).toMatch(/^round 3 /);
    expect(existsSync(`${path}.4`)).toBe(false);
    expect(statSync(`${path}.1`).mode & 0o777).toBe(0o600);
    // A missing file is nothing to rotate.
    expect(rotateLogFile(join(dir.path, 'absent.log'))).toBe(false);
    expect(() => rotateLogFile(path, { keep: 0 })).toThrow(/keep must be at least 1/);
  });
});

describe('rotateByCopy / watchInheritedLog (the running gateway)', () => {
  it('copies the full file to .1 and truncates it through the append descriptor: the next write starts it again', () => {
    const path = freshLog('');
    const fd = openSync(path, 'a', 0o600);
    try {
      writeSync(fd, 'a'.repeat(200));
      expect(rotateByCopy(path, fd, { maxBytes: 100, keep: 2 })).toBe(true);
      writeSync(fd, 'after\n');
      expect(readFileSync(path, 'utf8')).toBe('after\n');
      expect(readFileSync(`${path}.1`, 'utf8')).toBe('a'.repeat(200));
      expect(statSync(`${path}.1`).mode & 0o777).toBe(0o600);
      expect(rotateByCopy(path, fd, { maxBytes: 100, keep: 2 })).toBe(false);
    } finally {
      closeSync(fd);
    }
  });

  it('rotates the file a child process writes through its inherited stderr, and ignores any other stderr', async () => {
    const path = freshLog('');
    const fd = openSync(path, 'a', 0o600);
    // The child writes 50 lines of 40 bytes through stderr while watching its own stderr file.
    const script = `
      const { watchInheritedLog } = await import(${JSON.stringify(new URL('../../dist/src/home/log-rotation.js', import.meta.url).href)});
      const watch = watchInheritedLog(${JSON.stringify(path)}, { maxBytes: 400, keep: 2, intervalMs: 20 });
      process.stdout.write(watch ? 'watching\\n' : 'not watching\\n');
      for (let i = 0; i < 50; i++) {
        process.stderr.write(String(i).padStart(3, '0') + ' ' + '-'.repeat(35) + '\\n');
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 60));
      watch?.stop();
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', fd],
    });
    closeSync(fd);
    // stdout is 'pipe' above, so it exists; the stdio array is not typed per slot.
    if (!child.stdout) throw new Error('the child has no stdout pipe');
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(out).toBe('watching\n');
    expect(statSync(path).size).toBeLessThan(400 + 40 * 6);
    expect(existsSync(`${path}.1`)).toBe(true);
    expect(existsSync(`${path}.3`)).toBe(false);
    // The current file holds the last lines, whole.
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    expect(lines.at(-1)).toMatch(/^049 -{35}$/);

    // A stderr that is not the named file (a pipe here): nothing to watch.
    expect(watchInheritedLog(path, { fd: 1 })).toBeUndefined();
  });
});
