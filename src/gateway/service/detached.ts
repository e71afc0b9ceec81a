import { spawn } from 'node:child_process';
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isoUtc } from '../../home/atomic-file.js';
import { rotateLogFile } from '../../home/log-rotation.js';
import { isProcessAlive, readGatewayLiveness, writePlannedStopMarker } from '../../home/pid-lock.js';
import { readRuntimeStatus } from '../../home/status-file.js';

/**
 * A gateway without a service manager (no systemd here, or no unit installed): `start` runs
 * `hermes gateway run` detached (own session, output appended to `$HERMES_HOME/logs/gateway.log`);
 * `stop` is the planned-stop marker + SIGTERM + wait (SIGKILL after drain + 15 s); `restart` is
 * SIGUSR1 (the gateway drains and exits 75), then a fresh detached start unless something else
 * (a supervisor) brought it back within 3 s.
 */

const LOG_DIR_NAME = 'logs';
const GATEWAY_LOG_NAME = 'gateway.log';
/** Extra time over the drain timeout a stopping gateway gets (interrupt grace, adapter shutdown). */
const STOP_GRACE_SECONDS = 15;
/** How long `restart` waits for a supervisor to bring the gateway back before starting it itself. */
export const RESTART_PICKUP_MS = 3_000;
const START_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const KILL_WAIT_MS = 5_000;

/** The built CLI entry (`dist/src/cli/main.js`) next to this module. */
export function cliEntryPath(): string {
  return fileURLToPath(new URL('../../cli/main.js', import.meta.url));
}

export function gatewayLogPath(home: string): string {
  return join(home, LOG_DIR_NAME, GATEWAY_LOG_NAME);
}

/** `drain + 15 s`, in ms: how long a stop/restart waits before escalating. */
export function stopWaitMs(drainSeconds: number): number {
  return (Math.max(0, drainSeconds) + STOP_GRACE_SECONDS) * 1000;
}

/** Wait until `pid` is gone; true if it exited within `timeoutMs`. */
async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

/** Send a signal; false when the process is already gone. A permission problem is one clear Error. */
function sendSignal(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') {
      throw new Error(`not permitted to signal gateway PID ${pid} (started by another user? try sudo)`);
    }
    throw error;
  }
}

/** The last `lines` lines written to `path` from byte `offset` on (pino JSON lines shown as their message). */
function readLogTail(path: string, offset = 0, lines = 20): string[] {
  let text = '';
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const start = Math.max(offset, size - 64 * 1024);
    const buffer = Buffer.alloc(Math.max(0, size - start));
    readSync(fd, buffer, 0, buffer.length, start);
    text = buffer.toString('utf8');
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-lines)
    .map(readableLogLine);
}

function readableLogLine(line: string): string {
  try {
    const entry = JSON.parse(line) as { msg?: unknown; err?: unknown; level?: unknown };
    if (typeof entry.msg !== 'string') return line;
    const level =
      typeof entry.level === 'number'
        ? entry.level >= 50
          ? 'error: '
          : entry.level >= 40
            ? 'warn: '
            : ''
        : '';
    const err = typeof entry.err === 'string' ? ` (${entry.err})` : '';
    return `${level}${entry.msg}${err}`;
  } catch {
    return line;
  }
}

export class DetachedStartError extends Error {
  constructor(
    message: string,
    readonly logTail: string[],
  ) {
    super(message);
    this.name = 'DetachedStartError';
  }
}

export interface StartDetachedOptions {
  home: string;
  profile: string | undefined;
  env: NodeJS.ProcessEnv;
  cliPath?: string;
  timeoutMs?: number;
}

export interface StartDetachedResult {
  pid: number;
  logPath: string;
  /** False when the gateway holds its lock but had not reported `running` before the timeout. */
  running: boolean;
}

/** Open the gateway log for appending with mode 0600 (a wider existing file is narrowed). */
function openGatewayLog(path: string): number {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rotateLogFile(path); // size-based, keeps 5 (src/home/log-rotation.ts)
  const fd = openSync(path, 'a', 0o600);
  try {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } catch {
    // best effort
  }
  return fd;
}

/**
 * Spawn `hermes [--profile X] gateway run` detached and wait until `gateway.pid` names it (then,
 * within the same timeout, until it reports `running`). Throws `DetachedStartError` with the log
 * tail when it exits first or never takes its lock.
 */
