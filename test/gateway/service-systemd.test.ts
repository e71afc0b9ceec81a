import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startProgress } from '../../src/cli/format.js';
import { GATEWAY_KIND, readGatewayLiveness, readProcessStartTime } from '../../src/home/pid-lock.js';
import {
  createFakeSystemctl,
  type FakeSystemctl,
  isolatedEnv,
  killAll,
  MAIN_CLI,
  runCli,
  serviceCliEntry,
} from '../support/fake-systemctl.js';
import { freePort } from '../support/ports.js';
import { tempDir, until } from '../support/processes.js';

/**
 * `hermes gateway install|start|stop|restart|uninstall|list|migrate-legacy` against a fake
 * `systemctl` on PATH: the exact calls, the unit file, and the drain-aware restart / planned stop
 * with a real gateway process.
 */

const cli = serviceCliEntry();
const UNIT = 'hermes-gateway.service';

let dir: ReturnType<typeof tempDir>;
let fake: FakeSystemctl;
let env: NodeJS.ProcessEnv;
let root: string;
let userDir: string;
let systemDir: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = tempDir('service-systemd');
  fake = createFakeSystemctl();
  const home = join(dir.path, 'home');
  mkdirSync(home, { recursive: true });
  root = join(home, '.hermes');
  userDir = join(dir.path, 'user-units');
  systemDir = join(dir.path, 'system-units');
  // HOME points at the temp dir and HERMES_HOME is unset: the root home is the default ~/.hermes.
  env = {
    HOME: home,
    HERMES_SYSTEMD_USER_DIR: userDir,
    HERMES_SYSTEMD_SYSTEM_DIR: systemDir,
    PATH: fake.path,
  };
  // Enrolled homes (the root and profile "work"): install checks the configuration first.
  for (const target of [root, join(root, 'profiles', 'work')]) writeCredentials(target);
});

/** What `gateway enroll` leaves in a home's .env (mode 0600). */
function writeCredentials(target: string, mode = 0o600): void {
  mkdirSync(target, { recursive: true, mode: 0o700 });
  writeFileSync(
    join(target, '.env'),
    'GATEWAY_RELAY_URL=http://127.0.0.1:9\nGATEWAY_RELAY_ID=gw-test\nGATEWAY_RELAY_SECRET=s3cret-0123456789abcdef0123456789abcdef\n',
    { mode },
  );
  chmodSync(join(target, '.env'), mode);
}

afterEach(() => {
  killAll(children.flatMap((child) => (child.pid === undefined ? [] : [child.pid])));
  children.length = 0;
  fake.remove();
  dir.remove();
});

afterAll(() => cli.remove());

const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(cli.path, args, { ...env, ...extra });
const user = (...args: string[]) => ['--user', ...args];
const unitText = (path: string) => readFileSync(path, 'utf8');
const lines = (text: string) => text.split('\n');

/** A real foreground gateway (not started by the CLI under test), dialing a port nobody listens on. */
async function startRealGateway(): Promise<{ child: ChildProcess; exit: Promise<number | null> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN_CLI, 'gateway', 'run'], {
    env: isolatedEnv({
      ...env,
      GATEWAY_RELAY_URL: `http://127.0.0.1:${port}`,
      HERMES_RESTART_DRAIN_TIMEOUT: '2',
    }),
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  children.push(child);
  const exit = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  await until(() => readGatewayLiveness(root).pid === child.pid || undefined, 15_000, 'gateway lock');
  return { child, exit };
}

