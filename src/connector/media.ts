import { randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  type ReadStream,
  readdirSync,
  renameSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isJsonObject, readJsonFile, removeFile, writeJsonAtomic } from '../home/atomic-file.js';
import { MEDIA_MAX_BYTES, MEDIA_TTL_MS } from '../protocol/index.js';

/**
 * The media re-host plane's storage (current §7.3): each upload is a file named by a 128-bit random
 * id, with its metadata (owning tenant, type, name, expiry) beside it as `<id>.json`. Everything
 * is in one directory, so instances that share it (a shared volume) serve each other's media.
 * Uploads are streamed to disk under a temporary name and renamed only when complete and within
 * the cap, so a reader never sees half a file and a refused upload leaves nothing behind.
 */

export interface MediaMeta {
  tenantId: string;
  size: number;
  contentType: string;
  filename: string;
  createdAt: number;
  expiresAt: number;
}

export type MediaPut =
  | { ok: true; id: string; size: number }
  | { ok: false; reason: 'too_large' | 'empty' | 'aborted'; detail: string };

const ID_PATTERN = /^[0-9a-f]{32}$/;
const TEMP_PREFIX = '.upload-';

export function isMediaId(value: string): boolean {
  return ID_PATTERN.test(value);
}

class TooLarge extends Error {}

export class MediaStore {
  private readonly maxBytes: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private dirReady = false;

  constructor(
    readonly dir: string,
    options: { maxBytes?: number; ttlMs?: number; now?: () => number } = {},
  ) {
    this.maxBytes = options.maxBytes ?? MEDIA_MAX_BYTES;
    this.ttlMs = options.ttlMs ?? MEDIA_TTL_MS;
    this.now = options.now ?? Date.now;
  }

  /** Created on the first upload, so a connector that never sees media leaves no folder behind. */
  private ensureDir(): void {
    if (this.dirReady) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.dirReady = true;
  }

  /** Stream `body` to disk as a new media file owned by `tenantId`. */
  async put(
    tenantId: string,
    body: Readable,
    info: { contentType: string; filename: string },
  ): Promise<MediaPut> {
    // A body already closed or consumed would never end the pipeline below: answer at once.
    if (body.destroyed || body.readableEnded || (body as { readableAborted?: boolean }).readableAborted)
      return { ok: false, reason: 'aborted', detail: 'the upload ended before its body was read' };
    this.ensureDir();
    const id = randomBytes(16).toString('hex');
    const temp = join(this.dir, `${TEMP_PREFIX}${id}`);
    let size = 0;
    const max = this.maxBytes;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        if (size > max) done(new TooLarge());
        else done(null, chunk);
      },
    });
    // `body` is piped, not part of the pipeline: on a refusal it is only unpiped and paused, so the
    // request stays able to carry a 413 back (a destroyed request would reset the connection).
    const written = pipeline(counter, createWriteStream(temp, { mode: 0o600 }));
    const onClose = () => {
      if (!body.readableEnded) counter.destroy(new Error('aborted'));
    };
    const onError = (error: Error) => counter.destroy(error);
    body.once('close', onClose);
    body.once('error', onError);
    body.pipe(counter);
    try {
      await written;
    } catch (error) {
      body.unpipe(counter);
      body.pause();
      removeFile(temp);
      if (error instanceof TooLarge)
        return { ok: false, reason: 'too_large', detail: `larger than ${max} bytes` };
      return { ok: false, reason: 'aborted', detail: 'the upload ended before its body did' };
    } finally {
      body.off('close', onClose);
      body.off('error', onError);
    }
    if (size === 0) {
      removeFile(temp);
      return { ok: false, reason: 'empty', detail: 'an empty upload' };
    }
    const now = this.now();
    const meta: MediaMeta = {
      tenantId,
      size,
      contentType: info.contentType,
      filename: info.filename,
      createdAt: now,
      expiresAt: now + this.ttlMs,
    };
    // Metadata first: a file without it is never served, and the sweep removes it.
    writeJsonAtomic(join(this.dir, `${id}.json`), meta, 0o600);
    renameSync(temp, join(this.dir, id));
    return { ok: true, id, size };
  }

  /**
   * The media `id` for `tenantId`, or null: unknown, expired (then deleted), or another tenant's —
   * indistinguishable to the caller, so an id tells nothing about whose it is.
   */
  open(tenantId: string, id: string): { meta: MediaMeta; stream: () => ReadStream } | null {
    if (!isMediaId(id)) return null;
    const meta = this.meta(id);
    if (!meta) return null;
    if (meta.expiresAt <= this.now()) {
      this.remove(id);
      return null;
    }
    if (meta.tenantId !== tenantId) return null;
    const path = join(this.dir, id);
    try {
      statSync(path);
    } catch {
      return null;
    }
    return { meta, stream: () => createReadStream(path) };
  }

  /**
   * The media `id` whoever owns it, or null when unknown or expired: for a platform adapter
   * sending a file whose tenant the op dispatcher already checked.
   */
  openUnscoped(id: string): { meta: MediaMeta; stream: () => ReadStream } | null {
    const meta = isMediaId(id) ? this.meta(id) : null;
    return meta ? this.open(meta.tenantId, id) : null;
  }

  /** Delete expired media, orphaned files and stale partial uploads; returns how many went. */
  sweep(): number {
    const now = this.now();
    let removed = 0;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return 0;
    }
    const ids = new Set<string>();
    for (const name of names) {
      if (name.startsWith(TEMP_PREFIX)) {
        // An upload still streaming is younger than the longest request; older ones were cut off.
        if (this.ageMs(name, now) > this.ttlMs && removeFile(join(this.dir, name))) removed++;
        continue;
      }
      const id = name.endsWith('.json') ? name.slice(0, -'.json'.length) : name;
      if (isMediaId(id)) ids.add(id);
    }
    for (const id of ids) {
      const meta = this.meta(id);
      // Without metadata (a crash between the two writes, or a removed file): gone after a minute.
      if (
        meta ? meta.expiresAt <= now : this.ageMs(id, now) > 60_000 || this.ageMs(`${id}.json`, now) > 60_000
      ) {
        this.remove(id);
        removed++;
      }
    }
    return removed;
  }

  private meta(id: string): MediaMeta | null {
    const read = readJsonFile(join(this.dir, `${id}.json`));
    if (read.kind !== 'ok' || !isJsonObject(read.value)) return null;
    const v = read.value;
    if (
      typeof v.tenantId !== 'string' ||
      typeof v.size !== 'number' ||
      typeof v.contentType !== 'string' ||
      typeof v.filename !== 'string' ||
      typeof v.createdAt !== 'number' ||
      typeof v.expiresAt !== 'number'
    )
      return null;
    return {
      tenantId: v.tenantId,
      size: v.size,
      contentType: v.contentType,
      filename: v.filename,
      createdAt: v.createdAt,
      expiresAt: v.expiresAt,
    };
  }

  private remove(id: string): void {
    removeFile(join(this.dir, id));
    removeFile(join(this.dir, `${id}.json`));
  }

  private ageMs(name: string, now: number): number {
    try {
      return now - statSync(join(this.dir, name)).mtimeMs;
    } catch {
      return 0;
    }
  }
}
