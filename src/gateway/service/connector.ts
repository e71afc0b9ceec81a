import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { errorMessage } from '../../common/errors.js';
import { ConnectorConfigError, connectorConfigFromEnv } from '../../connector/config.js';
import { parseEnvFile, saveEnvValues } from '../../home/env-file.js';
import { cliEntryPath } from './detached.js';
import { type ServiceScope, unitPath } from './identity.js';
import { currentUnitText, servicePath } from './install.js';
import { renderUnit } from './unit.js';

/**
 * `hermes connector install`: a systemd unit for `hermes connector serve`, the gateway's pattern
 * (unit.ts, install.ts, systemctl.ts) with the connector's settings. Its settings live in an
 * environment file (mode 0600: it holds bot tokens and database URLs), which the unit names with
 * `EnvironmentFile=`, so no secret is ever written into the unit. The unit runs in the directory it
 * was installed from, so a relative `RELAY_DB` means the same file as for `hermes connector serve`
 * there. Before writing anything the settings are checked the way `serve` reads them: a unit that
 * would exit 78 at start is refused.
 */

export const CONNECTOR_UNIT_NAME = 'hermes-connector.service';
const HEADER = '# Written by `hermes connector install`; remove with `hermes connector uninstall`.';
/** Settings worth carrying from the installing shell into a new environment file. */
const CARRIED = /^(RELAY_|TELEGRAM_|DISCORD_)/;

/** Default environment file: `~/.config/hermes/connector.env` (user), `/etc/hermes/connector.env` (system). */
export function defaultConnectorEnvFile(scope: ServiceScope, env: NodeJS.ProcessEnv = process.env): string {
  if (scope === 'system') return '/etc/hermes/connector.env';
  const configHome = env.XDG_CONFIG_HOME?.trim() || join(homedir(), '.config');
  return join(configHome, 'hermes', 'connector.env');
}

export interface ConnectorInstallPlan {
  scope: ServiceScope;
  unit: string;
  path: string;
  text: string;
  current: string | undefined;
  user: string | undefined;
  envFile: string;
  workingDirectory: string;
}

export function planConnectorInstall(options: {
  scope: ServiceScope;
  user: string | undefined;
  envFile: string;
  workingDirectory: string;
}): ConnectorInstallPlan {
  const envFile = resolve(options.envFile);
  const workingDirectory = resolve(options.workingDirectory);
  const text = renderUnit({
    scope: options.scope,
    header: HEADER,
    execStart: [process.execPath, cliEntryPath(), 'connector', 'serve'],
    environment: [['PATH', servicePath()]],
    environmentFile: envFile,
    workingDirectory,
    drainSeconds: 0,
    drainAwareRestart: false,
    description: 'Hermes relay connector',
    user: options.user,
  });
  const path = unitPath(options.scope, CONNECTOR_UNIT_NAME);
  return {
    scope: options.scope,
    unit: CONNECTOR_UNIT_NAME,
    path,
    text,
    current: currentUnitText(path),
    user: options.user,
    envFile,
    workingDirectory,
  };
}

/** A problem that keeps the unit from being installed (the CLI exits 78 with its message). */
export class ConnectorPreflightError extends Error {
  override readonly name = 'ConnectorPreflightError';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

/**
 * The environment file as the service will read it: created from the installing shell's
 * `RELAY_*` / `TELEGRAM_*` / `DISCORD_*` variables when missing (0600), then checked: readable by
 * its owner only, and every setting one `connector serve` accepts. Returns the keys it wrote
 * (never values); throws {@link ConnectorPreflightError}.
 */
export function prepareConnectorEnvFile(
  envFile: string,
  env: NodeJS.ProcessEnv = process.env,
): { created: boolean; keys: string[] } {
  let text: string | undefined;
  try {
    text = readFileSync(envFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new ConnectorPreflightError(
        `cannot read ${envFile}: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`,
        `check its owner and mode (\`ls -l ${envFile}\`)`,
      );
  }
  let created = false;
  let keys: string[] = [];
  if (text === undefined) {
    const values: Record<string, string> = {};
    for (const [key, value] of Object.entries(env))
      if (CARRIED.test(key) && value !== undefined && value.trim() !== '') values[key] = value;
    // The service runs elsewhere than this shell: pin the default store to this directory.
    values.RELAY_DB ??= resolve('relay-data', 'connector.db');
    checkConnectorSettings(values, envFile);
    saveEnvValues(envFile, values);
    created = true;
    keys = Object.keys(values).sort();
    text = readFileSync(envFile, 'utf8');
  } else {
    checkConnectorSettings(parseEnvFile(text), envFile);
  }
  const mode = statSync(envFile).mode & 0o777;
  if (mode & 0o077)
    throw new ConnectorPreflightError(
      `${envFile} is readable by others (mode ${mode.toString(8).padStart(4, '0')}) and holds the connector's secrets`,
      `chmod 600 ${envFile}`,
    );
  return { created, keys };
}

function checkConnectorSettings(values: Record<string, string>, envFile: string): void {
  try {
    connectorConfigFromEnv(values);
  } catch (error) {
    if (error instanceof ConnectorConfigError)
      throw new ConnectorPreflightError(`${envFile}: ${error.message}`, `correct it in ${envFile}`);
    throw error;
  }
}
