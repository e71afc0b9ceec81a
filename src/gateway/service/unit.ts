import type { ServiceScope } from './identity.js';

/**
 * The systemd unit of a gateway (reference lifecycle §4.1, June 2026 essentials): the gateway runs
 * in the foreground with `--replace`, `Restart=on-failure` revives crashes, exit 75 (restart via
 * service, SIGUSR1 / `ExecReload`) forces a restart, and `TimeoutStopSec=max(60, drain)+30` gives
 * the shutdown drain room before `KillMode=mixed` SIGKILLs what is left. No `ExecStop`: the stop
 * path is SIGTERM, which the gateway treats as planned when `hermes gateway stop` left its marker.
 */

const RESTART_EXIT_CODE = 75;
const RESTART_SEC = 30;
const START_LIMIT_INTERVAL_SEC = 600;
const START_LIMIT_BURST = 5;
const UNIT_HEADER = '# Written by `hermes gateway install`; remove with `hermes gateway uninstall`.';

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
}

export function renderUnit(options: UnitOptions): string {
  const lines = [
    UNIT_HEADER,
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
    'ExecReload=/bin/kill -USR1 $MAINPID',
    ...options.environment.map(([key, value]) => environmentLine(key, value)),
  ];
  if (options.scope === 'system' && options.user) lines.push(`User=${options.user}`);
  lines.push(
    'Restart=on-failure',
    `RestartSec=${RESTART_SEC}`,
    `RestartForceExitStatus=${RESTART_EXIT_CODE}`,
    'KillMode=mixed',
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${timeoutStopSeconds(options.drainSeconds)}`,
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
