import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, request } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { allowedTail, forwardRequestHeaders, forwardResponseHeaders } from '../../src/proxy/http.js';
import { maskCredential } from '../../src/proxy/provider.js';
import { MAX_BODY_BYTES, ProxyStartError, type RunningProxy, startProxy } from '../../src/proxy/server.js';
import { proxyStatePath, readProxyState } from '../../src/proxy/state.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/processes.js';
import { type FakeUpstream, gate, memoryLogger, send, startFakeUpstream } from './fake-upstream.js';

const REAL_KEY = 'sk-proj-REALSECRETKEY-0123456789abcdefWXYZ';
const OPENAI_ALLOWED = ['/chat/completions', '/completions', '/embeddings', '/models', '/responses'];

let upstream: FakeUpstream;
let home: { path: string; remove: () => void };
const running: RunningProxy[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream();
  home = tempDir('proxy');
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((proxy) => proxy.stop()));
  upstream.requests.length = 0;
  upstream.handle((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});

afterAll(async () => {
  await upstream.stop();
  home.remove();
});

async function proxyFor(
  baseUrl: string,
  extra: Partial<Parameters<typeof startProxy>[0]> = {},
): Promise<RunningProxy> {
  const proxy = await startProxy({
    home: home.path,
    env: { OPENAI_BASE_URL: baseUrl, OPENAI_API_KEY: REAL_KEY },
    port: 0,
    ...extra,
  });
  running.push(proxy);
  return proxy;
}

