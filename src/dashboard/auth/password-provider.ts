import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { constantTimeEqual } from '../../auth/secrets.js';
import { writeFileAtomic } from '../../home/atomic-file.js';
import {
  type DashboardAuthProvider,
  InvalidCodeError,
  InvalidCredentialsError,
  type LoginStart,
  type PasswordCredentials,
  RefreshExpiredError,
  type Session,
  type TokenPrincipal,
} from './types.js';

/**
 * The bundled username/password provider (lifecycle reference §3.6 "basic").
 *
 * - The password is stored as `scrypt$<n>$<r>$<p>$<b64 salt>$<b64 dk>` (n=2^14, r=8, p=1,
 *   dklen 32, salt 16 B) in `$HERMES_HOME/dashboard-auth.json` (0600, atomic) by `setPassword`
 *   (`hermes dashboard set-password`). The reference env/config keys override the file.
 * - Verification always runs scrypt (against a dummy hash for a wrong username) and compares in
 *   constant time.
 * - Sessions are stateless HMAC tokens: `base64url(JSON{sub,kind,exp} || HMAC-SHA256(secret, JSON))`,
 *   access 12 h (floor 60 s), refresh 30 days. The signing secret is persisted beside the hash so
 *   sessions survive restarts; `setPassword` rotates it, which ends every existing session.
 */

const PASSWORD_PROVIDER_NAME = 'basic';
const PASSWORD_PROVIDER_DISPLAY_NAME = 'Username & Password';
export const AUTH_FILE_NAME = 'dashboard-auth.json';
const DEFAULT_ACCESS_TTL_SECONDS = 43_200;
const MIN_ACCESS_TTL_SECONDS = 60;
const REFRESH_TTL_SECONDS = 30 * 24 * 60 * 60;
const MIN_PASSWORD_CHARS = 8;
const MAX_PASSWORD_CHARS = 1024;
const MAX_USERNAME_CHARS = 128;
const SCRYPT_PARAMS = { n: 2 ** 14, r: 8, p: 1, dkLen: 32, saltLen: 16 } as const;

/** Env overrides (non-empty env wins over config and the file). */
const BASIC_AUTH_ENV = {
  username: 'HERMES_DASHBOARD_BASIC_AUTH_USERNAME',
  passwordHash: 'HERMES_DASHBOARD_BASIC_AUTH_PASSWORD_HASH',
  password: 'HERMES_DASHBOARD_BASIC_AUTH_PASSWORD',
  secret: 'HERMES_DASHBOARD_BASIC_AUTH_SECRET',
  ttlSeconds: 'HERMES_DASHBOARD_BASIC_AUTH_TTL_SECONDS',
} as const;

const MAC_BYTES = 32;
const MAX_TOKEN_CHARS = 2048;
const MIN_SECRET_BYTES = 16;

// ---------------------------------------------------------------------------------------------
// scrypt hashes

export interface ScryptHash {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  dk: Buffer;
}

const STRICT_B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeStrictBase64(text: string): Buffer | null {
  return text !== '' && STRICT_B64.test(text) ? Buffer.from(text, 'base64') : null;
}

function positiveInt(text: string): number | null {
  return /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : null;
}

/** Parse and bound-check a stored hash; null when malformed or its cost is unreasonable. */
export function parseScryptHash(encoded: string): ScryptHash | null {
  const parts = encoded.trim().split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const n = positiveInt(parts[1] ?? '');
  const r = positiveInt(parts[2] ?? '');
  const p = positiveInt(parts[3] ?? '');
  const salt = decodeStrictBase64(parts[4] ?? '');
  const dk = decodeStrictBase64(parts[5] ?? '');
  if (n === null || r === null || p === null || salt === null || dk === null) return null;
  if (n < 2 || n > 2 ** 20 || (n & (n - 1)) !== 0 || r > 32 || p > 16) return null;
  if (128 * n * r > 256 * 1024 * 1024) return null;
  if (salt.length < 8 || dk.length < 16 || dk.length > 64) return null;
  return { n, r, p, salt, dk };
}

function scryptAsync(
  password: string,
  salt: Buffer,
  keyLen: number,
  n: number,
  r: number,
  p: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLen, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    });
  });
}

/** Hash a password in the reference format with a fresh 16-byte salt. */
export async function hashPassword(password: string): Promise<string> {
  const { n, r, p, dkLen, saltLen } = SCRYPT_PARAMS;
  const salt = randomBytes(saltLen);
  const dk = await scryptAsync(password, salt, dkLen, n, r, p);
  return `scrypt$${n}$${r}$${p}$${salt.toString('base64')}$${dk.toString('base64')}`;
}

