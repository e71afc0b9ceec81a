import { existsSync, readFileSync } from 'node:fs';
import { removeFile } from '../../home/atomic-file.js';
import { readGatewayLiveness, writePlannedStopMarker } from '../../home/pid-lock.js';
import {
  forceKill,
  RESTART_PICKUP_MS,
  signalRestart,
  startDetached,
  stopGatewayProcess,
  waitForReplacement,
} from './detached.js';
import { type ServiceScope, unitPath } from './identity.js';
import { Systemctl } from './systemctl.js';
import { timeoutStopSeconds, unitTimeoutStopSeconds } from './unit.js';

/**
 * Who runs a gateway home's process (reference lifecycle §1.5–§1.7): systemd, when it runs here and
 * a unit for the home is installed, else a detached `hermes gateway run` managed directly. Each
 * operation returns what happened as data (an outcome and the notices worth telling); the CLI only
 * renders it. Errors: `SystemctlError` from a failing `systemctl`, `DetachedStartError` from a
 * detached gateway that did not come up.
 */

export interface ServiceTarget {
  home: string;
  profile: string | undefined;
  unit: string;
}

/** Something worth telling the operator that is not the outcome itself. */
export interface Notice {
  level: 'info' | 'warning';
  text: string;
}

export type StartOutcome =
  | { kind: 'unit_started'; unit: string; scope: ServiceScope; notices: Notice[] }
  | { kind: 'already_running'; pid: number | null; notices: Notice[] }
  | { kind: 'started'; pid: number; logPath: string; running: boolean; notices: Notice[] };

export type StopOutcome =
  | { kind: 'unit_stopped'; unit: string; strayPid: number | null; notices: Notice[] }
  | { kind: 'not_running'; notices: Notice[] }
  | { kind: 'stopped'; pid: number | null; killed: boolean; notices: Notice[] };

export type RestartOutcome =
  | { kind: 'unit_restarted'; unit: string; drained: boolean; notices: Notice[] }
  | {
      kind: 'started';
      pid: number;
      logPath: string;
      running: boolean;
      previousPid: number | null;
      notices: Notice[];
    }
  | { kind: 'replaced_by_supervisor'; previousPid: number; pid: number; notices: Notice[] };

export type UninstallOutcome =
  | { kind: 'not_installed'; unit: string; scope: ServiceScope; path: string }
  | { kind: 'removed'; unit: string; path: string; stoppedByService: boolean; notices: Notice[] };

export interface ServiceManager {
  readonly kind: 'systemd' | 'detached';
  /** `drainSeconds`: the home's drain timeout, against which an installed unit is checked. */
  start(drainSeconds: number): Promise<StartOutcome>;
  stop(waitMs: number): Promise<StopOutcome>;
  restart(waitMs: number, drainSeconds: number): Promise<RestartOutcome>;
}

/** The scope a command acts on: `system`, else the user unit if installed, else an installed system unit. */
export function chooseScope(
  target: ServiceTarget,
  system: boolean | undefined,
): { scope: ServiceScope; installed: boolean } {
  const has = (scope: ServiceScope) => existsSync(unitPath(scope, target.unit));
  if (system) return { scope: 'system', installed: has('system') };
  if (has('user')) return { scope: 'user', installed: true };
  if (has('system')) return { scope: 'system', installed: true };
  return { scope: 'user', installed: false };
}

/** systemd when it runs here and the unit is installed; otherwise the detached fallback, and why. */
export function chooseServiceManager(
  target: ServiceTarget,
  system: boolean | undefined,
): { manager: ServiceManager; fallbackReason: string | undefined } {
  const { scope, installed } = chooseScope(target, system);
  const systemctl = new Systemctl(scope);
  const availability = systemctl.availability();
  if (!availability.available) {
    return {
      manager: new DetachedServiceManager(target),
      fallbackReason: `systemd is not available here; managing a detached gateway process instead (${availability.reason})`,
    };
  }
  if (!installed) {
    return {
      manager: new DetachedServiceManager(target),
      fallbackReason: `no ${scope} systemd unit ${target.unit} is installed (see \`hermes gateway install\`); managing a detached gateway process instead`,
    };
  }
  return { manager: new SystemdServiceManager(target, systemctl, scope), fallbackReason: undefined };
}

const killedNotice = (pid: number, waitMs: number): Notice => ({
  level: 'warning',
  text: `gateway PID ${pid} did not exit within ${waitMs / 1000} s; sending SIGKILL`,
});

export class SystemdServiceManager implements ServiceManager {
  readonly kind = 'systemd';

  constructor(
    private readonly target: ServiceTarget,
    readonly systemctl: Systemctl,
    readonly scope: ServiceScope,
  ) {}

  async start(drainSeconds: number): Promise<StartOutcome> {
    const notices = this.staleUnitNotices(drainSeconds);
    this.systemctl.check(['start', this.target.unit]);
    return { kind: 'unit_started', unit: this.target.unit, scope: this.scope, notices };
  }

  async stop(waitMs: number): Promise<StopOutcome> {
    const { home, unit } = this.target;
    const notices: Notice[] = [];
    const liveness = readGatewayLiveness(home);
    if (liveness.running && liveness.pid !== null) writePlannedStopMarker(home, liveness.pid);
    this.systemctl.check(['stop', unit]);
    // A gateway still holding the lock was not the service's (started by hand): stop it too.
    const stray = await stopGatewayProcess(home, waitMs, (pid) => notices.push(killedNotice(pid, waitMs)));
    return { kind: 'unit_stopped', unit, strayPid: stray.stopped ? stray.pid : null, notices };
  }