describe('gateway install', () => {
  it('writes the user unit, then daemon-reload, enable and start', async () => {
    const result = await run(['gateway', 'install', '--start-now'], { HERMES_RESTART_DRAIN_TIMEOUT: '200' });
    expect(result.code, result.stderr).toBe(0);
    expect(fake.calls()).toEqual([
      user('is-system-running'),
      user('daemon-reload'),
      user('enable', UNIT),
      user('start', UNIT),
    ]);
    const text = unitText(join(userDir, UNIT));
    expect(lines(text)).toEqual(
      expect.arrayContaining([
        `ExecStart=${process.execPath} ${MAIN_CLI} gateway run --replace`,
        `Environment=HERMES_HOME=${root}`,
        'Environment=HERMES_RESTART_DRAIN_TIMEOUT=200',
        'Restart=on-failure',
        'RestartSec=30',
        'RestartForceExitStatus=75',
        'RestartPreventExitStatus=78',
        'KillMode=mixed',
        'KillSignal=SIGTERM',
        'TimeoutStopSec=230',
        'StartLimitIntervalSec=600',
        'StartLimitBurst=5',
        'ExecReload=/bin/kill -USR1 $MAINPID',
        'WantedBy=default.target',
      ]),
    );
    expect(text).not.toMatch(/^User=/m);
    expect(text).not.toMatch(/^ExecStop=/m);
    expect(existsSync(join(systemDir, UNIT))).toBe(false);
  });

  it('takes TimeoutStopSec from the drain timeout in config.yaml, never below 60 + 30', async () => {
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'config.yaml'), 'agent:\n  restart_drain_timeout: 10\n');
    const result = await run(['gateway', 'install', '--no-start-now']);
    expect(result.code, result.stderr).toBe(0);
    expect(fake.calls()).toEqual([user('is-system-running'), user('daemon-reload'), user('enable', UNIT)]);
    const text = unitText(join(userDir, UNIT));
    expect(lines(text)).toContain('TimeoutStopSec=90');
    expect(text).not.toContain('HERMES_RESTART_DRAIN_TIMEOUT');
  });

  it('gives a profile its own unit that runs with --profile', async () => {
    const result = await run(['--profile', 'work', 'gateway', 'install', '--no-start-now']);
    expect(result.code, result.stderr).toBe(0);
    const unit = 'hermes-gateway-work.service';
    expect(fake.calls()).toEqual([user('is-system-running'), user('daemon-reload'), user('enable', unit)]);
    expect(lines(unitText(join(userDir, unit)))).toContain(
      `ExecStart=${process.execPath} ${MAIN_CLI} --profile work gateway run --replace`,
    );
    expect(lines(unitText(join(userDir, unit)))).toContain(`Environment=HERMES_HOME=${root}`);
  });

  it('refuses to overwrite a different unit without --force', async () => {
    mkdirSync(userDir, { recursive: true });
    writeFileSync(join(userDir, UNIT), '[Service]\nExecStart=/bin/true\n');
    const refused = await run(['gateway', 'install', '--no-start-now']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain('--force');
    expect(unitText(join(userDir, UNIT))).toBe('[Service]\nExecStart=/bin/true\n');
    expect(fake.calls()).toEqual([user('is-system-running')]);

    const forced = await run(['gateway', 'install', '--no-start-now', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(lines(unitText(join(userDir, UNIT)))).toContain('RestartForceExitStatus=75');

    // The same unit again is not a conflict.
    const again = await run(['gateway', 'install', '--no-start-now']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('is up to date');
  });

  it('--system writes the system unit with User= and calls systemctl without --user', async () => {
    const result = await run(['gateway', 'install', '--system', '--run-as-user', 'nobody']);
    expect(result.code, result.stderr).toBe(0);
    expect(fake.calls()).toEqual([
      ['is-system-running'],
      ['daemon-reload'],
      ['enable', UNIT],
      ['start', UNIT],
    ]);
    const text = unitText(join(systemDir, UNIT));
    expect(lines(text)).toEqual(expect.arrayContaining(['User=nobody', 'WantedBy=multi-user.target']));
    expect(existsSync(join(userDir, UNIT))).toBe(false);
  });

  it('rejects bad flag combinations as usage errors (exit 2)', async () => {
    const notSystem = await run(['gateway', 'install', '--run-as-user', 'nobody']);
    expect(notSystem.code).toBe(2);
    expect(notSystem.stderr).toContain('--system');
    const noUser = await run(['gateway', 'install', '--system', '--run-as-user', 'no-such-user-xyz']);
    expect(noUser.code).toBe(2);
    expect(noUser.stderr).toContain('no such user');
    const unknown = await run(['gateway', 'install', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(existsSync(join(userDir, UNIT))).toBe(false);
    expect(existsSync(join(systemDir, UNIT))).toBe(false);
  });

  it('fails clearly when systemd is not running here, writing nothing', async () => {
    fake.configure({ systemState: 'offline', systemStateCode: 1 });
    const result = await run(['gateway', 'install']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('systemd is not available here');
    expect(result.stderr).toContain('hermes gateway start');
    expect(existsSync(join(userDir, UNIT))).toBe(false);
  });

  it('reports a failing systemctl call as one line and exit 1', async () => {
    fake.configure({ failures: { enable: { code: 1, stderr: 'Failed to enable unit: Access denied' } } });
    const result = await run(['gateway', 'install']);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      `hermes: systemctl --user enable ${UNIT} failed (exit 1): Failed to enable unit: Access denied`,
    );
    expect(fake.calls()).toEqual([user('is-system-running'), user('daemon-reload'), user('enable', UNIT)]);
  });

  const needsUnprivileged = process.getuid?.() === 0 && !existsSync('/usr/bin/setpriv');
  it.skipIf(needsUnprivileged)('refuses a system install without root', async () => {
    const asRoot = process.getuid?.() === 0;
    const args = ['gateway', 'install', '--system', '--run-as-user', 'nobody'];
    const { HERMES_SYSTEMD_SYSTEM_DIR: _override, ...withoutOverride } = env;
    const result = asRoot
      ? await new Promise<{ code: number; stderr: string }>((resolveRun) => {
          const child = spawn(
            '/usr/bin/setpriv',
            ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cli.path, ...args],
            {
              env: isolatedEnv({ ...withoutOverride, HOME: '/nonexistent' }),
              stdio: ['ignore', 'ignore', 'pipe'],
            },
          );
          let stderr = '';
          child.stderr?.on('data', (chunk: Buffer) => {
            stderr += chunk.toString();
          });
          child.once('exit', (code) => resolveRun({ code: code ?? 1, stderr }));
        })
      : await runCli(cli.path, args, withoutOverride);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('needs root');
    expect(fake.calls()).toEqual([]);
  });
});

describe('gateway install checks the configuration first (as the service will see it)', () => {
  it('refuses a home without credentials: one line naming the check and the enroll fix, exit 78, nothing written', async () => {
    rmSync(join(root, '.env'));
    writeFileSync(join(root, 'config.yaml'), 'gateway:\n  relay_url: http://127.0.0.1:9\n');
    const result = await run(['gateway', 'install', '--no-start-now']);
    expect(result.code).toBe(78);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^hermes: refusing to install a unit that would fail at start: credentials: /);
    expect(lines[0]).toContain(
      'hermes gateway enroll --token <enrollment token> --connector-url http://127.0.0.1:9',
    );
    expect(existsSync(join(userDir, UNIT))).toBe(false);
    expect(fake.calls()).toEqual([]);
  });

  it('credentials only in this shell do not count: the service reads config.yaml and .env, not the shell', async () => {
    rmSync(join(root, '.env'));
    const result = await run(['gateway', 'install', '--no-start-now'], {
      GATEWAY_RELAY_URL: 'http://127.0.0.1:9',
      GATEWAY_RELAY_ID: 'gw-shell',
      GATEWAY_RELAY_SECRET: 's3cret-0123456789abcdef0123456789abcdef',
    });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('config: no relay configured');
    expect(existsSync(join(userDir, UNIT))).toBe(false);
  });

  it('refuses a .env readable by others, with the chmod fix', async () => {
    writeCredentials(root, 0o644);
    const result = await run(['gateway', 'install', '--no-start-now']);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('permissions: secret files readable by others');
    expect(result.stderr).toContain(`chmod 600 ${join(root, '.env')}`);
    expect(existsSync(join(userDir, UNIT))).toBe(false);
  });

  it('refuses a config.yaml the gateway cannot parse (what `gateway run` would exit 78 for)', async () => {
    writeFileSync(join(root, 'config.yaml'), 'gateway: [unclosed\n');
    const result = await run(['gateway', 'install', '--no-start-now']);
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/config: Invalid YAML in .*config\.yaml at line/);
  });

  it('--skip-checks installs anyway, with a warning', async () => {
    rmSync(join(root, '.env'));
    writeFileSync(join(root, 'config.yaml'), 'gateway:\n  relay_url: http://127.0.0.1:9\n');
    const result = await run(['gateway', 'install', '--no-start-now', '--skip-checks']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      'warning: installing despite a failed check (--skip-checks): credentials:',
    );
    expect(lines(unitText(join(userDir, UNIT)))).toContain('RestartPreventExitStatus=78');
  });
});

describe('hermes doctor: the service check asks systemctl', () => {
  const serviceCheck = async () => {
    const result = await runCli(MAIN_CLI, ['doctor', '--json'], env);
    return (
      JSON.parse(result.stdout) as {
        checks: { name: string; status: string; detail: string; fix?: string }[];
      }
    ).checks.find((check) => check.name === 'service');
  };

  it('installed, enabled and active → ok; failed → fail with journalctl; disabled → warn', async () => {
    const installed = await run(['gateway', 'install', '--no-start-now']);
    expect(installed.code, installed.stderr).toBe(0);
    fake.configure({ activeState: 'active' });
    expect(await serviceCheck()).toMatchObject({ status: 'ok', detail: `${UNIT} (user) enabled and active` });
    expect(fake.calls()).toEqual(expect.arrayContaining([user('is-enabled', UNIT), user('is-active', UNIT)]));
    fake.configure({ activeState: 'failed' });
    const failed = await serviceCheck();
    expect(failed).toMatchObject({ status: 'fail' });
    expect(failed?.fix).toContain(`journalctl --user -u ${UNIT} -n 50`);
    fake.configure({ activeState: 'active', enabledState: 'disabled' });
    expect(await serviceCheck()).toMatchObject({ status: 'warn', fix: `systemctl --user enable ${UNIT}` });
  });

  it('a unit written before RestartPreventExitStatus=78 warns with the reinstall fix', async () => {
    expect((await run(['gateway', 'install', '--no-start-now'])).code).toBe(0);
    const path = join(userDir, UNIT);
    writeFileSync(path, readFileSync(path, 'utf8').replace('RestartPreventExitStatus=78\n', ''));
    fake.configure({ activeState: 'active' });
    expect(await serviceCheck()).toMatchObject({ status: 'warn', fix: '`hermes gateway install --force`' });
  });
});

describe('connector install|uninstall', () => {
  const CONNECTOR_UNIT = 'hermes-connector.service';
  const envFile = () => join(dir.path, 'home', '.config', 'hermes', 'connector.env');

  it('writes the environment file (0600) from this shell, then a unit that names it, and enables it', async () => {
    const db = join(dir.path, 'relay', 'connector.db');
    const result = await run(['connector', 'install', '--no-start-now'], {
      RELAY_DB: db,
      RELAY_PORT: '8711',
      TELEGRAM_BOT_TOKEN: '123:secret-bot-token',
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      `✓ Wrote ${envFile()} (RELAY_DB, RELAY_PORT, TELEGRAM_BOT_TOKEN; mode 0600)`,
    );
    expect(statSync(envFile()).mode & 0o777).toBe(0o600);
    expect(readFileSync(envFile(), 'utf8')).toContain('TELEGRAM_BOT_TOKEN=');
    expect(fake.calls()).toEqual([
      user('is-system-running'),
      user('daemon-reload'),
      user('enable', CONNECTOR_UNIT),
    ]);
    const text = unitText(join(userDir, CONNECTOR_UNIT));
    expect(lines(text)).toEqual(
      expect.arrayContaining([
        `ExecStart=${process.execPath} ${MAIN_CLI} connector serve`,
        `EnvironmentFile=${envFile()}`,
        `WorkingDirectory=${process.cwd()}`,
        'Restart=on-failure',
        'RestartPreventExitStatus=78',
        'KillSignal=SIGTERM',
        'TimeoutStopSec=30',
        'WantedBy=default.target',
      ]),
    );
    expect(text).not.toContain('secret-bot-token');
    expect(text).not.toMatch(/^ExecReload=/m);
    expect(text).not.toMatch(/^RestartForceExitStatus=/m);
  });

  it('refuses settings `connector serve` would refuse: exit 78, one line, no unit (and no file from a bad shell)', async () => {
    const fromShell = await run(['connector', 'install', '--no-start-now'], {
      RELAY_WEBCHAT_RATE_LIMIT: 'lots',
    });
    expect(fromShell.code).toBe(78);
    expect(fromShell.stderr.trim().split('\n')).toHaveLength(1);
    expect(fromShell.stderr).toContain('RELAY_WEBCHAT_RATE_LIMIT must be <messages>/<seconds>');
    expect(existsSync(envFile())).toBe(false);

    mkdirSync(join(envFile(), '..'), { recursive: true });
    writeFileSync(envFile(), 'RELAY_PORT=abc\n', { mode: 0o600 });
    const fromFile = await run(['connector', 'install', '--no-start-now']);
    expect(fromFile.code).toBe(78);
    expect(fromFile.stderr).toContain(`${envFile()}: RELAY_PORT must be a number from 0 to 65535`);
    expect(readFileSync(envFile(), 'utf8')).toBe('RELAY_PORT=abc\n');
    expect(existsSync(join(userDir, CONNECTOR_UNIT))).toBe(false);
    expect(fake.calls()).toEqual([user('is-system-running'), user('is-system-running')]);
  });

  it('refuses an environment file readable by others', async () => {
    mkdirSync(join(envFile(), '..'), { recursive: true });
    writeFileSync(envFile(), 'RELAY_PORT=8700\n');
    chmodSync(envFile(), 0o644);
    const result = await run(['connector', 'install', '--no-start-now', '--env-file', envFile()]);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain(`fix: chmod 600 ${envFile()}`);
    expect(existsSync(join(userDir, CONNECTOR_UNIT))).toBe(false);
  });

  it('uninstall stops, disables and removes the unit; the environment file stays', async () => {
    expect(
      (await run(['connector', 'install', '--no-start-now'], { RELAY_DB: join(dir.path, 'c.db') })).code,
    ).toBe(0);
    fake.clear();
    // Irreversible: without a terminal and without --yes it refuses and changes nothing.
    const refused = await run(['connector', 'uninstall']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('pass --yes to confirm');
    expect(fake.calls()).toEqual([]);
    expect(existsSync(join(userDir, CONNECTOR_UNIT))).toBe(true);
    const result = await run(['connector', 'uninstall', '--yes']);
    expect(result.code, result.stderr).toBe(0);
    expect(fake.calls()).toEqual([
      user('is-system-running'),
      user('stop', CONNECTOR_UNIT),
      user('disable', CONNECTOR_UNIT),
      user('daemon-reload'),
    ]);
    expect(existsSync(join(userDir, CONNECTOR_UNIT))).toBe(false);
    expect(existsSync(envFile())).toBe(true);
    const again = await run(['connector', 'uninstall']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to uninstall');
  });
});

describe('gateway start|stop|restart|uninstall with an installed unit', () => {
  it('user scope: start, stop and restart are systemctl --user calls', async () => {
    expect((await run(['gateway', 'install', '--no-start-now'])).code).toBe(0);
    fake.clear();
    const started = await run(['gateway', 'start']);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toContain(`✓ Started ${UNIT}`);
    expect(fake.calls()).toEqual([user('is-system-running'), user('start', UNIT)]);

    fake.clear();
    const stopped = await run(['gateway', 'stop']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain(`✓ Stopped ${UNIT} service`);
    expect(stopped.stdout).toContain('hermes gateway status');
    expect(fake.calls()).toEqual([user('is-system-running'), user('stop', UNIT)]);

    fake.clear();
    const restarted = await run(['gateway', 'restart']);
    expect(restarted.code, restarted.stderr).toBe(0);
    expect(restarted.stdout).toContain('hermes gateway status');
    // Nothing was running, so there is nothing to drain: straight to systemctl restart.
    expect(fake.calls()).toEqual([user('is-system-running'), user('restart', UNIT)]);
  });

  it('system scope: the same calls without --user', async () => {
    expect(
      (await run(['gateway', 'install', '--system', '--run-as-user', 'nobody', '--no-start-now'])).code,
    ).toBe(0);
    for (const verb of ['start', 'stop', 'restart']) {
      fake.clear();
      const result = await run(['gateway', verb, '--system']);
      expect(result.code, result.stderr).toBe(0);
      expect(fake.calls()).toEqual([['is-system-running'], [verb, UNIT]]);
    }
    // Without --system the installed system unit is still found.
    fake.clear();
    expect((await run(['gateway', 'start'])).code).toBe(0);
    expect(fake.calls()).toEqual([['is-system-running'], ['start', UNIT]]);
  });

  it('uninstall stops, disables, removes the unit and reloads (user and system)', async () => {
    expect((await run(['gateway', 'install', '--no-start-now'])).code).toBe(0);
    expect(
      (await run(['gateway', 'install', '--system', '--run-as-user', 'nobody', '--no-start-now'])).code,
    ).toBe(0);
    fake.clear();
    // Irreversible: without a terminal and without --yes it refuses and changes nothing.
    const refused = await run(['gateway', 'uninstall']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('pass --yes to confirm');
    expect(fake.calls()).toEqual([]);
    expect(existsSync(join(userDir, UNIT))).toBe(true);
    const removedUser = await run(['gateway', 'uninstall', '--yes']);
    expect(removedUser.code, removedUser.stderr).toBe(0);
    expect(fake.calls()).toEqual([
      user('is-system-running'),
      user('stop', UNIT),
      user('disable', UNIT),
      user('daemon-reload'),
    ]);
    expect(existsSync(join(userDir, UNIT))).toBe(false);
    expect(existsSync(join(systemDir, UNIT))).toBe(true);

    fake.clear();
    const removedSystem = await run(['gateway', 'uninstall', '--system', '-y']);
    expect(removedSystem.code, removedSystem.stderr).toBe(0);
    expect(fake.calls()).toEqual([
      ['is-system-running'],
      ['stop', UNIT],
      ['disable', UNIT],
      ['daemon-reload'],
    ]);
    expect(existsSync(join(systemDir, UNIT))).toBe(false);

    fake.clear();
    const nothing = await run(['gateway', 'uninstall']);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toContain('nothing to uninstall');
    expect(fake.calls()).toEqual([]);
  });

  it('restart is drain-aware: SIGUSR1 first (the gateway exits 75), then systemctl restart', async () => {
    expect((await run(['gateway', 'install', '--no-start-now'])).code).toBe(0);
    const gateway = await startRealGateway();
    fake.clear();
    fake.configure({ activeState: 'activating' });
    const result = await run(['gateway', 'restart'], { HERMES_RESTART_DRAIN_TIMEOUT: '2' });
    expect(result.code, result.stderr).toBe(0);
    expect(await gateway.exit).toBe(75);
    expect(fake.calls()).toEqual([user('is-system-running'), user('is-active', UNIT), user('restart', UNIT)]);
  });

  it('restart leaves the gateway to systemd when it is already active again', async () => {
    expect((await run(['gateway', 'install', '--no-start-now'])).code).toBe(0);
    const gateway = await startRealGateway();
    fake.clear();
    fake.configure({ activeState: 'active' });
    const result = await run(['gateway', 'restart'], { HERMES_RESTART_DRAIN_TIMEOUT: '2' });
    expect(result.code, result.stderr).toBe(0);
    expect(await gateway.exit).toBe(75);
    expect(fake.calls()).toEqual([user('is-system-running'), user('is-active', UNIT)]);
  });

  it('stop writes the planned-stop marker before systemctl stop, so the gateway exits 0', async () => {
    expect((await run(['gateway', 'install', '--no-start-now'])).code).toBe(0);
    const gateway = await startRealGateway();
    // The fake SIGTERMs the gateway on `stop`, as systemd would; unplanned SIGTERM means exit 1.
    fake.configure({ stopPidFile: join(root, 'gateway.pid') });
    fake.clear();
    const result = await run(['gateway', 'stop']);
    expect(result.code, result.stderr).toBe(0);
    expect(await gateway.exit).toBe(0);
    expect(result.stdout).toContain(`✓ Stopped ${UNIT} service`);
    expect(result.stdout).not.toContain('not run by the service');
    // `systemctl stop` blocks the CLI, so it says up front what it waits for.
    expect(result.stderr).toMatch(
      /^Waiting for systemd to stop the gateway \(PID \d+\) after its running turns finish/m,
    );
    expect(fake.calls()).toEqual([user('is-system-running'), user('stop', UNIT)]);
  });

  it('stop (detached) says what it waits for and prints progress on stderr while the gateway drains', async () => {
    // A "gateway" holding this home's PID file that takes ~2.5 s to exit after SIGTERM.
    const slow = spawn(
      process.execPath,
      [
        '-e',
        "process.on('SIGTERM', () => setTimeout(() => process.exit(0), 2500)); setInterval(() => {}, 1000);",
      ],
      { stdio: 'ignore' },
    );
    children.push(slow);
    const pid = slow.pid as number;
    await until(() => readProcessStartTime(pid) !== null);
    await new Promise((resolve) => setTimeout(resolve, 300)); // its SIGTERM handler is installed
    writeFileSync(
      join(root, 'gateway.pid'),
      JSON.stringify({
        pid,
        kind: GATEWAY_KIND,
        argv: [],
        start_time: readProcessStartTime(pid),
        hermes_home: root,
      }),
    );
    expect(readGatewayLiveness(root)).toEqual({ running: true, pid });
    const empty = join(dir.path, 'no-systemctl');
    mkdirSync(empty, { recursive: true });
    const result = await run(['gateway', 'stop'], { PATH: empty });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`✓ Stopped gateway for this profile (PID ${pid})`);
    // Piped: the header naming the PID, then plain progress lines (no carriage return).
    expect(result.stderr).toContain(
      `Waiting for the gateway (PID ${pid}) to finish its running turns and stop (up to `,
    );
    expect(result.stderr).toMatch(/^ {2}… \d+ s of up to \d+ s/m);
    expect(result.stderr).not.toContain('\r');
  });
});

describe('fallback announcements', () => {
  it('with systemd but no unit installed, stop says so and manages the process itself', async () => {
    const result = await run(['gateway', 'stop']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`no user systemd unit ${UNIT} is installed`);
    expect(result.stdout).toContain('managing a detached gateway process instead');
    expect(result.stdout).toContain('✗ No gateway running for this profile');
    expect(fake.calls()).toEqual([user('is-system-running')]);
  });

  it('without systemctl on PATH it says systemd is not available', async () => {
    const empty = join(dir.path, 'empty-bin');
    mkdirSync(empty);
    const result = await run(['gateway', 'stop'], { PATH: empty });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      'systemd is not available here; managing a detached gateway process instead',
    );
    expect(result.stdout).toContain('no systemctl on PATH');
    expect(fake.calls()).toEqual([]);
  });
});

describe('gateway list', () => {
  it('lists the root home and every profile with its installed unit', async () => {
    expect((await run(['--profile', 'work', 'gateway', 'install', '--no-start-now'])).code).toBe(0);
    mkdirSync(join(root, 'profiles', 'idle'), { recursive: true });
    mkdirSync(join(root, 'profiles', 'Not A Profile'), { recursive: true });
    const result = await run(['gateway', 'list', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const states = JSON.parse(result.stdout) as Array<{
      profile: string;
      running: boolean;
      unit: string;
      installed: string[];
    }>;
    expect(states.map((state) => state.profile)).toEqual(['default', 'idle', 'work']);
    expect(states.find((state) => state.profile === 'work')).toMatchObject({
      running: false,
      unit: 'hermes-gateway-work.service',
      installed: ['user'],
    });
    expect(states.find((state) => state.profile === 'default')).toMatchObject({ unit: UNIT, installed: [] });
    const table = await run(['gateway', 'list']);
    expect(table.stdout).toMatch(/^work\s+no\s/m);
  });
});

describe('gateway migrate-legacy', () => {
  const legacyUnit = '[Service]\nExecStart=/opt/hermes/venv/bin/python -m hermes_cli.main gateway run\n';

  beforeEach(() => {
    mkdirSync(userDir, { recursive: true });
    mkdirSync(systemDir, { recursive: true });
    writeFileSync(join(userDir, 'hermes.service'), legacyUnit);
    writeFileSync(join(userDir, UNIT), '[Service]\nExecStart=/usr/bin/node main.js gateway run\n');
    // Another program that happens to be called hermes: never a candidate.
    writeFileSync(
      join(systemDir, 'hermes.service'),
      '[Service]\nExecStart=/usr/bin/hermes-mailer --daemon\n',
    );
  });

  it('--dry-run lists the legacy unit and removes nothing', async () => {
    const result = await run(['gateway', 'migrate-legacy', '--dry-run']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(join(userDir, 'hermes.service'));
    expect(result.stdout).toContain('left alone');
    expect(existsSync(join(userDir, 'hermes.service'))).toBe(true);
    expect(fake.calls()).toEqual([]);
  });

  it('refuses without -y when it cannot ask', async () => {
    const result = await run(['gateway', 'migrate-legacy']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('-y');
    expect(existsSync(join(userDir, 'hermes.service'))).toBe(true);
  });

  it('-y stops, disables and removes only the legacy gateway unit', async () => {
    const result = await run(['gateway', 'migrate-legacy', '-y', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ removed: [join(userDir, 'hermes.service')] });
    expect(fake.calls()).toEqual([
      user('is-system-running'),
      user('stop', 'hermes.service'),
      user('disable', 'hermes.service'),
      user('daemon-reload'),
    ]);
    expect(existsSync(join(userDir, 'hermes.service'))).toBe(false);
    expect(existsSync(join(userDir, UNIT))).toBe(true);
    expect(existsSync(join(systemDir, 'hermes.service'))).toBe(true);
  });
});

describe('progress of a long stop/restart wait (startProgress)', () => {
  afterEach(() => vi.useRealTimers());

  function sink(isTTY: boolean) {
    const writes: string[] = [];
    return { writes, stream: { isTTY, write: (text: string) => writes.push(text) } };
  }

  it('piped: says what it waits for, then a plain line every 5 s with the live detail', () => {
    vi.useFakeTimers();
    const start = Date.now();
    let turns = 2;
    const { writes, stream } = sink(false);
    const progress = startProgress({
      what: 'the gateway (PID 42) to finish its running turns and stop',
      limitMs: 195_000,
      detail: () => `${turns} turns running`,
      stream,
      now: () => Date.now(),
    });
    vi.advanceTimersByTime(999);
    expect(writes).toEqual([]); // a quick stop stays quiet
    vi.advanceTimersByTime(1);
    expect(writes).toEqual([
      'Waiting for the gateway (PID 42) to finish its running turns and stop (up to 195 s)\n',
      '  … 1 s of up to 195 s — 2 turns running\n',
    ]);
    turns = 1;
    vi.advanceTimersByTime(5_000);
    expect(writes.at(-1)).toBe('  … 6 s of up to 195 s — 1 turns running\n');
    expect(writes.every((text) => !text.includes('\r'))).toBe(true);
    progress.stop();
    vi.advanceTimersByTime(20_000);
    expect(writes).toHaveLength(3);
    expect(Date.now() - start).toBe(26_000);
  });

  it('on a terminal: one line rewritten every second, ended with a newline by stop()', () => {
    vi.useFakeTimers();
    const { writes, stream } = sink(true);
    const progress = startProgress({ what: 'the gateway to stop', limitMs: 30_000, stream });
    vi.advanceTimersByTime(3_000);
    expect(writes[0]).toBe('Waiting for the gateway to stop (up to 30 s)\n');
    expect(writes.slice(1)).toEqual([
      '\r\x1b[2K  … 1 s of up to 30 s',
      '\r\x1b[2K  … 2 s of up to 30 s',
      '\r\x1b[2K  … 3 s of up to 30 s',
    ]);
    progress.stop();
    expect(writes.at(-1)).toBe('\n');
  });

  it('prints nothing at all when the wait ends before the first second', () => {
    vi.useFakeTimers();
    const { writes, stream } = sink(true);
    const progress = startProgress({ what: 'the gateway to stop', limitMs: 30_000, stream });
    vi.advanceTimersByTime(500);
    progress.stop();
    vi.advanceTimersByTime(10_000);
    expect(writes).toEqual([]);
  });
});