/** Check a password against a parsed hash: always runs scrypt, compares in constant time. */
async function verifyScrypt(password: string, hash: ScryptHash): Promise<boolean> {
  const dk = await scryptAsync(password, hash.salt, hash.dk.length, hash.n, hash.r, hash.p);
  return dk.length === hash.dk.length && timingSafeEqual(dk, hash.dk);
}

/** Check a password against an encoded hash; a malformed hash never verifies. */
export async function verifyPasswordHash(password: string, encoded: string): Promise<boolean> {
  const hash = parseScryptHash(encoded);
  if (!hash) return false;
  return verifyScrypt(password, hash);
}

// ---------------------------------------------------------------------------------------------
// the auth file

const authFileSchema = z.looseObject({
  version: z.number().optional(),
  username: z.string().optional(),
  password_hash: z.string().optional(),
  secret: z.string().optional(),
  updated_at: z.string().optional(),
});

export type AuthFile = z.infer<typeof authFileSchema>;

export type AuthFileResult =
  | { kind: 'absent' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'ok'; value: AuthFile };

function authFilePath(home: string): string {
  return join(home, AUTH_FILE_NAME);
}

/** Read `$HERMES_HOME/dashboard-auth.json`. Never throws. */
function readAuthFile(home: string): AuthFileResult {
  let text: string;
  try {
    text = readFileSync(authFilePath(home), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'absent' };
    return { kind: 'invalid', reason: `unreadable (${code ?? 'error'})` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'invalid', reason: 'not valid JSON' };
  }
  const parsed = authFileSchema.safeParse(json);
  if (!parsed.success) return { kind: 'invalid', reason: 'unexpected content' };
  return { kind: 'ok', value: parsed.data };
}

function validateUsername(username: string): string {
  const name = username.trim();
  if (name === '' || [...name].length > MAX_USERNAME_CHARS || /\p{Cc}/u.test(name)) {
    throw new Error(`username must be 1–${MAX_USERNAME_CHARS} characters without control characters`);
  }
  return name;
}

/**
 * Set (or reset) the dashboard login: writes the scrypt hash and a fresh signing secret to
 * `$HERMES_HOME/dashboard-auth.json` (0600, atomic). Rotating the secret signs out every
 * existing session. Throws on an unusable username or password (message never contains it).
 */
export async function setPassword(home: string, username: string, password: string): Promise<void> {
  const name = validateUsername(username);
  const chars = [...password].length;
  if (chars < MIN_PASSWORD_CHARS || chars > MAX_PASSWORD_CHARS) {
    throw new Error(`password must be ${MIN_PASSWORD_CHARS}–${MAX_PASSWORD_CHARS} characters`);
  }
  const passwordHash = await hashPassword(password);
  const record: AuthFile = {
    version: 1,
    username: name,
    password_hash: passwordHash,
    secret: randomBytes(32).toString('base64'),
    updated_at: new Date().toISOString(),
  };
  writeFileAtomic(authFilePath(home), `${JSON.stringify(record, null, 2)}\n`, 0o600);
}

// ---------------------------------------------------------------------------------------------
// the provider

/** `dashboard.basic_auth.*` from config.yaml (values unchecked; env overrides them). */
export interface BasicAuthConfig {
  username?: unknown;
  password_hash?: unknown;
  password?: unknown;
  secret?: unknown;
  session_ttl_seconds?: unknown;
}

