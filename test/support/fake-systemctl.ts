import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isProcessAlive } from '../../src/home/pid-lock.js';

/**
 * A fake `systemctl` for the gateway service commands: an executable in a temp dir (prepend it to
 * PATH) that appends its argv as one JSON line to `calls.jsonl` and answers `is-system-running`
 * and `is-active` from `config.json` (re-read on every call, so a test can change answers).
 */

export interface FakeSystemctlConfig {
  /** stdout of `is-system-running` (any scope). */
  systemState: string;
  /** Exit code of `is-system-running`. */
  systemStateCode: number;
  /** stdout of `is-enabled <unit>` (default `enabled`); exit 0 only for `enabled`. */
  enabledState?: string;
  /** stdout of `is-active <unit>`; exit 0 only for `active`. */
  activeState: string;
  /** Verbs that fail: `{ enable: { code: 1, stderr: '…' } }`. */
  failures: Record<string, { code: number; stderr: string }>;
  /**
   * Behave like systemd on `stop`: SIGTERM the PID named in this `gateway.pid` and wait (≤ 10 s)
   * for it to exit.
   */
  stopPidFile?: string;
}

export interface FakeSystemctl {
  dir: string;
  /** `PATH` with the fake first. */
  path: string;
  calls(): string[][];
  clear(): void;
  configure(config: Partial<FakeSystemctlConfig>): void;
  remove(): void;
}

const SCRIPT = `
const fs = require('node:fs');
const path = require('node:path');
const args = process.argv.slice(2);
fs.appendFileSync(path.join(__dirname, 'calls.jsonl'), JSON.stringify(args) + '\\n');
const config = JSON.parse(fs.readFileSync(path.join(__dirname, 'config.json'), 'utf8'));
const verb = args.find((arg) => !arg.startsWith('-')) || '';
const failure = config.failures[verb];
if (failure) {
  process.stderr.write(failure.stderr + '\\n');
  process.exit(failure.code);
}
if (verb === 'is-system-running') {
  process.stdout.write(config.systemState + '\\n');
  process.exit(config.systemStateCode);
}
if (verb === 'stop' && config.stopPidFile) {
  let pid = 0;
  try {
    pid = JSON.parse(fs.readFileSync(config.stopPidFile, 'utf8')).pid;
  } catch {}
  const alive = () => {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    try {
      const stat = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
      return !/^\\S+ \\(.*\\) [ZX]/.test(stat);
    } catch {
      return false;
    }
  };
  if (pid > 0 && alive()) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 10000;
    while (alive() && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
  process.exit(0);
}
if (verb === 'is-enabled') {
  const enabled = config.enabledState || 'enabled';
  process.stdout.write(enabled + '\\n');
  process.exit(enabled === 'enabled' ? 0 : 1);
}
if (verb === 'is-active') {
  process.stdout.write(config.activeState + '\\n');
  process.exit(config.activeState === 'active' ? 0 : 3);
}
process.exit(0);
`;

export function createFakeSystemctl(config: Partial<FakeSystemctlConfig> = {}): FakeSystemctl {
  const dir = mkdtempSync(join(tmpdir(), 'hermes-fake-systemctl-'));
  const script = join(dir, 'systemctl');
  const configPath = join(dir, 'config.json');
  const callsPath = join(dir, 'calls.jsonl');
  let current: FakeSystemctlConfig = {
    systemState: 'running',
    systemStateCode: 0,
    activeState: 'inactive',
    failures: {},
    ...config,
  };
  const save = () => writeFileSync(configPath, JSON.stringify(current));
  save();
  writeFileSync(script, `#!${process.execPath}\n${SCRIPT}`);
  chmodSync(script, 0o755);
  writeFileSync(callsPath, '');
  return {
    dir,
    path: `${dir}${delimiter}${process.env.PATH ?? ''}`,
    calls: () =>
      readFileSync(callsPath, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as string[]),
    clear: () => writeFileSync(callsPath, ''),
    configure: (next) => {
      current = { ...current, ...next };
      save();
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------------------------------------
// The built CLI with the service commands

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN_CLI = join(REPO, 'dist/src/cli/main.js');

/**
 * The CLI to run: `dist/src/cli/main.js` once `registerGatewayServiceCommands` is wired into
 * gateway-commands.ts; until then a small entry in a temp dir that builds the same program from
 * the built modules (same error handling and exit codes as main.ts).
 */
export function serviceCliEntry(): { path: string; remove: () => void } {
  const wired = readFileSync(join(REPO, 'dist/src/cli/gateway-commands.js'), 'utf8').includes(
    'registerGatewayServiceCommands',
  );
  if (wired) return { path: MAIN_CLI, remove: () => undefined };
  const dir = mkdtempSync(join(tmpdir(), 'hermes-service-cli-'));
  chmodSync(dir, 0o755); // readable by the unprivileged user of the "needs root" test
  const url = (path: string) => pathToFileURL(join(REPO, path)).href;
  const entry = join(dir, 'service-cli.mjs');
  writeFileSync(
    entry,
    `import { Command, CommanderError } from ${JSON.stringify(url('node_modules/commander/esm.mjs'))};
import { CliError } from ${JSON.stringify(url('dist/src/cli/errors.js'))};
import { registerGatewayCommands } from ${JSON.stringify(url('dist/src/cli/gateway-commands.js'))};
import { registerGatewayServiceCommands } from ${JSON.stringify(url('dist/src/cli/gateway-service-commands.js'))};
const program = new Command('hermes')
  .option('-v, --verbose', 'debug')
  .option('-p, --profile <name>', 'profile')
  .exitOverride();
registerGatewayCommands(program);
const gateway = program.commands.find((c) => c.name() === 'gateway');
if (!gateway.commands.some((c) => c.name() === 'install')) registerGatewayServiceCommands(gateway);
let code = 0;
try {
  await program.parseAsync(process.argv);
  code = typeof process.exitCode === 'number' ? process.exitCode : 0;
} catch (error) {
  if (error instanceof CommanderError) code = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(error.code) ? 0 : 2;
  else if (error instanceof CliError) { process.stderr.write('hermes: ' + error.message + '\\n'); code = error.exitCode; }
  else { process.stderr.write('hermes: ' + (error instanceof Error ? error.message : String(error)) + '\\n'); code = 1; }
}
process.exitCode = code;
setTimeout(() => process.exit(code), 2_000).unref();
`,
  );
  return { path: entry, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Environment variables of the test runner that must not leak into a child's configuration (CI
 * sets RELAY_REQUIRE_*; `connector install` copies RELAY_*, TELEGRAM_* and DISCORD_* settings).
 */
const LEAKY = /^(HERMES_|GATEWAY_RELAY_|RELAY_|TELEGRAM_|DISCORD_|OPENAI_|XDG_CONFIG_HOME$|SUDO_USER$)/;

export function isolatedEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!LEAKY.test(key)) base[key] = value;
  return { ...base, ...env };
}

export interface CliResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run `node <cli> ...args` with `env` (over an isolated copy of this process's environment). */
export function runCli(
  cli: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
): Promise<CliResult> {
  return new Promise((resolveRun) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { env: isolatedEnv(env), timeout: timeoutMs },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolveRun({ stdout, stderr, code });
      },
    );
  });
}

/** SIGKILL every PID in `pids` that is still alive (test cleanup). */
export function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    if (!isProcessAlive(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
