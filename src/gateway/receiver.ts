import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { checkDeliveryHeaders, type DeliveryVerification, verifyDelivery } from '../auth/index.js';
import { type BoundedCache, boundedCache } from '../common/cache.js';
import { errorMessage } from '../common/errors.js';
import { type BodyRead, readCappedBody, sendJson } from '../http/raw-io.js';
import { securityHeadersFor } from '../http/security-headers.js';
import { applyIdleTimeout, httpServerOptions, type ServerTimeouts } from '../http/server-limits.js';
import {
  DELIVERY_ID_MEMORY_SECONDS,
  HEADER_DELIVERY_ID,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  INTERRUPT_DELIVERY_SUFFIX,
  interpretDelivery,
  MAX_DELIVERY_BODY_BYTES,
  type MessageEvent,
  parseJsonBytes,
  RECEIVER_ERRORS,
} from '../protocol/index.js';

/**
 * The signed inbound receiver (reference §3, spec decision 4): `POST /` (message),
 * `POST /interrupt` (`/stop`) and `GET /healthz`, on plain node:http so the exact raw bytes are
 * verified before anything is parsed. Status codes and bodies follow reference §3.3 in its order;
 * delivery ids are remembered to answer connector retries `{"ok":true,"duplicate":true}`.
 * Keys and bodies are never logged.
 *
 * Unauthenticated callers cost little: a request that can never verify (no key, missing or stale
 * signature headers) is answered before its body is read, at most `maxConcurrentBodies` bodies are
 * read at once (more get 503 and `Retry-After`), and the shared server time limits cut a trickled
 * body.
 */

/** What the gateway did with a message: `duplicate` when its inbox had already accepted the id. */
export type MessageDisposition = 'accepted' | 'duplicate';

export interface InboundReceiverOptions {
  host: string;
  port: number;
  /** `[primary, secondary]`; called on every request, so a rotated key needs no restart. */
  verifyKeys: () => readonly string[];
  onMessage: (event: MessageEvent, deliveryId: string | undefined) => Promise<MessageDisposition | undefined>;
  onInterrupt: (sessionKey: string, chatId: string) => void | Promise<void>;
  log: Logger;
  /** How long a dispatched delivery id is remembered (default DELIVERY_ID_MEMORY_SECONDS). */
  dedupeSeconds?: number;
  /** Largest accepted body (default 1 MiB); larger ones get 413. */
  maxBodyBytes?: number;
  /** Hard cap on remembered delivery ids; the oldest are forgotten first (default 100 000). */
  maxRememberedIds?: number;
  /** Clock in milliseconds since the epoch (default `Date.now`); drives the replay window and dedupe. */
  now?: () => number;
  /** Bodies read at the same time; more requests get 503 with `Retry-After` (default 32). */
  maxConcurrentBodies?: number;
  /** Override the server time limits (tests use short ones). */
  timeouts?: Partial<ServerTimeouts>;
}

const RECEIVER_BUSY_ERROR = 'delivery in progress';
const RECEIVER_DISPATCH_ERROR = 'dispatch failed';
const RECEIVER_TOO_LARGE_ERROR = 'body too large';
const RECEIVER_SATURATED_ERROR = 'too many deliveries at once';
const DEFAULT_MAX_CONCURRENT_BODIES = 32;
const DEFAULT_MAX_REMEMBERED_IDS = 100_000;
/** Delivery ids longer than this (or with control characters) are treated as absent. */
const MAX_DELIVERY_ID_CHARS = 256;
/** Time given to in-flight requests on stop() before their connections are cut. */
const STOP_GRACE_MS = 2_000;

export class InboundReceiver {
  private readonly log: Logger;
  private readonly dedupeMs: number;
  private readonly maxBodyBytes: number;
  private readonly maxRemembered: number;
  private readonly now: () => number;
  private readonly maxConcurrentBodies: number;
  private bodiesBeingRead = 0;
  /** Delivery ids dispatched in the last `dedupeMs`, at most `maxRemembered` of them. */
  private readonly remembered: BoundedCache<string, true>;
  private readonly inFlight = new Set<string>();
  private server: Server | undefined;

  constructor(private readonly options: InboundReceiverOptions) {
    this.log = options.log;
    this.dedupeMs = Math.max(0, options.dedupeSeconds ?? DELIVERY_ID_MEMORY_SECONDS) * 1000;
    this.maxBodyBytes = Math.max(0, options.maxBodyBytes ?? MAX_DELIVERY_BODY_BYTES);
    this.maxRemembered = Math.max(1, options.maxRememberedIds ?? DEFAULT_MAX_REMEMBERED_IDS);
    this.now = options.now ?? Date.now;
    this.remembered = boundedCache({ max: this.maxRemembered, ttlMs: this.dedupeMs, now: this.now });
    this.maxConcurrentBodies = Math.max(1, options.maxConcurrentBodies ?? DEFAULT_MAX_CONCURRENT_BODIES);
  }

