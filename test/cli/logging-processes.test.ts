import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { until } from '../support/poll.js';
import { freePort, freePortRange } from '../support/ports.js';
import { CLI, hermes, type RunningProcess, startHermes, tempDir } from '../support/processes.js';

/**
 * The built CLI as a process: the log format it picks (stderr is a pipe here, so `auto` is JSON;
 * the terminal case is covered in process by logging.test.ts), `--log-level` / `HERMES_LOG_LEVEL`
 * in every part, and the Postgres password kept out of every error and log line.
 */

const dir = tempDir('logging');
const running: RunningProcess[] = [];
/** Settings the test runner's environment must not leak into the children. */
const CLEAN = { HERMES_LOG_LEVEL: '', HERMES_LOG_FORMAT: '', RELAY_LOG_LEVEL: '', NO_COLOR: '1' };
const INFO_JSON = /"level":30\b/;

afterEach(async () => {
  await Promise.all(running.splice(0).map((proc) => proc.stop('SIGKILL')));
});
afterAll(() => dir.remove());

function start(args: string[], env: NodeJS.ProcessEnv = {}): RunningProcess {
  const proc = startHermes(args, { ...CLEAN, ...env });
  running.push(proc);
  return proc;
}

/** Run a connector until it listens, stop it, and return everything it wrote. */
async function connectorOutput(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const db = join(dir.path, `c-${Math.random().toString(36).slice(2)}.db`);
  const proc = start([...args, 'connector', 'serve', '--port', '0', '--db', db], env);
  await proc.waitFor(/connector listening on/, 30_000);
  await proc.stop('SIGTERM');
  return proc.output();
}

