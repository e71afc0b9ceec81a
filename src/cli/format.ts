/** Human-readable output helpers shared by the commands. */

/** LSB exit codes of the `status` commands: 0 running, 3 not running, 1 error (e.g. no answer). */
export const STATUS_NOT_RUNNING = 3;
export const STATUS_EXIT_CODES_HELP =
  '\nExit status (LSB): 0 running, 3 not running, 1 error (it could not tell, or the process does not\n' +
  'answer), 2 usage. With --json it is 0 whenever the state could be read: `running` says.';

export function printTable(rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cells = rows.map((row) => columns.map((column) => formatCell(row[column])));
  const widths = columns.map((column, i) =>
    Math.max(column.length, ...cells.map((line) => (line[i] ?? '').length)),
  );
  const line = (values: string[]) =>
    values
      .map((value, i) => value.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(columns.map((c) => c.toUpperCase()))}\n`);
  for (const values of cells) process.stdout.write(`${line(values)}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function formatCell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

export function isoTime(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}

/** `90s`, `30m`, `24h`, `7d` or plain seconds → milliseconds; undefined if unreadable. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)\s*(s|m|h|d)?$/i.exec(text.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = (match[2] ?? 's').toLowerCase();
  const seconds = { s: 1, m: 60, h: 3600, d: 86400 }[unit as 's' | 'm' | 'h' | 'd'];
  return amount > 0 ? amount * seconds * 1000 : undefined;
}

/** Where progress goes: stderr, or a test's sink. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** What is being waited for, e.g. `the gateway (PID 42) to finish its running turns and stop`. */
  what: string;
  /** The longest the wait can last (shown as "up to N s"). */
  limitMs: number;
  /** A short live detail added to each update (e.g. `2 turns running`), read at each tick. */
  detail?: () => string | undefined;
  stream?: ProgressStream;
  /** Nothing is printed when the wait ends sooner (a quick stop stays quiet). */
  delayMs?: number;
  /** Between updates: 1 s on a terminal (one updating line), 5 s when piped (plain lines). */
  intervalMs?: number;
  now?: () => number;
}

/**
 * Progress of a long wait on stderr: after `delayMs`, one line saying what it waits for, then an
 * update every few seconds (elapsed of the limit, and the detail). On a terminal the update rewrites
 * one line; piped, each is its own line. `stop()` ends it (and the terminal line).
 */
export function startProgress(options: ProgressOptions): { stop: () => void } {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const now = options.now ?? Date.now;
  const started = now();
  const limit = Math.round(options.limitMs / 1000);
  let shown = false;
  let lineOpen = false;
  let ticker: ReturnType<typeof setInterval> | undefined;
  const update = () => {
    const elapsed = Math.round((now() - started) / 1000);
    const detail = options.detail?.();
    const line = `  … ${elapsed} s of up to ${limit} s${detail ? ` — ${detail}` : ''}`;
    if (tty) {
      stream.write(`\r\x1b[2K${line}`);
      lineOpen = true;
    } else stream.write(`${line}\n`);
  };
  const first = setTimeout(() => {
    shown = true;
    stream.write(`Waiting for ${options.what} (up to ${limit} s)\n`);
    update();
    ticker = setInterval(update, options.intervalMs ?? (tty ? 1_000 : 5_000));
    ticker.unref?.();
  }, options.delayMs ?? 1_000);
  first.unref?.();
  return {
    stop: () => {
      clearTimeout(first);
      if (ticker) clearInterval(ticker);
      if (shown && lineOpen) stream.write('\n');
      lineOpen = false;
    },
  };
}