export interface PasswordProviderOptions {
  home: string;
  env?: Readonly<Record<string, string | undefined>>;
  config?: BasicAuthConfig;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

interface ResolvedBasicAuth {
  username: string;
  hash: ScryptHash;
  secret: Buffer;
  accessTtl: number;
}

interface TokenPayload {
  sub: string;
  kind: 'access' | 'refresh';
  exp: number;
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

/** Reference secret decoding: base64, else hex, else raw UTF-8. */
function decodeSigningSecret(text: string): Buffer {
  const trimmed = text.trim();
  const b64 = decodeStrictBase64(trimmed);
  if (b64) return b64;
  if (/^(?:[0-9a-fA-F]{2})+$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  return Buffer.from(trimmed, 'utf8');
}

function resolveTtl(value: unknown): number {
  const n = typeof value === 'string' ? Number(value.trim()) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return DEFAULT_ACCESS_TTL_SECONDS;
  return Math.max(MIN_ACCESS_TTL_SECONDS, Math.floor(n));
}

const NO_PASSWORD_REASON =
  'no dashboard password is set; run `hermes dashboard set-password` ' +
  `(or set ${BASIC_AUTH_ENV.username} and ${BASIC_AUTH_ENV.password})`;

class PasswordProvider implements DashboardAuthProvider {
  readonly name = PASSWORD_PROVIDER_NAME;
  readonly displayName = PASSWORD_PROVIDER_DISPLAY_NAME;
  readonly supportsSession = true;
  readonly supportsPassword = true;
  readonly supportsToken = false;
  readonly lastSkipReason: string | null;
  readonly #config: ResolvedBasicAuth | null;
  readonly #dummy: ScryptHash | null;
  readonly #now: () => number;

  /** Use `createPasswordProvider`; this takes already resolved settings or a skip reason. */
  constructor(config: ResolvedBasicAuth | { skip: string }, now: () => number = Date.now) {
    this.#now = now;
    if ('skip' in config) {
      this.#config = null;
      this.#dummy = null;
      this.lastSkipReason = config.skip;
      return;
    }
    this.#config = config;
    this.lastSkipReason = null;
    // Same cost as the real hash, so a wrong username takes as long as a wrong password.
    this.#dummy = {
      n: config.hash.n,
      r: config.hash.r,
      p: config.hash.p,
      salt: randomBytes(config.hash.salt.length),
      dk: randomBytes(config.hash.dk.length),
    };
  }

  /** Access-token lifetime in seconds. */
  get accessTtlSeconds(): number {
    return this.#config?.accessTtl ?? DEFAULT_ACCESS_TTL_SECONDS;
  }

  #nowSeconds(): number {
    return Math.floor(this.#now() / 1000);
  }

  startLogin(_redirectUri: string): LoginStart {
    return { redirectUrl: '/login', cookiePayload: {} };
  }

  async completeLogin(credentials: PasswordCredentials): Promise<Session> {
    const config = this.#config;
    const dummy = this.#dummy;
    if (!config || !dummy) throw new InvalidCredentialsError();
    const { username, password } = credentials ?? {};
    if (
      typeof username !== 'string' ||
      typeof password !== 'string' ||
      password.length > 4 * MAX_PASSWORD_CHARS
    ) {
      throw new InvalidCredentialsError();
    }
    const userOk = constantTimeEqual(username, config.username);
    const passwordOk = await verifyScrypt(password, userOk ? config.hash : dummy);
    if (!(userOk && passwordOk)) throw new InvalidCredentialsError();
    const now = this.#nowSeconds();
    const accessExp = now + config.accessTtl;
    return this.#session(
      config,
      this.#mint(config, 'access', accessExp),
      accessExp,
      this.#mint(config, 'refresh', now + REFRESH_TTL_SECONDS),
    );
  }

  verifySession(accessToken: string): Session | null {
    const config = this.#config;
    if (!config) return null;
    const payload = this.#decode(config, accessToken);
    if (payload?.kind !== 'access') return null;
    if (payload.exp <= this.#nowSeconds()) return null;
    if (!constantTimeEqual(payload.sub, config.username)) return null;
    return this.#session(config, accessToken, payload.exp, '');
  }

  refreshSession(refreshToken: string): Session {
    const config = this.#config;
    if (!config) throw new InvalidCodeError('provider not configured');
    const payload = this.#decode(config, refreshToken);
    if (payload?.kind !== 'refresh') throw new InvalidCodeError('not a basic refresh token');
    if (payload.exp <= this.#nowSeconds()) throw new RefreshExpiredError();
    if (!constantTimeEqual(payload.sub, config.username)) throw new RefreshExpiredError('user changed');
    const accessExp = this.#nowSeconds() + config.accessTtl;
    // The refresh token is not extended: a login lasts at most 30 days.
    return this.#session(config, this.#mint(config, 'access', accessExp), accessExp, refreshToken);
  }

  revokeSession(_refreshToken: string): void {
    // Stateless tokens: nothing to revoke (reference). `setPassword` rotates the secret instead.
  }

  verifyToken(_bearer: string): TokenPrincipal | null {
    return null;
  }

  #session(config: ResolvedBasicAuth, accessToken: string, expiresAt: number, refreshToken: string): Session {
    return {
      userId: config.username,
      email: null,
      displayName: config.username,
      orgId: null,
      provider: PASSWORD_PROVIDER_NAME,
      expiresAt,
      accessToken,
      refreshToken,
    };
  }

  #mint(config: ResolvedBasicAuth, kind: TokenPayload['kind'], exp: number): string {
    const json = Buffer.from(JSON.stringify({ sub: config.username, kind, exp }), 'utf8');
    const mac = createHmac('sha256', config.secret).update(json).digest();
    return Buffer.concat([json, mac]).toString('base64url');
  }

