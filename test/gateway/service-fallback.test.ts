import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProcessAlive, readGatewayLiveness } from '../../src/home/pid-lock.js';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { createFakeSystemctl, killAll, runCli, serviceCliEntry } from '../support/fake-systemctl.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';

/**
 * No systemd here (the fake `systemctl` answers `offline`): `hermes gateway start|restart|stop|list`
 * manage a REAL detached gateway that dials a REAL connector process.
 */

const cli = serviceCliEntry();
const dir = tempDir('service-fallback');
const db = join(dir.path, 'connector.db');
const hermesHome = join(dir.path, 'hermes');
const fake = createFakeSystemctl({ systemState: 'offline', systemStateCode: 1 });
const seen = new Set<number>();
let connector: RunningProcess & { url: string };
let env: NodeJS.ProcessEnv;

const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(cli.path, args, { ...env, ...extra });

function livePid(home = hermesHome): number | null {
  const pid = readGatewayLiveness(home).pid;
  if (pid !== null) seen.add(pid);
  return pid;
}

interface LogEntry {
  pid?: number;
  msg?: string;
  code?: number;
}

function logEntries(home = hermesHome): LogEntry[] {
  return readFileSync(join(home, 'logs', 'gateway.log'), 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as LogEntry];
      } catch {
        return [];
      }
    });
}

const exitCodeLogged = (pid: number) =>
  logEntries().find((entry) => entry.pid === pid && entry.msg === 'gateway stopped')?.code;

/** Field 6 of /proc/<pid>/stat: the session id (equal to the PID for a setsid leader). */
function sessionId(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

const connected = () =>
  until(
    () => readRuntimeStatus(hermesHome)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    'relay connected',
  );

beforeAll(async () => {
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'svc-fallback',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'svc-fallback',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db);
  const enrolled = await hermes(
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-svc'],
    { HERMES_HOME: hermesHome, HERMES_PORTAL_TOKEN: accessToken },
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  env = {
    HOME: join(dir.path, 'home'),
    HERMES_HOME: hermesHome,
    HERMES_RESTART_DRAIN_TIMEOUT: '2',
    HERMES_SYSTEMD_USER_DIR: join(dir.path, 'user-units'),
    HERMES_SYSTEMD_SYSTEM_DIR: join(dir.path, 'system-units'),
    PATH: fake.path,
  };
}, 60_000);

afterAll(async () => {
  for (const home of [hermesHome, join(hermesHome, 'profiles', 'broken')]) livePid(home);
  killAll(seen);
  await connector?.stop();
  fake.remove();
  dir.remove();
  cli.remove();
});

describe('gateway lifecycle without systemd (real detached processes)', () => {
  it('start runs a detached gateway that connects to the real connector', async () => {
    const result = await run(['gateway', 'start']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      'systemd is not available here; managing a detached gateway process instead',
    );
    const pid = Number(/Started gateway for this profile \(PID (\d+)\)/.exec(result.stdout)?.[1]);
    seen.add(pid);
    expect(livePid()).toBe(pid);
    // It outlived the CLI that started it, in a session of its own.
    expect(isProcessAlive(pid)).toBe(true);
    expect(sessionId(pid)).toBe(pid);
    await connected();
    const status = await run(['gateway', 'status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, pid, gateway_state: 'running' });
    expect(statSync(join(hermesHome, 'logs', 'gateway.log')).mode & 0o777).toBe(0o600);
    expect(fake.calls()).toContainEqual(['--user', 'is-system-running']);
  });

  it('start again reports the gateway that is already running', async () => {
    const pid = livePid();
    const result = await run(['gateway', 'start']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`already running for this profile (PID ${pid})`);
    expect(livePid()).toBe(pid);
  });

  it('list shows the running gateway and an idle profile', async () => {
    mkdirSync(join(hermesHome, 'profiles', 'spare'), { recursive: true });
    const result = await run(['gateway', 'list', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const states = JSON.parse(result.stdout) as Array<{
      profile: string;
      running: boolean;
      pid: number | null;
    }>;
    expect(states).toEqual([
      expect.objectContaining({ profile: 'default', running: true, pid: livePid() }),
      expect.objectContaining({ profile: 'spare', running: false, pid: null }),
    ]);
  });

  it('restart drains the old gateway (exit 75) and starts a new one', async () => {
    const old = livePid() as number;
    const result = await run(['gateway', 'restart']);
    expect(result.code, result.stderr).toBe(0);
    const fresh = livePid();
    expect(fresh).not.toBeNull();
    expect(fresh).not.toBe(old);
    expect(result.stdout).toContain(`PID ${old} → ${fresh}`);
    expect(result.stdout).toContain('hermes gateway status');
    expect(isProcessAlive(old)).toBe(false);
    expect(exitCodeLogged(old)).toBe(75);
    await connected();
    const status = await run(['gateway', 'status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, pid: fresh, gateway_state: 'running' });
  });

  it('stop is a planned stop: the gateway exits 0 and its state is stopped', async () => {
    const pid = livePid() as number;
    const result = await run(['gateway', 'stop']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('✓ Stopped gateway for this profile');
    expect(result.stdout).toContain('hermes gateway status');
    expect(isProcessAlive(pid)).toBe(false);
    expect(exitCodeLogged(pid)).toBe(0);
    const status = await run(['gateway', 'status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({
      running: false,
      gateway_state: 'stopped',
      exit_reason: 'shutdown',
    });
  });

  it('stop with nothing running says so', async () => {
    const result = await run(['gateway', 'stop']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('✗ No gateway running for this profile');
  });

  it('restart with nothing running starts one', async () => {
    const result = await run(['gateway', 'restart']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('No gateway was running for this profile; starting one');
    const pid = livePid();
    expect(pid).not.toBeNull();
    const stopped = await run(['gateway', 'stop']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(isProcessAlive(pid as number)).toBe(false);
  });

  it('a gateway that dies during startup is reported with the tail of its log', async () => {
    const home = join(hermesHome, 'profiles', 'broken');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'config.yaml'), 'gateway:\n  relay_url: http://127.0.0.1:9\n');
    // A directory where the PID record goes: the gateway cannot take its lock and exits 1.
    mkdirSync(join(home, 'gateway.pid'));
    const result = await run(['--profile', 'broken', 'gateway', 'start']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the gateway exited during startup (code 1)');
    expect(result.stderr).toMatch(/\| .*Gateway already running/);
    expect(livePid(home)).toBeNull();
  });
});
