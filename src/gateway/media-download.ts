import { createWriteStream, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Logger } from 'pino';
import { isUsableSecret, mintUpgradeToken } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import { removeFile } from '../home/atomic-file.js';
import {
  connectorHttpBase,
  MEDIA_MAX_BYTES,
  MEDIA_TTL_MS,
  type MessageEvent,
  mediaIdFromUrl,
} from '../protocol/index.js';

/**
 * Inbound files are re-hosted on the connector for about an hour (current §7.3), so the gateway
 * fetches them on receipt into `$HERMES_HOME/media/` and hands agents a `local_path` beside each
 * URL: agents never need the relay's credentials. The bearer goes only to the connector's own
 * `/relay/media/` URLs (same scheme, host and port as the relay base, current §14 case 34); other
 * URLs are left for the agent as they are, never fetched here.
 */

export interface MediaDownloaderOptions {
  relayUrl: string;
  credentials: () => { gatewayId?: string | undefined; secret?: string | undefined };
  dir: string;
  log: Logger;
  fetchImpl?: typeof fetch;
}

const DOWNLOAD_TIMEOUT_MS = 30_000;

/** True when `url` is one of the connector's re-host URLs, the only ones the bearer may go to. */
export function isConnectorMediaUrl(url: string, relayUrl: string): boolean {
  if (!mediaIdFromUrl(url)) return false;
  try {
    const target = new URL(url);
    const base = new URL(connectorHttpBase(relayUrl));
    return target.protocol === base.protocol && target.host === base.host;
  } catch {
    return false;
  }
}

export class MediaDownloader {
  private readonly doFetch: typeof fetch;

  constructor(private readonly options: MediaDownloaderOptions) {
    this.doFetch = options.fetchImpl ?? fetch;
  }

  /** The event with `local_path` on each re-hosted media item it could fetch. Never throws. */
  async localize(event: MessageEvent): Promise<MessageEvent> {
    const media = event.media;
    if (!media?.length) return event;
    this.sweep();
    const localized = await Promise.all(
      media.map(async (item) => {
        if (!isConnectorMediaUrl(item.url, this.options.relayUrl)) return item;
        const path = await this.download(item.url);
        return path ? { ...item, local_path: path } : item;
      }),
    );
    return { ...event, media: localized };
  }

  private async download(url: string): Promise<string | undefined> {
    const id = url.slice(url.lastIndexOf('/') + 1);
    const path = join(this.options.dir, id);
    try {
      if (statSync(path).isFile()) return path; // fetched already (a replay of the same event)
    } catch {
      // not yet
    }
    const { gatewayId, secret } = this.options.credentials();
    if (!gatewayId || !isUsableSecret(secret)) return undefined;
    const temp = `${path}.part`;
    try {
      mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
      const response = await this.doFetch(url, {
        headers: { authorization: `Bearer ${mintUpgradeToken(gatewayId, secret)}` },
        redirect: 'manual',
        signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS),
      });
      const length = Number(response.headers.get('content-length'));
      if (response.status !== 200 || !response.body || length > MEDIA_MAX_BYTES)
        throw new Error(`the connector answered HTTP ${response.status}`);
      await pipeline(
        Readable.fromWeb(response.body as WebReadableStream),
        createWriteStream(temp, { mode: 0o600 }),
      );
      renameSync(temp, path);
      return path;
    } catch (error) {
      removeFile(temp);
      this.options.log.warn({ id, err: errorMessage(error) }, 'inbound media not downloaded');
      return undefined;
    }
  }

  /** Files older than the connector's TTL are of no use to anyone any more. */
  private sweep(): void {
    let names: string[];
    try {
      names = readdirSync(this.options.dir);
    } catch {
      return;
    }
    const cutoff = Date.now() - MEDIA_TTL_MS;
    for (const name of names) {
      const path = join(this.options.dir, name);
      try {
        if (statSync(path).mtimeMs < cutoff) removeFile(path);
      } catch {
        // gone meanwhile
      }
    }
  }
}
