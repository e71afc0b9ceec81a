import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../../home/atomic-file.js';
import { ensureHome } from '../../home/home.js';
import { cliEntryPath } from './detached.js';
import { isRoot, lookupUser, type ServiceScope, unitPath } from './identity.js';
import type { Systemctl } from './systemctl.js';
import { renderUnit } from './unit.js';

/**
 * `hermes gateway install` without the prompting: which user a system unit runs as, the unit
 * text for a home, and writing and enabling it. The CLI asks and renders.
 */

/** A request the install cannot honour as given (exit code 2 in the CLI). */
export class InstallUsageError extends Error {
  override readonly name = 'InstallUsageError';
}

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The unit's PATH: the system's, with this Node's directory first when it is elsewhere. */
export function servicePath(): string {
  const nodeDir = dirname(process.execPath);
  return SYSTEM_PATH.split(':').includes(nodeDir) ? SYSTEM_PATH : `${nodeDir}:${SYSTEM_PATH}`;
}

/**
 * The user a system unit runs as: `--run-as-user`, else the user behind sudo, else the current
 * non-root user. Never root by default: that must be asked for by name.
 */
export function resolveServiceUser(runAsUser: string | undefined, env: NodeJS.ProcessEnv): string {
  let user = runAsUser?.trim();
  if (!user) {
    const sudoUser = env.SUDO_USER?.trim();
    if (sudoUser && sudoUser !== 'root') user = sudoUser;
    else if (!isRoot()) user = currentUser(env);
  }
  if (!user) {
    throw new InstallUsageError(
      'refusing to run the gateway as root: pass --run-as-user <user> (or --run-as-user root to insist)',
    );
  }
  if (!lookupUser(user)) throw new InstallUsageError(`no such user: ${user}`);
  return user;
}

function currentUser(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return userInfo().username || undefined;
  } catch {
    return env.USER?.trim() || undefined;
  }
}

export interface InstallTarget {
  home: string;
  /** The Hermes root (`HERMES_HOME` of the unit); profiles live under it. */
  root: string;
  profile: string | undefined;
  unit: string;
}

export interface InstallPlan {
  scope: ServiceScope;
  unit: string;
  path: string;
  /** The unit file this install writes. */
  text: string;
  /** What is there now (undefined: nothing). */
  current: string | undefined;
  user: string | undefined;
}

export function planInstall(
  target: InstallTarget,
  options: {
    scope: ServiceScope;
    user: string | undefined;
    drainSeconds: number;
    drainFromEnv: string | undefined;
  },
): InstallPlan {
  const environment: Array<[string, string]> = [
    ['HERMES_HOME', target.root],
    ['PATH', servicePath()],
  ];
  // Only a drain timeout from the real environment needs carrying into the unit (.env is read by the service).
  if (options.drainFromEnv) environment.push(['HERMES_RESTART_DRAIN_TIMEOUT', options.drainFromEnv]);
  const text = renderUnit({
    scope: options.scope,
    execStart: [
      process.execPath,
      cliEntryPath(),
      ...(target.profile ? ['--profile', target.profile] : []),
      'gateway',
      'run',
      '--replace',
    ],
    environment,
    drainSeconds: options.drainSeconds,
    description: `Hermes relay gateway${target.profile ? ` (profile ${target.profile})` : ''} for ${target.home}`,
    user: options.user,
  });
  const path = unitPath(options.scope, target.unit);
  return {
    scope: options.scope,
    unit: target.unit,
    path,
    text,
    current: currentUnitText(path),
    user: options.user,
  };
}

/** Write the unit (when it differs), reload systemd and enable it. Returns whether the file changed. */
export function applyInstall(plan: InstallPlan, home: string, systemctl: Systemctl): { written: boolean } {
  ensureHome(home);
  return applyUnit(plan, systemctl);
}

/** Any unit: write it when it differs (0644), `daemon-reload`, `enable`. */
export function applyUnit(
  plan: Pick<InstallPlan, 'current' | 'text' | 'path' | 'unit'>,
  systemctl: Systemctl,
): { written: boolean } {
  const written = plan.current !== plan.text;
  if (written) writeFileAtomic(plan.path, plan.text, 0o644);
  systemctl.check(['daemon-reload']);
  systemctl.check(['enable', plan.unit]);
  return { written };
}

/** What is at `path` now (undefined: nothing). */
export function currentUnitText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
