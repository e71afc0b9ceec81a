import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Vitest global setup: every temporary file of a run — test homes, databases, fake binaries, and
 * whatever the processes the tests start write to their temp dir — goes under one directory
 * (`TMPDIR`, which the workers and every child process inherit), removed when the run ends. Tests
 * still remove their own folders; this is the guarantee that a failed or interrupted test leaves
 * nothing behind in the machine's temp dir.
 */
export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'hermes-test-run-'));
  // Traversable, not listable: the Postgres tests run the server as the `postgres` user in a
  // folder of its own under here.
  chmodSync(root, 0o711);
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = root;
  return () => {
    const left = readdirSync(root);
    if (left.length > 0 && process.env.HERMES_TEST_REPORT_TEMP === '1')
      console.warn(`temp entries left by tests (removed now): ${left.join(', ')}`);
    rmSync(root, { recursive: true, force: true });
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  };
}
