import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TargetGuard } from '../../src/common/ssrf.js';
import { postBytes } from '../../src/connector/signed-post.js';

/**
 * What `postBytes` puts on the wire (issue 20: it writes raw header lists, so the `Host` header and
 * the length are its own): one `Host` as node would send it, one exact `Content-Length`, the
 * caller's headers as given and the body's bytes unchanged, on a kept-alive connection.
 */

const guard = new TargetGuard({ allowPrivate: 'all' });
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
  remotePort: number;
}

async function recordingServer(host: string): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      seen.push({
        method: request.method ?? '',
        url: request.url ?? '',
        rawHeaders: request.rawHeaders,
        body: Buffer.concat(chunks),
        remotePort: request.socket.remotePort ?? 0,
      });
      if (request.url === '/busy') response.writeHead(503, { 'retry-after': '7' }).end('slow down');
      else response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { port: (server.address() as AddressInfo).port, seen };
}

/** The values of one header (case-insensitive) in a raw header list. */
function values(rawHeaders: string[], name: string): string[] {
  const found: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2)
    if (rawHeaders[i]?.toLowerCase() === name) found.push(rawHeaders[i + 1] ?? '');
  return found;
}

describe('postBytes on the wire', () => {
  it('sends one Host, one exact Content-Length, the caller’s headers and the bytes as given', async () => {
    const { port, seen } = await recordingServer('127.0.0.1');
    const body = Buffer.from('{"text":"héllo ✓"}', 'utf8');
    const headers = { 'content-type': 'application/json', 'x-relay-delivery-id': 'dlv_1' };
    for (let i = 0; i < 2; i++) {
      const outcome = await postBytes(`http://127.0.0.1:${port}/hook?a=1`, body, headers, 5_000, guard);
      expect(outcome).toEqual({ kind: 'response', status: 200, retryAfterMs: undefined, body: '' });
    }
    expect(seen).toHaveLength(2);
    for (const request of seen) {
      expect(request.method).toBe('POST');
      expect(request.url).toBe('/hook?a=1');
      expect(values(request.rawHeaders, 'host')).toEqual([`127.0.0.1:${port}`]);
      expect(values(request.rawHeaders, 'content-length')).toEqual([String(body.length)]);
      expect(values(request.rawHeaders, 'content-type')).toEqual(['application/json']);
      expect(values(request.rawHeaders, 'x-relay-delivery-id')).toEqual(['dlv_1']);
      expect(request.body.equals(body)).toBe(true);
    }
    // Kept alive: the second request came on the first one's connection.
    expect(seen[1]?.remotePort).toBe(seen[0]?.remotePort);
  });

  it('brackets an IPv6 literal in the Host header', async (context) => {
    let server: { port: number; seen: Seen[] };
    try {
      server = await recordingServer('::1');
    } catch {
      context.skip(); // no IPv6 loopback on this machine
      return;
    }
    const outcome = await postBytes(`http://[::1]:${server.port}/`, Buffer.from('{}'), {}, 5_000, guard);
    expect(outcome).toMatchObject({ kind: 'response', status: 200 });
    expect(values(server.seen[0]?.rawHeaders ?? [], 'host')).toEqual([`[::1]:${server.port}`]);
  });

  it('reads the status, Retry-After and the start of the text of a refusal', async () => {
    const { port } = await recordingServer('127.0.0.1');
    const outcome = await postBytes(`http://127.0.0.1:${port}/busy`, Buffer.from('{}'), {}, 5_000, guard);
    expect(outcome).toEqual({ kind: 'response', status: 503, retryAfterMs: 7_000, body: 'slow down' });
  });

  it('refuses a header value that would split the request, as one error and no request', async () => {
    const { port, seen } = await recordingServer('127.0.0.1');
    const outcome = await postBytes(
      `http://127.0.0.1:${port}/`,
      Buffer.from('{}'),
      { 'x-relay-session-key': 'a\r\nx-injected: 1' },
      5_000,
      guard,
    );
    expect(outcome).toMatchObject({ kind: 'error', timedOut: false });
    expect(seen).toHaveLength(0);
  });
});
