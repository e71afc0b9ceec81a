import { appendFileSync, chmodSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The dashboard auth audit log (lifecycle reference §3.7): `$HERMES_HOME/logs/dashboard-auth.log`,
 * one compact JSON object per line, `{"ts":"<ISO UTC>","event":"<name>",...fields}`.
 * Credential-bearing fields are dropped, whatever the caller passes; writing never throws.
 * Rotates at `maxBytes` (5 MiB) keeping `backups` (3) old files, like the later reference.
 */

export type AuditEvent =
  | 'login_start'
  | 'login_success'
  | 'login_failure'
  | 'logout'
  | 'refresh_success'
  | 'refresh_failure'
  | 'revoke'
  | 'session_verify_failure'
  | 'session_rejected'
  | 'token_auth_success'
  | 'token_auth_failure'
  | 'csrf_rejected'
  | 'turn_stop';

export type AuditFields = Readonly<Record<string, unknown>>;

/** What the gates need from an audit log. */
export interface AuditSink {
  write(event: AuditEvent, fields?: AuditFields): void;
}

/**
 * Field names that are never written (compared case-insensitively): the reference list plus the
 * names a bearer, password or session token could travel under here.
 */
const REDACTED_FIELDS: ReadonlySet<string> = new Set(
  [
    'access_token',
    'refresh_token',
    'code',
    'code_verifier',
    'state',
    'ticket',
    'cookie',
    'Authorization',
    'authorization',
    'set-cookie',
    'password',
    'password_hash',
    'bearer',
    'token',
    'secret',
    'session_token',
    'x-hermes-session-token',
    'csrf_token',
    'x-hermes-csrf-token',
  ].map((n) => n.toLowerCase()),
);

const MAX_STRING = 512;
const MAX_DEPTH = 4;

export interface AuditLogOptions {
  now?: () => Date;
  maxBytes?: number;
  backups?: number;
}

export class AuditLog implements AuditSink {
  readonly path: string;
  readonly #dir: string;
  readonly #now: () => Date;
  readonly #maxBytes: number;
  readonly #backups: number;

  constructor(home: string, options: AuditLogOptions = {}) {
    this.#dir = join(home, 'logs');
    this.path = join(this.#dir, 'dashboard-auth.log');
    this.#now = options.now ?? (() => new Date());
    this.#maxBytes = options.maxBytes ?? 5 * 1024 * 1024;
    this.#backups = Math.max(0, Math.floor(options.backups ?? 3));
  }

  write(event: AuditEvent, fields: AuditFields = {}): void {
    try {
      const line = formatAuditLine(this.#now(), event, fields);
      mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
      this.#rotateIfNeeded(Buffer.byteLength(line));
      appendFileSync(this.path, line, { encoding: 'utf8', mode: 0o600 });
    } catch {
      // The audit log must never break a request.
    }
  }

  #rotateIfNeeded(incoming: number): void {
    let size: number;
    try {
      size = statSync(this.path).size;
    } catch {
      return;
    }
    if (size + incoming <= this.#maxBytes) return;
    if (this.#backups === 0) {
      renameSync(this.path, `${this.path}.old`);
      return;
    }
    for (let i = this.#backups - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch {
        // missing backup
      }
    }
    renameSync(this.path, `${this.path}.1`);
    try {
      chmodSync(`${this.path}.1`, 0o600);
    } catch {
      // best effort
    }
  }
}

/** An audit sink that drops everything (tests, or a dashboard without a home). */
export const nullAudit: AuditSink = { write() {} };

/** One audit line, newline-terminated. `ts` and `event` cannot be overridden by fields. */
export function formatAuditLine(now: Date, event: AuditEvent, fields: AuditFields): string {
  const record: Record<string, unknown> = { ts: now.toISOString(), event };
  const clean = sanitize(fields, 0);
  if (clean && typeof clean === 'object' && !Array.isArray(clean)) {
    for (const [key, value] of Object.entries(clean)) {
      if (key === 'ts' || key === 'event') continue;
      record[key] = value;
    }
  }
  return `${JSON.stringify(record)}\n`;
}

function sanitize(value: unknown, depth: number): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'object':
      break;
    default:
      return undefined;
  }
  if (depth >= MAX_DEPTH) return '[depth]';
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => sanitize(v, depth + 1) ?? null);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Error) return value.name;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
    if (REDACTED_FIELDS.has(key.toLowerCase())) continue;
    const clean = sanitize(inner, depth + 1);
    if (clean !== undefined) out[key] = clean;
  }
  return out;
}
