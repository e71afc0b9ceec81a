import { chmodSync, readFileSync, statSync } from 'node:fs';
import { writeFileAtomic } from './atomic-file.js';

/**
 * `$HERMES_HOME/.env` (spec §3): secrets written by `hermes gateway enroll`, loaded at start.
 *
 * Format (python-dotenv compatible subset): `KEY=VALUE` lines, optional `export ` prefix, blank
 * lines and `#` comments, `KEY=value # comment` (the `#` must follow whitespace), single-quoted
 * values taken literally, double-quoted values with backslash escapes (`\n \r \t \\ \" \'` and
 * `\a \b \f \v`); a quoted value may span lines. No `${VAR}` interpolation. Malformed lines are
 * skipped. Values are never logged by this module.
 */

export const ENV_FILE_NAME = '.env';
const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

interface EnvEntry {
  key: string;
  value: string;
  /** First and last line (inclusive) of the assignment; a quoted value may span lines. */
  start: number;
  end: number;
  exported: boolean;
}

const DOUBLE_QUOTE_ESCAPES: Readonly<Record<string, string>> = {
  n: '\n',
  r: '\r',
  t: '\t',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
  '\\': '\\',
  '"': '"',
  "'": "'",
};

function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Find the closing quote from (line, col); returns the decoded value and the closing line, or null. */
function readQuoted(
  lines: readonly string[],
  line: number,
  col: number,
  quote: '"' | "'",
): { value: string; end: number } | null {
  let value = '';
  for (let index = line; index < lines.length; index++) {
    const text = lines[index] ?? '';
    let position = index === line ? col : 0;
    if (index !== line) value += '\n';
    while (position < text.length) {
      const char = text[position] as string;
      if (char === quote) return { value, end: index };
      if (quote === '"' && char === '\\' && position + 1 < text.length) {
        const next = text[position + 1] as string;
        value += DOUBLE_QUOTE_ESCAPES[next] ?? `\\${next}`;
        position += 2;
        continue;
      }
      value += char;
      position += 1;
    }
  }
  return null;
}

function scanEntries(lines: readonly string[]): EnvEntry[] {
  const entries: EnvEntry[] = [];
  for (let index = 0; index < lines.length; index++) {
    let text = (lines[index] ?? '').replace(/^\s+/, '');
    if (text === '' || text.startsWith('#')) continue;
    const exportMatch = /^export\s+/.exec(text);
    if (exportMatch) text = text.slice(exportMatch[0].length);
    const equals = text.indexOf('=');
    if (equals < 0) continue;
    const key = text.slice(0, equals).trim();
    if (!KEY_PATTERN.test(key)) continue;
    const rest = text.slice(equals + 1).replace(/^[ \t]+/, '');
    const first = rest[0];
    if (first === '"' || first === "'") {
      // Locate the value inside the original line so multi-line values resume at the right column.
      const line = lines[index] ?? '';
      const col = line.length - rest.length + 1;
      const quoted = readQuoted(lines, index, col, first);
      if (quoted) {
        entries.push({ key, value: quoted.value, start: index, end: quoted.end, exported: !!exportMatch });
        index = quoted.end;
        continue;
      }
      // Unterminated quote: fall through and take the line literally.
    }
    const comment = /\s#/.exec(rest);
    const value = (comment ? rest.slice(0, comment.index) : rest).trimEnd();
    entries.push({ key, value, start: index, end: index, exported: !!exportMatch });
  }
  return entries;
}

/** Parse `.env` text. Later assignments of a key win. The result has no prototype (any key is safe). */
export function parseEnvFile(text: string): Record<string, string> {
  const values = Object.create(null) as Record<string, string>;
  for (const entry of scanEntries(splitLines(text))) values[entry.key] = entry.value;
  return values;
}

/**
 * Load `path` into `env`, setting only keys that `env` does not already have (the environment
 * wins). A missing file loads nothing. Returns the keys it set (never the values).
 */
export function loadEnvFile(path: string, env: NodeJS.ProcessEnv = process.env): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new Error(`Cannot read ${path}: ${code ?? String(error)}`);
  }
  const set: string[] = [];
  for (const [key, value] of Object.entries(parseEnvFile(text))) {
    if (env[key] !== undefined) continue;
    env[key] = value;
    set.push(key);
  }
  return set;
}

/**
 * Quote a value so that both this parser and python-dotenv read it back unchanged: bare when it is
 * made of plain characters, single-quoted (literal) when it has no quote, backslash or control
 * character, double-quoted with escapes otherwise.
 */
export function formatEnvValue(value: string): string {
  if (value.includes('\0')) throw new Error('A .env value cannot contain a NUL character');
  if (value === '' || /^[A-Za-z0-9_./:@+,=%^~-]+$/.test(value)) return value;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters force double quotes
  if (!/['\\\u0000-\u001f\u007f]/.test(value)) return `'${value}'`;
  const escaped = value
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
  return `"${escaped}"`;
}

/**
 * Merge `values` into the `.env` at `path`: an existing assignment of a key is replaced in place
 * (keeping its `export ` prefix; later duplicates of that key are dropped), new keys are appended,
 * every other line and comment is kept in order. `null` removes a key; `undefined` is ignored.
 * Written atomically with mode 0600 (an existing wider file is narrowed first).
 */
export function saveEnvValues(
  path: string,
  values: Readonly<Record<string, string | null | undefined>>,
): void {
  for (const key of Object.keys(values)) {
    if (!KEY_PATTERN.test(key)) throw new Error(`Invalid .env key ${JSON.stringify(key)}`);
  }
  let text = '';
  let existed = false;
  try {
    text = readFileSync(path, 'utf8');
    existed = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = splitLines(text);
  const entries = scanEntries(lines);
  const replacement = new Map<number, string | null>();
  const appended: string[] = [];

  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const matches = entries.filter((entry) => entry.key === key);
    matches.forEach((entry, position) => {
      for (let line = entry.start; line <= entry.end; line++) replacement.set(line, null);
      if (position === 0 && value !== null) {
        replacement.set(entry.start, `${entry.exported ? 'export ' : ''}${key}=${formatEnvValue(value)}`);
      }
    });
    if (matches.length === 0 && value !== null) appended.push(`${key}=${formatEnvValue(value)}`);
  }

  const output: string[] = [];
  lines.forEach((line, index) => {
    if (!replacement.has(index)) output.push(line);
    else {
      const replaced = replacement.get(index);
      if (replaced !== null && replaced !== undefined) output.push(replaced);
    }
  });
  output.push(...appended);

  if (existed) {
    try {
      if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    } catch {
      // the atomic write below replaces the file with a 0600 one anyway
    }
  }
  writeFileAtomic(path, output.length > 0 ? `${output.join(eol)}${eol}` : '', 0o600);
}
