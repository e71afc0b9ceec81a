import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireGatewayLock } from '../../src/home/pid-lock.js';
import { freePort } from '../support/ports.js';
import { hermes, tempDir } from '../support/processes.js';

const homes: { remove: () => void }[] = [];
afterAll(() => {
  for (const home of homes) home.remove();
});
function newHome(): string {
  const home = tempDir('status-exit');
  homes.push(home);
  return home.path;
}
const run = (home: string, args: string[]) => hermes(args, { HERMES_HOME: home });

describe('gateway status exits LSB style', () => {
  it('not running: exit 3 (human); --json exits 0 and says running: false', async () => {
    const home = newHome();
    const human = await run(home, ['gateway', 'status']);
    expect(human.stdout).toContain('✗ Gateway is not running');
    expect(human.code).toBe(3);
    const json = await run(home, ['gateway', 'status', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ running: false });
  });

  it('running (a live process holds the home’s gateway lock): exit 0', async () => {
    const home = newHome();
    const lock = await acquireGatewayLock(home);
    try {
      const human = await run(home, ['gateway', 'status']);
      expect(human.stdout).toContain(`✓ Gateway is running (PID: ${process.pid})`);
      expect(human.code).toBe(0);
    } finally {
      lock.release();
    }
  });

  it('documents the codes in --help', async () => {
    for (const command of [
      ['gateway', 'status'],
      ['proxy', 'status'],
    ]) {
      const help = await hermes([...command, '--help']);
      expect(help.stdout).toContain('Exit status (LSB): 0 running, 3 not running, 1 error');
    }
  });
});

describe('proxy status exits LSB style', () => {
  const proxyJson = (home: string, pid: number, port: number) =>
    writeFileSync(
      join(home, 'proxy.json'),
      JSON.stringify({ pid, host: '127.0.0.1', port, provider: 'openai', started_at: 'x' }),
    );

  it('no proxy.json, or a stale one: exit 3', async () => {
    const home = newHome();
    expect((await run(home, ['proxy', 'status'])).code).toBe(3);
    proxyJson(home, 2 ** 22 + 4321, 1);
    const stale = await run(home, ['proxy', 'status']);
    expect(stale.stdout).toContain('✗ Proxy is not running');
    expect(stale.code).toBe(3);
  });

  it('a live process whose /health does not answer, or an unreadable proxy.json: exit 1', async () => {
    const home = newHome();
    proxyJson(home, process.pid, await freePort());
    const silent = await run(home, ['proxy', 'status']);
    expect(silent.stdout).toContain('/health does not answer');
    expect(silent.code).toBe(1);
    writeFileSync(join(home, 'proxy.json'), '{not json');
    expect((await run(home, ['proxy', 'status'])).code).toBe(1);
    expect((await run(home, ['proxy', 'status', '--json'])).code).toBe(0);
  });

  it('running and answering /health: exit 0', async () => {
    const home = newHome();
    const server: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', upstream: 'fake', authenticated: false }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      proxyJson(home, process.pid, (server.address() as AddressInfo).port);
      const running = await run(home, ['proxy', 'status']);
      expect(running.stdout).toContain(`✓ Proxy is running (PID: ${process.pid})`);
      expect(running.code).toBe(0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
