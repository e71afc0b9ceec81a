import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type CheckResult,
  checkClockSkew,
  checkConfig,
  checkCredentialsAccepted,
  checkCredentialsPresent,
  checkInbound,
  checkNativeModule,
  checkNodeVersion,
  checkPermissions,
  checkPorts,
  checkServiceUnit,
  checkStores,
  dialRelay,
  type FileMode,
  offlineChecks,
  type ServiceProbe,
  satisfiesMinimum,
  summarize,
} from '../../src/gateway/doctor.js';
import { InboundReceiver } from '../../src/gateway/receiver.js';
import { type GatewayConfig, loadGatewayConfig } from '../../src/home/config.js';
import { tempDir } from '../support/processes.js';

/**
 * Each doctor check on its own, with stubs for what it asks the machine or the network: the ok
 * path, the failure path and its fix text. The real dial and the real receiver are exercised on
 * 127.0.0.1 (small local servers); the built CLI against a real connector is test/cli/doctor.test.ts.
 */

const dirs: { remove: () => void }[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.remove();
});

function config(env: NodeJS.ProcessEnv = {}, home = '/nonexistent/hermes-home'): GatewayConfig {
  return loadGatewayConfig({ home, env });
}

const PINNED = {
  GATEWAY_RELAY_URL: 'http://127.0.0.1:9',
  GATEWAY_RELAY_ID: 'gw-a',
  GATEWAY_RELAY_SECRET: 'secret-0123456789abcdef0123456789abcdef',
};
const notRunning = { running: false, pid: null, platforms: {} };

describe('node and the native module', () => {
  it('compares versions against the engines floor', () => {
    expect(satisfiesMinimum('20.19.0', '>=20.19')).toBe(true);
    expect(satisfiesMinimum('22.1.0', '>=20.19')).toBe(true);
    expect(satisfiesMinimum('20.18.3', '>=20.19')).toBe(false);
    expect(satisfiesMinimum('v18.20.0', '>=20.19')).toBe(false);
  });

  it('passes this Node, fails an old one with an install fix', () => {
    expect(checkNodeVersion(process.versions.node)).toMatchObject({ name: 'node', status: 'ok' });
    const old = checkNodeVersion('18.20.0', '>=20.19');
    expect(old).toMatchObject({ status: 'fail', detail: 'Node 18.20.0 is too old (needs >=20.19)' });
    expect(old.fix).toContain('install Node 20.19 or newer');
  });

  it('really opens better-sqlite3; a binding that does not load fails with the rebuild fix', () => {
    expect(checkNativeModule()).toMatchObject({ status: 'ok' });
    const broken = checkNativeModule(() => {
      throw new Error('was compiled against a different Node.js version using\nNODE_MODULE_VERSION 115');
    });
    expect(broken).toMatchObject({
      status: 'fail',
      detail: 'better-sqlite3 does not load: was compiled against a different Node.js version using',
    });
    expect(broken.fix).toContain('npm rebuild better-sqlite3');
  });
});

describe('config', () => {
  it('names the relay and agent when it loads', () => {
    expect(checkConfig({ ok: true, config: config(PINNED) })).toEqual({
      name: 'config',
      status: 'ok',
      detail: 'relay http://127.0.0.1:9, agent echo',
    });
  });

  it('fails a load error, a missing relay URL and a veto, each with its fix', () => {
    const broken = checkConfig(
      { ok: false, error: 'Invalid YAML in /h/config.yaml at line 1, column 10' },
      'work',
    );
    expect(broken).toMatchObject({
      status: 'fail',
      detail: 'Invalid YAML in /h/config.yaml at line 1, column 10',
    });
    expect(broken.fix).toContain('hermes --profile work gateway setup');
    const noUrl = checkConfig({ ok: true, config: config({}) });
    expect(noUrl).toMatchObject({ status: 'fail' });
    expect(noUrl.fix).toContain('gateway setup --relay-url');
    const vetoed = checkConfig({
      ok: true,
      config: { ...config(PINNED), relayDisabledBy: 'platforms.relay.enabled', relayUrl: undefined },
    });
    expect(vetoed).toMatchObject({ status: 'fail' });
    expect(vetoed.fix).toContain('remove platforms.relay.enabled');
  });

  it('warns about a setting the loader ignored', () => {
    const result = checkConfig({
      ok: true,
      config: config({ ...PINNED, GATEWAY_RELAY_INBOUND_PORT: 'abc' }),
    });
    expect(result).toMatchObject({ status: 'warn' });
    expect(result.detail).toContain('Inbound port "abc" is not a port number');
  });
});

