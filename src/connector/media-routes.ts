import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { attachmentDisposition } from '../http/content-disposition.js';
import {
  HEADER_MEDIA_FILENAME,
  MEDIA_FILENAME_MAX_CHARS,
  MEDIA_MAX_BYTES,
  MEDIA_PATH,
} from '../protocol/index.js';
import { gatewayRequestAuth } from './gateway-auth.js';
import type { MediaStore } from './media.js';
import type { RelayStore } from './store/types.js';

/**
 * `POST /relay/media` and `GET /relay/media/{id}` (current §7.3), for gateways, with their
 * upgrade-token bearer. The upload is streamed to disk (never held in memory) and refused with 413
 * past the cap — at once when `Content-Length` says so, else as soon as the bytes do. A media id
 * is a capability scoped to its tenant: another tenant's gateway gets the same 404 as for an id
 * that never existed.
 */

export interface MediaRouteOptions {
  store: RelayStore;
  media: MediaStore;
  log: Logger;
  allowNonExpiringTokens: boolean;
  now: () => number;
}

const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i;

/** `type/subtype` of a Content-Type header (parameters dropped), else `application/octet-stream`. */
export function mediaContentType(header: string | undefined): string {
  const type = header?.split(';')[0]?.trim().toLowerCase() ?? '';
  return CONTENT_TYPE.test(type) ? type : 'application/octet-stream';
}

/** The uploader's file name without directories or control characters, at most 255 chars. */
export function mediaFilename(header: string | string[] | undefined): string {
  const raw = Array.isArray(header) ? header[0] : header;
  let name = (raw ?? '').replace(/[\p{Cc}]/gu, '');
  name = name.split(/[\\/]/).pop() ?? '';
  name = name.trim().slice(0, MEDIA_FILENAME_MAX_CHARS);
  return name === '.' || name === '..' ? '' : name;
}

export function registerMediaRoutes(app: FastifyInstance, options: MediaRouteOptions): void {
  // Authenticated before the body is read, like the enroll and provision routes.
  const { authenticate, gatewayOf } = gatewayRequestAuth(options);

  void app.register(async (scope) => {
    // Any body type, left unread: the handler streams it to disk itself.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));

    scope.post(MEDIA_PATH, { onRequest: authenticate }, async (request, reply) => {
      const declared = Number(request.headers['content-length']);
      if (Number.isFinite(declared) && declared > MEDIA_MAX_BYTES)
        return reply
          .code(413)
          .header('connection', 'close')
          .send({ error: `media larger than ${MEDIA_MAX_BYTES} bytes` });
      const gateway = gatewayOf(request);
      const put = await options.media.put(gateway.tenantId, request.raw, {
        contentType: mediaContentType(request.headers['content-type']),
        filename: mediaFilename(request.headers[HEADER_MEDIA_FILENAME]),
      });
      if (!put.ok) {
        if (put.reason === 'too_large')
          return reply
            .code(413)
            .header('connection', 'close')
            .send({ error: `media larger than ${MEDIA_MAX_BYTES} bytes` });
        if (put.reason === 'empty') return reply.code(400).send({ error: 'empty media upload' });
        // The client went away mid-body: nobody is left to answer.
        return reply.code(400).header('connection', 'close').send({ error: put.detail });
      }
      options.log.info({ gatewayId: gateway.id, id: put.id, size: put.size }, 'media uploaded');
      return reply.send({ id: put.id, size: put.size });
    });
  });

  app.get<{ Params: { id: string } }>(
    `${MEDIA_PATH}/:id`,
    { onRequest: authenticate },
    async (request, reply) => {
      const gateway = gatewayOf(request);
      const found = options.media.open(gateway.tenantId, request.params.id);
      if (!found) return reply.code(404).send({ error: 'no such media' });
      const { meta } = found;
      const maxAge = Math.max(0, Math.floor((meta.expiresAt - options.now()) / 1000));
      return reply
        .header('content-type', meta.contentType)
        .header('content-length', String(meta.size))
        .header('content-disposition', attachmentDisposition(meta.filename))
        .header('cache-control', `private, max-age=${maxAge}`)
        .send(found.stream());
    },
  );
}
