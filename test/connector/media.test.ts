import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecret, mintUpgradeToken } from '../../src/auth/index.js';
import { createTenant } from '../../src/connector/admin.js';
import { connectorConfigFromEnv } from '../../src/connector/config.js';
import { type RunningConnector, startConnector } from '../../src/connector/connector.js';
import { MediaStore } from '../../src/connector/media.js';
import { mediaContentType, mediaFilename } from '../../src/connector/media-routes.js';
import { WebChatAdapter } from '../../src/connector/platforms/webchat/adapter.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { MEDIA_MAX_BYTES } from '../../src/protocol/index.js';
import { tempDir } from '../support/processes.js';

/**
 * The media re-host plane (current §7.3) on two connector instances that share one store file and
 * one media folder, as instances behind a balancer share a database and a volume.
 */

const silent = pino({ level: 'silent' });
const dir = tempDir('media');
const mediaDir = join(dir.path, 'media');
const db = join(dir.path, 'connector.db');
let a: RunningConnector;
let b: RunningConnector;
const bearer: Record<'acme' | 'other', string> = { acme: '', other: '' };

async function gatewayOf(store: SqliteStore, tenantName: string, gatewayId: string): Promise<string> {
  const { tenant } = await createTenant(store, tenantName);
  const secret = generateSecret();
  await store.putGatewaySecret({
    id: gatewayId,
    tenantId: tenant.id,
    secret,
    platform: 'webchat',
    botId: '',
    endpoint: '',
    now: Date.now(),
    rotationWindowMs: 0,
  });
  return `Bearer ${mintUpgradeToken(gatewayId, secret, 3000)}`;
}

async function start(): Promise<RunningConnector> {
  return startConnector({
    config: connectorConfigFromEnv({ RELAY_MEDIA_DIR: mediaDir }, { port: 0, db }),
    store: SqliteStore.open(db),
    adapters: [new WebChatAdapter({ log: silent })],
    log: silent,
    version: 'test',
  });
}

beforeAll(async () => {
  a = await start();
  b = await start();
  bearer.acme = await gatewayOf(a.store as SqliteStore, 'acme', 'gw-media');
  bearer.other = await gatewayOf(a.store as SqliteStore, 'other', 'gw-other');
});

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  dir.remove();
});

async function upload(
  base: string,
  body: Uint8Array | undefined,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${base}/relay/media`, {
    method: 'POST',
    headers: { authorization: bearer.acme, 'content-type': 'image/png', ...headers },
    body,
  });
}

/** A chunked upload of `size` bytes (no Content-Length), resolving with the status. */
function uploadChunked(base: string, size: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}/relay/media`,
      { method: 'POST', headers: { authorization: bearer.acme, 'transfer-encoding': 'chunked' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    const chunk = Buffer.alloc(256 * 1024, 7);
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent >= size) return this.push(null);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    source.pipe(req);
    req.on('close', () => source.destroy());
  });
}

const filesIn = (path: string) => (existsSync(path) ? readdirSync(path) : []);