describe('stores', () => {
  it('absent files are fine; readable ones are named; an unreadable one fails with the move-aside fix', () => {
    const dir = tempDir('doctor-stores');
    dirs.push(dir);
    expect(checkStores(dir.path).detail).toContain('inbox, history not created yet');
    mkdirSync(join(dir.path, 'state'));
    writeFileSync(join(dir.path, 'state', 'inbox.db'), 'this is not a database at all, just text');
    const broken = checkStores(dir.path);
    expect(broken).toMatchObject({ status: 'fail' });
    expect(broken.detail).toMatch(/inbox\.db cannot be read as a database: file is not a database/);
    expect(broken.fix).toContain('.broken');
    const stubbed = checkStores(dir.path, () => ['inbox']);
    expect(stubbed).toMatchObject({ status: 'ok' });
    expect(stubbed.detail).toContain('inbox readable; history not created yet');
  });
});

describe('ports', () => {
  const withPort = () => config({ ...PINNED, GATEWAY_RELAY_INBOUND_PORT: '8642' });

  it('nothing to bind without an inbound port', async () => {
    expect(await checkPorts(config(PINNED), notRunning)).toMatchObject({ status: 'ok' });
  });

  it('free → ok; taken → fail with the ss fix; a running gateway holding its own port → ok', async () => {
    expect(await checkPorts(withPort(), notRunning, async () => 'free')).toMatchObject({ status: 'ok' });
    const taken = await checkPorts(withPort(), notRunning, async () => 'in_use');
    expect(taken).toMatchObject({
      status: 'fail',
      detail: '127.0.0.1:8642 is already in use by another process',
    });
    expect(taken.fix).toContain("ss -ltnp 'sport = :8642'");
    const own = await checkPorts(
      withPort(),
      { running: true, pid: 42, platforms: { relay: { listener_base: 'http://127.0.0.1:8642' } } },
      async () => {
        throw new Error('must not probe a port the gateway holds');
      },
    );
    expect(own).toMatchObject({
      status: 'ok',
      detail: '127.0.0.1:8642 is held by the running gateway (PID 42)',
    });
  });

  it('the real probe sees a port a server holds', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const result = await checkPorts(
        config({ ...PINNED, GATEWAY_RELAY_INBOUND_PORT: String(port) }),
        notRunning,
      );
      expect(result).toMatchObject({ status: 'fail' });
    } finally {
      server.close();
    }
  });
});

describe('permissions', () => {
  const modes =
    (entries: Record<string, number>): ((path: string) => FileMode | undefined) =>
    (path) => {
      const mode = entries[path];
      return mode === undefined
        ? undefined
        : { mode, uid: process.getuid?.() ?? 0, isDirectory: path === '/h' };
    };

  it('a 0700 home with 0600 secrets is ok', () => {
    expect(checkPermissions('/h', modes({ '/h': 0o700, '/h/.env': 0o600 }), () => undefined)).toMatchObject({
      status: 'ok',
    });
  });

  it('a world-writable home fails with chmod 700', () => {
    expect(checkPermissions('/h', modes({ '/h': 0o777 }), () => undefined)).toMatchObject({
      status: 'fail',
      fix: 'chmod 700 /h',
    });
  });

  it('secret files readable by others fail with chmod 600 naming them; config.yaml only when it holds a secret', () => {
    const loose = checkPermissions(
      '/h',
      modes({ '/h': 0o700, '/h/.env': 0o644, '/h/state/inbox.db': 0o640, '/h/config.yaml': 0o644 }),
      () => 'gateway:\n  relay_url: x\n',
    );
    expect(loose).toMatchObject({ status: 'fail', fix: 'chmod 600 /h/.env /h/state/inbox.db' });
    const secretConfig = checkPermissions(
      '/h',
      modes({ '/h': 0o700, '/h/config.yaml': 0o644 }),
      () => 'gateway:\n  relay_secret: abc\n',
    );
    expect(secretConfig).toMatchObject({ status: 'fail', fix: 'chmod 600 /h/config.yaml' });
  });

  it('a group-writable home only warns', () => {
    expect(checkPermissions('/h', modes({ '/h': 0o770 }), () => undefined)).toMatchObject({ status: 'warn' });
  });
});

