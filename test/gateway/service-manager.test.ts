import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { unitNameFor } from '../../src/gateway/service/identity.js';
import { chooseServiceManager, DetachedServiceManager } from '../../src/gateway/service/manager.js';
import { createFakeSystemctl, type FakeSystemctl } from '../support/fake-systemctl.js';
import { tempDir } from '../support/processes.js';

/** The manager's decisions, in process, with a fake `systemctl` first on PATH. */

let dir: { path: string; remove: () => void };
let fake: FakeSystemctl;
let saved: NodeJS.ProcessEnv;
let target: { home: string; profile: undefined; unit: string };

beforeEach(() => {
  saved = { ...process.env };
  dir = tempDir('service-manager');
  fake = createFakeSystemctl();
  const home = join(dir.path, 'home');
  mkdirSync(home);
  target = { home, profile: undefined, unit: unitNameFor(home) };
  process.env.HERMES_SYSTEMD_USER_DIR = join(dir.path, 'units');
  process.env.HERMES_SYSTEMD_SYSTEM_DIR = join(dir.path, 'system-units');
});

afterEach(() => {
  process.env = saved;
  fake.remove();
  dir.remove();
});

describe('chooseServiceManager', () => {
  it('falls back to a detached process, saying why, when systemctl is missing', () => {
    process.env.PATH = join(dir.path, 'empty');
    const { manager, fallbackReason } = chooseServiceManager(target, undefined);
    expect(manager.kind).toBe('detached');
    expect(fallbackReason).toMatch(
      /^systemd is not available here; managing a detached gateway process instead \(/,
    );
  });

  it('falls back when systemd runs but no unit is installed for the home', () => {
    process.env.PATH = fake.path;
    const { manager, fallbackReason } = chooseServiceManager(target, undefined);
    expect(manager.kind).toBe('detached');
    expect(fallbackReason).toBe(
      `no user systemd unit ${target.unit} is installed (see \`hermes gateway install\`); managing a detached gateway process instead`,
    );
  });

  it('uses systemd for an installed unit, and warns when its stop timeout is shorter than the drain', async () => {
    process.env.PATH = fake.path;
    mkdirSync(join(dir.path, 'units'));
    writeFileSync(join(dir.path, 'units', target.unit), '[Service]\nTimeoutStopSec=30\n');
    const { manager, fallbackReason } = chooseServiceManager(target, undefined);
    expect(manager.kind).toBe('systemd');
    expect(fallbackReason).toBeUndefined();
    const outcome = await manager.start(180);
    expect(outcome.kind).toBe('unit_started');
    expect(outcome.notices).toHaveLength(1);
    expect(outcome.notices[0]).toMatchObject({ level: 'warning' });
    expect(outcome.notices[0]?.text).toMatch(
      /^Stale systemd unit detected: .* TimeoutStopSec=30s but drain_timeout=180s/,
    );
    expect(fake.calls()).toContainEqual(['--user', 'start', target.unit]);
  });
});

describe('DetachedServiceManager', () => {
  it('reports that nothing runs rather than failing to stop it', async () => {
    const outcome = await new DetachedServiceManager(target).stop(1_000);
    expect(outcome).toEqual({ kind: 'not_running', notices: [] });
  });
});
