import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import {
  isJsonObject,
  isoUtc,
  parseIsoTimestamp,
  readJsonFile,
  removeFile,
  writeJsonAtomic,
} from './atomic-file.js';
import { type LifecycleLog, PROC_STAT_START_TIME, parseProcStat } from './pid-lock.js';

/**
 * External drain (quiesce without exit), reference lifecycle §1.4 with the later hardening chosen
 * by spec decision 11: the marker `$HERMES_HOME/.drain_request.json` is stamped with an
 * instantiation epoch and expires after 3600 s. There is no control channel into a running gateway:
 * the marker file is the channel, and `DrainWatcher` turns it into enter/exit transitions (file
 * watch for a prompt reaction, 1 s polling as the fallback that also notices expiry).
 */

export const DRAIN_REQUEST_FILE_NAME = '.drain_request.json';
const DRAIN_REQUEST_MAX_AGE_SECONDS = 3600;
const DEFAULT_DRAIN_PRINCIPAL = 'drain-control';

export interface DrainRequest {
  action?: unknown;
  requested_at?: unknown;
  principal?: unknown;
  epoch?: unknown;
  suppress_notification?: unknown;
  [key: string]: unknown;
}

function drainRequestPath(home: string): string {
  return join(home, DRAIN_REQUEST_FILE_NAME);
}

// ---------------------------------------------------------------------------------------------
// Instantiation epoch

let cachedEpoch: string | undefined;

/**
 * Parse the instantiation epoch from `/proc/sys/kernel/random/boot_id` and `/proc/1/stat`
 * contents: `"<boot_id>:<starttime of PID 1>"` (stat split on its last `)`; starttime is tail
 * index 19). `""` when either part is unknown.
 */
