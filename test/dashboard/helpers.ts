import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import Fastify, { type FastifyInstance } from 'fastify';
import { onTestFinished } from 'vitest';
import { sessionOf, tokenPrincipalOf } from '../../src/dashboard/auth/request-state.js';
import {
  type DashboardAuthProvider,
  NotSupportedError,
  type TokenPrincipal,
} from '../../src/dashboard/auth/types.js';

/** A fresh HERMES_HOME, removed after the test. */
export function tempHome(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermes-dash-auth-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A fastify app (closed after the test) with a few routes that echo what the auth chain attached. */
export function testApp(): { app: FastifyInstance; hits: string[] } {
  const app = Fastify({ logger: false });
  const hits: string[] = [];
  onTestFinished(() => app.close());
  app.post('/api/gateway/drain', async (request) => {
    hits.push('drain');
    const principal = tokenPrincipalOf(request);
    return { ok: true, principal: principal?.principal ?? 'dashboard', token_principal: principal };
  });
  app.get('/api/status', async () => ({ status: 'ok' }));
  app.get('/api/secret', async (request) => {
    hits.push('secret');
    return { secret: true, user: sessionOf(request)?.userId ?? null };
  });
  app.get('/', async () => {
    hits.push('index');
    return 'index';
  });
  return { app, hits };
}

/** A token-only provider driven by a function (the seam contract's fake providers). */
export function tokenProvider(
  name: string,
  verify: (bearer: string) => TokenPrincipal | null | Promise<TokenPrincipal | null>,
): DashboardAuthProvider {
  const unsupported = () => {
    throw new NotSupportedError('token only');
  };
  return {
    name,
    displayName: name,
    supportsSession: false,
    supportsPassword: false,
    supportsToken: true,
    lastSkipReason: null,
    startLogin: unsupported,
    completeLogin: unsupported,
    verifySession: () => null,
    refreshSession: unsupported,
    revokeSession: () => {},
    verifyToken: verify,
  };
}

/** Every `Set-Cookie` header of a response. */
export function setCookies(res: LightMyRequestResponse): string[] {
  const raw = res.headers['set-cookie'];
  if (raw === undefined) return [];
  return Array.isArray(raw) ? raw : [raw];
}

/** The Set-Cookie line for cookie `name` (exact name before '='). */
export function cookieLine(res: LightMyRequestResponse, name: string): string | undefined {
  return setCookies(res).find((line) => line.startsWith(`${name}=`));
}

/** `name=value` of a Set-Cookie line, for sending back. */
export function cookiePair(line: string | undefined): string {
  if (!line) throw new Error('cookie not set');
  return line.split(';')[0] as string;
}

/** Attributes of a Set-Cookie line as a lower-case-keyed map. */
export function cookieAttrs(line: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of line.split(';').slice(1)) {
    const [k, ...v] = part.trim().split('=');
    out.set((k ?? '').toLowerCase(), v.join('='));
  }
  return out;
}

/** Parsed audit log lines. */
export function auditLines(home: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(join(home, 'logs', 'dashboard-auth.log'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function auditText(home: string): string {
  try {
    return readFileSync(join(home, 'logs', 'dashboard-auth.log'), 'utf8');
  } catch {
    return '';
  }
}

/** A settable clock in milliseconds. */
export function clock(start = Date.UTC(2026, 5, 26, 12, 0, 0)): {
  now: () => number;
  advance: (ms: number) => void;
} {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** A fixed, strong 43-character secret (deterministic tests). */
export const STRONG_SECRET = 'Zr8-Qm3vT_k1Lx9PaW2cYh7NsE5uJd0GfB4oKt6RiVn';
