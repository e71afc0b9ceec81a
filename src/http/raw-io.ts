import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Request bodies and JSON answers for the servers written on bare `node:http` (the gateway's
 * receiver and the proxy; fastify does this for the connector and the dashboard).
 */

export type BodyRead = { ok: true; body: Buffer } | { ok: false; reason: 'too_large' | 'aborted' };

/** Past `limit · DRAIN_FACTOR` bytes of an over-long body the connection is cut instead of drained. */
const DRAIN_FACTOR = 8;

/**
 * Read the whole body, up to `limit` bytes. A declared or counted size over the limit settles at
 * once as `too_large` and keeps nothing: the rest is drained and discarded (so the answer can be
 * read by the client), and the socket is destroyed if far more keeps coming.
 */
export function readCappedBody(request: IncomingMessage, limit: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (result: BodyRead) => {
      if (settled) return;
      settled = true;
      if (!result.ok) chunks.length = 0;
      resolve(result);
    };
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (settled) {
        if (size > limit * DRAIN_FACTOR) request.socket.destroy();
        return;
      }
      if (size > limit) settle({ ok: false, reason: 'too_large' });
      else chunks.push(chunk);
    });
    request.on('end', () => settle({ ok: true, body: Buffer.concat(chunks, size) }));
    request.on('close', () => settle({ ok: false, reason: 'aborted' }));
    request.on('error', () => settle({ ok: false, reason: 'aborted' }));
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) settle({ ok: false, reason: 'too_large' });
  });
}

/** Answer `body` as JSON with an exact length; a response already started is cut instead. */
export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
  if (response.headersSent || response.destroyed) {
    response.destroy();
    return;
  }
  const text = JSON.stringify(body);
  response.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}
