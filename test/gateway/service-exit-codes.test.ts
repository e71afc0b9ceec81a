import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAIN_CLI, runCli } from '../support/fake-systemctl.js';
import { tempDir } from '../support/processes.js';

/**
 * Exit 78 (EX_CONFIG) for a configuration error at start, from the built CLI: what the units'
 * `RestartPreventExitStatus=78` relies on so systemd does not restart-loop a bad setting. One line
 * on stderr each time, nothing started.
 */

const dirs: { remove: () => void }[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.remove();
});

function home(): string {
  const dir = tempDir('exit78');
  dirs.push(dir);
  return dir.path;
}

function expectConfigExit(result: { code: number; stderr: string }, message: RegExp): void {
  expect(result.code, result.stderr).toBe(78);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(message);
}

describe('exit 78 on a configuration error at start', () => {
  it('connector serve: a setting it cannot use (RELAY_WEBCHAT_RATE_LIMIT=lots)', async () => {
    const dir = home();
    const result = await runCli(MAIN_CLI, ['connector', 'serve', '--port', '0', '--db', join(dir, 'c.db')], {
      RELAY_WEBCHAT_RATE_LIMIT: 'lots',
    });
    expectConfigExit(result, /^hermes: RELAY_WEBCHAT_RATE_LIMIT must be <messages>\/<seconds>/);
    // A bad flag stays a usage error (2).
    expect((await runCli(MAIN_CLI, ['connector', 'serve', '--port', 'abc'], {})).code).toBe(2);
  });

  it('gateway run: a config.yaml it cannot parse', async () => {
    const dir = home();
    writeFileSync(join(dir, 'config.yaml'), 'gateway: [unclosed\n');
    const result = await runCli(MAIN_CLI, ['gateway', 'run'], { HERMES_HOME: dir });
    expectConfigExit(result, /^hermes: Invalid YAML in .*config\.yaml at line \d+, column \d+: /);
  });

  it('gateway run: a .env it cannot read', async () => {
    const dir = home();
    mkdirSync(join(dir, '.env'));
    const result = await runCli(MAIN_CLI, ['gateway', 'run'], { HERMES_HOME: dir });
    expectConfigExit(result, /^hermes: Cannot read .*\.env: EISDIR/);
  });

  it('gateway run: no relay URL, and an unknown agent kind', async () => {
    const dir = home();
    expectConfigExit(await runCli(MAIN_CLI, ['gateway', 'run'], { HERMES_HOME: dir }), /no relay configured/);
    expectConfigExit(
      await runCli(MAIN_CLI, ['gateway', 'run'], {
        HERMES_HOME: dir,
        GATEWAY_RELAY_URL: 'http://127.0.0.1:9',
        HERMES_AGENT: 'bogus',
      }),
      /HERMES_AGENT must be one of echo, openai, command/,
    );
  });
});
