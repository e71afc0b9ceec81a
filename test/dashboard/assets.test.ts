import Fastify from 'fastify';
import { describe, expect, it, onTestFinished } from 'vitest';
import { renderLoginPage } from '../../src/dashboard/auth/login-page.js';
import { DASHBOARD_ASSETS } from '../../src/dashboard/page.js';
import { brandHtml, escapeHtml, htmlDocument, scriptJson } from '../../src/http/html.js';
import { installSecurityHeaders } from '../../src/http/security-headers.js';
import { contentTypeFor, readWebAsset, registerAssets, staticAsset } from '../../src/http/static-assets.js';

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
    // The web chat's shell has no referrer policy or favicon line and lets the page fill a notch.
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