  /** Bind and listen. Rejects with a clear error when the address cannot be bound. */
  async start(): Promise<{ url: string; port: number }> {
    if (this.server) throw new Error('inbound receiver already started');
    const { host, port } = this.options;
    const server = createServer(httpServerOptions(this.options.timeouts), (request, response) => {
      void this.handle(request, response);
    });
    applyIdleTimeout(server, this.options.timeouts);
    // Answer an `Expect: 100-continue` request that would be refused before the client sends its body.
    server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
      void this.handle(request, response, () => response.writeContinue());
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        const why = error.code === 'EADDRINUSE' ? 'address already in use' : (error.code ?? error.message);
        reject(
          new Error(`inbound receiver could not bind ${formatHost(host)}:${port}: ${why}`, { cause: error }),
        );
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(port, host);
    });
    server.on('error', (error) => this.log.warn({ err: error.message }, 'inbound receiver error'));
    this.server = server;
    const bound = (server.address() as AddressInfo).port;
    const url = `http://${formatHost(host)}:${bound}`;
    this.log.info({ url }, 'inbound receiver listening');
    return { url, port: bound };
  }

  /** Stop accepting, let in-flight requests finish briefly, then cut what remains. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => server.closeAllConnections(), STOP_GRACE_MS);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      server.closeIdleConnections();
    });
  }

  /** Number of delivery ids currently remembered (for tests and metrics). */
  get rememberedCount(): number {
    this.remembered.purgeStale();
    return this.remembered.size;
  }

  private async handle(
    request: IncomingMessage,
    response: ServerResponse,
    beforeBody?: () => void,
  ): Promise<void> {
    try {
      await this.route(request, response, beforeBody);
    } catch (error) {
      this.log.error({ err: errorMessage(error) }, 'inbound receiver failed on a request');
      if (!response.headersSent) answerJson(response, 500, { error: 'internal error' });
      else response.destroy();
    }
  }

  private async route(
    request: IncomingMessage,
    response: ServerResponse,
    beforeBody?: () => void,
  ): Promise<void> {
    const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
    if (path === '/healthz') {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return answerJson(response, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
      }
      securityHeadersFor(response);
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '2' });
      response.end(request.method === 'HEAD' ? undefined : 'ok');
      return;
    }
    if (path !== '/' && path !== INTERRUPT_DELIVERY_SUFFIX) {
      return answerJson(response, 404, { error: 'not found' });
    }
    if (request.method !== 'POST') {
      return answerJson(response, 405, { error: 'method not allowed' }, { allow: 'POST' });
    }
    if (this.declaredTooLarge(request)) return this.tooLarge(response);
    // §3.3 steps 1–2 as far as they need no body; the signature itself is checked on the bytes.
    const keys = this.options.verifyKeys();
    const early = checkDeliveryHeaders(
      request.headers[HEADER_TIMESTAMP],
      request.headers[HEADER_SIGNATURE],
      keys,
      Math.floor(this.now() / 1000),
    );
    if (!early.ok) return this.unauthorized(response, path, early, { connection: 'close' });
    if (this.bodiesBeingRead >= this.maxConcurrentBodies) {
      this.log.debug({ limit: this.maxConcurrentBodies }, 'inbound delivery deferred: too many bodies');
      return answerJson(
        response,
        503,
        { error: RECEIVER_SATURATED_ERROR },
        { 'retry-after': '1', connection: 'close' },
      );
    }
    beforeBody?.();
    this.bodiesBeingRead += 1;
    let read: BodyRead;
    try {
      read = await readCappedBody(request, this.maxBodyBytes);
    } finally {
      this.bodiesBeingRead -= 1;
    }
    if (!read.ok) {
      if (read.reason === 'too_large') return this.tooLarge(response);
      return; // the client went away; nobody to answer
    }
    await this.deliver(path, request, read.body, keys, response);
  }

  private async deliver(
    path: string,
    request: IncomingMessage,
    raw: Buffer,
    keys: readonly string[],
    response: ServerResponse,
  ): Promise<void> {
    // §3.3 steps 1–2: fail closed without a key, then the signature over the exact bytes (with the
    // keys the headers were checked against; the clock is read again after the body).
    const verified = verifyDelivery(
      raw,
      request.headers[HEADER_TIMESTAMP],
      request.headers[HEADER_SIGNATURE],
      keys,
      Math.floor(this.now() / 1000),
    );
    if (!verified.ok) return this.unauthorized(response, path, verified);
    // Step 3: strict UTF-8, then JSON.
    const parsed = parseJsonBytes(raw);
    if (!parsed.ok) {
      this.log.debug({ path, reason: parsed.error }, 'inbound delivery refused');
      return answerJson(response, 400, { error: RECEIVER_ERRORS.badJson });
    }
    // Steps 4–5: interrupt by path or body type, else a message that must carry an event.
    const delivery = interpretDelivery(path, parsed.value);
    if (delivery.kind === 'rejected') {
      this.log.debug({ path, reason: 'missing_event' }, 'inbound delivery refused');
      return answerJson(response, delivery.status, { error: delivery.error });
    }
    // The body's id is covered by the signature; the header is the fallback (spec decision 4).
    const deliveryId = cleanId(delivery.deliveryId) ?? cleanId(request.headers[HEADER_DELIVERY_ID]);
    if (deliveryId !== undefined) {
      if (this.isRemembered(deliveryId)) {
        this.log.debug({ deliveryId }, 'duplicate delivery answered without dispatch');
        return answerJson(response, 200, { ok: true, duplicate: true });
      }
      if (this.inFlight.has(deliveryId)) {
        this.log.debug({ deliveryId }, 'delivery still being dispatched; asked to retry');
        return answerJson(response, 503, { error: RECEIVER_BUSY_ERROR }, { 'retry-after': '1' });
      }
      this.inFlight.add(deliveryId);
    }
    let disposition: MessageDisposition | undefined;
    try {
      if (delivery.kind === 'interrupt') {
        // 200 even with no session key; nothing is dispatched then (reference §3.3 step 4).
        if (delivery.sessionKey) await this.options.onInterrupt(delivery.sessionKey, delivery.chatId);
      } else {
        disposition = await this.options.onMessage(delivery.event, deliveryId);
      }
    } catch (error) {
      this.log.warn({ deliveryId, kind: delivery.kind, err: errorMessage(error) }, 'inbound dispatch failed');
      return answerJson(response, 500, { error: RECEIVER_DISPATCH_ERROR });
    } finally {
      if (deliveryId !== undefined) this.inFlight.delete(deliveryId);
    }
    if (deliveryId !== undefined) this.remember(deliveryId);
    // Remembered by the durable inbox from before a restart: dispatch was suppressed there.
    if (disposition === 'duplicate') return answerJson(response, 200, { ok: true, duplicate: true });
    sendOk(response);
  }

  private unauthorized(
    response: ServerResponse,
    path: string,
    failure: Extract<DeliveryVerification, { ok: false }>,
    headers?: Record<string, string>,
  ): void {
    this.log.debug({ path, reason: failure.reason }, 'inbound delivery refused');
    const error = failure.reason === 'no_key' ? RECEIVER_ERRORS.noKey : RECEIVER_ERRORS.badSignature;
    answerJson(response, 401, { error }, headers);
  }

  private declaredTooLarge(request: IncomingMessage): boolean {
    const declared = request.headers['content-length'];
    return declared !== undefined && Number(declared) > this.maxBodyBytes;
  }

  /** 413 and close the connection, so the rest of the body is never read into memory. */
  private tooLarge(response: ServerResponse): void {
    this.log.debug({ limit: this.maxBodyBytes }, 'inbound delivery refused: body too large');
    answerJson(response, 413, { error: RECEIVER_TOO_LARGE_ERROR }, { connection: 'close' });
  }

  private isRemembered(id: string): boolean {
    return this.remembered.has(id);
  }

  private remember(id: string): void {
    if (this.dedupeMs > 0) this.remembered.set(id, true);
  }
}

