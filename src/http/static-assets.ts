import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * Static files of our pages (the browser code under `src/**\/web/`, compiled by
 * `tsconfig.web.json` into `dist/web/`, and vendored browser builds from node_modules).
 *
 * Files are read once, when a server starts; `registerAssets` serves them from memory with a
 * content type by extension and an ETag. A URL that carries the file's hash — `?v=<hash>`, or a
 * content-addressed name like `dashboard.<hash>.js` — is cached for good (`immutable`); any other
 * URL is revalidated on every use (`no-cache, max-age=0`), so a module imported without a version
 * (the web chat's `markdown.js`) never lags behind the page script that imports it. The security headers come from the app's
 * `installSecurityHeaders` hook; the escapes of the HTML shells are in `html.ts`.
 */

export interface StaticAsset {
  /** The file's text (every asset of ours is text: scripts, style sheets). */
  readonly body: string;
  /** The Content-Type header. */
  readonly type: string;
  /** The first 12 hex digits of the SHA-256 of `body`: the ETag and the `?v=` of versioned URLs. */
  readonly version: string;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** The Content-Type for a file name, by its extension. */
export function contentTypeFor(name: string): string {
  return CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

/** The first 12 hex digits of the SHA-256 of `body`. */
function contentHash(body: string): string {
  return createHash('sha256').update(body, 'utf8').digest('hex').slice(0, 12);
}

/** An asset from its text; `name` picks the content type. */
export function staticAsset(name: string, body: string): StaticAsset {
  return { body, type: contentTypeFor(name), version: contentHash(body) };
}

/** Read a file (once: keep the result) as an asset. */
export function readAsset(path: string): StaticAsset {
  return staticAsset(path, readFileSync(path, 'utf8'));
}

/** The package's root folder: the nearest folder above this module with a package.json. */
function packageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dir === parse(dir).root) return start;
  }
}

/** Where `tsconfig.web.json` puts the browser code (and the build copies the style sheets). */
const WEB_BUILD_DIR = join(packageRoot(), 'dist', 'web');

/**
 * Read a file of the browser build, by its path below `src/` (`dashboard/web/app.js` for
 * `src/dashboard/web/app.ts`).
 */
export function readWebAsset(relativePath: string): StaticAsset {
  return staticAsset(relativePath, readWebText(relativePath));
}

function readWebText(relativePath: string): string {
  const path = join(WEB_BUILD_DIR, relativePath);
  if (!existsSync(path))
    throw new Error(`${path} is missing: the browser code is built by \`npm run build\` (tsconfig.web.json)`);
  return readFileSync(path, 'utf8');
}

/** The style sheet every page of ours starts with: design tokens (light, dark) and base rules. */
export const BASE_STYLESHEET = 'http/web/base.css';

/**
 * A page's style sheet: `base.css`, then the page's own (by its path below `src/`), joined into
 * one asset — one `<link>`, and one content hash that covers both files.
 */
export function readPageStyleSheet(relativePath: string): StaticAsset {
  return staticAsset(relativePath, `${readWebText(BASE_STYLESHEET)}\n${readWebText(relativePath)}`);
}

let sharedModules: Readonly<Record<string, StaticAsset>> | undefined;

/**
 * The browser modules shared by the pages' scripts (name → asset), read on first use and kept: the
 * event-stream client (`src/http/web/sse.ts`) and the one backoff (`src/common/backoff.ts`) it
 * imports. A page script imports them as `./sse.js`, so a server registers them under the same
 * prefix as that script; their names carry no version, so they are revalidated on each use and
 * never lag behind the script that imports them.
 */
export function sharedWebModules(): Readonly<Record<string, StaticAsset>> {
  sharedModules ??= {
    'sse.js': readWebAsset('http/web/sse.js'),
    'backoff.js': readWebAsset('common/backoff.js'),
  };
  return sharedModules;
}

/** A URL of `name` under `prefix` that carries its version, so it may be cached for good. */
export function versionedUrl(prefix: string, name: string, asset: StaticAsset): string {
  return `${prefix}${name}?v=${asset.version}`;
}

/** Cache-Control of a URL that carries the file's version. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Cache-Control of any other URL: may be stored, but is revalidated (ETag) on every use. */
const REVALIDATE = 'no-cache, max-age=0';

function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const value = tag.trim();
    return value === '*' || value === etag || value === `W/${etag}`;
  });
}

/**
 * Serve `files` (name → asset) at `GET <prefix><name>`. A URL carrying the file's version (its
 * `?v=`, or the version inside the name) is `immutable`, others are revalidated; both get an ETag and
 * answer a matching `If-None-Match` with 304.
 */
export function registerAssets(
  app: FastifyInstance,
  prefix: string,
  files: Readonly<Record<string, StaticAsset>>,
): void {
  for (const [name, asset] of Object.entries(files)) {
    const etag = `"${asset.version}"`;
    const contentAddressed = name.includes(asset.version);
    app.get(
      `${prefix}${name}`,
      async (request: FastifyRequest<{ Querystring: { v?: unknown } }>, reply: FastifyReply) => {
        const versioned = contentAddressed || request.query.v === asset.version;
        reply.header('cache-control', versioned ? IMMUTABLE : REVALIDATE).header('etag', etag);
        if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send();
        return reply.type(asset.type).send(asset.body);
      },
    );
  }
}