describe('credentials present', () => {
  it('pinned id + secret → ok, never the secret in the finding', () => {
    const result = checkCredentialsPresent(config(PINNED));
    expect(result).toMatchObject({ status: 'ok' });
    expect(result.detail).toContain('gw-a');
    expect(JSON.stringify(result)).not.toContain(PINNED.GATEWAY_RELAY_SECRET);
  });

  it('an identity token → ok (self-provision at start)', () => {
    expect(
      checkCredentialsPresent(
        config({ GATEWAY_RELAY_URL: 'http://x', HERMES_PORTAL_TOKEN: 'portal-token-abcdef' }),
      ),
    ).toMatchObject({ status: 'ok' });
  });

  it('nothing, or an id without its secret → fail with the enroll fix naming the connector', () => {
    const none = checkCredentialsPresent(config({ GATEWAY_RELAY_URL: 'http://relay.test' }), 'work');
    expect(none).toMatchObject({ status: 'fail' });
    expect(none.fix).toContain(
      'hermes --profile work gateway enroll --token <enrollment token> --connector-url http://relay.test',
    );
    const half = checkCredentialsPresent(config({ GATEWAY_RELAY_URL: 'http://x', GATEWAY_RELAY_ID: 'gw-a' }));
    expect(half).toMatchObject({ status: 'fail' });
    expect(half.detail).toContain('GATEWAY_RELAY_SECRET is not');
  });
});

describe('credentials accepted (the dial)', () => {
  const dialWith = (outcome: Awaited<ReturnType<typeof dialRelay>>) => async () => outcome;

  it('maps every dial outcome to a finding and a fix', async () => {
    const input = { config: config(PINNED), connectorUrl: 'http://127.0.0.1:9' };
    expect(await checkCredentialsAccepted({ ...input, dial: dialWith({ kind: 'accepted' }) })).toMatchObject({
      status: 'ok',
      detail: 'ws://127.0.0.1:9/relay accepted gateway gw-a (authenticated dial)',
    });
    const refused = await checkCredentialsAccepted({
      ...input,
      dial: dialWith({ kind: 'refused', code: 4401, reason: 'unauthorized' }),
    });
    expect(refused).toMatchObject({ status: 'fail' });
    expect(refused.fix).toContain(
      'gateway enroll --token <enrollment token> --connector-url http://127.0.0.1:9',
    );
    const expired = await checkCredentialsAccepted({
      ...input,
      dial: dialWith({ kind: 'refused', code: 4401, reason: 'expired' }),
    });
    expect(expired.fix).toContain('timedatectl set-ntp true');
    const http = await checkCredentialsAccepted({ ...input, dial: dialWith({ kind: 'http', status: 404 }) });
    expect(http).toMatchObject({ status: 'fail' });
    expect(http.detail).toContain('HTTP 404');
    const down = await checkCredentialsAccepted({
      ...input,
      dial: dialWith({ kind: 'error', message: 'connect ECONNREFUSED 127.0.0.1:9' }),
    });
    expect(down.fix).toContain('curl http://127.0.0.1:9/healthz');
  });

  it('does not dial a provisioned credential (that would mint one) and fails with nothing to present', async () => {
    let dialed = false;
    const dial = async () => {
      dialed = true;
      return { kind: 'accepted' as const };
    };
    const provisioned = await checkCredentialsAccepted({
      config: config({ GATEWAY_RELAY_URL: 'http://x', HERMES_PORTAL_TOKEN: 'portal-token-abcdef' }),
      connectorUrl: 'http://x',
      dial,
    });
    expect(provisioned).toMatchObject({ status: 'warn' });
    const none = await checkCredentialsAccepted({ config: config({}), connectorUrl: 'http://x', dial });
    expect(none).toMatchObject({ status: 'fail' });
    expect(dialed).toBe(false);
  });

  it('the real dial: pong → accepted; a 4401 close straight after the upgrade → refused; the token is the gateway’s', async () => {
    const { WebSocketServer } = await import('ws');
    const { verifyUpgradeToken, bearerToken } = await import('../../src/auth/index.js');
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => wss.once('listening', resolve));
    const seen: string[] = [];
    wss.on('connection', (ws, request) => {
      const verdict = verifyUpgradeToken(bearerToken(request.headers.authorization), [
        PINNED.GATEWAY_RELAY_SECRET,
      ]);
      seen.push(request.url ?? '');
      ws.on('message', () => seen.push('frame'));
      if (!verdict.ok || verdict.gatewayId !== 'gw-a') ws.close(4401, 'unauthorized');
    });
    const url = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    try {
      expect(await dialRelay({ url, gatewayId: 'gw-a', secret: PINNED.GATEWAY_RELAY_SECRET })).toEqual({
        kind: 'accepted',
      });
      expect(await dialRelay({ url, gatewayId: 'gw-a', secret: 'another-secret-0123456789abcdef' })).toEqual({
        kind: 'refused',
        code: 4401,
        reason: 'unauthorized',
      });
      // Dialed /relay, and never said anything (no hello): the socket is not a delivery target.
      expect(seen).toEqual(['/relay', '/relay']);
    } finally {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => wss.close(resolve));
    }
  });
});

