import type { Server } from 'node:http';

/**
 * Time limits every HTTP server of ours applies, so a client that trickles its headers or body (one
 * byte every few seconds) cannot hold a socket for long. Node enforces the request limit on a timer
 * that runs every `connectionsCheckingInterval`, so a slow request is cut at most that much later.
 * Upgraded sockets (WebSockets) and answered streams (SSE) are not requests in progress: these
 * limits do not touch them.
 */
export interface ServerTimeouts {
  /** Whole request, headers and body, from its first byte (Node's `requestTimeout`). */
  requestTimeoutMs: number;
  /** Headers alone (Node's `headersTimeout`); at most `requestTimeoutMs`. */
  headersTimeoutMs: number;
  /** A socket idle this long is closed (Node's `server.timeout`, fastify's `connectionTimeout`). */
  idleTimeoutMs: number;
  /** How often Node checks requests against the two limits above. */
  checkIntervalMs: number;
}

export const DEFAULT_SERVER_TIMEOUTS: Readonly<ServerTimeouts> = {
  requestTimeoutMs: 15_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
  checkIntervalMs: 1_000,
};

function resolve(overrides: Partial<ServerTimeouts> = {}): ServerTimeouts {
  const merged = { ...DEFAULT_SERVER_TIMEOUTS, ...overrides };
  return { ...merged, headersTimeoutMs: Math.min(merged.headersTimeoutMs, merged.requestTimeoutMs) };
}

/** Options for `http.createServer` (also what fastify passes on through its `http` option). */
export function httpServerOptions(overrides?: Partial<ServerTimeouts>): {
  requestTimeout: number;
  headersTimeout: number;
  connectionsCheckingInterval: number;
} {
  const t = resolve(overrides);
  return {
    requestTimeout: t.requestTimeoutMs,
    headersTimeout: t.headersTimeoutMs,
    connectionsCheckingInterval: t.checkIntervalMs,
  };
}

/** The fastify constructor options that carry the limits (fastify overwrites Node's own with these). */
export function fastifyTimeoutOptions(overrides?: Partial<ServerTimeouts>): {
  requestTimeout: number;
  connectionTimeout: number;
  http: ReturnType<typeof httpServerOptions>;
} {
  const t = resolve(overrides);
  return {
    requestTimeout: t.requestTimeoutMs,
    connectionTimeout: t.idleTimeoutMs,
    http: httpServerOptions(t),
  };
}

/** For a plain `node:http` server created with {@link httpServerOptions}: the idle limit. */
export function applyIdleTimeout(server: Server, overrides?: Partial<ServerTimeouts>): void {
  server.setTimeout(resolve(overrides).idleTimeoutMs);
}
