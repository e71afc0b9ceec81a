import { closeSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  isJsonObject,
  isoUtc,
  parseIsoTimestamp,
  readJsonFile,
  removeFile,
  writeJsonAtomic,
} from './atomic-file.js';
import { ensureHome } from './home.js';

/**
 * One gateway per home (reference lifecycle §1.1, §1.7, CLI `--replace`).
 *
 * `gateway.pid` is the authority: a JSON record created with O_CREAT|O_EXCL, so exactly one of
 * several concurrent starters wins. Node has no flock, so the reference's `gateway.lock` OS lock is
 * emulated by "record + liveness": a record naming a live process (same start time, when both are
 * known) means a gateway runs; a record naming a dead process is stale and is taken over.
 * `gateway.lock` is still written with the same record, for readers that look at its body.
 *
 * `start_time` is the reference's: on Linux the process start time in clock ticks since boot
 * (field 22 of `/proc/<pid>/stat`), so records and markers stay comparable with the reference
 * gateway and a recycled PID is told apart from the gateway that wrote the record. Where `/proc` is
 * missing it is the process start in whole seconds since the epoch (`Date.now()/1000 -
 * process.uptime()`, computed once), which is never compared against another process.
 */

export const PID_FILE_NAME = 'gateway.pid';
export const LOCK_FILE_NAME = 'gateway.lock';
export const TAKEOVER_MARKER_NAME = '.gateway-takeover.json';
export const PLANNED_STOP_MARKER_NAME = '.gateway-planned-stop.json';
/** `hermes gateway idle` writes this (beside the planned-stop marker) before SIGTERM. */
export const IDLE_STOP_MARKER_NAME = '.gateway-idle.json';
const MARKER_TTL_SECONDS = 60;
export const GATEWAY_KIND = 'hermes-gateway';

/** Homes whose lock this process holds: a record naming our own PID is ours only if listed here. */
const heldHomes = new Set<string>();

export type LifecycleLog = Pick<Logger, 'debug' | 'info' | 'warn'>;

export interface PidRecord {
  pid: number;
  kind: string;
  argv: string[];
  start_time: number | null;
  hermes_home: string;
}

export class GatewayAlreadyRunningError extends Error {
  constructor(readonly pid: number) {
    super(
      `Gateway already running (PID ${pid}). Use 'hermes gateway stop' or 'hermes gateway run --replace'.`,
    );
    this.name = 'GatewayAlreadyRunningError';
  }
}

// ---------------------------------------------------------------------------------------------
// Process identity

/** In {@link parseProcStat}'s fields: field 3 (state) and field 22 (starttime, clock ticks since boot). */
const PROC_STAT_STATE = 0;
export const PROC_STAT_START_TIME = 19;

/**
 * The fields of a `/proc/<pid>/stat` line after the command name, which is split off at its last
 * `)` because the name itself may contain spaces and parentheses; null for anything else.
 */
export function parseProcStat(stat: string): string[] | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  return stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
}

function readProcStat(pid: number | 'self'): string[] | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** Start time of `pid` in clock ticks since boot (Linux), or null when it cannot be known. */
export function readProcessStartTime(pid: number): number | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const value = Number(readProcStat(pid)?.[PROC_STAT_START_TIME]);
  return Number.isSafeInteger(value) ? value : null;
}

let ownStartTime: number | undefined;

/** This process's `start_time` (see the module comment); stable for the life of the process. */
export function currentProcessStartTime(): number {
  if (ownStartTime === undefined) {
    ownStartTime = readProcessStartTime(process.pid) ?? Math.round(Date.now() / 1000 - process.uptime());
  }
  return ownStartTime;
}

/** Start times are compared only when both sides know them. */
function startTimesMatch(recorded: unknown, live: number | null): boolean {
  return typeof recorded !== 'number' || live === null || recorded === live;
}

/** Is `pid` a live process? EPERM (exists, not ours) counts as alive; zombies count as dead. */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = readProcStat(pid)?.[PROC_STAT_STATE];
  return state !== 'Z' && state !== 'X';
}

/** The record this process writes: `{pid, kind, argv, start_time, hermes_home}`. */
function ownPidRecord(home: string): PidRecord {
  return {
    pid: process.pid,
    kind: GATEWAY_KIND,
    argv: [...process.argv],
    start_time: currentProcessStartTime(),
    hermes_home: home,
  };
}

// ---------------------------------------------------------------------------------------------
// PID record

type PidRecordRead =
  | { kind: 'absent' }
  | { kind: 'invalid'; text: string }
  | { kind: 'ok'; record: PidRecord; text: string };

