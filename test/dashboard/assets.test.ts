import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { dashboardPage } from '../../src/cli/dashboard-page.js';
import { ADMIN_ASSETS_PREFIX, registerAdminPage } from '../../src/connector/admin-console/page.js';
import { renderLoginPage } from '../../src/dashboard/auth/login-page.js';
import { DASHBOARD_ASSETS } from '../../src/dashboard/page.js';
import { startDashboard } from '../../src/dashboard/server.js';
import { brandHtml, escapeHtml, htmlDocument, scriptJson } from '../../src/http/html.js';
import { installSecurityHeaders } from '../../src/http/security-headers.js';
import {
  BASE_STYLESHEET,
  contentTypeFor,
  readWebAsset,
  registerAssets,
  sharedWebModules,
  staticAsset,
} from '../../src/http/static-assets.js';

/**
 * The page files as static assets (`registerAssets`, shared by the dashboard and the web chat) and
 * the helpers of the server-rendered page shells.
 */

function app(files: Parameters<typeof registerAssets>[2], prefix = '/assets/') {
  const instance = Fastify({ logger: false });
  onTestFinished(() => instance.close());
  installSecurityHeaders(instance);
  registerAssets(instance, prefix, files);
  return instance;
}

describe('registerAssets', () => {
  it('serves content-addressed names for good, with an ETag and 304 on a match', async () => {
    const instance = app(DASHBOARD_ASSETS);
    for (const [name, asset] of Object.entries(DASHBOARD_ASSETS)) {
      if (name in sharedWebModules()) continue; // not content-addressed: see the shared-modules tests
      const res = await instance.inject({ url: `/assets/${name}` });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe(asset.type);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers.etag).toBe(`"${asset.version}"`);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.body).toBe(asset.body);
      const again = await instance.inject({
        url: `/assets/${name}`,
        headers: { 'if-none-match': `W/"nope", "${asset.version}"` },
      });
      expect(again.statusCode).toBe(304);
      expect(again.body).toBe('');
    }
  });

  it('caches a `?v=` URL for good only when the version is the file’s; revalidates the rest', async () => {
    const asset = staticAsset('app.js', 'console.log(1);\n');
    const instance = app({ 'app.js': asset }, '/chat/assets/');
    const versioned = await instance.inject({ url: `/chat/assets/app.js?v=${asset.version}` });
    expect(versioned.headers['cache-control']).toContain('immutable');
    for (const url of ['/chat/assets/app.js', '/chat/assets/app.js?v=000000000000']) {
      const res = await instance.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['cache-control'], url).toBe('no-cache, max-age=0');
      expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
    }
    expect((await instance.inject({ url: '/chat/assets/other.js' })).statusCode).toBe(404);
    expect((await instance.inject({ method: 'HEAD', url: '/chat/assets/app.js' })).statusCode).toBe(200);
  });

  it('picks the content type by extension', () => {
    expect(contentTypeFor('a.js')).toBe('text/javascript; charset=utf-8');
    expect(contentTypeFor('a.CSS')).toBe('text/css; charset=utf-8');
    expect(contentTypeFor('a.umd.min.js')).toBe('text/javascript; charset=utf-8');
    expect(contentTypeFor('a.bin')).toBe('application/octet-stream');
  });
});

