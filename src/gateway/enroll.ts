import { hostname as osHostname } from 'node:os';
import { isUsableSecret, redact } from '../auth/index.js';
import {
  describeZodError,
  ENROLL_HTTP_TIMEOUT_MS,
  EnrollResponseSchema,
  ErrorBodySchema,
  enrollUrl,
  isPlainObject,
} from '../protocol/index.js';

/**
 * `hermes gateway enroll` client (reference §5.1): redeem a single-use enrollment token at
 * `POST {connector}/relay/enroll` with the caller's identity bearer. Never throws; messages never
 * contain the identity token, the enrollment token or the returned credentials.
 */

export interface EnrollOptions {
  /** `ws(s)://host/relay`, `http(s)://host` or similar; mapped with `enrollUrl`. */
  connectorUrl: string;
  /** The single-use enrollment token. */
  token: string;
  gatewayId: string;
  /** Identity bearer (current §10.3: the identity provider's token, else the portal token). */
  portalToken: string;
  /**
   * Sent only when set (current §10.2 fields; on enroll our answer to the [unconfirmed] §16.4):
   * where the connector pokes this gateway awake, its instance id, its reply-prefix name.
   */
  wakeUrl?: string | undefined;
  instanceId?: string | undefined;
  displayName?: string | undefined;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}

export type EnrollResult =
  | { ok: true; gatewayId: string; secret: string; deliveryKey: string; tenant: string }
  | { ok: false; status?: number; message: string };

const NO_SECRET_MESSAGE = 'unexpected response (no secret)';

export async function enrollGateway(options: EnrollOptions): Promise<EnrollResult> {
  const { token, portalToken } = options;
  if (!isUsableSecret(portalToken)) {
    return { ok: false, message: 'no identity token: log in or set HERMES_PORTAL_TOKEN' };
  }
  if (!isUsableSecret(token)) {
    return { ok: false, message: 'no enrollment token: pass --token or set GATEWAY_RELAY_ENROLL_TOKEN' };
  }
  const url = enrollUrl(options.connectorUrl);
  const hide = (text: string) => redact(text, [portalToken, token]);
  const reply = await postConnectorJson({
    url,
    bearer: portalToken,
    body: {
      enrollmentToken: token,
      gatewayId: options.gatewayId,
      ...(options.instanceId ? { instanceId: options.instanceId } : {}),
      ...(options.wakeUrl ? { wakeUrl: options.wakeUrl } : {}),
      ...(options.displayName ? { displayName: options.displayName } : {}),
    },
    fetchImpl: options.fetchImpl,
    timeoutMs: options.timeoutMs,
  });
  if (reply.kind === 'unreachable') {
    return { ok: false, message: hide(`could not reach the connector at ${url}: ${reply.reason}`) };
  }
  if (reply.status < 200 || reply.status > 299) {
    return { ok: false, status: reply.status, message: hide(enrollErrorMessage(reply.status, reply.error)) };
  }
  const credentials = readCredentials(reply.body, options.gatewayId);
  if (!credentials.ok) return { ok: false, status: reply.status, message: hide(credentials.message) };
  return { ok: true, ...credentials.value };
}

function enrollErrorMessage(status: number, error: string): string {
  const detail = error ? `: ${error}` : '';
  if (status === 401) {
    return `the connector could not verify your identity (401)${detail}. Log in again or set HERMES_PORTAL_TOKEN.`;
  }
  if (status === 403) return `enrollment token rejected (403)${detail}`;
  return `Connector returned HTTP ${status}${detail}`;
}

/** `gw-<hostname>`: lowercase, only `[a-z0-9-]`; `gw-hermes` when nothing usable is left. */
export function defaultGatewayId(hostname: string = safeHostname()): string {
  const cleaned = hostname
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60)
    .replace(/-+$/, '');
  return cleaned ? `gw-${cleaned}` : 'gw-hermes';
}

function safeHostname(): string {
  try {
    return osHostname();
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// Shared with provision.ts

export interface Credentials {
  gatewayId: string;
  secret: string;
  deliveryKey: string;
  tenant: string;
}

/**
 * Credentials out of a 2xx body. A missing or empty `secret` is the reference's "unexpected
 * response (no secret)"; the connector's `gatewayId` wins over ours (it may canonicalise it).
 */
export function readCredentials(
  body: unknown,
  requestedGatewayId: string,
): { ok: true; value: Credentials } | { ok: false; message: string } {
  if (!isPlainObject(body) || !isUsableSecret(body.secret)) return { ok: false, message: NO_SECRET_MESSAGE };
  const parsed = EnrollResponseSchema.safeParse({
    ...body,
    gatewayId:
      typeof body.gatewayId === 'string' && body.gatewayId.trim() ? body.gatewayId : requestedGatewayId,
  });
  if (!parsed.success) {
    // Zod's messages name paths and types, never values.
    return { ok: false, message: `unexpected response (${describeZodError(parsed.error)})` };
  }
  const { gatewayId, secret, deliveryKey, tenant } = parsed.data;
  return { ok: true, value: { gatewayId, secret, deliveryKey, tenant } };
}

export type ConnectorReply =
  | { kind: 'response'; status: number; body: unknown; error: string }
  | { kind: 'unreachable'; reason: string };

/** Longest error text taken from a non-JSON body. */
const MAX_ERROR_TEXT = 200;
/** Largest response body read; credentials and errors are a few hundred bytes. */
const MAX_RESPONSE_CHARS = 256 * 1024;

/**
 * POST JSON to the connector with the identity bearer, `Content-Type` and `Accept` JSON and a
 * timeout (reference §5.1). Redirects are not followed, so the bearer never travels elsewhere.
 * `error` is the `{error}` of a JSON body, else a short single-line excerpt of the text.
 */
export async function postConnectorJson(request: {
  url: string;
  bearer: string;
  body: unknown;
  fetchImpl?: typeof fetch | undefined;
  timeoutMs?: number | undefined;
}): Promise<ConnectorReply> {
  const doFetch = request.fetchImpl ?? fetch;
  const timeoutMs = request.timeoutMs ?? ENROLL_HTTP_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  let status: number;
  let text: string;
  try {
    const response = await doFetch(request.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${request.bearer}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: JSON.stringify(request.body),
      redirect: 'manual',
      signal,
    });
    status = response.status;
    text = await response.text();
  } catch (error) {
    return { kind: 'unreachable', reason: transportReason(error, signal, timeoutMs) };
  }
  if (text.length > MAX_RESPONSE_CHARS) text = '';
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const errorBody = ErrorBodySchema.safeParse(body);
  const error = errorBody.success ? errorBody.data.error : body === undefined ? excerpt(text) : '';
  return { kind: 'response', status, body, error };
}

function excerpt(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_ERROR_TEXT ? `${line.slice(0, MAX_ERROR_TEXT)}…` : line;
}

function transportReason(error: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return `no answer within ${Math.round(timeoutMs / 100) / 10} s`;
  const err = error as { message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const cause = err?.cause;
  if (cause && typeof cause.message === 'string' && cause.message) return cause.message;
  if (cause && typeof cause.code === 'string') return cause.code;
  return typeof err?.message === 'string' && err.message ? err.message : String(error);
}
