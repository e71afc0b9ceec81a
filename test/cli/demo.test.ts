import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePortRange } from '../support/ports.js';
import { hermes, type RunningProcess, startHermes, tempDir, until } from '../support/processes.js';
import { WebChatClient } from '../support/webchat-client.js';

/** `hermes demo` (what `npm start` runs) as a newcomer would use it, twice on the same data dir. */

const dir = tempDir('demo');
let demo: RunningProcess | undefined;

afterAll(async () => {
  await demo?.stop('SIGINT');
  dir.remove();
});

async function runDemo(portBase: number): Promise<RunningProcess> {
  const proc = startHermes(['demo', '--port-base', String(portBase), '--data-dir', join(dir.path, 'data')], {
    HERMES_AGENT: 'echo',
  });
  await proc.waitFor(/Press Ctrl-C to stop/, 40_000);
  return proc;
}

describe('hermes demo', () => {
  it('starts everything, answers in the web chat, exposes the dashboard, and stops cleanly on Ctrl-C', async () => {
    const base = await freePortRange(3);
    demo = await runDemo(base);
    const output = demo.output();
    for (const line of [
      '[1/5]',
      '[2/5]',
      '[3/5]',
      '[4/5]',
      '[5/5]',
      `http://127.0.0.1:${base}/chat/demo`,
      `http://127.0.0.1:${base + 2}/`,
    ]) {
      expect(output).toContain(line);
    }
    expect(output).toContain('enrolled; credentials written');
    expect(statSync(join(dir.path, 'data', 'gateway-home', '.env')).mode & 0o777).toBe(0o600);

    const visitor = new WebChatClient(`http://127.0.0.1:${base}`, 'demo', 'visitor-demo01');
    await visitor.open();
    visitor.say('hi there');
    await until(
      () => (visitor.agentTexts().includes('echo: hi there') ? true : undefined),
      15_000,
      'echo reply',
    );
    visitor.close();

    const token = /X-Hermes-Session-Token\): (\S+)/.exec(output)?.[1] ?? '';
    const status = (await (await fetch(`http://127.0.0.1:${base + 2}/api/status`)).json()) as Record<
      string,
      unknown
    >;
    expect(status).toMatchObject({ gateway_running: true, gateway_state: 'running' });
    const unauthorized = await fetch(`http://127.0.0.1:${base + 2}/api/gateway/drain`, { method: 'POST' });
    expect(unauthorized.status).toBe(401);
    const drained = await fetch(`http://127.0.0.1:${base + 2}/api/gateway/drain`, {
      method: 'POST',
      headers: { 'x-hermes-session-token': token, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'cancel' }),
    });
    expect(await drained.json()).toEqual({ ok: true, action: 'cancel', was_draining: false });

    // The admin console is on, with a token kept 0600 beside the database (never printed).
    expect(output).toContain(`http://127.0.0.1:${base}/admin`);
    const tokenFile = join(dir.path, 'data', 'admin-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const adminToken = readFileSync(tokenFile, 'utf8').trim();
    expect(output).not.toContain(adminToken);
    const overview = await fetch(`http://127.0.0.1:${base}/admin/api/overview`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(await overview.json()).toMatchObject({ tenants: 1, gateways: { total: 1, connected: 1 } });
    expect((await fetch(`http://127.0.0.1:${base}/admin/api/overview`)).status).toBe(401);

    expect(await demo.stop('SIGINT')).toBe(0);
    expect(demo.output()).toContain('stopped.');
    demo = undefined;
  });

  it('reuses the data dir on a second run', async () => {
    const base = await freePortRange(3);
    demo = await runDemo(base);
    expect(demo.output()).toContain('reusing the credentials');
    const visitor = new WebChatClient(`http://127.0.0.1:${base}`, 'demo', 'visitor-demo02');
    await visitor.open();
    visitor.say('second run');
    await until(
      () => (visitor.agentTexts().includes('echo: second run') ? true : undefined),
      15_000,
      'echo reply',
    );
    visitor.close();
    // `hermes doctor` on the demo's gateway home sees this run's relay (its .env follows the ports).
    const doctor = await hermes(['doctor', '--json'], {
      HERMES_HOME: join(dir.path, 'data', 'gateway-home'),
    });
    const checks = (JSON.parse(doctor.stdout) as { checks: { name: string; status: string }[] }).checks;
    const status = Object.fromEntries(checks.map((check) => [check.name, check.status]));
    expect(status).toMatchObject({ config: 'ok', credentials: 'ok', 'connector-auth': 'ok', inbound: 'ok' });
    expect(await demo.stop('SIGINT')).toBe(0);
    demo = undefined;
  });

  it('says clearly when a port is taken', async () => {
    const base = await freePortRange(3);
    const { createServer } = await import('node:net');
    const blocker = createServer().listen(base, '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    const proc = startHermes(['demo', '--port-base', String(base), '--data-dir', join(dir.path, 'other')]);
    const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
    blocker.close();
    expect(code).toBe(1);
    expect(proc.output()).toMatch(
      new RegExp(`port ${base} \\(connector\\) on 127\\.0\\.0\\.1 is already in use.*--port-base`),
    );
  });
});