describe('clock skew', () => {
  const at = (serverMs: number, localMs: number) => async () => ({
    date: new Date(serverMs).toUTCString(),
    sentAt: localMs - 10,
    receivedAt: localMs + 10,
  });
  const base = Date.parse('2026-12-04T10:00:00Z');

  it('ok within 30 s, warn to 240 s, fail beyond, with the NTP fix', async () => {
    const check = (skew: number) =>
      checkClockSkew({ connectorUrl: 'https://relay.test/relay', clock: at(base, base + skew * 1000) });
    expect(await check(0)).toMatchObject({ status: 'ok', detail: 'in step with the connector (±1 s)' });
    expect(await check(30)).toMatchObject({ status: 'ok', detail: '30 s ahead of the connector' });
    expect(await check(-31)).toMatchObject({ status: 'warn' });
    expect((await check(-31)).detail).toContain('31 s behind the connector');
    expect(await check(240)).toMatchObject({ status: 'warn' });
    const far = await check(-600);
    expect(far).toMatchObject({ status: 'fail' });
    expect(far.fix).toContain('timedatectl set-ntp true');
  });

  it('asks the connector’s /healthz and warns when it cannot tell', async () => {
    let asked = '';
    await checkClockSkew({
      connectorUrl: 'wss://relay.test/relay',
      clock: async (url) => {
        asked = url;
        return { date: new Date().toUTCString(), sentAt: Date.now(), receivedAt: Date.now() };
      },
    });
    expect(asked).toBe('https://relay.test/healthz');
    expect(
      await checkClockSkew({
        connectorUrl: 'http://x',
        clock: async () => ({ date: null, sentAt: 0, receivedAt: 0 }),
      }),
    ).toMatchObject({ status: 'warn' });
    expect(
      await checkClockSkew({
        connectorUrl: 'http://x',
        clock: async () => {
          throw new Error('ECONNREFUSED');
        },
      }),
    ).toMatchObject({ status: 'warn' });
  });
});

describe('inbound path', () => {
  const KEY = 'delivery-key-0123456789abcdef0123456789';
  const withReceiver = (extra: NodeJS.ProcessEnv = {}) =>
    config({ ...PINNED, GATEWAY_RELAY_INBOUND_PORT: '8642', GATEWAY_RELAY_DELIVERY_KEY: KEY, ...extra });
  const running = { running: true, pid: 7, platforms: { relay: { listener_base: 'http://127.0.0.1:8642' } } };

  it('outbound-only is ok; a port without a delivery key fails; a stopped gateway warns', async () => {
    expect(await checkInbound({ config: config(PINNED), status: notRunning })).toMatchObject({
      status: 'ok',
    });
    const noKey = await checkInbound({
      config: config({ ...PINNED, GATEWAY_RELAY_INBOUND_PORT: '8642' }),
      status: running,
    });
    expect(noKey).toMatchObject({ status: 'fail' });
    expect(noKey.fix).toContain('gateway enroll');
    const stopped = await checkInbound({ config: withReceiver(), status: notRunning });
    expect(stopped).toMatchObject({ status: 'warn' });
    expect(stopped.fix).toContain('hermes gateway start');
  });

  it('a receiver that accepts a forged signature fails; one on another key fails with the restart fix', async () => {
    const accepting = await checkInbound({ config: withReceiver(), status: running, post: async () => 200 });
    expect(accepting).toMatchObject({ status: 'fail' });
    expect(accepting.detail).toContain('ACCEPTED a delivery signed with a wrong key');
    const otherKey = await checkInbound({ config: withReceiver(), status: running, post: async () => 401 });
    expect(otherKey).toMatchObject({ status: 'fail' });
    expect(otherKey.fix).toContain('hermes gateway restart');
  });

  it('the real receiver: refuses the forged probe, accepts the signed no-op interrupt, dispatches nothing', async () => {
    const messages: unknown[] = [];
    const interrupts: unknown[] = [];
    const receiver = new InboundReceiver({
      host: '127.0.0.1',
      port: 0,
      verifyKeys: () => [KEY],
      onMessage: async (event) => {
        messages.push(event);
        return 'accepted';
      },
      onInterrupt: (sessionKey) => {
        interrupts.push(sessionKey);
      },
      log: pino({ level: 'silent' }),
    });
    const { url } = await receiver.start();
    try {
      const status = { running: true, pid: 7, platforms: { relay: { listener_base: url } } };
      const result = await checkInbound({ config: withReceiver(), status });
      expect(result).toMatchObject({ status: 'ok' });
      expect(result.detail).toContain(`${url}/interrupt verified a self-delivery`);
      expect(messages).toEqual([]);
      expect(interrupts).toEqual([]);
      // The public endpoint, when set, is what is probed (the path the connector uses), not the listener.
      const elsewhere = {
        running: true,
        pid: 7,
        platforms: { relay: { listener_base: 'http://127.0.0.1:1' } },
      };
      const viaEndpoint = await checkInbound({
        config: withReceiver({ GATEWAY_RELAY_ENDPOINT: url }),
        status: elsewhere,
      });
      expect(viaEndpoint).toMatchObject({ status: 'ok' });
    } finally {
      await receiver.stop();
    }
  });
});

