import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, hermes, type RunningProcess, startHermes, tempDir } from '../support/processes.js';
import { type FakeUpstream, send, startFakeUpstream } from './fake-upstream.js';

/** `hermes proxy …` as a real process (built CLI in dist/: run `npm run build` first). */

const REAL_KEY = 'sk-live-CLIREALKEY-9876543210zyxwQRST';
const LISTENING = /proxy listening on (http:\/\/[^\s]+)/;

let upstream: FakeUpstream;
const homes: { path: string; remove: () => void }[] = [];
const processes: RunningProcess[] = [];

function newHome(): string {
  const home = tempDir('proxy-cli');
  homes.push(home);
  return home.path;
}

/** Settings a child must not inherit from the test runner (children get process.env plus extras). */
const INHERITED = [
  'OPENAI_API_KEY',
  'OPENAI_BASE_URL',
  'HERMES_PROXY_HOST',
  'HERMES_PROXY_PORT',
  'HERMES_AGENT',
];
const saved = new Map<string, string | undefined>();

/** Env for a child: a fresh home, the fake upstream, and whatever the test adds. */
function childEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { HERMES_HOME: home, OPENAI_BASE_URL: `${upstream.url}/v1`, ...extra };
}

function startProxyProcess(args: string[], env: NodeJS.ProcessEnv): RunningProcess {
  const proc = startHermes(['proxy', 'start', ...args], env);
  processes.push(proc);
  return proc;
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  for (const name of INHERITED) {
    saved.set(name, process.env[name]);
    delete process.env[name];
  }
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  await Promise.all(processes.splice(0).map((proc) => proc.stop('SIGKILL')));
  upstream.requests.length = 0;
});

afterAll(async () => {
  await upstream?.stop();
  for (const home of homes) home.remove();
  for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
});

describe('hermes proxy (process)', () => {
  it('serves with the key from $HERMES_HOME/.env, reports status and providers, never prints the key, and cleans up on SIGTERM', async () => {
    const home = newHome();
    writeFileSync(join(home, '.env'), `OPENAI_API_KEY=${REAL_KEY}\n`, { mode: 0o600 });
    const env = childEnv(home);
    const proc = startProxyProcess(['--port', '0'], env);
    const url = (await proc.waitFor(LISTENING))[1] as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const response = await send(url, '/v1/chat/completions?x=1', {
      method: 'POST',
      headers: { authorization: 'Bearer whatever-the-client-has', 'content-type': 'application/json' },
      body: '{"messages":[{"role":"user","content":"cli-body-marker"}]}',
    });
    expect(response.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]?.headers.authorization).toBe(`Bearer ${REAL_KEY}`);
    expect(upstream.requests[0]?.url).toBe('/v1/chat/completions?x=1');
    expect(`${response.rawHeaders.join('\n')}${response.body}`).not.toContain(REAL_KEY);

    const statePath = join(home, 'proxy.json');
    expect(statSync(statePath).mode & 0o777).toBe(0o600);
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as Record<string, unknown>;
    expect(state).toMatchObject({ pid: proc.child.pid, host: '127.0.0.1', port: Number(new URL(url).port) });
    expect(state.provider).toBe('openai');
    expect(typeof state.started_at).toBe('string');

    const status = await hermes(['proxy', 'status', '--json'], env);
    expect(status.code).toBe(0);
    const summary = JSON.parse(status.stdout) as {
      running: boolean;
      pid: number;
      health: Record<string, unknown>;
      providers: { name: string; status: string; credential: string }[];
    };
    expect(summary.running).toBe(true);
    expect(summary.pid).toBe(proc.child.pid);
    expect(summary.health).toMatchObject({ status: 'ok', authenticated: true });
    expect(summary.providers[0]).toMatchObject({ name: 'openai', status: 'ready', credential: 'sk-…QRST' });
    const human = await hermes(['proxy', 'status'], env);
    expect(human.stdout).toContain(`✓ Proxy is running (PID: ${proc.child.pid})`);

    const providers = await hermes(['proxy', 'providers'], env);
    expect(providers.code).toBe(0);
    expect(providers.stdout).toMatch(/openai\s+OpenAI\s+ready\s+sk-…QRST/);
    const listed = await hermes(['proxy', 'list', '--json'], env);
    expect(JSON.parse(listed.stdout)).toMatchObject([{ name: 'openai', status: 'ready' }]);

    for (const output of [status.stdout, human.stdout, providers.stdout, listed.stdout]) {
      expect(output).not.toContain(REAL_KEY);
    }

    expect(await proc.stop('SIGTERM')).toBe(0);
    expect(existsSync(statePath)).toBe(false);
    const logs = proc.output();
    expect(logs).not.toContain(REAL_KEY);
    expect(logs).not.toContain('cli-body-marker');
    expect(logs).toMatch(/"method":"POST".*"path":"\/v1\/chat\/completions".*"status":200.*"ms":\d+/);

    const after = await hermes(['proxy', 'status'], env);
    expect(after.code).toBe(3); // LSB: not running
    expect(after.stdout).toContain('✗ Proxy is not running');
  });

  it('refuses to start without a credential (exit 2, reference message)', async () => {
    const home = newHome();
    const result = await hermes(['proxy', 'start', '--port', '0'], childEnv(home));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Not logged into OpenAI. Run `export OPENAI_API_KEY=<your key>` first.');
    expect(result.stdout).not.toMatch(LISTENING);
    expect(existsSync(join(home, 'proxy.json'))).toBe(false);

    const status = await hermes(['proxy', 'providers', '--json'], childEnv(home));
    expect(JSON.parse(status.stdout)).toMatchObject([
      { name: 'openai', status: 'not_logged_in', credential: null },
    ]);
  });

  it('refuses a non-loopback bind that did not come from an explicit --host', async () => {
    const home = newHome();
    const result = await hermes(
      ['proxy', 'start', '--port', '0'],
      childEnv(home, { OPENAI_API_KEY: REAL_KEY, HERMES_PROXY_HOST: '0.0.0.0' }),
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Refusing to bind the proxy to 0.0.0.0');
    expect(result.stdout).not.toMatch(LISTENING);
    expect(existsSync(join(home, 'proxy.json'))).toBe(false);
  });

  it('binds a non-loopback address given explicitly with --host, with a warning', async () => {
    const home = newHome();
    const proc = startProxyProcess(
      ['--host', '0.0.0.0', '--port', '0'],
      childEnv(home, { OPENAI_API_KEY: REAL_KEY }),
    );
    const url = (await proc.waitFor(LISTENING))[1] as string;
    expect(url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    expect(proc.output()).toMatch(/warning: the proxy listens on 0\.0\.0\.0, not loopback/);
    const health = await send(url.replace('0.0.0.0', '127.0.0.1'), '/health');
    expect(health.status).toBe(200);
    expect(await proc.stop('SIGTERM')).toBe(0);
  });

  it('reports a stale proxy.json as not running', async () => {
    const home = newHome();
    writeFileSync(
      join(home, 'proxy.json'),
      JSON.stringify({
        pid: 2 ** 22 + 4321,
        host: '127.0.0.1',
        port: 1,
        provider: 'openai',
        started_at: 'x',
      }),
    );
    const result = await hermes(['proxy', 'status', '--json'], childEnv(home));
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ running: false, stale: true, pid: 2 ** 22 + 4321 });
  });
});
