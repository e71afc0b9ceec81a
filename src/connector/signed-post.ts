import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { urlToHttpOptions } from 'node:url';
import { boundedCache } from '../common/cache.js';
import { errorMessage } from '../common/errors.js';
import { type TargetCheck, TargetGuard, targetUrlProblem } from '../common/ssrf.js';

/**
 * One HTTP POST of pre-serialised bytes with keep-alive connections. Resolves to the status (and
 * `Retry-After` in ms) or a network error; never rejects. Redirects are never followed: a 3xx is an
 * answer like any other non-2xx.
 *
 * Where it connects follows the SSRF rule (`common/ssrf.ts`) through the {@link TargetGuard} passed
 * in (default: public addresses only). An IP-literal host is judged before the request; a name is
 * resolved and judged each time a new connection is opened (DNS can change; the guard keeps each
 * verdict a few seconds), and the connection goes to the checked addresses — the name is never
 * resolved a second time — while the `Host` header and TLS server name stay the URL's.
 */

export type PostOutcome =
  /** `retryAfterMs` and `body` (the start of the response text) are read for non-2xx answers only. */
  | { kind: 'response'; status: number; retryAfterMs: number | undefined; body: string }
  | { kind: 'error'; error: string; timedOut: boolean };

const MAX_RESPONSE_CHARS = 2048;

/** An endpoint URL parsed once: its request options, or why it cannot be posted to. */
type Target =
  | {
      ok: true;
      secure: boolean;
      /** The name or address to connect to (no brackets, no port). */
      host: string;
      /** The `Host` header node would send: the URL's host, port only when not the default. */
      hostHeader: string;
      options: http.RequestOptions;
    }
  | { ok: false; error: string };
/** Endpoints are few (one per tenant or gateway); bounded so odd inputs cannot grow it. */
const targets = boundedCache<string, Target>({ max: 1024 });

function target(url: string): Target {
  let parsed = targets.get(url);
  if (parsed) return parsed;
  try {
    const location = new URL(url);
    const problem = targetUrlProblem(url);
    const options = urlToHttpOptions(location);
    parsed = problem
      ? { ok: false, error: `endpoint URL ${problem}` }
      : {
          ok: true,
          secure: location.protocol === 'https:',
          host: options.hostname ?? '',
          hostHeader: location.host,
          options: { ...options, method: 'POST' },
        };
  } catch {
    parsed = { ok: false, error: 'invalid endpoint URL' };
  }
  targets.set(url, parsed);
  return parsed;
}

/** Public addresses only: what a caller that passes no guard gets. */
const PUBLIC_ONLY = new TargetGuard({ allowPrivate: 'none' });

/** Why a target is refused, as the delivery's error (and later its dead letter's reason). */
function refusal(verdict: Exclude<TargetCheck, { ok: true }>): string {
  if (verdict.unresolved) return verdict.reason;
  const address = verdict.address ? ` (${verdict.address})` : '';
  return `endpoint refused: ${verdict.reason}${address} (private targets need RELAY_ALLOW_PRIVATE_TARGETS)`;
}

/** A `lookup` for a new connection: the guard's checked addresses, or the refusal as the error. */
function guardedLookup(guard: TargetGuard): LookupFunction {
  return (hostname, options, callback) => {
    guard.check(hostname).then(
      (verdict): void => {
        if (!verdict.ok) {
          const error = Object.assign(new Error(refusal(verdict)), { code: 'ETARGETREFUSED' });
          callback(error, '', 0);
        } else if (options.all) callback(null, [{ address: verdict.address, family: verdict.family }]);
        else callback(null, verdict.address, verdict.family);
      },
      (error: Error) => callback(error as NodeJS.ErrnoException, '', 0),
    );
  };
}

/**
 * Keep-alive agents and the lookup, per guard: a pooled connection is reused without a lookup, so
 * connections opened under one rule are never handed to a caller under another.
 */
interface Transport {
  http: http.Agent;
  https: https.Agent;
  lookup: LookupFunction;
}
const transports = new WeakMap<TargetGuard, Transport>();

function transportFor(guard: TargetGuard): Transport {
  let transport = transports.get(guard);
  if (!transport) {
    transport = {
      http: new http.Agent({ keepAlive: true, maxSockets: 256 }),
      https: new https.Agent({ keepAlive: true, maxSockets: 256 }),
      lookup: guardedLookup(guard),
    };
    transports.set(guard, transport);
  }
  return transport;
}

/**
 * POST `body` to `url` with `headers` (the caller's; `Host` and `Content-Length` are set here and
 * must not be among them).
 */
export function postBytes(
  url: string,
  body: Buffer,
  headers: Record<string, string>,
  timeoutMs: number,
  guard: TargetGuard = PUBLIC_ONLY,
): Promise<PostOutcome> {
  return new Promise((resolve) => {
    const endpoint = target(url);
    if (!endpoint.ok) {
      resolve({ kind: 'error', error: endpoint.error, timedOut: false });
      return;
    }
    const known = guard.known(endpoint.host);
    if (known && !known.ok) {
      resolve({ kind: 'error', error: refusal(known), timedOut: false });
      return;
    }
    const transport = transportFor(guard);
    const { secure } = endpoint;
    let settled = false;
    const finish = (outcome: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    // Raw `[name, value, …]` headers: node validates and writes them as given, without building a
    // header map per request; so `Host` is ours to send (as node would: the URL's host).
    const raw = ['host', endpoint.hostHeader];
    for (const name in headers) raw.push(name, headers[name] as string);
    raw.push('content-length', String(body.length));
    let request: http.ClientRequest;
    try {
      request = (secure ? https : http).request(
        {
          ...endpoint.options,
          agent: secure ? transport.https : transport.http,
          // Used only when a new connection is opened to a name (never for an IP literal).
          lookup: transport.lookup,
          headers: raw,
        },
        onResponse,
      );
    } catch (error) {
      // A header node refuses (a line break in a value): nothing was sent; an error, not a throw.
      settled = true;
      resolve({ kind: 'error', error: `request not sent: ${errorMessage(error)}`, timedOut: false });
      return;
    }
    function onResponse(response: http.IncomingMessage): void {
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        // A success needs nothing but its end: the body is drained unread, the headers unparsed.
        response.resume();
        response.on('end', () => finish({ kind: 'response', status, retryAfterMs: undefined, body: '' }));
        response.on('error', (error) => finish({ kind: 'error', error: error.message, timedOut: false }));
        return;
      }
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (text.length < MAX_RESPONSE_CHARS) text += chunk;
      });
      response.on('end', () =>
        finish({
          kind: 'response',
          status: response.statusCode ?? 0,
          retryAfterMs: parseRetryAfter(response.headers['retry-after']),
          body: text.slice(0, MAX_RESPONSE_CHARS),
        }),
      );
      response.on('error', (error) => finish({ kind: 'error', error: error.message, timedOut: false }));
    }
    const timer = setTimeout(() => {
      finish({ kind: 'error', error: `timed out after ${timeoutMs} ms`, timedOut: true });
      request.destroy();
    }, timeoutMs);
    request.on('error', (error) => finish({ kind: 'error', error: error.message, timedOut: false }));
    request.end(body);
  });
}

function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
