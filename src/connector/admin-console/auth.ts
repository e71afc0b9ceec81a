import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { assessSecretStrength } from '../../auth/secret-strength.js';
import { constantTimeEqual } from '../../auth/secrets.js';
import { bearerToken } from '../../auth/upgrade-token.js';
import { errorMessage } from '../../common/errors.js';
import { SlidingWindowLimiter } from '../../common/rate-limit.js';

/**
 * The admin token: where it comes from (`RELAY_ADMIN_TOKEN`, or the file `RELAY_ADMIN_TOKEN_FILE`
 * names, read once at start), how a request presents it (`Authorization: Bearer …`, compared in
 * constant time), and the limit on failed attempts per client address. Without a token the console
 * is off (fail closed): nothing under `/admin` answers but the 404 that says so.
 */

export interface AdminTokenSetting {
  token: string;
  /** Which variable it came from (for the log; never the token). */
  source: 'RELAY_ADMIN_TOKEN' | 'RELAY_ADMIN_TOKEN_FILE';
  /** A problem worth a warning at start (a token file other users may read). */
  warning?: string | undefined;
}

/** A setting that cannot be used; config.ts turns it into its ConnectorConfigError. */
export class AdminTokenError extends Error {}

/**
 * `RELAY_ADMIN_TOKEN` or `RELAY_ADMIN_TOKEN_FILE` (not both): undefined when neither is set. The
 * token must pass the secret-strength gate (43+ characters of a random-looking string, e.g.
 * `openssl rand -base64 32`); a weak or unreadable one stops the connector rather than run a console
 * anyone could guess into.
 */
export function adminTokenFromEnv(env: NodeJS.ProcessEnv): AdminTokenSetting | undefined {
  const inline = env.RELAY_ADMIN_TOKEN?.trim() ?? '';
  const file = env.RELAY_ADMIN_TOKEN_FILE?.trim() ?? '';
  if (inline && file) throw new AdminTokenError('set RELAY_ADMIN_TOKEN or RELAY_ADMIN_TOKEN_FILE, not both');
  if (!inline && !file) return undefined;
  let setting: AdminTokenSetting;
  if (inline) setting = { token: inline, source: 'RELAY_ADMIN_TOKEN' };
  else {
    const path = resolve(file);
    let text: string;
    let mode: number;
    try {
      mode = statSync(path).mode;
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new AdminTokenError(`RELAY_ADMIN_TOKEN_FILE ${path} cannot be read: ${errorMessage(error)}`);
    }
    const token = text.trim();
    if (!token) throw new AdminTokenError(`RELAY_ADMIN_TOKEN_FILE ${path} is empty`);
    setting = {
      token,
      source: 'RELAY_ADMIN_TOKEN_FILE',
      warning:
        (mode & 0o077) !== 0
          ? `RELAY_ADMIN_TOKEN_FILE ${path} can be read by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 it`
          : undefined,
    };
  }
  const strength = assessSecretStrength(setting.token);
  if (!strength.ok)
    throw new AdminTokenError(
      `${setting.source} is too weak: ${strength.detail.replace(/^secret/, 'the token')} (make one with: openssl rand -base64 32)`,
    );
  return setting;
}

/** Failed attempts allowed per client address and window before 429. */
export const DEFAULT_FAILURE_LIMIT = { max: 10, windowMs: 60_000 } as const;

export type AdminAuthVerdict =
  | { ok: true }
  | { ok: false; status: 401 | 429; error: string; retryAfterSeconds?: number };

/**
 * Checks a request's bearer against the token. Failed attempts are counted per client address in
 * the one sliding-window limiter of src/common (bounded, so a flood of addresses cannot grow it); an
 * address at the limit is refused with 429 until its oldest failure leaves the window — even with the right
 * token, so the limit cannot be used to confirm a guess.
 */
export class AdminAuth {
  readonly #failures: SlidingWindowLimiter;

  constructor(
    private readonly token: string,
    options: { limit?: { max: number; windowMs: number }; now?: () => number } = {},
  ) {
    const limit = options.limit ?? DEFAULT_FAILURE_LIMIT;
    this.#failures = new SlidingWindowLimiter(limit.max, limit.windowMs, options.now);
  }

  check(authorization: unknown, address: string): AdminAuthVerdict {
    const retryAfterSeconds = this.#failures.retryAfter(address);
    if (retryAfterSeconds > 0) {
      return {
        ok: false,
        status: 429,
        error: `too many failed attempts; retry in ${retryAfterSeconds} s`,
        retryAfterSeconds,
      };
    }
    const presented = bearerToken(authorization);
    if (presented !== null && constantTimeEqual(presented, this.token)) return { ok: true };
    this.#failures.record(address);
    return {
      ok: false,
      status: 401,
      error: presented === null ? 'admin token required' : 'invalid admin token',
    };
  }

  /** The fastify `onRequest` hook: answers the refusal itself, or lets the request through. */
  hook(onRefused?: (request: FastifyRequest, status: number) => void) {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      const verdict = this.check(request.headers.authorization, request.ip);
      if (verdict.ok) return;
      onRefused?.(request, verdict.status);
      if (verdict.retryAfterSeconds !== undefined)
        reply.header('retry-after', String(verdict.retryAfterSeconds));
      return reply.code(verdict.status).header('cache-control', 'no-store').send({ error: verdict.error });
    };
  }
}