  async restart(waitMs: number, drainSeconds: number): Promise<RestartOutcome> {
    const { home, unit } = this.target;
    const notices = this.staleUnitNotices(drainSeconds);
    const signalled = await signalRestart(home, waitMs);
    if (signalled.pid !== null && signalled.exited) {
      // Exit 75 makes systemd bring it back (after RestartSec); restart now unless it already did.
      if (this.systemctl.activeState(unit) !== 'active') this.systemctl.check(['restart', unit]);
    } else {
      if (signalled.pid !== null) {
        notices.push({
          level: 'warning',
          text: `gateway PID ${signalled.pid} did not finish draining within ${waitMs / 1000} s; falling back to systemctl restart`,
        });
        writePlannedStopMarker(home, signalled.pid);
      }
      this.systemctl.check(['restart', unit]);
    }
    return { kind: 'unit_restarted', unit, drained: signalled.pid !== null, notices };
  }

  /** A unit whose stop timeout is shorter than the drain would have systemd kill running turns. */
  private staleUnitNotices(drainSeconds: number): Notice[] {
    let text: string;
    try {
      text = readFileSync(unitPath(this.scope, this.target.unit), 'utf8');
    } catch {
      return [];
    }
    const actual = unitTimeoutStopSeconds(text);
    const expected = timeoutStopSeconds(drainSeconds);
    if (actual === undefined || actual >= expected) return [];
    return [
      {
        level: 'warning',
        text: `Stale systemd unit detected: ${this.target.unit} has TimeoutStopSec=${actual}s but drain_timeout=${drainSeconds}s (expected >=${expected}s); rerun \`hermes gateway install --force\``,
      },
    ];
  }
}

export class DetachedServiceManager implements ServiceManager {
  readonly kind = 'detached';

  constructor(private readonly target: ServiceTarget) {}

  async start(): Promise<StartOutcome> {
    const liveness = readGatewayLiveness(this.target.home);
    if (liveness.running) return { kind: 'already_running', pid: liveness.pid, notices: [] };
    return { kind: 'started', ...(await this.launch()), notices: [] };
  }

  async stop(waitMs: number): Promise<StopOutcome> {
    const notices: Notice[] = [];
    const result = await stopGatewayProcess(this.target.home, waitMs, (pid) =>
      notices.push(killedNotice(pid, waitMs)),
    );
    if (!result.stopped) return { kind: 'not_running', notices };
    return { kind: 'stopped', pid: result.pid, killed: result.killed, notices };
  }

  async restart(waitMs: number): Promise<RestartOutcome> {
    const { home } = this.target;
    const notices: Notice[] = [];
    const signalled = await signalRestart(home, waitMs);
    if (signalled.pid === null)
      return { kind: 'started', ...(await this.launch()), previousPid: null, notices };
    if (!signalled.exited) {
      notices.push({
        level: 'warning',
        text: `gateway PID ${signalled.pid} did not exit within ${waitMs / 1000} s after SIGUSR1; sending SIGKILL`,
      });
      await forceKill(signalled.pid);
    }
    const replacement = await waitForReplacement(home, signalled.pid, RESTART_PICKUP_MS);
    if (replacement !== null)
      return { kind: 'replaced_by_supervisor', previousPid: signalled.pid, pid: replacement, notices };
    return { kind: 'started', ...(await this.launch()), previousPid: signalled.pid, notices };
  }

  private async launch(): Promise<{ pid: number; logPath: string; running: boolean }> {
    const started = await startDetached({
      home: this.target.home,
      profile: this.target.profile,
      env: process.env,
    });
    return { pid: started.pid, logPath: started.logPath, running: started.running };
  }
}

/**
 * Remove the home's unit in `scope`: stop it (a planned stop), disable it, delete the file and
 * reload systemd. Without systemd, only the file goes. Stop/disable failures are notices: the
 * unit may be half-gone already.
 */
export function uninstallUnit(target: ServiceTarget, scope: ServiceScope): UninstallOutcome {
  return uninstallNamedUnit(target.unit, scope, target.home);
}

/**
 * {@link uninstallUnit} for any unit of ours (the connector's too). With `home`, a running gateway
 * of that home is told the stop is planned first.
 */
export function uninstallNamedUnit(unit: string, scope: ServiceScope, home?: string): UninstallOutcome {
  const target = { unit, home };
  const path = unitPath(scope, target.unit);
  if (!existsSync(path)) return { kind: 'not_installed', unit: target.unit, scope, path };
  const systemctl = new Systemctl(scope);
  const availability = systemctl.availability();
  if (!availability.available) {
    removeFile(path);
    return {
      kind: 'removed',
      unit: target.unit,
      path,
      stoppedByService: false,
      notices: [
        {
          level: 'warning',
          text: `systemd is not available here (${availability.reason}); removing the unit file only`,
        },
      ],
    };
  }
  const notices = removeUnit(systemctl, target.unit, path, target.home);
  return { kind: 'removed', unit: target.unit, path, stoppedByService: true, notices };
}

/** stop (planned), disable, remove, daemon-reload; stop/disable failures come back as notices. */
export function removeUnit(systemctl: Systemctl, unit: string, path: string, home?: string): Notice[] {
  const notices: Notice[] = [];
  if (home) {
    const liveness = readGatewayLiveness(home);
    if (liveness.running && liveness.pid !== null) writePlannedStopMarker(home, liveness.pid);
  }
  for (const action of ['stop', 'disable']) {
    const result = systemctl.run([action, unit]);
    if (result.code !== 0) {
      const detail = (result.stderr || result.stdout).trim().split('\n')[0] ?? '';
      notices.push({
        level: 'warning',
        text: `systemctl ${systemctl.argv([action, unit]).join(' ')} failed${detail ? `: ${detail}` : ''}`,
      });
    }
  }
  removeFile(path);
  systemctl.check(['daemon-reload']);
  return notices;
}