describe('service unit', () => {
  const probe = (
    overrides: Partial<ServiceProbe> & { text?: string; enabled?: string; active?: string },
  ): ServiceProbe => ({
    available: () => ({ available: true }),
    installed: () => ['user'],
    unitText: () => overrides.text ?? 'RestartPreventExitStatus=78\nTimeoutStopSec=210\n',
    state: () => ({ enabled: overrides.enabled ?? 'enabled', active: overrides.active ?? 'active' }),
    ...overrides,
  });
  const check = (p: ServiceProbe) => checkServiceUnit({ home: '/h', drainSeconds: 180, probe: p });

  it('enabled and active → ok; none installed or no systemd → ok (optional)', () => {
    expect(check(probe({}))).toMatchObject({ status: 'ok' });
    expect(check(probe({ installed: () => [] }))).toMatchObject({ status: 'ok' });
    expect(
      check(probe({ installed: () => [], available: () => ({ available: false, reason: 'offline' }) })),
    ).toMatchObject({ status: 'ok' });
  });

  it('failed → fail with journalctl; old unit, disabled, inactive → warn with their fixes', () => {
    const failed = check(probe({ active: 'failed' }));
    expect(failed).toMatchObject({ status: 'fail' });
    expect(failed.fix).toContain('journalctl --user -u hermes-gateway-');
    const old = check(probe({ text: 'TimeoutStopSec=210\n' }));
    expect(old).toMatchObject({ status: 'warn' });
    expect(old.fix).toBe('`hermes gateway install --force`');
    expect(check(probe({ text: 'RestartPreventExitStatus=78\nTimeoutStopSec=90\n' }))).toMatchObject({
      status: 'warn',
    });
    expect(check(probe({ enabled: 'disabled' }))).toMatchObject({ status: 'warn' });
    expect(check(probe({ active: 'inactive' })).fix).toBe('`hermes gateway start`');
  });
});

describe('the report', () => {
  it('ok unless something failed; warnings do not fail', () => {
    const result = (status: CheckResult['status']): CheckResult => ({ name: status, status, detail: '' });
    expect(summarize([result('ok'), result('warn')]).ok).toBe(true);
    expect(summarize([result('ok'), result('fail')]).ok).toBe(false);
  });

  it('offline checks are config, credentials and permissions (what install runs)', () => {
    const names = offlineChecks({ home: '/nonexistent/h', loaded: { ok: true, config: config(PINNED) } }).map(
      (check) => check.name,
    );
    expect(names).toEqual(['config', 'credentials', 'permissions']);
    const broken = offlineChecks({ home: '/nonexistent/h', loaded: { ok: false, error: 'bad' } });
    expect(broken.map((check) => `${check.name}:${check.status}`)).toEqual(['config:fail', 'permissions:ok']);
  });
});
