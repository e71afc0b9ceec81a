import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isoUtc } from '../../src/home/atomic-file.js';
import {
  acquireGatewayLock,
  consumeMarker,
  currentProcessStartTime,
  GatewayAlreadyRunningError,
  type GatewayLock,
  isProcessAlive,
  LOCK_FILE_NAME,
  PID_FILE_NAME,
  PLANNED_STOP_MARKER_NAME,
  parsePidRecord,
  readGatewayLiveness,
  readProcessStartTime,
  TAKEOVER_MARKER_NAME,
  writePidMarker,
  writePlannedStopMarker,
} from '../../src/home/pid-lock.js';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
const locks: GatewayLock[] = [];
const children: ChildProcess[] = [];

function tempHome(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermes-gw-lock-'));
  dirs.push(dir);
  return dir;
}

async function acquire(home: string, options: Parameters<typeof acquireGatewayLock>[1] = {}) {
  const lock = await acquireGatewayLock(home, { log, ...options });
  locks.push(lock);
  return lock;
}

afterEach(() => {
  for (const lock of locks.splice(0)) lock.release();
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function readRecord(home: string) {
  return JSON.parse(readFileSync(join(home, PID_FILE_NAME), 'utf8'));
}

/** A live child process that prints "ready" once its script (e.g. a SIGTERM handler) is installed. */
async function startChild(
  script: string,
): Promise<{ child: ChildProcess; exited: Promise<NodeJS.Signals | null> }> {
  const child = spawn(process.execPath, ['-e', `${script};console.log('ready')`], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  children.push(child);
  const exited = new Promise<NodeJS.Signals | null>((resolve) => {
    child.once('exit', (_code, signal) => resolve(signal));
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.once('error', reject);
  });
  return { child, exited };
}

function deadPid(): number {
  const result = spawnSync(process.execPath, ['-e', '']);
  if (!result.pid) throw new Error('spawn failed');
  return result.pid;
}

describe('gateway PID lock', () => {
  it('writes the PID record and gateway.lock, and release removes them', async () => {
    const home = tempHome();
    const lock = await acquire(home);
    const record = readRecord(home);
    expect(record).toEqual({
      pid: process.pid,
      kind: 'hermes-gateway',
      argv: process.argv,
      start_time: currentProcessStartTime(),
      hermes_home: home,
    });
    expect(JSON.parse(readFileSync(join(home, LOCK_FILE_NAME), 'utf8'))).toEqual(record);
    expect(readGatewayLiveness(home)).toEqual({ running: true, pid: process.pid });
    lock.release();
    expect(existsSync(join(home, PID_FILE_NAME))).toBe(false);
    expect(existsSync(join(home, LOCK_FILE_NAME))).toBe(false);
    expect(readGatewayLiveness(home)).toEqual({ running: false, pid: null });
  });

  it('creates a missing home', async () => {
    const home = join(tempHome(), 'profiles', 'work');
    await acquire(home);
    expect(readRecord(home).pid).toBe(process.pid);
  });

  it('a second acquire for the same home throws GatewayAlreadyRunningError', async () => {
    const home = tempHome();
    await acquire(home);
    const second = acquireGatewayLock(home, { log });
    await expect(second).rejects.toBeInstanceOf(GatewayAlreadyRunningError);
    await expect(acquireGatewayLock(home, { log })).rejects.toThrow(
      `Gateway already running (PID ${process.pid}). Use 'hermes gateway stop' or 'hermes gateway run --replace'.`,
    );
    // --replace cannot replace ourselves either
    await expect(acquireGatewayLock(home, { log, replace: true })).rejects.toMatchObject({
      pid: process.pid,
    });
    expect(readRecord(home).pid).toBe(process.pid);
  });

  it('refuses while another live process holds the record (JSON or legacy bare integer)', async () => {
    const { child } = await startChild('setInterval(()=>{},1000)');
    const pid = child.pid as number;
    const home = tempHome();
    writeFileSync(join(home, PID_FILE_NAME), JSON.stringify({ pid, start_time: readProcessStartTime(pid) }));
    await expect(acquireGatewayLock(home, { log })).rejects.toMatchObject({
      name: 'GatewayAlreadyRunningError',
      pid,
    });
    expect(readGatewayLiveness(home)).toEqual({ running: true, pid });
    writeFileSync(join(home, PID_FILE_NAME), `${pid}\n`);
    await expect(acquireGatewayLock(home, { log })).rejects.toMatchObject({ pid });
    expect(isProcessAlive(pid)).toBe(true);
  });

  it('takes over the stale record of a dead process', async () => {
    const home = tempHome();
    const pid = deadPid();
    writeFileSync(join(home, PID_FILE_NAME), JSON.stringify({ pid, kind: 'hermes-gateway', start_time: 1 }));
    expect(readGatewayLiveness(home)).toEqual({ running: false, pid: null });
    await acquire(home);
    expect(readRecord(home).pid).toBe(process.pid);
  });

  it('treats a live PID with a different start time as a recycled PID (stale)', async () => {
    const { child } = await startChild('setInterval(()=>{},1000)');
    const pid = child.pid as number;
    const start = readProcessStartTime(pid);
    if (start === null) return; // no /proc: start times are not comparable here
    const home = tempHome();
    writeFileSync(join(home, PID_FILE_NAME), JSON.stringify({ pid, start_time: start + 1 }));
    expect(readGatewayLiveness(home).running).toBe(false);
    await acquire(home);
    expect(readRecord(home).pid).toBe(process.pid);
    expect(isProcessAlive(pid)).toBe(true); // not signalled
  });

  it('a record naming our own PID that we do not hold is stale (recycled PID, e.g. a container restart)', async () => {
    const home = tempHome();
    writeFileSync(join(home, PID_FILE_NAME), JSON.stringify({ pid: process.pid }));
    expect(readGatewayLiveness(home).running).toBe(false);
    await acquire(home);
    expect(readGatewayLiveness(home)).toEqual({ running: true, pid: process.pid });
  });

  it('takes over an unparseable record', async () => {
    const home = tempHome();
    writeFileSync(join(home, PID_FILE_NAME), 'garbage');
    await acquire(home);
    expect(readRecord(home).pid).toBe(process.pid);
  });

  it('release removes only a record that still names this process', async () => {
    const home = tempHome();
    const lock = await acquire(home);
    const foreign = JSON.stringify({ pid: deadPid(), kind: 'hermes-gateway' });
    writeFileSync(join(home, PID_FILE_NAME), foreign);
    lock.release();
    expect(readFileSync(join(home, PID_FILE_NAME), 'utf8')).toBe(foreign);
    // and the home can be locked again afterwards (the foreign record is stale)
    await acquire(home);
  });

  it('--replace: SIGTERMs the running gateway, writes the takeover marker, then acquires', async () => {
    const { child, exited } = await startChild('setInterval(()=>{},1000)');
    const pid = child.pid as number;
    const home = tempHome();
    const targetStart = readProcessStartTime(pid);
    writeFileSync(
      join(home, PID_FILE_NAME),
      JSON.stringify({ pid, kind: 'hermes-gateway', argv: [], start_time: targetStart, hermes_home: home }),
    );
    await acquire(home, { replace: true, pollIntervalMs: 50 });
    expect(await exited).toBe('SIGTERM');
    expect(readRecord(home).pid).toBe(process.pid);
    const marker = JSON.parse(readFileSync(join(home, TAKEOVER_MARKER_NAME), 'utf8'));
    expect(marker).toMatchObject({
      target_pid: pid,
      target_start_time: targetStart,
      replacer_pid: process.pid,
    });
    // the target would consume it on its SIGTERM
    expect(consumeMarker(home, TAKEOVER_MARKER_NAME, pid, { startTime: targetStart })).toBe(true);
  });

  it('--replace: SIGKILLs a gateway that ignores SIGTERM past the timeout', async () => {
    const { child, exited } = await startChild("process.on('SIGTERM',()=>{});setInterval(()=>{},1000)");
    const pid = child.pid as number;
    const home = tempHome();
    writeFileSync(join(home, PID_FILE_NAME), JSON.stringify({ pid, start_time: readProcessStartTime(pid) }));
    await acquire(home, { replace: true, replaceTimeoutMs: 200, pollIntervalMs: 50 });
    expect(await exited).toBe('SIGKILL');
    expect(readRecord(home).pid).toBe(process.pid);
  });

  it('parses JSON and legacy integer records', () => {
    expect(parsePidRecord('123')).toMatchObject({ pid: 123, start_time: null });
    expect(parsePidRecord('{"pid":5,"start_time":9,"argv":["a"],"hermes_home":"/h"}')).toEqual({
      pid: 5,
      kind: 'hermes-gateway',
      argv: ['a'],
      start_time: 9,
      hermes_home: '/h',
    });
    for (const bad of ['', '{}', '{"pid":-1}', '"12"', '1.5', 'null']) expect(parsePidRecord(bad)).toBeNull();
  });

  it('isProcessAlive: self alive, dead child dead, nonsense false', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(isProcessAlive(deadPid())).toBe(false);
    expect(isProcessAlive(0)).toBe(false);
    expect(isProcessAlive(-1)).toBe(false);
  });
});

describe('takeover / planned-stop markers', () => {
  const T0 = Date.UTC(2026, 5, 26, 12, 0, 0);

  it('writePlannedStopMarker writes the reference fields', () => {
    const home = tempHome();
    writePlannedStopMarker(home, process.pid);
    const marker = JSON.parse(readFileSync(join(home, PLANNED_STOP_MARKER_NAME), 'utf8'));
    expect(marker).toMatchObject({
      target_pid: process.pid,
      target_start_time: currentProcessStartTime(),
      stopper_pid: process.pid,
    });
    expect(typeof marker.written_at).toBe('string');
  });

  it('consumes a fresh marker naming this process once, unlinking it', () => {
    const home = tempHome();
    writePlannedStopMarker(home, process.pid);
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, process.pid)).toBe(true);
    expect(existsSync(join(home, PLANNED_STOP_MARKER_NAME))).toBe(false);
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, process.pid)).toBe(false);
  });

  it('expires after 60 s (and unlinks the stale marker)', () => {
    const home = tempHome();
    writePidMarker(home, TAKEOVER_MARKER_NAME, 42, { startTime: 7, now: T0 });
    expect(consumeMarker(home, TAKEOVER_MARKER_NAME, 42, { now: T0 + 61_000, startTime: 7 })).toBe(false);
    expect(existsSync(join(home, TAKEOVER_MARKER_NAME))).toBe(false);
    writePidMarker(home, TAKEOVER_MARKER_NAME, 42, { startTime: 7, now: T0 });
    expect(consumeMarker(home, TAKEOVER_MARKER_NAME, 42, { now: T0 + 59_000, startTime: 7 })).toBe(true);
  });

  it('leaves a fresh marker naming another PID for its target', () => {
    const home = tempHome();
    writePidMarker(home, TAKEOVER_MARKER_NAME, 42, { startTime: 7, now: T0 });
    expect(consumeMarker(home, TAKEOVER_MARKER_NAME, 43, { now: T0 + 1000, startTime: 7 })).toBe(false);
    expect(existsSync(join(home, TAKEOVER_MARKER_NAME))).toBe(true);
  });

  it('compares start times only when both are known', () => {
    const home = tempHome();
    writePidMarker(home, PLANNED_STOP_MARKER_NAME, 42, { startTime: 7, now: T0 });
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, 42, { now: T0, startTime: 8 })).toBe(false);
    expect(existsSync(join(home, PLANNED_STOP_MARKER_NAME))).toBe(false);
    writePidMarker(home, PLANNED_STOP_MARKER_NAME, 42, { startTime: null, now: T0 });
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, 42, { now: T0, startTime: 8 })).toBe(true);
    writePidMarker(home, PLANNED_STOP_MARKER_NAME, 42, { startTime: 7, now: T0 });
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, 42, { now: T0, startTime: null })).toBe(true);
  });

  it('drops malformed or undated markers; accepts legacy epoch-seconds timestamps', () => {
    const home = tempHome();
    const path = join(home, PLANNED_STOP_MARKER_NAME);
    writeFileSync(path, '{not json');
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, 42, { now: T0 })).toBe(false);
    expect(existsSync(path)).toBe(false);
    writeFileSync(path, JSON.stringify({ target_pid: 42 }));
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, 42, { now: T0 })).toBe(false);
    expect(existsSync(path)).toBe(false);
    writeFileSync(path, JSON.stringify({ target_pid: 42, time: T0 / 1000 - 10 }));
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, 42, { now: T0, startTime: null })).toBe(true);
    writeFileSync(path, JSON.stringify({ target_pid: 42, written_at: isoUtc(T0 - 30_000) }));
    expect(consumeMarker(home, PLANNED_STOP_MARKER_NAME, 42, { now: T0, startTime: null })).toBe(true);
  });
});