describe('POST /relay/media and GET /relay/media/{id}', () => {
  it('stores an upload on one instance and serves the same bytes, type and name from the other', async () => {
    const bytes = randomBytes(300_000);
    const response = await upload(a.url, bytes, { 'x-media-filename': '../../etc/café photo.png' });
    expect(response.status).toBe(200);
    const { id, size } = (await response.json()) as { id: string; size: number };
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(size).toBe(bytes.length);

    const fetched = await fetch(`${b.url}/relay/media/${id}`, { headers: { authorization: bearer.acme } });
    expect(fetched.status).toBe(200);
    expect(fetched.headers.get('content-type')).toBe('image/png');
    expect(fetched.headers.get('content-length')).toBe(String(bytes.length));
    expect(fetched.headers.get('content-disposition')).toBe(
      `attachment; filename="caf_ photo.png"; filename*=UTF-8''caf%C3%A9%20photo.png`,
    );
    expect(Buffer.from(await fetched.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('is scoped to the tenant: another tenant’s gateway gets the 404 of an unknown id', async () => {
    const response = await upload(a.url, Buffer.from('private'));
    const { id } = (await response.json()) as { id: string };
    const asOther = await fetch(`${a.url}/relay/media/${id}`, { headers: { authorization: bearer.other } });
    const unknown = await fetch(`${a.url}/relay/media/${'0'.repeat(32)}`, {
      headers: { authorization: bearer.acme },
    });
    const malformed = await fetch(`${a.url}/relay/media/..%2Fconnector.db`, {
      headers: { authorization: bearer.acme },
    });
    for (const r of [asOther, unknown, malformed]) {
      expect(r.status).toBe(404);
      expect(await r.json()).toEqual({ error: 'no such media' });
    }
  });

  it('wants the gateway’s upgrade token: 401 without it or with a bad one, nothing stored', async () => {
    const before = filesIn(mediaDir).length;
    // Signed with a wrong secret (tampering with the last character can leave the signature intact).
    const forged = `Bearer ${mintUpgradeToken('gw-media', generateSecret(), 3000)}`;
    for (const authorization of [undefined, 'Bearer nope', forged]) {
      const post = await fetch(`${a.url}/relay/media`, {
        method: 'POST',
        headers: authorization ? { authorization } : {},
        body: Buffer.from('x'),
      });
      expect(post.status).toBe(401);
      const get = await fetch(`${a.url}/relay/media/${'0'.repeat(32)}`, {
        headers: authorization ? { authorization } : {},
      });
      expect(get.status).toBe(401);
    }
    expect(filesIn(mediaDir).length).toBe(before);
  });

  it('refuses an upload over 25 MB with 413 — declared or streamed — and keeps nothing of it; an empty one with 400', async () => {
    const before = filesIn(mediaDir).sort();
    const declared = await upload(a.url, Buffer.alloc(MEDIA_MAX_BYTES + 1));
    expect(declared.status).toBe(413);
    expect(await uploadChunked(a.url, MEDIA_MAX_BYTES + 512 * 1024)).toBe(413);
    const empty = await upload(a.url, new Uint8Array(0));
    expect(empty.status).toBe(400);
    expect(await empty.json()).toEqual({ error: 'empty media upload' });
    expect(filesIn(mediaDir).sort()).toEqual(before);
    // Exactly the cap is fine.
    expect(await uploadChunked(a.url, MEDIA_MAX_BYTES)).toBe(200);
  });
});

describe('MediaStore', () => {
  it('forgets media after the TTL: a read of an expired id and the sweep both delete the files', async () => {
    let now = 1_000_000;
    const path = join(dir.path, 'ttl');
    const store = new MediaStore(path, { ttlMs: 60_000, now: () => now });
    const first = await store.put('t1', Readable.from([Buffer.from('one')]), {
      contentType: 'text/plain',
      filename: 'a.txt',
    });
    const second = await store.put('t1', Readable.from([Buffer.from('two')]), {
      contentType: 'text/plain',
      filename: 'b.txt',
    });
    if (!first.ok || !second.ok) throw new Error('not stored');
    expect(store.open('t1', first.id)?.meta.size).toBe(3);
    now += 60_000;
    expect(store.open('t1', first.id)).toBeNull();
    expect(filesIn(path).filter((name) => name.startsWith(first.id))).toEqual([]);
    expect(store.sweep()).toBe(1);
    expect(filesIn(path)).toEqual([]);
  });

  it('reads only the type/subtype of a Content-Type and only the base name of a file name', () => {
    expect(mediaContentType('image/PNG; charset=x')).toBe('image/png');
    expect(mediaContentType('text/html<script>')).toBe('application/octet-stream');
    expect(mediaContentType(undefined)).toBe('application/octet-stream');
    expect(mediaFilename('C:\\Users\\x\\report\u0000.pdf')).toBe('report.pdf');
    expect(mediaFilename('..')).toBe('');
    expect(mediaFilename('a'.repeat(400))).toHaveLength(255);
  });

  it('answers at once for a body already closed or consumed (a queued upload whose visitor left)', async () => {
    const store = new MediaStore(join(dir.path, 'closed'));
    const closed = Readable.from([Buffer.from('x')]);
    closed.destroy();
    expect(await store.put('t1', closed, { contentType: 'text/plain', filename: 'x' })).toMatchObject({
      ok: false,
      reason: 'aborted',
    });
  });
});