function cleanId(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const id = value.trim();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (id === '' || id.length > MAX_DELIVERY_ID_CHARS || /[\u0000-\u001f\u007f]/.test(id)) return undefined;
  return id;
}

/** {@link sendJson} with the security headers, which every answer of the receiver carries. */
function answerJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers?: Record<string, string | number>,
): void {
  if (!response.headersSent) securityHeadersFor(response);
  sendJson(response, status, body, headers);
}

/** The security headers as name/value pairs, read once from `securityHeadersFor` (their one source). */
function securityHeaderPairs(): string[] {
  const set = new Map<string, string>();
  const recorder = {
    setHeader: (name: string, value: string) => set.set(name.toLowerCase(), value),
    hasHeader: (name: string) => set.has(name.toLowerCase()),
  };
  securityHeadersFor(recorder as unknown as ServerResponse);
  return [...set].flat();
}

const OK_BODY = JSON.stringify({ ok: true });
/** Raw `[name, value, …]` headers: node writes them without building a header map per answer. */
const OK_HEADERS = [
  'content-type',
  'application/json; charset=utf-8',
  'content-length',
  String(Buffer.byteLength(OK_BODY)),
  ...securityHeaderPairs(),
];

/**
 * `answerJson(response, 200, { ok: true })`, with the body and all headers built once (every
 * delivery): one `writeHead` with the raw list, no `setHeader` per header and answer.
 */
function sendOk(response: ServerResponse): void {
  response.writeHead(200, OK_HEADERS);
  response.end(OK_BODY);
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
