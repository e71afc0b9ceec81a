import { ENROLL_PATH, MEDIA_PATH, POLICY_PATH, PROVISION_PATH, RELAY_WS_PATH } from './wire.js';

/**
 * Connector URL handling shared by the dialer and the enroll/provision clients. Input is whatever
 * the operator configured: `ws(s)://host/relay`, `http(s)://host`, with or without a trailing `/`.
 */

/** The WebSocket URL to dial: http(s)→ws(s), trailing `/` stripped, `/relay` appended if missing. */
export function relayDialUrl(configured: string): string {
  let url = configured.trim().replace(/\/+$/, '');
  if (/^http:\/\//i.test(url)) url = `ws://${url.slice(7)}`;
  else if (/^https:\/\//i.test(url)) url = `wss://${url.slice(8)}`;
  if (!url.endsWith(RELAY_WS_PATH)) url += RELAY_WS_PATH;
  return url;
}

/** The connector's HTTP base: ws(s)→http(s), trailing `/` and a trailing `/relay` stripped. */
export function connectorHttpBase(configured: string): string {
  let url = configured.trim().replace(/\/+$/, '');
  if (/^ws:\/\//i.test(url)) url = `http://${url.slice(5)}`;
  else if (/^wss:\/\//i.test(url)) url = `https://${url.slice(6)}`;
  if (url.endsWith(RELAY_WS_PATH)) url = url.slice(0, -RELAY_WS_PATH.length);
  return url;
}

export function enrollUrl(configured: string): string {
  return connectorHttpBase(configured) + ENROLL_PATH;
}

export function provisionUrl(configured: string): string {
  return connectorHttpBase(configured) + PROVISION_PATH;
}

export function policyUrl(configured: string): string {
  return connectorHttpBase(configured) + POLICY_PATH;
}

/** Where a gateway uploads media, and the prefix of every re-host URL (current §7.3). */
export function mediaUrl(configured: string): string {
  return connectorHttpBase(configured) + MEDIA_PATH;
}

/**
 * The media id of a re-host URL (`http(s)://…/relay/media/<32 hex>`, the path exactly that), else
 * undefined. Where the URL points is for the caller to judge; this only reads it.
 */
export function mediaIdFromUrl(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return /^\/relay\/media\/([0-9a-f]{32})$/.exec(url.pathname)?.[1];
}
