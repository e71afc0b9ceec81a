import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isoUtc } from '../../src/home/atomic-file.js';
import {
  clearDrainRequest,
  currentInstantiationEpoch,
  DRAIN_REQUEST_FILE_NAME,
  DrainWatcher,
  drainNotificationSuppressed,
  drainRequested,
  instantiationEpochFrom,
  readDrainRequest,
  writeDrainRequest,
} from '../../src/home/drain-control.js';
import { currentProcessStartTime } from '../../src/home/pid-lock.js';
import {
  isBusy,
  isDrainable,
  isRuntimeStatusStale,
  readRuntimeStatus,
  STATUS_FILE_NAME,
  writeRuntimeStatus,
} from '../../src/home/status-file.js';

const dirs: string[] = [];
const watchers: DrainWatcher[] = [];
function tempHome(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermes-gw-state-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const watcher of watchers.splice(0)) watcher.stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const T0 = Date.UTC(2026, 5, 26, 12, 0, 0);
const EPOCH = 'boot-a:1234';

describe('runtime status file', () => {
  it('a first write of only active_agents creates the fresh record', () => {
    const home = tempHome();
    const written = writeRuntimeStatus(home, { activeAgents: 2 }, T0);
    const onDisk = JSON.parse(readFileSync(join(home, STATUS_FILE_NAME), 'utf8'));
    expect(onDisk).toEqual(written);
    expect(onDisk).toEqual({
      pid: process.pid,
      kind: 'hermes-gateway',
      argv: process.argv,
      start_time: currentProcessStartTime(),
      hermes_home: home,
      gateway_state: 'starting',
      exit_reason: null,
      restart_requested: false,
      active_agents: 2,
      platforms: {},
      session_store: { status: 'unknown' },
      updated_at: isoUtc(T0),
    });
  });

  it('writes compact JSON', () => {
    const home = tempHome();
    writeRuntimeStatus(home, { gatewayState: 'running', platform: { name: 'relay', state: 'connected' } });
    const text = readFileSync(join(home, STATUS_FILE_NAME), 'utf8');
    expect(text).toBe(JSON.stringify(JSON.parse(text)));
    expect(text).not.toMatch(/\n|": /);
  });

  it('touches only the keys in the patch: active_agents never clobbers gateway_state', () => {
    const home = tempHome();
    writeRuntimeStatus(home, { gatewayState: 'running', exitReason: 'previous', restartRequested: true });
    writeRuntimeStatus(home, { activeAgents: 3 });
    writeRuntimeStatus(home, { activeAgents: 1, gatewayState: undefined });
    const status = readRuntimeStatus(home);
    expect(status).toMatchObject({
      gateway_state: 'running',
      exit_reason: 'previous',
      restart_requested: true,
      active_agents: 1,
    });
  });

  it('explicit null sets null', () => {
    const home = tempHome();
    writeRuntimeStatus(home, { gatewayState: 'stopped', exitReason: 'signal' });
    writeRuntimeStatus(home, { gatewayState: null, exitReason: null });
    expect(readRuntimeStatus(home)).toMatchObject({ gateway_state: null, exit_reason: null });
  });

  it.each([
    [-5, 0],
    [2.9, 2],
    [Number.NaN, 0],
    [Number.POSITIVE_INFINITY, 0],
    [7, 7],
  ])('coerces active_agents %s to %s', (input, expected) => {
    const home = tempHome();
    expect(writeRuntimeStatus(home, { activeAgents: input }).active_agents).toBe(expected);
  });

  it('re-stamps the writer identity and updated_at, keeping unknown keys', () => {
    const home = tempHome();
    writeFileSync(
      join(home, STATUS_FILE_NAME),
      JSON.stringify({
        pid: 1,
        kind: 'other',
        argv: ['old'],
        start_time: 5,
        hermes_home: '/elsewhere',
        gateway_state: 'draining',
        active_agents: 4,
        updated_at: 1_700_000_000,
        code_version: '9.9',
      }),
    );
    const written = writeRuntimeStatus(home, { sessionStore: { status: 'ok' } }, T0 + 5000);
    expect(written).toMatchObject({
      pid: process.pid,
      kind: 'hermes-gateway',
      argv: process.argv,
      start_time: currentProcessStartTime(),
      hermes_home: home,
      gateway_state: 'draining',
      active_agents: 4,
      session_store: { status: 'ok' },
      updated_at: isoUtc(T0 + 5000),
      code_version: '9.9',
    });
  });

  it('keeps per-platform entries and merges their fields', () => {
    const home = tempHome();
    writeRuntimeStatus(home, { platform: { name: 'relay', state: 'connecting' } }, T0);
    writeRuntimeStatus(home, { platform: { name: 'telegram', state: 'disabled' } }, T0 + 1000);
    writeRuntimeStatus(
      home,
      { platform: { name: 'relay', state: 'failed', errorCode: 'relay_revoked', errorMessage: 'revoked' } },
      T0 + 2000,
    );
    writeRuntimeStatus(home, { activeAgents: 1 }, T0 + 3000);
    writeRuntimeStatus(
      home,
      { platform: { name: 'relay', errorCode: null, needsAttention: true } },
      T0 + 4000,
    );
    const status = readRuntimeStatus(home);
    expect(status?.platforms).toEqual({
      relay: {
        state: 'failed',
        error_code: null,
        error_message: 'revoked',
        needs_attention: true,
        updated_at: isoUtc(T0 + 4000),
        writer_pid: process.pid,
        writer_start_time: currentProcessStartTime(),
      },
      telegram: {
        state: 'disabled',
        updated_at: isoUtc(T0 + 1000),
        writer_pid: process.pid,
        writer_start_time: currentProcessStartTime(),
      },
    });
  });

  it('a corrupt status file is replaced by a fresh record on the next write', () => {
    const home = tempHome();
    writeFileSync(join(home, STATUS_FILE_NAME), '{"gateway_state":');
    expect(readRuntimeStatus(home)).toBeNull();
    expect(writeRuntimeStatus(home, { activeAgents: 1 }).gateway_state).toBe('starting');
  });

  it('readRuntimeStatus never throws: absent, corrupt, non-object → null', () => {
    const home = tempHome();
    expect(readRuntimeStatus(home)).toBeNull();
    expect(readRuntimeStatus(join(home, 'missing', 'dir'))).toBeNull();
    writeFileSync(join(home, STATUS_FILE_NAME), '[1,2]');
    expect(readRuntimeStatus(home)).toBeNull();
    mkdirSync(join(home, 'as-dir', STATUS_FILE_NAME), { recursive: true });
    expect(readRuntimeStatus(join(home, 'as-dir'))).toBeNull();
  });

  it('normalizes a legacy record on read', () => {
    const home = tempHome();
    writeFileSync(
      join(home, STATUS_FILE_NAME),
      JSON.stringify({ gateway_state: 'running', active_agents: '3', updated_at: T0 / 1000 }),
    );
    const status = readRuntimeStatus(home);
    expect(status).toMatchObject({
      gateway_state: 'running',
      active_agents: 3,
      platforms: {},
      updated_at: isoUtc(T0),
    });
    if (!status) throw new Error('unreachable');
    expect(isRuntimeStatusStale(status, T0 + 119_000)).toBe(false);
    expect(isRuntimeStatusStale(status, T0 + 121_000)).toBe(true);
  });

  it('busy/drainable follow the shared §1.3 derivation', () => {
    expect(isDrainable(true, 'running')).toBe(true);
    expect(isDrainable(false, 'running')).toBe(false);
    for (const state of ['draining', 'starting', 'stopped', null, undefined]) {
      expect(isDrainable(true, state)).toBe(false);
      expect(isBusy(true, state, 5)).toBe(false);
    }
    expect(isBusy(true, 'running', 1)).toBe(true);
    expect(isBusy(true, 'running', 0)).toBe(false);
    expect(isBusy(false, 'running', 3)).toBe(false);
    expect(isBusy(true, 'running', null)).toBe(false);
  });
});

describe('drain marker', () => {
  function writeMarker(home: string, body: unknown): void {
    writeFileSync(
      join(home, DRAIN_REQUEST_FILE_NAME),
      typeof body === 'string' ? body : JSON.stringify(body),
    );
  }

  it('writes the reference marker and reads it back', () => {
    const home = tempHome();
    const marker = writeDrainRequest(home, { now: T0, epoch: EPOCH });
    expect(JSON.parse(readFileSync(join(home, DRAIN_REQUEST_FILE_NAME), 'utf8'))).toEqual({
      action: 'drain',
      requested_at: isoUtc(T0),
      principal: 'drain-control',
      epoch: EPOCH,
      suppress_notification: false,
    });
    expect(readDrainRequest(home)).toEqual(marker);
    writeDrainRequest(home, { principal: 'nas', suppressNotification: true, now: T0 + 1000, epoch: EPOCH });
    expect(readDrainRequest(home)).toMatchObject({
      principal: 'nas',
      suppress_notification: true,
      requested_at: isoUtc(T0 + 1000),
    });
  });

  it('stamps the current instantiation epoch by default', () => {
    const home = tempHome();
    writeDrainRequest(home);
    expect(readDrainRequest(home)?.epoch).toBe(currentInstantiationEpoch());
    expect(drainRequested(home)).toBe(true);
  });

  it('clear returns true when it removed a marker, false otherwise', () => {
    const home = tempHome();
    expect(clearDrainRequest(home)).toBe(false);
    writeDrainRequest(home, { epoch: EPOCH });
    expect(clearDrainRequest(home)).toBe(true);
    expect(existsSync(join(home, DRAIN_REQUEST_FILE_NAME))).toBe(false);
    expect(clearDrainRequest(home)).toBe(false);
    expect(drainRequested(home, T0, EPOCH)).toBe(false);
  });

  it('absent → null; corrupt → {} (still active)', () => {
    const home = tempHome();
    expect(readDrainRequest(home)).toBeNull();
    expect(drainRequested(home, T0, EPOCH)).toBe(false);
    writeMarker(home, '{"action":"dr');
    expect(readDrainRequest(home)).toEqual({});
    expect(drainRequested(home, T0, EPOCH)).toBe(true);
    writeMarker(home, '[1]');
    expect(readDrainRequest(home)).toEqual({});
    expect(drainRequested(home, T0, EPOCH)).toBe(true);
  });

  it('epoch: a different known epoch is inactive; unknown on either side is honoured', () => {
    const home = tempHome();
    writeDrainRequest(home, { now: T0, epoch: 'boot-b:99' });
    expect(drainRequested(home, T0, EPOCH)).toBe(false);
    expect(drainRequested(home, T0, 'boot-b:99')).toBe(true);
    expect(drainRequested(home, T0, '')).toBe(true);
    writeDrainRequest(home, { now: T0, epoch: '' });
    expect(drainRequested(home, T0, EPOCH)).toBe(true);
    writeMarker(home, { action: 'drain', requested_at: isoUtc(T0) });
    expect(drainRequested(home, T0, EPOCH)).toBe(true);
  });

  it('age: older than 3600 s is inactive; exactly 3600 s, future, missing or unparseable are active', () => {
    const home = tempHome();
    writeDrainRequest(home, { now: T0, epoch: EPOCH });
    expect(drainRequested(home, T0 + 3_600_000, EPOCH)).toBe(true);
    expect(drainRequested(home, T0 + 3_601_000, EPOCH)).toBe(false);
    writeDrainRequest(home, { now: T0 + 3_600_000, epoch: EPOCH });
    expect(drainRequested(home, T0, EPOCH)).toBe(true); // future timestamp honoured
    writeMarker(home, { action: 'drain', epoch: EPOCH });
    expect(drainRequested(home, T0 + 10 * 3_600_000, EPOCH)).toBe(true);
    writeMarker(home, { action: 'drain', epoch: EPOCH, requested_at: 'last tuesday' });
    expect(drainRequested(home, T0 + 10 * 3_600_000, EPOCH)).toBe(true);
    writeMarker(home, { action: 'drain', epoch: EPOCH, requested_at: '2026-06-26T12:00:00' });
    expect(drainRequested(home, T0 + 3_601_000, EPOCH)).toBe(false); // naive timestamps are UTC
  });

  it('notification suppression needs an active marker with a truthy flag', () => {
    const home = tempHome();
    expect(drainNotificationSuppressed(home, T0, EPOCH)).toBe(false);
    writeDrainRequest(home, { now: T0, epoch: EPOCH });
    expect(drainNotificationSuppressed(home, T0, EPOCH)).toBe(false);
    writeDrainRequest(home, { now: T0, epoch: EPOCH, suppressNotification: true });
    expect(drainNotificationSuppressed(home, T0, EPOCH)).toBe(true);
    expect(drainNotificationSuppressed(home, T0 + 3_601_000, EPOCH)).toBe(false);
    expect(drainNotificationSuppressed(home, T0, 'boot-z:1')).toBe(false);
    writeMarker(home, '{corrupt');
    expect(drainNotificationSuppressed(home, T0, EPOCH)).toBe(false);
  });

  it('parses the instantiation epoch from boot_id and /proc/1/stat', () => {
    const tail = Array.from({ length: 30 }, (_, index) => String(index + 3)).join(' ');
    // Field 22 (tail index 19) is "22"; a ')' inside the command name must not confuse the split.
    expect(instantiationEpochFrom('abc-123\n', `1 (odd) name) ${tail}`)).toBe('abc-123:22');
    expect(instantiationEpochFrom(null, `1 (init) ${tail}`)).toBe('');
    expect(instantiationEpochFrom('abc', null)).toBe('');
    expect(instantiationEpochFrom('abc', '1 (init) S 0 0')).toBe('');
  });

  it.runIf(existsSync('/proc/1/stat') && existsSync('/proc/sys/kernel/random/boot_id'))(
    'reads a stable epoch on Linux',
    () => {
      const epoch = currentInstantiationEpoch();
      expect(epoch).toMatch(/^[0-9a-f-]+:\d+$/);
      expect(currentInstantiationEpoch()).toBe(epoch);
    },
  );
});

describe('DrainWatcher', () => {
  function recorder() {
    const seen: boolean[] = [];
    let waiter: ((value: boolean) => void) | undefined;
    return {
      seen,
      onChange: (active: boolean) => {
        seen.push(active);
        waiter?.(active);
        waiter = undefined;
      },
      next: () =>
        new Promise<boolean>((resolve) => {
          waiter = resolve;
        }),
    };
  }

  function start(home: string, onChange: (active: boolean) => void, options = {}): DrainWatcher {
    const watcher = new DrainWatcher(home, onChange, { epoch: EPOCH, ...options });
    watchers.push(watcher);
    watcher.start();
    return watcher;
  }

  it('reacts to write and clear through the file watch (polling effectively off)', async () => {
    const home = tempHome();
    const events = recorder();
    const watcher = start(home, events.onChange, { pollMs: 3_600_000 });
    expect(events.seen).toEqual([]);
    let next = events.next();
    writeDrainRequest(home, { epoch: EPOCH });
    expect(await next).toBe(true);
    expect(watcher.active).toBe(true);
    next = events.next();
    clearDrainRequest(home);
    expect(await next).toBe(false);
    expect(events.seen).toEqual([true, false]);
  });

  it('reports an already-present marker on start, and only transitions afterwards', async () => {
    const home = tempHome();
    writeDrainRequest(home, { epoch: EPOCH });
    const events = recorder();
    start(home, events.onChange, { pollMs: 20 });
    expect(events.seen).toEqual([true]);
    writeDrainRequest(home, { epoch: EPOCH }); // keep-alive refresh: no transition
    const next = events.next();
    clearDrainRequest(home);
    expect(await next).toBe(false);
    expect(events.seen).toEqual([true, false]);
  });

  it('works when the home directory is created later', async () => {
    const home = join(tempHome(), 'later');
    const events = recorder();
    start(home, events.onChange, { pollMs: 20 });
    const next = events.next();
    writeDrainRequest(home, { epoch: EPOCH });
    expect(await next).toBe(true);
  });

  it('polling re-evaluates expiry with the injected clock', async () => {
    const home = tempHome();
    writeDrainRequest(home, { now: T0, epoch: EPOCH });
    let clock = T0 + 1000;
    const events = recorder();
    start(home, events.onChange, { pollMs: 20, now: () => clock });
    expect(events.seen).toEqual([true]);
    const next = events.next();
    clock = T0 + 3_601_000;
    expect(await next).toBe(false);
  });

  it('ignores markers of another instantiation', async () => {
    const home = tempHome();
    const events = recorder();
    const watcher = start(home, events.onChange, { pollMs: 20 });
    writeDrainRequest(home, { epoch: 'boot-old:1' });
    expect(watcher.reconcile()).toBe(false);
    const next = events.next();
    writeDrainRequest(home, { epoch: EPOCH });
    expect(await next).toBe(true);
    expect(events.seen).toEqual([true]);
  });

  it('survives a throwing or rejecting onChange and keeps reporting', async () => {
    const home = tempHome();
    const seen: boolean[] = [];
    let resolveSecond: (() => void) | undefined;
    const second = new Promise<void>((resolve) => {
      resolveSecond = resolve;
    });
    const onChange = (active: boolean): void | Promise<void> => {
      seen.push(active);
      if (seen.length === 1) throw new Error('boom');
      if (seen.length === 2) {
        resolveSecond?.();
        return Promise.reject(new Error('async boom'));
      }
    };
    start(home, onChange, { pollMs: 20 });
    writeDrainRequest(home, { epoch: EPOCH });
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (seen.length >= 1) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    clearDrainRequest(home);
    await second;
    expect(seen).toEqual([true, false]);
  });

  it('stop() ends reporting', async () => {
    const home = tempHome();
    const events = recorder();
    const watcher = start(home, events.onChange, { pollMs: 20 });
    watcher.stop();
    writeDrainRequest(home, { epoch: EPOCH });
    expect(watcher.reconcile()).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 100)); // several poll periods
    expect(events.seen).toEqual([]);
  });
});
