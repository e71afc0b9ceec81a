import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { ServiceScope } from './identity.js';

/**
 * `systemctl` for one scope (`--user` or the system manager), run from `PATH` (so tests can put a
 * fake first). "Available" means a `systemctl` is on PATH and `systemctl [--user]
 * is-system-running` reports a manager that is up: it exits 0, or answers a state other than
 * `offline`/`unknown` (a `degraded` system exits 1 but systemd is there all the same).
 */

export interface SystemctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type SystemdAvailability = { available: true } | { available: false; reason: string };

const UP_STATES = new Set(['initializing', 'starting', 'running', 'degraded', 'maintenance', 'stopping']);
const CALL_TIMEOUT_MS = 120_000;

/** First executable `name` on `PATH`, or undefined. */
function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export class SystemctlError extends Error {
  constructor(
    readonly args: string[],
    readonly result: SystemctlResult,
  ) {
    const detail = (result.stderr || result.stdout).trim().split('\n')[0] ?? '';
    super(`systemctl ${args.join(' ')} failed (exit ${result.code})${detail ? `: ${detail}` : ''}`);
    this.name = 'SystemctlError';
  }
}

export class Systemctl {
  constructor(
    readonly scope: ServiceScope,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** The arguments as run (with `--user` for the user scope). */
  argv(args: string[]): string[] {
    return this.scope === 'user' ? ['--user', ...args] : [...args];
  }

  /** Run and return whatever happened (code 127 when systemctl could not be started). */
  run(args: string[]): SystemctlResult {
    const full = this.argv(args);
    const result = spawnSync('systemctl', full, {
      env: this.env,
      encoding: 'utf8',
      timeout: CALL_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (result.error) {
      return { code: 127, stdout: '', stderr: result.error.message };
    }
    return { code: result.status ?? 1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
  }

  /** Run; throws `SystemctlError` on a non-zero exit. */
  check(args: string[]): SystemctlResult {
    const result = this.run(args);
    if (result.code !== 0) throw new SystemctlError(this.argv(args), result);
    return result;
  }

  availability(): SystemdAvailability {
    if (!findOnPath('systemctl', this.env)) return { available: false, reason: 'no systemctl on PATH' };
    const result = this.run(['is-system-running']);
    const state = result.stdout.trim().split(/\s+/)[0] ?? '';
    if (result.code === 0 || UP_STATES.has(state)) return { available: true };
    const detail = state || result.stderr.trim().split('\n')[0] || `exit ${result.code}`;
    return {
      available: false,
      reason: `systemctl ${this.argv(['is-system-running']).join(' ')}: ${detail}`,
    };
  }

  /** `is-active <unit>` output (`active`, `activating`, `inactive`, `failed`, …). */
  activeState(unit: string): string {
    return this.run(['is-active', unit]).stdout.trim().split('\n')[0] ?? '';
  }
}
