import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { redactUrl } from '../common/redact.js';
import { CliError } from './errors.js';

/**
 * Logs of every part (connector, gateway, dashboard, proxy, the demo's children): on stderr (stdout
 * stays for command output), human-readable lines when stderr is a terminal, JSON lines when it is
 * piped or a file (`--log-format json|pretty` / `HERMES_LOG_FORMAT` force one). One level for every
 * part: `--log-level`, else the command's `-v`/`-q`, else `HERMES_LOG_LEVEL`, else the part's older
 * variable (`RELAY_LOG_LEVEL` for the connector), else `info`. Secrets that reach a log line anyway
 * are redacted (see {@link REDACTED_FIELDS}); credentials in URLs are masked with `redactUrl`.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerExtras {
  /** `auto` (default: `--log-format`, `HERMES_LOG_FORMAT`, else by whether stderr is a terminal). */
  format?: LogFormat;
  /** Whether the output is a terminal, for `auto` (default: `process.stderr.isTTY`). */
  isTTY?: boolean;
  /** Where the lines go (default: stderr). */
  destination?: { write(line: string): unknown };
  /** Colours in pretty lines (default: on a terminal, unless `NO_COLOR` is set). */
  color?: boolean;
}

/** What `hermes --log-level/--log-format` said (set once by main.ts before a command runs). */
let cliSettings: { level?: string; format?: LogFormat } = {};

/** Record the global flags; a bad value is a one-line usage error (exit 2). */
export function configureLogging(settings: { level?: string; format?: string }): void {
  const level = settings.level?.trim().toLowerCase();
  if (level !== undefined && !isLogLevel(level))
    throw new CliError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${settings.level}"`, 2);
  const format = settings.format?.trim().toLowerCase();
  if (format !== undefined && !isLogFormat(format))
    throw new CliError(`--log-format must be one of ${LOG_FORMATS.join(', ')}, got "${settings.format}"`, 2);
  cliSettings = { level, format };
}

export function isLogLevel(value: string): value is (typeof LOG_LEVELS)[number] {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

function isLogFormat(value: string): value is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(value);
}

/** Older per-part level variables, honoured when `HERMES_LOG_LEVEL` is unset. */
const OLDER_LEVEL_VARIABLES: Record<string, string> = { connector: 'RELAY_LOG_LEVEL' };

/**
 * The level `part` logs at: `--log-level`, else `commandLevel` (the command's `-v`/`-q`), else
 * `HERMES_LOG_LEVEL`, else the part's older variable, else `info`. A bad variable is one line with
 * `exitCode` (2; the service commands pass 78 so their units do not restart-loop on it).
 */
export function logLevelFor(
  part: string,
  commandLevel?: string,
  options: { env?: NodeJS.ProcessEnv; exitCode?: number } = {},
): string {
  if (cliSettings.level) return cliSettings.level;
  if (commandLevel) return commandLevel;
  const env = options.env ?? process.env;
  const older = OLDER_LEVEL_VARIABLES[part];
  for (const name of ['HERMES_LOG_LEVEL', ...(older ? [older] : [])]) {
    const value = env[name]?.trim().toLowerCase();
    if (!value) continue;
    if (!isLogLevel(value))
      throw new CliError(
        `${name} must be one of ${LOG_LEVELS.join(', ')}, got "${env[name]}"`,
        options.exitCode ?? 2,
      );
    return value;
  }
  return 'info';
}

/** The format in force: `--log-format`, else `HERMES_LOG_FORMAT`, else `auto`. */
function formatFor(requested: LogFormat | undefined, isTTY: boolean): 'json' | 'pretty' {
  let format = requested ?? cliSettings.format;
  if (!format) {
    const fromEnv = process.env.HERMES_LOG_FORMAT?.trim().toLowerCase();
    format = fromEnv && isLogFormat(fromEnv) ? fromEnv : 'auto';
  }
  if (format === 'auto') return isTTY ? 'pretty' : 'json';
  return format;
}

/**
 * Field names cut from every log line wherever a component put them (at the top, one or two plain
 * objects down, e.g. `headers.authorization`, `req.headers.cookie`; any letter case): bearer
 * headers, cookies, tokens, secrets, passwords, keys. URL-valued fields keep the URL with its
 * credential masked; `err` texts have the credential of any URL in them masked.
 */
