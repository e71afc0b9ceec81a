import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { errorMessage } from '../../common/errors.js';
import { parseCommandReply } from './command-reply.js';
import { type Agent, type AgentTurnInput, type AgentTurnResult, abortError } from './types.js';

const DEFAULT_COMMAND_TIMEOUT_MS = 300_000;
/** Stdout beyond this is read and dropped (the reply is cut there). */
const MAX_COMMAND_OUTPUT = 1024 * 1024;
const MAX_STDERR_TAIL = 16 * 1024;
/** SIGTERM first; whatever is left of the process group gets SIGKILL this much later. */
const KILL_GRACE_MS = 2_000;
/** After the shell exits, background processes still holding its stdout get this long. */
const STDIO_GRACE_MS = 1_000;

/**
 * Secrets of the relay itself that a per-turn agent program has no use for: not passed on. (Model
 * keys such as OPENAI_API_KEY are, since an agent program may well call a model.)
 */
const WITHHELD_ENV = [
  'GATEWAY_RELAY_SECRET',
  'GATEWAY_RELAY_DELIVERY_KEY',
  'GATEWAY_RELAY_DELIVERY_KEY_SECONDARY',
  'GATEWAY_RELAY_ENROLL_TOKEN',
  'HERMES_DASHBOARD_DRAIN_SECRET',
  'HERMES_DASHBOARD_SESSION_TOKEN',
  'HERMES_PORTAL_TOKEN',
];

export interface CommandAgentOptions {
  /** Run per turn as `/bin/sh -c <command>`. */
  command: string;
  log: Logger;
  /** The whole turn, default 300 s. */
  timeoutMs?: number;
  cwd?: string;
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nothing left of the group
  }
}

/** Process groups of turns in flight, killed if the gateway process exits under them. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pgid: number): void {
  liveGroups.add(pgid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const group of liveGroups) signalGroup(group, 'SIGKILL');
    });
  }
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n|\r/).map((line) => line.trim());
  const last = lines.reverse().find((line) => line.length > 0) ?? '';
  return last.length > 300 ? `${last.slice(0, 299)}…` : last;
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of WITHHELD_ENV) delete env[key];
  return env;
}

interface ActiveTurn {
  stop: () => void;
  settled: Promise<unknown>;
}

/**
 * Runs a program per turn: `{session_key, messages, event}` as JSON on its stdin, the reply is its
 * stdout (trimmed). The program runs in its own process group, so an abort, a timeout or
 * `close()` takes down everything it started; a turn settles only once the program is gone.
 */
export class CommandAgent implements Agent {
  readonly name = 'command';
  readonly reportsHandover = true;
  readonly #command: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #cwd: string | undefined;
  readonly #active = new Set<ActiveTurn>();

  constructor(options: CommandAgentOptions) {
    if (!options.command.trim()) throw new Error('the agent command is empty (HERMES_AGENT_COMMAND)');
    this.#command = options.command;
    this.#log = options.log;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.#cwd = options.cwd;
  }

  run(input: AgentTurnInput): Promise<AgentTurnResult> {
    if (input.signal.aborted) return Promise.reject(abortError());
    let stop: () => void = () => {};
    const settled = new Promise<AgentTurnResult>((resolve, reject) => {
      stop = this.#spawn(input, resolve, reject);
    });
    const turn: ActiveTurn = { stop, settled: settled.catch(() => {}) };
    this.#active.add(turn);
    void turn.settled.then(() => this.#active.delete(turn));
    return settled;
  }

  /** Stop every turn in flight (their promises reject with AbortError) and wait until they are gone. */
  async close(): Promise<void> {
    const turns = [...this.#active];
    for (const turn of turns) turn.stop();
    await Promise.all(turns.map((turn) => turn.settled));
  }

  /** Start one turn; returns a function that aborts it. */
  #spawn(
    input: AgentTurnInput,
    resolve: (result: AgentTurnResult) => void,
    reject: (error: Error) => void,
  ): () => void {
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', this.#command], {
        cwd: this.#cwd,
        env: childEnv(),
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } catch (error) {
      reject(new Error(`could not start the agent command: ${errorMessage(error)}`));
      return () => {};
    }
    const pid = child.pid;
    const started = Date.now();
    let killedFor: 'abort' | 'timeout' | undefined;
    let settled = false;
    let stdoutBytes = 0;
    let truncated = false;
    const stdout: Buffer[] = [];
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    let stdioTimer: NodeJS.Timeout | undefined;
    if (pid !== undefined) trackGroup(pid);

    const cleanup = () => {
      clearTimeout(timeoutTimer);
      clearTimeout(stdioTimer);
      clearTimeout(killTimer);
      input.signal.removeEventListener('abort', onAbort);
      if (pid !== undefined) liveGroups.delete(pid);
    };
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(error);
    };

