import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Logger, pino } from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { generateSecret } from '../src/auth/index.js';
import { createTenant } from '../src/connector/admin.js';
import { type ConnectorConfig, connectorConfigFromEnv } from '../src/connector/config.js';
import { type RunningConnector, startConnector } from '../src/connector/connector.js';
import type {
  IngestOutcome,
  PlatformAdapter,
  PlatformContext,
  PlatformInbound,
} from '../src/connector/platforms/types.js';
import { SqliteStore } from '../src/connector/store/sqlite.js';
import {
  type CapabilityDescriptor,
  CONTRACT_VERSION,
  type MessageEventInit,
  messageDeliveryBody,
  messageEventToWire,
  type OutboundResult,
  type SendAction,
} from '../src/protocol/index.js';
import { type Measurement, quantile } from './harness.js';

/**
 * Shared setup for the delivery, WebSocket, connection and drain benchmarks: a platform adapter
 * the bench drives directly, an in-process connector on a real SQLite file, tenants and gateways
 * written straight into the store, bare `node:http` baselines, child processes and RSS readings.
 */

export const silentLog: Logger = pino({ level: 'silent' });

/** A bench store or inbox whose background checkpoints failed measures something else: say so. */
export function benchCheckpointError(message: string): void {
  console.error(`bench: ${message}`);
}

/** Compiled to dist/bench/support.js: the CLI entry point of the same build. */
export const CLI_PATH = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export interface TempDir {
  path: string;
  remove(): void;
}

