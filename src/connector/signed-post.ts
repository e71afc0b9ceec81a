import http from 'node:http';
import https from 'node:https';
import { urlToHttpOptions } from 'node:url';
import { boundedCache } from '../common/cache.js';

/**
 * One HTTP POST of pre-serialised bytes with keep-alive connections. Resolves to the status (and
 * `Retry-After` in ms) or a network error; never rejects.
 */

export type PostOutcome =
  /** `retryAfterMs` and `body` (the start of the response text) are read for non-2xx answers only. */
  | { kind: 'response'; status: number; retryAfterMs: number | undefined; body: string }
  | { kind: 'error'; error: string; timedOut: boolean };

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 256 });
const MAX_RESPONSE_CHARS = 2048;

/** An endpoint URL parsed once: its request options, or why it cannot be posted to. */
type Target = { ok: true; secure: boolean; options: http.RequestOptions } | { ok: false; error: string };
/** Endpoints are few (one per tenant or gateway); bounded so odd inputs cannot grow it. */
const targets = boundedCache<string, Target>({ max: 1024 });

function target(url: string): Target {
  let parsed = targets.get(url);
  if (parsed) return parsed;
  try {
    const location = new URL(url);
    const secure = location.protocol === 'https:';
    parsed =
      secure || location.protocol === 'http:'
        ? { ok: true, secure, options: urlToHttpOptions(location) }
        : { ok: false, error: `unsupported endpoint scheme ${location.protocol}` };
  } catch {
    parsed = { ok: false, error: 'invalid endpoint URL' };
  }
  targets.set(url, parsed);
  return parsed;
}

export function postBytes(
  url: string,
  body: Buffer,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<PostOutcome> {
  return new Promise((resolve) => {
    const endpoint = target(url);
    if (!endpoint.ok) {
      resolve({ kind: 'error', error: endpoint.error, timedOut: false });
      return;
    }
    const { secure } = endpoint;
    let settled = false;
    const finish = (outcome: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const request = (secure ? https : http).request(
      {
        ...endpoint.options,
        method: 'POST',
        agent: secure ? httpsAgent : httpAgent,
        headers: { ...headers, 'content-length': String(body.length) },
      },
      (response) => {
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
      },
    );
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
