import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type RunningDashboard, startDashboard } from '../../src/dashboard/server.js';
import { gatewayStatus } from '../../src/home/gateway-status.js';
import { GATEWAY_KIND, PID_FILE_NAME } from '../../src/home/pid-lock.js';
import { STATUS_FILE_NAME } from '../../src/home/status-file.js';
import { hermesJson, tempDir } from '../support/processes.js';

/**
 * One status for a gateway whose process died without writing its final state: the status file
 * still says `running` with two active turns, but the PID is gone. Every reader must say `stopped`.
 */

/** The pid of a process that has already exited (and has not been reused in the meantime). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(child.stdout);
}

let home: { path: string; remove: () => void };
let dashboard: RunningDashboard | undefined;

beforeEach(() => {
  home = tempDir('status');
  const pid = deadPid();
  writeFileSync(
    join(home.path, PID_FILE_NAME),
    JSON.stringify({ pid, kind: GATEWAY_KIND, argv: ['hermes', 'gateway', 'run'], start_time: 1 }),
  );
  writeFileSync(
    join(home.path, STATUS_FILE_NAME),
    JSON.stringify({
      pid,
      kind: GATEWAY_KIND,
      gateway_state: 'running',
      exit_reason: null,
      active_agents: 2,
      platforms: { relay: { state: 'connected', error_code: null, error_message: null } },
      updated_at: '2026-12-03T10:00:00Z',
    }),
  );
});

afterEach(async () => {
  await dashboard?.stop();
  dashboard = undefined;
  home.remove();
});

describe('gatewayStatus: a gateway that died while running', () => {
  it('is stopped, with no active turns, platforms or pid, and remembers what it last reported', () => {
    const status = gatewayStatus(home.path);
    expect(status).toMatchObject({
      running: false,
      pid: null,
      state: 'stopped',
      lastReportedState: 'running',
      activeAgents: 0,
      platforms: {},
      busy: false,
      drainable: false,
    });
  });

  it('is stopped for `hermes gateway status`, `hermes gateway list` and `/api/status` alike', async () => {
    const env = { HERMES_HOME: home.path, PATH: '/nonexistent' };
    const cli = await hermesJson<{ running: boolean; gateway_state: string; active_agents: number }>(
      ['gateway', 'status'],
      env,
    );
    expect(cli).toMatchObject({ running: false, gateway_state: 'stopped', active_agents: 0 });

    const list = await hermesJson<{ profile: string; running: boolean; gateway_state: string }[]>(
      ['gateway', 'list'],
      env,
    );
    expect(list.find((p) => p.profile === 'default')).toMatchObject({
      running: false,
      gateway_state: 'stopped',
    });

    dashboard = await startDashboard({
      home: home.path,
      host: '127.0.0.1',
      port: 0,
      log: pino({ level: 'silent' }),
      version: 'test',
      restartDrainTimeout: 180,
      env: {},
    });
    const response = await fetch(`${dashboard.url}/api/status`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      gateway_running: false,
      gateway_state: 'stopped',
      active_agents: 0,
      gateway_pid: null,
    });
  });
});
