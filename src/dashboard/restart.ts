import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `POST /api/gateway/restart`, the force path: run `hermes [-p profile] gateway restart` as a
 * detached background action. Requests within 10 s of the last one reuse it (restart-storm fix).
 */

const RESTART_COOLDOWN_MS = 10_000;

/**
 * The dashboard's own credential, which the restarted gateway (and the agent programs it runs)
 * has no use for: not passed on, so it cannot end up in their environment or their logs.
 */
const WITHHELD_ENV = ['HERMES_DASHBOARD_SESSION_TOKEN'];

export interface RestartAction {
  pid: number;
  startedAt: number;
}

export class RestartLauncher {
  private last: RestartAction | undefined;

  constructor(
    private readonly home: string,
    private readonly cliPath: string,
    private readonly profile: string | null,
    private readonly env: NodeJS.ProcessEnv,
    private readonly now: () => number = Date.now,
  ) {}

  launch(): { action: RestartAction; coalesced: boolean } {
    if (this.last && this.now() - this.last.startedAt < RESTART_COOLDOWN_MS)
      return { action: this.last, coalesced: true };
    const logs = join(this.home, 'logs');
    mkdirSync(logs, { recursive: true, mode: 0o700 });
    const out = openSync(join(logs, 'gateway-restart.log'), 'a', 0o600);
    const args = [this.cliPath, ...(this.profile ? ['-p', this.profile] : []), 'gateway', 'restart'];
    const child = spawn(process.execPath, args, {
      detached: true,
      stdio: ['ignore', out, out],
      env: Object.fromEntries(Object.entries(this.env).filter(([name]) => !WITHHELD_ENV.includes(name))),
    });
    child.unref();
    if (child.pid === undefined) throw new Error('could not start `hermes gateway restart`');
    this.last = { pid: child.pid, startedAt: this.now() };
    return { action: this.last, coalesced: false };
  }
}