export async function startDetached(options: StartDetachedOptions): Promise<StartDetachedResult> {
  const { home, profile, env } = options;
  const logPath = gatewayLogPath(home);
  const fd = openGatewayLog(logPath);
  const offset = fstatSync(fd).size;
  writeSync(fd, `--- hermes gateway start ${isoUtc()} ---\n`);
  const args = [
    options.cliPath ?? cliEntryPath(),
    ...(profile ? ['--profile', profile] : []),
    'gateway',
    'run',
  ];
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const child = spawn(process.execPath, args, {
    cwd: home,
    env,
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  child.once('error', (error) => {
    spawnError = error;
  });
  child.once('exit', (code, signal) => {
    exited = { code, signal };
  });
  const failure = (message: string) => new DetachedStartError(message, readLogTail(logPath, offset));
  try {
    const deadline = Date.now() + (options.timeoutMs ?? START_TIMEOUT_MS);
    let locked = false;
    for (;;) {
      if (spawnError) throw failure(`could not start the gateway: ${spawnError.message}`);
      if (exited) {
        const how = exited.signal ? `signal ${exited.signal}` : `code ${exited.code}`;
        throw failure(`the gateway exited during startup (${how})`);
      }
      const pid = child.pid;
      const liveness = readGatewayLiveness(home);
      if (pid !== undefined && liveness.running && liveness.pid === pid) {
        locked = true;
        const state = readRuntimeStatus(home);
        if (state?.pid === pid && (state.gateway_state === 'running' || state.gateway_state === 'draining')) {
          return { pid, logPath, running: true };
        }
      }
      if (Date.now() >= deadline) {
        if (locked && pid !== undefined) return { pid, logPath, running: false };
        if (pid !== undefined && pid > 0) {
          try {
            sendSignal(pid, 'SIGTERM');
          } catch {
            // reported below
          }
        }
        throw failure(
          `the gateway did not take its lock within ${Math.round((options.timeoutMs ?? START_TIMEOUT_MS) / 1000)} s`,
        );
      }
      await sleep(POLL_MS);
    }
  } finally {
    child.unref();
  }
}

export interface StopResult {
  /** False when no gateway was running. */
  stopped: boolean;
  pid: number | null;
  /** True when it had to be SIGKILLed. */
  killed: boolean;
}

/**
 * Planned stop of the gateway of `home`: planned-stop marker, SIGTERM, wait ≤ `waitMs`, then
 * SIGKILL (`onKill` is told first).
 */
export async function stopGatewayProcess(
  home: string,
  waitMs: number,
  onKill?: (pid: number) => void,
): Promise<StopResult> {
  const liveness = readGatewayLiveness(home);
  if (!liveness.running || liveness.pid === null) return { stopped: false, pid: null, killed: false };
  const pid = liveness.pid;
  writePlannedStopMarker(home, pid);
  if (!sendSignal(pid, 'SIGTERM')) return { stopped: true, pid, killed: false };
  if (await waitForExit(pid, waitMs)) return { stopped: true, pid, killed: false };
  onKill?.(pid);
  await killAndWait(pid);
  return { stopped: true, pid, killed: true };
}

async function killAndWait(pid: number): Promise<void> {
  if (!sendSignal(pid, 'SIGKILL')) return;
  if (!(await waitForExit(pid, KILL_WAIT_MS)))
    throw new Error(`gateway PID ${pid} did not exit after SIGKILL`);
}

export interface RestartSignalResult {
  /** The PID that was asked to restart, or null when no gateway was running. */
  pid: number | null;
  /** True when it exited within the wait. */
  exited: boolean;
}

/** SIGUSR1 to the running gateway (drain, then exit 75) and wait ≤ `waitMs` for it to exit. */
export async function signalRestart(home: string, waitMs: number): Promise<RestartSignalResult> {
  const liveness = readGatewayLiveness(home);
  if (!liveness.running || liveness.pid === null) return { pid: null, exited: false };
  const pid = liveness.pid;
  if (!sendSignal(pid, 'SIGUSR1')) return { pid, exited: true };
  return { pid, exited: await waitForExit(pid, waitMs) };
}

/** Escalate a restart that did not finish: SIGKILL (the caller warns first). */
export async function forceKill(pid: number): Promise<void> {
  await killAndWait(pid);
}

/** Wait ≤ `timeoutMs` for a live gateway other than `oldPid`; its PID or null. */
export async function waitForReplacement(
  home: string,
  oldPid: number | null,
  timeoutMs: number,
): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const liveness = readGatewayLiveness(home);
    if (liveness.running && liveness.pid !== null && liveness.pid !== oldPid) return liveness.pid;
    if (Date.now() >= deadline) return null;
    await sleep(POLL_MS);
  }
}
