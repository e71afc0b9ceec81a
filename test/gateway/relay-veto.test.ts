import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hermes, tempDir } from '../support/processes.js';

/**
 * Current §14 case 53 end to end: `platforms.relay.enabled: false` in config.yaml turns the relay
 * off even with `GATEWAY_RELAY_URL` and a provisioning identity in the environment — the gateway
 * makes no connector request at all (no provision, no policy, no dial) and says why.
 */

const dir = tempDir('relay-veto');
let server: Server;
let requests: string[] = [];
let connectorUrl: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  connectorUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  dir.remove();
});

describe('platforms.relay.enabled: false', () => {
  for (const [name, yaml] of [
    ['top level', 'platforms:\n  relay:\n    enabled: false\n'],
    ['under gateway, as the string "false"', 'gateway:\n  platforms:\n    relay:\n      enabled: "false"\n'],
  ] as const) {
    it(`${name}: no connector traffic, exit 78 with the reason`, async () => {
      requests = [];
      const home = join(dir.path, name.replace(/\W+/g, '-'));
      const env = {
        HERMES_HOME: home,
        GATEWAY_RELAY_URL: connectorUrl,
        HERMES_PORTAL_TOKEN: 'portal-token-for-the-veto-test-000000',
        GATEWAY_RELAY_ID: '',
        GATEWAY_RELAY_SECRET: '',
      };
      mkdirSync(home, { recursive: true, mode: 0o700 });
      writeFileSync(join(home, 'config.yaml'), yaml);
      const run = await hermes(['gateway', 'run'], env);
      expect(run.code).toBe(78);
      expect(run.stderr).toContain('the relay is turned off');
      expect(run.stderr).not.toMatch(/\n\s+at /); // one line, no stack trace
      expect(requests).toEqual([]);
    });
  }
});