describe('page shell helpers', () => {
  it('escapes HTML text and attribute values', () => {
    expect(escapeHtml(`<a href="x" title='y'>&amp;</a>`)).toBe(
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;',
    );
  });

  it('embeds JSON that cannot end its script element', () => {
    const value = { text: '</script><!-- & \u2028\u2029' };
    const json = scriptJson(value);
    expect(json).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(json)).toEqual(value);
  });

  it('inlines the compiled login script and style, exactly as built', () => {
    const html = renderLoginPage({
      providers: [{ name: 'basic', displayName: 'Password' }],
      next: '/',
      prefix: '',
    });
    expect(html).toContain(`<script>${readWebAsset('dashboard/web/login.js').body}</script>`);
    expect(html).toContain(`<style>${readWebAsset('dashboard/web/login.css').body}</style>`);
  });

  it('wraps every page in one document shell, escaping the title, the URLs and the config', () => {
    const html = htmlDocument(
      {
        title: 'A <b> & "c"',
        stylesheets: ['/x.css?v=1&a=<'],
        deferredScripts: ['/md.js'],
        modules: ['/app.js'],
        config: { id: 'cfg', value: { token: '</script>' } },
        noReferrer: true,
        noFavicon: true,
      },
      '<main id="main">hi</main>',
    );
    expect(html.startsWith('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">')).toBe(true);
    expect(html).toContain('<title>A &lt;b&gt; &amp; &quot;c&quot;</title>');
    expect(html).toContain('<link rel="stylesheet" href="/x.css?v=1&amp;a=&lt;">');
    expect(html).toContain('<meta name="referrer" content="no-referrer">');
    expect(html).not.toContain('</script><');
    expect(html.indexOf('src="/md.js" defer')).toBeLessThan(html.indexOf('type="module" src="/app.js"'));
    expect(html).toMatch(/<\/head>\n<body>\n<main id="main">hi<\/main>\n<\/body>\n<\/html>\n$/);
    // A shell asking for neither has no referrer policy or favicon line; it may fill a notch.
    const plain = htmlDocument({ title: 't', viewportFitCover: true }, 'x');
    expect(plain).toContain('initial-scale=1, viewport-fit=cover');
    expect(plain).not.toContain('referrer');
    expect(plain).not.toContain('rel="icon"');
  });

  it('renders the shared brand block with an optional subtitle id and extra markup', () => {
    const brand = brandHtml('Gate <1>', 'Sub', { subtitleId: 'meta', extra: '<span>v1</span>' });
    expect(brand).toContain('<h1>Gate &lt;1&gt;</h1>');
    expect(brand).toContain('<p id="meta" class="sub">Sub</p>');
    expect(brand).toContain('<span>v1</span>');
    expect(brandHtml('a', 'b')).toContain('<p class="sub">b</p>');
  });
});

/**
 * What the dashboard and the admin console share (review findings D1, D2): one base style sheet in
 * front of each page's own, and one event-stream module (`src/http/web/sse.ts`, importing the one
 * backoff) served beside each page's script — by the real dashboard server and the admin console's
 * own registration.
 */
