import { isUsableSecret, mintUpgradeToken } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import {
  connectorHttpBase,
  HEADER_MEDIA_FILENAME,
  MEDIA_FILENAME_MAX_CHARS,
  MEDIA_MAX_BYTES,
  MEDIA_PATH,
  mediaUrl,
} from '../protocol/index.js';

/**
 * Uploads an agent's file to the connector's media plane (current §7.3) so `send_media` can name
 * it: `POST {connector}/relay/media` with a fresh upgrade token, answered `{id, size}`. An empty or
 * oversized file is refused here, without a request.
 */

export type UploadResult = { ok: true; url: string } | { ok: false; error: string };

export interface MediaUploader {
  upload(file: { bytes: Uint8Array; filename: string; mime: string }): Promise<UploadResult>;
}

const UPLOAD_TIMEOUT_MS = 30_000;

export function connectorMediaUploader(options: {
  relayUrl: string;
  credentials: () => { gatewayId?: string | undefined; secret?: string | undefined };
  fetchImpl?: typeof fetch;
}): MediaUploader {
  const doFetch = options.fetchImpl ?? fetch;
  return {
    async upload(file) {
      if (file.bytes.byteLength === 0) return { ok: false, error: 'an empty file is not uploaded' };
      if (file.bytes.byteLength > MEDIA_MAX_BYTES)
        return { ok: false, error: `the file is larger than ${MEDIA_MAX_BYTES} bytes` };
      const { gatewayId, secret } = options.credentials();
      if (!gatewayId || !isUsableSecret(secret))
        return { ok: false, error: 'no relay credentials to upload with' };
      // Header values are Latin-1 on the wire: anything else in the name becomes `_`.
      const filename = file.filename.replace(/[^\x20-\x7e]/g, '_').slice(0, MEDIA_FILENAME_MAX_CHARS);
      try {
        const response = await doFetch(mediaUrl(options.relayUrl), {
          method: 'POST',
          headers: {
            authorization: `Bearer ${mintUpgradeToken(gatewayId, secret)}`,
            'content-type': file.mime || 'application/octet-stream',
            [HEADER_MEDIA_FILENAME]: filename,
          },
          body: file.bytes,
          redirect: 'manual',
          signal: AbortSignal.timeout(UPLOAD_TIMEOUT_MS),
        });
        const body = (await response.json().catch(() => undefined)) as
          | { id?: unknown; error?: unknown }
          | undefined;
        if (response.status !== 200 || typeof body?.id !== 'string' || !/^[0-9a-f]{32}$/.test(body.id))
          return {
            ok: false,
            error: `media upload answered HTTP ${response.status}${typeof body?.error === 'string' ? `: ${body.error}` : ''}`,
          };
        return { ok: true, url: `${connectorHttpBase(options.relayUrl)}${MEDIA_PATH}/${body.id}` };
      } catch (error) {
        return { ok: false, error: `media upload failed: ${errorMessage(error)}` };
      }
    },
  };
}
