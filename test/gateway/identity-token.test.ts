import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveIdentityToken } from '../../src/gateway/identity-token.js';

/** §14 case 51 against a fake identity provider on 127.0.0.1. */

let server: Server;
let base: string;
let answer: (req: IncomingMessage, body: string, res: ServerResponse) => void = (_q, _b, res) => res.end();
const requests: { method: string; body: string; type: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      requests.push({ method: req.method ?? '', body, type: req.headers['content-type'] });
      answer(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const idp = (over: Partial<{ clientId: string; clientSecret: string; scope: string }> = {}) => ({
  tokenUrl: base,
  clientId: undefined,
  clientSecret: undefined,
  scope: undefined,
  ...over,
});

describe('resolveIdentityToken (current §10.3)', () => {
  it('without an identity provider uses the portal token, or says how to get one', async () => {
    expect(await resolveIdentityToken({ idp: undefined, portalToken: ' tok ' })).toEqual({
      ok: true,
      token: 'tok',
    });
    expect(await resolveIdentityToken({ idp: undefined, portalToken: undefined })).toMatchObject({
      ok: false,
    });
  });

  it('client credentials: a POST form with all four fields; access_token must be a non-empty string', async () => {
    answer = (_q, _b, res) => res.end(JSON.stringify({ access_token: 'idp-token-1' }));
    requests.length = 0;
    expect(
      await resolveIdentityToken({
        idp: idp({ clientId: 'cid', clientSecret: 'csecret', scope: 'relay' }),
        portalToken: undefined,
      }),
    ).toEqual({ ok: true, token: 'idp-token-1' });
    expect(requests[0]?.method).toBe('POST');
    expect(requests[0]?.type).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(requests[0]?.body ?? ''))).toEqual({
      grant_type: 'client_credentials',
      client_id: 'cid',
      client_secret: 'csecret',
      scope: 'relay',
    });
    answer = (_q, _b, res) => res.end(JSON.stringify({ access_token: 42 }));
    expect(
      await resolveIdentityToken({
        idp: idp({ clientId: 'cid', clientSecret: 'csecret' }),
        portalToken: undefined,
      }),
    ).toEqual({
      ok: false,
      error: 'IdP client_credentials response had no access_token',
    });
  });

  it('ambient GET: a raw JWT (trailing newline trimmed), an opaque token of 32+ chars, or JSON access_token', async () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ0In0.c2lnbmF0dXJl';
    answer = (_q, _b, res) => res.end(`${jwt}\n`);
    requests.length = 0;
    expect(await resolveIdentityToken({ idp: idp(), portalToken: undefined })).toEqual({
      ok: true,
      token: jwt,
    });
    expect(requests[0]?.method).toBe('GET');
    answer = (_q, _b, res) => res.end('a'.repeat(32));
    expect(await resolveIdentityToken({ idp: idp(), portalToken: undefined })).toEqual({
      ok: true,
      token: 'a'.repeat(32),
    });
    answer = (_q, _b, res) => res.end('{"access_token":"from-json"}');
    expect(await resolveIdentityToken({ idp: idp(), portalToken: undefined })).toEqual({
      ok: true,
      token: 'from-json',
    });
  });

  it('ambient GET: "unauthorized", "null", an empty body, HTML or a non-string access_token are errors naming "ambient"', async () => {
    for (const body of ['unauthorized', 'null', '', '<html>nope</html>', '{"access_token":7}']) {
      answer = (_q, _b, res) => res.end(body);
      const result = await resolveIdentityToken({ idp: idp(), portalToken: undefined });
      expect(result.ok, body).toBe(false);
      if (!result.ok) expect(result.error).toMatch(/ambient/);
    }
  });

  it('a partial client credential is an error with no HTTP request', async () => {
    requests.length = 0;
    expect(await resolveIdentityToken({ idp: idp({ clientId: 'cid' }), portalToken: 'p' })).toEqual({
      ok: false,
      error: 'IdP configuration has a partial client credential (client_secret missing)',
    });
    expect(await resolveIdentityToken({ idp: idp({ clientSecret: 'cs' }), portalToken: 'p' })).toEqual({
      ok: false,
      error: 'IdP configuration has a partial client credential (client_id missing)',
    });
    expect(requests).toHaveLength(0);
  });
});

describe('the identity-provider settings', () => {
  it('come from GATEWAY_RELAY_IDP_*, else gateway.idp.* when the env has no token URL (env id and secret still win)', async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadGatewayConfig, redactConfig } = await import('../../src/home/config.js');
    const dir = mkdtempSync(join(tmpdir(), 'hermes-idp-'));
    try {
      writeFileSync(
        join(dir, 'config.yaml'),
        'gateway:\n  idp:\n    token_url: https://idp.example/token\n    client_id: yaml-id\n    client_secret: yaml-secret\n',
      );
      expect(
        loadGatewayConfig({ home: dir, env: { GATEWAY_RELAY_IDP_CLIENT_SECRET: 'env-secret' } }).idp,
      ).toEqual({
        tokenUrl: 'https://idp.example/token',
        clientId: 'yaml-id',
        clientSecret: 'env-secret',
        scope: undefined,
      });
      expect(
        loadGatewayConfig({ home: dir, env: { GATEWAY_RELAY_IDP_TOKEN_URL: 'http://127.0.0.1:9/ambient' } })
          .idp,
      ).toEqual({
        tokenUrl: 'http://127.0.0.1:9/ambient',
        clientId: undefined,
        clientSecret: undefined,
        scope: undefined,
      });
      const redacted = redactConfig(loadGatewayConfig({ home: dir, env: {} }));
      expect(JSON.stringify(redacted)).not.toContain('yaml-secret');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