describe('the pages’ shared browser code', () => {
  /** The assets of both servers as served: GET <prefix><name> → status, type, cache, body. */
  async function servers() {
    const home = mkdtempSync(join(tmpdir(), 'hermes-assets-'));
    onTestFinished(() => rmSync(home, { recursive: true, force: true }));
    const dashboard = await startDashboard({
      home,
      host: '127.0.0.1',
      port: 0,
      log: pino({ level: 'silent' }),
      version: 'test',
      restartDrainTimeout: 5,
      env: { HERMES_HOME: home },
      ...dashboardPage,
    });
    onTestFinished(() => dashboard.stop());
    const connector = Fastify({ logger: false });
    onTestFinished(() => connector.close());
    installSecurityHeaders(connector);
    registerAdminPage(connector);
    const adminUrl = await connector.listen({ host: '127.0.0.1', port: 0 });
    return [
      { label: 'dashboard', prefix: `${dashboard.url}/assets/`, page: `${dashboard.url}/` },
      { label: 'admin console', prefix: `${adminUrl}${ADMIN_ASSETS_PREFIX}`, page: `${adminUrl}/admin` },
    ];
  }

  /** The page's own style sheet and script, as the page links them (absolute URLs). */
  async function linked(page: string): Promise<{ css: string; js: string }> {
    const html = await (await fetch(page)).text();
    const href = /<link rel="stylesheet" href="([^"]+)"/.exec(html)?.[1];
    const src = /<script type="module" src="([^"]+)"/.exec(html)?.[1];
    if (!href || !src) throw new Error(`no style sheet or module script in ${page}`);
    return { css: new URL(href, page).toString(), js: new URL(src, page).toString() };
  }

  it('serves sse.js and backoff.js beside each page’s script, as JavaScript, and every relative import resolves', async () => {
    for (const server of await servers()) {
      const { js } = await linked(server.page);
      expect(js.startsWith(server.prefix), server.label).toBe(true);
      // Follow the imports from the page script the way the browser does: relative to the script.
      const seen = new Set<string>();
      const queue = [js];
      while (queue.length > 0) {
        const url = queue.shift() as string;
        if (seen.has(url)) continue;
        seen.add(url);
        const res = await fetch(url);
        expect(res.status, url).toBe(200);
        expect(res.headers.get('content-type'), url).toBe('text/javascript; charset=utf-8');
        const body = await res.text();
        for (const m of body.matchAll(/^(?:import|export)\b[^'"]*\bfrom '([^']+)'/gm))
          queue.push(new URL(m[1] as string, url).toString());
      }
      const names = [...seen].map((url) => new URL(url).pathname.split('/').pop());
      expect(names.slice(1).sort(), server.label).toEqual(['backoff.js', 'sse.js']);
      for (const [name, asset] of Object.entries(sharedWebModules())) {
        const res = await fetch(`${server.prefix}${name}`);
        expect(await res.text(), `${server.label} ${name}`).toBe(asset.body);
        // Unversioned URLs: revalidated, so they never lag behind the script importing them.
        expect(res.headers.get('cache-control'), `${server.label} ${name}`).toBe('no-cache, max-age=0');
      }
    }
    expect(sharedWebModules()['sse.js']?.body).toBe(readWebAsset('http/web/sse.js').body);
    expect(sharedWebModules()['backoff.js']?.body).toBe(readWebAsset('common/backoff.js').body);
  });

  it('serves each page’s style sheet as base.css followed by its own, with the tokens once', async () => {
    const base = readWebAsset(BASE_STYLESHEET).body;
    expect(base).toContain('--bg:');
    const own = {
      dashboard: readWebAsset('dashboard/web/app.css').body,
      'admin console': readWebAsset('connector/admin-console/web/admin.css').body,
    };
    for (const server of await servers()) {
      const { css } = await linked(server.page);
      const res = await fetch(css);
      expect(res.status, css).toBe(200);
      expect(res.headers.get('content-type'), css).toBe('text/css; charset=utf-8');
      const body = await res.text();
      expect(body, server.label).toBe(`${base}\n${own[server.label as keyof typeof own]}`);
      // The tokens exist once: one light and one dark `:root`, one of each custom property.
      expect(body.match(/:root\s*\{/g), server.label).toHaveLength(2);
      expect(body.match(/--bg:/g), server.label).toHaveLength(2);
      expect(body.match(/--focus:/g), server.label).toHaveLength(2);
      expect(body.match(/box-sizing: border-box/g), server.label).toHaveLength(1);
      // The version in the URL covers both files.
      const version = /[.=]([0-9a-f]{12})(?:\.css)?$/.exec(css)?.[1];
      expect(version, css).toBe(staticAsset('x.css', body).version);
    }
  });

  /** The served modules, in a folder of their own as the browser sees them, loaded in Node. */
  async function sseModule(): Promise<typeof import('../../src/http/web/sse.js')> {
    const dir = mkdtempSync(join(tmpdir(), 'hermes-sse-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    for (const [name, asset] of Object.entries(sharedWebModules()))
      writeFileSync(join(dir, name), asset.body);
    return import(pathToFileURL(join(dir, 'sse.js')).href);
  }

  it('parses the event stream: events across chunk edges, CRLF, comments, an event whose handler throws', async () => {
    const { readEventStream, parseEventBlock, eventJson } = await sseModule();
    expect(parseEventBlock(': ping')).toBeNull();
    expect(parseEventBlock('event: status\ndata: {"a":1}\ndata:2\nid: 7\nretry: 5')).toEqual({
      event: 'status',
      data: '{"a":1}\n2',
    });
    expect(parseEventBlock('data')).toEqual({ event: 'message', data: '' });
    expect(eventJson({ event: 'x', data: '{"a":' })).toBeUndefined();
    const chunks = [
      ': ping\n\nevent: status\r\nda',
      'ta: {"n":1}\r\n\r',
      '\nevent: boom\ndata: {}\n\n',
      'data: "tail"\n\n',
    ];
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
        controller.close();
      },
    });
    const events: string[] = [];
    let seenChunks = 0;
    const errors: unknown[] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => errors.push(args[0]);
    try {
      await readEventStream(body as Parameters<typeof readEventStream>[0], {
        onEvent(event) {
          if (event.event === 'boom') throw new Error('handler failed');
          events.push(`${event.event}=${JSON.stringify(eventJson(event))}`);
        },
        onChunk: () => {
          seenChunks += 1;
        },
      });
    } finally {
      console.error = consoleError;
    }
    expect(events).toEqual(['status={"n":1}', 'message="tail"']);
    expect(seenChunks).toBe(chunks.length);
    expect(errors).toEqual(['event stream: the boom event was skipped']);
  });

  it('waits before reconnecting by the one backoff: 1 s doubling to 30 s, equal jitter', async () => {
    const { reconnectDelay, RECONNECT_POLICY } = await sseModule();
    expect(RECONNECT_POLICY).toEqual({ baseMs: 1000, capMs: 30_000, jitter: 'equal' });
    const low = [0, 1, 2, 3, 4, 5, 6, 40].map((failures) => reconnectDelay(failures, () => 0));
    const high = [0, 1, 2, 3, 4, 5, 6, 40].map((failures) => reconnectDelay(failures, () => 1));
    expect(low).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    expect(high).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect(Number.isInteger(reconnectDelay(2, () => 0.123))).toBe(true);
  });
});
