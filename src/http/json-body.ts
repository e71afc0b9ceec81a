import type { FastifyInstance } from 'fastify';
import { JSON_PARSE_ERRORS, parseJsonText } from '../protocol/index.js';

/**
 * The one `application/json` body parser of our fastify servers: fastify's own (which refuses
 * `__proto__` and `constructor.prototype` keys) behind the nesting bound of `parseJsonText`, so a
 * deeply nested body is a 400 and never reaches code that walks it recursively.
 */

class JsonBodyError extends Error {
  readonly statusCode = 400;
  readonly code = 'HERMES_INVALID_JSON_BODY';
}

export interface JsonBodyParserOptions {
  /**
   * `'reject'` (default): an unreadable body fails the request with {@link JsonBodyError}.
   * `'undefined'`: the route sees `request.body === undefined` instead (the dashboard's drain route
   * treats an unreadable body as "drain", lifecycle reference §2.5).
   */
  onInvalid?: 'reject' | 'undefined';
}

export function installJsonBodyParser(app: FastifyInstance, options: JsonBodyParserOptions = {}): void {
  const lenient = options.onInvalid === 'undefined';
  const parseStrict = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (lenient && text.trim() === '') return done(null, undefined);
    const bounded = parseJsonText(text);
    if (!bounded.ok) {
      if (lenient) return done(null, undefined);
      const why =
        bounded.error === 'not_json' ? 'invalid JSON body' : `body ${JSON_PARSE_ERRORS[bounded.error]}`;
      return done(new JsonBodyError(`malformed request: ${why}`), undefined);
    }
    if (!text.includes('__proto__') && !text.includes('constructor')) return done(null, bounded.value);
    // Only text that could poison a prototype goes through fastify's parser for its checks.
    parseStrict(request, text, (error, value) => {
      if (error) return lenient ? done(null, undefined) : done(error, undefined);
      done(null, value);
    });
  });
}