export function tempDir(prefix: string): TempDir {
  const path = mkdtempSync(join(tmpdir(), `hermes-bench-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `probe` every `everyMs` until it returns something other than undefined/false. */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
  everyMs = 5,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// A platform the bench drives directly

/**
 * A platform adapter with no platform behind it: `start()` keeps the connector's `ingest` so the
 * bench can inject events, and every outbound op succeeds at once.
 */
export class InjectAdapter implements PlatformAdapter {
  private context: PlatformContext | undefined;
  private sent = 0;

  constructor(
    readonly name = 'bench',
    private readonly maxMessageLength = 4096,
  ) {}

  descriptor(): Omit<CapabilityDescriptor, 'supported_ops'> {
    return {
      contract_version: CONTRACT_VERSION,
      platform: this.name,
      label: 'Bench',
      max_message_length: this.maxMessageLength,
      supports_draft_streaming: false,
      supports_edit: false,
      supports_threads: false,
      markdown_dialect: 'plain',
      len_unit: 'chars',
      emoji: '',
      platform_hint: '',
      pii_safe: false,
      supports_context: false,
      supports_inchannel_continuable: false,
      supports_block_formatting: false,
    };
  }

  async start(context: PlatformContext): Promise<void> {
    this.context = context;
  }

  async stop(): Promise<void> {
    this.context = undefined;
  }

  async send(_action: SendAction): Promise<OutboundResult> {
    this.sent++;
    return { success: true, message_id: String(this.sent) };
  }

  /** Route, persist and queue one event, exactly as a real platform adapter would. */
  ingest(inbound: PlatformInbound): Promise<IngestOutcome> {
    if (!this.context) throw new Error(`adapter ${this.name} is not started`);
    return this.context.ingest(inbound);
  }
}

// ---------------------------------------------------------------------------------------------
// In-process connector and store setup

export interface BenchConnector {
  connector: RunningConnector;
  store: SqliteStore;
  relayUrl: string;
}

export async function startBenchConnector(
  dbPath: string,
  adapters: PlatformAdapter[],
  instanceId = 'bench-connector',
): Promise<BenchConnector> {
  // As `hermes connector serve` opens it: WAL checkpoints on a worker thread.
  const store = SqliteStore.open(dbPath, { backgroundCheckpoints: { onError: benchCheckpointError } });
  // From an empty environment, so defaults added to the config later apply here too.
  const config: ConnectorConfig = {
    // Bench endpoints are on 127.0.0.1: the one private target allowed (SSRF rule).
    ...connectorConfigFromEnv(
      { RELAY_ALLOW_PRIVATE_TARGETS: '127.0.0.1/32' },
      { host: '127.0.0.1', port: 0, db: dbPath },
    ),
    instanceId,
    defaultPlatform: adapters[0]?.name ?? 'bench',
    logLevel: 'silent',
  };
  const connector = await startConnector({ config, store, adapters, log: silentLog, version: 'bench' });
  return { connector, store, relayUrl: `${connector.url.replace(/^http/, 'ws')}/relay` };
}

export interface BenchTenant {
  tenantId: string;
  deliveryKey: string;
}

export async function createBenchTenant(store: SqliteStore, name: string): Promise<BenchTenant> {
  const { tenant } = await createTenant(store, name);
  const keys = await store.getOrCreateDeliveryKey(tenant.id, generateSecret());
  return { tenantId: tenant.id, deliveryKey: keys.primary };
}

/** Enroll a gateway straight into the store (what `/relay/enroll` does after its checks). */
export async function enrollBenchGateway(
  store: SqliteStore,
  tenantId: string,
  gatewayId: string,
  platform = 'bench',
): Promise<string> {
  const secret = generateSecret();
  await store.putGatewaySecret({
    id: gatewayId,
    tenantId,
    secret,
    platform,
    botId: '',
    endpoint: '',
    now: Date.now(),
    rotationWindowMs: 0,
  });
  return secret;
}

// ---------------------------------------------------------------------------------------------
// Events of a given size

/** A web-chat-like event for `chatId` whose delivery body is `bodyBytes` bytes of JSON. */
export function sizedEvent(chatId: string, bodyBytes: number, platform = 'bench'): MessageEventInit {
  const event: MessageEventInit = {
    text: '',
    message_type: 'text',
    message_id: 'm-000000',
    source: {
      platform,
      chat_id: chatId,
      chat_type: 'dm',
      user_id: chatId,
      user_name: 'Bench visitor',
      chat_name: 'hermes relay benchmark',
    },
  };
  // Same shape and id length as the connector's own body (`dlv_` + 24 hex characters).
  const skeleton = JSON.stringify(messageDeliveryBody(messageEventToWire(event), `dlv_${'0'.repeat(24)}`));
  const pad = bodyBytes - Buffer.byteLength(skeleton);
  if (pad < 0) throw new Error(`an event skeleton is already ${Buffer.byteLength(skeleton)} bytes`);
  event.text = 'x'.repeat(pad);
  return event;
}

export function deliveryBodyBytes(event: MessageEventInit): Buffer {
  return Buffer.from(
    JSON.stringify(messageDeliveryBody(messageEventToWire(event), `dlv_${'0'.repeat(24)}`)),
    'utf8',
  );
}

// ---------------------------------------------------------------------------------------------
// Bare node:http baseline

export interface BareHttpServer {
  url: string;
  close(): Promise<void>;
}

/** Reads the whole body and answers 200 with `body` (`{"ok":true}`), like a receiver with no work to do. */
export async function startBareHttpServer(body = '{"ok":true}'): Promise<BareHttpServer> {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      response.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(body.length),
      });
      response.end(body);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A keep-alive POST client; resolves with the status once the response body is read. */
export function bareHttpPoster(
  url: string,
  maxSockets: number,
): {
  post(body: Buffer, headers: Record<string, string>): Promise<number>;
  close(): void;
} {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const target = new URL(url);
  return {
    post: (body, headers) =>
      new Promise<number>((resolve, reject) => {
        const request = http.request(
          target,
          { method: 'POST', agent, headers: { ...headers, 'content-length': String(body.length) } },
          (response) => {
            response.resume();
            response.on('end', () => resolve(response.statusCode ?? 0));
            response.on('error', reject);
          },
        );
        request.on('error', reject);
        request.end(body);
      }),
    close: () => agent.destroy(),
  };
}

// ---------------------------------------------------------------------------------------------
// Processes and memory

/** Resident set size of a process in bytes, from /proc/<pid>/status (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** The soft limit on open files of processes started from here (`ulimit -n`). */
export function openFileLimit(): number {
  try {
    const out = execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? 1_000_000 : Number(out) || 1024;
  } catch {
    return 1024;
  }
}

export interface ChildHandle {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  stop(): Promise<void>;
}

export function spawnNode(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): ChildHandle {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd,
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    waitFor: async (pattern, timeoutMs) => {
      const started = Date.now();
      for (;;) {
        const match = output.match(pattern);
        if (match) return match;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`process exited before ${pattern}:\n${output.slice(-2000)}`);
        if (Date.now() - started > timeoutMs)
          throw new Error(`timed out waiting for ${pattern}:\n${output.slice(-2000)}`);
        await sleep(20);
      }
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Measurements built from explicit samples (for workloads the slice harness does not fit)

/**
 * A Measurement whose rate is `ops / seconds`, with latency percentiles from `latenciesMs` when
 * given (the harness reports p50/p99 in microseconds).
 */
export function manualMeasurement(
  name: string,
  ops: number,
  elapsedMs: number,
  latenciesMs?: readonly number[],
): Measurement {
  const rate = elapsedMs > 0 ? ops / (elapsedMs / 1000) : 0;
  const m: Measurement = { name, opsPerSec: rate, meanOpsPerSec: rate, spread: 0, ops, elapsedMs };
  if (latenciesMs && latenciesMs.length > 0) {
    m.p50Us = quantile(latenciesMs, 0.5) * 1000;
    m.p99Us = quantile(latenciesMs, 0.99) * 1000;
  }
  return m;
}

export function formatKiB(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

// ---------------------------------------------------------------------------------------------
// Outbox completions

export interface CompletionWatch {
  /** Resolves once the outbox row `id` has been completed (it may already have been). */
  completed(id: string): Promise<void>;
}

/**
 * Hook the store methods the engine completes rows with (one row, or a batch in one transaction),
 * so a bench can time an event from `ingest` to its row leaving the outbox.
 */
export function watchCompletions(store: SqliteStore): CompletionWatch {
  const waiters = new Map<string, () => void>();
  const early = new Set<string>();
  const completedRow = (id: string): void => {
    const waiter = waiters.get(id);
    if (waiter) {
      waiters.delete(id);
      waiter();
    } else early.add(id);
  };
  const complete = store.completeDelivery.bind(store);
  store.completeDelivery = async (id, claimer) => {
    const done = await complete(id, claimer);
    completedRow(id);
    return done;
  };
  const completeMany = store.completeDeliveries.bind(store);
  store.completeDeliveries = async (ids, claimer) => {
    const done = await completeMany(ids, claimer);
    for (const id of ids) completedRow(id);
    return done;
  };
  return {
    completed: (id) => {
      if (early.delete(id)) return Promise.resolve();
      return new Promise((resolve) => waiters.set(id, resolve));
    },
  };
}

/**
 * The closed-loop operation of the `delivery` and `ws-inbound` subjects: one `sizedEvent` of
 * `bodyBytes` per session (a session never has two deliveries in flight, so N workers ⇒ N
 * sessions), ingested through `adapter` and awaited until its outbox row is completed.
 */
export function sessionIngest(
  adapter: InjectAdapter,
  store: SqliteStore,
  sessions: number,
  bodyBytes: number,
): { deliverOne(session: number): Promise<void>; readonly failed: number } {
  const { completed } = watchCompletions(store);
  const events = Array.from({ length: sessions }, (_, i) => sizedEvent(`bench-session-${i}`, bodyBytes));
  let failed = 0;
  return {
    async deliverOne(session) {
      const event = events[session];
      if (!event) throw new Error(`no session ${session}`);
      const outcome = await adapter.ingest({ routeKey: 'room', event });
      if (!outcome.ok) {
        failed++;
        throw new Error(`ingest failed: ${outcome.message}`);
      }
      await completed(outcome.deliveryId);
    },
    get failed() {
      return failed;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Ingest outcomes of a real platform adapter

export interface IngestWatch {
  /**
   * Resolves with the outcome of the next ingest of a message in chat `chatId` (call it before the
   * message is sent; one waiter per chat at a time).
   */
  next(chatId: string): Promise<IngestOutcome>;
}

/**
 * Wrap the `ingest` of the context the connector hands `adapter` (in `attach` and `start`), so a
 * bench driving a real adapter from outside (a fake platform, a browser socket) learns the outbox
 * row each message became, to wait for its completion with {@link watchCompletions}.
 */
export function watchIngests(adapter: PlatformAdapter): IngestWatch {
  const waiters = new Map<string, (outcome: IngestOutcome) => void>();
  const wrappers = new WeakMap<PlatformContext, PlatformContext>();
  const ours = new WeakSet<PlatformContext>();
  const settle = (chatId: string, outcome: IngestOutcome): void => {
    const waiter = waiters.get(chatId);
    if (!waiter) return;
    waiters.delete(chatId);
    waiter(outcome);
  };
  const wrap = (context: PlatformContext): PlatformContext => {
    if (ours.has(context)) return context;
    let wrapped = wrappers.get(context);
    if (!wrapped) {
      wrapped = {
        ...context,
        ingest: async (inbound) => {
          const chatId = inbound.event.source.chat_id ?? '';
          try {
            const outcome = await context.ingest(inbound);
            settle(chatId, outcome);
            return outcome;
          } catch (error) {
            settle(chatId, { ok: false, reason: 'store_error', message: String(error) });
            throw error;
          }
        },
      };
      wrappers.set(context, wrapped);
      ours.add(wrapped);
    }
    return wrapped;
  };
  const attach = adapter.attach?.bind(adapter);
  if (attach) adapter.attach = (context) => attach(wrap(context));
  const start = adapter.start.bind(adapter);
  adapter.start = (context) => start(wrap(context));
  return {
    next: (chatId) => new Promise((resolve) => waiters.set(chatId, resolve)),
  };
}

// ---------------------------------------------------------------------------------------------
// Bare ws baseline

export interface BareWsPair {
  /** One exchange: `sender` sends `sendBytes` with an id, the other side answers `replyBytes` with it. */
  exchange(): Promise<void>;
  close(): Promise<void>;
}

const BARE_ID_CHARS = 12;

/**
 * A bare `ws` client and server in this process exchanging messages of given sizes, correlated by
 * a fixed-width id (no JSON, no checks): the baseline of the socket benchmarks. `sender` is who
 * starts each exchange (the gateway side sends ops; the connector side sends inbound).
 */
export async function startBareWsPair(
  sendBytes: number,
  replyBytes: number,
  sender: 'client' | 'server',
): Promise<BareWsPair> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  const connected = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise<void>((resolve, reject) => {
    client.once('open', () => resolve());
    client.once('error', reject);
  });
  const peer = await connected;
  const [from, to] = sender === 'client' ? [client, peer] : [peer, client];
  const replyPad = 'r'.repeat(Math.max(0, replyBytes - BARE_ID_CHARS));
  to.on('message', (data: Buffer) => to.send(data.toString('latin1', 0, BARE_ID_CHARS) + replyPad));
  const waiting = new Map<string, () => void>();
  from.on('message', (data: Buffer) => {
    const id = data.toString('latin1', 0, BARE_ID_CHARS);
    const resolve = waiting.get(id);
    if (resolve) {
      waiting.delete(id);
      resolve();
    }
  });
  const sendPad = 'q'.repeat(Math.max(0, sendBytes - BARE_ID_CHARS));
  let counter = 0;
  return {
    exchange: () =>
      new Promise<void>((resolve) => {
        const id = (counter++).toString(36).padStart(BARE_ID_CHARS, '0');
        waiting.set(id, resolve);
        from.send(id + sendPad);
      }),
    close: async () => {
      client.terminate();
      for (const socket of server.clients) socket.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** CPU time of the main thread in µs (Linux: /proc; elsewhere undefined). */
function mainThreadCpuUs(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** A bench subject that can be driven alone: one event per call, per session. */
export interface ProfiledRig {
  deliverOne(session: number): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * A bench subject alone, for profiling (issue 20): no baseline, no slices, one worker per session
 * in a closed loop for a 1 s warm-up and then `seconds`. Prints events/s and the CPU time per event
 * of the main thread and of the whole process: on a machine shared with other work, CPU per event
 * moves far less than the rate does, so it is the figure to compare builds with. `tally` adds the
 * subject's own counts to the line.
 */
export async function profileSubject<R extends ProfiledRig>(options: {
  label: string;
  sessions: number;
  seconds: number;
  start: () => Promise<R>;
  tally: (rig: R) => string;
}): Promise<void> {
  const rig = await options.start();
  const closedLoop = async (ms: number): Promise<number> => {
    const end = performance.now() + ms;
    let done = 0;
    const worker = async (session: number): Promise<void> => {
      while (performance.now() < end) {
        await rig.deliverOne(session);
        done++;
      }
    };
    await Promise.all(Array.from({ length: options.sessions }, (_, i) => worker(i)));
    return done;
  };
  try {
    await closedLoop(1_000);
    const cpu0 = process.cpuUsage();
    const main0 = mainThreadCpuUs();
    const t0 = performance.now();
    const events = await closedLoop(options.seconds * 1_000);
    const elapsed = (performance.now() - t0) / 1_000;
    const cpu = process.cpuUsage(cpu0);
    const main1 = mainThreadCpuUs();
    const mainPerEvent =
      main0 === undefined || main1 === undefined ? '?' : ((main1 - main0) / events).toFixed(1);
    console.log(
      `${options.label} subject: ${(events / elapsed).toFixed(0)} events/s, CPU per event ${mainPerEvent} µs ` +
        `(main thread), ${((cpu.user + cpu.system) / events).toFixed(1)} µs (process); ` +
        `${events} events, ${options.tally(rig)}`,
    );
  } finally {
    await rig.close();
  }
}
