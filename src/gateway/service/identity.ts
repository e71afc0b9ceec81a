import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { isValidProfileName } from '../../home/home.js';

/**
 * Service identity (reference lifecycle §4.1): the suffix is "" for `~/.hermes`, the profile name
 * for `~/.hermes/profiles/<name>`, else the first 8 hex digits of sha256(home path), so two
 * different homes of one user never share a unit. The systemd unit is
 * `hermes-gateway[-<suffix>].service`; pre-rename installs used `hermes.service` (legacy).
 */

export type ServiceScope = 'user' | 'system';

const UNIT_PREFIX = 'hermes-gateway';
export const LEGACY_UNIT_NAME = 'hermes.service';
const SYSTEM_UNIT_DIR = '/etc/systemd/system';
/** Test/packaging overrides of the unit directories. */
const USER_DIR_ENV = 'HERMES_SYSTEMD_USER_DIR';
const SYSTEM_DIR_ENV = 'HERMES_SYSTEMD_SYSTEM_DIR';

function canonical(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}

/** The service suffix of a home (see the module comment). */
export function serviceSuffix(home: string): string {
  const target = canonical(home);
  const defaultRoot = canonical(join(homedir(), '.hermes'));
  if (target === defaultRoot) return '';
  const parent = dirname(target);
  const name = basename(target);
  if (parent === join(defaultRoot, 'profiles') && isValidProfileName(name)) return name;
  return createHash('sha256').update(target).digest('hex').slice(0, 8);
}

/** `hermes-gateway.service` or `hermes-gateway-<suffix>.service`. */
export function unitNameFor(home: string): string {
  const suffix = serviceSuffix(home);
  return `${UNIT_PREFIX}${suffix ? `-${suffix}` : ''}.service`;
}

/** Where units of `scope` live (`$HERMES_SYSTEMD_*_DIR` override, else the systemd default). */
export function unitDirectory(scope: ServiceScope, env: NodeJS.ProcessEnv = process.env): string {
  if (scope === 'system') return env[SYSTEM_DIR_ENV]?.trim() || SYSTEM_UNIT_DIR;
  const override = env[USER_DIR_ENV]?.trim();
  if (override) return override;
  const configHome = env.XDG_CONFIG_HOME?.trim();
  return join(configHome || join(homedir(), '.config'), 'systemd', 'user');
}

export function unitPath(
  scope: ServiceScope,
  unitName: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  return join(unitDirectory(scope, env), unitName);
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Writing system units needs root, unless the system directory is overridden (tests, packaging
 * into a staging tree), where the directory's own permissions decide.
 */
export function systemScopeNeedsRoot(env: NodeJS.ProcessEnv = process.env): boolean {
  return !isRoot() && !env[SYSTEM_DIR_ENV]?.trim();
}

export interface UserEntry {
  name: string;
  uid: number;
  home: string;
}

/** Look a user up in /etc/passwd (enough for a systemd `User=`); undefined when unknown. */
export function lookupUser(name: string, passwdPath = '/etc/passwd'): UserEntry | undefined {
  let text: string;
  try {
    text = readFileSync(passwdPath, 'utf8');
  } catch {
    try {
      const me = userInfo();
      return me.username === name ? { name, uid: me.uid, home: me.homedir } : undefined;
    } catch {
      return undefined;
    }
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] !== name || fields.length < 7) continue;
    return { name, uid: Number(fields[2]), home: fields[5] ?? '' };
  }
  return undefined;
}

/** The unit scopes for which a unit of `unitName` is installed. */
export function installedScopes(unitName: string, env: NodeJS.ProcessEnv = process.env): ServiceScope[] {
  return (['user', 'system'] as const).filter((scope) => existsSync(unitPath(scope, unitName, env)));
}
