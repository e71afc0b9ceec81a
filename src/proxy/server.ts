import {
  type ClientRequest,
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type Logger, pino } from 'pino';
import { readCappedBody, sendJson as sendJsonBody } from '../http/raw-io.js';
import { securityHeadersFor } from '../http/security-headers.js';
import {
  applyIdleTimeout,
  DEFAULT_SERVER_TIMEOUTS,
  httpServerOptions,
  type ServerTimeouts,
} from '../http/server-limits.js';
import {
  allowedTail,
  forwardRequestHeaders,
  forwardResponseHeaders,
  httpUrl,
  isLoopbackHost,
  openAiError,
  splitTarget,
} from './http.js';
import {
  notLoggedInMessage,
  ProviderCredentialError,
  type ProviderUpstream,
  type ProxyProvider,
  redactUrl,
  type UpstreamCredential,
} from './provider.js';
import { findProvider, providerNames } from './providers.js';
import { liveProxyState, removeProxyState, writeProxyState } from './state.js';

/**
 * The local OpenAI-compatible proxy (reference lifecycle §4.2): `GET /health`, and `* /v1/<path>`
 * for the provider's allowed paths, forwarded to the upstream with the real credential. Request
 * bodies are read whole (capped); responses are streamed back chunk by chunk, so SSE arrives as the
 * upstream sends it. The credential and request bodies never reach a log line.
 */

export const DEFAULT_PROXY_HOST = '127.0.0.1';
export const DEFAULT_PROXY_PORT = 8645;
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
export const CONNECT_TIMEOUT_MS = 15_000;
const READ_TIMEOUT_MS = 300_000;

export type ProxyLog = Pick<Logger, 'info' | 'warn'>;

export type ProxyStartErrorCode = 'unknown_provider' | 'not_configured' | 'non_loopback' | 'already_running';

/** A refusal to start; `exitCode` 2 for usage/configuration refusals, 1 otherwise. */
export class ProxyStartError extends Error {
  constructor(
    message: string,
    readonly code: ProxyStartErrorCode,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'ProxyStartError';
  }
}

export interface StartProxyOptions {
  /** The `HERMES_HOME` whose configuration the provider reads (and where `proxy.json` goes). */
  home: string;
  /** Provider name or object (default `openai`). */
  provider?: string | ProxyProvider;
  /** Configuration source (default `process.env`; `$HERMES_HOME/.env` should be loaded into it). */
  env?: NodeJS.ProcessEnv;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Bind to a non-loopback address (the CLI sets this only for an explicit `--host`). */
  allowNonLoopback?: boolean;
  /** Write `$HERMES_HOME/proxy.json` while running (the CLI does). */
  writeStateFile?: boolean;
  log?: ProxyLog;
  maxBodyBytes?: number;
  connectTimeoutMs?: number;
  readTimeoutMs?: number;
  /** Override the server's own time limits for receiving requests (tests use short ones). */
  timeouts?: Partial<ServerTimeouts>;
}

export interface RunningProxy {
  /** `http://host:port` of the listening socket. */
  url: string;
  host: string;
  port: number;
  provider: string;
  /** Upstream base URL (user info redacted). */
  upstream: string;
  /** Non-fatal configuration warnings (no secrets). */
  warnings: string[];
  /** Stop listening, abort in-flight upstream requests, remove proxy.json. Idempotent. */
  stop(): Promise<void>;
}

function resolveProvider(provider: string | ProxyProvider | undefined): ProxyProvider {
  if (provider !== undefined && typeof provider !== 'string') return provider;
  const name = provider ?? 'openai';
  const found = findProvider(name);
  if (!found) {
    throw new ProxyStartError(
      `Unknown proxy provider ${JSON.stringify(name)} (known: ${providerNames().join(', ')})`,
      'unknown_provider',
      2,
    );
  }
  return found;
}

/** The proxy's own answers carry the security headers; an upstream's answer passes through as it came. */
function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  extra: Record<string, string> = {},
): void {
  if (!res.headersSent) securityHeadersFor(res);
  sendJsonBody(res, status, body, extra);
}

