import type { FastifyInstance } from 'fastify';

/**
 * The `/admin` web page (HTML shell and its static assets). Placeholder: the page is being built;
 * the API beside it (`/admin/api/…`) is registered by `registerAdminConsole`.
 */
export function registerAdminPage(_app: FastifyInstance): void {}
