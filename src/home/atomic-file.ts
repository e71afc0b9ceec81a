import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Crash-safe small-file I/O for the gateway's home (`gateway_state.json`, drain and takeover
 * markers, `.env`): a reader sees either the old or the new content, never a torn write.
 */

/** Result of reading a JSON file: absent is distinct from present-but-unusable. */
export type JsonFileResult =
  | { kind: 'absent' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'ok'; value: unknown };

/**
 * Write `data` to `path` atomically: a temp file in the same directory, created with `mode`
 * (re-applied with fchmod so the umask cannot widen or narrow it), fsynced, then renamed over
 * `path`. The parent directory is created with 0700 when missing. The temp file is removed when
 * anything fails. The final file always has exactly `mode`, whatever the old file had.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  let renamed = false;
  try {
    try {
      fchmodSync(fd, mode);
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let offset = 0;
      while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
    renamed = true;
    fsyncDirectory(dir);
  } finally {
    if (!renamed) {
      try {
        unlinkSync(temp);
      } catch {
        // already gone
      }
    }
  }
}

/** Compact JSON (no spaces), as the reference `atomic_json_write` writes it. */
export function writeJsonAtomic(path: string, value: unknown, mode = 0o644): void {
  writeFileAtomic(path, JSON.stringify(value), mode);
}

/** Read and parse a JSON file. Never throws: a missing file is `absent`, anything unusable `invalid`. */
export function readJsonFile(path: string): JsonFileResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'absent' };
    return { kind: 'invalid', reason: `unreadable (${code ?? 'error'})` };
  }
  try {
    return { kind: 'ok', value: JSON.parse(text) as unknown };
  } catch {
    return { kind: 'invalid', reason: 'not valid JSON' };
  }
}

/** Remove a file; true iff this call removed it (a missing file is not an error). */
export function removeFile(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** A plain JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * ISO-8601 UTC with an explicit `+00:00` offset (what Python's `datetime.isoformat()` writes, and
 * what every `fromisoformat` accepts, unlike a bare `Z` before Python 3.11).
 */
export function isoUtc(at: Date | number = Date.now()): string {
  return new Date(at).toISOString().replace(/Z$/, '+00:00');
}

/**
 * Parse an ISO-8601 timestamp as the reference does (`datetime.fromisoformat`): a timestamp without
 * an offset is taken as UTC, a space may separate date and time. Returns epoch ms, or NaN when the
 * text is not such a timestamp (no free-form `Date.parse` guessing).
 */
export function parseIsoTimestamp(value: unknown): number {
  if (typeof value !== 'string') return Number.NaN;
  const match = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?$/i.exec(
    value.trim(),
  );
  if (!match) return Number.NaN;
  const [, date, time, zone] = match;
  let offset = zone === undefined || zone.toUpperCase() === 'Z' ? 'Z' : zone;
  if (/^[+-]\d{4}$/.test(offset)) offset = `${offset.slice(0, 3)}:${offset.slice(3)}`;
  // JS keeps milliseconds only; Python writes microseconds.
  const clipped = (time ?? '').replace(/(\.\d{3})\d+$/, '$1');
  return Date.parse(`${date}T${clipped}${offset}`);
}

function fsyncDirectory(dir: string): void {
  // Makes the rename itself durable. Not supported everywhere (e.g. Windows): best effort.
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
