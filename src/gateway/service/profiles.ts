import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type GatewayStatusJson, gatewayStatus, gatewayStatusJson } from '../../home/gateway-status.js';
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

export interface ProfileState extends GatewayStatusJson {
  profile: string;
  unit: string;
  /** Scopes with an installed unit for this home. */
  installed: ServiceScope[];
}

export function profileState(entry: ProfileHome, env: NodeJS.ProcessEnv = process.env): ProfileState {
  const status = gatewayStatus(entry.home);
  const unit = unitNameFor(entry.home);
  return {
    profile: entry.profile ?? DEFAULT_PROFILE_LABEL,
    ...gatewayStatusJson(status),
    unit,
    installed: installedScopes(unit, env),
  };
}
