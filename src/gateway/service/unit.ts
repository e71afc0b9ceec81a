import type { ServiceScope } from './identity.js';

/**
 * The systemd units hermes writes (reference lifecycle §4.1, June 2026 essentials, plus the later
 * `RestartPreventExitStatus=78`).
 *
 * Gateway: runs in the foreground with `--replace`, `Restart=on-failure` revives crashes, exit 75
 * (restart via service, SIGUSR1 / `ExecReload`) forces a restart, and `TimeoutStopSec=max(60,
 * drain)+30` gives the shutdown drain room before `KillMode=mixed` SIGKILLs what is left. No
 * `ExecStop`: the stop path is SIGTERM, which the gateway treats as planned when `hermes gateway
 * stop` left its marker.
 *
 * Connector: `hermes connector serve` with its settings in an `EnvironmentFile=` (0600), the
 * working directory it was installed from (a relative `RELAY_DB` resolves the same), a 30 s stop.
 *
 * Both: exit 78 (EX_CONFIG, a configuration error at start) is never restarted — retrying cannot
 * fix a bad setting, and a restart loop would hide the one line that says what is wrong.
 */

const RESTART_EXIT_CODE = 75;
/** EX_CONFIG: what `gateway run` and `connector serve` exit with on a configuration error. */
export const CONFIG_EXIT_CODE = 78;
const RESTART_SEC = 30;
const START_LIMIT_INTERVAL_SEC = 600;
const START_LIMIT_BURST = 5;
const GATEWAY_HEADER = '# Written by `hermes gateway install`; remove with `hermes gateway uninstall`.';

/** `max(60, drain) + 30` seconds (drain rounded up to whole seconds). */
export function timeoutStopSeconds(drainSeconds: number): number {
  const drain = Number.isFinite(drainSeconds) && drainSeconds > 0 ? Math.ceil(drainSeconds) : 0;
  return Math.max(60, drain) + 30;
}

function rejectNewlines(value: string): void {
  if (/[\r\n\0]/.test(value)) throw new Error('systemd unit values cannot contain newlines or NUL');
}

/** One `ExecStart=` word: `%` and `$` escaped, double-quoted (C escapes) when it needs quoting. */
export function quoteExecArg(arg: string): string {
  rejectNewlines(arg);
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (escaped !== '' && !/[\s"'\\;]/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A path setting (`WorkingDirectory=`, `EnvironmentFile=`): absolute, `%` escaped, no newlines. */
function unitPathValue(path: string): string {
  rejectNewlines(path);
  if (!path.startsWith('/')) throw new Error(`systemd needs an absolute path, got ${JSON.stringify(path)}`);
  return path.replace(/%/g, '%%');
}

/** `Environment=KEY=value`, quoted only when the value needs it. */
export function environmentLine(key: string, value: string): string {
  rejectNewlines(value);
  const assignment = `${key}=${value.replace(/%/g, '%%')}`;
  if (!/[\s"'\\]/.test(assignment)) return `Environment=${assignment}`;
  return `Environment="${assignment.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export interface UnitOptions {
  scope: ServiceScope;
  /** `[node, cli, ...args]`, quoted here. */
  execStart: string[];
  /** Environment= entries, in order. */
  environment: Array<[string, string]>;
  drainSeconds: number;
  description: string;
  /** `User=` for system units. */
  user?: string | undefined;
  /** The first line (a comment naming the command that wrote it); default: the gateway's. */
  header?: string;
  /** `EnvironmentFile=` (read by systemd, so secrets stay out of the unit). */
  environmentFile?: string | undefined;
  /** `WorkingDirectory=`. */
  workingDirectory?: string | undefined;
  /**
   * The gateway's restart protocol (SIGUSR1 reload, exit 75 forces a restart, drain-sized stop
   * timeout); default true. Without it: no `ExecReload`, `TimeoutStopSec=30`.
   */
  drainAwareRestart?: boolean;
}

export function renderUnit(options: UnitOptions): string {
  const gatewayRestart = options.drainAwareRestart ?? true;
  const lines = [
    options.header ?? GATEWAY_HEADER,
    '[Unit]',
    `Description=${options.description.replace(/%/g, '%%')}`,
    'After=network-online.target',
    'Wants=network-online.target',
    `StartLimitIntervalSec=${START_LIMIT_INTERVAL_SEC}`,
    `StartLimitBurst=${START_LIMIT_BURST}`,
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${options.execStart.map(quoteExecArg).join(' ')}`,
    ...(gatewayRestart ? ['ExecReload=/bin/kill -USR1 $MAINPID'] : []),
    ...(options.workingDirectory ? [`WorkingDirectory=${unitPathValue(options.workingDirectory)}`] : []),
    ...(options.environmentFile ? [`EnvironmentFile=${unitPathValue(options.environmentFile)}`] : []),
    ...options.environment.map(([key, value]) => environmentLine(key, value)),
  ];
  if (options.scope === 'system' && options.user) lines.push(`User=${options.user}`);
  lines.push(
    'Restart=on-failure',
    `RestartSec=${RESTART_SEC}`,
    ...(gatewayRestart ? [`RestartForceExitStatus=${RESTART_EXIT_CODE}`] : []),
    `RestartPreventExitStatus=${CONFIG_EXIT_CODE}`,
    'KillMode=mixed',
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${gatewayRestart ? timeoutStopSeconds(options.drainSeconds) : 30}`,
    '',
    '[Install]',
    `WantedBy=${options.scope === 'system' ? 'multi-user.target' : 'default.target'}`,
    '',
  );
  return lines.join('\n');
}

/** The value of the last `key=` line of a unit (systemd: last assignment wins), or undefined. */
export function unitSetting(text: string, key: string): string | undefined {
  let value: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (trimmed.startsWith(`${key}=`)) value = trimmed.slice(key.length + 1);
  }
  return value;
}

/** `TimeoutStopSec` of a unit in seconds (`90`, `90s`, `3min`, `1min 30s`), or undefined. */
export function unitTimeoutStopSeconds(text: string): number | undefined {
  const raw = unitSetting(text, 'TimeoutStopSec');
  if (raw === undefined) return undefined;
  if (/^\d+$/.test(raw)) return Number(raw);
  let total = 0;
  let matched = false;
  for (const part of raw.matchAll(/(\d+)\s*(min|m|s|h)?/g)) {
    matched = true;
    const amount = Number(part[1]);
    const unit = part[2] ?? 's';
    total += unit === 'h' ? amount * 3600 : unit === 'min' || unit === 'm' ? amount * 60 : amount;
  }
  return matched ? total : undefined;
}