/** Parse a PID record: the JSON object, or a legacy bare integer. */
export function parsePidRecord(text: string): PidRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) && value > 0
      ? { pid: value, kind: GATEWAY_KIND, argv: [], start_time: null, hermes_home: '' }
      : null;
  }
  if (!isJsonObject(value)) return null;
  const pid = value.pid;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return null;
  return {
    pid,
    kind: typeof value.kind === 'string' ? value.kind : GATEWAY_KIND,
    argv: Array.isArray(value.argv) ? value.argv.map(String) : [],
    start_time: typeof value.start_time === 'number' ? value.start_time : null,
    hermes_home: typeof value.hermes_home === 'string' ? value.hermes_home : '',
  };
}

function readPidFile(path: string): PidRecordRead {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'absent' };
    return { kind: 'invalid', text: '' };
  }
  const record = parsePidRecord(text);
  return record ? { kind: 'ok', record, text } : { kind: 'invalid', text };
}

/** A record naming a live process with a matching start time. */
function isRecordLive(record: PidRecord): boolean {
  return isProcessAlive(record.pid) && startTimesMatch(record.start_time, readProcessStartTime(record.pid));
}

function isOwnRecord(record: PidRecord): boolean {
  return record.pid === process.pid && startTimesMatch(record.start_time, currentProcessStartTime());
}

/** Create the PID file exclusively; false when it already exists. */
function createPidFile(path: string, record: PidRecord): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, JSON.stringify(record));
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    removeFile(path);
    throw error;
  }
  closeSync(fd);
  return true;
}

/** Remove `path` only if it still holds `text` (narrows the window in which a fresh record could be lost). */
function removeIfUnchanged(path: string, text: string): void {
  try {
    if (readFileSync(path, 'utf8') === text) unlinkSync(path);
  } catch {
    // gone already, or unreadable: the exclusive create decides
  }
}

/** Liveness from the PID record (never from `updated_at`); never throws. */
export function readGatewayLiveness(home: string): { running: boolean; pid: number | null } {
  try {
    const read = readPidFile(join(home, PID_FILE_NAME));
    if (read.kind === 'ok' && isRecordLive(read.record)) {
      // Our own PID counts only if this process holds the lock (else it is a recycled PID).
      if (read.record.pid !== process.pid || heldHomes.has(resolve(home))) {
        return { running: true, pid: read.record.pid };
      }
    }
  } catch {
    // fall through
  }
  return { running: false, pid: null };
}

// ---------------------------------------------------------------------------------------------
// Lock

export interface GatewayLock {
  readonly pid: number;
  readonly home: string;
  /** Remove the PID file (and `gateway.lock`) if they still name this process. Idempotent. */
  release(): void;
}

export interface AcquireGatewayLockOptions {
  /** `--replace`: stop a running gateway of this home, then take over. */
  replace?: boolean;
  log?: LifecycleLog;
  /** How long the old gateway gets after SIGTERM before SIGKILL (default 10 s). */
  replaceTimeoutMs?: number;
  /** Poll interval while waiting for the old gateway to exit (default 0.5 s). */
  pollIntervalMs?: number;
}

/**
 * Take the single-instance lock of `home`. Throws `GatewayAlreadyRunningError` when a live gateway
 * holds it (and `replace` is not set, or that gateway is this process). A record of a dead process
 * (or of a recycled PID) is removed and the create retried once.
 */
export async function acquireGatewayLock(
  home: string,
  options: AcquireGatewayLockOptions = {},
): Promise<GatewayLock> {
  ensureHome(home);
  const pidPath = join(home, PID_FILE_NAME);
  const record = ownPidRecord(home);
  const log = options.log;

  if (!createPidFile(pidPath, record)) {
    let existing = readPidFile(pidPath);
    if (existing.kind === 'invalid') {
      // Possibly a starter between its exclusive create and its write: look once more.
      await sleep(100);
      existing = readPidFile(pidPath);
    }
    // Our own PID in a record we do not hold is a recycled PID (e.g. a container restart): stale.
    const ownPidNotHeld =
      existing.kind === 'ok' && existing.record.pid === process.pid && !heldHomes.has(resolve(home));
    if (existing.kind === 'ok' && !ownPidNotHeld && isRecordLive(existing.record)) {
      const other = existing.record;
      if (!options.replace || other.pid === process.pid) throw new GatewayAlreadyRunningError(other.pid);
      await replaceGateway(home, other, options);
    } else if (existing.kind !== 'absent') {
      log?.info(
        { pid: existing.kind === 'ok' ? existing.record.pid : null },
        'Removing stale gateway PID record',
      );
    }
    if (existing.kind !== 'absent') removeIfUnchanged(pidPath, existing.text);
    if (!createPidFile(pidPath, record)) {
      const winner = readPidFile(pidPath);
      throw new GatewayAlreadyRunningError(winner.kind === 'ok' ? winner.record.pid : 0);
    }
  }

  heldHomes.add(resolve(home));
  const lockPath = join(home, LOCK_FILE_NAME);
  try {
    writeJsonAtomic(lockPath, record, 0o644);
  } catch (error) {
    log?.debug({ err: error }, 'Could not write gateway.lock (informational only)');
  }

  let released = false;
  return {
    pid: process.pid,
    home,
    release() {
      if (released) return;
      released = true;
      heldHomes.delete(resolve(home));
      for (const path of [pidPath, lockPath]) {
        const read = readPidFile(path);
        if (read.kind === 'ok' && isOwnRecord(read.record)) removeIfUnchanged(path, read.text);
      }
    },
  };
}