/** Start the proxy. Throws `ProxyStartError` for a refusal, or the listen error (e.g. EADDRINUSE). */
export async function startProxy(options: StartProxyOptions): Promise<RunningProxy> {
  const provider = resolveProvider(options.provider);
  const host = options.host ?? DEFAULT_PROXY_HOST;
  const port = options.port ?? DEFAULT_PROXY_PORT;
  const log = options.log ?? pino({ level: 'silent' });
  const maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const readTimeoutMs = options.readTimeoutMs ?? READ_TIMEOUT_MS;

  if (!isLoopbackHost(host) && !options.allowNonLoopback) {
    throw new ProxyStartError(
      `Refusing to bind the proxy to ${host}: anyone who can reach it can use your ${provider.displayName} credentials. Pass --host ${host} explicitly to allow it.`,
      'non_loopback',
      2,
    );
  }
  const upstream: ProviderUpstream = provider.load({ home: options.home, env: options.env ?? process.env });
  if (!upstream.configured) {
    throw new ProxyStartError(notLoggedInMessage(provider), 'not_configured', 2);
  }
  if (options.writeStateFile) {
    const other = liveProxyState(options.home);
    if (other) {
      throw new ProxyStartError(
        `A proxy is already running for this home (PID ${other.pid} on ${httpUrl(other.host, other.port)}); stop it first`,
        'already_running',
        1,
      );
    }
  }

  const target = new URL(upstream.baseUrl);
  const secure = target.protocol === 'https:';
  const basePath = target.pathname.replace(/\/+$/, '');
  const upstreamLabel = redactUrl(upstream.baseUrl);
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const inFlight = new Set<ClientRequest>();

  const forward = (req: IncomingMessage, res: ServerResponse, tail: string, search: string, body: Buffer) => {
    void upstreamCredential(provider, upstream).then((credential) => {
      if (credential instanceof Error) {
        sendJson(res, 401, openAiError(credential.message, 'authentication_error', 'upstream_auth_failed'));
        return;
      }
      if (res.destroyed || res.writableEnded) return;
      const headers = forwardRequestHeaders(req.rawHeaders);
      headers.push('Host', target.host, 'Authorization', `${credential.scheme} ${credential.token}`);
      const hasBody =
        body.length > 0 ||
        req.headers['content-length'] !== undefined ||
        req.headers['transfer-encoding'] !== undefined;
      if (hasBody) headers.push('Content-Length', String(body.length));
      const send = secure ? httpsRequest : httpRequest;
      const upstreamReq = send({
        protocol: target.protocol,
        hostname: target.hostname.replace(/^\[|\]$/g, ''),
        port: target.port || (secure ? 443 : 80),
        method: req.method,
        path: `${basePath}${tail}${search}`,
        headers,
        agent,
      });
      inFlight.add(upstreamReq);
      let failed = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const fail = (status: number, code: string, message: string) => {
        if (failed) return;
        failed = true;
        clearTimeout(connectTimer);
        upstreamReq.destroy();
        if (res.headersSent) res.destroy();
        else sendJson(res, status, openAiError(message, 'server_error', code));
      };
      upstreamReq.on('socket', (socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(
          () =>
            fail(
              504,
              'upstream_timeout',
              `Upstream ${target.host} did not accept a connection within ${connectTimeoutMs / 1000} s`,
            ),
          connectTimeoutMs,
        );
        socket.once('connect', () => clearTimeout(connectTimer));
      });
      upstreamReq.setTimeout(readTimeoutMs, () =>
        fail(504, 'upstream_timeout', `Upstream ${target.host} sent nothing for ${readTimeoutMs / 1000} s`),
      );
      upstreamReq.on('error', (error: NodeJS.ErrnoException) =>
        fail(
          502,
          'upstream_unreachable',
          `Upstream ${target.host} unreachable: ${error.code ?? error.message}`,
        ),
      );
      upstreamReq.on('close', () => {
        clearTimeout(connectTimer);
        inFlight.delete(upstreamReq);
      });
      upstreamReq.on('response', (upstreamRes) => {
        clearTimeout(connectTimer);
        if (failed || res.destroyed) {
          upstreamReq.destroy();
          return;
        }
        res.writeHead(
          upstreamRes.statusCode ?? 502,
          upstreamRes.statusMessage,
          forwardResponseHeaders(upstreamRes.rawHeaders),
        );
        res.flushHeaders();
        upstreamRes.on('error', () => res.destroy());
        upstreamRes.pipe(res);
        upstreamRes.on('close', () => {
          // The upstream went away mid-body: cut the client off too, so it sees a truncated stream.
          if (!upstreamRes.complete && !res.writableEnded) res.destroy();
        });
      });
      // The client hung up (or the proxy is stopping) before the answer was complete: abort upstream.
      res.on('close', () => {
        if (!res.writableFinished) upstreamReq.destroy();
      });
      upstreamReq.end(hasBody ? body : undefined);
    });
  };

  // The shared limits cut a trickled request; they end when the request is read, so a long answer
  // streams on. The idle limit outlasts the upstream read timeout: a client waiting for a slow
  // upstream is silent the whole time, and the upstream timeout answers it first.
  const server = createServer(httpServerOptions(options.timeouts), (req, res) => {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const { pathname, search } = splitTarget(req.url ?? '/');
    res.on('close', () => {
      log.info(
        {
          method,
          path: pathname.length > 200 ? `${pathname.slice(0, 200)}…` : pathname,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'proxy request',
      );
    });

    if (pathname === '/health' && (method === 'GET' || method === 'HEAD')) {
      sendJson(res, 200, {
        status: 'ok',
        upstream: upstreamLabel,
        authenticated: upstream.configured,
        provider: provider.name,
      });
      return;
    }
    const tail = allowedTail(pathname, provider.allowedPaths);
    if (tail === null) {
      sendJson(
        res,
        404,
        openAiError(
          `Path ${pathname.slice(0, 200)} is not served by this proxy (allowed under /v1: ${provider.allowedPaths.join(', ')})`,
          'invalid_request_error',
          'path_not_allowed',
        ),
      );
      return;
    }
    void readCappedBody(req, maxBodyBytes).then((read) => {
      if (!read.ok && read.reason === 'aborted') return;
      if (!read.ok) {
        sendJson(
          res,
          413,
          openAiError(
            `Request body exceeds the proxy limit of ${maxBodyBytes} bytes`,
            'invalid_request_error',
            'request_too_large',
          ),
        );
        return;
      }
      forward(req, res, tail, search, read.body);
    });
  });

  applyIdleTimeout(server, {
    ...options.timeouts,
    idleTimeoutMs: Math.max(
      options.timeouts?.idleTimeoutMs ?? DEFAULT_SERVER_TIMEOUTS.idleTimeoutMs,
      readTimeoutMs + connectTimeoutMs,
    ),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.warn({ err: error.message }, 'proxy server error'));
  const address = server.address() as AddressInfo;
  const boundHost = address.address;
  if (options.writeStateFile) {
    writeProxyState(options.home, {
      pid: process.pid,
      host: boundHost,
      port: address.port,
      provider: provider.name,
    });
  }

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const pending of inFlight) pending.destroy();
      server.closeAllConnections();
      agent.destroy();
    }).finally(() => {
      if (options.writeStateFile) removeProxyState(options.home);
    });
    return stopping;
  };

  return {
    url: httpUrl(boundHost, address.port),
    host: boundHost,
    port: address.port,
    provider: provider.name,
    upstream: upstreamLabel,
    warnings: [...upstream.warnings],
    stop,
  };
}

async function upstreamCredential(
  provider: ProxyProvider,
  upstream: ProviderUpstream,
): Promise<UpstreamCredential | Error> {
  try {
    return await upstream.getCredential();
  } catch (error) {
    if (error instanceof ProviderCredentialError) return error;
    return new Error(`Could not obtain the ${provider.displayName} credential`);
  }
}
