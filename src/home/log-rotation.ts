import {
  chmodSync,
  copyFileSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';

/**
 * Size-based rotation of a log file, keeping `keep` older files (`gateway.log.1` the newest …
 * `gateway.log.<keep>` the oldest), all mode 0600 like the log. Two ways:
 * - {@link rotateLogFile} renames, for a file nobody is writing (before `hermes gateway start`
 *   opens it for the detached gateway);
 * - {@link watchInheritedLog} copies and truncates, for the file the running process itself writes
 *   through an inherited descriptor opened for appending (the detached gateway's stdout/stderr):
 *   after the truncation its next write lands at the start again. A line written between the copy
 *   and the truncation can be lost (logrotate's `copytruncate` has the same window).
 */

export interface LogRotationOptions {
  /** Rotate once the file reaches this size (default 10 MiB). */
  maxBytes?: number;
  /** Older files kept (default 5); the oldest beyond that is removed. */
  keep?: number;
}

export const DEFAULT_LOG_ROTATION = { maxBytes: 10 * 1024 * 1024, keep: 5 } as const;

function settings(options: LogRotationOptions): { maxBytes: number; keep: number } {
  const maxBytes = options.maxBytes ?? DEFAULT_LOG_ROTATION.maxBytes;
  const keep = options.keep ?? DEFAULT_LOG_ROTATION.keep;
  if (!(maxBytes > 0)) throw new Error(`log rotation maxBytes must be positive, got ${maxBytes}`);
  if (!Number.isInteger(keep) || keep < 1)
    throw new Error(`log rotation keep must be at least 1, got ${keep}`);
  return { maxBytes, keep };
}

/** Make room for a new `<path>.1`: `.1` → `.2` … `.<keep-1>` → `.<keep>` (the old `.<keep>` goes). */
function shift(path: string, keep: number): void {
  rmSync(`${path}.${keep}`, { force: true });
  for (let index = keep - 1; index >= 1; index--) {
    const from = `${path}.${index}`;
    if (existsSync(from)) renameSync(from, `${path}.${index + 1}`);
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

/**
 * Rename `path` to `path.1` (shifting the older ones) when it reached `maxBytes`; true when rotated.
 * Best effort: a file that cannot be rotated (permissions) is left to grow, and false is returned.
 */
export function rotateLogFile(path: string, options: LogRotationOptions = {}): boolean {
  const { maxBytes, keep } = settings(options);
  if (sizeOf(path) < maxBytes) return false;
  try {
    shift(path, keep);
    renameSync(path, `${path}.1`);
    return true;
  } catch {
    return false;
  }
}

/** Copy `path` to `path.1` (shifting the older ones) and truncate it through `fd`; true when rotated. */
export function rotateByCopy(path: string, fd: number, options: LogRotationOptions = {}): boolean {
  const { maxBytes, keep } = settings(options);
  if (fstatSync(fd).size < maxBytes) return false;
  shift(path, keep);
  copyFileSync(path, `${path}.1`);
  chmodSync(`${path}.1`, 0o600);
  ftruncateSync(fd, 0);
  return true;
}

/**
 * When this process's descriptor `fd` (default 2, stderr) is the file at `path`, check its size
 * every `intervalMs` (default 60 s, unref'd) and rotate it by copy. Undefined when `fd` is
 * something else (a terminal, a pipe, journald), which then needs no rotation from us.
 */
export function watchInheritedLog(
  path: string,
  options: LogRotationOptions & { fd?: number; intervalMs?: number; onError?: (error: unknown) => void } = {},
): { stop: () => void } | undefined {
  const fd = options.fd ?? 2;
  settings(options);
  try {
    const held = fstatSync(fd);
    const named = statSync(path);
    if (!held.isFile() || held.ino !== named.ino || held.dev !== named.dev) return undefined;
  } catch {
    return undefined;
  }
  const check = () => {
    try {
      rotateByCopy(path, fd, options);
    } catch (error) {
      options.onError?.(error);
    }
  };
  check();
  const timer = setInterval(check, options.intervalMs ?? 60_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