    const kill = (reason: 'abort' | 'timeout') => {
      if (settled || killedFor) return;
      killedFor = reason;
      if (pid === undefined) return;
      this.#log.debug({ pid, reason }, 'stopping agent command');
      signalGroup(pid, 'SIGTERM');
      killTimer = setTimeout(() => {
        signalGroup(pid, 'SIGKILL');
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, KILL_GRACE_MS);
    };
    const onAbort = () => kill('abort');
    const timeoutTimer = setTimeout(() => kill('timeout'), this.#timeoutMs);
    input.signal.addEventListener('abort', onAbort, { once: true });

    child.stdout?.on('data', (chunk: Buffer) => {
      if (truncated) return;
      const room = MAX_COMMAND_OUTPUT - stdoutBytes;
      if (chunk.length > room) {
        truncated = true;
        if (room > 0) stdout.push(chunk.subarray(0, room));
        stdoutBytes = MAX_COMMAND_OUTPUT;
        return;
      }
      stdout.push(chunk);
      stdoutBytes += chunk.length;
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-MAX_STDERR_TAIL);
    });
    // The program may never read its stdin: EPIPE there is not an error of the turn.
    child.stdin?.on('error', () => {});

    child.on('error', (error) => {
      // Spawn failures (a missing cwd, …); once running, errors surface through 'close'.
      if (pid === undefined) fail(new Error(`could not start the agent command: ${error.message}`));
      else this.#log.warn({ pid, err: error.message }, 'agent command error');
    });
    child.on('exit', () => {
      // Background processes of the program that still hold its stdout would keep the turn open.
      stdioTimer = setTimeout(() => {
        if (pid !== undefined) signalGroup(pid, 'SIGKILL');
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, STDIO_GRACE_MS);
    });
    child.on('close', (code, signal) => {
      if (settled) return;
      if (killedFor && pid !== undefined) signalGroup(pid, 'SIGKILL'); // anything that ignored SIGTERM
      const ms = Date.now() - started;
      if (killedFor === 'abort') return fail(abortError());
      if (killedFor === 'timeout') {
        const seconds = formatDuration(this.#timeoutMs);
        this.#log.warn({ pid, ms }, 'agent command timed out');
        return fail(new Error(`agent command timed out after ${seconds}`));
      }
      if (code !== 0) {
        const detail = lastLine(stderr);
        const how = code === null ? `killed by ${signal ?? 'a signal'}` : `exit ${code}`;
        this.#log.warn({ pid, code, signal, ms }, 'agent command failed');
        return fail(new Error(`agent command failed (${how})${detail ? `: ${detail}` : ''}`));
      }
      if (truncated) this.#log.warn({ pid, limit: MAX_COMMAND_OUTPUT }, 'agent command output truncated');
      const text = Buffer.concat(stdout).toString('utf8').trim();
      if (!text) return fail(new Error('agent command printed no reply on stdout'));
      const reply = parseCommandReply(text);
      if (!reply.ok) return fail(new Error(reply.error));
      this.#log.debug(
        { pid, ms, chars: text.length, actions: reply.result.actions?.length ?? 0 },
        'agent command replied',
      );
      settled = true;
      cleanup();
      resolve(reply.result);
    });

    if (pid !== undefined) {
      const payload = {
        session_key: input.sessionKey,
        messages: [...input.history, input.message].map(({ role, content }) => ({ role, content })),
        event: input.event,
      };
      // Once the input is in the pipe the program has the turn, even if the gateway dies next (it
      // runs in its own process group and can still read it). A small input goes to the kernel
      // synchronously, so the turn is handed over in this same tick, long before a program that
      // was just spawned can act on it; a larger one is handed over when the pipe took it all.
      const stdin = child.stdin;
      if (stdin) {
        let handed = false;
        const handOver = () => {
          if (handed) return;
          handed = true;
          input.onHandedOver?.();
        };
        stdin.end(`${JSON.stringify(payload)}\n`, handOver);
        if (stdin.writableLength === 0) handOver();
      }
    }
    return onAbort;
  }
}