export const REDACTED_FIELDS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'token',
  'accesstoken',
  'access_token',
  'refreshtoken',
  'refresh_token',
  'secret',
  'client_secret',
  'clientsecret',
  'password',
  'passwd',
  'apikey',
  'api_key',
  'x-api-key',
  'deliverykey',
] as const;
const SECRET_FIELDS: ReadonlySet<string> = new Set(REDACTED_FIELDS);
const URL_FIELDS: ReadonlySet<string> = new Set(['db', 'url', 'redis', 'databaseurl', 'connectionstring']);
const REDACTED = '[redacted]';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The log object with secrets cut (see {@link REDACTED_FIELDS}); copied only where something
 * changed. Written for pino's `formatters.log` rather than its wildcard `redact` paths, which cost
 * about 20 µs a line for this list (measured; this costs well under 1 µs).
 */
export function redactFields(object: Record<string, unknown>, depth = 0): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in object) {
    const value = object[key];
    if (value === undefined || value === null) continue;
    const name = key.toLowerCase();
    let replaced = value;
    if (SECRET_FIELDS.has(name)) replaced = REDACTED;
    else if (typeof value === 'string') {
      if (URL_FIELDS.has(name) && value.includes('@')) replaced = redactUrl(value);
      else if (name === 'err') replaced = redactUrlsIn(value);
    } else if (depth < 2 && isPlainObject(value)) replaced = redactFields(value, depth + 1);
    if (replaced !== value) {
      copy ??= { ...object };
      copy[key] = replaced;
    }
  }
  return copy ?? object;
}

const URL_IN_TEXT = /[a-z][a-z0-9+.-]*:\/\/[^\s"'<>()]+/gi;

/** Free text with the credential of every URL in it masked (`postgres://user:***@host/db`). */
export function redactUrlsIn(text: string): string {
  if (!text.includes('@') || !text.includes('://')) return text;
  return text.replace(URL_IN_TEXT, (url) => (url.includes('@') ? redactUrl(url) : url));
}

/**
 * The logger every part takes (any pino logger does). `level` is the part's level (see
 * {@link logLevelFor}); the output format and destination are chosen as described above.
 */
export function createLogger(level: string, name: string, extras: LoggerExtras = {}): Logger {
  const isTTY = extras.isTTY ?? process.stderr.isTTY === true;
  const format = formatFor(extras.format, isTTY);
  const options: LoggerOptions = {
    name,
    level,
    base: { pid: process.pid },
    formatters: { log: (object) => redactFields(object) },
    hooks: {
      // Messages are free text: a URL with a password in them is masked too.
      logMethod(args, method) {
        const masked = args.map((arg) => (typeof arg === 'string' ? redactUrlsIn(arg) : arg));
        method.apply(this, masked as Parameters<typeof method>);
      },
    },
  };
  let destination: DestinationStream;
  if (format === 'pretty') {
    const out = extras.destination ?? process.stderr;
    const color = extras.color ?? (isTTY && !process.env.NO_COLOR);
    destination = { write: (line: string) => void out.write(prettyLine(line, color)) };
  } else {
    destination = extras.destination
      ? { write: (line: string) => void extras.destination?.write(line) }
      : pino.destination({ dest: 2, sync: false });
  }
  return pino(options, destination);
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const LEVEL_COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
const OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'name', 'part', 'msg']);

/**
 * One pino JSON line as `HH:MM:SS.mmm LEVEL part message key=value …` (local time; strings bare
 * unless they need quotes, objects as compact JSON). A line that is not JSON is passed through.
 */
export function prettyLine(line: string, color = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const paint = (code: string, text: string) => (color ? `\u001b[${code}m${text}\u001b[0m` : text);
  const level = typeof entry.level === 'number' ? entry.level : 30;
  const time = typeof entry.time === 'number' ? new Date(entry.time) : new Date();
  const clock = `${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())}.${String(time.getMilliseconds()).padStart(3, '0')}`;
  const part = [entry.name, entry.part].filter((p) => typeof p === 'string' && p !== '').join('/');
  const fields = Object.entries(entry)
    .filter(([key, value]) => !OMITTED.has(key) && value !== undefined)
    .map(([key, value]) => `${paint('2', `${key}=`)}${fieldValue(value)}`);
  const levelName = (LEVEL_NAMES[level] ?? String(level)).padEnd(5);
  const text = [
    paint('2', clock),
    paint(LEVEL_COLORS[level] ?? '0', levelName),
    part ? paint('1', part) : '',
    typeof entry.msg === 'string' ? entry.msg : '',
    ...fields,
  ].filter((piece) => piece !== '');
  return `${text.join(' ')}\n`;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function fieldValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}