export function instantiationEpochFrom(bootId: string | null, pid1Stat: string | null): string {
  const boot = bootId?.trim();
  if (!boot || !pid1Stat) return '';
  const startTime = parseProcStat(pid1Stat)?.[PROC_STAT_START_TIME];
  if (!startTime || !/^\d+$/.test(startTime)) return '';
  return `${boot}:${startTime}`;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * The current instantiation epoch (cached). Changes on a VM reboot (boot_id) and on a container
 * restart (PID 1 start time); stable across a respawn of only the gateway. Linux only: elsewhere
 * `""`, which disables the epoch check (presence + max age still apply). The reference's macOS
 * boot-time variant is not ported: Node only offers a jittery `os.uptime()`, and an epoch that
 * flickers would cancel legitimate drains.
 */
export function currentInstantiationEpoch(): string {
  if (cachedEpoch === undefined) {
    cachedEpoch =
      process.platform === 'linux'
        ? instantiationEpochFrom(readOrNull('/proc/sys/kernel/random/boot_id'), readOrNull('/proc/1/stat'))
        : '';
  }
  return cachedEpoch;
}

// ---------------------------------------------------------------------------------------------
// Marker

export interface WriteDrainRequestOptions {
  principal?: string;
  suppressNotification?: boolean;
  now?: Date | number;
  /** Defaults to `currentInstantiationEpoch()`. */
  epoch?: string;
}

/** Write (or refresh: keep-alive) the drain marker atomically. Returns the marker written. */
export function writeDrainRequest(home: string, options: WriteDrainRequestOptions = {}): DrainRequest {
  const marker = {
    action: 'drain',
    requested_at: isoUtc(options.now ?? Date.now()),
    principal: options.principal ?? DEFAULT_DRAIN_PRINCIPAL,
    epoch: options.epoch ?? currentInstantiationEpoch(),
    suppress_notification: options.suppressNotification === true,
  };
  writeJsonAtomic(drainRequestPath(home), marker, 0o644);
  return marker;
}

/** Remove the marker; true iff a file was removed (missing is not an error). */
export function clearDrainRequest(home: string): boolean {
  return removeFile(drainRequestPath(home));
}

/**
 * Read the marker; never throws. Absent → null; unreadable, invalid JSON or not a JSON object →
 * `{}` (which still counts as an active drain: fail toward quiescing).
 */
export function readDrainRequest(home: string): DrainRequest | null {
  try {
    const read = readJsonFile(drainRequestPath(home));
    if (read.kind === 'absent') return null;
    return read.kind === 'ok' && isJsonObject(read.value) ? read.value : {};
  } catch {
    return {};
  }
}

export type DrainRequestVerdict =
  | { active: false; reason: 'absent' }
  | { active: false; reason: 'epoch_mismatch' | 'expired'; marker: DrainRequest }
  | { active: true; reason: 'requested'; marker: DrainRequest };

/**
 * The full verdict on a marker body (`null` = no marker): active unless the epochs are both known
 * and differ, or `requested_at` parses and is older than 3600 s. A missing, unparseable or future
 * `requested_at` is honoured; a corrupt marker (`{}`) is active.
 */
function evaluateDrainRequest(
  marker: DrainRequest | null,
  now: Date | number = Date.now(),
  epoch: string = currentInstantiationEpoch(),
): DrainRequestVerdict {
  if (marker === null) return { active: false, reason: 'absent' };
  const markerEpoch = marker.epoch;
  if (epoch !== '' && typeof markerEpoch === 'string' && markerEpoch !== '' && markerEpoch !== epoch) {
    return { active: false, reason: 'epoch_mismatch', marker };
  }
  const requestedAt = parseIsoTimestamp(marker.requested_at);
  const nowMs = typeof now === 'number' ? now : now.getTime();
  if (!Number.isNaN(requestedAt) && nowMs - requestedAt > DRAIN_REQUEST_MAX_AGE_SECONDS * 1000) {
    return { active: false, reason: 'expired', marker };
  }
  return { active: true, reason: 'requested', marker };
}

/** Is an external drain requested for `home`? Never throws. */
export function drainRequested(
  home: string,
  now: Date | number = Date.now(),
  epoch: string = currentInstantiationEpoch(),
): boolean {
  return evaluateDrainRequest(readDrainRequest(home), now, epoch).active;
}

/**
 * Active marker AND `suppress_notification` truthy (missing ⇒ false: fail toward louder). Affects
 * only the home-channel shutdown broadcast, never the per-session interruption notice.
 */
export function drainNotificationSuppressed(
  home: string,
  now: Date | number = Date.now(),
  epoch: string = currentInstantiationEpoch(),
): boolean {
  const verdict = evaluateDrainRequest(readDrainRequest(home), now, epoch);
  if (!verdict.active) return false;
  const flag = verdict.marker.suppress_notification;
  return flag === true || flag === 1 || (typeof flag === 'string' && /^(1|true|yes)$/i.test(flag.trim()));
}

// ---------------------------------------------------------------------------------------------
// Watcher

export interface DrainWatcherOptions {
  /** Fallback poll interval (default 1000 ms); each poll also re-evaluates expiry. */
  pollMs?: number;
  /** Coalesces a burst of file events (default 10 ms). */
  debounceMs?: number;
  log?: LifecycleLog;
  /** Clock, for tests (default `Date.now`). */
  now?: () => number;
  /** Instantiation epoch, for tests (default `currentInstantiationEpoch()`). */
  epoch?: string;
}

/**
 * Reports drain transitions of `home` to `onChange(active)`. The state starts inactive: `start()`
 * reconciles at once (so an already-present marker reports `true`), then every change of the
 * marker file (watched through its directory, so atomic renames are seen) and every poll
 * re-evaluates; `onChange` runs only when the verdict flips. Works when the home does not exist
 * yet (the directory watch is retried on every poll). Never throws out of callbacks: errors from
 * reading or from `onChange` (sync or a rejected promise) are logged at debug/warn level.
 */
export class DrainWatcher {
  private readonly pollMs: number;
  private readonly debounceMs: number;
  private readonly log: LifecycleLog | undefined;
  private readonly now: () => number;
  private readonly epoch: string | undefined;
  private state = false;
  private running = false;
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private warnedFor: string | undefined;

  constructor(
    private readonly home: string,
    private readonly onChange: (active: boolean) => void | Promise<void>,
    options: DrainWatcherOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 1000;
    this.debounceMs = options.debounceMs ?? 10;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.epoch = options.epoch;
  }

  /** The last reported state. */
  get active(): boolean {
    return this.state;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.ensureWatch();
    this.reconcile();
    this.pollTimer = setInterval(() => {
      this.ensureWatch();
      this.reconcile();
    }, this.pollMs);
    this.pollTimer.unref();
  }

  stop(): void {
    this.running = false;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.pollTimer = undefined;
    this.debounceTimer = undefined;
    this.closeWatch();
  }

  /** Re-evaluate now (also what the file watch and the poll call). Returns the current state. */
  reconcile(): boolean {
    if (!this.running) return this.state;
    let verdict: DrainRequestVerdict;
    try {
      verdict = evaluateDrainRequest(
        readDrainRequest(this.home),
        this.now(),
        this.epoch ?? currentInstantiationEpoch(),
      );
    } catch (error) {
      this.log?.debug({ err: error }, 'Drain marker check failed');
      return this.state;
    }
    if (!verdict.active && verdict.reason !== 'absent') this.warnIgnored(verdict);
    if (verdict.active === this.state) return this.state;
    this.state = verdict.active;
    this.notify(verdict.active);
    return this.state;
  }

  private warnIgnored(verdict: { reason: 'epoch_mismatch' | 'expired'; marker: DrainRequest }): void {
    const requestedAt = typeof verdict.marker.requested_at === 'string' ? verdict.marker.requested_at : '';
    const key = `${verdict.reason}:${requestedAt}`;
    if (this.warnedFor === key) return;
    this.warnedFor = key;
    this.log?.warn(
      { reason: verdict.reason, requested_at: requestedAt || null },
      verdict.reason === 'expired'
        ? `Ignoring drain marker older than ${DRAIN_REQUEST_MAX_AGE_SECONDS}s`
        : 'Ignoring drain marker from an earlier instantiation (epoch mismatch)',
    );
  }

  private notify(active: boolean): void {
    try {
      const result = this.onChange(active);
      if (result && typeof (result as Promise<void>).catch === 'function') {
        (result as Promise<void>).catch((error: unknown) => {
          this.log?.warn({ err: error, active }, 'Drain change handler failed');
        });
      }
    } catch (error) {
      this.log?.warn({ err: error, active }, 'Drain change handler failed');
    }
  }

  private schedule(): void {
    if (!this.running) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.reconcile();
    }, this.debounceMs);
  }

  private ensureWatch(): void {
    if (this.watcher || !this.running) return;
    try {
      const watcher = watch(this.home, { persistent: false }, (_event, filename) => {
        // Some platforms omit the name: re-check then too.
        if (filename === null || filename.toString() === DRAIN_REQUEST_FILE_NAME) this.schedule();
      });
      watcher.on('error', (error) => {
        this.log?.debug({ err: error }, 'Drain marker watch failed; polling until it can be re-armed');
        if (this.watcher === watcher) this.closeWatch();
      });
      this.watcher = watcher;
    } catch (error) {
      // Typically ENOENT: the home does not exist yet. The poll retries.
      this.log?.debug({ err: error }, 'Cannot watch the home directory yet');
    }
  }

  private closeWatch(): void {
    const watcher = this.watcher;
    this.watcher = undefined;
    try {
      watcher?.close();
    } catch {
      // already closed
    }
  }
}