async function replaceGateway(
  home: string,
  target: PidRecord,
  options: AcquireGatewayLockOptions,
): Promise<void> {
  const log = options.log;
  const timeoutMs = options.replaceTimeoutMs ?? 10_000;
  const pollMs = options.pollIntervalMs ?? 500;
  writePidMarker(home, TAKEOVER_MARKER_NAME, target.pid, {
    startTime: target.start_time ?? readProcessStartTime(target.pid),
    extra: { replacer_pid: process.pid, replacer_hermes_home: home },
  });
  log?.info({ pid: target.pid }, 'Replacing the running gateway (SIGTERM)');
  if (!signal(target.pid, 'SIGTERM')) return;
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(target.pid) && Date.now() < deadline) await sleep(pollMs);
  if (!isProcessAlive(target.pid)) return;
  log?.warn({ pid: target.pid, timeoutMs }, 'Old gateway did not exit in time; sending SIGKILL');
  if (!signal(target.pid, 'SIGKILL')) return;
  const killDeadline = Date.now() + 5_000;
  while (isProcessAlive(target.pid) && Date.now() < killDeadline) await sleep(100);
  if (isProcessAlive(target.pid)) throw new Error(`Gateway PID ${target.pid} did not exit after SIGKILL`);
}

/** Send a signal; false when the process is already gone. */
function signal(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') throw new Error(`Not permitted to signal gateway PID ${pid}`);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Takeover / planned-stop markers

export interface PidMarker {
  target_pid: number;
  target_start_time: number | null;
  written_at: string;
  [key: string]: unknown;
}

/** Write a marker `{target_pid, target_start_time, written_at, ...extra}` atomically. */
export function writePidMarker(
  home: string,
  name: string,
  targetPid: number,
  options: { startTime?: number | null; extra?: Record<string, unknown>; now?: Date | number } = {},
): PidMarker {
  const marker: PidMarker = {
    ...options.extra,
    target_pid: targetPid,
    target_start_time:
      options.startTime !== undefined
        ? options.startTime
        : targetPid === process.pid
          ? currentProcessStartTime()
          : readProcessStartTime(targetPid),
    written_at: isoUtc(options.now ?? Date.now()),
  };
  writeJsonAtomic(join(home, name), marker, 0o644);
  return marker;
}

/** `hermes gateway stop` writes this before SIGTERM so the gateway exits 0 (planned stop). */
export function writePlannedStopMarker(home: string, pid: number): PidMarker {
  return writePidMarker(home, PLANNED_STOP_MARKER_NAME, pid, { extra: { stopper_pid: process.pid } });
}

/**
 * `hermes gateway idle`: the planned stop is recorded as going idle (scale to zero, current §9):
 * the connector keeps the gateway's inbound until it dials again.
 */
export function writeIdleStopMarker(home: string, pid: number): PidMarker {
  return writePidMarker(home, IDLE_STOP_MARKER_NAME, pid, { extra: { stopper_pid: process.pid } });
}

function markerWrittenAtMs(marker: Record<string, unknown>): number {
  const writtenAt = marker.written_at ?? marker.time;
  if (typeof writtenAt === 'number') return writtenAt * 1000; // legacy: epoch seconds
  return parseIsoTimestamp(writtenAt);
}

/**
 * Consume the marker `name` for `pid` (default: this process). True only for a fresh
 * (≤ 60 s old) marker naming `pid` (and its start time, when both are known); it is unlinked then.
 * A stale, malformed or undated marker is unlinked and yields false. A fresh marker naming another
 * PID is left for its target.
 */
export function consumeMarker(
  home: string,
  name: string,
  pid: number = process.pid,
  options: { now?: number; startTime?: number | null } = {},
): boolean {
  const path = join(home, name);
  const read = readJsonFile(path);
  if (read.kind === 'absent') return false;
  const drop = () => {
    try {
      removeFile(path);
    } catch {
      // best effort
    }
    return false;
  };
  if (read.kind === 'invalid' || !isJsonObject(read.value)) return drop();
  const marker = read.value;
  const writtenAt = markerWrittenAtMs(marker);
  const now = options.now ?? Date.now();
  if (Number.isNaN(writtenAt) || now - writtenAt > MARKER_TTL_SECONDS * 1000) return drop();
  if (marker.target_pid !== pid) return false;
  const ownStart =
    options.startTime !== undefined
      ? options.startTime
      : pid === process.pid
        ? currentProcessStartTime()
        : readProcessStartTime(pid);
  drop();
  return startTimesMatch(marker.target_start_time, ownStart);
}