describe('format', () => {
  it('writes JSON lines when stderr is piped, and pretty lines with --log-format pretty or HERMES_LOG_FORMAT', async () => {
    const auto = await connectorOutput([]);
    const jsonLine = auto.split('\n').find((line) => line.includes('"msg":"connector listening"'));
    expect(jsonLine, auto).toBeDefined();
    expect(JSON.parse(jsonLine as string)).toMatchObject({ level: 30, name: 'connector' });

    for (const output of [
      await connectorOutput(['--log-format', 'pretty']),
      await connectorOutput([], { HERMES_LOG_FORMAT: 'pretty' }),
    ]) {
      expect(output).toMatch(
        /^\d\d:\d\d:\d\d\.\d{3} INFO {2}connector connector listening url=http:\/\/127\.0\.0\.1:\d+ /m,
      );
      expect(output).not.toContain('"msg"');
    }
    const forcedJson = await connectorOutput(['--log-format', 'json'], { HERMES_LOG_FORMAT: 'pretty' });
    expect(forcedJson).toContain('"msg":"connector listening"');
  });

  it('a SIGTERM the moment the banner is out stops the connector cleanly, its log lines written', async () => {
    // Before the fix the handlers went in after the banner: 13 of 15 such starts died of the signal.
    for (let i = 0; i < 5; i++) {
      const db = join(dir.path, `banner-${i}.db`);
      const proc = start(['connector', 'serve', '--port', '0', '--db', db]);
      await proc.waitFor(/connector listening on/, 30_000);
      expect(await proc.stop('SIGTERM')).toBe(0);
      expect(proc.output()).toContain('received SIGTERM, stopping');
      expect(proc.output()).toContain('"msg":"connector listening"');
    }
  });

  it.skipIf(!existsSync('/usr/bin/script'))(
    'writes readable lines when stderr is a terminal (a real pseudo-terminal through script)',
    async () => {
      const db = join(dir.path, 'tty.db');
      // `timeout` only bounds a hung start; the test interrupts the connector once both lines are out
      // (a fixed few seconds was too short for a start on a loaded machine).
      const command = `timeout -s INT 60 ${process.execPath} ${CLI} connector serve --port 0 --db ${db}`;
      const child = spawn('/usr/bin/script', ['-qec', command, '/dev/null'], {
        env: { ...process.env, ...CLEAN, RELAY_ALLOW_PRIVATE_TARGETS: '127.0.0.0/8' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await until(
        () =>
          output.includes('connector listening on') &&
          / INFO {2}connector connector listening url=/.test(output),
        30_000,
        'both listening lines on the terminal',
      ).finally(() => {
        try {
          process.kill(-(child.pid as number), 'SIGINT');
        } catch {
          // already gone
        }
      });
      await exited;
      expect(output).toContain('connector listening on http://127.0.0.1:');
      expect(output).toMatch(/\d\d:\d\d:\d\d\.\d{3} INFO {2}connector connector listening url=/);
      expect(output).not.toContain('"msg"');
    },
  );

  it('refuses a bad --log-format or --log-level in one line (exit 2), a bad level variable of the server with 78', async () => {
    const badFormat = await hermes(
      ['--log-format', 'xml', 'connector', 'tenant', 'list', '--db', join(dir.path, 'x.db')],
      CLEAN,
    );
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr.trim().split('\n')).toEqual([
      'hermes: --log-format must be one of auto, json, pretty, got "xml"',
    ]);
    const badLevel = await hermes(['--log-level', 'loud', 'gateway', 'status'], CLEAN);
    expect(badLevel.code).toBe(2);
    expect(badLevel.stderr.trim().split('\n')).toHaveLength(1);
    expect(badLevel.stderr).toContain(
      '--log-level must be one of fatal, error, warn, info, debug, trace, silent',
    );

    const badEnv = await hermes(['dashboard', '--port', '0'], {
      ...CLEAN,
      HERMES_HOME: join(dir.path, 'bad-env-home'),
      HERMES_LOG_LEVEL: 'chatty',
    });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr.trim()).toBe(
      'hermes: HERMES_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "chatty"',
    );
    const badServe = await hermes(['connector', 'serve', '--port', '0', '--db', join(dir.path, 'y.db')], {
      ...CLEAN,
      RELAY_LOG_LEVEL: 'chatty',
    });
    expect(badServe.code).toBe(78);
    expect(badServe.stderr.trim()).toBe(
      'hermes: RELAY_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "chatty"',
    );
  });
});

describe('level in every part', () => {
  it('connector: --log-level, HERMES_LOG_LEVEL, and the older RELAY_LOG_LEVEL', async () => {
    expect(await connectorOutput([])).toMatch(INFO_JSON);
    expect(await connectorOutput(['--log-level', 'warn'])).not.toMatch(INFO_JSON);
    expect(await connectorOutput([], { HERMES_LOG_LEVEL: 'warn' })).not.toMatch(INFO_JSON);
    expect(await connectorOutput([], { RELAY_LOG_LEVEL: 'warn' })).not.toMatch(INFO_JSON);
    // The new name wins over the older one; the flag over both.
    expect(await connectorOutput([], { HERMES_LOG_LEVEL: 'info', RELAY_LOG_LEVEL: 'warn' })).toMatch(
      INFO_JSON,
    );
    expect(await connectorOutput(['--log-level', 'error'], { HERMES_LOG_LEVEL: 'info' })).not.toMatch(
      INFO_JSON,
    );
  });

  it('gateway, dashboard and proxy: an info line by default, none with --log-level warn or HERMES_LOG_LEVEL=warn', async () => {
    const closed = await freePort();
    const parts: { name: string; args: string[]; ready: RegExp; env: NodeJS.ProcessEnv; info: RegExp }[] = [
      {
        name: 'gateway',
        args: ['gateway', 'run'],
        ready: /gateway running for/,
        info: /"msg":"gateway running"/,
        env: {
          GATEWAY_RELAY_URL: `ws://127.0.0.1:${closed}/relay`,
          GATEWAY_RELAY_ID: '',
          GATEWAY_RELAY_SECRET: '',
          GATEWAY_RELAY_DELIVERY_KEY: '',
          GATEWAY_RELAY_INBOUND_PORT: '',
          HERMES_AGENT: 'echo',
        },
      },
      {
        name: 'dashboard',
        args: ['dashboard', '--port', '0'],
        ready: /dashboard on/,
        info: /"msg":"dashboard listening"/,
        env: {},
      },
      {
        name: 'proxy',
        args: ['proxy', 'start', '--port', '0'],
        ready: /proxy listening on/,
        info: /"msg":"proxy/,
        env: {
          OPENAI_API_KEY: 'sk-test-logging-0123456789',
          OPENAI_BASE_URL: `http://127.0.0.1:${closed}/v1`,
        },
      },
    ];
    for (const part of parts) {
      for (const variant of ['default', 'flag', 'env'] as const) {
        const home = join(dir.path, `${part.name}-${variant}`);
        const proc = start(variant === 'flag' ? ['--log-level', 'warn', ...part.args] : part.args, {
          HERMES_HOME: home,
          ...part.env,
          ...(variant === 'env' ? { HERMES_LOG_LEVEL: 'warn' } : {}),
        });
        const match = await proc.waitFor(part.ready, 30_000);
        if (part.name === 'proxy') {
          // The proxy logs each request at info.
          const url = /proxy listening on (http:\/\/\S+)/.exec(proc.output())?.[1];
          await fetch(`${url}/v1/models`).catch(() => undefined);
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
        // The info line may reach us after the ready line (stderr is read apart from stdout): wait
        // for it, rather than reading the output the moment the process has exited.
        if (variant === 'default') await proc.waitFor(part.info, 30_000);
        expect(match).toBeTruthy();
        await proc.stop(part.name === 'gateway' ? 'SIGINT' : 'SIGTERM');
        const output = proc.output();
        if (variant === 'default') expect(output, `${part.name} default`).toMatch(part.info);
        else expect(output, `${part.name} ${variant}`).not.toMatch(INFO_JSON);
      }
    }
  });

  it('demo: --log-level reaches the processes it starts (their log files)', async () => {
    const base = await freePortRange(3);
    const data = join(dir.path, 'demo');
    const demo = start(['--log-level', 'warn', 'demo', '--port-base', String(base), '--data-dir', data], {
      HERMES_AGENT: 'echo',
    });
    await demo.waitFor(/Press Ctrl-C to stop/, 60_000);
    await demo.stop('SIGINT');
    for (const name of ['connector', 'gateway', 'dashboard']) {
      const log = readFileSync(join(data, 'logs', `${name}.log`), 'utf8');
      expect(log, name).not.toMatch(INFO_JSON);
    }
  });
});

describe('the Postgres password', () => {
  it('appears in no output of the admin commands or of connector serve', async () => {
    const port = await freePort(); // nothing listens there
    const url = `postgres://relay:pa55word@127.0.0.1:${port}/x`;
    const runs = [
      await hermes(['connector', 'tenant', 'list', '--db', url], CLEAN),
      await hermes(['connector', 'deliveries', '--dead', '--db', url], CLEAN),
      await hermes(['-v', 'connector', 'route', 'list', '--db', url], CLEAN),
      await hermes(['connector', 'tenant', 'list'], { ...CLEAN, RELAY_DB: url }),
      await hermes(['connector', 'serve', '--port', '0', '--db', url], CLEAN),
      await hermes(['--log-level', 'trace', 'connector', 'serve', '--port', '0'], {
        ...CLEAN,
        RELAY_DB: url,
      }),
    ];
    for (const run of runs) {
      expect(run.code).not.toBe(0);
      expect(run.stdout + run.stderr).not.toContain('pa55word');
      expect(run.stderr).toContain(`postgres://relay:***@127.0.0.1:${port}/x`);
    }
  });
});
