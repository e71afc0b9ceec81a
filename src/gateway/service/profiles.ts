import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gatewayStatus } from '../../home/gateway-status.js';
import { isValidProfileName } from '../../home/home.js';
import { installedScopes, type ServiceScope, unitNameFor } from './identity.js';

/** Every gateway home under a root: the root itself ("default") plus `profiles/<name>`. */

const DEFAULT_PROFILE_LABEL = 'default';

export interface ProfileHome {
  /** Undefined for the root home. */
  profile: string | undefined;
  home: string;
}

export function listProfileHomes(root: string): ProfileHome[] {
  const homes: ProfileHome[] = [{ profile: undefined, home: root }];
  let names: string[] = [];
  try {
    names = readdirSync(join(root, 'profiles'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && isValidProfileName(entry.name))
      .map((entry) => entry.name)
      .sort();
  } catch {
    // no profiles directory
  }
  for (const name of names) homes.push({ profile: name, home: join(root, 'profiles', name) });
  return homes;
}

export interface ProfileState {
  profile: string;
  home: string;
  running: boolean;
  pid: number | null;
  gateway_state: string | null;
  active_agents: number;
  exit_reason: string | null;
  updated_at: string | null;
  unit: string;
  /** Scopes with an installed unit for this home. */
  installed: ServiceScope[];
}

export function profileState(entry: ProfileHome, env: NodeJS.ProcessEnv = process.env): ProfileState {
  const status = gatewayStatus(entry.home);
  const unit = unitNameFor(entry.home);
  return {
    profile: entry.profile ?? DEFAULT_PROFILE_LABEL,
    home: entry.home,
    running: status.running,
    pid: status.pid,
    gateway_state: status.state,
    active_agents: status.activeAgents,
    exit_reason: status.exitReason,
    updated_at: status.updatedAt,
    unit,
    installed: installedScopes(unit, env),
  };
}
