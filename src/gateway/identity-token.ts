import { isUsableSecret } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import type { IdpConfig } from '../home/config.js';

/**
 * The identity token a gateway presents to `/relay/enroll` and `/relay/provision` (current §10.3):
 * with an identity provider configured, OAuth2 client credentials (token URL + client id + secret)
 * or an ambient token endpoint (token URL alone: a plain GET, as a platform's metadata service
 * answers); without one, the portal token. Never throws; the error says what to fix.
 */

export type IdentityToken = { ok: true; token: string } | { ok: false; error: string };

const JWT_LIKE = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+){2,}$/;
const OPAQUE = /^[A-Za-z0-9_-]{32,}$/;
const TIMEOUT_MS = 15_000;

export async function resolveIdentityToken(options: {
  idp: IdpConfig | undefined;
  portalToken: string | undefined;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}): Promise<IdentityToken> {
  const { idp } = options;
  if (!idp) {
    return isUsableSecret(options.portalToken)
      ? { ok: true, token: options.portalToken.trim() }
      : {
          ok: false,
          error: 'no identity token: log in or set HERMES_PORTAL_TOKEN (or GATEWAY_RELAY_IDP_TOKEN_URL)',
        };
  }
  const hasId = !!idp.clientId;
  const hasSecret = isUsableSecret(idp.clientSecret);
  if (hasId !== hasSecret) {
    return {
      ok: false,
      error: `IdP configuration has a partial client credential (${hasId ? 'client_secret' : 'client_id'} missing)`,
    };
  }
  const doFetch = options.fetchImpl ?? fetch;
  const signal = AbortSignal.timeout(options.timeoutMs ?? TIMEOUT_MS);
  try {
    if (hasId && hasSecret) {
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: idp.clientId as string,
        client_secret: idp.clientSecret as string,
      });
      if (idp.scope) form.set('scope', idp.scope);
      const response = await doFetch(idp.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal,
      });
      const body = (await response.json().catch(() => null)) as { access_token?: unknown } | null;
      if (!response.ok) return { ok: false, error: `IdP token endpoint answered HTTP ${response.status}` };
      const token = body?.access_token;
      return typeof token === 'string' && token.trim() !== ''
        ? { ok: true, token: token.trim() }
        : { ok: false, error: 'IdP client_credentials response had no access_token' };
    }
    const response = await doFetch(idp.tokenUrl, {
      method: 'GET',
      headers: { accept: 'application/json, text/plain' },
      signal,
    });
    const text = (await response.text()).trim();
    if (!response.ok)
      return { ok: false, error: `ambient identity endpoint answered HTTP ${response.status}` };
    if (text.startsWith('{')) {
      let token: unknown;
      try {
        token = (JSON.parse(text) as { access_token?: unknown }).access_token;
      } catch {
        token = undefined;
      }
      return typeof token === 'string' && token !== ''
        ? { ok: true, token }
        : { ok: false, error: 'ambient identity endpoint returned JSON without a string access_token' };
    }
    if (JWT_LIKE.test(text) || OPAQUE.test(text)) return { ok: true, token: text };
    return { ok: false, error: 'ambient identity endpoint returned no usable token' };
  } catch (error) {
    return { ok: false, error: `identity provider unreachable: ${errorMessage(error)}` };
  }
}
