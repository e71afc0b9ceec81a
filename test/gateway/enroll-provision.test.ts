import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnrollmentToken, createTenant } from '../../src/connector/admin.js';
import { connectorConfigFromEnv } from '../../src/connector/config.js';
import { type RunningConnector, startConnector } from '../../src/connector/connector.js';
import { WebChatAdapter } from '../../src/connector/platforms/webchat/adapter.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import type { Tenant } from '../../src/connector/store/types.js';
import { defaultGatewayId, enrollGateway } from '../../src/gateway/enroll.js';
import { declarePolicies } from '../../src/gateway/policy.js';
import { type ProvisionConfig, selfProvision } from '../../src/gateway/provision.js';
import { loadGatewayConfig } from '../../src/home/config.js';

/** Enroll and managed-boot provision clients against a real in-process connector (reference §5.1–§5.3). */

const silent = pino({ level: 'silent' });
let connector: RunningConnector;
let tenant: Tenant;
let tenantToken: string;

beforeAll(async () => {
  const store = SqliteStore.open(':memory:');
  ({ tenant, accessToken: tenantToken } = await createTenant(store, 'acme'));
  connector = await startConnector({
    // Endpoints here are on 127.0.0.1: allowed explicitly (SSRF rule, common/ssrf.ts).
    config: connectorConfigFromEnv(
      { RELAY_ALLOW_PRIVATE_TARGETS: '127.0.0.1/32' },
      { port: 0, db: ':memory:' },
    ),
    store,
    adapters: [new WebChatAdapter({ log: silent })],
    log: silent,
    version: 'test',
  });
});

afterAll(async () => {
  await connector?.stop();
});

async function enrollmentToken(): Promise<string> {
  return (await createEnrollmentToken(connector.store, tenant.id, 3_600_000)).token;
}

function wsUrl(): string {
  return `${connector.url.replace(/^http/, 'ws')}/relay`;
}

