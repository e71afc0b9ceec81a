import http from 'node:http';
import https from 'node:https';

/**
 * One HTTP POST of pre-serialised bytes with keep-alive connections. Resolves to the status (and
 * `Retry-After` in ms) or a network error; never rejects.
 */

export type PostOutcome =
  | { kind: 'response'; status: number; retryAfterMs: number | undefined; body: string }
  | { kind: 'error'; error: string; timedOut: boolean };

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 256 });
const MAX_RESPONSE_CHARS = 2048;

export function postBytes(
  url: string,
  body: Buffer,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<PostOutcome> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      resolve({ kind: 'error', error: `invalid endpoint URL`, timedOut: false });
      return;
    }
    const secure = target.protocol === 'https:';
    if (!secure && target.protocol !== 'http:') {
      resolve({ kind: 'error', error: `unsupported endpoint scheme ${target.protocol}`, timedOut: false });
      return;
    }
    let settled = false;
    const finish = (outcome: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const request = (secure ? https : http).request(
      target,
      {
        method: 'POST',
        agent: secure ? httpsAgent : httpAgent,
        headers: { ...headers, 'content-length': String(body.length) },
      },
      (response) => {
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

export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
