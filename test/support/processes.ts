import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** Real `hermes` processes for integration tests (built output in dist/). */

export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/src/cli/main.js');
const execFileAsync = promisify(execFile);
/**
 * Every test endpoint and wake URL is on 127.0.0.1: the connector (and `route add`) may reach
 * loopback, nothing else private (SSRF rule, common/ssrf.ts). A test of the refusal overrides it.
 */
const LOOPBACK_TARGETS = { RELAY_ALLOW_PRIVATE_TARGETS: '127.0.0.0/8,::1' };

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `hermes-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function hermes(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...LOOPBACK_TARGETS, ...env },
      timeout: 20_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; code?: number };
    return {
      stdout: failed.stdout ?? '',
      stderr: failed.stderr ?? '',
      code: typeof failed.code === 'number' ? failed.code : 1,
    };
  }
}

export async function hermesJson<T>(args: string[], env: NodeJS.ProcessEnv = {}): Promise<T> {
  const result = await hermes([...args, '--json'], env);
  if (result.code !== 0)
    throw new Error(`hermes ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

export interface RunningProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolve with the first match of `pattern` in stdout/stderr. */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export function startHermes(args: string[], env: NodeJS.ProcessEnv = {}): RunningProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...LOOPBACK_TARGETS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    for (const listener of listeners) listener();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  // 'exit' can come before the last output is read from the pipes; 'close' comes after (bounded,
  // in case a grandchild holds a pipe open).
  const drained = new Promise<void>((resolveClose) => child.once('close', () => resolveClose()));
  return {
    child,
    output: () => output,
    waitFor: (pattern, timeoutMs = 15_000) =>
      new Promise((resolveMatch, reject) => {
        const check = () => {
          const match = output.match(pattern);
          if (match) {
            listeners.delete(check);
            clearTimeout(timer);
            resolveMatch(match);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out waiting for ${pattern}; output so far:\n${output.slice(-3000)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
        void exited.then(() => {
          if (listeners.has(check)) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`process exited before ${pattern}; output:\n${output.slice(-3000)}`));
          }
        });
      }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      await Promise.race([drained, sleep(2_000, undefined, { ref: false })]);
      return code;
    },
  };
}

/** Start `hermes connector serve` on a random port and wait until it listens. */
export async function startConnectorProcess(
  db: string,
  env: NodeJS.ProcessEnv = {},
): Promise<RunningProcess & { url: string }> {
  const proc = startHermes(['connector', 'serve', '--port', '0', '--db', db], {
    RELAY_LOG_LEVEL: 'warn',
    ...env,
  });
  const match = await proc.waitFor(/connector listening on (http:\/\/127\.0\.0\.1:\d+)/, 45_000);
  return Object.assign(proc, { url: match[1] as string });
}

export { until } from './poll.js';