interface Recorded {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A tiny stand-in connector answering whatever the test says, recording what it was sent. */
async function fakeConnector(
  answer: (request: Recorded, response: ServerResponse) => void,
): Promise<{ url: string; requests: Recorded[]; close: () => Promise<void> }> {
  const requests: Recorded[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const recorded = {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(recorded);
      answer(recorded, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[]; text: () => string } {
  const out: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      out.push(String(chunk));
      callback();
    },
  });
  return {
    log: pino({ level: 'debug' }, sink),
    lines: () => out.map((line) => JSON.parse(line) as Record<string, unknown>),
    text: () => out.join(''),
  };
}

describe('enrollGateway', () => {
  it('enrolls with a ws:// relay URL and returns working credentials', async () => {
    const result = await enrollGateway({
      connectorUrl: wsUrl(),
      token: await enrollmentToken(),
      gatewayId: 'gw-enroll-ws',
      portalToken: tenantToken,
    });
    if (!result.ok) throw new Error(result.message);
    expect(result.gatewayId).toBe('gw-enroll-ws');
    expect(result.tenant).toBe(tenant.id);
    expect(result.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(result.deliveryKey).toMatch(/^[0-9a-f]{64}$/);
    const stored = await connector.store.getGateway('gw-enroll-ws');
    expect(stored?.secret).toBe(result.secret);
    expect((await connector.store.getDeliveryKeys(tenant.id))?.primary).toBe(result.deliveryKey);
  });

  it('registers a wake URL, instance id and display name at enroll when given (our answer to current §16.4), and refuses a bad one', async () => {
    const result = await enrollGateway({
      connectorUrl: wsUrl(),
      token: await enrollmentToken(),
      gatewayId: 'gw-enroll-wake',
      portalToken: tenantToken,
      wakeUrl: 'https://wake.example/poke',
      instanceId: 'inst-7',
      displayName: 'Ops Bot',
    });
    if (!result.ok) throw new Error(result.message);
    expect(await connector.store.getGateway('gw-enroll-wake')).toMatchObject({
      wakeUrl: 'https://wake.example/poke',
      instanceId: 'inst-7',
      displayName: 'Ops Bot',
    });
    const refused = await enrollGateway({
      connectorUrl: wsUrl(),
      token: await enrollmentToken(),
      gatewayId: 'gw-enroll-bad-wake',
      portalToken: tenantToken,
      wakeUrl: 'file:///etc/passwd',
    });
    expect(refused).toMatchObject({ ok: false, status: 400 });
    if (!refused.ok) expect(refused.message).toContain('wakeUrl');
    expect(await connector.store.getGateway('gw-enroll-bad-wake')).toBeNull();
  });

  it('enrolls with an http:// base URL (trailing slash)', async () => {
    const result = await enrollGateway({
      connectorUrl: `${connector.url}/`,
      token: await enrollmentToken(),
      gatewayId: 'gw-enroll-http',
      portalToken: tenantToken,
    });
    expect(result).toMatchObject({ ok: true, gatewayId: 'gw-enroll-http', tenant: tenant.id });
  });

  it('reports 401 with a re-login hint for an unknown identity token', async () => {
    const bogus = 'hrt_not-a-real-token-0123456789';
    const result = await enrollGateway({
      connectorUrl: wsUrl(),
      token: await enrollmentToken(),
      gatewayId: 'gw-enroll-401',
      portalToken: bogus,
    });
    expect(result).toEqual({
      ok: false,
      status: 401,
      message:
        'the connector could not verify your identity (401): caller identity could not be verified. ' +
        'Log in again or set HERMES_PORTAL_TOKEN.',
    });
    expect(await connector.store.getGateway('gw-enroll-401')).toBeNull();
  });

  it('reports 403 for a reused enrollment token', async () => {
    const token = await enrollmentToken();
    const first = await enrollGateway({
      connectorUrl: wsUrl(),
      token,
      gatewayId: 'gw-enroll-once',
      portalToken: tenantToken,
    });
    expect(first.ok).toBe(true);
    const second = await enrollGateway({
      connectorUrl: wsUrl(),
      token,
      gatewayId: 'gw-enroll-twice',
      portalToken: tenantToken,
    });
    expect(second).toEqual({
      ok: false,
      status: 403,
      message: 'enrollment token rejected (403): enrollment token already used',
    });
    if (!second.ok) expect(second.message).not.toContain(token);
  });

  it('sends the reference request and prefers the gatewayId the connector returns', async () => {
    const fake = await fakeConnector((_request, response) =>
      json(response, 200, {
        secret: 's'.repeat(64),
        deliveryKey: 'k'.repeat(64),
        tenant: 't1',
        gatewayId: 'gw-canon',
      }),
    );
    try {
      const result = await enrollGateway({
        connectorUrl: `${fake.url.replace('http', 'ws')}/relay/`,
        token: 'hre_enroll-token',
        gatewayId: 'gw-mine',
        portalToken: 'portal-token-xyz',
      });
      expect(result).toEqual({
        ok: true,
        gatewayId: 'gw-canon',
        secret: 's'.repeat(64),
        deliveryKey: 'k'.repeat(64),
        tenant: 't1',
      });
      const [request] = fake.requests;
      expect(request?.method).toBe('POST');
      expect(request?.url).toBe('/relay/enroll');
      expect(request?.headers.authorization).toBe('Bearer portal-token-xyz');
      expect(request?.headers['content-type']).toBe('application/json');
      expect(request?.headers.accept).toBe('application/json');
      expect(JSON.parse(request?.body ?? '')).toEqual({
        enrollmentToken: 'hre_enroll-token',
        gatewayId: 'gw-mine',
      });
    } finally {
      await fake.close();
    }
  });

  it('keeps its own gatewayId when the connector returns none', async () => {
    const fake = await fakeConnector((_request, response) =>
      json(response, 200, { secret: 'abc123', deliveryKey: 'dk', tenant: 't' }),
    );
    try {
      const result = await enrollGateway({
        connectorUrl: fake.url,
        token: 'tok',
        gatewayId: 'gw-mine',
        portalToken: 'portal',
      });
      expect(result).toMatchObject({ ok: true, gatewayId: 'gw-mine', secret: 'abc123' });
    } finally {
      await fake.close();
    }
  });

  it('treats a 2xx without a secret as a failure', async () => {
    const bodies: unknown[] = [{ deliveryKey: 'dk', tenant: 't' }, { secret: '', deliveryKey: 'dk' }, 'text'];
    let index = 0;
    const fake = await fakeConnector((_request, response) => json(response, 200, bodies[index++]));
    try {
      for (const _body of bodies) {
        const result = await enrollGateway({
          connectorUrl: fake.url,
          token: 'tok',
          gatewayId: 'gw-x',
          portalToken: 'portal',
        });
        expect(result).toEqual({ ok: false, status: 200, message: 'unexpected response (no secret)' });
      }
    } finally {
      await fake.close();
    }
  });

  it('reports any other status with the error, including a non-JSON body', async () => {
    const fake = await fakeConnector((request, response) => {
      if (request.url === '/relay/enroll' && JSON.parse(request.body).gatewayId === 'gw-html') {
        response
          .writeHead(502, { 'content-type': 'text/html' })
          .end('<html>\n  <body>Bad gateway</body>\n</html>');
      } else json(response, 400, { error: 'malformed request: gatewayId' });
    });
    try {
      const html = await enrollGateway({
        connectorUrl: fake.url,
        token: 'tok',
        gatewayId: 'gw-html',
        portalToken: 'portal',
      });
      expect(html).toEqual({
        ok: false,
        status: 502,
        message: 'Connector returned HTTP 502: <html> <body>Bad gateway</body> </html>',
      });
      const bad = await enrollGateway({
        connectorUrl: fake.url,
        token: 'tok',
        gatewayId: 'gw-400',
        portalToken: 'portal',
      });
      expect(bad).toEqual({
        ok: false,
        status: 400,
        message: 'Connector returned HTTP 400: malformed request: gatewayId',
      });
    } finally {
      await fake.close();
    }
  });

  it('never puts the identity token, the enrollment token or credentials in a message', async () => {
    const portalToken = 'portal-secret-4b1d9e';
    const token = 'hre_enroll-secret-77aa';
    const fake = await fakeConnector((request, response) => {
      // A careless connector echoing what it was sent.
      json(response, 403, { error: `refused ${request.headers.authorization} for ${request.body}` });
    });
    try {
      const result = await enrollGateway({ connectorUrl: fake.url, token, gatewayId: 'gw-x', portalToken });
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.status).toBe(403);
      expect(result.message).toMatch(/^enrollment token rejected \(403\): refused Bearer \[redacted\]/);
      expect(result.message).not.toContain(portalToken);
      expect(result.message).not.toContain(token);
    } finally {
      await fake.close();
    }
  });

  it('reports an unreachable connector with its URL and the reason', async () => {
    const port = await closedPort();
    const result = await enrollGateway({
      connectorUrl: `ws://127.0.0.1:${port}/relay`,
      token: 'tok',
      gatewayId: 'gw-x',
      portalToken: 'portal-unreachable-token',
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.status).toBeUndefined();
    expect(result.message).toMatch(
      new RegExp(
        `^could not reach the connector at http://127\\.0\\.0\\.1:${port}/relay/enroll: .*ECONNREFUSED`,
      ),
    );
    expect(result.message).not.toContain('portal-unreachable-token');
  });

  it('gives up after the timeout', async () => {
    const fake = await fakeConnector(() => {
      // never answers
    });
    try {
      const result = await enrollGateway({
        connectorUrl: fake.url,
        token: 'tok',
        gatewayId: 'gw-x',
        portalToken: 'portal',
        timeoutMs: 200,
      });
      expect(result).toEqual({
        ok: false,
        message: `could not reach the connector at ${fake.url}/relay/enroll: no answer within 0.2 s`,
      });
    } finally {
      await fake.close();
    }
  });

  it('refuses to call without an identity token or an enrollment token', async () => {
    let calls = 0;
    const fetchImpl: typeof fetch = async () => {
      calls++;
      return new Response('{}');
    };
    const noIdentity = await enrollGateway({
      connectorUrl: 'http://x',
      token: 't',
      gatewayId: 'g',
      portalToken: ' ',
      fetchImpl,
    });
    expect(noIdentity).toMatchObject({ ok: false, message: expect.stringContaining('HERMES_PORTAL_TOKEN') });
    const noToken = await enrollGateway({
      connectorUrl: 'http://x',
      token: '',
      gatewayId: 'g',
      portalToken: 'p',
      fetchImpl,
    });
    expect(noToken).toMatchObject({ ok: false, message: expect.stringContaining('--token') });
    expect(calls).toBe(0);
  });
});

describe('defaultGatewayId', () => {
  it('sanitises the hostname into gw-<host>', () => {
    expect(defaultGatewayId('myhost')).toBe('gw-myhost');
    expect(defaultGatewayId('My.Host_01.local')).toBe('gw-my-host-01-local');
    expect(defaultGatewayId('--Ünïcode  box--')).toBe('gw-n-code-box');
    expect(defaultGatewayId('')).toBe('gw-hermes');
    expect(defaultGatewayId('ÄÖÜ')).toBe('gw-hermes');
    expect(defaultGatewayId('a'.repeat(100))).toBe(`gw-${'a'.repeat(60)}`);
    expect(defaultGatewayId()).toMatch(/^gw-[a-z0-9-]+$/);
  });
});

describe('selfProvision', () => {
  function config(overrides: Partial<ProvisionConfig> = {}): ProvisionConfig {
    return {
      relayUrl: wsUrl(),
      managed: true,
      portalToken: tenantToken,
      platform: 'relay',
      botId: '',
      routeKeys: [],
      ...overrides,
    };
  }

  const neverFetch: typeof fetch = async () => {
    throw new Error('must not be called');
  };

  it('is skipped without a relay URL, with a pinned id+secret or without a token', async () => {
    let calls = 0;
    const fetchImpl: typeof fetch = async (...args) => {
      calls++;
      return neverFetch(...args);
    };
    const logs = capturingLogger();
    const cases: [Partial<ProvisionConfig>, string][] = [
      [{ relayUrl: undefined }, 'no relay URL'],
      [{ relayUrl: '  ' }, 'no relay URL'],
      [{ gatewayId: 'gw-pinned', secret: 'pinned-secret-value' }, 'pinned credentials'],
      [{ portalToken: undefined }, 'no portal token'],
    ];
    for (const [overrides, reason] of cases) {
      expect(await selfProvision({ config: config(overrides), fetchImpl, log: logs.log })).toEqual({
        provisioned: false,
        reason,
      });
    }
    expect(calls).toBe(0);
    expect(logs.text()).not.toContain('pinned-secret-value');
    expect(
      logs.lines().some((line) => line.level === 40 && String(line.msg).includes('HERMES_PORTAL_TOKEN')),
    ).toBe(true);
  });

  it('provisions against the connector, declaring the endpoint and route keys', async () => {
    const logs = capturingLogger();
    const outcome = await selfProvision({
      config: config({
        gatewayId: 'gw-managed-1',
        endpoint: 'http://127.0.0.1:9/inbound/',
        routeKeys: ['room-a', 'room-b'],
      }),
      log: logs.log,
    });
    if (!outcome.provisioned) throw new Error(outcome.reason);
    expect(outcome).toMatchObject({
      gatewayId: 'gw-managed-1',
      tenant: tenant.id,
      routeKeys: ['room-a', 'room-b'],
    });
    expect((await connector.store.getGateway('gw-managed-1'))?.secret).toBe(outcome.secret);
    const route = await connector.store.findRoute('webchat', 'room-a');
    expect(route).toMatchObject({
      tenantId: tenant.id,
      endpoint: 'http://127.0.0.1:9/inbound',
      gatewayId: 'gw-managed-1',
    });
    // Never a credential in the logs.
    expect(logs.text()).not.toContain(outcome.secret);
    expect(logs.text()).not.toContain(outcome.deliveryKey);
    expect(logs.text()).not.toContain(tenantToken);
  });

  it('no longer needs a managed home (current §10.2): a URL and an identity token are enough', async () => {
    const outcome = await selfProvision({
      config: config({ managed: false, gatewayId: 'gw-unmanaged' }),
      log: silent,
    });
    expect(outcome).toMatchObject({ provisioned: true, gatewayId: 'gw-unmanaged' });
  });

  it('provisions once per identity under one gateway id, takes the first secret, and sends optional keys only when set', async () => {
    const bodies: Record<string, unknown>[] = [];
    const recording: typeof fetch = async (input, init) => {
      bodies.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
      return fetch(input, init);
    };
    const outcome = await selfProvision({
      config: config({
        gatewayId: 'gw-multi-boot',
        identities: [
          { platform: 'webchat', botId: 'web-1' },
          { platform: 'telegram', botId: 'bot-9' },
        ],
        instanceId: 'inst-abc',
        wakeUrl: 'https://wake.example/poke',
      }),
      fetchImpl: recording,
      log: silent,
    });
    if (!outcome.provisioned) throw new Error(outcome.reason);
    expect(bodies.map((b) => [b.gatewayId, b.platform, b.botId])).toEqual([
      ['gw-multi-boot', 'webchat', 'web-1'],
      ['gw-multi-boot', 'telegram', 'bot-9'],
    ]);
    expect(bodies[0]).toMatchObject({ instanceId: 'inst-abc', wakeUrl: 'https://wake.example/poke' });
    expect(bodies[0]).not.toHaveProperty('displayName');
    // The second platform was withheld a secret: the first one's is the one that works.
    expect((await connector.store.getGateway('gw-multi-boot'))?.secret).toBe(outcome.secret);
    expect((await connector.store.listGatewayIdentities('gw-multi-boot')).map((i) => i.platform)).toEqual([
      'webchat',
      'telegram',
    ]);
  });

  it('provisions with only an id pinned (no secret), and defaults the id to gw-<host>', async () => {
    const withId = await selfProvision({ config: config({ gatewayId: 'gw-id-only' }), log: silent });
    expect(withId).toMatchObject({ provisioned: true, gatewayId: 'gw-id-only', routeKeys: [] });
    const byHost = await selfProvision({ config: config(), log: silent, hostname: 'Box.Example' });
    expect(byHost).toMatchObject({ provisioned: true, gatewayId: 'gw-box-example' });
  });

  it('sends the reference body to /relay/provision', async () => {
    const fake = await fakeConnector((_request, response) =>
      json(response, 200, {
        secret: 'sec',
        deliveryKey: 'dk',
        tenant: 't',
        gatewayId: 'gw-p',
        routeKeys: ['g1'],
      }),
    );
    try {
      const outcome = await selfProvision({
        config: config({
          relayUrl: fake.url,
          portalToken: 'portal-p',
          gatewayId: 'gw-p',
          platform: 'telegram',
          botId: 'bot-7',
          routeKeys: ['g1'],
        }),
        log: silent,
      });
      expect(outcome).toEqual({
        provisioned: true,
        gatewayId: 'gw-p',
        secret: 'sec',
        deliveryKey: 'dk',
        tenant: 't',
        routeKeys: ['g1'],
      });
      const [request] = fake.requests;
      expect(request?.url).toBe('/relay/provision');
      expect(request?.headers.authorization).toBe('Bearer portal-p');
      expect(request?.headers.accept).toBe('application/json');
      expect(JSON.parse(request?.body ?? '')).toEqual({
        gatewayId: 'gw-p',
        platform: 'telegram',
        botId: 'bot-7',
        gatewayEndpoint: '',
        routeKeys: ['g1'],
      });
    } finally {
      await fake.close();
    }
  });

  it('is fail-soft on a 500, an empty 500, a 2xx without secret and an unknown token', async () => {
    const answers: [number, unknown][] = [
      [500, { error: 'db down' }],
      [500, undefined],
      [200, { deliveryKey: 'dk' }],
    ];
    let index = 0;
    const fake = await fakeConnector((_request, response) => {
      const [status, body] = answers[index++] ?? [500, undefined];
      if (body === undefined) response.writeHead(status).end();
      else json(response, status, body);
    });
    try {
      const logs = capturingLogger();
      const reasons: string[] = [];
      for (const _answer of answers) {
        const outcome = await selfProvision({ config: config({ relayUrl: fake.url }), log: logs.log });
        expect(outcome.provisioned).toBe(false);
        if (!outcome.provisioned) reasons.push(outcome.reason);
      }
      expect(reasons).toEqual([
        'connector returned HTTP 500: db down',
        'connector returned HTTP 500',
        'unexpected response (no secret)',
      ]);
      const warnings = logs
        .lines()
        .filter((line) => line.level === 40)
        .map((line) => line.msg);
      expect(warnings).toEqual(reasons.map((reason) => `relay self-provision failed: ${reason}`));
      expect(logs.text()).not.toContain(tenantToken);
    } finally {
      await fake.close();
    }

    const unknown = await selfProvision({
      config: config({ portalToken: 'hrt_unknown-token' }),
      log: silent,
    });
    expect(unknown).toEqual({
      provisioned: false,
      reason: 'connector returned HTTP 401: caller identity could not be verified',
    });
  });

  it('does not forward the identity token across a cross-origin redirect (current §14 case 48)', async () => {
    const seen: (string | undefined)[] = [];
    const target = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(503).end();
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const targetPort = (target.address() as AddressInfo).port;
    const redirector = createServer((_req, res) => {
      res.writeHead(307, { location: `http://127.0.0.1:${targetPort}/relay/provision` }).end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    try {
      const outcome = await selfProvision({
        config: config({ relayUrl: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}` }),
        log: silent,
      });
      // Stricter than the reference: a redirect is not followed at all, so the token stays home.
      expect(outcome).toEqual({ provisioned: false, reason: 'connector returned HTTP 307' });
      expect(seen.filter((authorization) => authorization !== undefined)).toEqual([]);
    } finally {
      redirector.close();
      target.close();
    }
  });

  it('is fail-soft on transport errors and a throwing fetch', async () => {
    const port = await closedPort();
    const unreachable = await selfProvision({
      config: config({ relayUrl: `ws://127.0.0.1:${port}/relay` }),
      log: silent,
    });
    expect(unreachable.provisioned).toBe(false);
    if (!unreachable.provisioned) {
      expect(unreachable.reason).toMatch(
        new RegExp(`^could not reach the connector at http://127\\.0\\.0\\.1:${port}/relay/provision: `),
      );
    }
    const throwing = await selfProvision({
      config: config(),
      log: silent,
      fetchImpl: () => {
        throw new Error(`exploded with ${tenantToken}`);
      },
    });
    expect(throwing.provisioned).toBe(false);
    if (!throwing.provisioned) {
      expect(throwing.reason).toContain('exploded with [redacted]');
      expect(throwing.reason).not.toContain(tenantToken);
    }
  });
});

describe('policy declaration at boot (current §11.1)', () => {
  it('projects config.yaml and <PLATFORM>_ALLOW_BOTS per fronted platform, and declares nothing for relay or when nothing is set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermes-policy-'));
    try {
      writeFileSync(
        join(dir, 'config.yaml'),
        'telegram:\n  require_mention: true\n  free_response_channels: "c1, c2 ,c3"\nplatforms:\n  discord:\n    require_mention: false\n',
      );
      const config = loadGatewayConfig({
        home: dir,
        env: { GATEWAY_RELAY_PLATFORMS: 'telegram,discord,slack,relay', SLACK_ALLOW_BOTS: 'all' },
      });
      expect(config.policies).toEqual([
        {
          platform: 'telegram',
          requireAddress: true,
          freeResponseScopes: ['c1', 'c2', 'c3'],
          allowOtherBots: false,
        },
        // An explicit false is declared: the connector's own default would gate on mentions.
        { platform: 'discord', requireAddress: false, freeResponseScopes: [], allowOtherBots: false },
        { platform: 'slack', requireAddress: false, freeResponseScopes: [], allowOtherBots: true },
      ]);
      expect(loadGatewayConfig({ home: dir, env: { GATEWAY_RELAY_PLATFORMS: 'webchat' } }).policies).toEqual(
        [],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('posts each with a fresh upgrade token; only a 200 counts; nothing without credentials', async () => {
    const provisioned = await selfProvision({
      config: {
        relayUrl: wsUrl(),
        portalToken: tenantToken,
        platform: 'telegram',
        botId: '',
        routeKeys: [],
        gatewayId: 'gw-policy-boot',
      },
      log: silent,
    });
    if (!provisioned.provisioned) throw new Error(provisioned.reason);
    const policies = [
      { platform: 'telegram', requireAddress: true, freeResponseScopes: ['c1'], allowOtherBots: false },
    ];
    expect(
      await declarePolicies({
        relayUrl: wsUrl(),
        gatewayId: 'gw-policy-boot',
        secret: provisioned.secret,
        policies,
        log: silent,
      }),
    ).toBe(1);
    expect(await connector.store.listPolicies(tenant.id)).toEqual([
      expect.objectContaining({
        platform: 'telegram',
        instanceKey: 'gw-policy-boot',
        freeResponseScopes: ['c1'],
      }),
    ]);
    expect(
      await declarePolicies({
        relayUrl: wsUrl(),
        gatewayId: 'gw-policy-boot',
        secret: 'wrong-secret-value',
        policies,
        log: silent,
      }),
    ).toBe(0);
    expect(
      await declarePolicies({
        relayUrl: wsUrl(),
        gatewayId: undefined,
        secret: undefined,
        policies,
        log: silent,
      }),
    ).toBe(0);
  });
});