  #decode(config: ResolvedBasicAuth, token: unknown): TokenPayload | null {
    if (
      typeof token !== 'string' ||
      token.length > MAX_TOKEN_CHARS ||
      !/^[A-Za-z0-9_-]+={0,2}$/.test(token)
    ) {
      return null;
    }
    const raw = Buffer.from(token.replace(/=+$/, ''), 'base64url');
    if (raw.length <= MAC_BYTES) return null;
    const json = raw.subarray(0, raw.length - MAC_BYTES);
    const mac = raw.subarray(raw.length - MAC_BYTES);
    const expected = createHmac('sha256', config.secret).update(json).digest();
    if (!timingSafeEqual(mac, expected)) return null;
    let body: unknown;
    try {
      body = JSON.parse(json.toString('utf8'));
    } catch {
      return null;
    }
    if (typeof body !== 'object' || body === null) return null;
    const { sub, kind, exp } = body as Record<string, unknown>;
    if (typeof sub !== 'string' || (kind !== 'access' && kind !== 'refresh')) return null;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return null;
    return { sub, kind, exp };
  }
}

/**
 * Build the provider from env (wins), `dashboard.basic_auth` config, then the auth file. Returns
 * a provider carrying `lastSkipReason` when no username/password is configured or the settings
 * are unusable. When no signing secret is configured one is generated and persisted (0600) into
 * the auth file so sessions survive restarts.
 */
export async function createPasswordProvider(options: PasswordProviderOptions): Promise<PasswordProvider> {
  const env = options.env ?? process.env;
  const config = options.config ?? {};
  const now = options.now ?? Date.now;
  const skip = (reason: string) => new PasswordProvider({ skip: reason }, now);

  const file = readAuthFile(options.home);
  if (file.kind === 'invalid') {
    return skip(
      `${authFilePath(options.home)} is ${file.reason}; fix or delete it, then run \`hermes dashboard set-password\``,
    );
  }
  const stored: AuthFile = file.kind === 'ok' ? file.value : {};

  const username =
    nonEmpty(env[BASIC_AUTH_ENV.username]) ?? nonEmpty(config.username) ?? nonEmpty(stored.username);
  const plaintext = nonEmpty(env[BASIC_AUTH_ENV.password]) ?? nonEmpty(config.password);
  const encoded =
    nonEmpty(env[BASIC_AUTH_ENV.passwordHash]) ??
    nonEmpty(config.password_hash) ??
    nonEmpty(stored.password_hash);
  if (!username || (!plaintext && !encoded)) return skip(NO_PASSWORD_REASON);

  let hash: ScryptHash | null;
  if (plaintext) {
    hash = parseScryptHash(await hashPassword(plaintext));
  } else {
    hash = parseScryptHash(encoded ?? '');
    if (!hash) return skip('the dashboard password hash is not a valid scrypt$n$r$p$salt$dk hash');
  }
  if (!hash) return skip(NO_PASSWORD_REASON);

  let secret: Buffer | null = null;
  const configuredSecret = nonEmpty(env[BASIC_AUTH_ENV.secret]) ?? nonEmpty(config.secret);
  if (configuredSecret) {
    secret = decodeSigningSecret(configuredSecret);
    if (secret.length < MIN_SECRET_BYTES) {
      return skip(`the dashboard basic-auth signing secret is shorter than ${MIN_SECRET_BYTES} bytes`);
    }
  } else {
    secret = storedSecret(stored) ?? persistNewSecret(options.home, stored);
  }

  return new PasswordProvider(
    {
      username: username.trim(),
      hash,
      secret,
      accessTtl: resolveTtl(nonEmpty(env[BASIC_AUTH_ENV.ttlSeconds]) ?? config.session_ttl_seconds),
    },
    now,
  );
}

function storedSecret(stored: AuthFile): Buffer | null {
  const decoded = stored.secret ? decodeStrictBase64(stored.secret.trim()) : null;
  return decoded && decoded.length >= MIN_SECRET_BYTES ? decoded : null;
}

/** Persist a fresh secret into the auth file; on a write failure fall back to a per-process one. */
function persistNewSecret(home: string, stored: AuthFile): Buffer {
  const fresh = randomBytes(32);
  try {
    writeFileAtomic(
      authFilePath(home),
      `${JSON.stringify({ version: 1, ...stored, secret: fresh.toString('base64') }, null, 2)}\n`,
      0o600,
    );
    // Another process may have raced us; converge on what is on disk.
    const reread = readAuthFile(home);
    if (reread.kind === 'ok') return storedSecret(reread.value) ?? fresh;
  } catch {
    // Read-only home: sessions will not survive a restart.
  }
  return fresh;
}