/** Stream a response; `until(text)` resolves once the received text contains it. */
function streamRequest(url: string, body: string) {
  let text = '';
  let chunks = 0;
  let ended = false;
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of waiters) waiter();
  };
  let response: IncomingMessage | undefined;
  const req = request(url, {
    method: 'POST',
    headers: { authorization: 'Bearer client-fake', 'content-type': 'application/json' },
    agent: false,
  });
  const responded = new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', (res) => {
      response = res;
      res.on('data', (chunk: Buffer) => {
        chunks += 1;
        text += chunk.toString('utf8');
        notify();
      });
      res.on('end', () => {
        ended = true;
        notify();
      });
      res.on('error', () => undefined);
      resolve(res);
    });
    req.on('error', reject);
  });
  req.end(body);
  const waitUntil = (done: () => boolean, what: string, timeoutMs = 5_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${what} never arrived; received so far: ${JSON.stringify(text)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return {
    req,
    responded,
    response: () => response,
    text: () => text,
    chunks: () => chunks,
    received: (needle: string) => waitUntil(() => text.includes(needle), JSON.stringify(needle)),
    ended: () => waitUntil(() => ended, 'the end of the response'),
  };
}

describe('proxy helpers', () => {
  it('allows only the provider paths (and their sub-paths) under /v1, refusing escapes', () => {
    expect(allowedTail('/v1/chat/completions', OPENAI_ALLOWED)).toBe('/chat/completions');
    expect(allowedTail('/v1/models/gpt-4o-mini', OPENAI_ALLOWED)).toBe('/models/gpt-4o-mini');
    expect(allowedTail('/v1/responses', OPENAI_ALLOWED)).toBe('/responses');
    for (const refused of [
      '/v1/files',
      '/v1/chat',
      '/v1/chat/completionsX',
      '/v1/models/../files',
      '/v1/models/%2e%2e/files',
      '/v1/models/a%2Fb',
      '/v1/models/a\\b',
      '/v1//chat/completions',
      '/v1/models/',
      '/v2/chat/completions',
      '/chat/completions',
      '/v1',
      '/v1/models/%zz',
    ]) {
      expect(allowedTail(refused, OPENAI_ALLOWED), refused).toBeNull();
    }
  });

  it('drops hop-by-hop headers, the ones named in Connection, and the client credential', () => {
    const forwarded = forwardRequestHeaders([
      'Connection',
      'keep-alive, X-Hop-Custom',
      'X-Hop-Custom',
      '1',
      'Keep-Alive',
      'timeout=5',
      'TE',
      'trailers',
      'Transfer-Encoding',
      'chunked',
      'Proxy-Authorization',
      'Basic abc',
      'Authorization',
      'Bearer client',
      'Host',
      'localhost:1',
      'Content-Length',
      '3',
      'X-Keep',
      'a',
      'x-keep',
      'b',
    ]);
    expect(forwarded).toEqual(['X-Keep', 'a', 'x-keep', 'b']);
    expect(forwardResponseHeaders(['Upgrade', 'h2c', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'])).toEqual([
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
    ]);
  });

  it('masks credentials to a prefix and the last 4 characters at most', () => {
    expect(maskCredential(REAL_KEY)).toBe('sk-…WXYZ');
    expect(maskCredential('abcdefghijklmnopqrstuvwxyz')).toBe('…wxyz');
    expect(maskCredential('short-key')).toBe('set');
    expect(maskCredential(undefined)).toBeNull();
    expect(maskCredential('   ')).toBeNull();
  });
});

describe('startProxy', () => {
  it('replaces the client bearer with the real key, forwards query and body verbatim, and never leaks the key', async () => {
    upstream.handle((_req, res, recorded) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-upstream': 'fake',
        'keep-alive': 'timeout=99',
        'proxy-authenticate': 'Basic realm=x',
      });
      res.end(JSON.stringify({ echo: recorded.url }));
    });
    const logger = memoryLogger();
    const proxy = await proxyFor(`${upstream.url}/api/v1`, { log: logger.log });
    const body = '{"model":"m","messages":[{"role":"user","content":"secret-prompt-marker ü"}]}';
    const response = await send(proxy.url, '/v1/chat/completions?api-version=2&q=a%20b', {
      method: 'POST',
      headers: [
        'Host',
        new URL(proxy.url).host,
        'Authorization',
        'Bearer client-supplied-anything',
        'Content-Type',
        'application/json',
        'Connection',
        'close, X-Drop-Me',
        'X-Drop-Me',
        'yes',
        'Proxy-Authorization',
        'Basic Zm9vOmJhcg==',
        'X-Custom',
        'kept',
      ],
      body,
    });

    expect(response.status, response.body).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const seen = upstream.requests[0];
    expect(seen?.method).toBe('POST');
    expect(seen?.url).toBe('/api/v1/chat/completions?api-version=2&q=a%20b');
    expect(seen?.body.toString('utf8')).toBe(body);
    expect(seen?.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(seen?.headers.authorization).toBe(`Bearer ${REAL_KEY}`);
    expect(seen?.rawHeaders.filter((name) => name.toLowerCase() === 'authorization')).toHaveLength(1);
    expect(seen?.headers['x-custom']).toBe('kept');
    expect(seen?.headers['x-drop-me']).toBeUndefined();
    expect(seen?.headers['proxy-authorization']).toBeUndefined();
    expect(seen?.headers.host).toBe(new URL(upstream.url).host);

    expect(response.headers['x-upstream']).toBe('fake');
    expect(response.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(response.headers['keep-alive']).toBeUndefined();
    expect(response.headers['proxy-authenticate']).toBeUndefined();
    expect(JSON.parse(response.body)).toEqual({ echo: '/api/v1/chat/completions?api-version=2&q=a%20b' });
    expect(`${response.rawHeaders.join('\n')}\n${response.body}`).not.toContain(REAL_KEY);

    await proxy.stop();
    const logText = logger.text();
    expect(logText).not.toContain(REAL_KEY);
    expect(logText).not.toContain('secret-prompt-marker');
    expect(logText).not.toContain('client-supplied-anything');
    expect(logText).not.toContain('api-version');
    const line = logger.lines().find((entry) => entry.msg === 'proxy request');
    expect(line).toMatchObject({ method: 'POST', path: '/v1/chat/completions', status: 200 });
    expect(typeof line?.ms).toBe('number');
  });

  it('answers /health with the upstream (user info redacted) and authentication state', async () => {
    const base = upstream.url.replace('http://', 'http://user:hunter2@');
    const proxy = await proxyFor(`${base}/v1`);
    const health = await send(proxy.url, '/health');
    expect(health.status).toBe(200);
    const body = JSON.parse(health.body) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 'ok', authenticated: true });
    expect(String(body.upstream)).toContain(new URL(upstream.url).host);
    expect(String(body.upstream)).not.toContain('hunter2');
    expect(health.body).not.toContain(REAL_KEY);

    // URL user info never turns into upstream credentials: the bearer is the only Authorization.
    await send(proxy.url, '/v1/models');
    expect(upstream.requests[0]?.headers.authorization).toBe(`Bearer ${REAL_KEY}`);
  });

  it('streams SSE chunk by chunk: each event reaches the client while the upstream still holds the response open', async () => {
    const release = [gate(), gate()];
    let upstreamFinished = false;
    upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: {"n":1}\n\n');
      void (async () => {
        await release[0]?.promise;
        res.write('data: {"n":2}\n\n');
        await release[1]?.promise;
        res.write('data: [DONE]\n\n');
        upstreamFinished = true;
        res.end();
      })();
    });
    const proxy = await proxyFor(`${upstream.url}/v1`);
    const stream = streamRequest(`${proxy.url}/v1/chat/completions`, '{"stream":true}');
    const res = await stream.responded;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');

    await stream.received('"n":1');
    expect(upstreamFinished).toBe(false);
    expect(stream.text()).not.toContain('"n":2');
    release[0]?.open();
    await stream.received('"n":2');
    expect(upstreamFinished).toBe(false);
    expect(stream.text()).not.toContain('[DONE]');
    release[1]?.open();
    await stream.ended();
    expect(stream.text()).toBe('data: {"n":1}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n');
    expect(stream.chunks()).toBeGreaterThanOrEqual(3);
  });

  it('keeps streaming an answer past the request time limit, which only bounds receiving the request', async () => {
    const release = gate();
    upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"n":1}\n\n');
      void release.promise.then(() => res.end('data: [DONE]\n\n'));
    });
    const proxy = await proxyFor(`${upstream.url}/v1`, {
      timeouts: { requestTimeoutMs: 300, checkIntervalMs: 50 },
    });
    const stream = streamRequest(`${proxy.url}/v1/chat/completions`, '{"stream":true}');
    await stream.received('"n":1');
    // Several check intervals past the limit, the stream is still open; then it ends normally.
    await new Promise((resolve) => setTimeout(resolve, 600));
    release.open();
    await stream.ended();
    expect(stream.text()).toBe('data: {"n":1}\n\ndata: [DONE]\n\n');
  });

  it('cuts a request body trickled past the request time limit, without contacting the upstream', async () => {
    const proxy = await proxyFor(`${upstream.url}/v1`, {
      timeouts: { requestTimeoutMs: 400, checkIntervalMs: 50 },
    });
    const outcome = await new Promise<string>((resolve) => {
      const req = request(`${proxy.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': '1000' },
        agent: false,
      });
      const trickle = setInterval(() => req.write('{'), 50);
      req.on('response', (res) => {
        clearInterval(trickle);
        resolve(`status ${res.statusCode}`);
        res.resume();
      });
      req.on('error', () => {
        clearInterval(trickle);
        resolve('closed');
      });
    });
    expect(['status 408', 'closed']).toContain(outcome);
    expect(upstream.requests).toHaveLength(0);
  });

  it("puts the security headers on the proxy's own answers and passes upstream answers through untouched", async () => {
    const proxy = await proxyFor(`${upstream.url}/v1`);
    for (const own of [await send(proxy.url, '/health'), await send(proxy.url, '/nowhere')]) {
      expect(own.headers['x-content-type-options']).toBe('nosniff');
      expect(own.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    }
    const passed = await send(proxy.url, '/v1/models');
    expect(passed.status).toBe(200);
    expect(passed.headers['content-security-policy']).toBeUndefined();
  });

  it('aborts the upstream request when the client disconnects mid-stream', async () => {
    upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"n":1}\n\n');
      // never ends on its own
    });
    const proxy = await proxyFor(`${upstream.url}/v1`);
    const stream = streamRequest(`${proxy.url}/v1/chat/completions`, '{"stream":true}');
    await stream.received('"n":1');
    const recorded = upstream.requests[0];
    expect(recorded).toBeDefined();
    stream.req.destroy();
    await expect(recorded?.closed).resolves.toEqual({ finished: false });
  });

  it.each([
    [429, { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }],
    [500, { error: { message: 'The server had an error', type: 'server_error', code: null } }],
  ])('passes an upstream %i through with its status, headers and body', async (status, errorBody) => {
    upstream.handle((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify(errorBody));
    });
    const proxy = await proxyFor(`${upstream.url}/v1`);
    const response = await send(proxy.url, '/v1/embeddings', { method: 'POST', body: '{"input":"x"}' });
    expect(response.status).toBe(status);
    expect(response.headers['retry-after']).toBe('7');
    expect(JSON.parse(response.body)).toEqual(errorBody);
  });

  it('does not follow upstream redirects', async () => {
    upstream.handle((_req, res) => {
      res.writeHead(307, { location: `${upstream.url}/elsewhere` });
      res.end();
    });
    const proxy = await proxyFor(`${upstream.url}/v1`);
    const response = await send(proxy.url, '/v1/models');
    expect(response.status).toBe(307);
    expect(response.headers.location).toBe(`${upstream.url}/elsewhere`);
    expect(upstream.requests.map((entry) => entry.url)).toEqual(['/v1/models']);
  });

  it('answers 404 path_not_allowed for paths outside the allow list without contacting the upstream', async () => {
    const proxy = await proxyFor(`${upstream.url}/v1`);
    for (const path of [
      '/v1/files',
      '/v1/models/../files',
      '/v1/audio/speech',
      '/v2/chat/completions',
      '/',
    ]) {
      const response = await send(proxy.url, path, { method: 'POST', body: '{}' });
      expect(response.status, path).toBe(404);
      expect(JSON.parse(response.body)).toMatchObject({
        error: { type: 'invalid_request_error', code: 'path_not_allowed' },
      });
    }
    expect(upstream.requests).toHaveLength(0);
    const allowed = await send(proxy.url, '/v1/models/gpt-4o-mini');
    expect(allowed.status).toBe(200);
    expect(upstream.requests.map((entry) => entry.url)).toEqual(['/v1/models/gpt-4o-mini']);
  });

  it('refuses a body over the 10 MB cap with 413 (declared or chunked) and stays usable', async () => {
    const proxy = await proxyFor(`${upstream.url}/v1`);
    const tooBig = Buffer.alloc(MAX_BODY_BYTES + 1, 0x61);
    const declared = await send(proxy.url, '/v1/chat/completions', { method: 'POST', body: tooBig });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body)).toMatchObject({
      error: { type: 'invalid_request_error', code: 'request_too_large' },
    });
    const chunked = await send(proxy.url, '/v1/chat/completions', {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body: tooBig,
    });
    expect(chunked.status).toBe(413);
    expect(upstream.requests).toHaveLength(0);

    const atCap = Buffer.alloc(MAX_BODY_BYTES, 0x62);
    const ok = await send(proxy.url, '/v1/chat/completions', { method: 'POST', body: atCap });
    expect(ok.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]?.body.length).toBe(MAX_BODY_BYTES);
  });

  it('answers 502 upstream_unreachable when nothing listens upstream', async () => {
    const port = await freePort();
    const proxy = await proxyFor(`http://127.0.0.1:${port}/v1`);
    const response = await send(proxy.url, '/v1/chat/completions', { method: 'POST', body: '{}' });
    expect(response.status).toBe(502);
    expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'upstream_unreachable' } });
    expect(response.body).not.toContain(REAL_KEY);
  });

  it('answers 504 upstream_timeout when the upstream stays silent past the read timeout', async () => {
    upstream.handle(() => {
      // accept the request, never answer
    });
    const proxy = await proxyFor(`${upstream.url}/v1`, { readTimeoutMs: 200 });
    const response = await send(proxy.url, '/v1/chat/completions', { method: 'POST', body: '{}' });
    expect(response.status).toBe(504);
    expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'upstream_timeout' } });
    await expect(upstream.requests[0]?.closed).resolves.toEqual({ finished: false });
  });

  it('refuses a non-loopback bind unless allowed explicitly', async () => {
    const attempt = startProxy({
      home: home.path,
      env: { OPENAI_BASE_URL: `${upstream.url}/v1`, OPENAI_API_KEY: REAL_KEY },
      host: '0.0.0.0',
      port: 0,
    });
    await expect(attempt).rejects.toBeInstanceOf(ProxyStartError);
    await expect(attempt).rejects.toMatchObject({ code: 'non_loopback', exitCode: 2 });
  });

  it('refuses to start without a credential, with the reference message', async () => {
    const attempt = startProxy({ home: home.path, env: { OPENAI_BASE_URL: `${upstream.url}/v1` }, port: 0 });
    await expect(attempt).rejects.toMatchObject({
      code: 'not_configured',
      exitCode: 2,
      message: 'Not logged into OpenAI. Run `export OPENAI_API_KEY=<your key>` first.',
    });
    await expect(startProxy({ home: home.path, provider: 'nope', env: {}, port: 0 })).rejects.toMatchObject({
      code: 'unknown_provider',
    });
  });

  it('writes proxy.json (0600) while running, refuses a second live proxy, and removes it on stop', async () => {
    const proxy = await proxyFor(`${upstream.url}/v1`, { writeStateFile: true });
    const path = proxyStatePath(home.path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const read = readProxyState(home.path);
    expect(read).toMatchObject({
      kind: 'ok',
      state: { pid: process.pid, host: '127.0.0.1', port: proxy.port, provider: 'openai' },
    });
    expect(readFileSync(path, 'utf8')).not.toContain(REAL_KEY);
    await proxy.stop();
    expect(existsSync(path)).toBe(false);

    // A live process other than this one owns the home's proxy.json: refuse, leave the file alone.
    const other = { pid: process.ppid, host: '127.0.0.1', port: 1, provider: 'openai', started_at: 'x' };
    writeFileSync(path, JSON.stringify(other));
    await expect(proxyFor(`${upstream.url}/v1`, { writeStateFile: true })).rejects.toMatchObject({
      code: 'already_running',
    });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(other);
    writeFileSync(join(home.path, 'proxy.json'), JSON.stringify({ ...other, pid: 2 ** 22 + 12345 }));
    const replacing = await proxyFor(`${upstream.url}/v1`, { writeStateFile: true });
    expect(readProxyState(home.path)).toMatchObject({
      kind: 'ok',
      state: { pid: process.pid, port: replacing.port },
    });
  });
});
