import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../src/home/env-file.js';
import { createFakeSystemctl, type FakeSystemctl, MAIN_CLI, runCli } from '../support/fake-systemctl.js';
import { freePort } from '../support/ports.js';
import {
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  tempDir,
} from '../support/processes.js';

/**
 * The built `hermes doctor` against a real connector process on 127.0.0.1 and a home enrolled
 * through the real `gateway enroll`: every check ok (also with a running gateway and its signed
 * receiver, whose socket the doctor's dial leaves alone), then the gateway revoked → the
 * credentials check fails with the enroll fix and exit 1. No secret is ever printed.
 */

interface Report {
  ok: boolean;
  checks: { name: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix?: string }[];
}

const dir = tempDir('doctor');
const db = join(dir.path, 'connector.db');
const home = join(dir.path, 'home');
let connector: RunningProcess & { url: string };
let fake: FakeSystemctl;
let env: NodeJS.ProcessEnv;
let secret: string;
let deliveryKey: string;

const doctor = (args: string[] = [], extra: NodeJS.ProcessEnv = {}) =>
  runCli(MAIN_CLI, ['doctor', ...args], { ...env, ...extra });
const byName = (report: Report) => Object.fromEntries(report.checks.map((check) => [check.name, check]));

beforeAll(async () => {
  const { id: tenant, accessToken } = await hermesJson<{ id: string; accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'doctor',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    tenant,
    '--db',
    db,
  ]);
  // No systemd answers here: the service check must not depend on the machine running the tests.
  fake = createFakeSystemctl({ systemState: 'offline', systemStateCode: 1 });
  env = { HERMES_HOME: home, PATH: fake.path };
  const enrolled = await runCli(
    MAIN_CLI,
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-doctor'],
    { ...env, HERMES_PORTAL_TOKEN: accessToken },
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  const values = parseEnvFile(readFileSync(join(home, '.env'), 'utf8'));
  secret = values.GATEWAY_RELAY_SECRET as string;
  deliveryKey = values.GATEWAY_RELAY_DELIVERY_KEY as string;
  expect(secret).toBeTruthy();
}, 90_000);

afterAll(async () => {
  await connector?.stop();
  fake?.remove();
  dir.remove();
});

describe('hermes doctor (built CLI, real connector)', () => {
  it('an enrolled home: every check ok, exit 0, the dial authenticated; no secret printed', async () => {
    const result = await doctor(['--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as Report;
    expect(report.ok).toBe(true);
    expect(report.checks.map((check) => check.name)).toEqual([
      'node',
      'native-module',
      'config',
      'stores',
      'ports',
      'permissions',
      'credentials',
      'connector-auth',
      'inbound',
      'clock',
      'service',
    ]);
    for (const check of report.checks) expect(check, check.name).toMatchObject({ status: 'ok' });
    expect(byName(report)['connector-auth']?.detail).toContain('accepted gateway gw-doctor');
    expect(result.stdout).not.toContain(secret);
    expect(result.stdout).not.toContain(deliveryKey);

    const human = await doctor();
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^✓ connector-auth {2}.*accepted gateway gw-doctor/m);
    expect(human.stdout).toMatch(/all 11 checks passed/);
  });

  it('a running gateway with a signed receiver: its port is its own, the self-delivery verifies, its socket stays up', async () => {
    const port = await freePort();
    const gateway: RunningProcess = startHermes(['gateway', 'run'], {
      ...env,
      GATEWAY_RELAY_INBOUND_PORT: String(port),
    });
    try {
      await gateway.waitFor(/inbound receiver listening/, 30_000);
      const result = await doctor(['--json'], { GATEWAY_RELAY_INBOUND_PORT: String(port) });
      expect(result.code, result.stdout).toBe(0);
      const checks = byName(JSON.parse(result.stdout) as Report);
      expect(checks.ports).toMatchObject({ status: 'ok' });
      expect(checks.ports?.detail).toContain('held by the running gateway');
      expect(checks.inbound).toMatchObject({ status: 'ok' });
      expect(checks.inbound?.detail).toContain('verified a self-delivery');
      expect(checks['connector-auth']).toMatchObject({ status: 'ok' });
      // The doctor's dial never said hello: the gateway's own connection was not replaced.
      const status = await runCli(MAIN_CLI, ['gateway', 'status', '--json'], env);
      expect(JSON.parse(status.stdout).platforms.relay.state).toBe('connected');
    } finally {
      await gateway.stop('SIGINT');
    }
    // The self-delivery was a no-op interrupt: nothing reached the inbox, no agent saw a message.
    const inbox = new Database(join(home, 'state', 'inbox.db'), { readonly: true });
    expect(inbox.prepare('SELECT COUNT(*) AS n FROM inbox').get()).toEqual({ n: 0 });
    inbox.close();
  }, 60_000);

  it('a revoked gateway: connector-auth fails with the enroll fix, exit 1', async () => {
    const revoked = await runCli(
      MAIN_CLI,
      ['connector', 'gateway', 'revoke', 'gw-doctor', '--yes', '--db', db],
      env,
    );
    expect(revoked.code, revoked.stderr).toBe(0);
    const result = await doctor(['--json']);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as Report;
    expect(report.ok).toBe(false);
    const auth = byName(report)['connector-auth'];
    expect(auth).toMatchObject({ status: 'fail' });
    expect(auth?.detail).toContain('4401');
    expect(auth?.fix).toContain('hermes gateway enroll --token <enrollment token>');
    expect(auth?.fix).toContain(connector.url);
    expect(report.checks.filter((check) => check.status === 'fail').map((check) => check.name)).toEqual([
      'connector-auth',
    ]);
    expect(result.stdout).not.toContain(secret);

    const human = await doctor();
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^✗ connector-auth/m);
    expect(human.stdout).toMatch(/^ {4}fix: `hermes gateway enroll --token <enrollment token>/m);
    expect(human.stdout).toMatch(/1 check failed/);
  });

  it('--connector-url points the network checks elsewhere; a closed port fails the dial with the curl fix', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const result = await doctor(['--json', '--connector-url', closed]);
    expect(result.code).toBe(1);
    const checks = byName(JSON.parse(result.stdout) as Report);
    expect(checks['connector-auth']).toMatchObject({ status: 'fail' });
    expect(checks['connector-auth']?.fix).toContain(`curl ${closed}/healthz`);
    expect(checks.clock).toMatchObject({ status: 'warn' });
    const bad = await doctor(['--connector-url', 'ftp://x']);
    expect(bad.code).toBe(2);
  });
});
